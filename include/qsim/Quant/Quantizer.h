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

struct QuantizeOptions {
  bool perChannelWeights = true;
  bool symmetricActivations = false;
  bool pow2Scales = false;
  int accumulatorBits = 32;
  /// Weight width, 2..8: integers in [-(2^(bits-1) - 1), 2^(bits-1) - 1],
  /// stored in i8 (their `weight_quant` type has that storage range).
  int weightBits = 8;
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

/// Whether a layer with an int8 form can take int16 activations instead
/// (W8A16: convolutional, connected, maxpool, upsample, dropout).
bool hasInt16Form(const Layer &layer);

/// The width of a quantized conv2d/connected op's weights, read from the
/// storage range of its `weight_quant` type ([-7, 7] is 4 bits); nullopt
/// for a float op.
std::optional<int> getWeightBits(mlir::Operation *weighted);

} // namespace qsim::quantization

#endif
