//===- TensorTest.cpp - tensors and binary16 ------------------------------===//

#include "qsim/Runtime/Tensor.h"

#include "TestEnv.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <limits>
#include <sstream>

using namespace qsim::rt;
namespace fs = std::filesystem;

/// The binary32 with these bits.
static float fromBits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof(f));
  return f;
}

TEST(BFloat16, RoundTripsEveryBFloat16) {
  // Every bf16 value widens exactly (it is a binary32's high half) and
  // narrows back to itself; NaNs stay NaNs of the same sign.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = bf16ToFloat((uint16_t)h);
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof(bits));
    EXPECT_EQ(bits, h << 16) << h; // bit for bit, NaNs included
    if (std::isnan(f)) {
      uint16_t back = floatToBF16(f);
      EXPECT_TRUE(std::isnan(bf16ToFloat(back))) << h;
      EXPECT_EQ(back & 0x8000u, h & 0x8000u) << h;
      continue;
    }
    EXPECT_EQ(floatToBF16(f), (uint16_t)h) << h;
  }
}

TEST(BFloat16, RoundsToNearestEven) {
  // 8 significant bits: the step above 1 is 2^-7.
  const float ulp = std::ldexp(1.0f, -7);
  EXPECT_EQ(bf16ToFloat(floatToBF16(1.0f)), 1.0f);
  // Halfway between 1 and 1 + ulp: ties to the even 1.
  EXPECT_EQ(bf16ToFloat(floatToBF16(1.0f + ulp / 2)), 1.0f);
  // Halfway between 1 + ulp and 1 + 2 ulp: ties to the even 1 + 2 ulp.
  EXPECT_EQ(bf16ToFloat(floatToBF16(1.0f + 3 * ulp / 2)), 1.0f + 2 * ulp);
  // Just above and below a tie round to the nearer value.
  EXPECT_EQ(bf16ToFloat(floatToBF16(std::nextafter(1.0f + ulp / 2, 2.0f))),
            1.0f + ulp);
  EXPECT_EQ(bf16ToFloat(floatToBF16(std::nextafter(1.0f + 3 * ulp / 2, 0.0f))),
            1.0f + ulp);
  // Negative values round symmetrically.
  EXPECT_EQ(bf16ToFloat(floatToBF16(-1.0f - 3 * ulp / 2)), -1.0f - 2 * ulp);
  // 0.1 is 0x3DCCCCCD: the dropped half 0xCCCD is above the midpoint.
  EXPECT_EQ(floatToBF16(0.1f), 0x3DCDu);
  // The carry out of the significand moves to the next binade.
  EXPECT_EQ(bf16ToFloat(floatToBF16(fromBits(0x3FFFFFFFu))), 2.0f);
}

TEST(BFloat16, InfinityNaNAndOverflow) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(floatToBF16(inf), 0x7F80u);
  EXPECT_EQ(floatToBF16(-inf), 0xFF80u);
  // The largest bf16 is 0x7F7F (3.3895e38); past its halfway point to
  // 2^128 a value rounds to infinity, below it to the largest.
  EXPECT_EQ(floatToBF16(std::numeric_limits<float>::max()), 0x7F80u);
  EXPECT_EQ(floatToBF16(fromBits(0x7F7F7FFFu)), 0x7F7Fu);
  EXPECT_EQ(floatToBF16(fromBits(0x7F7F8000u)), 0x7F80u); // tie, odd -> up
  // NaNs stay NaNs (never infinity, even when the payload is only in the
  // dropped half), are made quiet and keep their sign.
  EXPECT_EQ(floatToBF16(fromBits(0x7F800001u)), 0x7FC0u);
  EXPECT_EQ(floatToBF16(fromBits(0xFF800001u)), 0xFFC0u);
  EXPECT_EQ(floatToBF16(std::numeric_limits<float>::quiet_NaN()) & 0x7FC0u,
            0x7FC0u);
  EXPECT_EQ(floatToBF16(0.0f), 0x0000u);
  EXPECT_EQ(floatToBF16(-0.0f), 0x8000u);
}

TEST(BFloat16, SubnormalsRoundLikeOtherValues) {
  // bf16 keeps binary32's exponent range: its subnormals are binary32's
  // with 7 stored bits, rounded to nearest even, not flushed to zero.
  float tiny = std::numeric_limits<float>::denorm_min(); // 2^-149
  EXPECT_EQ(floatToBF16(tiny), 0x0000u); // far below the smallest (2^-133)
  EXPECT_EQ(floatToBF16(std::ldexp(1.0f, -133)), 0x0001u);
  EXPECT_EQ(bf16ToFloat(0x0001u), std::ldexp(1.0f, -133));
  // 1.5 * 2^-133 is a tie between 0x0001 and 0x0002: to the even 0x0002.
  EXPECT_EQ(floatToBF16(std::ldexp(1.5f, -133)), 0x0002u);
  // 2.5 * 2^-133: a tie between 0x0002 and 0x0003, to the even 0x0002.
  EXPECT_EQ(floatToBF16(std::ldexp(2.5f, -133)), 0x0002u);
  EXPECT_EQ(floatToBF16(-std::ldexp(1.0f, -133)), 0x8001u);
  // The largest subnormal rounds up into the smallest normal, 2^-126.
  EXPECT_EQ(floatToBF16(fromBits(0x007FFFFFu)), 0x0080u);
  EXPECT_EQ(bf16ToFloat(0x0080u), std::numeric_limits<float>::min());
}

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
  EXPECT_EQ(halfToFloat(floatToHalf(std::ldexp(1.0f, -24))),
            std::ldexp(1.0f, -24));
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

//===----------------------------------------------------------------------===//
// .npy files
//===----------------------------------------------------------------------===//

namespace {

std::string readBytes(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void writeBytes(const std::string &path, const std::string &bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), (std::streamsize)bytes.size());
}

/// A version 1.0 .npy file with header dict `dict` (padded like NumPy) and
/// `payload` as data.
std::string npyV1(const std::string &dict, const std::string &payload) {
  size_t total = (10 + dict.size() + 1 + 63) / 64 * 64;
  size_t len = total - 10;
  std::string h = std::string("\x93NUMPY\x01\x00", 8);
  h.push_back((char)(len & 0xFF));
  h.push_back((char)(len >> 8));
  h += dict;
  h.append(len - dict.size() - 1, ' ');
  h.push_back('\n');
  return h + payload;
}

std::string floatBytes(std::initializer_list<float> values) {
  std::string s;
  for (float v : values) {
    unsigned char b[4];
    std::memcpy(b, &v, 4); // the test host is little-endian (x86-64, arm64)
    s.append((const char *)b, 4);
  }
  return s;
}

class NpyFiles : public ::testing::Test {
protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "qsim-npy-XXXXXX";
    ASSERT_NE(mkdtemp(&tmpl[0]), nullptr);
    dir = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string file(const std::string &name) const {
    return (dir / name).string();
  }
  size_t entries() const {
    size_t n = 0;
    for (auto &e : fs::directory_iterator(dir)) {
      (void)e;
      ++n;
    }
    return n;
  }
  /// Expects readNpy of `bytes` to fail with a message naming the file and
  /// containing `what`.
  void expectReadError(const std::string &bytes, const std::string &what) {
    std::string path = file("bad.npy"), error;
    writeBytes(path, bytes);
    Tensor t;
    EXPECT_FALSE(readNpy(path, t, error)) << what;
    EXPECT_NE(error.find(path), std::string::npos) << error;
    EXPECT_NE(error.find(what), std::string::npos) << error;
  }
  fs::path dir;
};

} // namespace

TEST_F(NpyFiles, WritesNumPyVersion1HeaderExactly) {
  Tensor t(DType::F32, 2, 3, 4);
  for (int i = 0; i < 24; ++i)
    t.f32()[i] = 0.5f * i - 3;
  std::string path = file("t.npy"), error;
  ASSERT_TRUE(writeNpy(path, t, error)) << error;
  std::string bytes = readBytes(path);
  // 10 + 118 = 128 bytes of header; the dict as NumPy's own writer spells
  // it, then spaces and '\n'.
  std::string dict =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }";
  std::string expected = std::string("\x93NUMPY\x01\x00\x76\x00", 10) + dict +
                         std::string(128 - 10 - dict.size() - 1, ' ') + "\n";
  ASSERT_EQ(bytes.size(), 128u + 24 * 4);
  EXPECT_EQ(bytes.substr(0, 128), expected);
  EXPECT_EQ(std::memcmp(bytes.data() + 128, t.raw(), 24 * 4), 0);
  EXPECT_EQ(entries(), 1u); // no temporary file left behind
}

TEST_F(NpyFiles, RoundTripsEveryBit) {
  Tensor t(DType::F32, 3, 5, 7);
  const float specials[] = {0.0f,
                            -0.0f,
                            1e-45f,
                            -3.5f,
                            std::numeric_limits<float>::max(),
                            std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN()};
  for (int64_t i = 0; i < t.numel(); ++i)
    t.f32()[i] = i < 7 ? specials[i] : std::sin((float)i) * 100;
  std::string path = file("rt.npy"), error;
  ASSERT_TRUE(writeNpy(path, t, error)) << error;
  Tensor back;
  ASSERT_TRUE(readNpy(path, back, error)) << error;
  EXPECT_EQ(back.dtype(), DType::F32);
  EXPECT_EQ(back.c(), 3);
  EXPECT_EQ(back.h(), 5);
  EXPECT_EQ(back.w(), 7);
  EXPECT_EQ(std::memcmp(back.raw(), t.raw(), t.bytes()), 0);
  // Overwriting an existing file works (rename over it).
  t.f32()[0] = 42.0f;
  ASSERT_TRUE(writeNpy(path, t, error)) << error;
  ASSERT_TRUE(readNpy(path, back, error)) << error;
  EXPECT_EQ(back.f32()[0], 42.0f);
  EXPECT_EQ(entries(), 1u);
}

TEST_F(NpyFiles, WritesRealValuesOfOtherDTypes) {
  Tensor q(DType::I8, 1, 1, 3);
  q.quant = {0.25f, 1};
  q.i8()[0] = 1;
  q.i8()[1] = 5;
  q.i8()[2] = -3;
  Tensor h(DType::F16, 1, 2, 1);
  h.f16()[0] = floatToHalf(1.5f);
  h.f16()[1] = floatToHalf(-0.125f);
  std::string error;
  ASSERT_TRUE(writeNpy(file("q.npy"), q, error)) << error;
  ASSERT_TRUE(writeNpy(file("h.npy"), h, error)) << error;
  Tensor back;
  ASSERT_TRUE(readNpy(file("q.npy"), back, error)) << error;
  ASSERT_EQ(back.numel(), 3);
  EXPECT_EQ(back.f32()[0], 0.0f);
  EXPECT_EQ(back.f32()[1], 1.0f);
  EXPECT_EQ(back.f32()[2], -1.0f);
  ASSERT_TRUE(readNpy(file("h.npy"), back, error)) << error;
  EXPECT_EQ(back.h(), 2);
  EXPECT_EQ(back.f32()[0], 1.5f);
  EXPECT_EQ(back.f32()[1], -0.125f);
}

TEST_F(NpyFiles, ReadsOneAndTwoDimsAndVersion2) {
  std::string error;
  Tensor t;
  writeBytes(file("v.npy"),
             npyV1("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
                   floatBytes({1, 2, 3})));
  ASSERT_TRUE(readNpy(file("v.npy"), t, error)) << error;
  EXPECT_EQ(t.c(), 3);
  EXPECT_EQ(t.h(), 1);
  EXPECT_EQ(t.w(), 1);
  EXPECT_EQ(t.f32()[2], 3.0f);

  // Other key order, double quotes, no trailing comma.
  writeBytes(file("m.npy"),
             npyV1("{\"shape\": (2, 3), \"fortran_order\": False, "
                   "\"descr\": \"<f4\"}",
                   floatBytes({1, 2, 3, 4, 5, 6})));
  ASSERT_TRUE(readNpy(file("m.npy"), t, error)) << error;
  EXPECT_EQ(t.c(), 1);
  EXPECT_EQ(t.h(), 2);
  EXPECT_EQ(t.w(), 3);
  EXPECT_EQ(t.f32()[4], 5.0f);

  // Version 2.0: a 4-byte header length.
  std::string dict =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 2), }";
  size_t len = 128 - 12; // 12-byte prefix + dict + padding = 128
  std::string v2 = std::string("\x93NUMPY\x02\x00", 8);
  v2.push_back((char)len);
  v2.append(3, '\0');
  v2 += dict + std::string(len - dict.size() - 1, ' ') + "\n";
  writeBytes(file("v2.npy"), v2 + floatBytes({7, 8}));
  ASSERT_TRUE(readNpy(file("v2.npy"), t, error)) << error;
  EXPECT_EQ(t.w(), 2);
  EXPECT_EQ(t.f32()[1], 8.0f);
}

TEST_F(NpyFiles, RejectsWhatItCannotRead) {
  const std::string good =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }";
  const std::string data = floatBytes({1, 2, 3, 4});
  expectReadError("PK\x03\x04 not an npy file at all", "bad magic");
  expectReadError(npyV1("{'descr': '<f8', 'fortran_order': False, "
                        "'shape': (2,), }",
                        data),
                  "'<f8'");
  expectReadError(npyV1("{'descr': '>f4', 'fortran_order': False, "
                        "'shape': (4,), }",
                        data),
                  "'>f4'");
  expectReadError(npyV1("{'descr': '<f4', 'fortran_order': True, "
                        "'shape': (2, 2), }",
                        data),
                  "Fortran");
  expectReadError(npyV1("{'descr': '<f4', 'fortran_order': False, "
                        "'shape': (1, 1, 2, 2), }",
                        data),
                  "4 dimensions");
  expectReadError(npyV1("{'descr': '<f4', 'fortran_order': False, "
                        "'shape': (), }",
                        data),
                  "0 dimensions");
  expectReadError(npyV1(good, data.substr(0, 10)), "truncated data");
  expectReadError(npyV1(good, data + "xx"), "unexpected bytes");
  expectReadError(npyV1(good, "").substr(0, 40), "truncated header");
  expectReadError(npyV1("{'descr': '<f4', 'shape': (2, 2), }", data), "lacks");
  expectReadError(npyV1("{'descr': '<f4', 'fortran_order': False, "
                        "'shape': (2, x), }",
                        data),
                  "malformed");
  expectReadError(npyV1("{'descr': '<f4', 'fortran_order': False, "
                        "'shape': (99999999999, 99999999999, 9999999), }",
                        data),
                  "too large");
  std::string v3 = npyV1(good, data);
  v3[6] = 3;
  expectReadError(v3, "version 3.0");

  std::string missing = file("missing.npy"), error;
  Tensor t;
  EXPECT_FALSE(readNpy(missing, t, error));
  EXPECT_NE(error.find(missing), std::string::npos) << error;
  EXPECT_NE(error.find("No such file"), std::string::npos) << error;
}

TEST_F(NpyFiles, FailedWriteLeavesNothing) {
  Tensor t(DType::F32, 1, 2, 2);
  std::string path = file("sub/none.npy"), error;
  EXPECT_FALSE(writeNpy(path, t, error));
  EXPECT_NE(error.find("sub/none.npy"), std::string::npos) << error;
  EXPECT_EQ(entries(), 0u);
}

TEST_F(NpyFiles, RewritesGoldenInputByteForByte) {
  QSIM_REQUIRE_GOLDEN();
  std::string golden =
      qsim::testenv::goldenDir() + "/alexeyab/tiny/dog/input.npy";
  if (!qsim::testenv::isFile(golden))
    GTEST_SKIP() << golden << " not found";
  Tensor t;
  std::string error;
  ASSERT_TRUE(readNpy(golden, t, error)) << error;
  EXPECT_EQ(t.c(), 3);
  EXPECT_EQ(t.h(), 224);
  EXPECT_EQ(t.w(), 224);
  ASSERT_TRUE(writeNpy(file("copy.npy"), t, error)) << error;
  std::string want = readBytes(golden), got = readBytes(file("copy.npy"));
  ASSERT_EQ(got.size(), want.size());
  EXPECT_TRUE(got == want);
}
