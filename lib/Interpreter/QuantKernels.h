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

/// round(x * M) for an int64 `x` (a W8A16 layer's accumulator), the
/// product exact in 128 bits, rounded half away from zero, saturated to
/// int32. (The 16-bit activations have one rounding whatever --qsim-quantize
/// rounding= says: the int8 rounding modes are about 32-bit hardware.)
int32_t multiplyByFixedPoint64(int64_t x, rt::FixedPoint m);

inline int16_t saturateInt16(int64_t v) {
  return (int16_t)(v < -32768 ? -32768 : (v > 32767 ? 32767 : v));
}

/// What turns a W8A16 layer's int64 accumulator into its int16 output:
/// the Requant's constants, with int16 bounds (zero point 0).
struct Requant16 {
  std::vector<int32_t> bias;
  std::vector<rt::FixedPoint> mult, negMult;
  Activation act = Activation::linear;
  int32_t q6 = 32767; // relu6's upper bound in the output's units

  inline int16_t apply(int64_t acc, int64_t f) const {
    int64_t a = acc + bias[f];
    int64_t y = multiplyByFixedPoint64(
        a, act == Activation::leaky && a < 0 ? negMult[f] : mult[f]);
    if (act == Activation::relu || act == Activation::relu6)
      y = std::max<int64_t>(y, 0);
    if (act == Activation::relu6)
      y = std::min<int64_t>(y, q6);
    return saturateInt16(y);
  }
};

/// A W8A16 conv2d/connected: int16 input (zero point 0), int8 weights
/// (2..8 bits), int64 accumulation.
struct ConvInt16Params {
  ConvParams conv;
  std::vector<int8_t> weight;
  Requant16 requant;
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

/// The W8A16 forms: acc = sum w * x in int64 (no zero point), then
/// Requant16.
void conv2dInt16(const int16_t *in, const CHW &inShape,
                 const ConvInt16Params &p, int16_t *out, const CHW &outShape);
void connectedInt16(const int16_t *in, int64_t inputs, const ConvInt16Params &p,
                    int64_t outputs, int16_t *out);
void maxPoolInt16(const int16_t *in, const CHW &inShape, int64_t size,
                  int64_t sy, int64_t sx, int64_t padding, int16_t *out,
                  const CHW &outShape);
void upsampleInt16(const int16_t *in, const CHW &inShape, int64_t stride,
                   int16_t *out, const CHW &outShape);
/// q = clamp(round(x / scale), -32768, 32767) (the quotient as x * (1 /
/// scale) in float, ties away from zero); and back.
void quantize16(const float *in, int64_t n, float scale, int16_t *out);
void dequantize16(const int16_t *in, int64_t n, float scale, float *out);

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
/// bfloat16 (rt::floatToBF16: round to nearest even) and back (exact).
void truncateToBF16(const float *in, int64_t n, uint16_t *out);
void extendBF16(const uint16_t *in, int64_t n, float *out);

} // namespace qsim::interp::ref

#endif
