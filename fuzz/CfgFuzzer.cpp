//===- CfgFuzzer.cpp - fuzz target: cfg parser and importer ---------------===//
//
// The input is a cfg, imported as `qsim-translate --import-darknet CFG
// --random-weights=1` does, with a 32 MB memory limit (so that a mutant
// cannot spend the fuzzer's memory on weights). An imported model is
// exported again, and the exported cfg must import and export to the same
// text. See FuzzContract.h for what is checked and fuzz/README.md for how
// to run it.
//
//===----------------------------------------------------------------------===//

#include "FuzzContract.h"

#include "qsim/Dialect/QSim/IR/QSimOps.h"
#include "qsim/Target/Darknet/DarknetExporter.h"
#include "qsim/Target/Darknet/DarknetImporter.h"
#include "qsim/Target/ModelIO.h"

#include "llvm/Support/raw_ostream.h"

using namespace qsim;

namespace {

constexpr const char *kCfgName = "fuzz.cfg";

mlir::OwningOpRef<mlir::ModuleOp>
importChecked(mlir::MLIRContext &ctx, llvm::StringRef text,
              const darknet::ImportOptions &options) {
  fuzz::DiagnosticTally tally(&ctx, kCfgName);
  auto module = darknet::importDarknetFromString(&ctx, text, kCfgName, options);
  tally.checkImport(module ? *module : mlir::ModuleOp());
  return module;
}

/// The exported cfg of `module`, or nullopt after an error the exporter
/// reported (a model Darknet cannot express).
std::optional<std::string> exportChecked(mlir::MLIRContext &ctx,
                                         mlir::ModuleOp module) {
  fuzz::DiagnosticTally tally(&ctx, kCfgName);
  std::string cfg;
  llvm::raw_string_ostream os(cfg);
  bool ok = mlir::succeeded(darknet::exportDarknet(module, os, nullptr));
  if (!ok && tally.errors == 0)
    fuzz::contractBroken("the export failed without an error");
  if (ok && tally.errors != 0)
    fuzz::contractBroken("the export succeeded after the error: " +
                         tally.firstError);
  if (!ok)
    return std::nullopt;
  return os.str();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mlir::DialectRegistry registry;
  registerQSimDialects(registry);
  // No thread pool: one is created per input otherwise.
  mlir::MLIRContext ctx(registry, mlir::MLIRContext::Threading::DISABLED);
  ctx.printOpOnDiagnostic(false);
  darknet::ImportOptions options;
  options.randomSeed = 1;
  options.maxMemoryMB = 32;
  llvm::StringRef text(reinterpret_cast<const char *>(data), size);
  auto module = importChecked(ctx, text, options);
  if (!module)
    return 0;
  std::optional<std::string> exported = exportChecked(ctx, *module);
  if (!exported)
    return 0;
  // Shape only from here: the exported cfg alone must describe the model.
  options.randomSeed.reset();
  auto again = importChecked(ctx, *exported, options);
  if (!again)
    fuzz::contractBroken("the exported cfg does not import:\n" + *exported);
  std::optional<std::string> reexported = exportChecked(ctx, *again);
  if (reexported != exported)
    fuzz::contractBroken("export, import, export changed the cfg:\n" +
                         *exported + "\n---- became ----\n" +
                         reexported.value_or("<export failed>"));
  return 0;
}
