//===- QuantMath.cpp - the integer arithmetic of quantized layers --------===//

#include "qsim/Runtime/QuantMath.h"

#include <algorithm>
#include <cmath>
#include <limits>

using namespace qsim::rt;

const char *qsim::rt::roundingName(Rounding r) {
  return r == Rounding::TFLite ? "tflite" : "tosa-double";
}

bool qsim::rt::parseRounding(const std::string &s, Rounding &out) {
  if (s == "tflite")
    out = Rounding::TFLite;
  else if (s == "tosa-double")
    out = Rounding::TosaDouble;
  else
    return false;
  return true;
}

double FixedPoint::value() const {
  return multiplier == 0 ? 0.0 : std::ldexp((double)multiplier, -shift);
}

FixedPoint qsim::rt::quantizeMultiplier(double m) {
  FixedPoint fp;
  if (!(m > 0))
    return fp;
  int exp = 0;
  double q = std::frexp(m, &exp); // m = q * 2^exp, q in [0.5, 1)
  int64_t qm = (int64_t)std::llround(q * (double)(1ll << 31));
  if (qm == (1ll << 31)) {
    qm /= 2;
    ++exp;
  }
  int shift = 31 - exp;
  if (shift > 62) {
    // Too small for the representation: shift the mantissa down instead.
    int extra = shift - 62;
    if (extra >= 31)
      return fp;
    qm = (qm + (1ll << (extra - 1))) >> extra;
    shift = 62;
    if (qm == 0)
      return fp;
  }
  fp.multiplier = (int32_t)qm;
  fp.shift = shift;
  return fp;
}

int32_t qsim::rt::saturatingRoundingDoublingHighMul(int32_t a, int32_t b) {
  if (a == b && a == std::numeric_limits<int32_t>::min())
    return std::numeric_limits<int32_t>::max();
  int64_t ab = (int64_t)a * (int64_t)b;
  int64_t nudge = ab >= 0 ? (1ll << 30) : (1 - (1ll << 30));
  return (int32_t)((ab + nudge) / (1ll << 31)); // C division: toward zero
}

int32_t qsim::rt::roundingDivideByPOT(int32_t x, int exponent) {
  if (exponent <= 0)
    return x;
  const int32_t mask = (int32_t)((1ll << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

int32_t qsim::rt::multiplyByFixedPoint(int32_t x, FixedPoint m, Rounding r) {
  if (m.multiplier == 0)
    return 0;
  if (r == Rounding::TFLite) {
    int leftShift = std::max(31 - m.shift, 0);
    int rightShift = std::max(m.shift - 31, 0);
    int64_t shifted = (int64_t)x * (1ll << leftShift);
    if (shifted > std::numeric_limits<int32_t>::max())
      shifted = std::numeric_limits<int32_t>::max();
    if (shifted < std::numeric_limits<int32_t>::min())
      shifted = std::numeric_limits<int32_t>::min();
    return roundingDivideByPOT(
        saturatingRoundingDoublingHighMul((int32_t)shifted, m.multiplier),
        rightShift);
  }
  // TOSA apply_scale_32 with double rounding.
  int shift = m.shift;
  int64_t round = 1ll << (shift - 1);
  if (shift > 31)
    round += x >= 0 ? (1ll << 30) : -(1ll << 30);
  int64_t result = ((int64_t)x * m.multiplier + round) >> shift;
  if (result > std::numeric_limits<int32_t>::max())
    return std::numeric_limits<int32_t>::max();
  if (result < std::numeric_limits<int32_t>::min())
    return std::numeric_limits<int32_t>::min();
  return (int32_t)result;
}

static float pow2Ceil(float s) {
  return std::ldexp(1.0f, (int)std::ceil(std::log2((double)s)));
}

QuantChoice qsim::rt::chooseQuantParams(float lo, float hi, bool symmetric,
                                        bool pow2) {
  lo = std::min(lo, 0.0f);
  hi = std::max(hi, 0.0f);
  QuantChoice c;
  if (symmetric) {
    float m = std::max(-lo, hi);
    c.scale = m > 0 ? m / 127.0f : 1.0f;
    if (pow2)
      c.scale = pow2Ceil(c.scale);
    c.zeroPoint = 0;
    return c;
  }
  c.scale = hi > lo ? (hi - lo) / 255.0f : 1.0f;
  if (pow2)
    c.scale = pow2Ceil(c.scale);
  // lo maps to -128 (rounded), so that 0 is exactly representable.
  double zp = -128.0 - (double)lo / c.scale;
  c.zeroPoint = (int32_t)std::max(-128.0, std::min(127.0, std::round(zp)));
  return c;
}

std::vector<float> qsim::rt::weightScales(const float *w, int64_t count,
                                          int64_t channels, bool perChannel,
                                          bool pow2, int bits) {
  const float qmax = (float)weightQMax(bits);
  int64_t blocks = perChannel ? channels : 1;
  int64_t per = count / blocks;
  std::vector<float> scales(channels);
  for (int64_t b = 0; b < blocks; ++b) {
    float m = 0;
    for (int64_t i = 0; i < per; ++i)
      m = std::max(m, std::fabs(w[b * per + i]));
    float s = m > 0 ? m / qmax : 1e-8f;
    if (pow2)
      s = pow2Ceil(s);
    if (perChannel)
      scales[b] = s;
    else
      std::fill(scales.begin(), scales.end(), s);
  }
  return scales;
}

int8_t qsim::rt::quantizeWeight(float w, float scale, int bits) {
  float v = w / scale;
  const int32_t qmax = weightQMax(bits);
  // Clamped before the conversion: an edited weight may lie far outside the
  // scale's range (or be NaN), where converting to int32 is undefined.
  if (std::isnan(v))
    return 0;
  if (v >= (float)qmax)
    return (int8_t)qmax;
  if (v <= -(float)qmax)
    return (int8_t)-qmax;
  return (int8_t)roundHalfAwayFromZero(v);
}
