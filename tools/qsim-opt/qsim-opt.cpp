//===- qsim-opt.cpp - the qsim optimizer driver --------------------------===//
//
// mlir-opt for qsim models: every qsim pass plus the upstream passes, on the
// qsim, func, quant, tosa, arith and tensor dialects.
//
//===----------------------------------------------------------------------===//

#include "qsim/InitAll.h"
#include "qsim/Support/ThreadWaits.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/ToolOutputFile.h"

#include <string>
#include <vector>

namespace {

/// The passes given on the command line with options (`--qsim-x="k=v"`):
/// pass argument and option text.
using PassOptionArgs = std::vector<std::pair<std::string, std::string>>;

PassOptionArgs passOptionArgs(llvm::ArrayRef<char *> args) {
  PassOptionArgs found;
  for (llvm::StringRef arg : args.drop_front()) {
    auto [name, options] = arg.ltrim('-').split('=');
    if (arg.starts_with("-") && arg.contains('=') &&
        (mlir::PassInfo::lookup(name) || mlir::PassPipelineInfo::lookup(name)))
      found.emplace_back(name.str(), options.str());
  }
  return found;
}

/// MLIR's words for a bad pass option ("<Pass-Options-Parser>: no such
/// option K"; empty when llvm::cl printed the problem itself) in the
/// user's: the pass whose options name K, or the only pass with options.
std::string describePassOptionError(llvm::StringRef message,
                                    const PassOptionArgs &passes) {
  message = message.trim();
  message.consume_front("<Pass-Options-Parser>: ");
  std::string pass;
  if (message.consume_front("no such option ")) {
    std::string key = message.str();
    for (const auto &[name, options] : passes) {
      llvm::SmallVector<llvm::StringRef> words;
      llvm::StringRef(options).trim("{}\"").split(words, ' ', -1, false);
      for (llvm::StringRef word : words)
        if (word.split('=').first == key)
          pass = name;
    }
    return (pass.empty() ? "" : "--" + pass + ": ") + "no such option '" +
           key + "' (see qsim-opt --help)";
  }
  if (passes.size() == 1)
    pass = "--" + passes.front().first + ": ";
  if (message.empty())
    return pass + "invalid option value (see above)";
  return pass + message.str();
}

/// Sets up the command line's pipeline. Its errors (an unknown or bad
/// pass option) come from MLIR without a location, which prints as
/// "<unknown>:0"; they are emitted again at the input file, in words that
/// name the pass.
mlir::LogicalResult setupPipeline(const mlir::MlirOptMainConfig &commandLine,
                                  mlir::PassManager &pm,
                                  llvm::StringRef inputFile,
                                  const PassOptionArgs &passes) {
  mlir::MLIRContext *ctx = pm.getContext();
  std::vector<std::string> messages;
  mlir::LogicalResult result = mlir::success();
  {
    mlir::ScopedDiagnosticHandler unlocated(ctx, [&](mlir::Diagnostic &d) {
      if (!llvm::isa<mlir::UnknownLoc>(d.getLocation()))
        return mlir::failure(); // the next handler prints it
      messages.push_back(d.str());
      return mlir::success();
    });
    result = commandLine.setupPassPipeline(pm);
  }
  auto loc = mlir::FileLineColLoc::get(
      ctx, inputFile == "-" ? "<stdin>" : inputFile, 0, 0);
  for (const std::string &message : messages)
    mlir::emitError(loc) << describePassOptionError(message, passes);
  return result;
}

} // namespace

#ifdef QSIM_HAVE_TRAIN
namespace qsim {
// TrainRecovery.cpp: --qsim-lighten recover=train (runs qsim-train).
void registerTrainRecovery(const char *argv0);
}
#endif

int main(int argc, char **argv) {
  // Before anything else: the interpreter's OpenMP workers (calibration,
  // evaluation, search) must not spin against other processes (issue 17).
  qsim::preferPassiveThreadWaits(argv);
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
  auto [inputFile, outputFile] = mlir::registerAndParseCLIOptions(
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
      registry);
  mlir::MlirOptMainConfig config = mlir::MlirOptMainConfig::createFromCLOptions();
  if (config.shouldShowDialects())
    return mlir::asMainReturnCode(
        mlir::MlirOptMain(argc, argv, inputFile, outputFile, registry));
  llvm::InitLLVM initLLVM(argc, argv);
  mlir::MlirOptMainConfig commandLine = config;
  PassOptionArgs passes = passOptionArgs(args);
  std::string in = inputFile;
  config.setPassPipelineSetupFn([=](mlir::PassManager &pm) {
    return setupPipeline(commandLine, pm, in, passes);
  });
  // As mlir-opt does, after the pipeline's setup is ours.
  std::string error;
  auto input = mlir::openInputFile(inputFile, &error);
  if (!input) {
    llvm::errs() << error << "\n";
    return 1;
  }
  auto output = mlir::openOutputFile(outputFile, &error);
  if (!output) {
    llvm::errs() << error << "\n";
    return 1;
  }
  if (mlir::failed(
          mlir::MlirOptMain(output->os(), std::move(input), registry, config)))
    return 1;
  output->keep();
  return 0;
}
