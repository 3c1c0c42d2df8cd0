//===- ChannelsLastInt8.cpp - fast int8 kernels, channels last ------------===//

#include "ChannelsLastInt8.h"

#include <algorithm>
#include <cstring>
#include <immintrin.h>

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
  // rows[iy][ox] = max over the window's in-bounds columns of input row iy:
  // tap m of output column ox reads column ox * sx + off + m, inside the
  // input for ox in [first, last].
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t iy = 0; iy < inShape.h; ++iy) {
    const int8_t *x = in + iy * inShape.w * C;
    int8_t *r = rows + iy * rowBytes;
    std::memset(r, -128, rowBytes);
    for (int64_t m = 0; m < size; ++m) {
      const int64_t shift = off + m;
      if (shift > inShape.w - 1)
        continue;
      const int64_t first = shift >= 0 ? 0 : (-shift + sx - 1) / sx;
      const int64_t last =
          std::min(outShape.w - 1, (inShape.w - 1 - shift) / sx);
      if (last < first)
        continue;
      if (sx == 1) // the taps of consecutive columns are contiguous
        maxInto(r + first * C, x + (first + shift) * C, (last - first + 1) * C);
      else
        for (int64_t ox = first; ox <= last; ++ox)
          maxInto(r + ox * C, x + (ox * sx + shift) * C, C);
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
  pairTable.resize(256 * 256 + 3); // + the gather's padding
  for (int a = -128; a < 128; ++a)
    for (int b = -128; b < 128; ++b)
      pairTable[(a + 128) * 256 + (b + 128)] =
          p.finish(terms[0][(uint8_t)a] + terms[1][(uint8_t)b]);
}

namespace {

/// out[i] = table[a[i] * 256 + b[i]] (table centred on (0, 0)).
void pairLookup(const int8_t *__restrict a, const int8_t *__restrict b,
                int64_t n, const int8_t *table, int8_t *__restrict out) {
  for (int64_t i = 0; i < n; ++i)
    out[i] = table[a[i] * 256 + b[i]];
}

/// The same with 16 lookups per gather; the gather reads 4 bytes at each
/// index, so the table has 3 bytes of padding after its end.
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"))) void
pairLookupAvx512(const int8_t *a, const int8_t *b, int64_t n,
                 const int8_t *table, int8_t *out) {
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 k =
        n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
    __m512i av = _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(k, a + i));
    __m512i bv = _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(k, b + i));
    __m512i idx = _mm512_add_epi32(_mm512_slli_epi32(av, 8), bv);
    __m512i v =
        _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), k, idx, table, 1);
    _mm512_mask_cvtepi32_storeu_epi8(out + i, k, v);
  }
}

bool hasAvx512() {
  static const bool yes =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  return yes;
}

} // namespace

void cl::ShortcutInt8::run(const std::vector<const int8_t *> &ins, int64_t n,
                           int8_t *out) const {
  const bool parallel = n > 4 * kParallelBytes;
  if (ins.size() == 2) {
    const int8_t *t = pairTable.data() + 128 * 256 + 128;
    auto lookup = hasAvx512() ? pairLookupAvx512 : pairLookup;
    const int64_t chunk = 16384, chunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t c = 0; c < chunks; ++c) {
      int64_t i = c * chunk;
      lookup(ins[0] + i, ins[1] + i, std::min(chunk, n - i), t, out + i);
    }
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

namespace {

/// rt::quantizeValue on 16 lanes: v = x * inv; beyond +-1e9 the bound,
/// else v rounded half away from zero (v >= 0 ? v + 0.5 : v - 0.5,
/// truncated) plus the zero point, saturated to int8.
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"))) void
quantizeAvx512(const float *in, int64_t n, float inv, int32_t zp, int8_t *out) {
  const __m512 invv = _mm512_set1_ps(inv), halfv = _mm512_set1_ps(0.5f);
  const __m512 zero = _mm512_setzero_ps(), bigv = _mm512_set1_ps(1e9f);
  const __m512i zpv = _mm512_set1_epi32(zp);
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 k =
        n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
    __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, in + i), invv);
    // The product is rounded before the +-0.5 as in the scalar form: no
    // fused multiply-add across this point.
    __asm__("" : "+v"(v));
    __mmask16 nonNegative = _mm512_cmp_ps_mask(v, zero, _CMP_GE_OQ);
    __m512 r = _mm512_mask_blend_ps(nonNegative, _mm512_sub_ps(v, halfv),
                                    _mm512_add_ps(v, halfv));
    __m512i q = _mm512_add_epi32(zpv, _mm512_cvttps_epi32(r));
    // Beyond +-1e9 the scalar form clamps before converting.
    q = _mm512_mask_mov_epi32(q, _mm512_cmp_ps_mask(v, bigv, _CMP_GT_OQ),
                              _mm512_set1_epi32(127));
    q = _mm512_mask_mov_epi32(
        q, _mm512_cmp_ps_mask(v, _mm512_sub_ps(zero, bigv), _CMP_LT_OQ),
        _mm512_set1_epi32(-128));
    _mm512_mask_cvtsepi32_storeu_epi8(out + i, k, q);
  }
}

} // namespace

void cl::quantize(const float *in, int64_t n, float scale, int32_t zp,
                  int8_t *out) {
  if (!hasAvx512()) {
    ref::quantize(in, n, scale, zp, out);
    return;
  }
  const float inv = 1.0f / scale;
  const int64_t chunk = 16384, chunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (n > 4 * kParallelBytes)
  for (int64_t c = 0; c < chunks; ++c)
    quantizeAvx512(in + c * chunk, std::min(chunk, n - c * chunk), inv, zp,
                   out + c * chunk);
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
