//===- Diagnostics.cpp - compiler-style diagnostics for tools ------------===//

#include "qsim/Support/Diagnostics.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;

std::string qsim::formatLocation(Location loc) {
  std::string out;
  loc->walk([&](Location l) {
    if (auto fl = dyn_cast<FileLineColLoc>(l)) {
      out = fl.getFilename().str();
      if (fl.getLine() != 0)
        out += ":" + std::to_string(fl.getLine()) + ":" +
               std::to_string(fl.getColumn());
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  return out;
}

qsim::ToolDiagnostics::ToolDiagnostics(MLIRContext *ctx, std::string tool) {
  handler = std::make_unique<ScopedDiagnosticHandler>(
      ctx, [this, tool = std::move(tool)](Diagnostic &d) {
        auto print = [&tool](Location loc, DiagnosticSeverity sev,
                             const std::string &msg) {
          std::string where = formatLocation(loc);
          if (where.empty())
            where = tool;
          if (!where.empty())
            llvm::errs() << where << ": ";
          switch (sev) {
          case DiagnosticSeverity::Error:
            llvm::errs() << "error: ";
            break;
          case DiagnosticSeverity::Warning:
            llvm::errs() << "warning: ";
            break;
          case DiagnosticSeverity::Note:
            llvm::errs() << "note: ";
            break;
          case DiagnosticSeverity::Remark:
            llvm::errs() << "remark: ";
            break;
          }
          llvm::errs() << msg << "\n";
        };
        if (d.getSeverity() == DiagnosticSeverity::Error)
          ++errors;
        print(d.getLocation(), d.getSeverity(), d.str());
        for (Diagnostic &note : d.getNotes())
          print(note.getLocation(), note.getSeverity(), note.str());
        return success();
      });
}

qsim::DiagnosticCapture::DiagnosticCapture(MLIRContext *ctx) {
  handler =
      std::make_unique<ScopedDiagnosticHandler>(ctx, [this](Diagnostic &d) {
        if (d.getSeverity() != DiagnosticSeverity::Error)
          return failure();
        std::string where = formatLocation(d.getLocation());
        if (!messages.empty())
          messages += "; ";
        messages += (where.empty() ? "" : where + ": ") + d.str();
        return success();
      });
}

std::string qsim::DiagnosticCapture::take(const std::string &fallback) {
  std::string m = messages.empty() ? fallback : messages;
  messages.clear();
  return m;
}

qsim::DiagnosticPrefix::DiagnosticPrefix(MLIRContext *ctx, std::string prefix)
    : prefix(std::move(prefix)) {
  handler =
      std::make_unique<ScopedDiagnosticHandler>(ctx, [this](Diagnostic &d) {
        // The re-emitted diagnostic passes on to the handlers before this
        // one (the engine's lock is recursive).
        if (reemitting || d.getSeverity() != DiagnosticSeverity::Error)
          return failure();
        reemitting = true;
        {
          InFlightDiagnostic out = emitError(d.getLocation())
                                   << this->prefix << d.str();
          for (Diagnostic &note : d.getNotes())
            out.attachNote(note.getLocation()) << note.str();
        }
        reemitting = false;
        return success();
      });
}
