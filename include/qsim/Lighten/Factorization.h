//===- Factorization.h - conv factorization over the IR ---------*- C++ -*-===//
//
// --qsim-factorize-conv: replaces a convolutional layer by a chain of
// cheaper convolutions whose composition approximates (or, at full rank,
// equals) the original kernel (Decompositions.h has the mathematics).
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_LIGHTEN_FACTORIZATION_H
#define QSIM_LIGHTEN_FACTORIZATION_H

#include "qsim/Lighten/Reconstruction.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"

#include <optional>
#include <set>
#include <string>
#include <vector>

namespace qsim::lighten {

enum class FactorizeMethod { Tucker2, SpatialSvd, DepthwiseSeparable, Kernel };
std::optional<FactorizeMethod> parseFactorizeMethod(llvm::StringRef s);
llvm::StringRef stringifyFactorizeMethod(FactorizeMethod m);

struct FactorizeOptions {
  FactorizeMethod method = FactorizeMethod::Tucker2;
  /// Darknet indices of the layers to factorize (empty: every eligible
  /// convolution). Naming a layer that is not a convolution is an error.
  std::set<int64_t> layers;
  /// Only the `top` eligible convolutions with the most MACs (0: no limit).
  int64_t top = 0;
  /// Skip convolutions with fewer MACs.
  int64_t minMacs = 0;
  /// Explicit ranks (tucker2: rank1 = input side, rank2 = output side;
  /// spatial-svd: rank1; kernel: rank1 = channels between the 3x3 stages).
  /// 0: chosen by `energy`.
  int64_t rank1 = 0, rank2 = 0;
  double energy = 0.9;
  /// Apply even when the ranks save no MACs (experiments, tests).
  bool force = false;
  /// Images for the output error (layer outputs and model outputs).
  std::vector<std::string> images;
  int maxImages = 4;
  /// With images: refit each replacement's last stage by least squares to
  /// the original layer's output on them (data-aware factorization).
  bool refit = false;
  ReconstructOptions reconstruct;
};

/// What happened to one convolution.
struct FactorizedLayer {
  int64_t layer = 0;         // index before the rewrite
  int64_t firstNewLayer = 0; // index of its first replacement layer after
  std::string shape;         // "3x3/1 128->256"
  std::string ranks;         // "r1=73 r2=141"
  int64_t macsBefore = 0, macsAfter = 0;
  int64_t paramsBefore = 0, paramsAfter = 0;
  double weightError = 0;  // relative Frobenius error of the composed kernel
  double outputError = -1; // relative error of the layer output (images)
  bool applied = false;
  std::string note; // why it was skipped, or "approximate"
};

struct FactorizeResult {
  std::vector<FactorizedLayer> layers;
  int64_t macsBefore = 0, macsAfter = 0, paramsBefore = 0, paramsAfter = 0;
  /// Model output SQNR (dB) of the factorized against the original model on
  /// the images; unset without images.
  std::optional<double> outputSqnr;
  int imagesUsed = 0;
  /// The last stages refit (with `refit`), by their index after the rewrite.
  std::vector<ReconstructedLayer> refits;
};

/// Factorizes the selected convolutions of a float module in place. Layer
/// output errors compare each replaced layer with its replacement on the
/// input the original model gives it (isolated, not accumulated).
mlir::LogicalResult factorizeConvs(mlir::ModuleOp module,
                                   const FactorizeOptions &options,
                                   FactorizeResult &result);

void printFactorizeReport(const FactorizeOptions &options,
                          const FactorizeResult &result, llvm::raw_ostream &os);

} // namespace qsim::lighten

#endif
