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
/// A plan for every layer at once (--qsim-assign-precision's preset).
enum class PrecisionPreset { None, AllInt8, Hybrid, FP16, BF16 };

struct PrecisionPlan {
  Precision defaultPrecision = Precision::FP32;
  PrecisionPreset preset = PrecisionPreset::None;
  /// Layer lists: items are indices "7", ranges "3-9", and "topN" for the N
  /// convolutional/connected layers with the most MACs.
  std::vector<std::string> int8, w8a16, fp16, bf16, fp32;
};

/// Resolves a layer list (items as in PrecisionPlan) against `module`; a
/// bad item or a layer the model lacks is an error at the module (callers
/// name their option with DiagnosticPrefix).
mlir::LogicalResult parseLayerList(llvm::ArrayRef<std::string> items,
                                   mlir::ModuleOp module,
                                   std::set<int64_t> &out);

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
