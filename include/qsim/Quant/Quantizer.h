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

#include "qsim/Runtime/QuantMath.h"

#include "mlir/IR/BuiltinOps.h"

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
  rt::Rounding rounding = rt::Rounding::TFLite;
};

/// Quantizes `module` in place; diagnostics name the layer (missing
/// calibration, unfolded batch norm, layer without an int8 form, ...).
mlir::LogicalResult quantizeModule(mlir::ModuleOp module,
                                   const QuantizeOptions &options);

} // namespace qsim::quantization

#endif
