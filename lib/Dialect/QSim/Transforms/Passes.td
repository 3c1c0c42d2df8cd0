//===- Passes.td - the qsim dialect's own passes -----------*- tablegen -*-===//
//
// Passes that only need the dialect: everything that lowers or runs a model
// (the code generator as well as the interpreter-driven passes in
// lib/Transforms) may use them without linking more than the dialect.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_DIALECT_QSIM_TRANSFORMS_PASSES_TD
#define QSIM_DIALECT_QSIM_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def FoldBatchNormPass : Pass<"qsim-fold-batchnorm", "mlir::ModuleOp"> {
  let summary = "Fold batch norms into the preceding convolution or connected layer";
  let description = [{
    For every `batch_normalize=1` layer (a bias-less conv2d/connected followed
    by its qsim.batchnorm), computes in double

      w'[f] = w[f] * scale[f] / sd[f]
      b'[f] = bias[f] - scale[f] * mean[f] / sd[f]

    with sd = sqrt(variance + 1e-5) (AlexeyAB) or sqrt(variance) + 1e-6
    (pjreddie) per the module's `qsim.flavor` (AlexeyAB's
    fuse_conv_batchnorm), and moves the activation onto the conv. The batch
    norm's output distribution stays on the conv as `qsim.bn_stats =
    {mean = beta, std = |gamma|}` (per channel) for
    `--qsim-bias-correct=mode=analytic`. Standalone
    [batchnorm] layers are left alone (folding them would change the
    layer count). Required before quantization.
  }];
  let statistics = [
    Statistic<"numFolded", "folded", "Batch norms folded">,
  ];
}

#endif // QSIM_DIALECT_QSIM_TRANSFORMS_PASSES_TD
