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
    plan.int8 = int8Layers;
    plan.fp16 = fp16Layers;
    plan.fp32 = fp32Layers;
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
    if (failed(quantization::searchPrecision(module, s, llvm::errs())))
      return signalPassFailure();
  }
};
} // namespace
