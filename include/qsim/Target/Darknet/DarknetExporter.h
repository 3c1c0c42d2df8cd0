//===- DarknetExporter.h - the qsim dialect to .cfg/.weights ----*- C++ -*-===//

#ifndef QSIM_TARGET_DARKNET_DARKNETEXPORTER_H
#define QSIM_TARGET_DARKNET_DARKNETEXPORTER_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"

namespace qsim::darknet {

/// Writes `module` as a Darknet cfg to `cfg` and, when `weights` is given, its
/// parameters in Darknet's file order to `weights`. Float models only.
/// Unmodified imports reproduce the original weights file byte for byte.
/// Emits a diagnostic naming the layer and fails for anything Darknet cannot
/// express (quantized layers, non-square kernels, network-input routes).
mlir::LogicalResult exportDarknet(mlir::ModuleOp module, llvm::raw_ostream &cfg,
                                  llvm::raw_ostream *weights);

} // namespace qsim::darknet

#endif
