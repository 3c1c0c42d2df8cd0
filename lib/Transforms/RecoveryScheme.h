//===- RecoveryScheme.h - what a recovery pass quantizes -------*- C++ -*-===//
//
// --qsim-bias-correct and --qsim-adaround measure a layer against the int8
// model --qsim-quantize will make: the same weights=, activations=, scale=,
// weight-bits= and weight-range= options, read into QuantizeOptions in one
// place.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_LIB_TRANSFORMS_RECOVERYSCHEME_H
#define QSIM_LIB_TRANSFORMS_RECOVERYSCHEME_H

#include "qsim/Quant/Recovery.h"
#include "qsim/Support/Diagnostics.h"

namespace qsim::quantization {

/// The quantizer's options for the pass options; log2 calibration implies
/// power-of-two scales, as --qsim-quantize decides.
inline QuantizeOptions recoveryScheme(mlir::ModuleOp module,
                                      WeightGranularity weights,
                                      ActivationScheme activations,
                                      ScaleKind scale, int weightBits,
                                      WeightRange range) {
  QuantizeOptions q;
  q.weightBits = weightBits;
  q.weightRange = range;
  q.perChannelWeights = weights == WeightGranularity::PerChannel;
  q.symmetricActivations = activations == ActivationScheme::Symmetric;
  q.pow2Scales = scale == ScaleKind::Pow2 || calibratedLog2(module);
  return q;
}

/// Reads `w8-layers=` into `q`; an error names the pass.
inline mlir::LogicalResult readWeight8Layers(mlir::ModuleOp module,
                                             llvm::StringRef pass,
                                             llvm::ArrayRef<std::string> items,
                                             QuantizeOptions &q) {
  DiagnosticPrefix prefix(module.getContext(),
                          ("--" + pass + ": w8-layers: ").str());
  return parseWeight8Layers(items, module, q.weight8Layers);
}

} // namespace qsim::quantization

#endif
