//===- ImageTest.cpp - Darknet's image pipeline ---------------------------===//
//
// Hand-computed resizes (including Darknet's rounding quirks), letterbox,
// resize_min, crop, drawing, PNG round trips and, with the real data, the
// bit-exact network inputs of ../shared/golden.
//
//===----------------------------------------------------------------------===//

#include "qsim/Runtime/Image.h"

#include "TestEnv.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <iostream>
#include <regex>
#include <sstream>

using namespace qsim::rt;
namespace fs = std::filesystem;

namespace {

Image makeGray(int w, int h, std::vector<float> values) {
  Image im;
  im.w = w;
  im.h = h;
  im.c = 1;
  im.data = std::move(values);
  return im;
}

/// A 3-channel image whose values are all multiples of 1/255.
Image makeRamp(int w, int h) {
  Image im;
  im.w = w;
  im.h = h;
  im.c = 3;
  im.data.resize((size_t)w * h * 3);
  for (size_t i = 0; i < im.data.size(); ++i)
    im.data[i] = (float)((double)((i * 37 + 11) % 256) / 255.);
  return im;
}

std::string readText(const fs::path &p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class ImageFiles : public ::testing::Test {
protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "qsim-image-XXXXXX";
    ASSERT_NE(mkdtemp(&tmpl[0]), nullptr);
    dir = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::vector<std::string> listDir() const {
    std::vector<std::string> names;
    for (auto &e : fs::directory_iterator(dir))
      names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
  fs::path dir;
};

} // namespace

// A 3x2 grey image to 5x3: w_scale = 2/4 = 0.5 and h_scale = 1/2 = 0.5 are
// exact, so every value below is exact.
TEST(ImageResize, MatchesHandComputedValues) {
  Image src = makeGray(3, 2,
                       {0.0f, 1.0f, 0.5f, //
                        1.0f, 0.0f, 0.25f});
  Image out = resizeImage(src, 5, 3);
  ASSERT_EQ(out.w, 5);
  ASSERT_EQ(out.h, 3);
  ASSERT_EQ(out.c, 1);
  // Horizontal pass: sx = 0, .5, 1, 1.5, then a copy of the last column.
  //   row 0: 0, .5, 1, .75, .5      row 1: 1, .5, 0, .125, .25
  // Vertical pass: sy = 0, .5, 1 (the last row keeps only (1-dy)*row[iy]).
  const std::vector<float> expected = {0.0f, 0.5f, 1.0f, 0.75f,   0.5f,   //
                                       0.5f, 0.5f, 0.5f, 0.4375f, 0.375f, //
                                       1.0f, 0.5f, 0.0f, 0.125f,  0.25f};
  EXPECT_EQ(out.data, expected);
}

TEST(ImageResize, Downscales) {
  // 5x1 to 3x1: w_scale = 4/2 = 2, samples at 0, 2 and the last column.
  Image src = makeGray(5, 1, {0.1f, 0.2f, 0.3f, 0.4f, 0.5f});
  Image out = resizeImage(src, 3, 1);
  EXPECT_EQ(out.data, (std::vector<float>{0.1f, 0.3f, 0.5f}));
}

TEST(ImageResize, KeepsDarknetsLastRowQuirk) {
  // 2 rows to 42: h_scale = 1/41 and 41 * h_scale rounds to 1 - 2^-24 in
  // float, so Darknet's last row is row[0] * (1 - dy) = 2^-24 * row[0] (it
  // never adds the dy * row[1] term on the last row), not row[1].
  Image src = makeGray(1, 2, {1.0f, 1.0f});
  Image out = resizeImage(src, 1, 42);
  ASSERT_EQ(out.h, 42);
  EXPECT_EQ(out.at(0, 0, 0), 1.0f);
  EXPECT_EQ(out.at(0, 41, 0), std::ldexp(1.0f, -24));
  // The columns have no such quirk: the last one copies the last source
  // column.
  Image wide = resizeImage(makeGray(2, 1, {0.25f, 0.75f}), 42, 1);
  EXPECT_EQ(wide.at(41, 0, 0), 0.75f);
  EXPECT_EQ(wide.at(0, 0, 0), 0.25f);
}

TEST(ImageResize, OneColumnOrRowOutputs) {
  Image src = makeGray(3, 2,
                       {0.0f, 1.0f, 0.5f, //
                        1.0f, 0.0f, 0.25f});
  // w = 1 copies the last source column; h = 1 (a division by zero in
  // Darknet) takes row 0.
  Image col = resizeImage(src, 1, 2);
  EXPECT_EQ(col.data, (std::vector<float>{0.5f, 0.25f}));
  Image row = resizeImage(src, 3, 1);
  EXPECT_EQ(row.data, (std::vector<float>{0.0f, 1.0f, 0.5f}));
  Image one = resizeImage(src, 1, 1);
  EXPECT_EQ(one.data, (std::vector<float>{0.5f}));
  // One-column / one-row sources are replicated.
  Image up = resizeImage(makeGray(1, 1, {0.3f}), 2, 3);
  EXPECT_EQ(up.data, std::vector<float>(6, 0.3f));
}

TEST(ImageResize, SameSizeIsACopyAndEmptyStaysEmpty) {
  Image src = makeRamp(4, 3);
  Image out = resizeImage(src, 4, 3);
  EXPECT_EQ(out.data, src.data);
  Image none = resizeImage(src, 0, 5);
  EXPECT_EQ(none.w, 0);
  EXPECT_TRUE(none.data.empty());
}

TEST(ImageLetterbox, PastesCentredOnGrey) {
  // 4x2 into 4x4: 4/4 < 4/2, so new size 4 x (2*4/4) = 4x2 at (0, 1).
  Image src = makeGray(4, 2,
                       {0.1f, 0.2f, 0.3f, 0.4f, //
                        0.5f, 0.6f, 0.7f, 0.8f});
  Image out = letterboxImage(src, 4, 4);
  ASSERT_EQ(out.w, 4);
  ASSERT_EQ(out.h, 4);
  for (int x = 0; x < 4; ++x) {
    EXPECT_EQ(out.at(x, 0, 0), 0.5f);
    EXPECT_EQ(out.at(x, 1, 0), src.at(x, 0, 0));
    EXPECT_EQ(out.at(x, 2, 0), src.at(x, 1, 0));
    EXPECT_EQ(out.at(x, 3, 0), 0.5f);
  }
  // 2x4 into 5x4: 5/2 >= 4/4, so new size (2*4/4) x 4 = 2x4 at (1, 0).
  Image tall = makeGray(2, 4, {0.1f, 0.2f, 0.3f, 0.4f, 0.6f, 0.7f, 0.8f, 0.9f});
  Image boxed = letterboxImage(tall, 5, 4);
  for (int y = 0; y < 4; ++y) {
    EXPECT_EQ(boxed.at(0, y, 0), 0.5f);
    EXPECT_EQ(boxed.at(1, y, 0), tall.at(0, y, 0));
    EXPECT_EQ(boxed.at(2, y, 0), tall.at(1, y, 0));
    EXPECT_EQ(boxed.at(3, y, 0), 0.5f);
    EXPECT_EQ(boxed.at(4, y, 0), 0.5f);
  }
}

TEST(ImageLetterbox, UsesResizeImageForTheInnerPart) {
  Image src = makeRamp(768, 576);
  Image out = letterboxImage(src, 320, 320);
  // 320/768 < 320/576: new size 320 x 576*320/768 = 320x240 at (0, 40).
  Image inner = resizeImage(src, 320, 240);
  for (int k = 0; k < 3; ++k)
    for (int y = 0; y < 320; ++y)
      for (int x = 0; x < 320; x += 7) {
        float expect = (y < 40 || y >= 280) ? 0.5f : inner.at(x, y - 40, k);
        ASSERT_EQ(out.at(x, y, k), expect) << x << "," << y << "," << k;
      }
}

TEST(ImageResizeMin, ShorterSideToMin) {
  // docs/darknet.md §R9.4: 768x576 -> 298x224 (integer division).
  Image r = resizeMin(makeRamp(768, 576), 224);
  EXPECT_EQ(r.w, 298);
  EXPECT_EQ(r.h, 224);
  Image t = resizeMin(makeRamp(4, 6), 2);
  EXPECT_EQ(t.w, 2);
  EXPECT_EQ(t.h, 3);
  Image same = resizeMin(makeRamp(6, 4), 4);
  EXPECT_EQ(same.w, 6);
  EXPECT_EQ(same.h, 4);
}

TEST(ImageCrop, ClampsReadsToTheBorder) {
  Image src = makeGray(3, 2,
                       {0.0f, 1.0f, 0.5f, //
                        1.0f, 0.0f, 0.25f});
  Image out = cropImage(src, -1, 1, 5, 2);
  // Columns -1..3 read 0,0,1,2,2; rows 1..2 read 1,1.
  EXPECT_EQ(out.data, (std::vector<float>{1.0f, 1.0f, 0.0f, 0.25f, 0.25f, //
                                          1.0f, 1.0f, 0.0f, 0.25f, 0.25f}));
  Image inner = cropImage(src, 1, 0, 2, 1);
  EXPECT_EQ(inner.data, (std::vector<float>{1.0f, 0.5f}));
}

// The training loader crops and resizes its cached bytes in one pass; every
// value must be the one cropImage then resizeImage give (clamped reads
// outside the source, scaling up and down, one-row/one-column cases, the
// same-size crop that resizeImage returns as is).
TEST(ImageCrop, CropResizeBytesEqualsCropThenResize) {
  uint32_t state = 99;
  auto next = [&] {
    state = state * 1664525u + 1013904223u;
    return state >> 8;
  };
  struct Case {
    int srcW, srcH, dx, dy, cropW, cropH, w, h;
  };
  const Case cases[] = {
      {97, 61, 0, 0, 97, 61, 32, 24},     // plain downscale
      {97, 61, -20, -9, 130, 70, 32, 32}, // crop larger than the source
      {97, 61, 25, 13, 40, 30, 64, 48},   // upscale of an inner crop
      {97, 61, 90, 55, 20, 20, 8, 8},     // mostly past the border
      {97, 61, 5, 5, 16, 12, 16, 12},     // same size: a plain crop
      {40, 1, -3, 0, 40, 1, 13, 7},       // one-row source
      {1, 30, 0, -2, 1, 30, 5, 9},        // one-column source
      {50, 40, 3, 4, 30, 20, 1, 1},       // one output pixel
      {50, 40, 3, 4, 30, 20, 1, 17},      // one output column
  };
  for (const Case &c : cases) {
    std::vector<uint8_t> bytes((size_t)3 * c.srcW * c.srcH);
    for (uint8_t &b : bytes)
      b = (uint8_t)(next() & 255);
    Image im;
    im.w = c.srcW;
    im.h = c.srcH;
    im.c = 3;
    for (uint8_t b : bytes)
      im.data.push_back((float)((double)b / 255.));
    Image want =
        resizeImage(cropImage(im, c.dx, c.dy, c.cropW, c.cropH), c.w, c.h);
    Image got = cropResizeBytes(bytes.data(), c.srcW, c.srcH, 3, c.dx, c.dy,
                                c.cropW, c.cropH, c.w, c.h);
    ASSERT_EQ(got.w, want.w);
    ASSERT_EQ(got.h, want.h);
    ASSERT_EQ(got.data.size(), want.data.size());
    for (size_t i = 0; i < want.data.size(); ++i)
      ASSERT_EQ(got.data[i], want.data[i])
          << "source " << c.srcW << "x" << c.srcH << ", crop " << c.dx << ","
          << c.dy << " " << c.cropW << "x" << c.cropH << " -> " << c.w << "x"
          << c.h << ", value " << i;
  }
}

TEST(ImageNetworkInput, ComposesThePreprocessingSteps) {
  Image src = makeRamp(40, 30);
  Tensor r = makeNetworkInput(src, 16, 12, Preprocess::Resize);
  ASSERT_EQ(r.dtype(), DType::F32);
  ASSERT_EQ(r.c(), 3);
  ASSERT_EQ(r.h(), 12);
  ASSERT_EQ(r.w(), 16);
  Image expect = resizeImage(src, 16, 12);
  EXPECT_EQ(std::vector<float>(r.f32(), r.f32() + r.numel()), expect.data);

  Tensor l = makeNetworkInput(src, 16, 16, Preprocess::Letterbox);
  expect = letterboxImage(src, 16, 16);
  EXPECT_EQ(std::vector<float>(l.f32(), l.f32() + l.numel()), expect.data);

  // Centre crop: 40x30 -> resize_min(16) = 21x16 -> crop at (2, 0).
  Tensor c = makeNetworkInput(src, 16, 16, Preprocess::CenterCrop);
  ASSERT_EQ(c.h(), 16);
  ASSERT_EQ(c.w(), 16);
  Image rm = resizeMin(src, 16);
  ASSERT_EQ(rm.w, 21);
  expect = cropImage(rm, 2, 0, 16, 16);
  EXPECT_EQ(std::vector<float>(c.f32(), c.f32() + c.numel()), expect.data);
  EXPECT_EQ(c.f32()[0], rm.at(2, 0, 0));
}

TEST(ImageColor, MatchesDarknetGetColor) {
  float r, g, b;
  // Class 0: offset 0, colours[0] = {1,0,1}; red is get_color(2, ...).
  classColor(0, 80, r, g, b);
  EXPECT_EQ(r, 1.0f);
  EXPECT_EQ(g, 0.0f);
  EXPECT_EQ(b, 1.0f);
  // Class 1 of 80: offset 123457 % 80 = 17, ratio 17/80*5 = 1.0625, between
  // colours[1] = {0,0,1} and colours[2] = {0,1,1} with weight 0.0625.
  classColor(1, 80, r, g, b);
  EXPECT_NEAR(r, 1.0f, 1e-6);
  EXPECT_NEAR(g, 0.0625f, 1e-6);
  EXPECT_NEAR(b, 0.0f, 1e-6);
  // Class 2 of 3: offset 246914 % 3 = 2, ratio 10/3: colours 3 and 4
  // ({0,1,0}, {1,1,0}) with weight 1/3.
  classColor(2, 3, r, g, b);
  EXPECT_NEAR(r, 0.0f, 1e-6);
  EXPECT_NEAR(g, 1.0f, 1e-6);
  EXPECT_NEAR(b, 1.0f / 3, 1e-6);
  for (int c = 0; c < 1000; c += 37) {
    classColor(c, 1000, r, g, b);
    EXPECT_TRUE(r >= 0 && r <= 1 && g >= 0 && g <= 1 && b >= 0 && b <= 1);
  }
}

TEST(ImageDraw, BoxOutlineWithThicknessAndClamping) {
  Image im;
  im.w = 10;
  im.h = 8;
  im.c = 3;
  im.data.assign(10 * 8 * 3, 0.0f);
  drawBox(im, 2, 1, 7, 6, 2, 1.0f, 0.5f, 0.25f);
  auto onRing = [](int x, int y, int l, int t, int r, int b) {
    return x >= l && x <= r && y >= t && y <= b &&
           (x == l || x == r || y == t || y == b);
  };
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 10; ++x) {
      bool drawn = onRing(x, y, 2, 1, 7, 6) || onRing(x, y, 3, 2, 6, 5);
      EXPECT_EQ(im.at(x, y, 0), drawn ? 1.0f : 0.0f) << x << "," << y;
      EXPECT_EQ(im.at(x, y, 1), drawn ? 0.5f : 0.0f) << x << "," << y;
      EXPECT_EQ(im.at(x, y, 2), drawn ? 0.25f : 0.0f) << x << "," << y;
    }
  // Corners outside the image are clamped to the border, as in Darknet.
  im.data.assign(im.data.size(), 0.0f);
  drawBox(im, -5, -5, 100, 100, 1, 1.0f, 1.0f, 1.0f);
  EXPECT_EQ(im.at(0, 0, 0), 1.0f);
  EXPECT_EQ(im.at(9, 7, 1), 1.0f);
  EXPECT_EQ(im.at(5, 0, 2), 1.0f);
  EXPECT_EQ(im.at(5, 4, 0), 0.0f);
}

TEST(ImageDraw, LabelBarWithText) {
  Image im;
  im.w = 100;
  im.h = 60;
  im.c = 3;
  im.data.assign(100 * 60 * 3, 0.25f);
  // Scale 1: the bar is 9 rows high and 6*2+1 = 13 columns wide; it fits
  // above top = 30, so it covers rows 21..29 and columns 10..22.
  drawLabel(im, 10, 30, "H!", 1.0f, 1.0f, 0.0f);
  int bar = 0, ink = 0;
  for (int y = 0; y < 60; ++y)
    for (int x = 0; x < 100; ++x) {
      bool inBar = x >= 10 && x <= 22 && y >= 21 && y <= 29;
      float r = im.at(x, y, 0), b = im.at(x, y, 2);
      if (!inBar) {
        ASSERT_EQ(r, 0.25f) << x << "," << y;
        continue;
      }
      if (r == 1.0f && b == 0.0f)
        ++bar;
      else if (r == 0.0f && b == 0.0f)
        ++ink; // black text on a light bar
      else
        ADD_FAILURE() << "unexpected colour at " << x << "," << y;
    }
  // 'H' has 17 set pixels and '!' has 6.
  EXPECT_EQ(ink, 17 + 6);
  EXPECT_EQ(bar, 13 * 9 - ink);
  // The top-left pixel of 'H' (glyph row 0, column 0) is at (11, 22).
  EXPECT_EQ(im.at(11, 22, 0), 0.0f);
  EXPECT_EQ(im.at(12, 22, 0), 1.0f);

  // No room above: the bar starts at `top`, and clipping is harmless.
  drawLabel(im, 95, 2, "W", 0.0f, 0.0f, 1.0f);
  EXPECT_EQ(im.at(95, 2, 2), 1.0f);
  EXPECT_EQ(im.at(99, 10, 2), 1.0f);
  EXPECT_EQ(im.at(95, 1, 2), 0.25f);
}

TEST_F(ImageFiles, PngRoundTripIsExactForEightBitValues) {
  Image src = makeRamp(17, 5);
  std::string path = (dir / "ramp.png").string(), error;
  ASSERT_TRUE(writePng(path, src, error)) << error;
  EXPECT_EQ(listDir(), std::vector<std::string>{"ramp.png"}); // no temp left
  Image back;
  ASSERT_TRUE(loadImage(path, back, error)) << error;
  ASSERT_EQ(back.w, 17);
  ASSERT_EQ(back.h, 5);
  ASSERT_EQ(back.c, 3);
  EXPECT_EQ(back.data, src.data);
}

TEST_F(ImageFiles, PngQuantizesAndClamps) {
  Image src = makeGray(4, 1, {-0.3f, 0.5f, 0.1234f, 1.7f});
  std::string path = (dir / "gray.png").string(), error;
  ASSERT_TRUE(writePng(path, src, error)) << error;
  Image back;
  ASSERT_TRUE(loadImage(path, back, error)) << error;
  ASSERT_EQ(back.c, 3); // grey is written as RGB
  const float expect[4] = {0.0f, 128 / 255.f, 31 / 255.f, 1.0f};
  for (int k = 0; k < 3; ++k)
    for (int x = 0; x < 4; ++x)
      EXPECT_NEAR(back.at(x, 0, k), expect[x], 1e-7) << x;
  // Overwriting is atomic too, and a bad image is refused.
  ASSERT_TRUE(writePng(path, makeRamp(2, 2), error)) << error;
  ASSERT_TRUE(loadImage(path, back, error)) << error;
  EXPECT_EQ(back.w, 2);
  Image bad;
  bad.w = 2;
  bad.h = 2;
  bad.c = 2;
  bad.data.assign(8, 0.0f);
  EXPECT_FALSE(writePng((dir / "bad.png").string(), bad, error));
  EXPECT_FALSE(writePng((dir / "no" / "such" / "dir.png").string(),
                        makeRamp(2, 2), error));
  EXPECT_NE(error.find("no/such/dir.png"), std::string::npos) << error;
  EXPECT_EQ(listDir(), std::vector<std::string>{"gray.png"});
}

TEST_F(ImageFiles, LoadErrorsNameTheFile) {
  Image im;
  std::string error;
  std::string missing = (dir / "missing.jpg").string();
  EXPECT_FALSE(loadImage(missing, im, error));
  EXPECT_NE(error.find(missing), std::string::npos) << error;
  EXPECT_NE(error.find("No such file"), std::string::npos) << error;

  std::string corrupt = (dir / "corrupt.jpg").string();
  {
    std::ofstream out(corrupt, std::ios::binary);
    out << "\xFF\xD8\xFF\xE0 this is not really a JPEG";
  }
  error.clear();
  EXPECT_FALSE(loadImage(corrupt, im, error));
  EXPECT_NE(error.find(corrupt), std::string::npos) << error;
  // stb's reason follows the name.
  EXPECT_GT(error.size() - error.find(corrupt), corrupt.size() + 3) << error;

  error.clear();
  EXPECT_FALSE(loadImage(dir.string(), im, error));
  EXPECT_NE(error.find(dir.string()), std::string::npos) << error;
}

TEST_F(ImageFiles, RefusesImagesAboveMaxPixels) {
  std::string path = (dir / "4x3.png").string(), error;
  ASSERT_TRUE(writePng(path, makeRamp(4, 3), error)) << error;
  Image im;
  EXPECT_FALSE(loadImage(path, im, error, 11));
  EXPECT_NE(error.find(path), std::string::npos) << error;
  EXPECT_NE(error.find("12 pixels"), std::string::npos) << error;
  error.clear();
  EXPECT_TRUE(loadImage(path, im, error, 12)) << error;
  EXPECT_EQ(im.w * im.h, 12);
}

// --- Real images and Darknet's golden inputs --------------------------------

namespace {

std::string findImage(const std::string &stem) {
  for (const char *sub : {"images", "capp-aix-subset", "coco128"}) {
    fs::path p = fs::path(qsim::testenv::dataDir()) / sub / (stem + ".jpg");
    if (qsim::testenv::isFile(p.string()))
      return p.string();
  }
  return "";
}

} // namespace

TEST(ImageReal, LoadsDogAsDarknetDoes) {
  QSIM_REQUIRE_DATA();
  std::string path = findImage("dog"), error;
  ASSERT_FALSE(path.empty()) << "dog.jpg not found under QSIM_DATA_DIR";
  Image im;
  ASSERT_TRUE(loadImage(path, im, error)) << error;
  EXPECT_EQ(im.w, 768);
  EXPECT_EQ(im.h, 576);
  EXPECT_EQ(im.c, 3);
  // Every value is exactly (float)(u8 / 255.).
  for (float v : im.data) {
    double u = std::round(v * 255.0);
    ASSERT_EQ(v, (float)(u / 255.));
  }
  EXPECT_FALSE(loadImage(path, im, error, 768 * 576 - 1));
}

TEST(ImageGolden, NetworkInputsAreBitExact) {
  QSIM_REQUIRE_DATA();
  QSIM_REQUIRE_GOLDEN();
  const fs::path golden = qsim::testenv::goldenDir();
  const std::regex netRe(R"re("net"\s*:\s*\{([^}]*)\})re");
  const std::regex wRe(R"re("w"\s*:\s*(\d+))re"), hRe(R"re("h"\s*:\s*(\d+))re");
  const std::regex preRe(R"re("preprocess"\s*:\s*"([a-z_]+))re");
  int checked = 0;
  for (const char *flavor : {"alexeyab", "pjreddie"}) {
    if (!fs::is_directory(golden / flavor))
      continue;
    for (auto &model : fs::directory_iterator(golden / flavor)) {
      fs::path layers = model.path() / "layers.json";
      if (!fs::is_regular_file(layers))
        continue;
      std::smatch m, mw, mh;
      std::string text = readText(layers);
      ASSERT_TRUE(std::regex_search(text, m, netRe)) << layers;
      std::string net = m[1];
      ASSERT_TRUE(std::regex_search(net, mw, wRe)) << layers;
      ASSERT_TRUE(std::regex_search(net, mh, hRe)) << layers;
      const int netW = std::stoi(mw[1]), netH = std::stoi(mh[1]);

      for (auto &imageDir : fs::directory_iterator(model.path())) {
        fs::path input = imageDir.path() / "input.npy";
        if (!fs::is_regular_file(input))
          continue;
        std::string where = input.string();
        // The golden data says how it preprocessed: "resize_image(...",
        // "resize_min(...) then crop_image" or "letterbox_image(...".
        std::string det = readText(imageDir.path() / "detections.json");
        std::smatch mp;
        ASSERT_TRUE(std::regex_search(det, mp, preRe)) << where;
        Preprocess pre;
        if (mp[1] == "resize_image")
          pre = Preprocess::Resize;
        else if (mp[1] == "resize_min")
          pre = Preprocess::CenterCrop;
        else if (mp[1] == "letterbox_image")
          pre = Preprocess::Letterbox;
        else
          FAIL() << where << ": unknown preprocess " << mp[1];

        std::string stem = imageDir.path().filename().string();
        std::string imagePath = findImage(stem), error;
        ASSERT_FALSE(imagePath.empty()) << stem << ".jpg not found";
        Image im;
        ASSERT_TRUE(loadImage(imagePath, im, error)) << error;
        Tensor want;
        ASSERT_TRUE(readNpy(where, want, error)) << error;
        Tensor got = makeNetworkInput(im, netW, netH, pre);
        ASSERT_EQ(got.c(), want.c()) << where;
        ASSERT_EQ(got.h(), want.h()) << where;
        ASSERT_EQ(got.w(), want.w()) << where;
        double maxDiff = 0;
        int64_t differing = 0;
        for (int64_t i = 0; i < got.numel(); ++i) {
          double d = std::fabs((double)got.f32()[i] - want.f32()[i]);
          maxDiff = std::max(maxDiff, d);
          differing += got.f32()[i] != want.f32()[i];
        }
        std::cout << "[ golden   ] " << flavor << "/"
                  << model.path().filename().string() << "/" << stem << " ("
                  << mp[1] << " " << netW << "x" << netH
                  << "): max |diff| = " << maxDiff << ", " << differing
                  << " values differ\n";
        EXPECT_LE(maxDiff, 1e-6) << where;
        EXPECT_EQ(differing, 0) << where;
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 0) << "no input.npy found under " << golden;
  RecordProperty("golden_inputs_checked", checked);
}
