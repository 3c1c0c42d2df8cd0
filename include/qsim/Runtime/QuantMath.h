//===- QuantMath.h - the integer arithmetic of quantized layers -*- C++ -*-===//
//
// The exact arithmetic every int8 kernel (reference, fast, generated ARM
// code) must reproduce; docs/quantization.md gives the formulas.
//
//   real = scale * (q - zeroPoint),  q in [-128, 127]
//   quantize(x)  = clamp(zp + roundHalfAway(x * (1/scale)), -128, 127)
//                  (the product in float, 1/scale computed in float)
//   dequantize(q) = scale * (float)(q - zp)
//   a real multiplier M > 0 is multiplier * 2^-shift with multiplier in
//   [2^30, 2^31) (Q31) and shift the total right shift.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_RUNTIME_QUANTMATH_H
#define QSIM_RUNTIME_QUANTMATH_H

#include <cstdint>
#include <string>
#include <vector>

namespace qsim::rt {

enum class Rounding {
  /// gemmlowp/TFLite MultiplyByQuantizedMultiplier: saturating rounding
  /// doubling high multiply, then rounding divide by a power of two, both
  /// rounding half away from zero.
  TFLite,
  /// TOSA `rescale` (apply_scale_32) with double_round = true.
  TosaDouble,
};
const char *roundingName(Rounding r);
bool parseRounding(const std::string &s, Rounding &out);

struct FixedPoint {
  int32_t multiplier = 0; ///< Q31 in [2^30, 2^31), or 0 for M = 0
  int32_t shift = 0;      ///< total right shift: M = multiplier * 2^-shift
  double value() const;
};

/// Nearest fixed-point representation of `m` (>= 0). Multipliers too small
/// to represent with shift <= 62 become 0.
FixedPoint quantizeMultiplier(double m);

/// round(x * M) for the given representation and rounding mode.
int32_t multiplyByFixedPoint(int32_t x, FixedPoint m, Rounding r);

/// gemmlowp's building blocks (exposed for tests and generated code).
int32_t saturatingRoundingDoublingHighMul(int32_t a, int32_t b);
int32_t roundingDivideByPOT(int32_t x, int exponent);

inline int32_t roundHalfAwayFromZero(float v) {
  return (int32_t)(v >= 0 ? v + 0.5f : v - 0.5f);
}

inline int8_t saturateInt8(int32_t v) {
  return (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
}

/// q = clamp(zp + round(x * invScale)); `invScale` = 1.0f / scale.
inline int8_t quantizeValue(float x, float invScale, int32_t zeroPoint) {
  float v = x * invScale;
  // Beyond int32 the clamp decides anyway; avoid undefined conversions.
  if (v > 1e9f)
    return 127;
  if (v < -1e9f)
    return -128;
  return saturateInt8(zeroPoint + roundHalfAwayFromZero(v));
}

inline float dequantizeValue(int8_t q, float scale, int32_t zeroPoint) {
  return scale * (float)((int32_t)q - zeroPoint);
}

/// Int8 quantization parameters covering [lo, hi] (extended to contain 0).
struct QuantChoice {
  float scale = 1.0f;
  int32_t zeroPoint = 0;
};
/// symmetric: zero point 0, scale = max|.| / 127; asymmetric: 256 levels
/// over [lo, hi]; pow2: the scale rounded up to a power of two.
QuantChoice chooseQuantParams(float lo, float hi, bool symmetric, bool pow2);

/// The largest weight integer of a `bits`-bit symmetric grid (2..8):
/// 2^(bits-1) - 1, i.e. 127 for 8 bits, 7 for 4 bits, 1 for 2 bits. Narrow
/// weights are stored in i8 with this range.
inline int32_t weightQMax(int bits) { return (1 << (bits - 1)) - 1; }

/// Symmetric per-channel (or per-tensor) weight scales: max|w| / qmax over
/// each of `channels` contiguous blocks (tiny non-zero for all-zero
/// blocks); qmax = weightQMax(bits).
std::vector<float> weightScales(const float *w, int64_t count, int64_t channels,
                                bool perChannel, bool pow2, int bits = 8);
/// The integer value of weight `w` at `scale`: round(w / scale), ties away
/// from zero (the quotient in float), clamped to [-qmax, qmax] with qmax =
/// weightQMax(bits); NaN gives 0. The one weight rounding: the quantizer
/// and a session's weight edits both use it, so an edited weight stores
/// what --qsim-quantize would.
int8_t quantizeWeight(float w, float scale, int bits = 8);

} // namespace qsim::rt

#endif
