//===- DecompositionsTest.cpp - conv factorizations -----------------------===//

#include "qsim/Lighten/Decompositions.h"

#include <algorithm>
#include <cmath>
#include <gtest/gtest.h>
#include <limits>
#include <random>

using namespace qsim::lighten;

namespace {

/// Uniform [-1, 1) from mt19937's raw output so the tests see the same
/// weights with every standard library.
float uniformSigned(std::mt19937 &gen) {
  return float(double(gen()) / 2147483648.0 - 1.0);
}

ConvWeight randomWeight(int64_t f, int64_t c, int64_t kh, int64_t kw,
                        unsigned seed) {
  std::mt19937 gen(seed);
  ConvWeight w;
  w.f = f;
  w.c = c;
  w.kh = kh;
  w.kw = kw;
  w.data.resize(w.size());
  for (float &v : w.data)
    v = uniformSigned(gen);
  return w;
}

float &at(ConvWeight &w, int64_t f, int64_t c, int64_t y, int64_t x) {
  return w.data[((f * w.c + c) * w.kh + y) * w.kw + x];
}
float at(const ConvWeight &w, int64_t f, int64_t c, int64_t y, int64_t x) {
  return w.data[((f * w.c + c) * w.kh + y) * w.kw + x];
}

/// A feature map [C][H][W].
struct Map {
  int64_t c = 0, h = 0, w = 0;
  std::vector<double> v;
  double at(int64_t ci, int64_t y, int64_t x) const {
    return v[(ci * h + y) * w + x];
  }
};

Map randomMap(int64_t c, int64_t h, int64_t w, unsigned seed) {
  std::mt19937 gen(seed);
  Map m{c, h, w, std::vector<double>(c * h * w)};
  for (double &v : m.v)
    v = uniformSigned(gen);
  return m;
}

/// Brute-force unpadded ('valid') stride-1 cross-correlation: the
/// definition the decompositions must agree with, written independently.
Map convValid(const Map &in, const ConvWeight &k) {
  Map out{k.f, in.h - k.kh + 1, in.w - k.kw + 1, {}};
  out.v.assign(out.c * out.h * out.w, 0.0);
  for (int64_t f = 0; f < k.f; ++f)
    for (int64_t y = 0; y < out.h; ++y)
      for (int64_t x = 0; x < out.w; ++x) {
        double s = 0;
        for (int64_t c = 0; c < k.c; ++c)
          for (int64_t ky = 0; ky < k.kh; ++ky)
            for (int64_t kx = 0; kx < k.kw; ++kx)
              s += double(at(k, f, c, ky, kx)) * in.at(c, y + ky, x + kx);
        out.v[(f * out.h + y) * out.w + x] = s;
      }
  return out;
}

double maxAbsDiff(const Map &a, const Map &b) {
  EXPECT_EQ(a.v.size(), b.v.size());
  double m = 0;
  for (size_t i = 0; i < std::min(a.v.size(), b.v.size()); ++i)
    m = std::max(m, std::fabs(a.v[i] - b.v[i]));
  return m;
}

void expectShape(const ConvWeight &w, int64_t f, int64_t c, int64_t kh,
                 int64_t kw) {
  EXPECT_EQ(w.f, f);
  EXPECT_EQ(w.c, c);
  EXPECT_EQ(w.kh, kh);
  EXPECT_EQ(w.kw, kw);
  EXPECT_EQ(int64_t(w.data.size()), w.size());
}

struct Shape {
  int64_t f, c, kh, kw;
};

std::string str(const Shape &s) {
  return std::to_string(s.f) + "x" + std::to_string(s.c) + "x" +
         std::to_string(s.kh) + "x" + std::to_string(s.kw);
}

} // namespace

TEST(Decompositions, RelativeError) {
  std::vector<float> a = {1.5f, -2.0f, 0.25f};
  EXPECT_EQ(relativeError(a, a), 0.0);
  EXPECT_EQ(relativeError({0.0f, 0.0f}, {0.0f, 0.0f}), 0.0);
  EXPECT_EQ(relativeError({}, {}), 0.0);
  // ||(3,4) - (3,0)|| / ||(3,4)|| = 4 / 5.
  EXPECT_NEAR(relativeError({3.0f, 4.0f}, {3.0f, 0.0f}), 0.8, 1e-12);
  // Relative to the first argument, not symmetric.
  EXPECT_NEAR(relativeError({3.0f, 0.0f}, {3.0f, 4.0f}), 4.0 / 3.0, 1e-12);
  EXPECT_TRUE(std::isinf(relativeError({0.0f}, {1.0f})));
  EXPECT_TRUE(std::isinf(relativeError({1.0f}, {1.0f, 2.0f})));
}

TEST(Decompositions, RankForEnergy) {
  EXPECT_EQ(rankForEnergy({}, 0.9), 0);
  // Squared values 16, 9 (total 25): the first keeps 64%.
  EXPECT_EQ(rankForEnergy({4.0, 3.0}, 0.5), 1);
  EXPECT_EQ(rankForEnergy({4.0, 3.0}, 0.63), 1);
  EXPECT_EQ(rankForEnergy({4.0, 3.0}, 0.65), 2);
  EXPECT_EQ(rankForEnergy({4.0, 3.0}, 1.0), 2);
  // "Leading" values are the largest even if the caller passes them
  // unsorted.
  EXPECT_EQ(rankForEnergy({3.0, 4.0}, 0.6), 1);
  // At least 1, and never more than the number of values.
  EXPECT_EQ(rankForEnergy({4.0, 3.0}, 0.0), 1);
  EXPECT_EQ(rankForEnergy({4.0, 3.0}, -1.0), 1);
  EXPECT_EQ(rankForEnergy({4.0, 3.0}, 2.0), 2);
  EXPECT_EQ(rankForEnergy({0.0, 0.0, 0.0}, 0.9), 1);
  EXPECT_EQ(rankForEnergy({5.0}, 1.0), 1);
  // Exact rank: zero trailing values are never needed, even at energy 1.
  EXPECT_EQ(rankForEnergy({2.0, 1.0, 0.0, 0.0}, 1.0), 2);
  // Equal values: energy e needs ceil(e * n) of them.
  std::vector<double> flat(10, 1.0);
  EXPECT_EQ(rankForEnergy(flat, 0.35), 4);
  EXPECT_EQ(rankForEnergy(flat, 1.0), 10);
}

TEST(Decompositions, Tucker2FullRankIsExact) {
  // F != C both ways, 1x1, larger kernels, and F > C*kh*kw (the output
  // unfolding has fewer singular values than F).
  for (Shape s : {Shape{8, 4, 3, 3}, Shape{4, 8, 3, 3}, Shape{6, 5, 1, 1},
                  Shape{3, 7, 5, 5}, Shape{16, 16, 3, 3}, Shape{10, 2, 1, 1},
                  Shape{5, 6, 3, 1}}) {
    SCOPED_TRACE(str(s));
    ConvWeight w = randomWeight(s.f, s.c, s.kh, s.kw, 11);
    Tucker2 t = tucker2(w, s.c, s.f, 0.9);
    EXPECT_EQ(t.r1, s.c);
    EXPECT_EQ(t.r2, s.f);
    expectShape(t.first, s.c, s.c, 1, 1);
    expectShape(t.core, s.f, s.c, s.kh, s.kw);
    expectShape(t.last, s.f, s.f, 1, 1);
    ConvWeight r = reconstruct(t);
    expectShape(r, s.f, s.c, s.kh, s.kw);
    double err = relativeError(w.data, r.data);
    EXPECT_LT(err, 1e-5);
    std::printf("[ measured ] tucker2 full rank %s: %.3g\n", str(s).c_str(),
                err);
  }
}

TEST(Decompositions, Tucker2ExplicitRanksAreClamped) {
  ConvWeight w = randomWeight(6, 4, 3, 3, 12);
  Tucker2 t = tucker2(w, 100, 100, 0.5);
  EXPECT_EQ(t.r1, 4);
  EXPECT_EQ(t.r2, 6);
  EXPECT_LT(relativeError(w.data, reconstruct(t).data), 1e-5);
  // One rank explicit, the other by energy.
  Tucker2 mixed = tucker2(w, 2, 0, 1.0);
  EXPECT_EQ(mixed.r1, 2);
  EXPECT_EQ(mixed.r2, 6);
  expectShape(mixed.first, 2, 4, 1, 1);
  expectShape(mixed.core, 6, 2, 3, 3);
  expectShape(mixed.last, 6, 6, 1, 1);
}

TEST(Decompositions, Tucker2ErrorDecreasesWithRank) {
  const int64_t f = 12, c = 10;
  ConvWeight w = randomWeight(f, c, 3, 3, 13);
  // Along each mode alone and both together: the reconstruction is an
  // orthogonal projection onto nested subspaces, so the error cannot grow.
  auto errAt = [&](int64_t r1, int64_t r2) {
    return relativeError(w.data, reconstruct(tucker2(w, r1, r2, 1.0)).data);
  };
  std::vector<double> joint;
  for (int64_t r = 1; r <= c; ++r)
    joint.push_back(errAt(r, r * f / c));
  for (size_t i = 1; i < joint.size(); ++i)
    EXPECT_LT(joint[i], joint[i - 1] - 1e-4) << "rank " << i + 1;
  EXPECT_GT(joint.front(), 0.5);
  EXPECT_LT(joint.back(), 1e-5);
  double prev = 2.0;
  for (int64_t r1 = 1; r1 <= c; ++r1) {
    double e = errAt(r1, f);
    EXPECT_LT(e, prev) << "r1 " << r1;
    prev = e;
  }
  prev = 2.0;
  for (int64_t r2 = 1; r2 <= f; ++r2) {
    double e = errAt(c, r2);
    EXPECT_LT(e, prev) << "r2 " << r2;
    prev = e;
  }
  std::printf("[ measured ] tucker2 %lldx%lldx3x3 joint-rank errors:",
              (long long)f, (long long)c);
  for (double e : joint)
    std::printf(" %.3g", e);
  std::printf("\n");
}

TEST(Decompositions, Tucker2RankByEnergy) {
  ConvWeight w = randomWeight(16, 12, 3, 3, 14);
  Tucker2 full = tucker2(w, 0, 0, 1.0);
  EXPECT_EQ(full.r1, 12);
  EXPECT_EQ(full.r2, 16);
  EXPECT_LT(relativeError(w.data, reconstruct(full).data), 1e-5);
  Tucker2 half = tucker2(w, 0, 0, 0.5);
  EXPECT_GE(half.r1, 1);
  EXPECT_GE(half.r2, 1);
  EXPECT_LT(half.r1, 12);
  EXPECT_LT(half.r2, 16);
  // Each projection keeps at least half the energy, so the error of
  // either alone is at most sqrt(0.5).
  EXPECT_LE(relativeError(w.data, reconstruct(tucker2(w, 0, 16, 0.5)).data),
            std::sqrt(0.5) + 1e-6);
  EXPECT_LE(relativeError(w.data, reconstruct(tucker2(w, 12, 0, 0.5)).data),
            std::sqrt(0.5) + 1e-6);
  Tucker2 more = tucker2(w, 0, 0, 0.9);
  EXPECT_GE(more.r1, half.r1);
  EXPECT_GE(more.r2, half.r2);
}

TEST(Decompositions, Tucker2LowRankWeightIsExactAtItsRank) {
  // W = U_out G U_in^T with ranks (2, 3): energy 1 must find those ranks.
  ConvWeight g = randomWeight(3, 2, 3, 3, 15);
  ConvWeight in = randomWeight(2, 7, 1, 1, 16);
  ConvWeight out = randomWeight(9, 3, 1, 1, 17);
  ConvWeight w = composeKernels(composeKernels(in, g), out);
  Tucker2 t = tucker2(w, 0, 0, 1.0 - 1e-9);
  EXPECT_EQ(t.r1, 2);
  EXPECT_EQ(t.r2, 3);
  EXPECT_LT(relativeError(w.data, reconstruct(t).data), 1e-5);
}

TEST(Decompositions, SpatialSvdFullRankIsExact) {
  for (Shape s : {Shape{8, 4, 3, 3}, Shape{4, 8, 3, 3}, Shape{5, 3, 3, 5},
                  Shape{4, 6, 5, 3}, Shape{2, 3, 1, 3}, Shape{7, 2, 7, 1},
                  Shape{16, 16, 3, 3}}) {
    SCOPED_TRACE(str(s));
    ConvWeight w = randomWeight(s.f, s.c, s.kh, s.kw, 21);
    int64_t full = std::min(s.c * s.kh, s.f * s.kw);
    SpatialSVD sv = spatialSvd(w, full, 0.5);
    EXPECT_EQ(sv.rank, full);
    expectShape(sv.vertical, full, s.c, s.kh, 1);
    expectShape(sv.horizontal, s.f, full, 1, s.kw);
    ConvWeight r = reconstruct(sv);
    expectShape(r, s.f, s.c, s.kh, s.kw);
    double err = relativeError(w.data, r.data);
    EXPECT_LT(err, 1e-5);
    std::printf("[ measured ] spatial SVD full rank %s: %.3g\n", str(s).c_str(),
                err);
    // Running the two convs in sequence equals the original conv.
    Map x = randomMap(s.c, 9, 8, 22);
    EXPECT_LT(maxAbsDiff(convValid(convValid(x, sv.vertical), sv.horizontal),
                         convValid(x, w)),
              1e-4);
    // A larger explicit rank is clamped.
    EXPECT_EQ(spatialSvd(w, full + 5, 0.5).rank, full);
  }
}

TEST(Decompositions, SpatialSvdErrorDecreasesWithRank) {
  ConvWeight w = randomWeight(8, 6, 3, 3, 23);
  int64_t full = 18;
  std::vector<double> errs;
  for (int64_t r = 1; r <= full; ++r)
    errs.push_back(
        relativeError(w.data, reconstruct(spatialSvd(w, r, 1.0)).data));
  for (size_t i = 1; i < errs.size(); ++i)
    EXPECT_LT(errs[i], errs[i - 1]) << "rank " << i + 1;
  EXPECT_LT(errs.back(), 1e-5);
  std::printf("[ measured ] spatial SVD 8x6x3x3 errors:");
  for (double e : errs)
    std::printf(" %.3g", e);
  std::printf("\n");

  SpatialSVD all = spatialSvd(w, 0, 1.0);
  EXPECT_EQ(all.rank, full);
  SpatialSVD half = spatialSvd(w, 0, 0.5);
  EXPECT_GE(half.rank, 1);
  EXPECT_LT(half.rank, full);
  // Eckart-Young: keeping >= 50% of the energy leaves <= sqrt(0.5) error.
  EXPECT_LE(relativeError(w.data, reconstruct(half).data),
            std::sqrt(0.5) + 1e-6);
}

TEST(Decompositions, SpatialSvdSeparableKernelIsRankOne) {
  // W[f][c][y][x] = a[c][y] * b[f][x] is exactly one vertical then one
  // horizontal filter.
  ConvWeight a = randomWeight(1, 5, 3, 1, 24);
  ConvWeight b = randomWeight(4, 1, 1, 3, 25);
  ConvWeight w = composeKernels(a, b);
  SpatialSVD sv = spatialSvd(w, 0, 0.999999);
  EXPECT_EQ(sv.rank, 1);
  EXPECT_LT(relativeError(w.data, reconstruct(sv).data), 1e-5);
}

TEST(Decompositions, DepthwiseSeparableExactForRankOneSlices) {
  for (Shape s : {Shape{6, 4, 3, 3}, Shape{3, 5, 5, 5}, Shape{4, 2, 3, 1}}) {
    SCOPED_TRACE(str(s));
    ConvWeight p = randomWeight(s.f, s.c, 1, 1, 31);
    ConvWeight d = randomWeight(s.c, 1, s.kh, s.kw, 32);
    ConvWeight w = randomWeight(s.f, s.c, s.kh, s.kw, 0);
    for (int64_t f = 0; f < s.f; ++f)
      for (int64_t c = 0; c < s.c; ++c)
        for (int64_t y = 0; y < s.kh; ++y)
          for (int64_t x = 0; x < s.kw; ++x)
            at(w, f, c, y, x) = at(p, f, c, 0, 0) * at(d, c, 0, y, x);
    DepthwiseSeparable ds = depthwiseSeparable(w);
    expectShape(ds.depthwise, s.c, 1, s.kh, s.kw);
    expectShape(ds.pointwise, s.f, s.c, 1, 1);
    double err = relativeError(w.data, reconstruct(ds).data);
    EXPECT_LT(err, 1e-5);
    std::printf("[ measured ] depthwise-separable rank-1 slices %s: %.3g\n",
                str(s).c_str(), err);
    // The sign convention: each depthwise kernel's largest-magnitude entry
    // is positive.
    for (int64_t c = 0; c < s.c; ++c) {
      auto begin = ds.depthwise.data.begin() + c * s.kh * s.kw;
      auto it =
          std::max_element(begin, begin + s.kh * s.kw, [](float x, float y) {
            return std::fabs(x) < std::fabs(y);
          });
      EXPECT_GT(*it, 0.0f) << "channel " << c;
    }
  }
}

TEST(Decompositions, DepthwiseSeparableApproximatesRandomWeight) {
  ConvWeight w = randomWeight(8, 4, 3, 3, 33);
  DepthwiseSeparable ds = depthwiseSeparable(w);
  double err = relativeError(w.data, reconstruct(ds).data);
  EXPECT_GT(err, 0.01);
  EXPECT_LT(err, 1.0);
  std::printf("[ measured ] depthwise-separable random 8x4x3x3: %.3g\n", err);
  // Best rank-1 per slice: flipping the sign of a channel's pair changes
  // nothing, and scaling the depthwise kernel cannot beat the fit.
  for (double scale : {0.9, 1.1}) {
    DepthwiseSeparable worse = ds;
    for (float &v : worse.depthwise.data)
      v = float(v * scale);
    EXPECT_GT(relativeError(w.data, reconstruct(worse).data), err);
  }
  // An all-zero channel gives zero factors, not NaN.
  for (int64_t f = 0; f < 8; ++f)
    for (int64_t y = 0; y < 3; ++y)
      for (int64_t x = 0; x < 3; ++x)
        at(w, f, 2, y, x) = 0.0f;
  DepthwiseSeparable z = depthwiseSeparable(w);
  for (float v : z.depthwise.data)
    EXPECT_TRUE(std::isfinite(v));
  for (int64_t f = 0; f < 8; ++f)
    EXPECT_EQ(at(z.pointwise, f, 2, 0, 0), 0.0f);
}

TEST(Decompositions, ComposeKernelsMatchesSequentialConvolution) {
  struct Case {
    Shape a, b;
  };
  for (Case cs :
       {Case{{4, 3, 3, 3}, {5, 4, 3, 3}}, Case{{4, 3, 3, 1}, {5, 4, 1, 3}},
        Case{{2, 3, 1, 1}, {4, 2, 5, 3}}, Case{{6, 2, 2, 3}, {3, 6, 3, 2}},
        Case{{3, 3, 3, 3}, {2, 3, 1, 1}}}) {
    SCOPED_TRACE(str(cs.a) + " then " + str(cs.b));
    ConvWeight a = randomWeight(cs.a.f, cs.a.c, cs.a.kh, cs.a.kw, 41);
    ConvWeight b = randomWeight(cs.b.f, cs.b.c, cs.b.kh, cs.b.kw, 42);
    ConvWeight k = composeKernels(a, b);
    expectShape(k, cs.b.f, cs.a.c, cs.a.kh + cs.b.kh - 1,
                cs.a.kw + cs.b.kw - 1);
    Map x = randomMap(cs.a.c, 11, 10, 43);
    Map seq = convValid(convValid(x, a), b);
    Map one = convValid(x, k);
    EXPECT_LT(maxAbsDiff(seq, one), 1e-4);
  }
  // An asymmetric kernel pins the orientation: a single tap at (0, 0)
  // then one at (1, 2) is a single tap at (1, 2).
  ConvWeight a = randomWeight(1, 1, 2, 2, 0), b = randomWeight(1, 1, 2, 3, 0);
  std::fill(a.data.begin(), a.data.end(), 0.0f);
  std::fill(b.data.begin(), b.data.end(), 0.0f);
  at(a, 0, 0, 0, 0) = 2.0f;
  at(b, 0, 0, 1, 2) = 3.0f;
  ConvWeight k = composeKernels(a, b);
  expectShape(k, 1, 1, 3, 4);
  for (int64_t y = 0; y < 3; ++y)
    for (int64_t x = 0; x < 4; ++x)
      EXPECT_EQ(at(k, 0, 0, y, x), (y == 1 && x == 2) ? 6.0f : 0.0f);
  // Mismatched channels have no composition.
  EXPECT_EQ(
      composeKernels(randomWeight(3, 2, 3, 3, 1), randomWeight(2, 4, 3, 3, 2))
          .size(),
      0);
}

TEST(Decompositions, ReconstructMatchesFactorConvolutions) {
  // The reconstructed kernels are what running the factor convs computes.
  ConvWeight w = randomWeight(5, 4, 3, 3, 51);
  Map x = randomMap(4, 8, 9, 52);
  Tucker2 t = tucker2(w, 2, 3, 1.0);
  EXPECT_LT(
      maxAbsDiff(convValid(convValid(convValid(x, t.first), t.core), t.last),
                 convValid(x, reconstruct(t))),
      1e-4);
  DepthwiseSeparable ds = depthwiseSeparable(w);
  // Depthwise conv by hand (groups = C), then the pointwise conv.
  Map dw{4, 6, 7, std::vector<double>(4 * 6 * 7)};
  for (int64_t c = 0; c < 4; ++c) {
    Map xc{
        1, 8, 9,
        std::vector<double>(x.v.begin() + c * 72, x.v.begin() + (c + 1) * 72)};
    ConvWeight dc = randomWeight(1, 1, 3, 3, 0);
    std::copy(ds.depthwise.data.begin() + c * 9,
              ds.depthwise.data.begin() + (c + 1) * 9, dc.data.begin());
    Map yc = convValid(xc, dc);
    std::copy(yc.v.begin(), yc.v.end(), dw.v.begin() + c * 42);
  }
  EXPECT_LT(
      maxAbsDiff(convValid(dw, ds.pointwise), convValid(x, reconstruct(ds))),
      1e-4);
}

TEST(Decompositions, KernelChainRecoversComposition5x5) {
  // Exactly two 3x3 convs through 3 channels; every mid >= C = 3 can
  // represent it, including over-parameterised chains.
  ConvWeight s0 = randomWeight(3, 3, 3, 3, 61);
  ConvWeight s1 = randomWeight(5, 3, 3, 3, 62);
  ConvWeight w = composeKernels(s0, s1);
  for (int64_t mid : {3, 4, 6}) {
    SCOPED_TRACE("mid " + std::to_string(mid));
    KernelChain ch = kernelChain(w, mid); // default 30 iterations
    ASSERT_EQ(ch.stages.size(), 2u);
    expectShape(ch.stages[0], mid, 3, 3, 3);
    expectShape(ch.stages[1], 5, mid, 3, 3);
    EXPECT_GE(ch.iterations, 0);
    EXPECT_LE(ch.iterations, 30);
    double err =
        relativeError(w.data, composeKernels(ch.stages[0], ch.stages[1]).data);
    EXPECT_LT(err, 1e-3);
    std::printf("[ measured ] kernelChain 5x5 composition C=3 mid=%lld: %.3g "
                "after %d iterations\n",
                (long long)mid, err, ch.iterations);
    // Deterministic: the same call gives bit-identical stages.
    KernelChain again = kernelChain(w, mid);
    EXPECT_EQ(again.iterations, ch.iterations);
    for (size_t i = 0; i < 2; ++i)
      EXPECT_EQ(again.stages[i].data, ch.stages[i].data);
  }
  // Several random compositions, not one lucky draw.
  for (unsigned seed = 100; seed < 110; ++seed) {
    ConvWeight w2 = composeKernels(randomWeight(3, 3, 3, 3, seed),
                                   randomWeight(4, 3, 3, 3, seed + 1000));
    KernelChain ch = kernelChain(w2, 3);
    ASSERT_EQ(ch.stages.size(), 2u);
    EXPECT_LT(
        relativeError(w2.data, composeKernels(ch.stages[0], ch.stages[1]).data),
        1e-3)
        << "seed " << seed;
  }
}

TEST(Decompositions, KernelChainWithNineCChannelsIsExact) {
  // Any 5x5 kernel is a sum of 9 shifted 3x3 kernels, so a chain with
  // mid = 9C represents every 5x5 conv exactly.
  ConvWeight w = randomWeight(4, 2, 5, 5, 66);
  KernelChain ch = kernelChain(w, 18);
  ASSERT_EQ(ch.stages.size(), 2u);
  double err =
      relativeError(w.data, composeKernels(ch.stages[0], ch.stages[1]).data);
  EXPECT_LT(err, 1e-5);
  std::printf("[ measured ] kernelChain random 5x5 C=2 mid=18: %.3g after %d "
              "iterations\n",
              err, ch.iterations);
}

TEST(Decompositions, KernelChainRecoversComposition7x7) {
  ConvWeight s0 = randomWeight(4, 2, 3, 3, 63);
  ConvWeight s1 = randomWeight(4, 4, 3, 3, 64);
  ConvWeight s2 = randomWeight(3, 4, 3, 3, 65);
  ConvWeight w = composeKernels(composeKernels(s0, s1), s2);
  KernelChain ch = kernelChain(w, 8);
  ASSERT_EQ(ch.stages.size(), 3u);
  expectShape(ch.stages[0], 8, 2, 3, 3);
  expectShape(ch.stages[1], 8, 8, 3, 3);
  expectShape(ch.stages[2], 3, 8, 3, 3);
  ConvWeight k =
      composeKernels(composeKernels(ch.stages[0], ch.stages[1]), ch.stages[2]);
  double err = relativeError(w.data, k.data);
  EXPECT_LT(err, 1e-3);
  std::printf("[ measured ] kernelChain 7x7 composition C=2 (4, 4) mid=8: "
              "%.3g after %d iterations\n",
              err, ch.iterations);
  KernelChain again = kernelChain(w, 8);
  for (size_t i = 0; i < 3; ++i)
    EXPECT_EQ(again.stages[i].data, ch.stages[i].data);
}

TEST(Decompositions, KernelChainApproximatesRandomKernel) {
  // Too few parameters for an exact fit (2 * 4*8*9 = 576 < 8*8*25 = 1600).
  ConvWeight w5 = randomWeight(8, 8, 5, 5, 71);
  KernelChain ch5 = kernelChain(w5, 4);
  ASSERT_EQ(ch5.stages.size(), 2u);
  EXPECT_GE(ch5.iterations, 1);
  EXPECT_LE(ch5.iterations, 30);
  double err5 =
      relativeError(w5.data, composeKernels(ch5.stages[0], ch5.stages[1]).data);
  EXPECT_TRUE(std::isfinite(err5));
  EXPECT_LT(err5, 1.0);
  // More iterations never make the fit worse (every step is monotone).
  KernelChain longer = kernelChain(w5, 4, 60);
  double errLonger = relativeError(
      w5.data, composeKernels(longer.stages[0], longer.stages[1]).data);
  EXPECT_LE(errLonger, err5 + 1e-6);
  // A narrower chain fits worse: the fit does use the extra channels.
  KernelChain narrow = kernelChain(w5, 2);
  double errNarrow = relativeError(
      w5.data, composeKernels(narrow.stages[0], narrow.stages[1]).data);
  EXPECT_LT(errNarrow, 1.0);
  EXPECT_GE(errNarrow, err5);

  ConvWeight w7 = randomWeight(6, 6, 7, 7, 72);
  KernelChain ch7 = kernelChain(w7, 4);
  ASSERT_EQ(ch7.stages.size(), 3u);
  double err7 = relativeError(
      w7.data, composeKernels(composeKernels(ch7.stages[0], ch7.stages[1]),
                              ch7.stages[2])
                   .data);
  EXPECT_TRUE(std::isfinite(err7));
  EXPECT_LT(err7, 1.0);
  std::printf("[ measured ] kernelChain random 5x5 (8x8): mid 4 %.3g (%d it), "
              "60 it %.3g, mid 2 %.3g; random 7x7 (6x6, mid 4): %.3g (%d it)\n",
              err5, ch5.iterations, errLonger, errNarrow, err7, ch7.iterations);
}

TEST(Decompositions, KernelChainOtherSizes) {
  ConvWeight w3 = randomWeight(4, 3, 3, 3, 81);
  KernelChain ch3 = kernelChain(w3, 8);
  ASSERT_EQ(ch3.stages.size(), 1u);
  expectShape(ch3.stages[0], 4, 3, 3, 3);
  EXPECT_EQ(ch3.stages[0].data, w3.data);
  EXPECT_TRUE(kernelChain(randomWeight(4, 3, 1, 1, 82), 8).stages.empty());
  EXPECT_TRUE(kernelChain(randomWeight(4, 3, 4, 4, 83), 8).stages.empty());
  EXPECT_TRUE(kernelChain(randomWeight(4, 3, 9, 9, 84), 8).stages.empty());
  EXPECT_TRUE(kernelChain(randomWeight(4, 3, 5, 3, 85), 8).stages.empty());
  EXPECT_TRUE(kernelChain(randomWeight(4, 3, 5, 5, 86), 0).stages.empty());
}
