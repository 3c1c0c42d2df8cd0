//===- ReferenceKernels.cpp - the specification kernels ------------------===//

#include "ReferenceKernels.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

using namespace qsim;
using namespace qsim::interp;
using namespace qsim::interp::ref;

//===----------------------------------------------------------------------===//
// Activations (docs/darknet.md §R4.0). AlexeyAB evaluates in float, pjreddie
// in double where its C code does (§R0.3 lists the exceptions). AlexeyAB's
// CPU bugs (relu6/swish/mish returning 0 outside conv) are not reproduced:
// see docs/darknet.md, "Deliberate differences".
//===----------------------------------------------------------------------===//

static inline float logisticAB(float x) { return 1.f / (1.f + expf(-x)); }
static inline float logisticPJ(float x) { return (float)(1. / (1. + exp(-x))); }
static inline float tanhAB(float x) {
  return 2.f / (1.f + expf(-2.f * x)) - 1.f;
}

float ref::activateOne(float x, Activation act, Flavor flavor) {
  bool pj = flavor == Flavor::PJReddie;
  switch (act) {
  case Activation::linear:
    return x;
  case Activation::logistic:
    return pj ? logisticPJ(x) : logisticAB(x);
  case Activation::loggy:
    return pj ? (float)(2. / (1. + exp(-x)) - 1) : 2.f / (1.f + expf(-x)) - 1.f;
  case Activation::relu:
    return x * (x > 0);
  case Activation::relu6:
    return std::min(std::max(x, 0.0f), 6.0f);
  case Activation::leaky:
    return x > 0 ? x : (float)(0.1 * (double)x);
  case Activation::relie:
    return x > 0 ? x : .01f * x;
  case Activation::ramp:
    return x * (x > 0) + .1f * x;
  case Activation::elu:
    return (x >= 0) * x + (x < 0) * (expf(x) - 1);
  case Activation::selu:
    return (x >= 0) * 1.0507f * x + (x < 0) * 1.0507f * 1.6732f * (expf(x) - 1);
  case Activation::gelu:
    return (float)(0.5 * x * (1 + tanh(0.797885 * x + 0.035677 * pow(x, 3))));
  case Activation::tanh:
    if (pj) {
      double e = exp(2. * x);
      return (float)((e - 1) / (e + 1));
    }
    return tanhAB(x);
  case Activation::plse:
    if (x < -4)
      return .01f * (x + 4);
    if (x > 4)
      return .01f * (x - 4) + 1;
    return .125f * x + .5f;
  case Activation::hardtan:
    return x < -1 ? -1.f : (x > 1 ? 1.f : x);
  case Activation::lhtan:
    if (x < 0)
      return .001f * x;
    if (x > 1)
      return .001f * (x - 1) + 1;
    return x;
  case Activation::stair: {
    int n = (int)floorf(x);
    if (n % 2 == 0)
      return floorf(x / 2);
    return (x - n) + floorf(x / 2);
  }
  case Activation::swish:
    return x * logisticAB(x);
  case Activation::mish: {
    const float threshold = 20;
    float sp =
        x > threshold ? x : (x < -threshold ? expf(x) : logf(expf(x) + 1));
    return x * tanhAB(sp);
  }
  case Activation::hard_mish:
    if (x > 0)
      return x;
    if (x > -2)
      return x * x / 2 + x;
    return 0;
  case Activation::normalize_channels:
  case Activation::normalize_channels_softmax:
  case Activation::normalize_channels_softmax_maxval:
    break; // cross-channel: see activate()
  }
  return x;
}

void ref::activate(float *x, const CHW &shape, Activation act, Flavor flavor) {
  int64_t n = shape.size();
  switch (act) {
  case Activation::linear:
    return;
  case Activation::leaky:
    for (int64_t i = 0; i < n; ++i)
      x[i] = x[i] > 0 ? x[i] : (float)(0.1 * (double)x[i]);
    return;
  case Activation::relu:
    for (int64_t i = 0; i < n; ++i)
      x[i] = x[i] * (x[i] > 0);
    return;
  case Activation::normalize_channels:
  case Activation::normalize_channels_softmax:
  case Activation::normalize_channels_softmax_maxval: {
    // Per pixel across channels (AlexeyAB conv only).
    int64_t hw = shape.h * shape.w;
    for (int64_t p = 0; p < hw; ++p) {
      float maxv = -FLT_MAX;
      if (act == Activation::normalize_channels_softmax_maxval)
        for (int64_t c = 0; c < shape.c; ++c)
          maxv = std::max(maxv, x[c * hw + p]);
      float sum = 1e-4f;
      for (int64_t c = 0; c < shape.c; ++c) {
        float v = x[c * hw + p];
        if (act == Activation::normalize_channels)
          sum += v > 0 ? v : 0;
        else if (act == Activation::normalize_channels_softmax)
          sum += expf(v);
        else
          sum += expf(v - maxv);
      }
      for (int64_t c = 0; c < shape.c; ++c) {
        float &v = x[c * hw + p];
        if (act == Activation::normalize_channels)
          v = v > 0 ? v / sum : 0;
        else if (act == Activation::normalize_channels_softmax)
          v = expf(v) / sum;
        else
          v = expf(v - maxv) / sum;
      }
    }
    return;
  }
  default:
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; ++i)
      x[i] = activateOne(x[i], act, flavor);
  }
}

//===----------------------------------------------------------------------===//
// Convolution, connected, batch norm
//===----------------------------------------------------------------------===//

void ref::conv2d(const float *in, const CHW &inShape, const float *weight,
                 const float *bias, const ConvParams &p, float *out,
                 const CHW &outShape) {
  const int64_t cg = inShape.c / p.groups, fg = p.filters / p.groups;
  const int64_t ohw = outShape.h * outShape.w;
  const int64_t d = p.dilation;
  // For each filter: accumulate over (ci, ky, kx) in that order into every
  // output pixel; each output therefore sums in Darknet's im2col+GEMM order.
#pragma omp parallel for schedule(dynamic)
  for (int64_t f = 0; f < p.filters; ++f) {
    const int64_t g = f / fg;
    float *o = out + f * ohw;
    std::fill(o, o + ohw, 0.0f);
    for (int64_t ci = 0; ci < cg; ++ci) {
      const float *x = in + (g * cg + ci) * inShape.h * inShape.w;
      for (int64_t ky = 0; ky < p.kh; ++ky) {
        for (int64_t kx = 0; kx < p.kw; ++kx) {
          const float wv = weight[((f * cg + ci) * p.kh + ky) * p.kw + kx];
          const int64_t offY = ky * d - p.py * d, offX = kx * d - p.px * d;
          // Output columns whose input column is inside the image.
          int64_t ox0 = 0, ox1 = outShape.w;
          while (ox0 < ox1 && ox0 * p.sx + offX < 0)
            ++ox0;
          while (ox1 > ox0 && (ox1 - 1) * p.sx + offX >= inShape.w)
            --ox1;
          for (int64_t oy = 0; oy < outShape.h; ++oy) {
            const int64_t iy = oy * p.sy + offY;
            if (iy < 0 || iy >= inShape.h)
              continue;
            const float *xr = x + iy * inShape.w + offX;
            float *orow = o + oy * outShape.w;
            if (p.sx == 1) {
              for (int64_t ox = ox0; ox < ox1; ++ox)
                orow[ox] += wv * xr[ox];
            } else {
              for (int64_t ox = ox0; ox < ox1; ++ox)
                orow[ox] += wv * xr[ox * p.sx];
            }
          }
        }
      }
    }
    if (bias)
      for (int64_t i = 0; i < ohw; ++i)
        o[i] += bias[f];
  }
}

void ref::connected(const float *in, int64_t inputs, const float *weight,
                    const float *bias, int64_t outputs, float *out) {
#pragma omp parallel for
  for (int64_t o = 0; o < outputs; ++o) {
    float acc = 0;
    const float *w = weight + o * inputs;
    for (int64_t i = 0; i < inputs; ++i)
      acc += in[i] * w[i];
    out[o] = acc + (bias ? bias[o] : 0.0f);
  }
}

void ref::batchNorm(const float *in, const CHW &shape, const float *scale,
                    const float *mean, const float *variance, const float *bias,
                    Flavor flavor, float *out) {
  const int64_t hw = shape.h * shape.w;
#pragma omp parallel for
  for (int64_t c = 0; c < shape.c; ++c) {
    // AlexeyAB: (x - m) / sqrt(v + 1e-5f) with the sqrt and the division in
    // double; pjreddie: (x - m) / (sqrt(v) + 1e-6f), also in double.
    double sd = flavor == Flavor::AlexeyAB
                    ? std::sqrt((double)(variance[c] + .00001f))
                    : std::sqrt((double)variance[c]) + .000001f;
    for (int64_t i = 0; i < hw; ++i) {
      float t = in[c * hw + i] - mean[c];
      t = (float)((double)t / sd);
      t = t * scale[c];
      out[c * hw + i] = t + bias[c];
    }
  }
}

//===----------------------------------------------------------------------===//
// Pooling and data movement
//===----------------------------------------------------------------------===//

void ref::maxPool(const float *in, const CHW &inShape, int64_t size, int64_t sy,
                  int64_t sx, int64_t padding, float *out,
                  const CHW &outShape) {
  const int64_t off = -(padding / 2);
#pragma omp parallel for
  for (int64_t c = 0; c < outShape.c; ++c) {
    const float *x = in + c * inShape.h * inShape.w;
    for (int64_t oy = 0; oy < outShape.h; ++oy)
      for (int64_t ox = 0; ox < outShape.w; ++ox) {
        float maxv = -FLT_MAX;
        for (int64_t n = 0; n < size; ++n)
          for (int64_t m = 0; m < size; ++m) {
            int64_t iy = oy * sy + off + n, ix = ox * sx + off + m;
            if (iy < 0 || iy >= inShape.h || ix < 0 || ix >= inShape.w)
              continue;
            float v = x[iy * inShape.w + ix];
            if (v > maxv)
              maxv = v;
          }
        out[(c * outShape.h + oy) * outShape.w + ox] = maxv;
      }
  }
}

void ref::avgPool(const float *in, const CHW &inShape, float *out) {
  const int64_t hw = inShape.h * inShape.w;
  for (int64_t c = 0; c < inShape.c; ++c) {
    float sum = 0;
    for (int64_t i = 0; i < hw; ++i)
      sum += in[c * hw + i];
    out[c] = sum / (float)hw;
  }
}

void ref::routeSlice(const float *in, const CHW &inShape, int64_t groups,
                     int64_t groupId, float *out, int64_t outChannelOffset) {
  const int64_t hw = inShape.h * inShape.w;
  const int64_t part = inShape.c / groups;
  std::memcpy(out + outChannelOffset * hw, in + groupId * part * hw,
              part * hw * sizeof(float));
}

void ref::shortcut(const std::vector<const float *> &ins,
                   const std::vector<CHW> &shapes, Activation act,
                   Flavor flavor, float *out) {
  const int64_t n = shapes[0].size();
  // Flat index semantics (AlexeyAB): `from` layers contribute to the first
  // min(n, their size) values, i.e. the common channel prefix.
  for (int64_t i = 0; i < n; ++i) {
    float sum = ins[0][i];
    for (size_t k = 1; k < ins.size(); ++k)
      if (i < shapes[k].size())
        sum += ins[k][i];
    out[i] = sum;
  }
  activate(out, shapes[0], act, flavor);
}

void ref::upsample(const float *in, const CHW &inShape, int64_t stride,
                   float scale, float *out, const CHW &outShape) {
  if (stride > 0) {
    for (int64_t c = 0; c < outShape.c; ++c)
      for (int64_t y = 0; y < outShape.h; ++y)
        for (int64_t x = 0; x < outShape.w; ++x)
          out[(c * outShape.h + y) * outShape.w + x] =
              scale * in[(c * inShape.h + y / stride) * inShape.w + x / stride];
    return;
  }
  // Darknet's downsample adds scale*value of every fine pixel, in raster
  // order, into its coarse pixel (a sum, not a mean).
  const int64_t d = -stride;
  std::fill(out, out + outShape.size(), 0.0f);
  for (int64_t c = 0; c < inShape.c; ++c)
    for (int64_t y = 0; y < inShape.h; ++y)
      for (int64_t x = 0; x < inShape.w; ++x)
        out[(c * outShape.h + y / d) * outShape.w + x / d] +=
            scale * in[(c * inShape.h + y) * inShape.w + x];
}

void ref::reorg(const float *in, const CHW &inShape, int64_t s, bool reverse,
                float *out) {
  reorgCpu(in, inShape, s, reverse, out);
}

void ref::crop(const float *in, const CHW &inShape, const CHW &outShape,
               float scale, float shift, float *out) {
  // forward_crop_layer with net.train = 0: no flip, centred offsets.
  const int64_t dy = (inShape.h - outShape.h) / 2;
  const int64_t dx = (inShape.w - outShape.w) / 2;
  for (int64_t c = 0; c < outShape.c; ++c)
    for (int64_t y = 0; y < outShape.h; ++y)
      for (int64_t x = 0; x < outShape.w; ++x)
        out[(c * outShape.h + y) * outShape.w + x] =
            in[(c * inShape.h + y + dy) * inShape.w + x + dx] * scale + shift;
}

void ref::scaleChannels(const float *scales, const float *features,
                        const CHW &shape, bool scaleWH, Activation act,
                        Flavor flavor, float *out) {
  const int64_t hw = shape.h * shape.w;
  for (int64_t c = 0; c < shape.c; ++c)
    for (int64_t i = 0; i < hw; ++i)
      out[c * hw + i] =
          (scaleWH ? scales[i] : scales[c]) * features[c * hw + i];
  activate(out, shape, act, flavor);
}

/// Darknet's softmax(): exp in double, stored as float, sum in float.
static void softmaxBlock(const float *in, int64_t n, int64_t stride, float temp,
                         float *out) {
  float largest = -FLT_MAX;
  for (int64_t i = 0; i < n; ++i)
    largest = std::max(largest, in[i * stride]);
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    float e = (float)exp(in[i * stride] / temp - largest / temp);
    sum += e;
    out[i * stride] = e;
  }
  for (int64_t i = 0; i < n; ++i)
    out[i * stride] /= sum;
}

void ref::softmax(const float *in, int64_t n, int64_t groups, float temperature,
                  float *out) {
  const int64_t block = n / groups;
  for (int64_t g = 0; g < groups; ++g)
    softmaxBlock(in + g * block, block, 1, temperature, out + g * block);
}

//===----------------------------------------------------------------------===//
// Heads
//===----------------------------------------------------------------------===//

void ref::yolo(const float *in, const CHW &shape, const YoloParams &p,
               Flavor flavor, float *out) {
  const int64_t hw = shape.h * shape.w;
  const int64_t entries = p.classes + 5;
  // scal_add_cpu(x, ALPHA = S, BETA = -0.5*(S-1)): S-1 in float, the
  // product in double, passed as float.
  const float alpha = p.scaleXY;
  const float beta = (float)(-0.5 * (double)(p.scaleXY - 1.0f));
  // One (anchor, entry) plane per iteration; planes are independent.
#pragma omp parallel for schedule(static) if (p.n * entries * hw > 16384)
  for (int64_t plane = 0; plane < p.n * entries; ++plane) {
    const int64_t e = plane % entries;
    const float *src = in + plane * hw;
    float *dst = out + plane * hw;
    if (flavor == Flavor::PJReddie) {
      // Logistic on x, y, objectness and classes; pjreddie ignores
      // scale_x_y.
      if (e == 2 || e == 3)
        std::memcpy(dst, src, hw * sizeof(float));
      else
        for (int64_t i = 0; i < hw; ++i)
          dst[i] = logisticPJ(src[i]);
      continue;
    }
    if (e == 2 || e == 3 || p.newCoords)
      std::memcpy(dst, src, hw * sizeof(float));
    else
      for (int64_t i = 0; i < hw; ++i)
        dst[i] = logisticAB(src[i]);
    if (e < 2)
      for (int64_t i = 0; i < hw; ++i)
        dst[i] = dst[i] * alpha + beta;
  }
}

void ref::region(const float *in, const CHW &shape, const RegionParams &p,
                 Flavor flavor, float *out) {
  const int64_t hw = shape.h * shape.w;
  const int64_t size = p.coords + p.classes + 1;
  if (flavor == Flavor::AlexeyAB) {
    // Transpose CHW -> HWC, logistic on objectness (offset 4), softmax over
    // the classes (offset 5); box coordinates stay raw.
    const int64_t layers = size * p.num;
    for (int64_t c = 0; c < layers; ++c)
      for (int64_t i = 0; i < hw; ++i)
        out[i * layers + c] = in[c * hw + i];
    for (int64_t i = 0; i < hw * p.num; ++i) {
      float *e = out + size * i;
      e[4] = logisticAB(e[4]);
      if (p.softmax)
        softmaxBlock(e + 5, p.classes, 1, 1.0f, e + 5);
    }
    return;
  }
  std::memcpy(out, in, shape.size() * sizeof(float));
  for (int64_t a = 0; a < p.num; ++a) {
    float *base = out + a * size * hw;
    const float *src = in + a * size * hw;
    for (int64_t i = 0; i < 2 * hw; ++i)
      base[i] = logisticPJ(base[i]);
    for (int64_t i = 0; i < hw; ++i)
      base[p.coords * hw + i] = logisticPJ(base[p.coords * hw + i]);
    if (p.softmax) {
      for (int64_t i = 0; i < hw; ++i)
        softmaxBlock(src + (p.coords + 1) * hw + i, p.classes, hw, 1.0f,
                     base + (p.coords + 1) * hw + i);
    } else {
      for (int64_t i = (p.coords + 1) * hw; i < size * hw; ++i)
        base[i] = logisticPJ(base[i]);
    }
  }
}

//===----------------------------------------------------------------------===//
// Layers of the Darknet zoo (docs/darknet.md §R4.16-§R4.21)
//===----------------------------------------------------------------------===//

void ref::local(const float *in, const CHW &inShape, const float *weight,
                const float *bias, int64_t size, int64_t stride, int64_t pad,
                float *out, const CHW &outShape) {
  // forward_local_layer: the output starts as the biases, then one gemm per
  // position adds weight[p] (filters x K) times column p of im2col.
  const int64_t locations = outShape.h * outShape.w;
  const int64_t k = inShape.c * size * size;
#pragma omp parallel for schedule(static) if (locations * outShape.c * k >     \
                                              65536)
  for (int64_t p = 0; p < locations; ++p) {
    const int64_t oy = p / outShape.w, ox = p % outShape.w;
    for (int64_t f = 0; f < outShape.c; ++f) {
      const float *w = weight + (p * outShape.c + f) * k;
      float sum = bias ? bias[f * locations + p] : 0.0f;
      for (int64_t c = 0; c < inShape.c; ++c)
        for (int64_t ky = 0; ky < size; ++ky)
          for (int64_t kx = 0; kx < size; ++kx) {
            int64_t y = oy * stride - pad + ky, x = ox * stride - pad + kx;
            float v = (y < 0 || y >= inShape.h || x < 0 || x >= inShape.w)
                          ? 0.0f
                          : in[(c * inShape.h + y) * inShape.w + x];
            sum += w[(c * size + ky) * size + kx] * v;
          }
      out[f * locations + p] = sum;
    }
  }
}

void ref::localAvgPool(const float *in, const CHW &inShape, int64_t size,
                       int64_t sy, int64_t sx, int64_t padding, float *out,
                       const CHW &outShape) {
  // forward_local_avgpool_layer: float sum of the valid taps in window
  // order, divided by their count.
  const int64_t off = -(padding / 2);
  for (int64_t c = 0; c < outShape.c; ++c)
    for (int64_t oy = 0; oy < outShape.h; ++oy)
      for (int64_t ox = 0; ox < outShape.w; ++ox) {
        float sum = 0.0f;
        int count = 0;
        for (int64_t n = 0; n < size; ++n)
          for (int64_t m = 0; m < size; ++m) {
            int64_t y = off + oy * sy + n, x = off + ox * sx + m;
            if (y < 0 || y >= inShape.h || x < 0 || x >= inShape.w)
              continue;
            sum += in[(c * inShape.h + y) * inShape.w + x];
            ++count;
          }
        out[(c * outShape.h + oy) * outShape.w + ox] = sum / count;
      }
}

void ref::reorg3d(const float *in, const CHW &inShape, int64_t s, bool reverse,
                  float *out, const CHW &outShape) {
  // AlexeyAB's reorg_layer.c calls reorg_cpu with the *output* dims.
  (void)inShape;
  reorgCpu(in, outShape, s, reverse, out);
}

void ref::sam(const float *in, const float *features, const CHW &shape,
              Activation act, Flavor flavor, float *out) {
  for (int64_t i = 0; i < shape.size(); ++i)
    out[i] = in[i] * features[i];
  activate(out, shape, act, flavor);
}

void ref::detection(const float *in, int64_t n, int64_t side, int64_t classes,
                    bool softmax, float *out) {
  std::memcpy(out, in, n * sizeof(float));
  if (softmax)
    for (int64_t cell = 0; cell < side * side; ++cell)
      softmaxBlock(in + cell * classes, classes, 1, 1.0f, out + cell * classes);
}

void ref::gaussianYolo(const float *in, const CHW &shape, int64_t classes,
                       int64_t n, float scaleXY, float *out) {
  const int64_t hw = shape.h * shape.w;
  const int64_t entries = classes + 9;
  const float alpha = scaleXY;
  const float beta = (float)(-0.5 * (double)(scaleXY - 1.0f));
  for (int64_t plane = 0; plane < n * entries; ++plane) {
    const int64_t e = plane % entries;
    const float *src = in + plane * hw;
    float *dst = out + plane * hw;
    if (e == 4 || e == 6) { // mu_w, mu_h stay raw
      std::memcpy(dst, src, hw * sizeof(float));
      continue;
    }
    for (int64_t i = 0; i < hw; ++i)
      dst[i] = logisticAB(src[i]);
    if (e == 0 || e == 2)
      for (int64_t i = 0; i < hw; ++i)
        dst[i] = dst[i] * alpha + beta;
  }
}

void ref::binarizeWeights(const float *weights, int64_t filters, int64_t size,
                          float *out) {
  for (int64_t f = 0; f < filters; ++f) {
    float mean = 0.0f;
    for (int64_t i = 0; i < size; ++i)
      mean += std::fabs(weights[f * size + i]);
    mean = mean / size;
    for (int64_t i = 0; i < size; ++i)
      out[f * size + i] = weights[f * size + i] > 0 ? mean : -mean;
  }
}

void ref::binarizeInput(const float *in, int64_t n, float *out) {
  for (int64_t i = 0; i < n; ++i)
    out[i] = in[i] > 0 ? 1.0f : -1.0f;
}
