//===- BiasCorrection.h - empirical bias correction -------------*- C++ -*-===//
//
// Quantizing a layer's weights (and its inputs) shifts the mean of its
// output; the shift accumulates through the network (Nagel et al. 2019,
// section 4.2). For every int8 conv2d/connected layer, in program order,
// the float bias b becomes
//     b + W E[x_float] - W~ E[x_quant]
// per output channel, where E[x] is the mean im2col patch on the
// calibration images, x_float the layer's input in the float model, x_quant
// its input in the quantized model whose earlier layers are already
// corrected, and W~ the weights as --qsim-quantize rounds them. The
// quantized model's mean pre-activation output then equals the float
// model's. Needs a calibrated float model with folded batch norms and a
// precision plan.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_QUANT_BIASCORRECTION_H
#define QSIM_QUANT_BIASCORRECTION_H

#include "qsim/Interpreter/Executor.h"
#include "qsim/Quant/Quantizer.h"

#include "llvm/Support/raw_ostream.h"

#include <string>
#include <vector>

namespace qsim::quantization {

struct BiasCorrectionOptions {
  /// The --qsim-quantize options the model will be quantized with.
  QuantizeOptions quantize;
  interp::ExecutorOptions executor;
  bool progress = true;
};

/// One corrected layer: its Darknet index and the largest and mean |shift|
/// of its biases.
struct BiasCorrectionRow {
  int64_t layer = 0;
  int64_t channels = 0;
  double meanShift = 0, maxShift = 0;
};

/// Corrects the biases of `module`'s int8 conv2d/connected layers on
/// `inputs` (network inputs). Diagnostics name the layer.
mlir::FailureOr<std::vector<BiasCorrectionRow>>
correctBiases(mlir::ModuleOp module, llvm::ArrayRef<rt::Tensor> inputs,
              const BiasCorrectionOptions &options);

void printBiasCorrectionReport(llvm::ArrayRef<BiasCorrectionRow> rows,
                               llvm::raw_ostream &os);

} // namespace qsim::quantization

#endif
