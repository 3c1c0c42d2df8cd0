//===- BiasCorrect.cpp - --qsim-bias-correct -----------------------------===//

#include "qsim/Quant/BiasCorrection.h"
#include "qsim/Quant/Recovery.h"
#include "qsim/Runtime/Image.h"
#include "qsim/Transforms/Passes.h"

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
    if (images.empty()) {
      module.emitError() << "--qsim-bias-correct needs images=DIR (or a "
                            "comma-separated list of files)";
      return signalPassFailure();
    }
    std::string error;
    std::vector<std::string> files;
    std::vector<rt::Tensor> inputs;
    for (const std::string &item : images)
      if (!rt::listImageFiles(item, files, error)) {
        module.emitError() << "--qsim-bias-correct: " << error;
        return signalPassFailure();
      }
    if (!loadNetworkInputs(module, files, maxImages, inputs, error)) {
      module.emitError() << "--qsim-bias-correct: " << error;
      return signalPassFailure();
    }
    BiasCorrectionOptions o;
    o.quantize.perChannelWeights = weights == WeightGranularity::PerChannel;
    o.quantize.symmetricActivations =
        activations == ActivationScheme::Symmetric;
    o.quantize.pow2Scales = scale == ScaleKind::Pow2 || calibratedLog2(module);
    o.quantize.weightBits = weightBits;
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
