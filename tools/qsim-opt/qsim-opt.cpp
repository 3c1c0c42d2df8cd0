//===- qsim-opt.cpp - the qsim optimizer driver --------------------------===//
//
// mlir-opt for qsim models: every qsim pass plus the upstream passes, on the
// qsim, func, quant, tosa, arith and tensor dialects.
//
//===----------------------------------------------------------------------===//

#include "qsim/InitAll.h"

#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/ADT/StringRef.h"

#include <vector>

#ifdef QSIM_HAVE_TRAIN
namespace qsim {
// TrainRecovery.cpp: --qsim-lighten recover=train (runs qsim-train).
void registerTrainRecovery(const char *argv0);
}
#endif

int main(int argc, char **argv) {
  // Diagnostics name the layer and its cfg line; dumping the whole op (with
  // its weights) after each one buries that. Users can still ask for it.
  std::vector<char *> args(argv, argv + argc);
  bool userChose = false, bytecodeOut = false, userBytecode = false;
  for (int i = 1; i < argc; ++i) {
    llvm::StringRef a(argv[i]);
    userChose |= a.contains("print-op-on-diagnostic");
    if (a.contains("emit-bytecode"))
      userBytecode = true;
    // `-o m.mlirbc` writes bytecode, as the extension says.
    if ((a == "-o" || a == "--o") && i + 1 < argc &&
        llvm::StringRef(argv[i + 1]).ends_with(".mlirbc"))
      bytecodeOut = true;
    if ((a.starts_with("-o=") || a.starts_with("--o=")) &&
        a.ends_with(".mlirbc"))
      bytecodeOut = true;
  }
  static char quiet[] = "--mlir-print-op-on-diagnostic=false";
  static char bytecode[] = "--emit-bytecode";
  if (!userChose)
    args.insert(args.begin() + 1, quiet);
  if (bytecodeOut && !userBytecode)
    args.insert(args.begin() + 1, bytecode);
  argc = args.size();
  argv = args.data();
  mlir::DialectRegistry registry;
  qsim::registerQSimDialects(registry);
  // The code generation pipeline goes through upstream dialects and passes
  // (TOSA, linalg, vector, bufferization, LLVM): all of them are available,
  // as in mlir-opt.
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  mlir::registerAllPasses();
  qsim::registerAllQSimPasses();
#ifdef QSIM_HAVE_TRAIN
  qsim::registerTrainRecovery(argv[0]);
#endif
  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv,
      "qsim-opt: transform qsim models (.mlir/.mlirbc) with qsim passes\n"
      "\n"
      "  qsim-opt --qsim-print-stats model.mlirbc -o /dev/null\n"
      "  qsim-opt --qsim-fold-batchnorm model.mlirbc -o out.mlirbc\n"
      "  qsim-opt m.mlirbc --qsim-prune=\"ratio=0.3\" -o pruned.mlirbc\n"
      "\n"
      "An output file named *.mlirbc is written as bytecode, others as text.\n"
      "\n"
      "Import Darknet models with qsim-translate --import-darknet first.\n",
      registry));
}
