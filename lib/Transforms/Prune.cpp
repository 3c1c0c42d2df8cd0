//===- Prune.cpp - --qsim-prune ------------------------------------------===//

#include "qsim/Lighten/Pruning.h"
#include "qsim/Quant/Precision.h"
#include "qsim/Support/Diagnostics.h"
#include "qsim/Transforms/Passes.h"

#include <cmath>

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
    // Written so that NaN fails too.
    if (!(ratio >= 0 && ratio < 1)) {
      module.emitError() << "prune ratio must be in [0, 1), got "
                         << ratio;
      return signalPassFailure();
    }
    if (samples < 0) {
      module.emitError() << "--qsim-prune: samples must be >= 0 (0: "
                            "automatic), got "
                         << (int64_t)samples;
      return signalPassFailure();
    }
    if (roundTo < 1) {
      module.emitError() << "--qsim-prune: round-to must be >= 1, got "
                         << (int64_t)roundTo;
      return signalPassFailure();
    }
    // sparsity: the existing check in pruneMagnitude ("[0, 1)") also
    // refuses NaN, which fails every comparison there too.
    if (std::isnan(sparsity)) {
      module.emitError() << "sparsity must be in [0, 1), got nan";
      return signalPassFailure();
    }
    std::set<int64_t> layerSet;
    {
      DiagnosticPrefix prefix(&getContext(), "--qsim-prune: ");
      if (failed(quantization::parseLayerList(layers, module, layerSet)))
        return signalPassFailure();
    }
    raw_ostream *out = report ? &llvm::errs() : nullptr;
    if (mode == lighten::PruneMode::Magnitude) {
      lighten::MagnitudePruneOptions mo;
      mo.sparsity = sparsity;
      mo.layers = layerSet;
      mo.images.assign(images.begin(), images.end());
      mo.maxImages = maxImages;
      mo.allocation = allocation;
      mo.reconstruct.samplesPerImage = samples;
      if (failed(lighten::pruneMagnitude(module, mo, out)))
        return signalPassFailure();
      return;
    }
    if (allocation != lighten::SparsityAllocation::Uniform) {
      module.emitError() << "--qsim-prune: allocation= applies to "
                            "mode=magnitude (channel pruning removes `ratio` "
                            "of every coupled channel set)";
      return signalPassFailure();
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
