//===- FactorizeConv.cpp - --qsim-factorize-conv -------------------------===//

#include "qsim/Lighten/Factorization.h"
#include "qsim/Quant/Precision.h"
#include "qsim/Support/Diagnostics.h"
#include "qsim/Transforms/Passes.h"

namespace qsim {
#define GEN_PASS_DEF_FACTORIZECONVPASS
#include "qsim/Transforms/Passes.h.inc"
} // namespace qsim

using namespace mlir;
using namespace qsim;

namespace {
struct FactorizeConvPass
    : public qsim::impl::FactorizeConvPassBase<FactorizeConvPass> {
  using FactorizeConvPassBase::FactorizeConvPassBase;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto fail = [&](const Twine &msg) {
      module.emitError() << "--qsim-factorize-conv: " << msg;
      signalPassFailure();
    };
    lighten::FactorizeOptions o;
    o.method = method;
    {
      DiagnosticPrefix prefix(&getContext(), "--qsim-factorize-conv: ");
      if (failed(quantization::parseLayerList(layers, module, o.layers)))
        return signalPassFailure();
    }
    if (top < 0)
      return fail("top must be >= 0");
    if (samples < 0)
      return fail("samples must be >= 0 (0: automatic)");
    o.top = top;
    o.minMacs = minMacs;
    o.energy = energy;
    o.force = force;
    if (energy <= 0 || energy > 1)
      return fail("energy must be in (0, 1]");
    if (!rank.empty()) {
      StringRef r1 = StringRef(rank), r2;
      std::tie(r1, r2) = r1.split(':');
      if (r1.getAsInteger(10, o.rank1) || o.rank1 < 1 ||
          (!r2.empty() && (r2.getAsInteger(10, o.rank2) || o.rank2 < 1)))
        return fail("rank must be a positive integer or R1:R2, not '" + rank +
                    "'");
      if (!r2.empty() && o.method != lighten::FactorizeMethod::Tucker2)
        return fail("rank=R1:R2 is for tucker2 only");
      if (r2.empty())
        o.rank2 = o.rank1;
    }
    o.images.assign(images.begin(), images.end());
    o.maxImages = maxImages;
    if (refit && images.empty())
      return fail("refit needs images=");
    o.refit = refit;
    o.reconstruct.samplesPerImage = samples;
    lighten::FactorizeResult result;
    if (failed(lighten::factorizeConvs(module, o, result)))
      return signalPassFailure();
    if (report)
      lighten::printFactorizeReport(o, result, llvm::errs());
  }
};
} // namespace
