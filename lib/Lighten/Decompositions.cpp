//===- Decompositions.cpp - weight-preserving conv factorizations ---------===//
//
// Everything is computed in double and only stored as float, so that the
// full-rank factorizations reconstruct the weight to float precision.
//
//===----------------------------------------------------------------------===//

#include "qsim/Lighten/Decompositions.h"

#include <Eigen/Dense>
#include <Eigen/SVD>

#include <algorithm>
#include <cmath>
#include <limits>

using namespace qsim::lighten;

namespace {

/// A conv weight in double, [F][C][kh][kw] row-major like ConvWeight.
struct Kernel {
  int64_t f = 0, c = 0, kh = 0, kw = 0;
  std::vector<double> v;

  Kernel() = default;
  Kernel(int64_t f, int64_t c, int64_t kh, int64_t kw)
      : f(f), c(c), kh(kh), kw(kw), v(f * c * kh * kw, 0.0) {}

  double &at(int64_t a, int64_t b, int64_t y, int64_t x) {
    return v[((a * c + b) * kh + y) * kw + x];
  }
  double at(int64_t a, int64_t b, int64_t y, int64_t x) const {
    return v[((a * c + b) * kh + y) * kw + x];
  }
  /// The F x C matrix of one spatial tap (a strided view).
  using TapStride = Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>;
  using RowMajorMatrix =
      Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<RowMajorMatrix, 0, TapStride> tap(int64_t y, int64_t x) {
    return {v.data() + y * kw + x, f, c, TapStride(c * kh * kw, kh * kw)};
  }
  Eigen::Map<const RowMajorMatrix, 0, TapStride> tap(int64_t y,
                                                     int64_t x) const {
    return {v.data() + y * kw + x, f, c, TapStride(c * kh * kw, kh * kw)};
  }
  double squaredNorm() const {
    double s = 0;
    for (double x : v)
      s += x * x;
    return s;
  }
};

Kernel toKernel(const ConvWeight &w) {
  Kernel k(w.f, w.c, w.kh, w.kw);
  // A malformed weight (data shorter than its shape) reads as zeros rather
  // than out of bounds.
  size_t n = std::min(k.v.size(), w.data.size());
  for (size_t i = 0; i < n; ++i)
    k.v[i] = w.data[i];
  return k;
}

ConvWeight toWeight(const Kernel &k) {
  ConvWeight w;
  w.f = k.f;
  w.c = k.c;
  w.kh = k.kh;
  w.kw = k.kw;
  w.data.assign(k.v.begin(), k.v.end());
  return w;
}

/// "Apply a, then b" as one kernel; see composeKernels. Requires a.f == b.c.
/// Tap by tap it is a sum of matrix products, which Eigen's GEMM does far
/// faster than scalar loops (this is the inner loop of kernelChain).
Kernel compose(const Kernel &a, const Kernel &b) {
  Kernel k(b.f, a.c, a.kh + b.kh - 1, a.kw + b.kw - 1);
  for (int64_t i = 0; i < b.kh; ++i)
    for (int64_t j = 0; j < b.kw; ++j)
      for (int64_t y = 0; y < a.kh; ++y)
        for (int64_t x = 0; x < a.kw; ++x)
          k.tap(y + i, x + j).noalias() += b.tap(i, j) * a.tap(y, x);
  return k;
}

/// Adjoint of compose(a, b) with respect to `a` (b fixed), applied to a
/// kernel-shaped residual r: the gradient of <compose(a, b), r> in a.
Kernel composeAdjointA(const Kernel &b, const Kernel &r, int64_t akh,
                       int64_t akw) {
  Kernel g(b.c, r.c, akh, akw);
  for (int64_t i = 0; i < b.kh; ++i)
    for (int64_t j = 0; j < b.kw; ++j)
      for (int64_t y = 0; y < akh; ++y)
        for (int64_t x = 0; x < akw; ++x)
          g.tap(y, x).noalias() +=
              b.tap(i, j).transpose() * r.tap(y + i, x + j);
  return g;
}

/// Adjoint of compose(a, b) with respect to `b` (a fixed).
Kernel composeAdjointB(const Kernel &a, const Kernel &r, int64_t bkh,
                       int64_t bkw) {
  Kernel g(r.f, a.f, bkh, bkw);
  for (int64_t i = 0; i < bkh; ++i)
    for (int64_t j = 0; j < bkw; ++j)
      for (int64_t y = 0; y < a.kh; ++y)
        for (int64_t x = 0; x < a.kw; ++x)
          g.tap(i, j).noalias() +=
              r.tap(y + i, x + j) * a.tap(y, x).transpose();
  return g;
}

/// SVD vectors are defined up to sign; fixing the sign of each column by
/// its largest-magnitude entry makes the factors independent of the SVD
/// algorithm's internals. Returns true when the column was flipped.
template <typename Vec> bool makeLargestPositive(Vec &&v) {
  Eigen::Index best = 0;
  for (Eigen::Index i = 1; i < v.size(); ++i)
    if (std::fabs(v(i)) > std::fabs(v(best)))
      best = i;
  if (v.size() == 0 || v(best) >= 0)
    return false;
  v = -v;
  return true;
}

std::vector<double> toStdVector(const Eigen::VectorXd &v) {
  return std::vector<double>(v.data(), v.data() + v.size());
}

/// Solves (L^T L + lambda I) X = L^T T + lambda X_prev. The proximal ridge
/// keeps under-determined stages (more unknowns than equations) and
/// ill-conditioned ones stable without biasing ALS fixed points, since at a
/// fixed point X == X_prev and the term vanishes.
Eigen::MatrixXd solveProximal(const Eigen::MatrixXd &l,
                              const Eigen::MatrixXd &t,
                              const Eigen::MatrixXd &xPrev, double ridge) {
  Eigen::MatrixXd n(l.cols(), l.cols());
  n.setZero();
  // Only the lower triangle is formed: LLT and LDLT read no other.
  n.selfadjointView<Eigen::Lower>().rankUpdate(l.transpose());
  double meanDiag = n.cols() ? n.diagonal().mean() : 0.0;
  double lambda = ridge * std::max(meanDiag, 1e-300);
  n.diagonal().array() += lambda;
  Eigen::MatrixXd rhs = l.transpose() * t + lambda * xPrev;
  Eigen::LLT<Eigen::MatrixXd> llt(n);
  if (llt.info() == Eigen::Success)
    return llt.solve(rhs);
  return n.ldlt().solve(rhs);
}

/// The product of stages [from, to) (application order).
Kernel composeRange(const std::vector<Kernel> &stages, size_t from, size_t to) {
  Kernel k = stages[from];
  for (size_t s = from + 1; s < to; ++s)
    k = compose(k, stages[s]);
  return k;
}

constexpr double kChainRidge = 1e-9;

/// Alternating projections of the SVD-based start (liftedInit).
constexpr int kInitProjections = 5;

/// CG caps of the inner-stage ALS solve and of the joint Gauss-Newton step.
/// Both are warm/zero-started and only need to lower the error, so a capped
/// (truncated) solve keeps each iteration cheap for real layer sizes at
/// little cost in accuracy (measured on random 5x5 and 7x7 kernels).
constexpr int64_t kInnerCgIterations = 50;
constexpr size_t kLmCgIterations = 30;

/// ALS step for the first or the last stage of the chain. The composed
/// kernel is the same linear map (the rest of the chain, fixed) of each
/// column of the stage: K[f][c] = sum_m rest[f][m] (*) S0[m][c] for each
/// input channel c of the first stage, K[f][c] = sum_m Sl[f][m] (*)
/// rest[m][c] for each output filter f of the last; so one normal matrix
/// serves every column as a right-hand side. `g` indexes the other side of
/// the target (filters for the first stage, channels for the last).
void solveEndStage(std::vector<Kernel> &stages, const Kernel &target,
                   bool first) {
  Kernel &stage = first ? stages.front() : stages.back();
  Kernel rest = first ? composeRange(stages, 1, stages.size())
                      : composeRange(stages, 0, stages.size() - 1);
  const int64_t k = target.kh, mid = first ? stage.f : stage.c;
  const int64_t sk = stage.kh, q = rest.kh;
  const int64_t groups = first ? target.f : target.c;
  const int64_t columns = first ? target.c : target.f;
  auto restAt = [&](int64_t g, int64_t m, int64_t y, int64_t x) {
    return first ? rest.at(g, m, y, x) : rest.at(m, g, y, x);
  };
  auto targetAt = [&](int64_t g, int64_t col, int64_t u, int64_t v) {
    return first ? target.at(g, col, u, v) : target.at(col, g, u, v);
  };
  auto stageAt = [&](int64_t col, int64_t m, int64_t s, int64_t t) -> double & {
    return first ? stage.at(m, col, s, t) : stage.at(col, m, s, t);
  };
  Eigen::MatrixXd l = Eigen::MatrixXd::Zero(groups * k * k, mid * sk * sk);
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t m = 0; m < mid; ++m)
      for (int64_t y = 0; y < q; ++y)
        for (int64_t x = 0; x < q; ++x)
          for (int64_t s = 0; s < sk; ++s)
            for (int64_t t = 0; t < sk; ++t)
              l((g * k + y + s) * k + x + t, (m * sk + s) * sk + t) =
                  restAt(g, m, y, x);
  Eigen::MatrixXd rhs(groups * k * k, columns), prev(mid * sk * sk, columns);
  for (int64_t col = 0; col < columns; ++col) {
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t u = 0; u < k; ++u)
        for (int64_t v = 0; v < k; ++v)
          rhs((g * k + u) * k + v, col) = targetAt(g, col, u, v);
    for (int64_t m = 0; m < mid; ++m)
      for (int64_t s = 0; s < sk; ++s)
        for (int64_t t = 0; t < sk; ++t)
          prev((m * sk + s) * sk + t, col) = stageAt(col, m, s, t);
  }
  Eigen::MatrixXd x = solveProximal(l, rhs, prev, kChainRidge);
  for (int64_t col = 0; col < columns; ++col)
    for (int64_t m = 0; m < mid; ++m)
      for (int64_t s = 0; s < sk; ++s)
        for (int64_t t = 0; t < sk; ++t)
          stageAt(col, m, s, t) = x((m * sk + s) * sk + t, col);
}

/// ALS step for an inner stage (7x7 only). Here the map couples every
/// entry with every output (F*C*k*k equations, mid*mid*9 unknowns), too
/// large to form for real layer sizes, so the proximal normal equations are
/// solved matrix-free by conjugate gradients, warm-started at the current
/// stage (CG then only decreases the objective, keeping ALS monotone).
void solveInnerStage(std::vector<Kernel> &stages, size_t idx,
                     const Kernel &target) {
  Kernel pre = composeRange(stages, 0, idx);
  Kernel post = composeRange(stages, idx + 1, stages.size());
  Kernel &x = stages[idx];
  int64_t prek = pre.kh + x.kh - 1; // spatial size of (pre then x)
  auto apply = [&](const Kernel &z) { return compose(compose(pre, z), post); };
  auto adjoint = [&](const Kernel &r) {
    return composeAdjointB(pre, composeAdjointA(post, r, prek, prek), x.kh,
                           x.kw);
  };
  // ||pre||^2 ||post||^2 / mid^2 approximates the mean diagonal of the
  // normal matrix; only the ridge's scale depends on it.
  double lambda =
      kChainRidge *
      std::max(pre.squaredNorm() * post.squaredNorm() / double(x.f * x.c),
               1e-300);
  auto normalOp = [&](const Kernel &z) {
    Kernel y = adjoint(apply(z));
    for (size_t i = 0; i < y.v.size(); ++i)
      y.v[i] += lambda * z.v[i];
    return y;
  };
  Kernel rhs = adjoint(target);
  for (size_t i = 0; i < rhs.v.size(); ++i)
    rhs.v[i] += lambda * x.v[i];

  Kernel ax = normalOp(x);
  Kernel r = rhs, p;
  for (size_t i = 0; i < r.v.size(); ++i)
    r.v[i] -= ax.v[i];
  p = r;
  double rs = r.squaredNorm(), rhsNorm = std::sqrt(rhs.squaredNorm());
  int64_t maxIter = std::min<int64_t>(int64_t(x.v.size()), kInnerCgIterations);
  for (int64_t it = 0; it < maxIter && std::sqrt(rs) > 1e-13 * rhsNorm; ++it) {
    Kernel ap = normalOp(p);
    double pap = 0;
    for (size_t i = 0; i < p.v.size(); ++i)
      pap += p.v[i] * ap.v[i];
    if (!(pap > 0))
      break;
    double alpha = rs / pap;
    for (size_t i = 0; i < p.v.size(); ++i) {
      x.v[i] += alpha * p.v[i];
      r.v[i] -= alpha * ap.v[i];
    }
    double rsNew = r.squaredNorm();
    for (size_t i = 0; i < p.v.size(); ++i)
      p.v[i] = r.v[i] + (rsNew / rs) * p.v[i];
    rs = rsNew;
  }
}

double kernelRelativeError(const Kernel &ref, const Kernel &k) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.v.size(); ++i) {
    double d = ref.v[i] - k.v[i];
    num += d * d;
    den += ref.v[i] * ref.v[i];
  }
  if (den == 0)
    return num == 0 ? 0.0 : std::numeric_limits<double>::infinity();
  return std::sqrt(num / den);
}

/// Stage parameters of a whole chain as one vector (for the joint step).
using Stages = std::vector<Kernel>;

double dot(const Stages &a, const Stages &b) {
  double s = 0;
  for (size_t k = 0; k < a.size(); ++k)
    for (size_t i = 0; i < a[k].v.size(); ++i)
      s += a[k].v[i] * b[k].v[i];
  return s;
}

/// y += alpha * x, stage by stage.
void axpy(Stages &y, double alpha, const Stages &x) {
  for (size_t k = 0; k < y.size(); ++k)
    for (size_t i = 0; i < y[k].v.size(); ++i)
      y[k].v[i] += alpha * x[k].v[i];
}

/// The Jacobian of the composed kernel with respect to all stages, at the
/// current stages, as forward and adjoint operators. The composed kernel is
/// linear in each stage, so the derivative in stage s is
/// pre_s (*) delta_s (*) post_s.
class ChainJacobian {
public:
  ChainJacobian(const Stages &stages) : stages(stages) {
    size_t n = stages.size();
    for (size_t s = 0; s < n; ++s) {
      pre.push_back(s > 0 ? composeRange(stages, 0, s) : Kernel());
      post.push_back(s + 1 < n ? composeRange(stages, s + 1, n) : Kernel());
    }
  }

  Kernel apply(const Stages &delta) const {
    Kernel sum;
    for (size_t s = 0; s < stages.size(); ++s) {
      Kernel k = delta[s];
      if (s > 0)
        k = compose(pre[s], k);
      if (s + 1 < stages.size())
        k = compose(k, post[s]);
      if (sum.v.empty())
        sum = std::move(k);
      else
        for (size_t i = 0; i < sum.v.size(); ++i)
          sum.v[i] += k.v[i];
    }
    return sum;
  }

  Stages adjoint(const Kernel &r) const {
    Stages g;
    for (size_t s = 0; s < stages.size(); ++s) {
      const Kernel &x = stages[s];
      Kernel k = r;
      if (s + 1 < stages.size())
        k = composeAdjointA(post[s], k, (s > 0 ? pre[s].kh : 1) + x.kh - 1,
                            (s > 0 ? pre[s].kw : 1) + x.kw - 1);
      if (s > 0)
        k = composeAdjointB(pre[s], k, x.kh, x.kw);
      g.push_back(std::move(k));
    }
    return g;
  }

  /// Mean of the diagonal of J^T J: for a first-stage entry it is the
  /// squared norm of one `post` input column, for a last-stage entry of one
  /// `pre` output row (approximated by products for inner stages).
  double meanDiagonal() const {
    double sum = 0, count = 0;
    for (size_t s = 0; s < stages.size(); ++s) {
      const Kernel &x = stages[s];
      double d = 1.0;
      if (s > 0)
        d *= pre[s].squaredNorm() / double(x.c);
      if (s + 1 < stages.size())
        d *= post[s].squaredNorm() / double(x.f);
      sum += d * double(x.v.size());
      count += double(x.v.size());
    }
    return count > 0 ? sum / count : 0.0;
  }

private:
  const Stages &stages;
  std::vector<Kernel> pre, post;
};

/// One Levenberg-Marquardt step on all stages jointly. ALS alone crawls
/// when the chain is over-parameterised (mid larger than needed) or in
/// "swamps" where the stages must move together; a damped Gauss-Newton step
/// moves them together. The damped normal equations are solved matrix-free
/// by CG, so no Jacobian is ever formed. Accepts the step only if it lowers
/// the error (keeping the iteration monotone) and adapts `tau`, the damping
/// relative to the Jacobian's scale. Returns the (possibly unchanged) error.
double levenbergMarquardtStep(Stages &stages, const Kernel &target, double err,
                              double &tau) {
  ChainJacobian jac(stages);
  Kernel resid = composeRange(stages, 0, stages.size());
  for (size_t i = 0; i < resid.v.size(); ++i)
    resid.v[i] = target.v[i] - resid.v[i];
  double mu = tau * std::max(jac.meanDiagonal(), 1e-300);
  Stages rhs = jac.adjoint(resid); // -gradient
  Stages delta = rhs;
  for (Kernel &k : delta)
    std::fill(k.v.begin(), k.v.end(), 0.0);
  Stages r = rhs, p = rhs;
  double rs = dot(r, r), rs0 = rs;
  size_t params = 0;
  for (const Kernel &k : stages)
    params += k.v.size();
  // Truncated CG: a rough solve is enough while far from the minimum, an
  // accurate one gives fast final convergence.
  int maxCg = int(std::min<size_t>(params, kLmCgIterations));
  for (int it = 0; it < maxCg && rs > 1e-12 * rs0; ++it) {
    Stages ap = jac.adjoint(jac.apply(p));
    axpy(ap, mu, p);
    double pap = dot(p, ap);
    if (!(pap > 0))
      break;
    double alpha = rs / pap;
    axpy(delta, alpha, p);
    axpy(r, -alpha, ap);
    double rsNew = dot(r, r);
    for (size_t k = 0; k < p.size(); ++k)
      for (size_t i = 0; i < p[k].v.size(); ++i)
        p[k].v[i] = r[k].v[i] + (rsNew / rs) * p[k].v[i];
    rs = rsNew;
  }
  Stages trial = stages;
  axpy(trial, 1.0, delta);
  double trialErr =
      kernelRelativeError(target, composeRange(trial, 0, trial.size()));
  if (trialErr < err) {
    stages = std::move(trial);
    tau = std::max(tau / 3.0, 1e-12);
    return trialErr;
  }
  tau = std::min(tau * 4.0, 1e6);
  return err;
}

/// An SVD-based start for "a then b" (a [mid][C][ka][ka], b [F][mid][kb][kb])
/// matching k ([F][C][ka+kb-1]^2). Lifting: the matrix
///   Z[(f,i,j)][(c,y,x)] = sum_m b[f][m][i][j] a[m][c][y][x]
/// has rank <= mid, and k is Z's linear "shift and add" image L(Z) (k[u][v]
/// sums the Z entries with i+y = u, j+x = v). Any rank-mid Z with
/// L(Z) = k factors by SVD into an exact (a, b), so alternate projections
/// between the affine set {L(Z) = k} (closed form: L L^T is diagonal, the
/// number of (i, y) pairs per u times that per v) and the rank-mid matrices.
/// Unlike a random start this lands in the right basin for exactly
/// composable kernels: from a fixed-seed random start ALS stalled in a local
/// minimum for a quarter to a third of random compositions in our trials
/// (5x5, mid = C or C + 1), from this start for none of them.
std::pair<Kernel, Kernel> liftedInit(const Kernel &k, int64_t ka, int64_t kb,
                                     int64_t mid, int projections) {
  int64_t f = k.f, c = k.c, kk = k.kh;
  Eigen::MatrixXd z = Eigen::MatrixXd::Zero(f * kb * kb, c * ka * ka);
  std::vector<double> pairs(kk, 0.0);
  for (int64_t i = 0; i < kb; ++i)
    for (int64_t y = 0; y < ka; ++y)
      pairs[i + y] += 1;
  auto row = [&](int64_t fo, int64_t i, int64_t j) {
    return (fo * kb + i) * kb + j;
  };
  auto col = [&](int64_t ci, int64_t y, int64_t x) {
    return (ci * ka + y) * ka + x;
  };
  // z += L^T (L L^T)^-1 (k - L(z)): the nearest z with L(z) = k.
  auto projectAffine = [&]() {
    Kernel r = k;
    for (int64_t fo = 0; fo < f; ++fo)
      for (int64_t i = 0; i < kb; ++i)
        for (int64_t j = 0; j < kb; ++j)
          for (int64_t ci = 0; ci < c; ++ci)
            for (int64_t y = 0; y < ka; ++y)
              for (int64_t x = 0; x < ka; ++x)
                r.at(fo, ci, i + y, j + x) -= z(row(fo, i, j), col(ci, y, x));
    for (int64_t fo = 0; fo < f; ++fo)
      for (int64_t ci = 0; ci < c; ++ci)
        for (int64_t u = 0; u < kk; ++u)
          for (int64_t v = 0; v < kk; ++v)
            r.at(fo, ci, u, v) /= pairs[u] * pairs[v];
    for (int64_t fo = 0; fo < f; ++fo)
      for (int64_t i = 0; i < kb; ++i)
        for (int64_t j = 0; j < kb; ++j)
          for (int64_t ci = 0; ci < c; ++ci)
            for (int64_t y = 0; y < ka; ++y)
              for (int64_t x = 0; x < ka; ++x)
                z(row(fo, i, j), col(ci, y, x)) += r.at(fo, ci, i + y, j + x);
  };
  projectAffine();
  Eigen::MatrixXd u, v;
  Eigen::VectorXd sv;
  for (int it = 0;; ++it) {
    Eigen::BDCSVD<Eigen::MatrixXd> svd(z, Eigen::ComputeThinU |
                                              Eigen::ComputeThinV);
    int64_t r = std::min<int64_t>(mid, svd.singularValues().size());
    u = svd.matrixU().leftCols(r);
    v = svd.matrixV().leftCols(r);
    sv = svd.singularValues().head(r);
    if (it == projections)
      break;
    z = u * sv.asDiagonal() * v.transpose();
    projectAffine();
  }
  // Channels beyond Z's size stay zero; there the lift is already exact.
  Kernel a(mid, c, ka, ka), b(f, mid, kb, kb);
  for (int64_t m = 0; m < sv.size(); ++m) {
    if (makeLargestPositive(u.col(m)))
      v.col(m) = -v.col(m);
    double g = std::sqrt(sv(m));
    for (int64_t fo = 0; fo < f; ++fo)
      for (int64_t i = 0; i < kb; ++i)
        for (int64_t j = 0; j < kb; ++j)
          b.at(fo, m, i, j) = u(row(fo, i, j), m) * g;
    for (int64_t ci = 0; ci < c; ++ci)
      for (int64_t y = 0; y < ka; ++y)
        for (int64_t x = 0; x < ka; ++x)
          a.at(m, ci, y, x) = v(col(ci, y, x), m) * g;
  }
  return {a, b};
}

/// The chain is invariant to scaling one stage up and another down;
/// equalising the stage norms keeps that drift from ruining the
/// conditioning of the solves.
void balanceNorms(Stages &stages) {
  double logMean = 0;
  for (const Kernel &st : stages) {
    double nrm = std::sqrt(st.squaredNorm());
    if (!(nrm > 0))
      return;
    logMean += std::log(nrm);
  }
  double target = std::exp(logMean / double(stages.size()));
  for (Kernel &st : stages) {
    double g = target / std::sqrt(st.squaredNorm());
    for (double &v : st.v)
      v *= g;
  }
}

} // namespace

double qsim::lighten::relativeError(const std::vector<float> &a,
                                    const std::vector<float> &b) {
  if (a.size() != b.size())
    return std::numeric_limits<double>::infinity();
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    double d = double(a[i]) - double(b[i]);
    num += d * d;
    den += double(a[i]) * double(a[i]);
  }
  // Any difference from an all-zero reference is infinitely large relative
  // to it.
  if (den == 0)
    return num == 0 ? 0.0 : std::numeric_limits<double>::infinity();
  return std::sqrt(num / den);
}

int64_t qsim::lighten::rankForEnergy(const std::vector<double> &singularValues,
                                     double energy) {
  if (singularValues.empty())
    return 0;
  // "Leading" means largest: sort a copy so callers need not.
  std::vector<double> s(singularValues);
  std::sort(s.begin(), s.end(),
            [](double x, double y) { return std::fabs(x) > std::fabs(y); });
  double total = 0;
  for (double x : s)
    total += x * x;
  if (!(total > 0) || !(energy > 0))
    return 1;
  // The cumulative sum below adds in the same order as `total`, so with
  // energy == 1 it reaches the target exactly and never overruns.
  double target = std::min(energy, 1.0) * total, cum = 0;
  for (size_t r = 0; r < s.size(); ++r) {
    cum += s[r] * s[r];
    if (cum >= target)
      return int64_t(r + 1);
  }
  return int64_t(s.size());
}

Tucker2 qsim::lighten::tucker2(const ConvWeight &w, int64_t rank1,
                               int64_t rank2, double energy) {
  Tucker2 out;
  if (w.size() == 0)
    return out;
  Kernel k = toKernel(w);
  int64_t f = w.f, c = w.c, sp = w.kh * w.kw;
  Eigen::MatrixXd m0(f, c * sp), m1(c, f * sp);
  for (int64_t fo = 0; fo < f; ++fo)
    for (int64_t ci = 0; ci < c; ++ci)
      for (int64_t s = 0; s < sp; ++s) {
        double v = k.v[(fo * c + ci) * sp + s];
        m0(fo, ci * sp + s) = v;
        m1(ci, fo * sp + s) = v;
      }
  // Full U: an explicit rank may exceed the number of singular values
  // (e.g. F > C*kh*kw); the orthogonal complement keeps r = F exact.
  Eigen::BDCSVD<Eigen::MatrixXd> svd0(m0, Eigen::ComputeFullU);
  Eigen::BDCSVD<Eigen::MatrixXd> svd1(m1, Eigen::ComputeFullU);
  int64_t r2 = rank2 > 0
                   ? std::min(rank2, f)
                   : rankForEnergy(toStdVector(svd0.singularValues()), energy);
  int64_t r1 = rank1 > 0
                   ? std::min(rank1, c)
                   : rankForEnergy(toStdVector(svd1.singularValues()), energy);
  Eigen::MatrixXd uOut = svd0.matrixU().leftCols(r2);
  Eigen::MatrixXd uIn = svd1.matrixU().leftCols(r1);
  for (int64_t i = 0; i < r2; ++i)
    makeLargestPositive(uOut.col(i));
  for (int64_t i = 0; i < r1; ++i)
    makeLargestPositive(uIn.col(i));

  // core = W x_0 U_out^T x_1 U_in^T, one mode at a time.
  Eigen::MatrixXd t = uOut.transpose() * m0; // r2 x (C*sp)
  out.core = toWeight(Kernel(r2, r1, w.kh, w.kw));
  Eigen::MatrixXd slice(c, sp);
  for (int64_t a = 0; a < r2; ++a) {
    for (int64_t ci = 0; ci < c; ++ci)
      for (int64_t s = 0; s < sp; ++s)
        slice(ci, s) = t(a, ci * sp + s);
    Eigen::MatrixXd g = uIn.transpose() * slice; // r1 x sp
    for (int64_t b = 0; b < r1; ++b)
      for (int64_t s = 0; s < sp; ++s)
        out.core.data[(a * r1 + b) * sp + s] = float(g(b, s));
  }
  Kernel first(r1, c, 1, 1), last(f, r2, 1, 1);
  for (int64_t b = 0; b < r1; ++b)
    for (int64_t ci = 0; ci < c; ++ci)
      first.at(b, ci, 0, 0) = uIn(ci, b);
  for (int64_t fo = 0; fo < f; ++fo)
    for (int64_t a = 0; a < r2; ++a)
      last.at(fo, a, 0, 0) = uOut(fo, a);
  out.first = toWeight(first);
  out.last = toWeight(last);
  out.r1 = r1;
  out.r2 = r2;
  return out;
}

SpatialSVD qsim::lighten::spatialSvd(const ConvWeight &w, int64_t rank,
                                     double energy) {
  SpatialSVD out;
  if (w.size() == 0)
    return out;
  Kernel k = toKernel(w);
  int64_t f = w.f, c = w.c, kh = w.kh, kw = w.kw;
  Eigen::MatrixXd m(c * kh, f * kw);
  for (int64_t fo = 0; fo < f; ++fo)
    for (int64_t ci = 0; ci < c; ++ci)
      for (int64_t y = 0; y < kh; ++y)
        for (int64_t x = 0; x < kw; ++x)
          m(ci * kh + y, fo * kw + x) = k.at(fo, ci, y, x);
  Eigen::BDCSVD<Eigen::MatrixXd> svd(m,
                                     Eigen::ComputeThinU | Eigen::ComputeThinV);
  const Eigen::VectorXd &sv = svd.singularValues();
  int64_t full = sv.size();
  int64_t r =
      rank > 0 ? std::min(rank, full) : rankForEnergy(toStdVector(sv), energy);
  Eigen::MatrixXd u = svd.matrixU().leftCols(r);
  Eigen::MatrixXd v = svd.matrixV().leftCols(r);
  for (int64_t i = 0; i < r; ++i)
    if (makeLargestPositive(u.col(i)))
      v.col(i) = -v.col(i);
  // sqrt(S) on both sides balances the two factors' magnitudes, which
  // matters once they are quantized or fine-tuned separately.
  Kernel vert(r, c, kh, 1), horiz(f, r, 1, kw);
  for (int64_t i = 0; i < r; ++i) {
    double g = std::sqrt(sv(i));
    for (int64_t ci = 0; ci < c; ++ci)
      for (int64_t y = 0; y < kh; ++y)
        vert.at(i, ci, y, 0) = u(ci * kh + y, i) * g;
    for (int64_t fo = 0; fo < f; ++fo)
      for (int64_t x = 0; x < kw; ++x)
        horiz.at(fo, i, 0, x) = g * v(fo * kw + x, i);
  }
  out.vertical = toWeight(vert);
  out.horizontal = toWeight(horiz);
  out.rank = r;
  return out;
}

DepthwiseSeparable qsim::lighten::depthwiseSeparable(const ConvWeight &w) {
  DepthwiseSeparable out;
  if (w.size() == 0)
    return out;
  Kernel k = toKernel(w);
  int64_t f = w.f, c = w.c, sp = w.kh * w.kw;
  Kernel dw(c, 1, w.kh, w.kw), pw(f, c, 1, 1);
  Eigen::MatrixXd a(f, sp);
  for (int64_t ci = 0; ci < c; ++ci) {
    for (int64_t fo = 0; fo < f; ++fo)
      for (int64_t s = 0; s < sp; ++s)
        a(fo, s) = k.v[(fo * c + ci) * sp + s];
    Eigen::JacobiSVD<Eigen::MatrixXd> svd(a, Eigen::ComputeThinU |
                                                 Eigen::ComputeThinV);
    double s1 = svd.singularValues()(0);
    if (!(s1 > 0))
      continue; // an all-zero slice stays zero
    Eigen::VectorXd u1 = svd.matrixU().col(0), v1 = svd.matrixV().col(0);
    // The sign rule of the contract: depthwise's largest entry positive.
    if (makeLargestPositive(v1))
      u1 = -u1;
    double g = std::sqrt(s1);
    for (int64_t s = 0; s < sp; ++s)
      dw.v[ci * sp + s] = v1(s) * g;
    for (int64_t fo = 0; fo < f; ++fo)
      pw.at(fo, ci, 0, 0) = u1(fo) * g;
  }
  out.depthwise = toWeight(dw);
  out.pointwise = toWeight(pw);
  return out;
}

KernelChain qsim::lighten::kernelChain(const ConvWeight &w, int64_t mid,
                                       int iterations) {
  KernelChain out;
  if (w.size() == 0 || w.kh != w.kw || mid <= 0)
    return out;
  int64_t k = w.kh;
  if (k == 3) {
    out.stages.push_back(w);
    return out;
  }
  if (k != 5 && k != 7)
    return out;
  Kernel target = toKernel(w);

  // Start: split off the first 3x3 stage, then (7x7) split the remaining
  // 5x5 kernel into the last two.
  Stages stages;
  std::pair<Kernel, Kernel> split =
      liftedInit(target, 3, k - 2, mid, kInitProjections);
  stages.push_back(std::move(split.first));
  if (k == 7) {
    split = liftedInit(split.second, 3, 3, mid, kInitProjections);
    stages.push_back(std::move(split.first));
  }
  stages.push_back(std::move(split.second));
  size_t n = stages.size();
  balanceNorms(stages);

  double err = kernelRelativeError(target, composeRange(stages, 0, n));
  double tau = 1e-3;
  int done = 0;
  // Float weights cannot resolve anything finer than this.
  constexpr double kResolution = 1e-7;
  while (done < iterations && err > kResolution) {
    double prevErr = err;
    solveEndStage(stages, target, /*first=*/true);
    for (size_t s = 1; s + 1 < n; ++s)
      solveInnerStage(stages, s, target);
    solveEndStage(stages, target, /*first=*/false);
    balanceNorms(stages);
    err = kernelRelativeError(target, composeRange(stages, 0, n));
    // ALS converges only sublinearly when mid exceeds what the kernel
    // needs (0 of 20 exactly composable 5x5 kernels with mid = 2C reached
    // 1e-3 in 100 sweeps); a joint damped Gauss-Newton step per sweep
    // fixes that (20 of 20).
    err = levenbergMarquardtStep(stages, target, err, tau);
    ++done;
    // Both steps never increase the error; stop once it stalls.
    if (prevErr - err <= 1e-9 * prevErr)
      break;
  }
  for (const Kernel &st : stages)
    out.stages.push_back(toWeight(st));
  out.iterations = done;
  return out;
}

ConvWeight qsim::lighten::composeKernels(const ConvWeight &a,
                                         const ConvWeight &b) {
  if (a.f != b.c)
    return ConvWeight();
  return toWeight(compose(toKernel(a), toKernel(b)));
}

ConvWeight qsim::lighten::reconstruct(const Tucker2 &t) {
  return composeKernels(composeKernels(t.first, t.core), t.last);
}

ConvWeight qsim::lighten::reconstruct(const SpatialSVD &s) {
  return composeKernels(s.vertical, s.horizontal);
}

ConvWeight qsim::lighten::reconstruct(const DepthwiseSeparable &d) {
  Kernel dw = toKernel(d.depthwise), pw = toKernel(d.pointwise);
  if (dw.f != pw.c)
    return ConvWeight();
  Kernel k(pw.f, pw.c, dw.kh, dw.kw);
  for (int64_t fo = 0; fo < pw.f; ++fo)
    for (int64_t ci = 0; ci < pw.c; ++ci)
      for (int64_t y = 0; y < dw.kh; ++y)
        for (int64_t x = 0; x < dw.kw; ++x)
          k.at(fo, ci, y, x) = pw.at(fo, ci, 0, 0) * dw.at(ci, 0, y, x);
  return toWeight(k);
}
