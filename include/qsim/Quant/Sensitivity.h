//===- Sensitivity.h - mixed-precision search -------------------*- C++ -*-===//

#ifndef QSIM_QUANT_SENSITIVITY_H
#define QSIM_QUANT_SENSITIVITY_H

#include "qsim/Quant/Quantizer.h"
#include "qsim/Runtime/Evaluation.h"
#include "qsim/Runtime/Image.h"
#include "qsim/Runtime/Tensor.h"

#include "llvm/Support/raw_ostream.h"

#include <string>
#include <vector>

namespace qsim::quantization {

struct SearchOptions {
  double minSqnr = 0;     // dB; 0 = no SQNR constraint
  double maxMapDrop = -1; // points; < 0 = no mAP constraint
  double budget = 0;      // stop once float MACs <= budget * total MACs
  std::string images, labels;
  int maxImages = 16;
  QuantizeOptions quantize;
};

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

/// The `auto` mode of --qsim-assign-precision (see Passes.td). The module
/// must have folded batch norms and calibrated ranges. Prints its table.
mlir::LogicalResult searchPrecision(mlir::ModuleOp module,
                                    const SearchOptions &options,
                                    llvm::raw_ostream &os);

} // namespace qsim::quantization

#endif
