//===- BiasCorrect.cpp - --qsim-bias-correct -----------------------------===//

#include "qsim/Evaluation/ModelMeasures.h"
#include "qsim/Quant/BiasCorrection.h"
#include "qsim/Quant/Recovery.h"
#include "qsim/Transforms/Passes.h"

#include "RecoveryScheme.h"

namespace qsim {
#define GEN_PASS_DEF_BIASCORRECTPASS
#include "qsim/Transforms/Passes.h.inc"
} // namespace qsim

using namespace mlir;
using namespace qsim;

namespace {
struct BiasCorrectPass
    : public qsim::impl::BiasCorrectPassBase<BiasCorrectPass> {
  using BiasCorrectPassBase::BiasCorrectPassBase;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    using namespace quantization;
    if (weightBits < 2 || weightBits > 8) {
      module.emitError() << "--qsim-bias-correct: weight-bits="
                         << static_cast<int>(weightBits) << " is outside 2..8";
      return signalPassFailure();
    }
    if (mode == BiasCorrectionMode::Analytic) {
      if (!images.empty()) {
        module.emitError() << "--qsim-bias-correct: mode=analytic takes no "
                              "images (it reads batch-norm statistics)";
        return signalPassFailure();
      }
      BiasCorrectionOptions o;
      o.quantize = recoveryScheme(module, weights, activations, scale,
                                  weightBits, weightRange);
      if (failed(readWeight8Layers(module, "qsim-bias-correct", weight8Layers,
                                   o.quantize)))
        return signalPassFailure();
      auto rows = correctBiasesAnalytically(module, o);
      if (failed(rows))
        return signalPassFailure();
      if (report)
        printBiasCorrectionReport(*rows, llvm::errs());
      return;
    }
    if (images.empty()) {
      module.emitError() << "--qsim-bias-correct needs images=DIR (or a "
                            "comma-separated list of files)";
      return signalPassFailure();
    }
    std::vector<rt::Tensor> inputs;
    if (failed(eval::loadImageInputs(module, images, maxImages,
                                     "--qsim-bias-correct: ", inputs)))
      return signalPassFailure();
    BiasCorrectionOptions o;
    o.quantize = recoveryScheme(module, weights, activations, scale, weightBits,
                                weightRange);
    if (failed(readWeight8Layers(module, "qsim-bias-correct", weight8Layers,
                                 o.quantize)))
      return signalPassFailure();
    o.executor.threads = threads;
    o.progress = progress;
    auto rows = correctBiases(module, inputs, o);
    if (failed(rows))
      return signalPassFailure();
    if (report)
      printBiasCorrectionReport(*rows, llvm::errs());
  }
};
} // namespace
