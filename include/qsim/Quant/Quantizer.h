//===- Quantizer.h - materializing a precision plan --------------*- C++
//-*-===//
//
// Turns the `qsim.precision` plan of a calibrated float model into types:
// int8 layers get !quant.uniform<i8:f32, s:zp> activations, int8 weights
// (symmetric, per output channel by default), int32 biases and fixed-point
// multiplier/shift pairs; fp16 layers get f16 tensors and weights; casts
// (quant.qcast/dcast, arith.truncf/extf) go wherever precisions meet.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_QUANT_QUANTIZER_H
#define QSIM_QUANT_QUANTIZER_H

#include "qsim/Dialect/QSim/IR/Layers.h"
#include "qsim/Runtime/QuantMath.h"

#include "mlir/IR/BuiltinOps.h"

#include <optional>
#include <set>

namespace qsim::quantization {

/// --qsim-quantize's choices (QuantizeOptions holds what they mean).
enum class WeightGranularity { PerChannel, PerTensor };
enum class ActivationScheme { Asymmetric, Symmetric };
enum class ScaleKind { Float, Pow2 };
enum class AccumulatorWidth { Int32, Int16 };
/// How a block of weights (an output channel, or the tensor) chooses its
/// symmetric range: its largest magnitude, or the clipped range with the
/// least squared rounding error (weight-range=mse).
enum class WeightRange { Max, Mse };

struct QuantizeOptions {
  bool perChannelWeights = true;
  bool symmetricActivations = false;
  bool pow2Scales = false;
  int accumulatorBits = 32;
  /// Weight width, 2..8: integers in [-(2^(bits-1) - 1), 2^(bits-1) - 1],
  /// stored in i8 (their `weight_quant` type has that storage range).
  int weightBits = 8;
  /// max: scale = max|w| / qmax. mse: scale = c / qmax with the clipping
  /// range c in {1.00, 0.99, ..., 0.20} * max|w| that minimises
  /// sum (w - s * q(w))^2 over the block (the weights beyond c saturate).
  WeightRange weightRange = WeightRange::Max;
  /// Darknet indices of conv/connected layers whose weights stay 8-bit
  /// when `weightBits` is narrower (mixed widths: commonly the first layer,
  /// which reads the image, and the detection heads).
  std::set<int64_t> weight8Layers;
  /// The options as they apply to layer `index`'s weights.
  QuantizeOptions forLayer(int64_t index) const {
    QuantizeOptions o = *this;
    if (weight8Layers.count(index))
      o.weightBits = 8;
    return o;
  }
  /// 16: every int8-planned layer with a W8A16 form (convolutional,
  /// connected, maxpool, upsample, dropout) gets int16 activations
  /// (symmetric, zero point 0, as TFLite's 16x8); the others stay int8.
  int activationBits = 8;
  /// Darknet indices of int8-planned layers that get int16 activations
  /// (W8A16) whatever `activationBits` says; each must have a W8A16 form.
  std::set<int64_t> int16Layers;
  rt::Rounding rounding = rt::Rounding::TFLite;
};

/// Quantizes `module` in place; diagnostics name the layer (missing
/// calibration, unfolded batch norm, layer without an int8 form, ...).
/// W8A16 layers' int16 activations meet int8 and float neighbours through
/// f32 (quant.dcast then quant.qcast).
mlir::LogicalResult quantizeModule(mlir::ModuleOp module,
                                   const QuantizeOptions &options);

/// The symmetric weight scales --qsim-quantize chooses for `w` (`channels`
/// contiguous output channels): one per channel, or one for the tensor
/// repeated, after `options.weightRange`, rounded up to a power of two with
/// `pow2Scales`. Weights already on such a grid (q * s with some |q| =
/// qmax in every block) get their scale back under either range rule.
std::vector<float> weightScales(llvm::ArrayRef<float> w, int64_t channels,
                                const QuantizeOptions &options);

/// Resolves a `w8-layers=` list: the items of parseLayerList (indices,
/// ranges, topN) and `first` (the first convolutional/connected layer) and
/// `last` (every convolutional/connected layer that feeds a detection
/// layer or a model output directly: the heads).
/// Errors as parseLayerList's.
mlir::LogicalResult parseWeight8Layers(llvm::ArrayRef<std::string> items,
                                       mlir::ModuleOp module,
                                       std::set<int64_t> &out);

/// Whether a layer with an int8 form can take int16 activations instead
/// (W8A16: convolutional, connected, maxpool, upsample, dropout).
bool hasInt16Form(const Layer &layer);

/// The width of a quantized conv2d/connected op's weights, read from the
/// storage range of its `weight_quant` type ([-7, 7] is 4 bits); nullopt
/// for a float op.
std::optional<int> getWeightBits(mlir::Operation *weighted);

} // namespace qsim::quantization

#endif
