//===- Recovery.h - shared pieces of post-training recovery -----*- C++ -*-===//
//
// Bias correction and AdaRound fit a float model to what its quantized
// form will compute. Both need the calibration images as network inputs,
// the weights exactly as --qsim-quantize will round them, and the mean
// im2col patch a convolution sees (the mean of its pre-activation output
// is linear in it).
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_QUANT_RECOVERY_H
#define QSIM_QUANT_RECOVERY_H

#include "qsim/Dialect/QSim/IR/Layers.h"
#include "qsim/Evaluation/LayerActivations.h"
#include "qsim/Quant/Quantizer.h"

#include <string>
#include <vector>

namespace qsim::quantization {

/// The layers of `module` and, in program order, its conv2d/connected
/// layers planned int8. Fails with a diagnostic naming `pass` and the layer
/// on a quantized model, an unfolded batch norm, a shape-only layer, or
/// when no such layer is planned int8.
mlir::LogicalResult findInt8WeightedLayers(mlir::ModuleOp module,
                                           llvm::StringRef pass,
                                           std::vector<Layer> &layers,
                                           std::vector<const Layer *> &targets);

/// Runs `quantized` on every input up to (and including) `layer`'s step
/// and hands `sink` that step's first input, dequantized to f32.
mlir::LogicalResult forEachLayerInput(
    mlir::ModuleOp quantized, const Layer &layer,
    llvm::ArrayRef<rt::Tensor> inputs, const interp::ExecutorOptions &options,
    llvm::function_ref<void(size_t image, const rt::Tensor &input)> sink);

/// Whether `module` was calibrated with method=log2, which asks
/// --qsim-quantize for power-of-two scales.
bool calibratedLog2(mlir::ModuleOp module);

/// The first `maxImages` (all when <= 0) of `files` decoded and
/// preprocessed as `module`'s input (letterbox or resize, as Darknet).
bool loadNetworkInputs(mlir::ModuleOp module, llvm::ArrayRef<std::string> files,
                       int maxImages, std::vector<rt::Tensor> &out,
                       std::string &error);

/// The weight scales --qsim-quantize chooses for `w` (`channels` output
/// channels): quantization::weightScales (per channel or per tensor, max
/// |w| / qmax or the least-squares clipped range, power of two when asked).
std::vector<float> chooseWeightScales(llvm::ArrayRef<float> w, int64_t channels,
                                      const QuantizeOptions &options);

/// `w` rounded to the int8 grid as --qsim-quantize rounds it, as floats
/// (q * scale).
std::vector<float> fakeQuantizeWeights(llvm::ArrayRef<float> w,
                                       int64_t channels,
                                       const QuantizeOptions &options);

/// The mean input a weighted layer's output channels see: for a conv2d,
/// the mean im2col patch of each group (groups x patchSize, zero padding
/// included as Darknet pads); for a connected layer, the mean flattened
/// input. Accumulates sums image by image.
class MeanPatch {
public:
  explicit MeanPatch(mlir::Operation *weighted);
  void add(const rt::Tensor &input);
  /// Mean patch of group `g` (patchSize() values).
  std::vector<double> mean(int64_t group) const;
  int64_t groups() const { return numGroups; }
  int64_t patchSize() const { return size; }

private:
  bool conv = false;
  eval::ConvPatchGeometry geometry;
  int64_t numGroups = 1, size = 0;
  std::vector<double> sums;
  int64_t count = 0;
};

/// A weighted layer's (conv2d or connected) output channels, and the
/// number of output channels per group (all of them for connected).
int64_t outputChannels(mlir::Operation *weighted);
int64_t filtersPerGroup(mlir::Operation *weighted);

} // namespace qsim::quantization

#endif
