//===- Passes.h - the qsim dialect's own passes -----------------*- C++ -*-===//

#ifndef QSIM_DIALECT_QSIM_TRANSFORMS_PASSES_H
#define QSIM_DIALECT_QSIM_TRANSFORMS_PASSES_H

#include "qsim/Dialect/QSim/IR/Layers.h"
#include "mlir/Pass/Pass.h"

namespace qsim {

#define GEN_PASS_DECL
#include "qsim/Dialect/QSim/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "qsim/Dialect/QSim/Transforms/Passes.h.inc"

/// What --qsim-fold-batchnorm does, for libraries that compose transforms
/// (the guideline, the session): folds every batch norm that follows its
/// convolution or connected layer; `folded` receives how many.
mlir::LogicalResult foldBatchNorms(mlir::ModuleOp module,
                                   int64_t *folded = nullptr);

} // namespace qsim

#endif
