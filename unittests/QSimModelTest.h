//===- QSimModelTest.h - a test fixture with qsim models --------*- C++ -*-===//
//
// The setup every test on small models repeats: a context with the qsim
// dialects loaded, and a Darknet cfg written in the test imported with
// random weights from a seed.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_UNITTESTS_QSIMMODELTEST_H
#define QSIM_UNITTESTS_QSIMMODELTEST_H

#include "qsim/Target/Darknet/DarknetImporter.h"
#include "qsim/Target/ModelIO.h"

#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

#include <string>

namespace qsim::testenv {

class QSimModelTest : public ::testing::Test {
protected:
  QSimModelTest() : ctx(registry()) { ctx.loadAllAvailableDialects(); }
  static mlir::DialectRegistry registry() {
    mlir::DialectRegistry r;
    registerQSimDialects(r);
    return r;
  }
  /// `cfg` (the text of a .cfg, named test.cfg in locations) with random
  /// weights from `seed`; null, with the diagnostics printed, when it does
  /// not import.
  mlir::OwningOpRef<mlir::ModuleOp> import(const std::string &cfg,
                                           uint64_t seed) {
    darknet::ImportOptions io;
    io.randomSeed = seed;
    return darknet::importDarknetFromString(&ctx, cfg, "test.cfg", io);
  }
  mlir::MLIRContext ctx;
};

} // namespace qsim::testenv

#endif
