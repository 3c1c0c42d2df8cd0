//===- QuantKernels.cpp - int8 and int16 reference kernels ---------------===//

#include "QuantKernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

using namespace qsim;
using namespace qsim::interp;
using namespace qsim::interp::ref;

static inline int32_t sat16(int32_t v) {
  return std::max(-32768, std::min(32767, v));
}

namespace {
/// acc[f][oy][ox] = sum w * (x - zpIn) over in-bounds taps, in (ci, ky, kx)
/// order, in `Acc` (int32: optionally saturating at 16 bits; int64 for
/// W8A16); `finish(f, acc)` turns one output channel's accumulators into
/// outputs.
template <typename In, typename Acc, typename Finish>
void convAccumulate(const In *in, const CHW &inShape, const ConvParams &p,
                    const std::vector<int8_t> &weight, int32_t zpIn,
                    bool narrow, const CHW &outShape, Finish finish) {
  const int64_t cg = inShape.c / p.groups, fg = p.filters / p.groups;
  const int64_t ohw = outShape.h * outShape.w;
  const int64_t d = p.dilation;
#pragma omp parallel for schedule(dynamic)
  for (int64_t f = 0; f < p.filters; ++f) {
    const int64_t g = f / fg;
    std::vector<Acc> acc(ohw, 0);
    for (int64_t ci = 0; ci < cg; ++ci) {
      const In *x = in + (g * cg + ci) * inShape.h * inShape.w;
      for (int64_t ky = 0; ky < p.kh; ++ky)
        for (int64_t kx = 0; kx < p.kw; ++kx) {
          const Acc wv = weight[((f * cg + ci) * p.kh + ky) * p.kw + kx];
          const int64_t offY = ky * d - p.py * d, offX = kx * d - p.px * d;
          for (int64_t oy = 0; oy < outShape.h; ++oy) {
            const int64_t iy = oy * p.sy + offY;
            if (iy < 0 || iy >= inShape.h)
              continue; // padding: (zp - zp) * w = 0
            Acc *arow = acc.data() + oy * outShape.w;
            for (int64_t ox = 0; ox < outShape.w; ++ox) {
              const int64_t ix = ox * p.sx + offX;
              if (ix < 0 || ix >= inShape.w)
                continue;
              Acc prod = wv * ((Acc)x[iy * inShape.w + ix] - zpIn);
              arow[ox] = narrow ? sat16(arow[ox] + prod) : arow[ox] + prod;
            }
          }
        }
    }
    finish(f, acc.data());
  }
}
} // namespace

void ref::conv2dInt8(const int8_t *in, const CHW &inShape,
                     const ConvInt8Params &ip, int8_t *out,
                     const CHW &outShape) {
  const int64_t ohw = outShape.h * outShape.w;
  convAccumulate<int8_t, int32_t>(in, inShape, ip.conv, ip.weight, ip.zpIn,
                                  ip.accumulatorBits == 16, outShape,
                                  [&](int64_t f, const int32_t *acc) {
                                    int8_t *o = out + f * ohw;
                                    for (int64_t i = 0; i < ohw; ++i)
                                      o[i] = ip.requant.apply(acc[i], f);
                                  });
}

void ref::conv2dInt16(const int16_t *in, const CHW &inShape,
                      const ConvInt16Params &ip, int16_t *out,
                      const CHW &outShape) {
  const int64_t ohw = outShape.h * outShape.w;
  convAccumulate<int16_t, int64_t>(in, inShape, ip.conv, ip.weight, 0, false,
                                   outShape,
                                   [&](int64_t f, const int64_t *acc) {
                                     int16_t *o = out + f * ohw;
                                     for (int64_t i = 0; i < ohw; ++i)
                                       o[i] = ip.requant.apply(acc[i], f);
                                   });
}

void ref::connectedInt8(const int8_t *in, int64_t inputs,
                        const ConvInt8Params &ip, int64_t outputs,
                        int8_t *out) {
  const bool narrow = ip.accumulatorBits == 16;
#pragma omp parallel for
  for (int64_t o = 0; o < outputs; ++o) {
    int32_t acc = 0;
    const int8_t *w = ip.weight.data() + o * inputs;
    for (int64_t i = 0; i < inputs; ++i) {
      int32_t prod = (int32_t)w[i] * ((int32_t)in[i] - ip.zpIn);
      acc = narrow ? sat16(acc + prod) : acc + prod;
    }
    out[o] = ip.requant.apply(acc, o);
  }
}

void ref::connectedInt16(const int16_t *in, int64_t inputs,
                         const ConvInt16Params &ip, int64_t outputs,
                         int16_t *out) {
#pragma omp parallel for
  for (int64_t o = 0; o < outputs; ++o) {
    int64_t acc = 0;
    const int8_t *w = ip.weight.data() + o * inputs;
    for (int64_t i = 0; i < inputs; ++i)
      acc += (int64_t)w[i] * in[i];
    out[o] = ip.requant.apply(acc, o);
  }
}

int32_t ref::multiplyByFixedPoint64(int64_t x, rt::FixedPoint m) {
  if (m.multiplier == 0 || x == 0)
    return 0;
  // M = multiplier * 2^-shift (QuantMath.h); shift in [-31, 62] (the
  // verifier's range), so |x * multiplier| < 2^94 and the shifted value
  // fits 128 bits.
  __int128 prod = (__int128)x * m.multiplier;
  const bool negative = prod < 0;
  unsigned __int128 mag =
      negative ? -(unsigned __int128)prod : (unsigned __int128)prod;
  if (m.shift > 0)
    mag = (mag + ((unsigned __int128)1 << (m.shift - 1))) >> m.shift;
  else if (m.shift < 0)
    mag <<= -m.shift;
  const unsigned __int128 limit =
      negative ? (unsigned __int128)1 << 31 : ((unsigned __int128)1 << 31) - 1;
  if (mag > limit)
    return negative ? INT32_MIN : INT32_MAX;
  return negative ? (int32_t)(-(int64_t)mag) : (int32_t)mag;
}

void ref::requantize(const int32_t *acc, int64_t pixels, int64_t channels,
                     bool channelsLast, const Requant &r, int8_t *out) {
  if (channelsLast) {
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < pixels; ++p)
      for (int64_t f = 0; f < channels; ++f)
        out[p * channels + f] = r.apply(acc[p * channels + f], f);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t f = 0; f < channels; ++f)
    for (int64_t p = 0; p < pixels; ++p)
      out[f * pixels + p] = r.apply(acc[f * pixels + p], f);
}

namespace {
template <typename T>
void maxPoolQ(const T *in, const CHW &inShape, int64_t size, int64_t sy,
              int64_t sx, int64_t padding, T *out, const CHW &outShape) {
  const int64_t off = -(padding / 2);
#pragma omp parallel for
  for (int64_t c = 0; c < outShape.c; ++c) {
    const T *x = in + c * inShape.h * inShape.w;
    for (int64_t oy = 0; oy < outShape.h; ++oy)
      for (int64_t ox = 0; ox < outShape.w; ++ox) {
        // Darknet's -FLT_MAX when no tap is inside.
        int32_t maxv = std::numeric_limits<T>::min();
        for (int64_t n = 0; n < size; ++n)
          for (int64_t m = 0; m < size; ++m) {
            int64_t iy = oy * sy + off + n, ix = ox * sx + off + m;
            if (iy < 0 || iy >= inShape.h || ix < 0 || ix >= inShape.w)
              continue;
            maxv = std::max<int32_t>(maxv, x[iy * inShape.w + ix]);
          }
        out[(c * outShape.h + oy) * outShape.w + ox] = (T)maxv;
      }
  }
}

template <typename T>
void upsampleQ(const T *in, const CHW &inShape, int64_t stride, T *out,
               const CHW &outShape) {
  for (int64_t c = 0; c < outShape.c; ++c)
    for (int64_t y = 0; y < outShape.h; ++y)
      for (int64_t x = 0; x < outShape.w; ++x)
        out[(c * outShape.h + y) * outShape.w + x] =
            in[(c * inShape.h + y / stride) * inShape.w + x / stride];
}
} // namespace

void ref::maxPoolInt8(const int8_t *in, const CHW &inShape, int64_t size,
                      int64_t sy, int64_t sx, int64_t padding, int8_t *out,
                      const CHW &outShape) {
  maxPoolQ(in, inShape, size, sy, sx, padding, out, outShape);
}

void ref::maxPoolInt16(const int16_t *in, const CHW &inShape, int64_t size,
                       int64_t sy, int64_t sx, int64_t padding, int16_t *out,
                       const CHW &outShape) {
  maxPoolQ(in, inShape, size, sy, sx, padding, out, outShape);
}

void ref::routeSliceInt8(const int8_t *in, const CHW &inShape, int64_t groups,
                         int64_t groupId, int32_t zpIn, int32_t zpOut,
                         rt::FixedPoint m, bool identity, rt::Rounding rounding,
                         int8_t *out, int64_t outChannelOffset) {
  const int64_t hw = inShape.h * inShape.w;
  const int64_t part = inShape.c / groups;
  const int8_t *src = in + groupId * part * hw;
  int8_t *dst = out + outChannelOffset * hw;
  if (identity) {
    std::memcpy(dst, src, part * hw);
    return;
  }
  for (int64_t i = 0; i < part * hw; ++i)
    dst[i] = rt::saturateInt8(
        zpOut + rt::multiplyByFixedPoint((int32_t)src[i] - zpIn, m, rounding));
}

int8_t ref::ShortcutInt8Params::finish(int32_t sum) const {
  if (act == Activation::relu)
    sum = std::max(sum, 0);
  else if (act == Activation::leaky && sum < 0)
    sum = rt::multiplyByFixedPoint(sum, negMult, rounding);
  return rt::saturateInt8(zpOut +
                          rt::roundingDivideByPOT(sum, kShortcutFractionBits));
}

void ref::shortcutInt8(const std::vector<const int8_t *> &ins,
                       const std::vector<CHW> &shapes,
                       const ShortcutInt8Params &p, int8_t *out) {
  const int64_t n = shapes[0].size();
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    int32_t sum = 0;
    for (size_t k = 0; k < ins.size(); ++k)
      if (i < shapes[k].size())
        sum += p.term(k, ins[k][i]);
    out[i] = p.finish(sum);
  }
}

void ref::upsampleInt8(const int8_t *in, const CHW &inShape, int64_t stride,
                       int8_t *out, const CHW &outShape) {
  upsampleQ(in, inShape, stride, out, outShape);
}

void ref::upsampleInt16(const int16_t *in, const CHW &inShape, int64_t stride,
                        int16_t *out, const CHW &outShape) {
  upsampleQ(in, inShape, stride, out, outShape);
}

void ref::reorgInt8(const int8_t *in, const CHW &inShape, int64_t s,
                    bool reverse, int8_t *out) {
  reorgCpu(in, inShape, s, reverse, out);
}

void ref::quantize(const float *in, int64_t n, float scale, int32_t zp,
                   int8_t *out) {
  const float inv = 1.0f / scale;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i)
    out[i] = rt::quantizeValue(in[i], inv, zp);
}

void ref::dequantize(const int8_t *in, int64_t n, float scale, int32_t zp,
                     float *out) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i)
    out[i] = rt::dequantizeValue(in[i], scale, zp);
}

void ref::quantize16(const float *in, int64_t n, float scale, int16_t *out) {
  const float inv = 1.0f / scale;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    float v = in[i] * inv;
    out[i] = v >= 32767.0f    ? 32767
             : v <= -32768.0f ? -32768
             : std::isnan(v)  ? 0
                              : (int16_t)rt::roundHalfAwayFromZero(v);
  }
}

void ref::dequantize16(const int16_t *in, int64_t n, float scale, float *out) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i)
    out[i] = scale * (float)in[i];
}

void ref::truncateToHalf(const float *in, int64_t n, uint16_t *out) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i)
    out[i] = rt::floatToHalf(in[i]);
}

void ref::truncateToBF16(const float *in, int64_t n, uint16_t *out) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i)
    out[i] = rt::floatToBF16(in[i]);
}

void ref::extendBF16(const uint16_t *in, int64_t n, float *out) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i)
    out[i] = rt::bf16ToFloat(in[i]);
}

void ref::extendHalf(const uint16_t *in, int64_t n, float *out) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i)
    out[i] = rt::halfToFloat(in[i]);
}
