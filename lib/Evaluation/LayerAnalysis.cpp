//===- Analysis.cpp - what quantization cost, layer by layer -------------===//

#include "qsim/Evaluation/LayerAnalysis.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

using namespace mlir;
using namespace qsim;
using namespace qsim::eval;
using namespace qsim::eval;

void LayerComparison::add(const std::vector<float> &ref,
                          const std::vector<float> &test, float clipLo,
                          float clipHi) {
  size_t n = std::min(ref.size(), test.size());
  for (size_t i = 0; i < n; ++i) {
    double r = ref[i], t = test[i], e = r - t;
    sumRef2 += r * r;
    sumTest2 += t * t;
    sumDot += r * t;
    sumErr2 += e * e;
    sumAbsErr += std::fabs(e);
    maxAbsErr = std::max(maxAbsErr, std::fabs(e));
    if (clipLo <= clipHi && (ref[i] < clipLo || ref[i] > clipHi))
      ++clipped;
  }
  count += n;
}

double LayerComparison::sqnrDb() const {
  if (sumErr2 == 0)
    return std::numeric_limits<double>::infinity();
  if (sumRef2 == 0)
    return -std::numeric_limits<double>::infinity();
  return 10 * std::log10(sumRef2 / sumErr2);
}

double LayerComparison::cosine() const {
  if (sumRef2 == 0 || sumTest2 == 0)
    return sumRef2 == sumTest2 ? 1.0 : 0.0;
  return sumDot / std::sqrt(sumRef2 * sumTest2);
}

std::pair<float, float>
qsim::eval::representableRange(const rt::Tensor &t) {
  if (t.dtype() != rt::DType::I8)
    return {1.0f, 0.0f};
  return {t.quant.scale * (-128 - t.quant.zeroPoint),
          t.quant.scale * (127 - t.quant.zeroPoint)};
}

static std::vector<int8_t> int8Weights(Conv2DOp conv) {
  if (!conv.getWeight())
    return {};
  return getInts<int8_t>(*conv.getWeight()).value_or(std::vector<int8_t>());
}

OverflowStats qsim::eval::analyzeOverflow(Conv2DOp conv,
                                                  const rt::Tensor &input) {
  OverflowStats s;
  if (input.dtype() != rt::DType::I8)
    return s;
  std::vector<int8_t> w = int8Weights(conv);
  if (w.empty())
    return s;
  auto outType = cast<ShapedType>(conv.getResult().getType());
  int64_t F = conv.getFilters(), G = conv.getGroups(), kh = conv.getKernelH(),
          kw = conv.getKernelW(), sy = conv.getStride()[0],
          sx = conv.getStride()[1], py = conv.getPadding()[0],
          px = conv.getPadding()[1], d = conv.getDilation();
  int64_t C = input.c(), H = input.h(), W = input.w(), cg = C / G, fg = F / G;
  int64_t OH = outType.getDimSize(2), OW = outType.getDimSize(3);
  int32_t zp = input.quant.zeroPoint;
  const int8_t *x = input.i8();
  int64_t products = 0, productOverflow = 0, outputs = 0, accOverflow = 0;
#pragma omp parallel for schedule(dynamic) reduction(+ : products, productOverflow, outputs, accOverflow)
  for (int64_t f = 0; f < F; ++f) {
    int64_t g = f / fg;
    for (int64_t oy = 0; oy < OH; ++oy)
      for (int64_t ox = 0; ox < OW; ++ox) {
        int32_t acc = 0;
        bool overflowed = false;
        for (int64_t ci = 0; ci < cg; ++ci)
          for (int64_t ky = 0; ky < kh; ++ky)
            for (int64_t kx = 0; kx < kw; ++kx) {
              int64_t iy = oy * sy - py * d + ky * d,
                      ix = ox * sx - px * d + kx * d;
              if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                continue;
              int32_t p = (int32_t)w[((f * cg + ci) * kh + ky) * kw + kx] *
                          ((int32_t)x[((g * cg + ci) * H + iy) * W + ix] - zp);
              ++products;
              productOverflow += p < -128 || p > 127;
              acc += p;
              overflowed |= acc < -32768 || acc > 32767;
            }
        ++outputs;
        accOverflow += overflowed;
      }
  }
  s.productPercent = products ? 100.0 * productOverflow / products : 0;
  s.accumulatorPercent = outputs ? 100.0 * accOverflow / outputs : 0;
  return s;
}

int qsim::eval::staticAccumulatorBits(Conv2DOp conv) {
  std::vector<int8_t> w = int8Weights(conv);
  auto in = dyn_cast<mlir::quant::UniformQuantizedType>(
      getElementTypeOrSelf(conv.getInput().getType()));
  if (w.empty() || !in)
    return 0;
  int64_t zp = in.getZeroPoint();
  int64_t maxX = std::max(zp + 128, 127 - zp);
  int64_t F = conv.getFilters(), per = w.size() / F;
  std::vector<int32_t> bias(F, 0);
  if (conv.getBias()) {
    ArrayRef<char> raw = getRawBytes(*conv.getBias());
    if ((int64_t)raw.size() == F * 4)
      std::memcpy(bias.data(), raw.data(), raw.size());
  }
  int64_t worst = 0;
  for (int64_t f = 0; f < F; ++f) {
    int64_t sum = 0;
    for (int64_t i = 0; i < per; ++i)
      sum += std::abs((int64_t)w[f * per + i]);
    worst = std::max(worst, sum * maxX + std::abs((int64_t)bias[f]));
  }
  int bits = 1; // sign
  while (worst >= (1ll << (bits - 1)))
    ++bits;
  return bits;
}
