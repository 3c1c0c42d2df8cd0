//===- Diagnostics.h - compiler-style diagnostics for tools -----*- C++ -*-===//

#ifndef QSIM_SUPPORT_DIAGNOSTICS_H
#define QSIM_SUPPORT_DIAGNOSTICS_H

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Location.h"

#include <memory>
#include <string>

namespace qsim {

/// "file:line:col" of the first file location inside `loc`, or "".
std::string formatLocation(mlir::Location loc);

/// Prints every diagnostic as "file:line:col: error: message" (the cfg
/// line for imported layers) to stderr, counting errors.
class ToolDiagnostics {
public:
  explicit ToolDiagnostics(mlir::MLIRContext *ctx);
  unsigned errorCount() const { return errors; }

private:
  std::unique_ptr<mlir::ScopedDiagnosticHandler> handler;
  unsigned errors = 0;
};

} // namespace qsim

#endif
