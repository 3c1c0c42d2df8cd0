//===- AssignPrecision.cpp - --qsim-assign-precision ---------------------===//

#include "qsim/Quant/Precision.h"
#include "qsim/Quant/Sensitivity.h"
#include "qsim/Transforms/Passes.h"

namespace qsim {
#define GEN_PASS_DEF_ASSIGNPRECISIONPASS
#include "qsim/Transforms/Passes.h.inc"
} // namespace qsim

using namespace mlir;
using namespace qsim;

namespace {
struct AssignPrecisionPass
    : public qsim::impl::AssignPrecisionPassBase<AssignPrecisionPass> {
  using AssignPrecisionPassBase::AssignPrecisionPassBase;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    quantization::PrecisionPlan plan;
    plan.defaultPrecision = defaultPrecision;
    plan.preset = preset;
    plan.int8.assign(int8Layers.begin(), int8Layers.end());
    plan.w8a16.assign(w8a16Layers.begin(), w8a16Layers.end());
    plan.fp16.assign(fp16Layers.begin(), fp16Layers.end());
    plan.bf16.assign(bf16Layers.begin(), bf16Layers.end());
    plan.fp32.assign(fp32Layers.begin(), fp32Layers.end());
    if (failed(quantization::assignPrecision(module, plan)))
      return signalPassFailure();
    if (!autoSearch)
      return;
    quantization::SearchOptions s;
    s.minSqnr = minSqnr;
    s.maxMapDrop = maxMapDrop;
    s.budget = budget;
    s.images = images;
    s.labels = labels;
    s.maxImages = maxImages;
    s.timeRuns = timeRuns;
    std::string error;
    if (!searchPrecisions.empty() &&
        !quantization::parseSearchPrecisions(searchPrecisions, s.precisions,
                                             error)) {
      module.emitError() << "--qsim-assign-precision auto: " << error;
      return signalPassFailure();
    }
    std::vector<Precision> priced = s.precisions;
    priced.push_back(Precision::FP32);
    if (!costs.empty() &&
        !quantization::parsePrecisionCosts(costs, priced, s.costs, error)) {
      module.emitError() << "--qsim-assign-precision auto: " << error;
      return signalPassFailure();
    }
    if (timeRuns < 1) {
      module.emitError() << "--qsim-assign-precision auto: time-runs must be "
                            "at least 1";
      return signalPassFailure();
    }
    if (!eval::parseShardedEvalOptions(evalShards, evalExecutor, evalWorkdir,
                                       s.evaluation, error)) {
      module.emitError() << "--qsim-assign-precision: " << error;
      return signalPassFailure();
    }
    if (failed(quantization::searchPrecision(module, s, llvm::errs())))
      return signalPassFailure();
  }

  /// Whether the plan puts some layer in int8.
  bool plansInt8() const {
    using quantization::PrecisionPreset;
    return preset == PrecisionPreset::AllInt8 ||
           preset == PrecisionPreset::Hybrid ||
           defaultPrecision == Precision::Int8 || !int8Layers.empty() ||
           !w8a16Layers.empty() || autoSearch;
  }
};
} // namespace

FailureOr<bool> qsim::assignPrecisionPlansInt8(
    StringRef text, quantization::PrecisionPreset preset, std::string &error) {
  AssignPrecisionPassOptions options;
  options.preset = preset;
  AssignPrecisionPass pass(options);
  if (failed(applyOptionText(pass, text, error)))
    return failure();
  return pass.plansInt8();
}
