//===- QuantizePipeline.cpp - quantize a float model in one call ---------===//

#include "qsim/Transforms/QuantizePipeline.h"
#include "qsim/Transforms/Passes.h"

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"

using namespace mlir;
using namespace qsim;

static LogicalResult runPipeline(ModuleOp module, const std::string &pipeline,
                                 std::string &error) {
  // Registering twice is harmless (same pass type ids).
  registerQSimPasses();
  PassManager pm(module.getContext());
  std::string errors;
  llvm::raw_string_ostream es(errors);
  // The pass manager is anchored on the module: the pipeline lists its
  // passes directly (a builtin.module(...) wrapper would nest them).
  if (failed(parsePassPipeline(pipeline, pm, es))) {
    error = "bad precision/quantize options: " + es.str();
    return failure();
  }
  if (failed(pm.run(module))) {
    error = "quantization failed (see the diagnostics above)";
    return failure();
  }
  return success();
}

LogicalResult qsim::prepareQuantization(ModuleOp module,
                                        const QuantizeRequest &r,
                                        std::string &error) {
  if (module->hasAttr("qsim.quantization")) {
    error = "the model is already quantized; precisions apply to float models";
    return failure();
  }
  std::string assign;
  if (r.mode == "int8")
    assign = "preset=all-int8";
  else if (r.mode == "hybrid")
    assign = "preset=hybrid";
  else if (r.mode == "fp16")
    assign = "preset=fp16";
  else if (!r.mode.empty() && r.mode != "float") {
    error = "unknown mode '" + r.mode + "' (float, hybrid, int8, fp16)";
    return failure();
  }
  if (!r.precision.empty())
    assign += (assign.empty() ? "" : " ") + r.precision;
  bool wantsInt8 = r.mode == "int8" || r.mode == "hybrid" ||
                   r.precision.find("int8") != std::string::npos ||
                   (r.alwaysCalibrate && !r.calib.empty());
  std::string pipeline = "qsim-fold-batchnorm";
  if (wantsInt8) {
    if (r.calib.empty()) {
      error = "int8 layers need calibration images (images other than the "
              "ones you evaluate on)";
      return failure();
    }
    pipeline += ",qsim-calibrate{images=" + r.calib +
                " max-images=" + std::to_string(r.calibImages) +
                " method=" + r.calibMethod +
                (r.calibProgress ? "" : " progress=0") + "}";
  }
  if (!assign.empty())
    pipeline += ",qsim-assign-precision{" + assign + "}";
  return runPipeline(module, pipeline, error);
}

LogicalResult qsim::applyQuantization(ModuleOp module, const QuantizeRequest &r,
                                      std::string &error) {
  return runPipeline(module,
                     "qsim-quantize" + (r.quantize.empty()
                                            ? std::string()
                                            : "{" + r.quantize + "}"),
                     error);
}
