//===- qsim-translate.cpp - Darknet <-> qsim, and JSON -------------------===//

#include "qsim/Support/Diagnostics.h"
#include "qsim/Support/FileUtils.h"
#include "qsim/Target/ModelIO.h"
#include "qsim/Target/Darknet/DarknetExporter.h"
#include "qsim/Target/Json/JsonExport.h"

#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
namespace cl = llvm::cl;

namespace {
enum class Mode { None, ImportDarknet, ExportDarknet, ExportJson };

cl::OptionCategory cat("qsim-translate options");
cl::opt<Mode> mode(
    cl::desc("Translation:"), cl::init(Mode::None),
    cl::values(clEnumValN(Mode::ImportDarknet, "import-darknet",
                          "Darknet .cfg (+ --weights) to a qsim module"),
               clEnumValN(Mode::ExportDarknet, "export-darknet",
                          "qsim module to a Darknet .cfg (+ --weights-out)"),
               clEnumValN(Mode::ExportJson, "export-json",
                          "model graph and per-layer statistics as JSON")),
    cl::cat(cat));
cl::opt<std::string> inputFile(cl::Positional,
                               cl::desc("<input .cfg|.mlir|.mlirbc>"),
                               cl::Required, cl::cat(cat));
cl::opt<std::string> outputFile("o", cl::desc("Output file ('-' = stdout)"),
                                cl::value_desc("file"), cl::init("-"),
                                cl::cat(cat));
cl::opt<std::string> weightsFile("weights",
                                 cl::desc("Darknet .weights for a .cfg input"),
                                 cl::value_desc("file"), cl::cat(cat));
cl::opt<uint64_t> randomWeights(
    "random-weights",
    cl::desc("Deterministic synthetic weights from this seed (no --weights)"),
    cl::value_desc("seed"), cl::cat(cat));
cl::opt<std::string>
    weightsOut("weights-out",
               cl::desc("--export-darknet: write the weights here"),
               cl::value_desc("file"), cl::cat(cat));
cl::opt<std::string> flavor("darknet-flavor",
                            cl::desc("alexeyab (default) or pjreddie"),
                            cl::init(""), cl::cat(cat));
cl::opt<bool> allowUnknownKeys("allow-unknown-keys",
                               cl::desc("Unknown cfg keys are warnings"),
                               cl::cat(cat));
cl::opt<uint64_t> maxMemoryMB(
    "max-memory-mb",
    cl::desc("--import-darknet: refuse a layer output or total weights "
             "larger than this (MB)"),
    cl::init(4096), cl::value_desc("MB"), cl::cat(cat));
cl::opt<bool> emitText("emit-text", cl::desc("Write textual MLIR"),
                       cl::cat(cat));
cl::opt<bool> emitBytecode("emit-bytecode", cl::desc("Write MLIR bytecode"),
                           cl::cat(cat));
cl::opt<bool> elideWeights(
    "elide-weights",
    cl::desc("Textual output: print large weight blobs as <<elided>>"),
    cl::cat(cat));
} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(cat);
  cl::ParseCommandLineOptions(
      argc, argv,
      "qsim-translate: Darknet models to and from the qsim dialect\n\n"
      "  qsim-translate --import-darknet m.cfg --weights m.weights -o "
      "m.mlirbc\n"
      "  qsim-translate --import-darknet m.cfg --random-weights=1 -o m.mlirbc\n"
      "  qsim-translate --export-darknet m.mlirbc -o out.cfg --weights-out "
      "out.weights\n"
      "  qsim-translate --export-json m.mlirbc -o m.json\n");

  if (mode == Mode::None) {
    llvm::errs() << "error: choose one of --import-darknet, --export-darknet, "
                    "--export-json (see --help)\n";
    return 1;
  }
  if (!weightsFile.empty() && randomWeights.getNumOccurrences()) {
    llvm::errs()
        << "error: --weights and --random-weights exclude each other\n";
    return 1;
  }
  std::optional<qsim::Flavor> fl;
  if (!flavor.empty()) {
    fl = qsim::parseFlavor(flavor);
    if (!fl) {
      llvm::errs() << "error: --darknet-flavor must be alexeyab or pjreddie\n";
      return 1;
    }
  }
  if (mode == Mode::ImportDarknet && !qsim::isDarknetCfgPath(inputFile)) {
    llvm::errs() << "error: --import-darknet needs a .cfg file, got '"
                 << inputFile << "'\n";
    return 1;
  }
  if (mode != Mode::ExportDarknet && !weightsOut.empty()) {
    llvm::errs() << "error: --weights-out only applies to --export-darknet\n";
    return 1;
  }

  DialectRegistry registry;
  qsim::registerQSimDialects(registry);
  MLIRContext ctx(registry);
  ctx.loadAllAvailableDialects();
  // Errors name the file, line and layer; the op's IR would be noise here.
  ctx.printOpOnDiagnostic(false);
  qsim::ToolDiagnostics diags(&ctx);

  qsim::ModelLoadOptions lo;
  lo.path = inputFile;
  lo.weightsPath = weightsFile;
  if (randomWeights.getNumOccurrences())
    lo.randomSeed = randomWeights.getValue();
  lo.flavor = fl;
  lo.allowUnknownKeys = allowUnknownKeys;
  if (maxMemoryMB == 0 || maxMemoryMB > (UINT64_MAX >> 20)) {
    llvm::errs() << "error: --max-memory-mb must be between 1 and "
                 << (UINT64_MAX >> 20) << "\n";
    return 1;
  }
  lo.maxMemoryMB = maxMemoryMB;
  OwningOpRef<ModuleOp> module = qsim::loadModel(&ctx, lo);
  if (!module)
    return 1;

  std::string error;
  switch (mode) {
  case Mode::ImportDarknet: {
    bool hasWeights = !weightsFile.empty() || randomWeights.getNumOccurrences();
    bool bytecode =
        emitBytecode ||
        (!emitText && StringRef(outputFile).ends_with(".mlirbc")) ||
        (!emitText && hasWeights && !StringRef(outputFile).ends_with(".mlir"));
    if (!bytecode && elideWeights) {
      LogicalResult r = qsim::writeFileAtomically(
          outputFile,
          [&](raw_ostream &os) {
            OpPrintingFlags flags;
            flags.elideLargeResourceString(64);
            flags.elideLargeElementsAttrs(16);
            module->print(os, flags);
            return success();
          },
          error);
      if (failed(r)) {
        llvm::errs() << "error: " << error << "\n";
        return 1;
      }
      return 0;
    }
    if (failed(qsim::saveModel(*module, outputFile, bytecode, error))) {
      llvm::errs() << "error: " << error << "\n";
      return 1;
    }
    return 0;
  }
  case Mode::ExportDarknet: {
    if (outputFile == "-" && !weightsOut.empty()) {
      // cfg to stdout, weights to a file.
    }
    LogicalResult r = qsim::writeFileAtomically(
        outputFile,
        [&](raw_ostream &cfgOs) -> LogicalResult {
          if (weightsOut.empty())
            return qsim::darknet::exportDarknet(*module, cfgOs, nullptr);
          return qsim::writeFileAtomically(
              weightsOut,
              [&](raw_ostream &wOs) {
                return qsim::darknet::exportDarknet(*module, cfgOs, &wOs);
              },
              error);
        },
        error);
    if (failed(r)) {
      if (!error.empty())
        llvm::errs() << "error: " << error << "\n";
      return 1;
    }
    return 0;
  }
  case Mode::ExportJson: {
    auto text = qsim::exportModelJson(*module);
    if (failed(text))
      return 1;
    if (failed(qsim::writeFileAtomically(
            outputFile,
            [&](raw_ostream &os) {
              os << *text << "\n";
              return success();
            },
            error))) {
      llvm::errs() << "error: " << error << "\n";
      return 1;
    }
    return 0;
  }
  case Mode::None:
    break;
  }
  return 1;
}
