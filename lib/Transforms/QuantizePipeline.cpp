//===- QuantizePipeline.cpp - quantize a float model in one call ---------===//

#include "qsim/Transforms/QuantizePipeline.h"
#include "qsim/Transforms/Passes.h"

#include "mlir/Pass/PassManager.h"

using namespace mlir;
using namespace qsim;
using quantization::PrecisionPreset;

std::optional<PrecisionPreset> qsim::parseRunMode(StringRef m) {
  if (m.empty() || m == "float")
    return PrecisionPreset::None;
  if (m == "hybrid")
    return PrecisionPreset::Hybrid;
  if (m == "int8")
    return PrecisionPreset::AllInt8;
  if (m == "fp16")
    return PrecisionPreset::FP16;
  if (m == "bf16")
    return PrecisionPreset::BF16;
  return std::nullopt;
}

LogicalResult qsim::applyOptionText(Pass &pass, StringRef text,
                                    std::string &error) {
  if (text.empty())
    return success();
  std::string message;
  if (succeeded(pass.initializeOptions(text, [&](const Twine &msg) {
        message = msg.str();
        return failure();
      })))
    return success();
  error = "bad options for --" + pass.getArgument().str() + " '" +
          text.str() + "'" + (message.empty() ? "" : ": " + message);
  return failure();
}

LogicalResult qsim::prepareQuantization(ModuleOp module,
                                        const QuantizeRequest &r,
                                        std::string &error) {
  if (module->hasAttr("qsim.quantization")) {
    error = "the model is already quantized; precisions apply to float models";
    return failure();
  }
  FailureOr<bool> int8 =
      assignPrecisionPlansInt8(r.precision, r.preset, error);
  if (failed(int8))
    return failure();
  AssignPrecisionPassOptions assignOptions;
  assignOptions.preset = r.preset;
  std::unique_ptr<Pass> assign = createAssignPrecisionPass(assignOptions);
  if (failed(applyOptionText(*assign, r.precision, error)))
    return failure();
  PassManager pm(module.getContext());
  pm.addPass(createFoldBatchNormPass());
  if (*int8 || (r.alwaysCalibrate && !r.calib.empty())) {
    if (r.calib.empty()) {
      error = "int8 layers need calibration images (images other than the "
              "ones you evaluate on)";
      return failure();
    }
    CalibratePassOptions calibrate;
    calibrate.images = r.calib;
    calibrate.maxImages = r.calibImages;
    calibrate.method = r.calibMethod;
    calibrate.progress = r.calibProgress;
    pm.addPass(createCalibratePass(calibrate));
  }
  if (!r.empty())
    pm.addPass(std::move(assign));
  if (failed(pm.run(module))) {
    error = "quantization failed (see the diagnostics above)";
    return failure();
  }
  return success();
}

LogicalResult qsim::applyQuantization(ModuleOp module, const QuantizeRequest &r,
                                      std::string &error) {
  std::unique_ptr<Pass> quantize = createQuantizePass();
  if (failed(applyOptionText(*quantize, r.quantize, error)))
    return failure();
  PassManager pm(module.getContext());
  pm.addPass(std::move(quantize));
  if (failed(pm.run(module))) {
    error = "quantization failed (see the diagnostics above)";
    return failure();
  }
  return success();
}
