//===- Equalize.cpp - --qsim-equalize ------------------------------------===//

#include "qsim/Quant/Equalization.h"
#include "qsim/Transforms/Passes.h"

namespace qsim {
#define GEN_PASS_DEF_EQUALIZEPASS
#include "qsim/Transforms/Passes.h.inc"
} // namespace qsim

using namespace mlir;
using namespace qsim;

namespace {
struct EqualizePass : public qsim::impl::EqualizePassBase<EqualizePass> {
  using EqualizePassBase::EqualizePassBase;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (maxSweeps < 1) {
      module.emitError() << "--qsim-equalize: max-sweeps must be at least 1";
      return signalPassFailure();
    }
    quantization::EqualizationOptions o;
    o.maxSweeps = maxSweeps;
    o.progress = progress;
    auto result = quantization::equalizeModule(module, o);
    if (failed(result))
      return signalPassFailure();
    if (report)
      quantization::printEqualizationReport(*result, llvm::errs());
  }
};
} // namespace
