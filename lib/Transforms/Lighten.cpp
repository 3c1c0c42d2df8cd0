//===- Lighten.cpp - --qsim-lighten: the guideline as one pipeline -------===//
//
// The pass turns its options into lighten::GuidelineOptions, imports G1's
// donor network, and runs the guideline (lib/Lighten/Guideline.cpp).
//
//===----------------------------------------------------------------------===//

#include "qsim/Lighten/Guideline.h"
#include "qsim/Target/ModelIO.h"
#include "qsim/Transforms/Passes.h"

namespace qsim {
#define GEN_PASS_DEF_LIGHTENPASS
#include "qsim/Transforms/Passes.h.inc"
} // namespace qsim

using namespace mlir;
using namespace qsim;

namespace {
struct LightenPass : public qsim::impl::LightenPassBase<LightenPass> {
  using LightenPassBase::LightenPassBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto fail = [&](const Twine &msg) {
      module.emitError() << "--qsim-lighten: " << msg;
      signalPassFailure();
    };
    lighten::GuidelineOptions o;
    std::string error;
    o.targetMacs = lighten::parseGuidelineTarget(targetMacs, error);
    if (error.empty())
      o.targetParams = lighten::parseGuidelineTarget(targetParams, error);
    if (error.empty())
      o.targetBytes = lighten::parseGuidelineTarget(targetSize, error);
    if (!error.empty())
      return fail(error);
    if (targetLatency > 0)
      o.targetLatencyMs = targetLatency;
    if (minSqnr > 0)
      o.minSqnr = minSqnr;
    if (maxSqnrDrop >= 0)
      o.maxSqnrDrop = maxSqnrDrop;
    if (maxMapDrop >= 0)
      o.maxMapDrop = maxMapDrop;
    o.calibDir = calib;
    o.calibImages = calibImages;
    o.fidelityImages = fidelityImages;
    o.evalDir = eval;
    o.evalImages = evalImages;
    if (!eval::parseShardedEvalOptions(evalShards, evalExecutor, evalWorkdir,
                                       o.evaluation, error))
      return fail(error);
    o.factorizeMethod = factorizeMethod;
    o.factorizeTop = factorizeTop;
    o.energy = energy;
    o.maxPruneRatio = maxPruneRatio;
    o.roundTo = roundTo;
    o.refitImages = refitImages;
    o.calibMethod = calibMethod;
    o.latencyRuns = latencyRuns;
    o.threads = threads;
    if (!recover.empty()) {
      if (recover != "train")
        return fail("recover='" + recover + "': the only recovery is 'train'");
      if (!lighten::hasRecoveryHook())
        return fail("recover=train needs qsim built with training (libtorch, "
                    "-DQSIM_ENABLE_TRAIN=ON): this qsim-opt has none");
      if (trainImages.empty() || trainSteps < 1 || trainBatch < 1)
        return fail("recover=train needs train-images=DIR, train-steps >= 1 "
                    "and train-batch >= 1");
      o.recover = lighten::RecoveryOptions{trainSteps, trainBatch, trainImages,
                                           threads};
    }

    // G1's donor network, imported in this model's flavour.
    OwningOpRef<ModuleOp> donor;
    if (!with.empty()) {
      lighten::BackboneOptions bo;
      if (!lighten::parseBackboneOptions(with, weights, cut, take, bo, error))
        return fail("G1 " + error);
      donor = loadDonorNetwork(module.getContext(), bo.otherCfg,
                               bo.otherWeights, bo.seed, getFlavor(module));
      if (!donor)
        return fail("G1 cannot import '" + bo.otherCfg + "'");
      o.backbone = bo;
    }
    if (failed(lighten::applyGuideline(module, o, donor ? *donor : ModuleOp(),
                                       llvm::errs())))
      signalPassFailure();
  }
};
} // namespace
