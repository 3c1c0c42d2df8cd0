//===- Prune.cpp - --qsim-prune ------------------------------------------===//

#include "qsim/Lighten/Pruning.h"
#include "qsim/Quant/Precision.h"
#include "qsim/Transforms/Passes.h"

namespace qsim {
#define GEN_PASS_DEF_PRUNEPASS
#include "qsim/Transforms/Passes.h.inc"
} // namespace qsim

using namespace mlir;
using namespace qsim;

namespace {
struct PrunePass : public qsim::impl::PrunePassBase<PrunePass> {
  using PrunePassBase::PrunePassBase;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    std::set<int64_t> layerSet;
    std::string error;
    if (!quantization::parseLayerList(layers, module, layerSet, error)) {
      module.emitError() << "--qsim-prune: " << error;
      return signalPassFailure();
    }
    raw_ostream *out = report ? &llvm::errs() : nullptr;
    if (mode == lighten::PruneMode::Magnitude) {
      lighten::MagnitudePruneOptions mo;
      mo.sparsity = sparsity;
      mo.layers = layerSet;
      mo.images.assign(images.begin(), images.end());
      mo.maxImages = maxImages;
      mo.reconstruct.samplesPerImage = samples;
      if (failed(lighten::pruneMagnitude(module, mo, out)))
        return signalPassFailure();
      return;
    }
    lighten::ChannelPruneOptions o;
    o.ratio = ratio;
    o.layers = layerSet;
    o.roundTo = roundTo;
    o.criterion = criterion;
    o.images.assign(images.begin(), images.end());
    o.maxImages = maxImages;
    o.reconstruct.samplesPerImage = samples;
    o.refitDownstream = refitDownstream;
    if (failed(lighten::pruneChannels(module, o, out)))
      return signalPassFailure();
  }
};
} // namespace
