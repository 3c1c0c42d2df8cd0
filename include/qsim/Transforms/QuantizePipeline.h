//===- QuantizePipeline.h - quantize a float model in one call --*- C++ -*-===//
//
// What `qsim-run --mode/--precision/--calib` and a step session do to a
// loaded float model: the qsim-opt passes fold-batchnorm, calibrate (when
// some layer is int8), assign-precision and quantize, run on the module.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_TRANSFORMS_QUANTIZEPIPELINE_H
#define QSIM_TRANSFORMS_QUANTIZEPIPELINE_H

#include "mlir/IR/BuiltinOps.h"

#include <string>

namespace qsim {

struct QuantizeRequest {
  /// "", "float", "hybrid", "int8" or "fp16" (a preset).
  std::string mode;
  /// Options of --qsim-assign-precision, e.g. "int8=top3 default=fp16".
  std::string precision;
  /// Calibration images (needed when a layer ends up int8).
  std::string calib;
  int calibImages = 100;
  std::string calibMethod = "minmax";
  bool calibProgress = true;
  /// Options of --qsim-quantize.
  std::string quantize;
  /// Calibrate on `calib` even when no layer is int8 (a session's float
  /// twin, for crossing layers to int8 later).
  bool alwaysCalibrate = false;

  /// Whether anything is asked of the model (mode "" or "float" and no
  /// precision: nothing).
  bool empty() const {
    return (mode.empty() || mode == "float") && precision.empty();
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
