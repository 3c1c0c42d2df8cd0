//===- AdaRound.h - learned rounding of int8 weights ------------*- C++ -*-===//
//
// AdaRound (Nagel et al. 2020): rounding every weight to its nearest grid
// point is not what minimises a layer's output error; choosing up or down
// per weight is. For output channel f with weights w (in grid units w/s)
// and the Gram matrix H = X^T X / n of the layer's input patches, the
// rounding q = floor(w) + h minimises (q - w)^T (s^2 H) (q - w). AdaRound
// relaxes h to the rectified sigmoid h(V) = clip(sigmoid(V)(zeta - gamma)
// + gamma, 0, 1) (zeta 1.1, gamma -0.1), adds the regulariser
// lambda sum(1 - |2h - 1|^beta) with beta annealed from 20 to 2 (after a
// warm-up without it) so that h ends at 0 or 1, and runs Adam on V. Each
// output channel keeps the nearest rounding when the learned one is not
// better on that loss. Layers are processed in program order, each on its
// inputs in the quantized model whose earlier layers are already rounded;
// the float weights become q * s, which --qsim-quantize (same weights= and
// scale= options) stores as exactly q.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_QUANT_ADAROUND_H
#define QSIM_QUANT_ADAROUND_H

#include "qsim/Interpreter/Executor.h"
#include "qsim/Quant/Quantizer.h"

#include "llvm/Support/raw_ostream.h"

#include <vector>

namespace qsim::quantization {

/// --qsim-adaround's target= choice (AdaRoundOptions::floatTarget).
enum class AdaRoundTarget { Float, Quantized };

struct AdaRoundOptions {
  /// The --qsim-quantize options the model will be quantized with.
  QuantizeOptions quantize;
  interp::ExecutorOptions executor;
  int iterations = 500;
  /// Input patches (rows of X) sampled per layer, over all images.
  int samples = 4096;
  /// Relative to the reconstruction term, which is normalised to about 1
  /// per weight at nearest rounding (not the paper's mean over outputs):
  /// at 0.01 the relaxed rounding never became binary at 4 bits and the
  /// hard rounding lost to nearest on every channel (RecoveryTest).
  double regularization = 1.0;
  double learningRate = 0.01;
  double betaStart = 20, betaEnd = 2;
  /// What a layer's rounded output is compared with. Float: W x_float, the
  /// original float model's output on the same images and positions
  /// (AdaRound's asymmetric reconstruction: the rounding also makes up for
  /// the error that reaches the layer from above). Quantized: W x_q, the
  /// layer's own float weights on its quantized input.
  bool floatTarget = true;
  /// Also set each rounded layer's bias so that its mean output matches
  /// the target's (empirical bias correction in the same sequential sweep:
  /// b += W E[x_ref] - W~ E[x_q]); the rounding then minimises the error's
  /// variance, which the bias cannot remove.
  bool correctBias = false;
  /// Per-channel scales chosen by the layer's loss before the rounding is
  /// learned: among the given scale and the clipped ranges {1.00, 0.98,
  /// ..., 0.30} * max|w_f| / qmax, the one whose nearest rounding has the
  /// least loss (the weights beyond the range saturate and keep +-qmax, so
  /// --qsim-quantize gets the scale back from the rounded weights).
  bool searchScales = false;
  /// Share of the iterations before the regulariser starts.
  double warmup = 0.2;
  unsigned seed = 1;
  bool progress = true;
};

/// The rounding of one block of weights: `filters` rows of `size` weights
/// (row-major), one scale per row, learned against `gram` (size x size,
/// row-major). Returns the integers (in [-127, 127]).
struct RoundingResult {
  std::vector<int8_t> q;
  /// (q - w/s)^T s^2 H (q - w/s) summed over the rows (or the asymmetric
  /// loss below), nearest and learned.
  double nearestLoss = 0, loss = 0;
  int64_t changed = 0;  // weights rounded otherwise than to nearest
  int64_t keptRows = 0; // rows where nearest rounding was kept
};
RoundingResult learnRounding(llvm::ArrayRef<float> w,
                             llvm::ArrayRef<float> scales, int64_t size,
                             llvm::ArrayRef<double> gram,
                             const AdaRoundOptions &options);

/// The asymmetric problem: the rounded weights W~ see inputs x_q, the
/// target is W x_f. With H = E[x_q x_q^T] (`gram`), C = E[x_q x_f^T]
/// (`cross`, size x size, row-major) and e_f = E[(w_f x_f)^2]
/// (`floatEnergy`, one per row), row f's loss is
/// E[(w~_f x_q - w_f x_f)^2] = w~ H w~^T - 2 w~ C w^T + e_f. The same
/// rounding choices (floor or ceil of w / s) and the same guarantee: no
/// row is worse than nearest rounding on this loss.
RoundingResult learnRounding(llvm::ArrayRef<float> w,
                             llvm::ArrayRef<float> scales, int64_t size,
                             llvm::ArrayRef<double> gram,
                             llvm::ArrayRef<double> cross,
                             llvm::ArrayRef<double> floatEnergy,
                             const AdaRoundOptions &options);

/// searchScales' choice for one block (`cross` empty: the symmetric
/// loss on `gram`): per row, the candidate scale with the least loss of
/// nearest rounding.
std::vector<float> searchScales(llvm::ArrayRef<float> w,
                                llvm::ArrayRef<float> scales, int64_t size,
                                llvm::ArrayRef<double> gram,
                                llvm::ArrayRef<double> cross,
                                llvm::ArrayRef<double> floatEnergy,
                                const AdaRoundOptions &options);

/// The loss above of integers `q` for weights `w`.
double roundingLoss(llvm::ArrayRef<float> w, llvm::ArrayRef<int8_t> q,
                    llvm::ArrayRef<float> scales, int64_t size,
                    llvm::ArrayRef<double> gram);

/// One rounded layer.
struct AdaRoundRow {
  int64_t layer = 0;
  int64_t weights = 0, changed = 0, keptRows = 0, rows = 0;
  double nearestLoss = 0, loss = 0;
  /// With correctBias: the mean |bias shift| over the output channels.
  double meanBiasShift = 0;
};

/// Rounds the weights of `module`'s int8 conv2d/connected layers on
/// `inputs` (network inputs). Needs a calibrated float model with folded
/// batch norms and a precision plan.
mlir::FailureOr<std::vector<AdaRoundRow>>
adaroundModule(mlir::ModuleOp module, llvm::ArrayRef<rt::Tensor> inputs,
               const AdaRoundOptions &options);

void printAdaRoundReport(llvm::ArrayRef<AdaRoundRow> rows,
                         llvm::raw_ostream &os);

} // namespace qsim::quantization

#endif
