//===- ModelMeasures.h - a whole model's outputs, SQNR and mAP --*- C++ -*-===//

#ifndef QSIM_EVALUATION_MODELMEASURES_H
#define QSIM_EVALUATION_MODELMEASURES_H

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

/// Loads and preprocesses `files` as Darknet's tools would for `module`
/// (network size, resize or letterbox).
bool loadNetworkInputs(mlir::ModuleOp module,
                       const std::vector<std::string> &files,
                       std::vector<rt::Tensor> &inputs, std::string &error);

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
