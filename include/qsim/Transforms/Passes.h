//===- Passes.h - qsim passes -----------------------------------*- C++ -*-===//

#ifndef QSIM_TRANSFORMS_PASSES_H
#define QSIM_TRANSFORMS_PASSES_H

#include "qsim/Dialect/QSim/IR/Layers.h"
#include "qsim/Dialect/QSim/Transforms/Passes.h"
#include "qsim/Transforms/PassOptions.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Pass/Pass.h"

namespace qsim {

#define GEN_PASS_DECL
#include "qsim/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "qsim/Transforms/Passes.h.inc"

/// Parses pass options as a user writes them in a pipeline ("int8=3,5
/// default=fp16") over the options `pass` has; fails with `error` naming
/// the pass and the bad option.
mlir::LogicalResult applyOptionText(mlir::Pass &pass, llvm::StringRef text,
                                    std::string &error);

/// Whether --qsim-assign-precision with the options `text` over `preset`
/// puts some layer in int8 (then calibration must run first); fails with
/// `error` when `text` does not parse.
mlir::FailureOr<bool>
assignPrecisionPlansInt8(llvm::StringRef text,
                         quantization::PrecisionPreset preset,
                         std::string &error);

} // namespace qsim

#endif
