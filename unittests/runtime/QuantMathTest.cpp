//===- QuantMathTest.cpp - fixed-point requantization ---------------------===//

#include "qsim/Runtime/QuantMath.h"

#include <cmath>
#include <gtest/gtest.h>
#include <limits>

using namespace qsim::rt;

TEST(QuantMath, MultiplierRepresentation) {
  for (double m : {1e-6, 0.0123, 0.25, 0.5, 0.999999, 1.0, 1.5, 37.0}) {
    FixedPoint fp = quantizeMultiplier(m);
    EXPECT_GE(fp.multiplier, 1 << 30) << m;
    EXPECT_LE((int64_t)fp.multiplier, (1ll << 31) - 1) << m;
    EXPECT_NEAR(fp.value() / m, 1.0, 1e-9) << m;
  }
  FixedPoint half = quantizeMultiplier(0.5);
  EXPECT_EQ(half.multiplier, 1 << 30);
  EXPECT_EQ(half.shift, 31);
  EXPECT_EQ(quantizeMultiplier(0.0).multiplier, 0);
  // Just below 1.0 rounds up to 2^31, renormalised to 2^30 * 2^-30.
  FixedPoint one = quantizeMultiplier(1.0 - 1e-12);
  EXPECT_EQ(one.multiplier, 1 << 30);
  EXPECT_EQ(one.shift, 30);
}

TEST(QuantMath, GemmlowpRoundingHalfAwayFromZero) {
  EXPECT_EQ(roundingDivideByPOT(5, 1), 3);   // 2.5 -> 3
  EXPECT_EQ(roundingDivideByPOT(-5, 1), -3); // -2.5 -> -3
  EXPECT_EQ(roundingDivideByPOT(7, 2), 2);   // 1.75 -> 2
  EXPECT_EQ(roundingDivideByPOT(-6, 2), -2); // -1.5 -> -2
  EXPECT_EQ(roundingDivideByPOT(6, 2), 2);   // 1.5 -> 2
  EXPECT_EQ(saturatingRoundingDoublingHighMul(INT32_MIN, INT32_MIN), INT32_MAX);
  // gemmlowp's doubling high multiply nudges by +-2^30 and truncates the
  // division toward zero: +1.5 -> 2 but -1.5 -> -1 (exactly as TFLite).
  FixedPoint half = quantizeMultiplier(0.5);
  EXPECT_EQ(multiplyByFixedPoint(3, half, Rounding::TFLite), 2);
  EXPECT_EQ(multiplyByFixedPoint(-3, half, Rounding::TFLite), -1);
  EXPECT_EQ(multiplyByFixedPoint(4, half, Rounding::TFLite), 2);
  // With a right shift the final rounding is half away from zero:
  // -6 * 0.25: SRDHM(-6, 2^30) = -3, then -3 / 2 = -1.5 -> -2.
  FixedPoint quarter = quantizeMultiplier(0.25);
  EXPECT_EQ(multiplyByFixedPoint(-6, quarter, Rounding::TFLite), -2);
  EXPECT_EQ(multiplyByFixedPoint(6, quarter, Rounding::TFLite), 2);
}

TEST(QuantMath, TosaDoubleRoundingMatchesSpecFormula) {
  // TOSA apply_scale_32: (x*m + round) >> shift, round = 2^(shift-1) plus
  // +-2^30 when shift > 31. Ties at the last step round up.
  FixedPoint half = quantizeMultiplier(0.5); // m = 2^30, shift 31
  EXPECT_EQ(multiplyByFixedPoint(3, half, Rounding::TosaDouble), 2);
  EXPECT_EQ(multiplyByFixedPoint(-3, half, Rounding::TosaDouble), -1);
  FixedPoint quarter = quantizeMultiplier(0.25); // shift 32: double round
  // 6 * 0.25 = 1.5: (6*2^30 + 2^31 + 2^30) >> 32 = (7*2^30 + 2^31) >> 32 = 2
  EXPECT_EQ(multiplyByFixedPoint(6, quarter, Rounding::TosaDouble), 2);
  EXPECT_EQ(multiplyByFixedPoint(-6, quarter, Rounding::TosaDouble), -2);
}

TEST(QuantMath, RequantizationIsCloseToRealProduct) {
  // Both modes round twice (at bit 31, then at the final shift), so a
  // result can be off the exact product by a little more than half a unit
  // but never by a unit, and the errors are unbiased.
  for (double m : {0.00037, 0.013, 0.31, 0.77, 1.9}) {
    FixedPoint fp = quantizeMultiplier(m);
    for (Rounding r : {Rounding::TFLite, Rounding::TosaDouble}) {
      double sum = 0;
      int n = 0;
      for (int32_t x = -200000; x <= 200000; x += 997) {
        double err = multiplyByFixedPoint(x, fp, r) - x * fp.value();
        EXPECT_LT(std::fabs(err), 1.0) << x << " * " << m;
        sum += err;
        ++n;
      }
      EXPECT_LT(std::fabs(sum / n), 0.05) << m;
    }
  }
}

TEST(QuantMath, ChooseParamsContainsZeroExactly) {
  QuantChoice a = chooseQuantParams(-1.0f, 3.0f, false, false);
  EXPECT_FLOAT_EQ(a.scale, 4.0f / 255.0f);
  EXPECT_EQ(a.zeroPoint, -64); // -128 + 1/(4/255) = -64.25 -> -64
  EXPECT_EQ(quantizeValue(0.0f, 1.0f / a.scale, a.zeroPoint), a.zeroPoint);
  QuantChoice pos = chooseQuantParams(0.5f, 2.0f, false, false); // lo -> 0
  EXPECT_EQ(pos.zeroPoint, -128);
  QuantChoice sym = chooseQuantParams(-1.0f, 3.0f, true, false);
  EXPECT_EQ(sym.zeroPoint, 0);
  EXPECT_FLOAT_EQ(sym.scale, 3.0f / 127.0f);
  QuantChoice p2 = chooseQuantParams(-1.0f, 3.0f, true, true);
  EXPECT_FLOAT_EQ(p2.scale, 1.0f / 32.0f); // 3/127 = 0.0236 -> 2^-5
}

TEST(QuantMath, QuantizeRoundsHalfAwayAndSaturates) {
  EXPECT_EQ(quantizeValue(0.5f, 1.0f, 0), 1);
  EXPECT_EQ(quantizeValue(-0.5f, 1.0f, 0), -1);
  EXPECT_EQ(quantizeValue(1000.0f, 1.0f, 0), 127);
  EXPECT_EQ(quantizeValue(-1000.0f, 1.0f, 0), -128);
  EXPECT_EQ(quantizeValue(2.0f, 1.0f, 126), 127);
  EXPECT_FLOAT_EQ(dequantizeValue(-64, 0.5f, -66), 1.0f);
}

TEST(QuantMath, WeightScalesPerChannelAndTensor) {
  float w[6] = {0.5f, -1.0f, 0.25f, 2.0f, -0.1f, 0.0f};
  auto pc = weightScales(w, 6, 2, true, false);
  EXPECT_FLOAT_EQ(pc[0], 1.0f / 127);
  EXPECT_FLOAT_EQ(pc[1], 2.0f / 127);
  auto pt = weightScales(w, 6, 2, false, false);
  EXPECT_FLOAT_EQ(pt[0], 2.0f / 127);
  EXPECT_FLOAT_EQ(pt[1], 2.0f / 127);
  EXPECT_EQ(quantizeWeight(-1.0f, pc[0]), -127);
  EXPECT_EQ(quantizeWeight(5.0f, pc[0]), 127);
}

TEST(QuantMath, WeightRoundingTiesAwayFromZeroAndClamps) {
  // 1/128 is exact, so w / scale is exactly the tie.
  float s = 1.0f / 128;
  EXPECT_EQ(quantizeWeight(2.5f * s, s), 3);
  EXPECT_EQ(quantizeWeight(-2.5f * s, s), -3);
  EXPECT_EQ(quantizeWeight(3.5f * s, s), 4);
  EXPECT_EQ(quantizeWeight(2.25f * s, s), 2);
  EXPECT_EQ(quantizeWeight(126.5f * s, s), 127);
  EXPECT_EQ(quantizeWeight(-128.0f * s, s), -127);
  // Far outside int32 and not a number: clamped, never undefined.
  EXPECT_EQ(quantizeWeight(1e30f, s), 127);
  EXPECT_EQ(quantizeWeight(-1e30f, s), -127);
  EXPECT_EQ(quantizeWeight(std::numeric_limits<float>::infinity(), s), 127);
  EXPECT_EQ(quantizeWeight(std::nanf(""), s), 0);
}

TEST(QuantMath, NarrowWeightGrids) {
  // weight-bits=N: integers in [-(2^(N-1)-1), 2^(N-1)-1], scale max|w|/qmax.
  EXPECT_EQ(weightQMax(8), 127);
  EXPECT_EQ(weightQMax(4), 7);
  EXPECT_EQ(weightQMax(3), 3);
  EXPECT_EQ(weightQMax(2), 1);
  const float w[6] = {0.5f, -1.0f, 0.25f, 2.0f, -0.3f, 0.1f};
  auto pc = weightScales(w, 6, 2, true, false, 4);
  EXPECT_FLOAT_EQ(pc[0], 1.0f / 7);
  EXPECT_FLOAT_EQ(pc[1], 2.0f / 7);
  auto p2 = weightScales(w, 6, 2, false, false, 2);
  EXPECT_FLOAT_EQ(p2[0], 2.0f);
  // Nearest grid point, ties away from zero, clamped to the narrow range.
  EXPECT_EQ(quantizeWeight(-1.0f, pc[0], 4), -7);
  EXPECT_EQ(quantizeWeight(0.45f, pc[0], 4), 3);  // 3.15 -> 3
  EXPECT_EQ(quantizeWeight(0.25f, pc[0], 4), 2);  // 1.75 -> 2
  EXPECT_EQ(quantizeWeight(-0.3f, pc[1], 4), -1); // -1.05 -> -1
  EXPECT_EQ(quantizeWeight(5.0f, pc[0], 4), 7);
  EXPECT_EQ(quantizeWeight(-1e30f, pc[0], 4), -7);
  EXPECT_EQ(quantizeWeight(0.9f, p2[0], 2), 0); // 0.45 -> 0
  EXPECT_EQ(quantizeWeight(1.0f, p2[0], 2), 1); // the tie 0.5 -> 1
  EXPECT_EQ(quantizeWeight(-3.0f, p2[0], 2), -1);
  // Every rounded weight is within half a step of the float weight.
  for (int bits = 2; bits <= 8; ++bits) {
    auto s = weightScales(w, 6, 1, false, false, bits);
    for (float v : w)
      EXPECT_LE(std::fabs(quantizeWeight(v, s[0], bits) * s[0] - v),
                0.5f * s[0] + 1e-6f)
          << bits << " bits, weight " << v;
  }
}
