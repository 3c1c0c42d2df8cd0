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
// The analytic variant (AIMET's, the paper's section 4.2) needs no images:
// where a layer's input comes from a folded batch norm whose statistics
// --qsim-fold-batchnorm kept (`qsim.bn_stats`), E[x] per input channel is
// the mean of the activation applied to N(beta, gamma^2), and the bias
// becomes b - (W~ - W) E[x] (zero padding ignored). It corrects only the
// weights' rounding error, and only as well as the batch norm's training
// statistics describe the data.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_QUANT_BIASCORRECTION_H
#define QSIM_QUANT_BIASCORRECTION_H

#include "qsim/Interpreter/Executor.h"
#include "qsim/Quant/Quantizer.h"

#include "llvm/Support/raw_ostream.h"

#include <optional>
#include <string>
#include <vector>

namespace qsim::quantization {

/// Where E[x] comes from: calibration images, or batch-norm statistics.
enum class BiasCorrectionMode { Empirical, Analytic };

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
  /// Analytic mode: why the layer kept its bias (empty when corrected).
  std::string kept;
};

/// Corrects the biases of `module`'s int8 conv2d/connected layers on
/// `inputs` (network inputs). Diagnostics name the layer.
mlir::FailureOr<std::vector<BiasCorrectionRow>>
correctBiases(mlir::ModuleOp module, llvm::ArrayRef<rt::Tensor> inputs,
              const BiasCorrectionOptions &options);

void printBiasCorrectionReport(llvm::ArrayRef<BiasCorrectionRow> rows,
                               llvm::raw_ostream &os);

/// E[act(y)] for y ~ N(mean, sd^2), in closed form for linear (mean), relu
/// (the clipped normal's mean), relu6 (relu(y) - relu(y - 6)) and leaky
/// (relu part + 0.1 * negative part); nullopt for the other activations.
std::optional<double> activationMean(Activation act, double mean, double sd);

/// The mean of each channel of `v` as far as batch-norm statistics prove
/// it: `v` produced by a conv2d/connected with `qsim.bn_stats` and an
/// activation of closed-form mean, or by an upsample (stride > 0), a
/// 1x1 unpadded maxpool, a route or a linear shortcut of such values.
/// Otherwise nullopt, and
/// `why` says what stopped it.
std::optional<std::vector<double>> batchNormChannelMeans(mlir::Value v,
                                                         std::string &why);

/// The shift -(W~ - W) E[x] of each output channel of `weighted` (conv2d
/// or connected) whose float weights are `w`, rounded weights `wq`, and
/// whose input channel c has mean inputMeans[c] everywhere (zero padding
/// ignored).
std::vector<double> analyticBiasShift(mlir::Operation *weighted,
                                      llvm::ArrayRef<float> w,
                                      llvm::ArrayRef<float> wq,
                                      llvm::ArrayRef<double> inputMeans);

/// Analytic bias correction of `module`'s int8 conv2d/connected layers
/// (no images). Layers whose input mean no statistics prove keep their
/// bias, with the reason in their row.
mlir::FailureOr<std::vector<BiasCorrectionRow>>
correctBiasesAnalytically(mlir::ModuleOp module,
                          const BiasCorrectionOptions &options);

} // namespace qsim::quantization

#endif
