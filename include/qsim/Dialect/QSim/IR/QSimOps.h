//===- QSimOps.h - qsim dialect and operations ------------------*- C++ -*-===//

#ifndef QSIM_DIALECT_QSIM_IR_QSIMOPS_H
#define QSIM_DIALECT_QSIM_IR_QSIMOPS_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/Dialect/Quant/QuantOps.h"
#include "mlir/Dialect/Quant/QuantTypes.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "qsim/Dialect/QSim/IR/QSimDialect.h.inc"
#include "qsim/Dialect/QSim/IR/QSimEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "qsim/Dialect/QSim/IR/QSimAttrs.h.inc"

namespace qsim {
using mlir::FailureOr;
using mlir::LogicalResult;
namespace detail {
/// Shared part of every qsim op's verification: the result shape must be the
/// one Darknet computes from the operands and attributes.
mlir::LogicalResult verifyLayerOp(mlir::Operation *op);
} // namespace detail
} // namespace qsim

#include "qsim/Dialect/QSim/IR/QSimInterfaces.h.inc"

#define GET_OP_CLASSES
#include "qsim/Dialect/QSim/IR/QSimOps.h.inc"

#endif // QSIM_DIALECT_QSIM_IR_QSIMOPS_H
