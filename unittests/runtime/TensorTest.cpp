//===- TensorTest.cpp - tensors and binary16 ------------------------------===//

#include "qsim/Runtime/Tensor.h"

#include <cmath>
#include <cstring>
#include <gtest/gtest.h>

using namespace qsim::rt;

TEST(Half, RoundTripsEveryHalf) {
  // Every finite binary16 value widens and narrows back to itself.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if (((h >> 10) & 0x1F) == 0x1F)
      continue;
    EXPECT_EQ(floatToHalf(halfToFloat((uint16_t)h)), (uint16_t)h) << h;
  }
}

TEST(Half, RoundsToNearestEven) {
  EXPECT_EQ(halfToFloat(floatToHalf(1.0f)), 1.0f);
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even (1).
  EXPECT_EQ(halfToFloat(floatToHalf(1.0f + std::ldexp(1.0f, -11))), 1.0f);
  // 1 + 3*2^-11 is halfway between 1+2^-10 and 1+2^-9: ties to even.
  EXPECT_EQ(halfToFloat(floatToHalf(1.0f + 3 * std::ldexp(1.0f, -11))),
            1.0f + std::ldexp(1.0f, -9));
  EXPECT_EQ(halfToFloat(floatToHalf(65504.0f)), 65504.0f);
  EXPECT_TRUE(std::isinf(halfToFloat(floatToHalf(70000.0f))));
  EXPECT_EQ(halfToFloat(floatToHalf(std::ldexp(1.0f, -24))), std::ldexp(1.0f, -24));
  EXPECT_EQ(halfToFloat(floatToHalf(std::ldexp(1.0f, -26))), 0.0f);
}

TEST(Tensor, DequantizesInt8) {
  Tensor t(DType::I8, 1, 1, 3);
  t.quant = {0.5f, -2};
  t.i8()[0] = -2;
  t.i8()[1] = 0;
  t.i8()[2] = 127;
  auto v = t.toFloat();
  EXPECT_EQ(v[0], 0.0f);
  EXPECT_EQ(v[1], 1.0f);
  EXPECT_EQ(v[2], 64.5f);
}

TEST(Tensor, CloneIsDeep) {
  Tensor a(DType::F32, 2, 2, 2);
  a.f32()[3] = 1.5f;
  Tensor b = a.clone();
  b.f32()[3] = 2.0f;
  EXPECT_EQ(a.f32()[3], 1.5f);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.raw()) % 64, 0u);
}
