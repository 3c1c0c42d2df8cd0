//===- Sensitivity.h - mixed-precision search -------------------*- C++ -*-===//

#ifndef QSIM_QUANT_SENSITIVITY_H
#define QSIM_QUANT_SENSITIVITY_H

#include "qsim/Quant/Quantizer.h"
#include "qsim/Evaluation/ModelMeasures.h"
#include "qsim/Evaluation/ShardedEvaluation.h"

#include "llvm/Support/raw_ostream.h"

#include <string>
#include <vector>

namespace qsim::quantization {

struct SearchOptions {
  double minSqnr = 0;     // dB; 0 = no SQNR constraint
  double maxMapDrop = -1; // points; < 0 = no mAP constraint
  double budget = 0;      // stop once float MACs <= budget * total MACs
  std::string images, labels;
  int maxImages = 16;
  QuantizeOptions quantize;
  /// Where the mAP checks (the float model's, each candidate's) run: in
  /// process by default, or by sharded qsim-run processes.
  eval::ShardedEvalOptions evaluation;
};

/// The `auto` mode of --qsim-assign-precision (see Passes.td). The module
/// must have folded batch norms and calibrated ranges. Prints its table.
mlir::LogicalResult searchPrecision(mlir::ModuleOp module,
                                    const SearchOptions &options,
                                    llvm::raw_ostream &os);

} // namespace qsim::quantization

#endif
