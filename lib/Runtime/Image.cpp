//===- Image.cpp - Darknet's image pipeline -------------------------------===//
//
// Bit-exact re-implementations of Darknet's load_image_color, resize_image,
// letterbox_image, resize_min and crop_image (src/image.c, identical in the
// AlexeyAB and pjreddie trees for what is used here), so that the network
// input equals Darknet's input.npy in ../shared/golden bit for bit. The float
// expressions below keep Darknet's exact operation order and types: changing
// e.g. `(1 - dx) * a + dx * b` into `a + dx * (b - a)` changes the rounding.
//
// Bit-exactness also assumes that the compiler does not fuse a*b + c into an
// FMA. That holds on x86-64 without -march (no FMA instructions); clang is
// told so below; for GCC on FMA targets (AArch64) build this file with
// -ffp-contract=off.
//
//===----------------------------------------------------------------------===//

#include "qsim/Runtime/Image.h"
#include "qsim/Runtime/AtomicFile.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <optional>
#include <stb_image.h>
#include <stb_image_write.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

using namespace qsim::rt;

namespace {

Image makeImage(int w, int h, int c, float fill = 0.0f) {
  Image im;
  im.w = std::max(w, 0);
  im.h = std::max(h, 0);
  im.c = std::max(c, 0);
  im.data.assign((size_t)im.w * im.h * im.c, fill);
  return im;
}

/// Darknet's set_pixel: writes outside the image are ignored.
void setPixel(Image &im, int x, int y, int ch, float v) {
  if (x < 0 || y < 0 || ch < 0 || x >= im.w || y >= im.h || ch >= im.c)
    return;
  im.at(x, y, ch) = v;
}

/// Darknet's embed_image: copies `src` into `dst` at (dx, dy), clipped.
void embedImage(const Image &src, Image &dst, int dx, int dy) {
  for (int k = 0; k < src.c; ++k)
    for (int y = 0; y < src.h; ++y)
      for (int x = 0; x < src.w; ++x)
        setPixel(dst, dx + x, dy + y, k, src.at(x, y, k));
}

/// A 5x7 bitmap font for ASCII 32..126: seven rows per glyph, top first, bit
/// 4 = leftmost column.
const unsigned char kFont[95][7] = {
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, // ' '
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04}, // '!'
    {0x0A, 0x0A, 0x0A, 0x00, 0x00, 0x00, 0x00}, // '"'
    {0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A}, // '#'
    {0x04, 0x0F, 0x14, 0x0E, 0x05, 0x1E, 0x04}, // '$'
    {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}, // '%'
    {0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D}, // '&'
    {0x0C, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00}, // '\''
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}, // '('
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}, // ')'
    {0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00}, // '*'
    {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00}, // '+'
    {0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08}, // ','
    {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}, // '-'
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}, // '.'
    {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00}, // '/'
    {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}, // '0'
    {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}, // '1'
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}, // '2'
    {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}, // '3'
    {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}, // '4'
    {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}, // '5'
    {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}, // '6'
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}, // '7'
    {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}, // '8'
    {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}, // '9'
    {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}, // ':'
    {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x04, 0x08}, // ';'
    {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02}, // '<'
    {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00}, // '='
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08}, // '>'
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04}, // '?'
    {0x0E, 0x11, 0x01, 0x0D, 0x15, 0x15, 0x0E}, // '@'
    {0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11}, // 'A'
    {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E}, // 'B'
    {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}, // 'C'
    {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C}, // 'D'
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}, // 'E'
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}, // 'F'
    {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}, // 'G'
    {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}, // 'H'
    {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}, // 'I'
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C}, // 'J'
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}, // 'K'
    {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F}, // 'L'
    {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}, // 'M'
    {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}, // 'N'
    {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}, // 'O'
    {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10}, // 'P'
    {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}, // 'Q'
    {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11}, // 'R'
    {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}, // 'S'
    {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}, // 'T'
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}, // 'U'
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04}, // 'V'
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}, // 'W'
    {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11}, // 'X'
    {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}, // 'Y'
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F}, // 'Z'
    {0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E}, // '['
    {0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00}, // '\\'
    {0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E}, // ']'
    {0x04, 0x0A, 0x11, 0x00, 0x00, 0x00, 0x00}, // '^'
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F}, // '_'
    {0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00}, // '`'
    {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F}, // 'a'
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E}, // 'b'
    {0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E}, // 'c'
    {0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F}, // 'd'
    {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E}, // 'e'
    {0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08}, // 'f'
    {0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x0E}, // 'g'
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11}, // 'h'
    {0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E}, // 'i'
    {0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0C}, // 'j'
    {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12}, // 'k'
    {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}, // 'l'
    {0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11}, // 'm'
    {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11}, // 'n'
    {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E}, // 'o'
    {0x00, 0x00, 0x1E, 0x11, 0x1E, 0x10, 0x10}, // 'p'
    {0x00, 0x00, 0x0D, 0x13, 0x0F, 0x01, 0x01}, // 'q'
    {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10}, // 'r'
    {0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E}, // 's'
    {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06}, // 't'
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D}, // 'u'
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04}, // 'v'
    {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A}, // 'w'
    {0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11}, // 'x'
    {0x00, 0x00, 0x11, 0x11, 0x0F, 0x01, 0x0E}, // 'y'
    {0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F}, // 'z'
    {0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02}, // '{'
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}, // '|'
    {0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08}, // '}'
    {0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00}, // '~'
};

/// Writes colour (r, g, b) at (x, y) if inside; images with fewer than three
/// channels get the mean.
void putColor(Image &im, int x, int y, const float rgb[3]) {
  if (x < 0 || y < 0 || x >= im.w || y >= im.h)
    return;
  if (im.c >= 3) {
    for (int k = 0; k < 3; ++k)
      im.at(x, y, k) = rgb[k];
  } else {
    for (int k = 0; k < im.c; ++k)
      im.at(x, y, k) = (rgb[0] + rgb[1] + rgb[2]) / 3;
  }
}

/// Darknet's draw_box: one rectangle outline, corners clamped into the image.
void drawRect(Image &im, int x1, int y1, int x2, int y2, const float rgb[3]) {
  x1 = std::clamp(x1, 0, im.w - 1);
  x2 = std::clamp(x2, 0, im.w - 1);
  y1 = std::clamp(y1, 0, im.h - 1);
  y2 = std::clamp(y2, 0, im.h - 1);
  for (int x = x1; x <= x2; ++x) {
    putColor(im, x, y1, rgb);
    putColor(im, x, y2, rgb);
  }
  for (int y = y1; y <= y2; ++y) {
    putColor(im, x1, y, rgb);
    putColor(im, x2, y, rgb);
  }
}

/// Why a PNG of this header (signature, IHDR: the first 29 bytes) cannot be
/// loaded because of its size, or nullopt. stbi_info (stbi__info_main)
/// tries one format after the other: when the PNG reader refuses the size
/// ("too large"), it goes on to the other formats and reports the last
/// failure, "unknown image type", which hides stb's reason and the size.
/// stb's header checks (stbi__parse_png_file) are repeated here, so that
/// "too large" is said exactly when stb said it.
std::optional<std::string> pngSizeProblem(const unsigned char head[29],
                                          const std::string &stbReason,
                                          int64_t maxPixels) {
  if (std::memcmp(head, "\x89PNG\r\n\x1a\n", 8) != 0 ||
      std::memcmp(head + 12, "IHDR", 4) != 0)
    return std::nullopt;
  auto be32 = [&](int at) {
    return (uint32_t)head[at] << 24 | (uint32_t)head[at + 1] << 16 |
           (uint32_t)head[at + 2] << 8 | (uint32_t)head[at + 3];
  };
  uint32_t w = be32(16), h = be32(20);
  unsigned depth = head[24], color = head[25];
  bool stbTooLarge = false;
  constexpr uint32_t kMaxSide = 1u << 24; // STBI_MAX_DIMENSIONS
  if (w > kMaxSide || h > kMaxSide) {
    stbTooLarge = true;
  } else if ((depth == 1 || depth == 2 || depth == 4 || depth == 8 ||
              depth == 16) &&
             color <= 6 && !(color == 3 && depth == 16) &&
             (color == 3 || !(color & 1)) && head[26] == 0 && head[27] == 0 &&
             head[28] <= 1 && w && h) {
    // Components per pixel as stb counts them (a palette counts 4).
    uint32_t n = color == 3 ? 4 : (color & 2 ? 3 : 1) + (color & 4 ? 1 : 0);
    stbTooLarge = (1u << 30) / w / n < h;
  }
  // Only when stb failed for the size (said so, or hid it behind the
  // format loop): a PNG refused for another reason keeps that reason.
  stbTooLarge &= stbReason == "too large" || stbReason == "unknown image type";
  uint64_t pixels = (uint64_t)w * h;
  bool overLimit = maxPixels > 0 && pixels > (uint64_t)maxPixels;
  if (!stbTooLarge && !overLimit)
    return std::nullopt;
  std::string text = "the PNG is " + std::to_string(w) + "x" +
                     std::to_string(h) + " = " + std::to_string(pixels) +
                     " pixels";
  if (overLimit)
    text += ", more than the limit of " + std::to_string(maxPixels);
  if (stbTooLarge)
    text += std::string(overLimit ? "; " : ", ") +
            "too large for the image decoder (stb_image: \"too large\"; it "
            "takes at most 2^24 pixels a side and 2^30 bytes of pixels)";
  return text;
}

} // namespace

bool qsim::rt::loadImage(const std::string &path, Image &out,
                         std::string &error, int64_t maxPixels) {
  FILE *f = std::fopen(path.c_str(), "rb");
  if (!f) {
    error = "cannot open image '" + path + "': " + std::strerror(errno);
    return false;
  }
  std::unique_ptr<FILE, int (*)(FILE *)> closer(f, std::fclose);
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
    error = "cannot open image '" + path + "': is a directory";
    return false;
  }
  auto reason = [&] {
    const char *r = stbi_failure_reason();
    std::string why = r ? r : "unknown error";
    unsigned char head[29];
    std::rewind(f);
    if (std::fread(head, 1, sizeof(head), f) == sizeof(head))
      if (std::optional<std::string> png = pngSizeProblem(head, why, maxPixels))
        return *png;
    return why;
  };
  int w = 0, h = 0, c = 0;
  if (maxPixels > 0) {
    // Check the size from the header before stb allocates the pixels.
    if (!stbi_info_from_file(f, &w, &h, &c)) {
      error = "cannot decode image '" + path + "': " + reason();
      return false;
    }
    if ((int64_t)w * h > maxPixels) {
      error = "image '" + path + "' is " + std::to_string(w) + "x" +
              std::to_string(h) + " = " + std::to_string((int64_t)w * h) +
              " pixels, more than the limit of " + std::to_string(maxPixels);
      return false;
    }
  }
  // As load_image_stb(filename, 3): stb converts grey, grey+alpha and RGBA
  // to RGB itself (alpha dropped, 16-bit PNGs reduced to 8 bits).
  unsigned char *pixels = stbi_load_from_file(f, &w, &h, &c, 3);
  if (!pixels) {
    error = "cannot decode image '" + path + "': " + reason();
    return false;
  }
  std::unique_ptr<unsigned char, void (*)(void *)> freer(pixels,
                                                         stbi_image_free);
  // Darknet computes `(float)u8 / 255.` in double and rounds to float; a table
  // of those 256 values gives the same bits.
  float lut[256];
  for (int i = 0; i < 256; ++i)
    lut[i] = (float)((double)i / 255.);
  Image im = makeImage(w, h, 3);
  const size_t plane = (size_t)w * h;
  for (size_t i = 0; i < plane; ++i)
    for (int k = 0; k < 3; ++k)
      im.data[k * plane + i] = lut[pixels[3 * i + k]];
  out = std::move(im);
  return true;
}

namespace {
/// Darknet's resize_image of a srcW x srcH x c image whose pixel (col, row)
/// of channel k is `at(k, row, col)`. The horizontal pass is computed only
/// for the source rows the vertical pass reads (at most two per output row);
/// each value is the one the full pass computes, so the result is Darknet's
/// bit for bit.
template <typename Source>
Image resizeFrom(const Source &at, int srcW, int srcH, int c, int w, int h) {
  Image out = makeImage(w, h, c);
  if (out.data.empty() || srcW <= 0 || srcH <= 0)
    return out;

  // The scales are (old-1)/(new-1) in float (corner-aligned sampling). For a
  // new size of 1 Darknet divides by zero: the column case never uses the
  // scale (the only column is the last one, which copies the last source
  // column), but the row case computes 0 * inf = NaN and reads row
  // (int)NaN, which is undefined. We use scale 0 there, i.e. row 0, the
  // value the formula gives for any finite scale.
  const float wScale = w > 1 ? (float)(srcW - 1) / (float)(w - 1) : 0.0f;
  const float hScale = h > 1 ? (float)(srcH - 1) / (float)(h - 1) : 0.0f;

  // Pass 2 below reads source row iy and, except on the last output row (and
  // for a one-row source), row iy + 1.
  std::vector<int> rowIndex(h), partRow(srcH, -1);
  int rows = 0;
  auto need = [&](int r) {
    if (partRow[r] < 0)
      partRow[r] = rows++;
  };
  for (int r = 0; r < h; ++r) {
    float sy = (float)r * hScale;
    int iy = std::min((int)sy, srcH - 1);
    rowIndex[r] = iy;
    need(iy);
    if (!(r == h - 1 || srcH == 1 || iy + 1 >= srcH))
      need(iy + 1);
  }

  // Pass 1, horizontal, on the rows needed: part is w x rows.
  std::vector<int> ix(w);
  std::vector<float> fx(w);
  for (int col = 0; col < w; ++col) {
    float sx = (float)col * wScale;
    ix[col] = (int)sx;
    fx[col] = sx - (float)ix[col];
  }
  std::vector<float> part((size_t)w * rows * c);
  for (int k = 0; k < c; ++k)
    for (int r = 0; r < srcH; ++r) {
      if (partRow[r] < 0)
        continue;
      float *dst = &part[((size_t)k * rows + partRow[r]) * w];
      for (int col = 0; col < w; ++col) {
        // ix + 1 < srcW always holds unless the new width exceeds about
        // 2^23, where float rounding could reach the last column.
        if (col == w - 1 || srcW == 1 || ix[col] >= srcW - 1) {
          dst[col] = at(k, r, srcW - 1);
          continue;
        }
        float dx = fx[col];
        dst[col] = (1 - dx) * at(k, r, ix[col]) + dx * at(k, r, ix[col] + 1);
      }
    }

  // Pass 2, vertical. Darknet stores (1-dy)*row[iy] and then adds
  // dy*row[iy+1] as a separate rounding step, except on the last output row
  // (and for a one-row source), which keeps only the first term even when
  // float rounding left dy close to 1.
  for (int k = 0; k < c; ++k) {
    for (int r = 0; r < h; ++r) {
      float sy = (float)r * hScale;
      int iy = rowIndex[r];
      float dy = sy - (float)iy;
      float *dst = &out.data[((size_t)k * h + r) * w];
      const float *row0 = &part[((size_t)k * rows + partRow[iy]) * w];
      for (int col = 0; col < w; ++col)
        dst[col] = (1 - dy) * row0[col];
      if (r == h - 1 || srcH == 1 || iy + 1 >= srcH)
        continue;
      const float *row1 = &part[((size_t)k * rows + partRow[iy + 1]) * w];
      for (int col = 0; col < w; ++col)
        dst[col] += dy * row1[col];
    }
  }
  return out;
}
} // namespace

Image qsim::rt::resizeImage(const Image &im, int w, int h) {
  if (im.w == w && im.h == h)
    return im;
  const size_t plane = (size_t)im.w * im.h;
  auto at = [&](int k, int r, int col) {
    return im.data[k * plane + (size_t)r * im.w + col];
  };
  return resizeFrom(at, im.w, im.h, im.c, w, h);
}

Image qsim::rt::cropResizeBytes(const uint8_t *planes, int srcW, int srcH,
                                int c, int dx, int dy, int cropW, int cropH,
                                int w, int h) {
  float lut[256];
  for (int i = 0; i < 256; ++i)
    lut[i] = (float)((double)i / 255.);
  const size_t plane = (size_t)srcW * srcH;
  // Reads outside the source are clamped to its border (cropImage); an
  // empty source reads as 0.
  auto at = [&](int k, int r, int col) {
    if (srcW <= 0 || srcH <= 0)
      return 0.0f;
    int sr = std::clamp(r + dy, 0, srcH - 1);
    int sc = std::clamp(col + dx, 0, srcW - 1);
    return lut[planes[k * plane + (size_t)sr * srcW + sc]];
  };
  if (cropW == w && cropH == h) {
    Image out = makeImage(w, h, c);
    for (int k = 0; k < c; ++k)
      for (int r = 0; r < h; ++r)
        for (int col = 0; col < w; ++col)
          out.data[((size_t)k * h + r) * w + col] = at(k, r, col);
    return out;
  }
  return resizeFrom(at, cropW, cropH, c, w, h);
}

Image qsim::rt::letterboxImage(const Image &im, int w, int h) {
  Image boxed = makeImage(w, h, im.c, 0.5f);
  if (im.w <= 0 || im.h <= 0 || boxed.data.empty())
    return boxed;
  int newW, newH;
  // Products in 64 bits: Darknet's int products are the same where they do
  // not overflow.
  if (((float)w / im.w) < ((float)h / im.h)) {
    newW = w;
    newH = (int)(((int64_t)im.h * w) / im.w);
  } else {
    newH = h;
    newW = (int)(((int64_t)im.w * h) / im.h);
  }
  Image resized = resizeImage(im, newW, newH);
  embedImage(resized, boxed, (w - newW) / 2, (h - newH) / 2);
  return boxed;
}

Image qsim::rt::resizeMin(const Image &im, int min) {
  if (im.w <= 0 || im.h <= 0)
    return im;
  int w = im.w, h = im.h;
  if (w < h) {
    h = (int)(((int64_t)h * min) / w);
    w = min;
  } else {
    w = (int)(((int64_t)w * min) / h);
    h = min;
  }
  if (w == im.w && h == im.h)
    return im;
  return resizeImage(im, w, h);
}

Image qsim::rt::cropImage(const Image &im, int dx, int dy, int w, int h) {
  Image cropped = makeImage(w, h, im.c);
  // An empty source reads as 0, as in Darknet (whose bounds check then
  // fails).
  if (im.w <= 0 || im.h <= 0)
    return cropped;
  for (int k = 0; k < cropped.c; ++k)
    for (int j = 0; j < cropped.h; ++j) {
      // Reads outside the source are clamped to its border.
      int r = std::clamp(j + dy, 0, im.h - 1);
      for (int i = 0; i < cropped.w; ++i) {
        int c = std::clamp(i + dx, 0, im.w - 1);
        cropped.at(i, j, k) = im.at(c, r, k);
      }
    }
  return cropped;
}

Preprocess qsim::rt::detectorPreprocess(bool pjreddie, bool letterBoxCfg) {
  return pjreddie || letterBoxCfg ? Preprocess::Letterbox : Preprocess::Resize;
}

Tensor qsim::rt::makeNetworkInput(const Image &im, int netW, int netH,
                                  Preprocess p) {
  if (netW <= 0 || netH <= 0)
    return Tensor();
  Image sized;
  switch (p) {
  case Preprocess::Resize:
    sized = resizeImage(im, netW, netH);
    break;
  case Preprocess::Letterbox:
    sized = letterboxImage(im, netW, netH);
    break;
  case Preprocess::CenterCrop: {
    // AlexeyAB `classifier predict`: the shorter side to net.w (not net.h),
    // then a net.w x net.h crop from the centre.
    Image r = resizeMin(im, netW);
    sized = cropImage(r, (r.w - netW) / 2, (r.h - netH) / 2, netW, netH);
    break;
  }
  }
  Tensor t(DType::F32, sized.c, netH, netW);
  std::memcpy(t.raw(), sized.data.data(), sized.data.size() * sizeof(float));
  return t;
}

bool qsim::rt::writePng(const std::string &path, const Image &im,
                        std::string &error) {
  if (im.w <= 0 || im.h <= 0 || (im.c != 1 && im.c != 3) ||
      im.data.size() != (size_t)im.w * im.h * im.c) {
    error = "cannot write '" + path + "': not a " +
            "non-empty 1- or 3-channel image (" + std::to_string(im.w) + "x" +
            std::to_string(im.h) + "x" + std::to_string(im.c) + ")";
    return false;
  }
  // Rounded, not truncated as in Darknet's save_image: (unsigned char)(255*v)
  // of v = u8/255 can give u8-1, and a loaded-then-saved image should keep
  // its pixels.
  auto quantize = [](float v) -> unsigned char {
    if (!(v > 0.0f)) // also NaN
      return 0;
    if (v >= 1.0f)
      return 255;
    return (unsigned char)(v * 255.0f + 0.5f);
  };
  const size_t plane = (size_t)im.w * im.h;
  std::vector<unsigned char> rgb(plane * 3);
  for (size_t i = 0; i < plane; ++i)
    for (int k = 0; k < 3; ++k)
      rgb[3 * i + k] = quantize(im.data[(im.c == 3 ? k : 0) * plane + i]);

  std::vector<unsigned char> png;
  auto append = [](void *ctx, void *data, int size) {
    auto *buf = static_cast<std::vector<unsigned char> *>(ctx);
    auto *bytes = static_cast<unsigned char *>(data);
    buf->insert(buf->end(), bytes, bytes + size);
  };
  if (!stbi_write_png_to_func(append, &png, im.w, im.h, 3, rgb.data(),
                              im.w * 3)) {
    error = "cannot encode '" + path + "' as PNG";
    return false;
  }
  return writeFileAtomically(path, png.data(), png.size(), error);
}

void qsim::rt::drawBox(Image &im, int left, int top, int right, int bottom,
                       int thickness, float r, float g, float b) {
  if (im.w <= 0 || im.h <= 0)
    return;
  const float rgb[3] = {r, g, b};
  // Darknet's draw_box_width: nested outlines, each one pixel further in.
  for (int i = 0; i < thickness; ++i)
    drawRect(im, left + i, top + i, right - i, bottom - i, rgb);
}

void qsim::rt::drawLabel(Image &im, int left, int top, const std::string &text,
                         float r, float g, float b) {
  if (im.w <= 0 || im.h <= 0 || text.empty())
    return;
  // Glyphs are scaled so that the text is about 3% of the image height, the
  // size Darknet picks for its label images.
  const int s = std::max(1, im.h * 3 / 800);
  const int advance = 6 * s; // 5 columns + 1 column of spacing
  const int barW = (int)text.size() * advance + s;
  const int barH = 9 * s; // 7 rows + 1 row of margin above and below
  // As Darknet's draw_label: above `top` if it fits, else below it.
  const int barTop = top - barH >= 0 ? top - barH : top;
  const float bar[3] = {r, g, b};
  for (int y = 0; y < barH; ++y)
    for (int x = 0; x < barW; ++x)
      putColor(im, left + x, barTop + y, bar);
  // Darknet writes black text; we switch to white on dark bars, where black
  // is unreadable.
  const float luma = 0.299f * r + 0.587f * g + 0.114f * b;
  const float ink[3] = {luma < 0.5f ? 1.0f : 0.0f, luma < 0.5f ? 1.0f : 0.0f,
                        luma < 0.5f ? 1.0f : 0.0f};
  for (size_t n = 0; n < text.size(); ++n) {
    unsigned char ch = (unsigned char)text[n];
    if (ch < 32 || ch > 126)
      ch = '?';
    const unsigned char *glyph = kFont[ch - 32];
    const int x0 = left + s + (int)n * advance, y0 = barTop + s;
    for (int gy = 0; gy < 7; ++gy)
      for (int gx = 0; gx < 5; ++gx) {
        if (!(glyph[gy] & (0x10 >> gx)))
          continue;
        for (int dy = 0; dy < s; ++dy)
          for (int dx = 0; dx < s; ++dx)
            putColor(im, x0 + gx * s + dx, y0 + gy * s + dy, ink);
      }
  }
}

void qsim::rt::classColor(int cls, int classes, float &r, float &g, float &b) {
  if (classes <= 0) {
    r = g = b = 1.0f;
    return;
  }
  static const float colors[6][3] = {{1, 0, 1}, {0, 0, 1}, {0, 1, 1},
                                     {0, 1, 0}, {1, 1, 0}, {1, 0, 0}};
  // Darknet's get_color: linear interpolation along the six colours.
  auto getColor = [&](int c, int x) {
    float ratio = ((float)x / classes) * 5;
    int i = (int)std::floor(ratio);
    int j = (int)std::ceil(ratio);
    ratio -= i;
    return (1 - ratio) * colors[i][c] + ratio * colors[j][c];
  };
  // draw_detections: offset = class * 123457 % classes, computed in 64 bits
  // (Darknet's int product overflows from class 17395 on).
  int offset = (int)(((int64_t)cls * 123457) % classes);
  if (offset < 0)
    offset += classes;
  r = getColor(2, offset);
  g = getColor(1, offset);
  b = getColor(0, offset);
}

bool qsim::rt::listImageFiles(const std::string &path,
                              std::vector<std::string> &out,
                              std::string &error) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    error = "no such image or directory: '" + path + "'";
    return false;
  }
  if (!S_ISDIR(st.st_mode)) {
    out.push_back(path);
    return true;
  }
  DIR *dir = opendir(path.c_str());
  if (!dir) {
    error = "cannot list '" + path + "'";
    return false;
  }
  std::vector<std::string> found;
  while (dirent *e = readdir(dir)) {
    std::string name = e->d_name;
    size_t dot = name.rfind('.');
    if (dot == std::string::npos)
      continue;
    std::string ext = name.substr(dot + 1);
    for (char &c : ext)
      c = (char)tolower((unsigned char)c);
    static const char *exts[] = {"jpg", "jpeg", "png", "bmp",
                                 "tga", "gif",  "ppm", "pgm"};
    for (const char *x : exts)
      if (ext == x) {
        std::string sep = path.back() == '/' ? "" : "/";
        found.push_back(path + sep + name);
        break;
      }
  }
  closedir(dir);
  if (found.empty()) {
    error = "no images (jpg, png, bmp, ...) in '" + path + "'";
    return false;
  }
  std::sort(found.begin(), found.end());
  out.insert(out.end(), found.begin(), found.end());
  return true;
}
