//===- Decompositions.h - weight-preserving conv factorizations -*- C++ -*-===//
//
// The mathematics of --qsim-factorize-conv on plain arrays (no MLIR), so
// it can be tested on its own. Conv weights are [F][C][kh][kw] row-major
// (Darknet's order); every factor is itself a conv weight in that layout.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_LIGHTEN_DECOMPOSITIONS_H
#define QSIM_LIGHTEN_DECOMPOSITIONS_H

#include <cstdint>
#include <string>
#include <vector>

namespace qsim::lighten {

struct ConvWeight {
  int64_t f = 0, c = 0, kh = 0, kw = 0;
  std::vector<float> data; // f*c*kh*kw values, [F][C][kh][kw]
  int64_t size() const { return f * c * kh * kw; }
};

/// Relative Frobenius error ||a - b|| / ||a|| (0 when a == b == 0).
double relativeError(const std::vector<float> &a, const std::vector<float> &b);

/// The smallest rank whose leading singular values keep `energy` (0..1] of
/// the sum of squared singular values.
int64_t rankForEnergy(const std::vector<double> &singularValues, double energy);

/// Tucker-2 (HOSVD on the two channel modes):
///   first  [r1][C][1][1]  (input projection U_in^T)
///   core   [r2][r1][kh][kw]
///   last   [F][r2][1][1]  (output projection U_out)
/// With r1 = C and r2 = F it reconstructs W exactly. rank1/rank2 <= 0: use
/// `energy` on the mode-1 (input) and mode-0 (output) unfoldings.
struct Tucker2 {
  ConvWeight first, core, last;
  int64_t r1 = 0, r2 = 0;
};
Tucker2 tucker2(const ConvWeight &w, int64_t rank1, int64_t rank2,
                double energy);

/// Spatial SVD (Jaderberg et al.): W[f][c][y][x] ~ sum_r V[r][c][y] H[f][r][x]
/// from the SVD of the (C*kh) x (F*kw) matrix M[(c,y)][(f,x)]:
///   vertical   [r][C][kh][1]
///   horizontal [F][r][1][kw]
/// Exact at r = min(C*kh, F*kw). rank <= 0: by energy.
struct SpatialSVD {
  ConvWeight vertical, horizontal;
  int64_t rank = 0;
};
SpatialSVD spatialSvd(const ConvWeight &w, int64_t rank, double energy);

/// Depthwise-separable fit: W[f][c][:][:] ~ P[f][c] * D[c][:][:], the best
/// rank-1 approximation of each input channel's F x (kh*kw) slice:
///   depthwise [C][1][kh][kw]  (groups = C)
///   pointwise [F][C][1][1]
/// Exact only when every slice has rank 1.
struct DepthwiseSeparable {
  ConvWeight depthwise, pointwise;
};
DepthwiseSeparable depthwiseSeparable(const ConvWeight &w);

/// A k x k kernel (k = 5 or 7) as a chain of 3x3 convs (two for 5x5, three
/// for 7x7) with `mid` channels in between, initialised by alternating
/// least squares on the composed kernel. Approximate (needs fine-tuning).
/// `stages` are in application order: stages[0] is [mid][C][3][3], the last
/// [F][mid][3][3].
struct KernelChain {
  std::vector<ConvWeight> stages;
  int iterations = 0;
};
KernelChain kernelChain(const ConvWeight &w, int64_t mid, int iterations = 30);

/// The k x k kernel equal to applying `a` then `b` (stride 1, full
/// composition of the spatial kernels): [F_b][C_a][ka+kb-1][ka+kb-1].
ConvWeight composeKernels(const ConvWeight &a, const ConvWeight &b);

/// The kernel equivalent to a Tucker-2 / spatial-SVD / depthwise-separable
/// factorization (for reconstruction errors).
ConvWeight reconstruct(const Tucker2 &t);
ConvWeight reconstruct(const SpatialSVD &s);
ConvWeight reconstruct(const DepthwiseSeparable &d);

} // namespace qsim::lighten

#endif
