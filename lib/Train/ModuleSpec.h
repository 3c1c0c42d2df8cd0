//===- ModuleSpec.h - reading a module into a NetSpec and back --*- C++ -*-===//
//
// The MLIR side of the torch view: a qsim module (float, batch norms folded
// or not, or quantized with int8 / fp16 layers) becomes a NetSpec, one node
// per qsim op; trained weights and learned ranges go back into the same ops.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_LIB_TRAIN_MODULESPEC_H
#define QSIM_LIB_TRAIN_MODULESPEC_H

#include "qsim/Train/NetSpec.h"

#include "mlir/IR/BuiltinOps.h"

namespace qsim::train {

struct ModuleSpec {
  NetSpec spec;
  /// The op of each node.
  std::vector<mlir::Operation *> ops;
};

/// Reads `module`. Int8 layers of a quantized module come with their grids,
/// dequantized weights and fixed weight scales. Fails with a diagnostic
/// naming the layer for an op without a torch form or without weights.
/// `withWeights` = false reads the structure only (to write into a clone).
mlir::LogicalResult readModule(mlir::ModuleOp module, ModuleSpec &out,
                               bool withWeights = true);

/// Quantization-aware training of a float model with a precision plan:
/// copies the grids of `quantized` (the same network after --qsim-quantize)
/// onto `floatSpec`, whose weights stay float and get their scales from the
/// weights as --qsim-quantize computes them.
mlir::LogicalResult overlayQuantization(ModuleSpec &floatSpec,
                                        const ModuleSpec &quantized,
                                        bool perChannel, bool pow2);

/// Learned ranges (LSQ): one group per calibrated range --qsim-quantize
/// reads, the values an int8 route concatenates sharing the route's group.
void buildRangeGroups(NetSpec &spec, GridRule rule);

/// Writes the weights of `trained` (and its learned ranges) into the ops of
/// `target` (read from the module to update, same structure).
mlir::LogicalResult writeModule(const NetSpec &trained,
                                const ModuleSpec &target);

} // namespace qsim::train

#endif
