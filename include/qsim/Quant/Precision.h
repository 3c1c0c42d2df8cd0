//===- Precision.h - per-layer precision plans ------------------*- C++ -*-===//

#ifndef QSIM_QUANT_PRECISION_H
#define QSIM_QUANT_PRECISION_H

#include "qsim/Dialect/QSim/IR/Layers.h"

#include <set>
#include <string>

namespace qsim::quantization {

/// What --qsim-assign-precision is asked for. Explicit lists win over a
/// plan written in the cfg (`precision=` / `quantize=` keys), which wins over
/// the preset, which wins over the default.
struct PrecisionPlan {
  std::string defaultPrecision = "fp32"; // fp32 | fp16 | int8
  std::string preset;                    // "", all-int8, hybrid, fp16
  /// Layer lists: indices "2,7,12", ranges "3-9", and "topN" for the N
  /// convolutional/connected layers with the most MACs.
  std::string int8, fp16, fp32;
};

/// Resolves a layer list (see PrecisionPlan) against `module`.
bool parseLayerList(llvm::StringRef s, mlir::ModuleOp module,
                    std::set<int64_t> &out, std::string &error);

/// Whether the layer has an int8 form (conv/connected with linear, relu,
/// relu6 or leaky; max pooling, positive-stride upsampling with scale 1,
/// reorg, dropout, route, shortcut with linear/relu/leaky).
bool hasInt8Form(const Layer &layer);

/// Sets `qsim.precision` and `qsim.precision_reason` on every layer's head
/// op. Explicitly asking int8 of a layer without an int8 form is an error
/// naming the layer; presets fall back to fp32 with a remark.
mlir::LogicalResult assignPrecision(mlir::ModuleOp module,
                                    const PrecisionPlan &plan);

/// The precision recorded for a layer ("fp32" when none).
std::string getAssignedPrecision(const Layer &layer);
void setAssignedPrecision(const Layer &layer, llvm::StringRef precision,
                          llvm::StringRef reason);

} // namespace qsim::quantization

#endif
