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

def CalibratePass : Pass<"qsim-calibrate", "mlir::ModuleOp"> {
  let summary = "Record activation ranges observed on sample images";
  let description = [{
    Runs the float model in the interpreter over the images (a directory or
    a comma-separated list of files), observes the network input and every
    layer's output, and records the chosen range as
    `qsim.calib = {method, min, max, lo, hi, images}` on the op producing the
    value (an argument attribute for the input). Methods:

    - `minmax`: the observed range;
    - `percentile`: clips `percentile` % tails on each side (2048-bin
      histogram);
    - `entropy`: TensorRT's KL-divergence threshold on the |x| histogram;
    - `mse`: the shrink factor of [min, max] that minimises the expected
      quantization MSE;
    - `log2`: the observed range; `--qsim-quantize` then uses power-of-two
      scales (yolo2_light).

    ```
    qsim-opt m.mlirbc --qsim-calibrate="images=calib/ max-images=100 method=entropy"
    ```
  }];
  let options = [
    Option<"images", "images", "std::string", "\"\"",
           "Directory of images or comma-separated image files">,
    Option<"maxImages", "max-images", "int", "100", "Use at most N images">,
    Option<"method", "method", "std::string", "\"minmax\"",
           "minmax | percentile | entropy | mse | log2">,
    Option<"percentile", "percentile", "double", "99.99",
           "Percentile kept by method=percentile">,
    Option<"kernels", "kernels", "std::string", "\"fast\"",
           "Interpreter kernels: fast | reference">,
    Option<"threads", "threads", "int", "0", "Threads (0 = all cores)">,
    Option<"progress", "progress", "bool", "true", "Progress bar on stderr">,
  ];
}

def AssignPrecisionPass : Pass<"qsim-assign-precision", "mlir::ModuleOp"> {
  let summary = "Choose a precision (fp32, fp16, int8) per layer";
  let description = [{
    Writes `qsim.precision` and `qsim.precision_reason` on every layer.
    Layers are Darknet indices; lists accept ranges (`3-9`). Explicit lists
    win over a plan written in the cfg (`precision=` / `quantize=` keys),
    which wins over `preset`, which wins over `default`. Presets:
    `all-int8` (every layer with an int8 form), `hybrid` (yolo2_light:
    convolutions int8 except the first, the last and those feeding a head;
    the rest fp32), `fp16` (everything but the heads). Asking int8 of a layer
    without an int8 form is an error naming it; presets keep such layers in
    fp32 with a remark.

    `auto`: mixed-precision search. Every quantizable layer's sensitivity is
    measured (SQNR of the model's final outputs with only that layer int8,
    on the calibration images, which must already be recorded by
    --qsim-calibrate), then layers are put in int8 greedily, most MACs per dB
    lost first, while the whole model's output SQNR stays above `min-sqnr`
    (and, with `labels`, its mAP@0.5 within `max-map-drop` points of fp32)
    or until `budget` (the fraction of the MACs that may stay in float) is
    reached. Prints the table of what it chose and why.

    ```
    qsim-opt m.mlirbc --qsim-assign-precision="preset=hybrid int8=7"
    qsim-opt m.mlirbc --qsim-assign-precision="auto min-sqnr=20 images=calib/"
    ```
  }];
  let options = [
    Option<"defaultPrecision", "default", "std::string", "\"fp32\"",
           "Precision of layers not otherwise planned">,
    Option<"int8Layers", "int8", "std::string", "\"\"", "Layers in int8">,
    Option<"fp16Layers", "fp16", "std::string", "\"\"", "Layers in fp16">,
    Option<"fp32Layers", "fp32", "std::string", "\"\"", "Layers in fp32">,
    Option<"preset", "preset", "std::string", "\"\"",
           "all-int8 | hybrid | fp16">,
    Option<"autoSearch", "auto", "bool", "false", "Mixed-precision search">,
    Option<"minSqnr", "min-sqnr", "double", "0",
           "auto: lowest acceptable output SQNR (dB)">,
    Option<"maxMapDrop", "max-map-drop", "double", "-1",
           "auto: largest acceptable mAP@0.5 drop (points; needs labels)">,
    Option<"budget", "budget", "double", "0",
           "auto: stop once at most this fraction of the MACs is in float">,
    Option<"images", "images", "std::string", "\"\"",
           "auto: images for the sensitivity measurements">,
    Option<"labels", "labels", "std::string", "\"\"",
           "auto: YOLO label directory for the mAP check">,
    Option<"maxImages", "max-images", "int", "16",
           "auto: images used per measurement">,
  ];
}

def QuantizePass : Pass<"qsim-quantize", "mlir::ModuleOp"> {
  let summary = "Materialize the precision plan: int8/fp16 types, weights, casts";
  let description = [{
    For every layer planned int8: !quant.uniform<i8:f32, s:zp> activations
    (from the calibrated ranges), int8 weights (symmetric, per output channel
    or per tensor, with their per-axis quant type in `weight_quant`), int32
    biases, fixed-point `multiplier`/`shift` per output channel (and
    `neg_multiplier`/`neg_shift` for leaky), requantization constants for
    routes and shortcuts. fp16 layers get f16 tensors and weights.
    quant.qcast/quant.dcast (and arith.truncf/extf) are inserted wherever
    precisions meet; the function keeps f32 inputs and outputs. Needs folded
    batch norms and calibrated ranges. docs/quantization.md has the exact
    arithmetic.
  }];
  let options = [
    Option<"weights", "weights", "std::string", "\"per-channel\"",
           "per-channel | per-tensor">,
    Option<"activations", "activations", "std::string", "\"asymmetric\"",
           "asymmetric | symmetric">,
    Option<"scale", "scale", "std::string", "\"float\"", "float | pow2">,
    Option<"accumulator", "accumulator", "std::string", "\"int32\"",
           "int32 | int16 (saturating, simulated)">,
    Option<"rounding", "rounding", "std::string", "\"tflite\"",
           "tflite | tosa-double">,
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::quant::QuantizationDialect"];
}

#endif // QSIM_TRANSFORMS_PASSES_TD
