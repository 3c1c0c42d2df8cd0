//===- RecoveryScheme.h - what a recovery pass quantizes -------*- C++ -*-===//
//
// --qsim-bias-correct and --qsim-adaround measure a layer against the int8
// model --qsim-quantize will make: the same weights=, activations= and
// scale= options, read into QuantizeOptions in one place.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_LIB_TRANSFORMS_RECOVERYSCHEME_H
#define QSIM_LIB_TRANSFORMS_RECOVERYSCHEME_H

#include "qsim/Quant/Recovery.h"

namespace qsim::quantization {

/// The quantizer's options for the pass options; log2 calibration implies
/// power-of-two scales, as --qsim-quantize decides.
inline QuantizeOptions recoveryScheme(mlir::ModuleOp module,
                                      WeightGranularity weights,
                                      ActivationScheme activations,
                                      ScaleKind scale) {
  QuantizeOptions q;
  q.perChannelWeights = weights == WeightGranularity::PerChannel;
  q.symmetricActivations = activations == ActivationScheme::Symmetric;
  q.pow2Scales = scale == ScaleKind::Pow2 || calibratedLog2(module);
  return q;
}

} // namespace qsim::quantization

#endif
