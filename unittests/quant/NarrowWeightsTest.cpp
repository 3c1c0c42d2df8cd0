//===- NarrowWeightsTest.cpp - 2..8-bit weights in the int8 kernels -------===//
//
// --qsim-quantize weight-bits=N stores weights on the grid [-(2^(N-1)-1),
// 2^(N-1)-1] in i8 and runs them with the int8 reference kernels. The
// kernels' integer arithmetic must give the float convolution of the
// values the integers stand for (dequantized input and weights, float
// bias), requantized: within one output step (half a step of rounding
// plus the fixed-point multiplier's and the int32 bias's rounding).
//
//===----------------------------------------------------------------------===//

#include "QuantKernels.h"

#include "qsim/Runtime/QuantMath.h"

#include <algorithm>
#include <cmath>
#include <gtest/gtest.h>
#include <random>

using namespace qsim;
using namespace qsim::interp;

namespace {

using shapes::CHW;

struct NarrowConvCase {
  int bits;
  bool perChannel;
  Activation act;
};

class NarrowWeightConv : public ::testing::TestWithParam<NarrowConvCase> {};

TEST_P(NarrowWeightConv, IntegerKernelMatchesFloatReference) {
  const NarrowConvCase &tc = GetParam();
  std::mt19937 rng(7 + tc.bits);
  std::uniform_real_distribution<float> uw(-0.5f, 0.5f), ux(-1.0f, 2.0f);
  const CHW inS{3, 6, 5}, outS{4, 6, 5};
  ref::ConvInt8Params p;
  p.conv.filters = outS.c;
  p.conv.kh = p.conv.kw = 3;
  p.conv.py = p.conv.px = 1;
  const int64_t per = inS.c * 9;
  std::vector<float> w(outS.c * per), bias(outS.c);
  for (float &v : w)
    v = uw(rng);
  for (float &v : bias)
    v = uw(rng);
  // Input: real range [-1, 2], asymmetric int8.
  rt::QuantChoice qin = rt::chooseQuantParams(-1.0f, 2.0f, false, false);
  std::vector<int8_t> x(inS.size());
  for (int8_t &v : x)
    v = rt::quantizeValue(ux(rng), 1.0f / qin.scale, qin.zeroPoint);
  std::vector<float> sw = rt::weightScales(w.data(), w.size(), outS.c,
                                           tc.perChannel, false, tc.bits);
  const int32_t qmax = rt::weightQMax(tc.bits);
  p.weight.resize(w.size());
  for (int64_t f = 0; f < outS.c; ++f)
    for (int64_t i = 0; i < per; ++i) {
      p.weight[f * per + i] =
          rt::quantizeWeight(w[f * per + i], sw[f], tc.bits);
      ASSERT_LE(std::abs(p.weight[f * per + i]), qmax);
    }
  // The float reference: the dequantized values through a float conv.
  std::vector<float> xf(x.size()), wf(w.size()), ref(outS.size());
  for (size_t i = 0; i < x.size(); ++i)
    xf[i] = rt::dequantizeValue(x[i], qin.scale, qin.zeroPoint);
  for (int64_t f = 0; f < outS.c; ++f)
    for (int64_t i = 0; i < per; ++i)
      wf[f * per + i] = p.weight[f * per + i] * sw[f];
  ref::conv2d(xf.data(), inS, wf.data(), bias.data(), p.conv, ref.data(), outS);
  float lo = 0, hi = 0;
  for (float &v : ref) {
    if (tc.act == Activation::leaky && v < 0)
      v *= 0.1f;
    if (tc.act == Activation::relu)
      v = std::max(v, 0.0f);
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  rt::QuantChoice qout = rt::chooseQuantParams(lo, hi, false, false);
  // Requantization exactly as the quantizer sets it up.
  p.zpIn = qin.zeroPoint;
  p.requant.act = tc.act;
  p.requant.zpOut = qout.zeroPoint;
  for (int64_t f = 0; f < outS.c; ++f) {
    double acc = (double)qin.scale * sw[f];
    p.requant.bias.push_back((int32_t)std::round(bias[f] / acc));
    p.requant.mult.push_back(rt::quantizeMultiplier(acc / qout.scale));
    p.requant.negMult.push_back(rt::quantizeMultiplier(0.1 * acc / qout.scale));
  }
  std::vector<int8_t> out(outS.size());
  ref::conv2dInt8(x.data(), inS, p, out.data(), outS);
  double worst = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    float got = rt::dequantizeValue(out[i], qout.scale, qout.zeroPoint);
    worst = std::max(worst, (double)std::fabs(got - ref[i]) / qout.scale);
  }
  EXPECT_LE(worst, 1.0) << tc.bits << "-bit weights: worst error in output "
                        << "steps";
  // Not trivially equal: the output covers many levels.
  int64_t distinct = 0;
  std::vector<char> seen(256, 0);
  for (int8_t v : out)
    distinct += !seen[(uint8_t)v]++;
  EXPECT_GT(distinct, 20);
}

INSTANTIATE_TEST_SUITE_P(
    Widths, NarrowWeightConv,
    ::testing::Values(NarrowConvCase{8, true, Activation::linear},
                      NarrowConvCase{6, true, Activation::leaky},
                      NarrowConvCase{4, true, Activation::leaky},
                      NarrowConvCase{4, false, Activation::relu},
                      NarrowConvCase{3, true, Activation::linear},
                      NarrowConvCase{2, false, Activation::leaky}),
    [](const auto &info) {
      return std::to_string(info.param.bits) + "bit_" +
             (info.param.perChannel ? "per_channel_" : "per_tensor_") +
             stringifyActivation(info.param.act).str();
    });

// W8A16: int16 activations (zero point 0), int8 weights, int64
// accumulation. The 64-bit fixed-point multiply is round(x * M), half away
// from zero, saturated to int32.
TEST(Int16Kernels, FixedPointMultiply64) {
  std::mt19937_64 rng(3);
  // |x| < 2^32 keeps x * multiplier (< 2^63) exact in a long double.
  std::uniform_int_distribution<int64_t> ux(-(1ll << 32) + 1, (1ll << 32) - 1);
  std::uniform_real_distribution<double> um(1e-6, 0.9);
  for (int k = 0; k < 2000; ++k) {
    int64_t x = ux(rng) >> (k % 30);
    rt::FixedPoint m = rt::quantizeMultiplier(um(rng));
    long double exact =
        (long double)x * m.multiplier / std::ldexp((long double)1, m.shift);
    long double want =
        exact >= 0 ? std::floor(exact + 0.5L) : -std::floor(-exact + 0.5L);
    want = std::max<long double>(INT32_MIN,
                                 std::min<long double>(INT32_MAX, want));
    ASSERT_EQ((int64_t)want, ref::multiplyByFixedPoint64(x, m))
        << "x=" << x << " multiplier=" << m.multiplier << " shift=" << m.shift;
  }
  // Ties round away from zero; saturation at the int32 ends.
  rt::FixedPoint half{1 << 30, 31}; // 0.5
  EXPECT_EQ(ref::multiplyByFixedPoint64(3, half), 2);
  EXPECT_EQ(ref::multiplyByFixedPoint64(-3, half), -2);
  rt::FixedPoint big{1 << 30, 29}; // 2.0
  EXPECT_EQ(ref::multiplyByFixedPoint64(1ll << 40, big), INT32_MAX);
  EXPECT_EQ(ref::multiplyByFixedPoint64(-(1ll << 40), big), INT32_MIN);
}

TEST(Int16Kernels, ConvMatchesFloatReference) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> uw(-0.5f, 0.5f), ux(-1.5f, 2.5f);
  const CHW inS{4, 7, 6}, outS{3, 7, 6};
  ref::ConvInt16Params p;
  p.conv.filters = outS.c;
  p.conv.kh = p.conv.kw = 3;
  p.conv.py = p.conv.px = 1;
  const int64_t per = inS.c * 9;
  std::vector<float> w(outS.c * per), bias(outS.c);
  for (float &v : w)
    v = uw(rng);
  for (float &v : bias)
    v = uw(rng);
  const float sIn = 2.5f / 32767;
  std::vector<int16_t> x(inS.size());
  std::vector<float> xf(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    float v = ux(rng);
    ref::quantize16(&v, 1, sIn, &x[i]);
    ASSERT_LE(std::fabs(x[i] * sIn - v), 0.5f * sIn + 1e-9f);
  }
  ref::dequantize16(x.data(), x.size(), sIn, xf.data());
  std::vector<float> sw =
      rt::weightScales(w.data(), w.size(), outS.c, true, false, 8);
  std::vector<float> wf(w.size());
  p.weight.resize(w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    p.weight[i] = rt::quantizeWeight(w[i], sw[i / per]);
    wf[i] = p.weight[i] * sw[i / per];
  }
  std::vector<float> refOut(outS.size());
  ref::conv2d(xf.data(), inS, wf.data(), bias.data(), p.conv, refOut.data(),
              outS);
  float m = 0;
  for (float &v : refOut) {
    v = v < 0 ? 0.1f * v : v; // leaky
    m = std::max(m, std::fabs(v));
  }
  const float sOut = m / 32767;
  p.requant.act = Activation::leaky;
  for (int64_t f = 0; f < outS.c; ++f) {
    double acc = (double)sIn * sw[f];
    p.requant.bias.push_back((int32_t)std::round(bias[f] / acc));
    p.requant.mult.push_back(rt::quantizeMultiplier(acc / sOut));
    p.requant.negMult.push_back(rt::quantizeMultiplier(0.1 * acc / sOut));
  }
  std::vector<int16_t> out(outS.size());
  ref::conv2dInt16(x.data(), inS, p, out.data(), outS);
  std::vector<float> got(out.size());
  ref::dequantize16(out.data(), out.size(), sOut, got.data());
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i)
    worst = std::max(worst, (double)std::fabs(got[i] - refOut[i]) / sOut);
  // Half a step of output rounding, plus the bias's rounding (at most half
  // an accumulator unit, a small fraction of an output step here).
  EXPECT_LE(worst, 0.75) << "worst error in int16 output steps";
}

TEST(Int16Kernels, ConnectedMaxPoolUpsample) {
  ref::ConvInt16Params p;
  p.weight = {3, -2, 1, 7, 0, -7};
  p.requant.bias = {10, -10};
  p.requant.mult = {rt::quantizeMultiplier(0.5), rt::quantizeMultiplier(0.5)};
  p.requant.act = Activation::relu;
  const int16_t in[3] = {1000, -3000, 20000};
  int16_t out[2];
  ref::connectedInt16(in, 3, p, 2, out);
  // (3000 + 6000 + 20000 + 10) / 2 = 14505; (7000 - 140000 - 10) / 2 < 0.
  EXPECT_EQ(out[0], 14505);
  EXPECT_EQ(out[1], 0);
  // Saturation at the int16 ends.
  p.requant.act = Activation::linear;
  p.requant.mult = {rt::quantizeMultiplier(4.0), rt::quantizeMultiplier(4.0)};
  ref::connectedInt16(in, 3, p, 2, out);
  EXPECT_EQ(out[0], 32767);
  EXPECT_EQ(out[1], -32768);

  const int16_t img[4] = {-30000, 5, 32767, -32768};
  int16_t pooled[1], up[16];
  ref::maxPoolInt16(img, CHW{1, 2, 2}, 2, 2, 2, 0, pooled, CHW{1, 1, 1});
  EXPECT_EQ(pooled[0], 32767);
  ref::upsampleInt16(img, CHW{1, 2, 2}, 2, up, CHW{1, 4, 4});
  EXPECT_EQ(up[0], -30000);
  EXPECT_EQ(up[3], 5);
  EXPECT_EQ(up[15], -32768);
}

} // namespace
