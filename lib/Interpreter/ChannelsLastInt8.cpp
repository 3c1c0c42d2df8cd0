//===- ChannelsLastInt8.cpp - fast int8 kernels, channels last ------------===//

#include "ChannelsLastInt8.h"

#include <algorithm>
#include <cstring>

using namespace qsim;
using namespace qsim::interp;

// Small layers run on the calling thread: waking a team costs more than
// they take.
static constexpr int64_t kParallelBytes = 1 << 15;

/// dst = max(dst, src) over n bytes (vectorised by the compiler).
static inline void maxInto(int8_t *__restrict dst, const int8_t *__restrict src,
                           int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    dst[i] = std::max(dst[i], src[i]);
}

void cl::maxPoolInt8(const int8_t *in, const CHW &inShape, int64_t size,
                     int64_t sy, int64_t sx, int64_t padding, int8_t *rows,
                     int8_t *out, const CHW &outShape) {
  const int64_t C = inShape.c, off = -(padding / 2);
  const int64_t rowBytes = outShape.w * C;
  const bool parallel = inShape.size() > kParallelBytes;
  // rows[iy][ox] = max over the window's in-bounds columns of input row iy.
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t iy = 0; iy < inShape.h; ++iy) {
    const int8_t *x = in + iy * inShape.w * C;
    int8_t *r = rows + iy * rowBytes;
    for (int64_t ox = 0; ox < outShape.w; ++ox) {
      int8_t *d = r + ox * C;
      std::memset(d, -128, C);
      for (int64_t m = 0; m < size; ++m) {
        int64_t ix = ox * sx + off + m;
        if (ix >= 0 && ix < inShape.w)
          maxInto(d, x + ix * C, C);
      }
    }
  }
  // out[oy] = max over the window's in-bounds rows.
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t oy = 0; oy < outShape.h; ++oy) {
    int8_t *d = out + oy * rowBytes;
    std::memset(d, -128, rowBytes);
    for (int64_t n = 0; n < size; ++n) {
      int64_t iy = oy * sy + off + n;
      if (iy >= 0 && iy < inShape.h)
        maxInto(d, rows + iy * rowBytes, rowBytes);
    }
  }
}

cl::Int8Table cl::routeTable(int32_t zpIn, int32_t zpOut, rt::FixedPoint m,
                             rt::Rounding rounding) {
  Int8Table t;
  for (int v = -128; v < 128; ++v) {
    int8_t x = (int8_t)v, y;
    ref::routeSliceInt8(&x, CHW{1, 1, 1}, 1, 0, zpIn, zpOut, m, false, rounding,
                        &y, 0);
    t[(uint8_t)x] = y;
  }
  return t;
}

void cl::routeInt8(const std::vector<RoutePart> &parts, int64_t pixels,
                   int64_t outChannels, int8_t *out) {
  const bool parallel = pixels * outChannels > kParallelBytes;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t p = 0; p < pixels; ++p) {
    int8_t *o = out + p * outChannels;
    for (const RoutePart &part : parts) {
      const int8_t *s = part.data + p * part.channels + part.first;
      if (!part.table) {
        std::memcpy(o, s, part.count);
      } else {
        const int8_t *t = part.table->data();
        for (int64_t c = 0; c < part.count; ++c)
          o[c] = t[(uint8_t)s[c]];
      }
      o += part.count;
    }
  }
}

cl::ShortcutInt8::ShortcutInt8(const ref::ShortcutInt8Params &p, size_t inputs)
    : params(p), terms(inputs) {
  for (size_t k = 0; k < inputs; ++k)
    for (int v = -128; v < 128; ++v)
      terms[k][(uint8_t)v] = p.term(k, (int8_t)v);
  if (inputs != 2)
    return;
  pairTable.resize(256 * 256);
  for (int a = -128; a < 128; ++a)
    for (int b = -128; b < 128; ++b)
      pairTable[(a + 128) * 256 + (b + 128)] =
          p.finish(terms[0][(uint8_t)a] + terms[1][(uint8_t)b]);
}

void cl::ShortcutInt8::run(const std::vector<const int8_t *> &ins, int64_t n,
                           int8_t *out) const {
  const bool parallel = n > 4 * kParallelBytes;
  if (ins.size() == 2) {
    const int8_t *__restrict a = ins[0], *__restrict b = ins[1];
    const int8_t *t = pairTable.data() + 128 * 256 + 128;
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t i = 0; i < n; ++i)
      out[i] = t[a[i] * 256 + b[i]];
    return;
  }
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t i = 0; i < n; ++i) {
    int32_t sum = 0;
    for (size_t k = 0; k < ins.size(); ++k)
      sum += terms[k][(uint8_t)ins[k][i]];
    out[i] = params.finish(sum);
  }
}

void cl::upsampleInt8(const int8_t *in, const CHW &inShape, int64_t stride,
                      int8_t *out, const CHW &outShape) {
  const int64_t C = inShape.c, rowBytes = outShape.w * C;
  const bool parallel = outShape.size() > 4 * kParallelBytes;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t y = 0; y < outShape.h; ++y) {
    const int8_t *s = in + (y / stride) * inShape.w * C;
    int8_t *d = out + y * rowBytes;
    for (int64_t x = 0; x < outShape.w; ++x)
      std::memcpy(d + x * C, s + (x / stride) * C, C);
  }
}
