//===- Passes.h - qsim passes -----------------------------------*- C++ -*-===//

#ifndef QSIM_TRANSFORMS_PASSES_H
#define QSIM_TRANSFORMS_PASSES_H

#include "qsim/Dialect/QSim/IR/Layers.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Pass/Pass.h"

namespace qsim {

#define GEN_PASS_DECL
#include "qsim/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "qsim/Transforms/Passes.h.inc"

} // namespace qsim

#endif
