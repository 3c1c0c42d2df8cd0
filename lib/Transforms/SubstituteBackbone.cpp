//===- SubstituteBackbone.cpp - --qsim-substitute-backbone ---------------===//

#include "qsim/Lighten/Backbone.h"
#include "qsim/Transforms/Passes.h"

namespace qsim {
#define GEN_PASS_DEF_SUBSTITUTEBACKBONEPASS
#include "qsim/Transforms/Passes.h.inc"
} // namespace qsim

using namespace mlir;
using namespace qsim;

static bool parseRange(StringRef s, int64_t &first, int64_t &last) {
  auto [a, b] = s.split(':');
  return !a.trim().getAsInteger(10, first) && !b.trim().getAsInteger(10, last);
}

namespace {
struct SubstituteBackbonePass
    : public qsim::impl::SubstituteBackbonePassBase<SubstituteBackbonePass> {
  using SubstituteBackbonePassBase::SubstituteBackbonePassBase;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    lighten::BackboneOptions o;
    StringRef w = with;
    auto [cfg, rest] = w.split(",weights=");
    o.otherCfg = cfg.str();
    o.otherWeights = !rest.empty() ? rest.str() : weights;
    o.seed = seed;
    if (o.otherCfg.empty()) {
      module.emitError() << "--qsim-substitute-backbone needs with=OTHER.cfg";
      return signalPassFailure();
    }
    if (!parseRange(cut, o.cutFirst, o.cutLast) ||
        !parseRange(take, o.takeFirst, o.takeLast)) {
      module.emitError() << "--qsim-substitute-backbone needs cut=FIRST:LAST "
                            "and take=FIRST:LAST";
      return signalPassFailure();
    }
    if (failed(lighten::substituteBackbone(module, o,
                                           report ? &llvm::errs() : nullptr)))
      return signalPassFailure();
  }
};
} // namespace
