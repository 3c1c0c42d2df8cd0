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

#endif // QSIM_TRANSFORMS_PASSES_TD
