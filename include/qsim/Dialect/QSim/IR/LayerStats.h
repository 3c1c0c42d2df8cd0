//===- LayerStats.h - per-layer costs of a qsim model ----------*- C++ -*-===//
//
// The numbers `--qsim-print-stats`, `--export-json`, the studio and the
// lightening reports show: per Darknet layer its shape, parameters, MACs,
// Darknet's BFLOPs figure, precision and weight bytes per storage type.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_DIALECT_QSIM_IR_LAYERSTATS_H
#define QSIM_DIALECT_QSIM_IR_LAYERSTATS_H

#include "qsim/Dialect/QSim/IR/Layers.h"
#include "qsim/Dialect/QSim/IR/Shapes.h"

#include <map>

namespace qsim {

struct LayerStats {
  int64_t index = 0;
  std::string kind;
  shapes::CHW output;
  /// Layer indices feeding this layer (-1 = the network input).
  std::vector<int64_t> inputs;
  int64_t params = 0;
  int64_t macs = 0;
  double bflops = 0;
  std::string precision; // fp32, fp16, int8 (from the types, else the plan)
  /// Bytes of stored parameters by storage type ("f32", "f16", "i8", "i32");
  /// a shape-only layer counts its parameters as f32.
  std::map<std::string, int64_t> weightBytes;
  int64_t zeroWeights = 0; // exact zeros among the weights (sparsity)
  int64_t weightCount = 0;
  int64_t weightElementBytes = 4;
  int64_t totalWeightBytes() const;
  /// Bytes with the `weight` stored sparsely: its non-zero values plus a
  /// bitmap of one bit per weight (other parameters dense).
  int64_t sparseWeightBytes() const;
};

struct ModelStats {
  std::string source;
  Flavor flavor = Flavor::AlexeyAB;
  shapes::CHW input;
  std::vector<LayerStats> layers;
  int64_t params = 0, macs = 0, weightBytes = 0;
  double bflops = 0;
};

/// Fails (with a diagnostic) when the module has no main function or ops
/// outside layers.
mlir::FailureOr<ModelStats> computeModelStats(mlir::ModuleOp module);

/// Precision of a layer as the types say: "int8" when its head op's result
/// is quantized, "fp16" for f16, "bf16" for bf16, else "fp32".
std::string getLayerPrecision(const Layer &layer);

/// Prints the table of `--qsim-print-stats`.
void printModelStats(const ModelStats &stats, llvm::raw_ostream &os);

} // namespace qsim

#endif
