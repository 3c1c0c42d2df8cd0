//===- Reconstruction.h - least-squares refit after lightening -*- C++ -*-===//
//
// Removing channels (or approximating a layer) changes what the next
// convolution sees. Instead of retraining, its weights can be refit in
// closed form so that its output on sample images matches the original
// model's (He et al. 2017, "Channel pruning"; Luo et al. 2017, ThiNet):
// min_W' || X' W'^T + b' - Y ||^2 over sampled output positions, where X'
// are the im2col patches of the lightened model's input to the layer (so
// that errors of the layers before are compensated too) and Y the original
// layer's pre-activation output at the same positions.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_LIGHTEN_RECONSTRUCTION_H
#define QSIM_LIGHTEN_RECONSTRUCTION_H

#include "qsim/Runtime/Tensor.h"

#include "mlir/IR/BuiltinOps.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace qsim::lighten {

struct ReconstructOptions {
  /// Sampled output positions per image and layer; 0: positionsPerImage's
  /// automatic count.
  int64_t samplesPerImage = 0;
  /// The smallest Tikhonov regularisation tried, relative to the mean
  /// diagonal of X'^T X'; larger ones (up to 1) are tried too and the one
  /// best on held-out samples is used.
  double ridge = 1e-4;
  uint64_t seed = 1;

  /// samplesPerImage, or for 0 at least 256 per image and 32768 over all
  /// images: the normal equations have up to 4609 unknowns per filter (3x3
  /// over 512 inputs) and the ridge is chosen on held-out samples, so a few
  /// in-domain images need many positions each (pruning yolov3-tiny-aix2022
  /// by 30 % with 29 CAPP images: 75.66 mAP at 256, 79.19 at 1024).
  int64_t positionsPerImage(size_t images) const {
    if (samplesPerImage != 0)
      return samplesPerImage; // a negative count is refused by the caller
    int64_t n = (int64_t)(images > 0 ? images : 1);
    return std::max<int64_t>(256, (32768 + n - 1) / n);
  }
};

/// The network inputs of the images in `items` (files or folders, at most
/// `maxImages` of them; 0: all), preprocessed for `module`.
mlir::LogicalResult loadRefitImages(mlir::ModuleOp module,
                                    const std::vector<std::string> &items,
                                    int maxImages,
                                    std::vector<rt::Tensor> &inputs);

/// One refit layer: its relative output error on the held-out samples
/// (every fourth), ||X'W^T + b - Y|| / ||Y||, with the weights before and
/// after the fit (equal when the layer was kept as it was).
struct ReconstructedLayer {
  int64_t layer = 0;
  int64_t samples = 0;
  double errorBefore = 0, errorAfter = 0;
};

/// A convolution of the lightened model to refit: its Darknet index, the
/// index of the original layer whose output it must reproduce (the same
/// output size), and the original filter index of each of its filters.
struct RefitRequest {
  int64_t layer = 0;
  int64_t originalLayer = 0;
  std::vector<int64_t> originalFilters;
};

/// Refits, in layer order, each requested convolution of `module` to its
/// original layer of `original`, on `networkInputs`. Only non-grouped
/// convolutions; the new bias goes to the conv's bias or, with a batch norm
/// after it, into the batch norm's mean. A layer keeps its weights when the
/// fit is not better on held-out samples. Both modules must be float.
mlir::LogicalResult reconstructConvs(mlir::ModuleOp module,
                                     mlir::ModuleOp original,
                                     const std::vector<rt::Tensor> &networkInputs,
                                     std::vector<RefitRequest> requests,
                                     const ReconstructOptions &options,
                                     std::vector<ReconstructedLayer> &result);

/// The same layer numbering (pruning): `keptFilters` maps a layer to the
/// original index of each of its filters.
mlir::LogicalResult reconstructPrunedConvs(
    mlir::ModuleOp module, mlir::ModuleOp original,
    const std::vector<rt::Tensor> &networkInputs,
    const std::map<int64_t, std::vector<int64_t>> &keptFilters,
    const ReconstructOptions &options, std::vector<ReconstructedLayer> &result);

/// One sparsified convolution: zeroed weights and the relative output error
/// on the samples, ||(W' - W) X'|| / ||W X'||.
struct SparsifiedLayer {
  int64_t layer = 0;
  int64_t samples = 0;
  int64_t zeroed = 0, weights = 0;
  /// The share of the layer's weights asked for.
  double sparsity = 0;
  /// Both scaled by the batch norm's gamma / sd when there is one.
  double error = 0;
  /// The same error with the smallest-magnitude weights zeroed, no update.
  double magnitudeError = 0;
};

/// Zeros the `sparsity` share of the weights of each non-grouped
/// convolution in `layers` (empty: all) with SparseGPT's second-order
/// update (Frantar & Alistarh 2023, OBS row updates from X'X'^T): the
/// weights that cost the least output error on `networkInputs` go, and the
/// remaining weights of the same filter absorb their contribution. In layer
/// order, each on the inputs the earlier sparse layers produce. With
/// `original` (the dense model, same layers), each layer is first refit to
/// the original's output on those inputs, so that the error of the earlier
/// sparse layers is compensated too.
mlir::LogicalResult sparsifyConvs(
    mlir::ModuleOp module, const std::vector<rt::Tensor> &networkInputs,
    double sparsity, const std::set<int64_t> &layers,
    const ReconstructOptions &options, std::vector<SparsifiedLayer> &result,
    mlir::ModuleOp original = {},
    const std::map<int64_t, double> &sparsityByLayer = {});

/// Per-layer sparsities for sparsifyConvs (the non-grouped convolutions in
/// `layers`, empty: all) whose weighted mean is `sparsity`, so that the
/// total share of zeroed weights stays the asked one: the layers' summed
/// squared relative output errors are minimised (greedily on the marginal
/// cost per zeroed weight), each layer's error curve measured by the
/// second-order sweep at 0, 5, ..., 95 % on the unpruned model's inputs.
/// A layer whose weights cost little output error (wide, redundant
/// inputs) takes more zeros than one with few, necessary ones (the first
/// layer's 3 input channels).
mlir::LogicalResult
allocateSparsity(mlir::ModuleOp module,
                 const std::vector<rt::Tensor> &networkInputs, double sparsity,
                 const std::set<int64_t> &layers,
                 const ReconstructOptions &options,
                 std::map<int64_t, double> &sparsityByLayer);

} // namespace qsim::lighten

#endif
