//===- qsim-opt.cpp - the qsim optimizer driver --------------------------===//
//
// mlir-opt for qsim models: every qsim pass plus the upstream passes, on the
// qsim, func, quant, tosa, arith and tensor dialects.
//
//===----------------------------------------------------------------------===//

#include "qsim/InitAll.h"

#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  qsim::registerQSimDialects(registry);
  qsim::registerQSimPasses();
  mlir::registerCanonicalizerPass();
  mlir::registerCSEPass();
  mlir::registerSymbolDCEPass();
  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv,
      "qsim-opt: transform qsim models (.mlir/.mlirbc) with qsim passes\n"
      "\n"
      "  qsim-opt --qsim-print-stats model.mlirbc -o /dev/null\n"
      "  qsim-opt --qsim-fold-batchnorm model.mlirbc --emit-bytecode -o "
      "out.mlirbc\n"
      "\n"
      "Import Darknet models with qsim-translate --import-darknet first.\n",
      registry));
}
