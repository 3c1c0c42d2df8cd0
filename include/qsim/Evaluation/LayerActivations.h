//===- LayerActivations.h - what chosen layers see and produce -*- C++ -*-===//
//
// Data-aware recovery (bias correction, AdaRound, reconstruction after
// pruning or factorization) fits a layer to what it sees on sample images:
// its inputs and output in the float model, or in a partly quantized one.
// recordLayerActivations runs a model over network inputs and hands the
// chosen layers' inputs and output (as f32 C x H x W tensors, dequantized
// when int8) to a sink, image by image, without keeping them all.
// sampleConvPatches turns a convolution's input into the im2col rows the
// least-squares fits use.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_EVALUATION_LAYERACTIVATIONS_H
#define QSIM_EVALUATION_LAYERACTIVATIONS_H

#include "qsim/Dialect/QSim/IR/QSimOps.h"
#include "qsim/Interpreter/Executor.h"
#include "qsim/Runtime/Tensor.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/STLFunctionalExtras.h"

#include <cstdint>
#include <random>
#include <vector>

namespace qsim::eval {

/// One layer's view of one image: its external inputs (other layers'
/// outputs or the network input, in operand order) and its output, f32.
struct LayerActivations {
  std::vector<rt::Tensor> inputs;
  rt::Tensor output;
};

using ActivationSink = llvm::function_ref<void(
    size_t image, int64_t layer, const LayerActivations &activations)>;

/// Runs `module` on every tensor of `networkInputs` and calls `sink` for
/// each layer of `layers` (Darknet indices) after it ran. Fails with a
/// diagnostic naming the layer when a layer does not exist or the plan
/// cannot be built.
mlir::LogicalResult
recordLayerActivations(mlir::ModuleOp module,
                       llvm::ArrayRef<rt::Tensor> networkInputs,
                       llvm::ArrayRef<int64_t> layers, ActivationSink sink,
                       const interp::ExecutorOptions &options = {});

/// The im2col rows of a (non-grouped or grouped) convolution: for output
/// positions `positions` (oy * outW + ox), the input patch of group
/// `group` in (ci, ky, kx) order, zero outside the input (Darknet's
/// padding, scaled by the dilation), as rows of `patchSize()` floats
/// appended to `rows`.
struct ConvPatchGeometry {
  int64_t inC = 0, inH = 0, inW = 0;
  int64_t kh = 1, kw = 1, sy = 1, sx = 1, py = 0, px = 0, dilation = 1;
  int64_t groups = 1, outH = 0, outW = 0;
  static ConvPatchGeometry of(Conv2DOp conv);
  int64_t channelsPerGroup() const { return inC / groups; }
  int64_t patchSize() const { return channelsPerGroup() * kh * kw; }
  int64_t outputPositions() const { return outH * outW; }
};
void appendConvPatches(const ConvPatchGeometry &g, const float *input,
                       int64_t group, llvm::ArrayRef<int64_t> positions,
                       std::vector<float> &rows);

/// `count` distinct output positions drawn uniformly (all of them when
/// count >= the number of positions), sorted.
std::vector<int64_t> samplePositions(int64_t positions, int64_t count,
                                     std::mt19937_64 &rng);

} // namespace qsim::eval

#endif
