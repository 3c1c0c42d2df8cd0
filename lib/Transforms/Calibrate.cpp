//===- Calibrate.cpp - --qsim-calibrate ----------------------------------===//

#include "qsim/Quant/Calibration.h"
#include "qsim/Runtime/Image.h"
#include "qsim/Support/Diagnostics.h"
#include "qsim/Transforms/Passes.h"

namespace qsim {
#define GEN_PASS_DEF_CALIBRATEPASS
#include "qsim/Transforms/Passes.h.inc"
} // namespace qsim

using namespace mlir;
using namespace qsim;

namespace {
struct CalibratePass : public qsim::impl::CalibratePassBase<CalibratePass> {
  using CalibratePassBase::CalibratePassBase;
  /// shard=K/N with 0 <= K < N.
  LogicalResult parseShard(quantization::CalibrationOptions &o) {
    auto [k, n] = llvm::StringRef(shard).split('/');
    if (k.getAsInteger(10, o.shardIndex) || n.getAsInteger(10, o.shardCount) ||
        o.shardIndex < 0 || o.shardIndex >= o.shardCount)
      return getOperation().emitError()
             << "--qsim-calibrate: shard '" << shard
             << "' is not K/N with 0 <= K < N";
    return success();
  }
  void runOnOperation() override {
    ModuleOp module = getOperation();
    quantization::CalibrationOptions o;
    if (maxImages < 1 || threads < 0) {
      module.emitError() << "--qsim-calibrate: max-images must be >= 1 and "
                            "threads >= 0 (0: all cores)";
      return signalPassFailure();
    }
    if (!(percentile > 50 && percentile <= 100)) { // NaN fails too
      module.emitError() << "--qsim-calibrate: percentile must be in (50, 100]";
      return signalPassFailure();
    }
    o.method = method;
    o.kernels = kernels;
    o.percentile = percentile;
    o.maxImages = maxImages;
    o.threads = threads;
    o.progress = progress;
    if (!shard.empty() && failed(parseShard(o)))
      return signalPassFailure();
    o.statsOut = statsOut;
    o.statsIn.assign(statsIn.begin(), statsIn.end());
    if (images.empty()) {
      module.emitError() << "--qsim-calibrate needs images=DIR (or a "
                            "comma-separated list of files)";
      return signalPassFailure();
    }
    std::string error;
    for (const std::string &item : images)
      if (!rt::listImageFiles(item, o.images, error)) {
        module.emitError() << "--qsim-calibrate: " << error;
        return signalPassFailure();
      }
    DiagnosticPrefix prefix(module.getContext(), "--qsim-calibrate: ");
    if (failed(quantization::calibrateModule(module, o)))
      return signalPassFailure();
  }
};
} // namespace
