//===- Equalization.h - cross-layer equalization ----------------*- C++ -*-===//
//
// Cross-layer equalization (Nagel et al. 2019, section 4.1): a convolution
// P whose activation is positively homogeneous (linear, relu, leaky:
// f(s x) = s f(x) for s > 0) computes the same function when its output
// channel c is divided by s_c and every weight that reads channel c
// downstream is multiplied by s_c. Channel c may pass through max pooling,
// upsampling, dropout and concatenating routes on the way to the
// convolutions that read it; a shortcut, a head, a model output or any
// other consumer couples it with channels of other layers, and P is then
// left alone (a remark names the layer). s_c = sqrt(r1_c r2_c) / r2_c
// makes P's range of channel c (r1, max |W1[c]|) equal to the range of the
// weights reading it (r2); pairs are swept until the scales settle. Per-
// tensor int8 weights then lose far less precision. Needs a float model
// with folded batch norms, before --qsim-calibrate.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_QUANT_EQUALIZATION_H
#define QSIM_QUANT_EQUALIZATION_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"

#include <vector>

namespace qsim::quantization {

struct EqualizationOptions {
  /// Sweeps over all pairs at most.
  int maxSweeps = 50;
  /// Stop when no scale of a sweep differs from 1 by more than this.
  double tolerance = 1e-4;
  /// A progress bar over the sweeps on stderr.
  bool progress = true;
};

/// One equalized convolution: its Darknet index, the layers reading its
/// channels, and the precision per-tensor quantization keeps of its
/// channels on both sides (the mean over channels c of
/// (r1_c / max r1)(r2_c / max r2), 1 when every channel uses the whole
/// grid) before and after.
struct EqualizationRow {
  int64_t layer = 0;
  std::vector<int64_t> consumers;
  double precisionBefore = 0, precisionAfter = 0;
};

struct EqualizationResult {
  std::vector<EqualizationRow> rows;
  int sweeps = 0;
};

/// Equalizes `module` in place. Fails (diagnostic naming the layer) on a
/// quantized or calibrated model or an unfolded batch norm; emits a remark
/// for every convolution it leaves alone and why.
mlir::FailureOr<EqualizationResult>
equalizeModule(mlir::ModuleOp module, const EqualizationOptions &options);

void printEqualizationReport(const EqualizationResult &result,
                             llvm::raw_ostream &os);

} // namespace qsim::quantization

#endif
