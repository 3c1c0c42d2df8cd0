//===- FastRequant.cpp - vectorised requantization -----------------------===//

#include "FastRequant.h"

#include <algorithm>
#include <immintrin.h>

using namespace qsim;
using namespace qsim::interp;

RequantTables::RequantTables(const ref::Requant &r, int64_t channelCount) {
  channels = channelCount;
  repeat = channels >= 64 ? 1 : (64 + channels - 1) / channels;
  size_t n = r.mult.size();
  bias = r.bias;
  zpOut = r.zpOut;
  leaky = r.act == Activation::leaky;
  tosa = r.rounding == rt::Rounding::TosaDouble;
  if (r.act == Activation::relu || r.act == Activation::relu6)
    lo = std::max(-128, r.zpOut);
  if (r.act == Activation::relu6)
    hi = std::min(127, r.q6);
  auto fill = [&](const std::vector<rt::FixedPoint> &fps,
                  std::vector<int32_t> &m, std::vector<int32_t> &ls,
                  std::vector<int32_t> &rs, std::vector<int32_t> &ts) {
    for (size_t i = 0; i < n; ++i) {
      rt::FixedPoint fp = i < fps.size() ? fps[i] : rt::FixedPoint();
      m.push_back(fp.multiplier);
      ls.push_back(std::max(31 - fp.shift, 0));
      rs.push_back(std::max(fp.shift - 31, 0));
      ts.push_back(fp.shift);
    }
  };
  fill(r.mult, mult, leftShift, rightShift, totalShift);
  fill(leaky ? r.negMult : r.mult, negMult, negLeftShift, negRightShift,
       negTotalShift);
  for (size_t f = 0; f < leftShift.size(); ++f)
    noLeftShift &= leftShift[f] == 0 && negLeftShift[f] == 0;
  for (auto *v : {&bias, &mult, &negMult, &leftShift, &rightShift,
                  &negLeftShift, &negRightShift, &totalShift, &negTotalShift}) {
    std::vector<int32_t> one(v->begin(), v->end());
    v->clear();
    for (int64_t k = 0; k < repeat; ++k)
      v->insert(v->end(), one.begin(), one.end());
  }
  const size_t row = mult.size();
  // (h + 2^(r-1) - [h < 0 and r > 0]) >> r, plus the zero point, as one
  // constant: (h + c + zp * 2^r) >> r. A leaky layer's negative values have
  // their own r. setAccumulatorBound checks that this cannot overflow.
  auto constant = [&](int32_t r, bool negative) {
    int64_t c = (r > 0 ? (int64_t)1 << (r - 1) : 0) - (negative && r > 0) +
                (int64_t)zpOut * ((int64_t)1 << r);
    return (int32_t)std::clamp<int64_t>(c, INT32_MIN, INT32_MAX);
  };
  for (size_t i = 0; i < row; ++i) {
    size_t pair = i ^ 1;
    multSwapped.push_back(pair < row ? mult[pair] : 0);
    roundUp.push_back(constant(rightShift[i], false));
    roundDown.push_back(
        constant(leaky ? negRightShift[i] : rightShift[i], true));
  }
}

void RequantTables::setAccumulatorBound(int64_t maxAbs) {
  int64_t maxBias = 0;
  for (int32_t b : bias)
    maxBias = std::max<int64_t>(maxBias, b < 0 ? -(int64_t)b : b);
  biasAddCannotOverflow = maxAbs + maxBias <= INT32_MAX;
  // |h| <= |acc + bias| + 1 (the multipliers are below 2^31); h plus the
  // rounding constant and the shifted zero point must stay in int32.
  int64_t hMax = maxAbs + maxBias + 1;
  roundingAddCannotOverflow = noLeftShift;
  for (const auto *shifts : {&rightShift, &negRightShift})
    for (int32_t r : *shifts)
      roundingAddCannotOverflow &=
          r <= 31 && hMax + ((int64_t)1 << r) +
                             std::abs((int64_t)zpOut) * ((int64_t)1 << r) <=
                         INT32_MAX;
}

namespace {

// Branch-free selects so that the channel loops vectorise.
inline int32_t select(bool c, int32_t a, int32_t b) {
  return b ^ ((a ^ b) & -(int32_t)c);
}
inline int64_t clampInt32(int64_t v) {
  return std::min<int64_t>(std::max<int64_t>(v, INT32_MIN), INT32_MAX);
}
/// clampInt32((int64_t)a + b) in 32-bit lanes: on overflow (both operands'
/// sign differs from the wrapped sum's) the bound on a's side.
inline int32_t saturatingAdd(int32_t a, int32_t b) {
  int32_t s = (int32_t)((uint32_t)a + (uint32_t)b);
  int32_t overflow = ((a ^ s) & (b ^ s)) >> 31; // all ones or zero
  return select(overflow != 0, (a >> 31) ^ INT32_MAX, s);
}

// gemmlowp's SaturatingRoundingDoublingHighMul then RoundingDivideByPOT
// (m > 0, so the INT32_MIN * INT32_MIN case cannot occur).
inline int32_t tflite(int32_t x, int32_t m, int32_t ls, int32_t rs) {
  int64_t ab = clampInt32((int64_t)x << ls) * (int64_t)m;
  // nudge = ab >= 0 ? 2^30 : 1 - 2^30
  int64_t v = ab + (1ll << 30) + ((ab >> 63) & (1 - (1ll << 31)));
  // v / 2^31 rounded toward zero
  int32_t hiw = (int32_t)((v + ((v >> 63) & ((1ll << 31) - 1))) >> 31);
  int32_t mask = (int32_t)((1ll << rs) - 1);
  int32_t threshold = (mask >> 1) + (int32_t)(hiw < 0);
  return (hiw >> rs) + (int32_t)((hiw & mask) > threshold);
}

// TOSA apply_scale_32 with double_round (shift in [2, 62]).
inline int32_t tosaDouble(int32_t x, int32_t m, int32_t shift) {
  int64_t round = 1ll << (shift - 1);
  int64_t extra = (1ll << 30) - ((int64_t)(x < 0) << 31); // +-2^30
  round += extra & -(int64_t)(shift > 31);
  return (int32_t)clampInt32(((int64_t)x * m + round) >> shift);
}

// One chunk of pixels. The bodies are always inlined into per-ISA wrappers
// (below) and vectorised there; 64-bit masks do not vectorise, so masks are
// 32-bit (rs <= 31).
__attribute__((always_inline)) inline void
chunkTFLite(const int32_t *__restrict acc, int64_t pixels, int64_t C,
            const int32_t *__restrict bias, const int32_t *__restrict m,
            const int32_t *__restrict rs, const int32_t *__restrict nm,
            const int32_t *__restrict nrs, int32_t zp, int32_t lo, int32_t hi,
            int32_t leaky, int8_t *__restrict out) {
  for (int64_t p = 0; p < pixels; ++p) {
    const int32_t *__restrict a = acc + p * C;
    int8_t *__restrict o = out + p * C;
    for (int64_t f = 0; f < C; ++f) {
      int32_t x = saturatingAdd(a[f], bias[f]);
      int32_t neg = leaky & (int32_t)(x < 0);
      int32_t mm = select(neg, nm[f], m[f]);
      int32_t r = select(neg, nrs[f], rs[f]);
      int64_t ab = (int64_t)x * mm;
      // SaturatingRoundingDoublingHighMul: (ab + nudge) / 2^31 truncated,
      // nudge = 2^30 for ab >= 0 and 1 - 2^30 below, is floor((ab + 2^30) /
      // 2^31) in both cases (for ab < 0 the truncation is a ceiling).
      int32_t h = (int32_t)((ab + (1ll << 30)) >> 31);
      int32_t mask = (1 << r) - 1;
      int32_t th = (mask >> 1) + (int32_t)(h < 0);
      int32_t y = (h >> r) + (int32_t)((h & mask) > th) + zp;
      o[f] = (int8_t)std::min(std::max(y, lo), hi);
    }
  }
}

__attribute__((always_inline)) inline void
chunkTosa(const int32_t *__restrict acc, int64_t pixels, int64_t C,
          const int32_t *__restrict bias, const int32_t *__restrict m,
          const int32_t *__restrict sh, const int32_t *__restrict nm,
          const int32_t *__restrict nsh, int32_t zp, int32_t lo, int32_t hi,
          int32_t leaky, int8_t *__restrict out) {
  for (int64_t p = 0; p < pixels; ++p) {
    const int32_t *__restrict a = acc + p * C;
    int8_t *__restrict o = out + p * C;
    for (int64_t f = 0; f < C; ++f) {
      int32_t x = saturatingAdd(a[f], bias[f]);
      int32_t neg = leaky & (int32_t)(x < 0);
      int32_t y =
          tosaDouble(x, select(neg, nm[f], m[f]), select(neg, nsh[f], sh[f])) +
          zp;
      o[f] = (int8_t)std::min(std::max(y, lo), hi);
    }
  }
}

#define QSIM_REQUANT_TFLITE_ARGS                                               \
  const int32_t *acc, int64_t pixels, int64_t C, const int32_t *bias,          \
      const int32_t *m, const int32_t *rs, const int32_t *nm,                  \
      const int32_t *nrs, int32_t zp, int32_t lo, int32_t hi, int32_t leaky,   \
      int8_t *out
#define QSIM_REQUANT_TFLITE_CALL                                               \
  acc, pixels, C, bias, m, rs, nm, nrs, zp, lo, hi, leaky, out
#define QSIM_REQUANT_TOSA_ARGS                                                 \
  const int32_t *acc, int64_t pixels, int64_t C, const int32_t *bias,          \
      const int32_t *m, const int32_t *sh, const int32_t *nm,                  \
      const int32_t *nsh, int32_t zp, int32_t lo, int32_t hi, int32_t leaky,   \
      int8_t *out
#define QSIM_REQUANT_TOSA_CALL                                                 \
  acc, pixels, C, bias, m, sh, nm, nsh, zp, lo, hi, leaky, out

// AVX-512 by hand: the compiler widens the whole row to 64-bit lanes; here
// only the products are 64-bit (even and odd lanes, vpmuldq), the rest stays
// in 16 x 32-bit lanes. Same arithmetic as chunkTFLite, so bit-identical.
// Saturate = false when acc + bias cannot overflow int32 (bounded
// accumulators, RequantTables::biasAddCannotOverflow): the saturation is then
// the identity and is left out.
template <bool Saturate>
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"))) void
chunkTFLiteAvx512Intrinsics(QSIM_REQUANT_TFLITE_ARGS) {
  const __m512i one = _mm512_set1_epi32(1),
                int32Max = _mm512_set1_epi32(INT32_MAX);
  const __m512i half = _mm512_set1_epi64(1ll << 30);
  const __m512i zpv = _mm512_set1_epi32(zp), lov = _mm512_set1_epi32(lo),
                hiv = _mm512_set1_epi32(hi);
  for (int64_t p = 0; p < pixels; ++p) {
    const int32_t *a = acc + p * C;
    int8_t *o = out + p * C;
    for (int64_t f = 0; f < C; f += 16) {
      __mmask16 k =
          C - f >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (C - f)) - 1);
      __m512i av = _mm512_maskz_loadu_epi32(k, a + f);
      __m512i bv = _mm512_maskz_loadu_epi32(k, bias + f);
      // x = acc + bias, saturated (saturatingAdd).
      __m512i sum = _mm512_add_epi32(av, bv), x = sum;
      if (Saturate) {
        __mmask16 overflow = _mm512_movepi32_mask(_mm512_and_si512(
            _mm512_xor_si512(av, sum), _mm512_xor_si512(bv, sum)));
        x = _mm512_mask_blend_epi32(
            overflow, sum,
            _mm512_xor_si512(_mm512_srai_epi32(av, 31), int32Max));
      }
      __m512i mv = _mm512_maskz_loadu_epi32(k, m + f);
      __m512i rv = _mm512_maskz_loadu_epi32(k, rs + f);
      if (leaky) {
        __mmask16 neg = _mm512_movepi32_mask(x);
        mv = _mm512_mask_blend_epi32(neg, mv,
                                     _mm512_maskz_loadu_epi32(k, nm + f));
        rv = _mm512_mask_blend_epi32(neg, rv,
                                     _mm512_maskz_loadu_epi32(k, nrs + f));
      }
      // h = (x * m + 2^30) >> 31: even lanes shifted down, odd lanes shifted
      // up into the high half of their 64-bit lane.
      __m512i even = _mm512_srai_epi64(
          _mm512_add_epi64(_mm512_mul_epi32(x, mv), half), 31);
      __m512i odd = _mm512_slli_epi64(
          _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(x, 32),
                                            _mm512_srli_epi64(mv, 32)),
                           half),
          1);
      __m512i h = _mm512_mask_blend_epi32((__mmask16)0xAAAA, even, odd);
      // Rounding division by 2^r.
      __m512i mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, rv), one);
      __m512i threshold = _mm512_add_epi32(_mm512_srai_epi32(mask, 1),
                                           _mm512_srli_epi32(h, 31));
      __m512i q = _mm512_srav_epi32(h, rv);
      __mmask16 up =
          _mm512_cmpgt_epi32_mask(_mm512_and_si512(h, mask), threshold);
      q = _mm512_mask_add_epi32(q, up, q, one);
      __m512i y = _mm512_min_epi32(
          _mm512_max_epi32(_mm512_add_epi32(q, zpv), lov), hiv);
      _mm512_mask_cvtepi32_storeu_epi8(o + f, k, y);
    }
  }
}

// The same arithmetic with fewer vector instructions, for accumulators that
// cannot overflow (RequantTables::roundingAddCannotOverflow) and multipliers
// below 1: the odd lanes' multipliers come pair-swapped from a table, the
// rounding division is (h + 2^(r-1) - [h < 0 and r > 0]) >> r (ties away
// from zero, as gemmlowp's RoundingDivideByPOT) with the constant from a
// table, and 64 outputs are packed
// to int8 with saturating packs (the clamp to [-128, 127]) and one permute
// instead of four masked narrowing stores, which were the loop's bottleneck.
// Bit-identical to chunkTFLite.
struct PackedRequantRow {
  const int32_t *bias, *m, *ms, *rs, *up, *down, *nm, *nrs;
};

template <bool Leaky>
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"),
               always_inline)) inline __m512i
requant16Packed(const int32_t *a, int64_t f, __mmask16 k,
                const PackedRequantRow &t) {
  const __m512i half64 = _mm512_set1_epi64(1ll << 30);
  __m512i x = _mm512_add_epi32(_mm512_maskz_loadu_epi32(k, a + f),
                               _mm512_maskz_loadu_epi32(k, t.bias + f));
  // h has the sign of x or is 0, and for h = 0 both rounding constants give
  // 0: the sign of x chooses.
  __mmask16 neg = _mm512_movepi32_mask(x);
  __m512i mv = _mm512_maskz_loadu_epi32(k, t.m + f);
  __m512i ms = _mm512_maskz_loadu_epi32(k, t.ms + f);
  __m512i r = _mm512_maskz_loadu_epi32(k, t.rs + f);
  __m512i add =
      _mm512_mask_blend_epi32(neg, _mm512_maskz_loadu_epi32(k, t.up + f),
                              _mm512_maskz_loadu_epi32(k, t.down + f));
  if (Leaky) {
    mv =
        _mm512_mask_blend_epi32(neg, mv, _mm512_maskz_loadu_epi32(k, t.nm + f));
    // The odd lanes' multipliers moved down from the blended ones: cheaper
    // than blending the swapped table by the swapped signs.
    ms = _mm512_srli_epi64(mv, 32);
    r = _mm512_mask_blend_epi32(neg, r, _mm512_maskz_loadu_epi32(k, t.nrs + f));
  }
  __m512i even =
      _mm512_srai_epi64(_mm512_add_epi64(_mm512_mul_epi32(x, mv), half64), 31);
  __m512i odd = _mm512_slli_epi64(
      _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(x, 32), ms), half64),
      1);
  __m512i h = _mm512_mask_blend_epi32((__mmask16)0xAAAA, even, odd);
  return _mm512_srav_epi32(_mm512_add_epi32(h, add), r);
}

template <bool Leaky, bool Clamp>
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"))) void
chunkTFLitePackedAvx512(const int32_t *acc, int64_t pixels, int64_t C,
                        const PackedRequantRow &t, int32_t zp, int32_t lo,
                        int32_t hi, int8_t *out) {
  const __m512i lo8 = _mm512_set1_epi8((char)lo),
                hi8 = _mm512_set1_epi8((char)hi);
  const __m128i lo8t = _mm_set1_epi8((char)lo), hi8t = _mm_set1_epi8((char)hi);
  // After the two packs, 32-bit word 4 * L + v holds outputs 16 * v + 4 * L
  // .. + 3 (L: the 128-bit lane, v: the source vector).
  const __m512i order =
      _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  const __mmask16 all = 0xFFFF;
  for (int64_t p = 0; p < pixels; ++p) {
    const int32_t *a = acc + p * C;
    int8_t *o = out + p * C;
    int64_t f = 0;
    for (; f + 64 <= C; f += 64) {
      __m512i y0 = requant16Packed<Leaky>(a, f, all, t);
      __m512i y1 = requant16Packed<Leaky>(a, f + 16, all, t);
      __m512i y2 = requant16Packed<Leaky>(a, f + 32, all, t);
      __m512i y3 = requant16Packed<Leaky>(a, f + 48, all, t);
      __m512i b = _mm512_packs_epi16(_mm512_packs_epi32(y0, y1),
                                     _mm512_packs_epi32(y2, y3));
      b = _mm512_permutexvar_epi32(order, b);
      if (Clamp)
        b = _mm512_min_epi8(_mm512_max_epi8(b, lo8), hi8);
      _mm512_storeu_si512(o + f, b);
    }
    for (; f < C; f += 16) {
      __mmask16 k =
          C - f >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (C - f)) - 1);
      __m512i y = requant16Packed<Leaky>(a, f, k, t);
      __m128i b = _mm512_cvtsepi32_epi8(y);
      if (Clamp)
        b = _mm_min_epi8(_mm_max_epi8(b, lo8t), hi8t);
      _mm_mask_storeu_epi8(o + f, k, b);
    }
  }
}

// Per instruction set copies; GCC 12's target_clones resolver does not pick
// its x86-64-v4 clone on AVX-512 machines, so the dispatch is explicit.
__attribute__((target("avx2"))) void chunkTFLiteAvx2(QSIM_REQUANT_TFLITE_ARGS) {
  chunkTFLite(QSIM_REQUANT_TFLITE_CALL);
}
void chunkTFLiteBase(QSIM_REQUANT_TFLITE_ARGS) {
  chunkTFLite(QSIM_REQUANT_TFLITE_CALL);
}
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"))) void
chunkTosaAvx512(QSIM_REQUANT_TOSA_ARGS) {
  chunkTosa(QSIM_REQUANT_TOSA_CALL);
}
__attribute__((target("avx2"))) void chunkTosaAvx2(QSIM_REQUANT_TOSA_ARGS) {
  chunkTosa(QSIM_REQUANT_TOSA_CALL);
}
void chunkTosaBase(QSIM_REQUANT_TOSA_ARGS) {
  chunkTosa(QSIM_REQUANT_TOSA_CALL);
}

using TFLiteFn = void (*)(QSIM_REQUANT_TFLITE_ARGS);
using TosaFn = void (*)(QSIM_REQUANT_TOSA_ARGS);

bool hasAvx512() {
  return __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vl");
}
TFLiteFn pickTFLite() {
  if (hasAvx512())
    return chunkTFLiteAvx512Intrinsics<true>;
  return __builtin_cpu_supports("avx2") ? chunkTFLiteAvx2 : chunkTFLiteBase;
}
/// The AVX-512 loop without saturation, where the CPU has AVX-512.
TFLiteFn pickTFLiteUnsaturated() {
  return hasAvx512() ? chunkTFLiteAvx512Intrinsics<false> : pickTFLite();
}
TosaFn pickTosa() {
  if (hasAvx512())
    return chunkTosaAvx512;
  return __builtin_cpu_supports("avx2") ? chunkTosaAvx2 : chunkTosaBase;
}

/// The scalar form for multipliers >= 1 (a left shift before the multiply).
void chunkGeneric(const int32_t *acc, int64_t pixels, int64_t C,
                  const RequantTables &t, int8_t *out) {
  for (int64_t p = 0; p < pixels; ++p)
    for (int64_t f = 0; f < C; ++f) {
      int32_t x = (int32_t)clampInt32((int64_t)acc[p * C + f] + t.bias[f]);
      bool neg = t.leaky && x < 0;
      int32_t y = t.tosa
                      ? tosaDouble(x, neg ? t.negMult[f] : t.mult[f],
                                   neg ? t.negTotalShift[f] : t.totalShift[f])
                      : tflite(x, neg ? t.negMult[f] : t.mult[f],
                               neg ? t.negLeftShift[f] : t.leftShift[f],
                               neg ? t.negRightShift[f] : t.rightShift[f]);
      y += t.zpOut;
      out[p * C + f] = (int8_t)std::min(std::max(y, t.lo), t.hi);
    }
}

} // namespace

namespace {

/// `rows` rows of `repeat` pixels (the replicated tables' period).
void requantizeRows(const int32_t *a, int64_t rows, const RequantTables &t,
                    int8_t *o) {
  static const TFLiteFn tfliteChunk = pickTFLite();
  static const TFLiteFn tfliteUnsaturated = pickTFLiteUnsaturated();
  static const TosaFn tosaChunk = pickTosa();
  static const bool avx512 = hasAvx512();
  const int64_t row = t.repeat * t.channels;
  if (avx512 && !t.tosa && t.noLeftShift && t.roundingAddCannotOverflow) {
    PackedRequantRow pr{t.bias.data(),        t.mult.data(),
                        t.multSwapped.data(), t.rightShift.data(),
                        t.roundUp.data(),     t.roundDown.data(),
                        t.negMult.data(),     t.negRightShift.data()};
    bool clamp = t.lo > -128 || t.hi < 127;
    auto fn = t.leaky ? (clamp ? chunkTFLitePackedAvx512<true, true>
                               : chunkTFLitePackedAvx512<true, false>)
                      : (clamp ? chunkTFLitePackedAvx512<false, true>
                               : chunkTFLitePackedAvx512<false, false>);
    fn(a, rows, row, pr, t.zpOut, t.lo, t.hi, o);
  } else if (t.tosa)
    tosaChunk(a, rows, row, t.bias.data(), t.mult.data(), t.totalShift.data(),
              t.negMult.data(), t.negTotalShift.data(), t.zpOut, t.lo, t.hi,
              t.leaky, o);
  else if (t.noLeftShift)
    (t.biasAddCannotOverflow ? tfliteUnsaturated : tfliteChunk)(
        a, rows, row, t.bias.data(), t.mult.data(), t.rightShift.data(),
        t.negMult.data(), t.negRightShift.data(), t.zpOut, t.lo, t.hi, t.leaky,
        o);
  else
    chunkGeneric(a, rows * t.repeat, t.channels, t, o);
}

} // namespace

void qsim::interp::requantizeChannelsLast(const int32_t *acc, int64_t pixels,
                                          int64_t channels,
                                          const RequantTables &t, int8_t *out) {
  // Rows of `repeat` pixels match the replicated tables; the pixels that do
  // not fill a row take the scalar path.
  const int64_t row = t.repeat * channels;
  const int64_t rows = pixels / t.repeat;
  const int64_t rowsPerChunk = std::max<int64_t>(1, 4096 / row);
  const int64_t chunks = (rows + rowsPerChunk - 1) / rowsPerChunk;
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < chunks; ++k) {
    int64_t r0 = k * rowsPerChunk, n = std::min(rowsPerChunk, rows - r0);
    requantizeRows(acc + r0 * row, n, t, out + r0 * row);
  }
  int64_t done = rows * t.repeat;
  if (done < pixels)
    chunkGeneric(acc + done * channels, pixels - done, channels, t,
                 out + done * channels);
}

void qsim::interp::requantizeChannelsLastSerial(const int32_t *acc,
                                                int64_t pixels,
                                                int64_t channels,
                                                const RequantTables &t,
                                                int8_t *out) {
  const int64_t rows = pixels / t.repeat;
  requantizeRows(acc, rows, t, out);
  int64_t done = rows * t.repeat;
  if (done < pixels)
    chunkGeneric(acc + done * channels, pixels - done, channels, t,
                 out + done * channels);
}
