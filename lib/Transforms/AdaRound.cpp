//===- AdaRound.cpp - --qsim-adaround ------------------------------------===//

#include "qsim/Evaluation/ModelMeasures.h"
#include "qsim/Quant/AdaRound.h"
#include "qsim/Quant/Recovery.h"
#include "qsim/Transforms/Passes.h"

#include "RecoveryScheme.h"

namespace qsim {
#define GEN_PASS_DEF_ADAROUNDPASS
#include "qsim/Transforms/Passes.h.inc"
} // namespace qsim

using namespace mlir;
using namespace qsim;

namespace {
struct AdaRoundPass : public qsim::impl::AdaRoundPassBase<AdaRoundPass> {
  using AdaRoundPassBase::AdaRoundPassBase;
  LogicalResult fail(const Twine &message) {
    getOperation().emitError() << "--qsim-adaround: " << message;
    return failure();
  }
  LogicalResult checkOptions() {
    if (weightBits < 2 || weightBits > 8)
      return fail("weight-bits=" + Twine(static_cast<int>(weightBits)) +
                  " is outside 2..8");
    if (iterations < 0)
      return fail("iterations must be >= 0");
    if (samples < 1)
      return fail("samples must be >= 1");
    if (regularization < 0)
      return fail("regularization must be >= 0");
    if (learningRate <= 0)
      return fail("learning-rate must be > 0");
    if (images.empty())
      return fail("needs images=DIR (or a comma-separated list of files)");
    return success();
  }
  void runOnOperation() override {
    ModuleOp module = getOperation();
    using namespace quantization;
    if (failed(checkOptions()))
      return signalPassFailure();
    std::vector<rt::Tensor> inputs;
    if (failed(eval::loadImageInputs(module, images, maxImages,
                                     "--qsim-adaround: ", inputs)))
      return signalPassFailure();
    AdaRoundOptions o;
    o.quantize = recoveryScheme(module, weights, activations, scale, weightBits,
                                weightRange);
    if (failed(readWeight8Layers(module, "qsim-adaround", weight8Layers,
                                 o.quantize)))
      return signalPassFailure();
    o.executor.threads = threads;
    o.iterations = iterations;
    o.samples = samples;
    o.regularization = regularization;
    o.learningRate = learningRate;
    o.floatTarget = target == AdaRoundTarget::Float;
    o.correctBias = biasCorrect;
    o.searchScales = searchScales;
    o.seed = seed;
    o.progress = progress;
    auto rows = adaroundModule(module, inputs, o);
    if (failed(rows))
      return signalPassFailure();
    if (report)
      printAdaRoundReport(*rows, llvm::errs());
  }
};
} // namespace
