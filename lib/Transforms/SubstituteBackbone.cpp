//===- SubstituteBackbone.cpp - --qsim-substitute-backbone ---------------===//

#include "qsim/Lighten/Backbone.h"
#include "qsim/Target/ModelIO.h"
#include "qsim/Transforms/Passes.h"

namespace qsim {
#define GEN_PASS_DEF_SUBSTITUTEBACKBONEPASS
#include "qsim/Transforms/Passes.h.inc"
} // namespace qsim

using namespace mlir;
using namespace qsim;

namespace {
struct SubstituteBackbonePass
    : public qsim::impl::SubstituteBackbonePassBase<SubstituteBackbonePass> {
  using SubstituteBackbonePassBase::SubstituteBackbonePassBase;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    lighten::BackboneOptions o;
    o.seed = seed;
    std::string error;
    if (!lighten::parseBackboneOptions(with, weights, cut, take, o, error)) {
      module.emitError() << "--qsim-substitute-backbone " << error;
      return signalPassFailure();
    }
    OwningOpRef<ModuleOp> donor = loadDonorNetwork(
        module.getContext(), o.otherCfg, o.otherWeights, o.seed,
        getFlavor(module));
    if (!donor) {
      module.emitError() << "cannot import '" << o.otherCfg << "'";
      return signalPassFailure();
    }
    if (failed(lighten::substituteBackbone(module, *donor, o,
                                           report ? &llvm::errs() : nullptr)))
      return signalPassFailure();
  }
};
} // namespace
