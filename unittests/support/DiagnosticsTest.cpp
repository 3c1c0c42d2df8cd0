//===- DiagnosticsTest.cpp - DiagnosticPrefix and DiagnosticCapture ------===//
//
// The two ways a caller puts a library's diagnostics in its own terms: a
// prefix naming the option (location and notes kept) and a capture as text
// for string replies.
//
//===----------------------------------------------------------------------===//

#include "qsim/Support/Diagnostics.h"

#include "mlir/IR/Location.h"
#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

using namespace qsim;

namespace {

/// Every diagnostic that reaches the caller's handler, one line each:
/// "location: severity message | note: ...".
struct Seen {
  explicit Seen(mlir::MLIRContext *ctx)
      : handler(ctx, [this](mlir::Diagnostic &d) {
          text +=
              formatLocation(d.getLocation()) + ": " +
              (d.getSeverity() == mlir::DiagnosticSeverity::Error ? "error "
                                                                  : "remark ") +
              d.str();
          for (mlir::Diagnostic &n : d.getNotes())
            text += " | note: " + n.str();
          text += "\n";
          return mlir::success();
        }) {}
  std::string text;
  mlir::ScopedDiagnosticHandler handler;
};

TEST(Diagnostics, PrefixKeepsLocationAndNotesForErrorsOnly) {
  mlir::MLIRContext ctx;
  mlir::Location loc = mlir::FileLineColLoc::get(&ctx, "m.cfg", 7, 1);
  Seen seen(&ctx);
  {
    DiagnosticPrefix prefix(&ctx, "--opt: ");
    {
      mlir::InFlightDiagnostic d = mlir::emitError(loc);
      d << "layer 2 (convolutional): bad";
      d.attachNote() << "why";
    }
    mlir::emitRemark(loc) << "a remark";
  }
  mlir::emitError(loc) << "after the prefix";
  EXPECT_EQ(seen.text, "m.cfg:7:1: error --opt: layer 2 (convolutional): bad "
                       "| note: why\n"
                       "m.cfg:7:1: remark a remark\n"
                       "m.cfg:7:1: error after the prefix\n");
}

TEST(Diagnostics, CaptureKeepsErrorsAsTextAndPassesTheRestOn) {
  mlir::MLIRContext ctx;
  mlir::Location loc = mlir::FileLineColLoc::get(&ctx, "m.cfg", 7, 1);
  Seen seen(&ctx);
  DiagnosticCapture capture(&ctx);
  EXPECT_EQ(capture.take("nothing"), "nothing");
  mlir::emitError(loc) << "first";
  mlir::emitError(mlir::UnknownLoc::get(&ctx)) << "second";
  mlir::emitRemark(loc) << "a remark";
  EXPECT_EQ(capture.take(), "m.cfg:7:1: first; second");
  EXPECT_EQ(capture.take("empty again"), "empty again");
  EXPECT_EQ(seen.text, "m.cfg:7:1: remark a remark\n");
}

} // namespace
