//===- PrintStats.cpp - --qsim-print-stats -------------------------------===//

#include "qsim/Dialect/QSim/IR/LayerStats.h"
#include "qsim/Target/Json/JsonExport.h"
#include "qsim/Transforms/Passes.h"

namespace qsim {
#define GEN_PASS_DEF_PRINTSTATSPASS
#include "qsim/Transforms/Passes.h.inc"
} // namespace qsim

using namespace mlir;
using namespace qsim;

namespace {
struct PrintStatsPass : public qsim::impl::PrintStatsPassBase<PrintStatsPass> {
  using PrintStatsPassBase::PrintStatsPassBase;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto stats = computeModelStats(module);
    if (failed(stats))
      return signalPassFailure();
    numLayers = stats->layers.size();
    totalMACs = stats->macs;
    if (json) {
      auto text = exportModelJson(module);
      if (failed(text))
        return signalPassFailure();
      llvm::outs() << *text << "\n";
    } else {
      printModelStats(*stats, llvm::outs());
    }
    llvm::outs().flush();
    markAllAnalysesPreserved();
  }
};
} // namespace
