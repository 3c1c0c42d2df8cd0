//===- QuantizePipeline.h - quantize a float model in one call --*- C++ -*-===//
//
// What `qsim-run --mode/--precision/--calib` and a step session do to a
// loaded float model: the qsim-opt passes fold-batchnorm, calibrate (when
// some layer is int8), assign-precision and quantize, built from their
// generated option structs (never from pasted pipeline text).
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_TRANSFORMS_QUANTIZEPIPELINE_H
#define QSIM_TRANSFORMS_QUANTIZEPIPELINE_H

#include "qsim/Quant/Calibration.h"
#include "qsim/Quant/Precision.h"

#include "mlir/IR/BuiltinOps.h"

#include <optional>
#include <string>

namespace qsim {

/// qsim-run's --mode / a session's "mode": "float" (or empty: run as it
/// is), "hybrid", "int8" (every layer with an int8 form), "fp16", "bf16";
/// nullopt for anything else.
std::optional<quantization::PrecisionPreset> parseRunMode(llvm::StringRef m);

struct QuantizeRequest {
  /// The preset of --mode (None: only `precision` plans).
  quantization::PrecisionPreset preset = quantization::PrecisionPreset::None;
  /// Options of --qsim-assign-precision as the user wrote them
  /// ("int8=top3 default=fp16"), applied over the preset.
  std::string precision;
  /// Calibration images (directories or files; needed when a layer ends
  /// up int8).
  std::vector<std::string> calib;
  int calibImages = 100;
  quantization::CalibrationMethod calibMethod =
      quantization::CalibrationMethod::MinMax;
  bool calibProgress = true;
  /// Options of --qsim-quantize as the user wrote them.
  std::string quantize;
  /// Calibrate on `calib` even when no layer is int8 (a session's float
  /// twin, for crossing layers to int8 later).
  bool alwaysCalibrate = false;

  /// Whether anything is asked of the model.
  bool empty() const {
    return preset == quantization::PrecisionPreset::None && precision.empty();
  }
};

/// Folds batch norms, calibrates (if int8 is asked), assigns the precision
/// plan; the module stays float, ready for --qsim-quantize. Diagnostics go to
/// the context; `error` says what was wrong with the request itself.
mlir::LogicalResult prepareQuantization(mlir::ModuleOp module,
                                        const QuantizeRequest &request,
                                        std::string &error);

/// --qsim-quantize with the request's options on a prepared module.
mlir::LogicalResult applyQuantization(mlir::ModuleOp module,
                                      const QuantizeRequest &request,
                                      std::string &error);

} // namespace qsim

#endif
