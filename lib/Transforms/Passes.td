//===- Passes.td - qsim passes -----------------------------*- tablegen -*-===//
//
// Every qsim-opt pass. Options, documentation (docs/passes.md is generated
// from this file) and registration come from here.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_TRANSFORMS_PASSES_TD
#define QSIM_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def PrintStatsPass : Pass<"qsim-print-stats", "mlir::ModuleOp"> {
  let summary = "Print per-layer shapes, parameters, MACs and BFLOPs";
  let description = [{
    Prints, for every Darknet layer (in Darknet's numbering), its kind, output
    shape, parameter count, multiply-accumulates, the BFLOPs figure Darknet
    prints for it (AlexeyAB's `l.bflops`: 2·MACs for conv/connected,
    size²·C·H·W for maxpool, C·H·W·n for shortcut), precision and weight bytes
    by storage type; then the totals and Darknet's `Total BFLOPS` line. The
    IR is not modified.

    ```
    qsim-opt --qsim-print-stats model.mlirbc -o /dev/null
    ```
  }];
  let options = [
    Option<"json", "json", "bool", "false",
           "Print the statistics as JSON (as qsim-translate --export-json)">,
  ];
  let statistics = [
    Statistic<"numLayers", "layers", "Number of Darknet layers">,
    Statistic<"totalMACs", "macs", "Multiply-accumulates per forward pass">,
  ];
}

def FoldBatchNormPass : Pass<"qsim-fold-batchnorm", "mlir::ModuleOp"> {
  let summary = "Fold batch norms into the preceding convolution or connected layer";
  let description = [{
    For every `batch_normalize=1` layer (a bias-less conv2d/connected followed
    by its qsim.batchnorm), computes in double

      w'[f] = w[f] * scale[f] / sd[f]
      b'[f] = bias[f] - scale[f] * mean[f] / sd[f]

    with sd = sqrt(variance + 1e-5) (AlexeyAB) or sqrt(variance) + 1e-6
    (pjreddie) per the module's `qsim.flavor` (AlexeyAB's
    fuse_conv_batchnorm), and moves the activation onto the conv. Standalone
    [batchnorm] layers are left alone (folding them would change the
    layer count). Required before quantization.
  }];
  let statistics = [
    Statistic<"numFolded", "folded", "Batch norms folded">,
  ];
}

#endif // QSIM_TRANSFORMS_PASSES_TD
