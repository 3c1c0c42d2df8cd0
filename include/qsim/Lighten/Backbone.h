//===- Backbone.h - backbone substitution -----------------------*- C++ -*-===//

#ifndef QSIM_LIGHTEN_BACKBONE_H
#define QSIM_LIGHTEN_BACKBONE_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"

#include <optional>
#include <string>

namespace qsim::lighten {

struct BackboneOptions {
  std::string otherCfg, otherWeights;  // weights empty: initialised (seed)
  int64_t cutFirst = 0, cutLast = 0;   // this model's layers to replace
  int64_t takeFirst = 0, takeLast = 0; // the other network's layers
  uint64_t seed = 1;
  bool warnInt8 = true; // warn about taken op kinds without an int8 form
};

/// Fills `o` from the pass options (`with=OTHER.cfg` or
/// `with=OTHER.cfg,weights=W`, `weights=`, `cut=A:B`, `take=A:B`); false with
/// `error` when something is missing or malformed.
bool parseBackboneOptions(llvm::StringRef with, llvm::StringRef weights,
                          llvm::StringRef cut, llvm::StringRef take,
                          BackboneOptions &o, std::string &error);

/// Replaces layers [cutFirst, cutLast] of `module` by layers
/// [takeFirst, takeLast] of `donor`, another network in the same flavour
/// (imported by the caller: `loadDonorNetwork` in qsim/Target/ModelIO.h). Adapters (max pooling
/// or upsampling for the spatial size, a 1x1 convolution for the channels)
/// are inserted where the shapes differ at the cut points; every later
/// reference to a removed layer is remapped (to the block output, or to the
/// last new layer of the same spatial size). Prints a summary to `report`.
mlir::LogicalResult substituteBackbone(mlir::ModuleOp module,
                                       mlir::ModuleOp donor,
                                       const BackboneOptions &options,
                                       llvm::raw_ostream *report);

} // namespace qsim::lighten

#endif
