//===- ModelMeasures.h - a whole model's outputs, SQNR and mAP --*- C++ -*-===//

#ifndef QSIM_EVALUATION_MODELMEASURES_H
#define QSIM_EVALUATION_MODELMEASURES_H

#include "qsim/Interpreter/Executor.h"
#include "qsim/Runtime/Evaluation.h"
#include "qsim/Runtime/Image.h"
#include "qsim/Runtime/Tensor.h"

#include "mlir/IR/BuiltinOps.h"

#include <string>
#include <vector>

namespace qsim::eval {

/// Output SQNR in dB of `test` against `reference` (all values): 10 log10 of
/// signal power over error power; +inf when equal.
double sqnr(const std::vector<float> &reference,
            const std::vector<float> &test);

/// An executor for `module`, or null with the planning diagnostic (its
/// file:line location and the layer) in `error`: Executor::create for the
/// interfaces that report through a string.
std::unique_ptr<interp::Executor>
createExecutor(mlir::ModuleOp module, std::string &error,
               const interp::ExecutorOptions &options = {});

/// Loads and preprocesses `files` as Darknet's tools would for `module`
/// (network size, resize or letterbox).
/// `maxPixels` > 0 refuses larger images.
bool loadNetworkInputs(mlir::ModuleOp module,
                       const std::vector<std::string> &files,
                       std::vector<rt::Tensor> &inputs, std::string &error,
                       int64_t maxPixels = 0);

/// A pass's images=...: the images of `paths` (directories or files), the
/// first `maxImages` of them (all when <= 0), loaded as above (at most 64
/// Mpixels each). Errors are emitted at the module's location, after
/// `prefix` (the pass's option, "--qsim-adaround: ").
mlir::LogicalResult loadImageInputs(mlir::ModuleOp module,
                                    llvm::ArrayRef<std::string> paths,
                                    int maxImages, llvm::StringRef prefix,
                                    std::vector<rt::Tensor> &inputs);

/// The model's function results on each input, concatenated.
bool runOutputs(mlir::ModuleOp module, const std::vector<rt::Tensor> &inputs,
                std::vector<float> &out, std::string &error);

/// mAP@0.5 (in %) of a detection model on images with their labels, as
/// `detector map` computes it (threshold 0.005).
bool evaluateMap(mlir::ModuleOp module, const std::vector<rt::Image> &images,
                 const std::vector<std::vector<rt::GroundTruth>> &truth,
                 double &map, std::string &error);

} // namespace qsim::eval

#endif
