//===- Pruning.h - structured and unstructured pruning -----------*- C++
//-*-===//

#ifndef QSIM_LIGHTEN_PRUNING_H
#define QSIM_LIGHTEN_PRUNING_H

#include "qsim/Dialect/QSim/IR/Layers.h"
#include "qsim/Lighten/Reconstruction.h"

#include "llvm/Support/raw_ostream.h"

#include <set>
#include <vector>
#include <string>

namespace qsim::lighten {

/// How channels are ranked: filter norms, the batch-norm scale, or (with
/// images) each channel's contribution to its consumers' outputs,
/// E[x_c^2] * ||W[:, c]||^2 summed over the consuming convolutions, or
/// (with images) greedily by the output error the consumers keep after
/// their least-squares refit (group OBS on X^T X, ThiNet-style).
enum class PruneCriterion { L1, L2, BNGamma, Contribution, Reconstruction };
/// --qsim-prune's mode: whole channels, or the smallest weights.
enum class PruneMode { Channel, Magnitude };
/// mode=magnitude: the same share of every layer, or (with images) per
/// layer by sensitivity with the same total (allocateSparsity).
enum class SparsityAllocation { Uniform, Sensitivity };

struct ChannelPruneOptions {
  double ratio = 0.3;
  PruneCriterion criterion = PruneCriterion::L1;
  /// Darknet indices of the layers whose filters may be removed (empty: all).
  std::set<int64_t> layers;
  /// Remaining filter counts are rounded up to a multiple of this.
  int64_t roundTo = 8;
  /// Images (files or folders) on which every convolution that lost input
  /// channels is refit to the original's output (Reconstruction.h); none:
  /// the kept weights stay as they were.
  std::vector<std::string> images;
  /// At most this many of them (0: all).
  int maxImages = 16;
  /// Also refit every later (non-grouped) convolution to the original's
  /// output, not only those that lost input channels.
  bool refitDownstream = true;
  ReconstructOptions reconstruct;
};

/// Removes the least important channels: for every set of convolutions
/// whose channels are coupled (ChannelGroups), `ratio` of the coupled
/// channel classes, rounded so that `roundTo` divides what remains. Filters
/// go from the producers, the matching input channels from every consumer,
/// with biases, batch norms and shapes updated. Prints a per-layer report
/// to `report` when given. Fails with a diagnostic on quantized models.
mlir::LogicalResult pruneChannels(mlir::ModuleOp module,
                                  const ChannelPruneOptions &options,
                                  llvm::raw_ostream *report);

struct MagnitudePruneOptions {
  double sparsity = 0.5;
  /// Darknet indices of the layers to sparsify (empty: all).
  std::set<int64_t> layers;
  /// Images (files or folders): the non-grouped convolutions are then
  /// sparsified by SparseGPT's second-order update on them
  /// (Reconstruction.h, sparsifyConvs) instead of by magnitude alone.
  std::vector<std::string> images;
  int maxImages = 16;
  SparsityAllocation allocation = SparsityAllocation::Uniform;
  ReconstructOptions reconstruct;
};
mlir::LogicalResult pruneMagnitude(mlir::ModuleOp module,
                                   const MagnitudePruneOptions &options,
                                   llvm::raw_ostream *report);

/// Zeros the `sparsity` fraction of smallest-magnitude weights of every
/// convolutional/connected layer in `layers` (empty: all), recording
/// `qsim.sparsity` on the op.
mlir::LogicalResult pruneMagnitude(mlir::ModuleOp module, double sparsity,
                                   const std::set<int64_t> &layers,
                                   llvm::raw_ostream *report);

/// Recomputes every qsim op's result type from its operands and attributes
/// (after weights or filter counts changed), keeping element types, and the
/// function's result types.
mlir::LogicalResult refreshResultTypes(mlir::func::FuncOp func);

} // namespace qsim::lighten

#endif
