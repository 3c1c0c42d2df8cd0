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
/// line for imported layers) to stderr, counting errors. A diagnostic
/// without a file location reads "TOOL: error: message" when `tool` is
/// given (as the tool's own errors do), else "error: message".
class ToolDiagnostics {
public:
  explicit ToolDiagnostics(mlir::MLIRContext *ctx, std::string tool = "");
  unsigned errorCount() const { return errors; }

private:
  std::unique_ptr<mlir::ScopedDiagnosticHandler> handler;
  unsigned errors = 0;
};

/// While alive, puts `prefix` before the message of every error diagnostic
/// emitted on `ctx` (re-emitted at the same location, notes kept): the
/// context of a library call ("--qsim-calibrate: ", "--compare: ") on
/// messages the library emits at the layer at fault.
class DiagnosticPrefix {
public:
  DiagnosticPrefix(mlir::MLIRContext *ctx, std::string prefix);

private:
  std::unique_ptr<mlir::ScopedDiagnosticHandler> handler;
  std::string prefix;
  bool reemitting = false;
};

/// While alive, takes the error diagnostics emitted on `ctx` (other
/// severities pass on) and keeps them as "file:line:col: message", joined
/// by "; ". For callers that report through a string (a session's reply,
/// an interface not yet on diagnostics): the message keeps the location.
class DiagnosticCapture {
public:
  explicit DiagnosticCapture(mlir::MLIRContext *ctx);
  /// The messages captured since the last take, or `fallback` when none.
  std::string take(const std::string &fallback = "");

private:
  std::unique_ptr<mlir::ScopedDiagnosticHandler> handler;
  std::string messages;
};

} // namespace qsim

#endif
