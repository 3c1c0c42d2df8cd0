//===- FuzzContract.h - what every import must satisfy ----------*- C++ -*-===//
//
// The importer's contract, checked by the fuzz targets on every input
// (beyond the sanitizers' crashes, leaks and undefined behaviour): a null
// module after at least one error, a verified module after none, every
// diagnostic at a real location in the cfg (its name; line 0 for whole-file
// problems), and at most kMaxCfgErrors errors and warnings per file plus the
// one "too many" line. A broken contract aborts, so libFuzzer keeps the
// input and the replay test fails.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_FUZZ_FUZZCONTRACT_H
#define QSIM_FUZZ_FUZZCONTRACT_H

#include "qsim/Target/Darknet/CfgParser.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace qsim::fuzz {

[[noreturn]] inline void contractBroken(const std::string &what) {
  fprintf(stderr, "qsim fuzz: contract broken: %s\n", what.c_str());
  abort();
}

/// Counts the diagnostics emitted while it lives and checks their locations.
class DiagnosticTally {
public:
  DiagnosticTally(mlir::MLIRContext *ctx, std::string fileName)
      : fileName(std::move(fileName)),
        handler(ctx, [this](mlir::Diagnostic &d) { return record(d); }) {}

  unsigned errors = 0, warnings = 0;
  std::string firstError;

  /// The contract for an import's outcome (`module` may be null).
  void checkImport(mlir::ModuleOp module) const {
    if (!module && errors == 0)
      contractBroken("the import returned no module and reported no error");
    if (module && errors != 0)
      contractBroken("the import returned a module after the error: " +
                     firstError);
    if (module && mlir::failed(mlir::verify(module)))
      contractBroken("the imported module does not verify");
    if (errors > darknet::kMaxCfgErrors + 1)
      contractBroken(std::to_string(errors) + " errors (at most " +
                     std::to_string(darknet::kMaxCfgErrors) +
                     " and 'too many errors')");
    if (warnings > darknet::kMaxCfgErrors + 1)
      contractBroken(std::to_string(warnings) + " warnings (at most " +
                     std::to_string(darknet::kMaxCfgErrors) +
                     " and 'too many warnings')");
  }

private:
  mlir::LogicalResult record(mlir::Diagnostic &d) {
    if (d.getSeverity() == mlir::DiagnosticSeverity::Error) {
      if (errors++ == 0)
        firstError = d.str();
    } else if (d.getSeverity() == mlir::DiagnosticSeverity::Warning) {
      ++warnings;
    }
    // Ops' locations are "file":line fused with the layer's name.
    bool named = false;
    d.getLocation()->walk([&](mlir::Location l) {
      auto fileLoc = mlir::dyn_cast<mlir::FileLineColLoc>(l);
      named |= fileLoc && fileLoc.getFilename() == fileName;
      return mlir::WalkResult::advance();
    });
    if (!named)
      contractBroken("a diagnostic without a location in '" + fileName +
                     "': " + d.str());
    return mlir::success();
  }

  std::string fileName;
  mlir::ScopedDiagnosticHandler handler;
};

} // namespace qsim::fuzz

#endif
