//===- Sensitivity.h - mixed-precision search -------------------*- C++ -*-===//

#ifndef QSIM_QUANT_SENSITIVITY_H
#define QSIM_QUANT_SENSITIVITY_H

#include "qsim/Quant/Quantizer.h"
#include "qsim/Evaluation/ModelMeasures.h"

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
};

/// The `auto` mode of --qsim-assign-precision (see Passes.td). The module
/// must have folded batch norms and calibrated ranges. Prints its table.
mlir::LogicalResult searchPrecision(mlir::ModuleOp module,
                                    const SearchOptions &options,
                                    llvm::raw_ostream &os);

} // namespace qsim::quantization

#endif
