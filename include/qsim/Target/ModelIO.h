//===- ModelIO.h - load and save qsim models --------------------*- C++ -*-===//

#ifndef QSIM_TARGET_MODELIO_H
#define QSIM_TARGET_MODELIO_H

#include "qsim/Dialect/QSim/IR/Layers.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/OwningOpRef.h"

#include <optional>
#include <string>

namespace qsim {

/// The dialects every qsim tool understands: qsim, func, quant, tosa, arith,
/// tensor.
void registerQSimDialects(mlir::DialectRegistry &registry);

struct ModelLoadOptions {
  /// .mlirbc / .mlir, or a Darknet .cfg.
  std::string path;
  /// For a .cfg: its weights (empty: shape only unless randomSeed is set).
  std::string weightsPath;
  std::optional<uint64_t> randomSeed;
  /// For a .cfg: the flavour to import with; for a module: overrides the
  /// module's own `qsim.flavor` when set.
  std::optional<Flavor> flavor;
  bool allowUnknownKeys = false;
  /// For a .cfg: the import's memory limit (ImportOptions::maxMemoryMB).
  uint64_t maxMemoryMB = 4096;
};

/// True when `path` names a Darknet cfg (by extension).
bool isDarknetCfgPath(llvm::StringRef path);

/// Loads a model; diagnostics go to the context's handler. Bytecode weights
/// are referenced from the mapped input file, not copied.
mlir::OwningOpRef<mlir::ModuleOp> loadModel(mlir::MLIRContext *ctx,
                                            const ModelLoadOptions &options);

/// The network a backbone is taken from (--qsim-substitute-backbone's
/// `with=`): a .cfg with `weightsPath`, initialised from `seed` when no
/// weights are given, or a module; imported in `flavor`.
mlir::OwningOpRef<mlir::ModuleOp>
loadDonorNetwork(mlir::MLIRContext *ctx, llvm::StringRef path,
                 llvm::StringRef weightsPath, uint64_t seed, Flavor flavor);

/// Saves atomically as bytecode or text ("-" = stdout).
mlir::LogicalResult saveModel(mlir::ModuleOp module, llvm::StringRef path,
                              bool bytecode, std::string &error);

} // namespace qsim

#endif
