//===- QuantKernels.h - int8 reference kernels (internal) -------*- C++ -*-===//
//
// Integer-only layers: the specification the fast kernels and the generated
// ARM code reproduce bit for bit. Tensors are int8 C x H x W with a per-tensor
// scale and zero point; docs/quantization.md has the formulas.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_LIB_INTERPRETER_QUANTKERNELS_H
#define QSIM_LIB_INTERPRETER_QUANTKERNELS_H

#include "ReferenceKernels.h"
#include "qsim/Runtime/QuantMath.h"
#include "qsim/Runtime/Tensor.h"

namespace qsim::interp::ref {

/// What turns an int32 accumulator into the int8 output of a conv or
/// connected layer, per output channel.
struct Requant {
  std::vector<int32_t> bias;                 // int32, added first
  std::vector<rt::FixedPoint> mult, negMult; // negMult: leaky only
  Activation act = Activation::linear;
  int32_t zpOut = 0;
  int32_t q6 = 127; // relu6's upper bound in the output's units
  rt::Rounding rounding = rt::Rounding::TFLite;

  /// Output value of channel `f` for accumulator `acc` (bias not added).
  inline int8_t apply(int32_t acc, int64_t f) const {
    int64_t a = (int64_t)acc + bias[f];
    int32_t a32 =
        (int32_t)std::max<int64_t>(INT32_MIN, std::min<int64_t>(INT32_MAX, a));
    int32_t y;
    if (act == Activation::leaky && a32 < 0)
      y = rt::multiplyByFixedPoint(a32, negMult[f], rounding);
    else
      y = rt::multiplyByFixedPoint(a32, mult[f], rounding);
    y += zpOut;
    if (act == Activation::relu || act == Activation::relu6)
      y = std::max(y, zpOut);
    if (act == Activation::relu6)
      y = std::min(y, q6);
    return rt::saturateInt8(y);
  }
};

struct ConvInt8Params {
  ConvParams conv;
  std::vector<int8_t> weight;
  int32_t zpIn = 0;
  int accumulatorBits = 32; // 16: saturating int16 accumulation
  Requant requant;
};

/// acc[f][oy][ox] = sum w * (x - zpIn) over in-bounds taps (padding is the
/// real value 0), in (ci, ky, kx) order; then Requant.
void conv2dInt8(const int8_t *in, const CHW &inShape, const ConvInt8Params &p,
                int8_t *out, const CHW &outShape);
void connectedInt8(const int8_t *in, int64_t inputs, const ConvInt8Params &p,
                   int64_t outputs, int8_t *out);
/// Requantizes int32 accumulators (bias not yet added) laid out channels
/// last (pixel-major, `channels` per pixel) or channels first.
void requantize(const int32_t *acc, int64_t pixels, int64_t channels,
                bool channelsLast, const Requant &r, int8_t *out);

void maxPoolInt8(const int8_t *in, const CHW &inShape, int64_t size, int64_t sy,
                 int64_t sx, int64_t padding, int8_t *out, const CHW &outShape);
/// Route slice of one input, requantized to the output's parameters.
void routeSliceInt8(const int8_t *in, const CHW &inShape, int64_t groups,
                    int64_t groupId, int32_t zpIn, int32_t zpOut,
                    rt::FixedPoint m, bool identity, rt::Rounding rounding,
                    int8_t *out, int64_t outChannelOffset);
struct ShortcutInt8Params {
  std::vector<int32_t> zp;          // per input
  std::vector<rt::FixedPoint> mult; // per input: 2^16 * s_i / s_out
  rt::FixedPoint negMult;           // leaky: 0.1
  Activation act = Activation::linear;
  int32_t zpOut = 0;
  rt::Rounding rounding = rt::Rounding::TFLite;

  /// Input k's value x in the common scale (kShortcutFractionBits extra
  /// fractional bits).
  int32_t term(size_t k, int8_t x) const {
    return rt::multiplyByFixedPoint((int32_t)x - zp[k], mult[k], rounding);
  }
  /// The output for the sum of the terms: activation, then back to int8.
  int8_t finish(int32_t sum) const;
};
/// Number of extra fractional bits of the shortcut's common scale.
constexpr int kShortcutFractionBits = 16;
void shortcutInt8(const std::vector<const int8_t *> &ins,
                  const std::vector<CHW> &shapes, const ShortcutInt8Params &p,
                  int8_t *out);
void upsampleInt8(const int8_t *in, const CHW &inShape, int64_t stride,
                  int8_t *out, const CHW &outShape);
void reorgInt8(const int8_t *in, const CHW &inShape, int64_t stride,
               bool reverse, int8_t *out);

/// Boundary casts.
void quantize(const float *in, int64_t n, float scale, int32_t zp, int8_t *out);
void dequantize(const int8_t *in, int64_t n, float scale, int32_t zp,
                float *out);
void truncateToHalf(const float *in, int64_t n, uint16_t *out);
void extendHalf(const uint16_t *in, int64_t n, float *out);

} // namespace qsim::interp::ref

#endif
