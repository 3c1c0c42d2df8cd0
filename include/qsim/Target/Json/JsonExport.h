//===- JsonExport.h - model graph and statistics as JSON --------*- C++ -*-===//

#ifndef QSIM_TARGET_JSON_JSONEXPORT_H
#define QSIM_TARGET_JSON_JSONEXPORT_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"

#include <string>

namespace qsim {

/// The model as JSON: {"model": {...}, "layers": [{index, type, op, inputs,
/// output_shape, attributes, params, macs, bflops, precision, weight_bytes,
/// location}], "totals": {...}}. Used by viewers, scripts and the studio.
mlir::FailureOr<std::string> exportModelJson(mlir::ModuleOp module,
                                             int indent = 1);

} // namespace qsim

#endif
