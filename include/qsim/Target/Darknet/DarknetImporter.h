//===- DarknetImporter.h - .cfg/.weights to the qsim dialect ----*- C++ -*-===//

#ifndef QSIM_TARGET_DARKNET_DARKNETIMPORTER_H
#define QSIM_TARGET_DARKNET_DARKNETIMPORTER_H

#include "qsim/Dialect/QSim/IR/Layers.h"
#include "mlir/IR/OwningOpRef.h"

#include <optional>
#include <string>

namespace qsim::darknet {

struct ImportOptions {
  /// Darknet .weights file; empty for a shape-only model (or random weights).
  std::string weightsPath;
  /// Deterministic synthetic weights from this seed (no weights file).
  std::optional<uint64_t> randomSeed;
  Flavor flavor = Flavor::AlexeyAB;
  /// Unknown cfg keys become warnings instead of errors.
  bool allowUnknownKeys = false;
  /// Largest layer output, and total weights, that may be imported (MB);
  /// larger models are refused before anything is allocated.
  uint64_t maxMemoryMB = kDefaultMaxMemoryMB;
  static constexpr uint64_t kDefaultMaxMemoryMB = 4096;
};

/// Imports a Darknet model. Every problem is reported through the context's
/// diagnostic handler at "cfg:line" with the layer it concerns; returns null
/// on any error (nothing half-built escapes). Real weights are referenced
/// from a read-only mapping of the file, not copied.
mlir::OwningOpRef<mlir::ModuleOp> importDarknet(mlir::MLIRContext *ctx,
                                                llvm::StringRef cfgPath,
                                                const ImportOptions &options);

/// Same from cfg text already in memory (`cfgName` names it in diagnostics).
mlir::OwningOpRef<mlir::ModuleOp>
importDarknetFromString(mlir::MLIRContext *ctx, llvm::StringRef cfgText,
                        llvm::StringRef cfgName, const ImportOptions &options);

} // namespace qsim::darknet

#endif
