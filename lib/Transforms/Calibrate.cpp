//===- Calibrate.cpp - --qsim-calibrate ----------------------------------===//

#include "qsim/Quant/Calibration.h"
#include "qsim/Runtime/Image.h"
#include "qsim/Transforms/Passes.h"

#include "llvm/ADT/StringExtras.h"

namespace qsim {
#define GEN_PASS_DEF_CALIBRATEPASS
#include "qsim/Transforms/Passes.h.inc"
} // namespace qsim

using namespace mlir;
using namespace qsim;

namespace {
struct CalibratePass : public qsim::impl::CalibratePassBase<CalibratePass> {
  using CalibratePassBase::CalibratePassBase;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    quantization::CalibrationOptions o;
    if (!quantization::parseCalibrationMethod(method, o.method)) {
      module.emitError() << "--qsim-calibrate: unknown method '" << method
                         << "' (minmax, percentile, entropy, mse, log2)";
      return signalPassFailure();
    }
    if (percentile <= 50 || percentile > 100) {
      module.emitError() << "--qsim-calibrate: percentile must be in (50, 100]";
      return signalPassFailure();
    }
    if (kernels != "fast" && kernels != "reference") {
      module.emitError()
          << "--qsim-calibrate: kernels must be fast or reference";
      return signalPassFailure();
    }
    o.kernels = kernels == "fast" ? interp::KernelSet::Fast
                                  : interp::KernelSet::Reference;
    o.percentile = percentile;
    o.maxImages = maxImages;
    o.threads = threads;
    o.progress = progress;
    std::string error;
    if (images.empty()) {
      module.emitError() << "--qsim-calibrate needs images=DIR (or a "
                            "comma-separated list of files)";
      return signalPassFailure();
    }
    SmallVector<StringRef> items;
    StringRef(images).split(items, ',', -1, false);
    for (StringRef item : items)
      if (!rt::listImageFiles(item.str(), o.images, error)) {
        module.emitError() << "--qsim-calibrate: " << error;
        return signalPassFailure();
      }
    if (!quantization::calibrateModule(module, o, error)) {
      module.emitError() << "--qsim-calibrate: " << error;
      return signalPassFailure();
    }
  }
};
} // namespace
