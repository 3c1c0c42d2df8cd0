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

def PrunePass : Pass<"qsim-prune", "mlir::ModuleOp"> {
  let summary = "Structured channel pruning or unstructured magnitude pruning";
  let description = [{
    `mode=channel`: removes whole channels. A channel-coupling analysis
    (docs/lightening.md) decides which channels must go together: a
    shortcut ties its operands, a depthwise conv ties its input and output,
    a route concatenates (offsets) or slices (`groups`: channel i of every
    group goes together), scale_channels ties scales to features; the
    network input, model outputs and the inputs of yolo/region/softmax/
    reorg layers are kept. In every coupled set of convolutions, `ratio` of
    the channel classes with the lowest `criterion` (`l1`/`l2` norm of the
    filters, summed over the coupled filters, or `bn-gamma`, the batch-norm
    scale) are removed, keeping a multiple of `round-to`. Filters go from
    the producers, input channels from every consumer (convolutions,
    connected layers, batch norms), shapes are recomputed. `layers=`
    restricts which layers' filters may go. The pruned model exports to a
    Darknet cfg/weights pair.

    `mode=magnitude`: zeros the `sparsity` fraction of smallest-magnitude
    weights of each convolutional/connected layer (`layers=` to choose);
    `--qsim-print-stats` then shows the sparsity and the size of a sparse
    encoding.

    A report (per layer filters before/after, MACs and parameters) goes to
    stderr.
  }];
  let options = [
    Option<"mode", "mode", "std::string", "\"channel\"", "channel | magnitude">,
    Option<"ratio", "ratio", "double", "0.3", "channel: fraction of channels to remove">,
    Option<"criterion", "criterion", "std::string", "\"l1\"", "channel: l1 | l2 | bn-gamma">,
    Option<"layers", "layers", "std::string", "\"\"", "Layers to prune (indices, ranges); all when empty">,
    Option<"roundTo", "round-to", "int", "8", "channel: keep a multiple of this many channels">,
    Option<"sparsity", "sparsity", "double", "0.5", "magnitude: fraction of weights zeroed">,
    Option<"report", "report", "bool", "true", "Print the pruning report to stderr">,
  ];
}

def FactorizeConvPass : Pass<"qsim-factorize-conv", "mlir::ModuleOp"> {
  let summary = "Replace convolutions by cheaper chains of convolutions";
  let description = [{
    Weight-preserving factorizations of `[convolutional]` layers
    (docs/lightening.md has the mathematics):

    - `tucker2`: k×k → 1×1 (C→r1) → k×k (r1→r2) → 1×1 (r2→F), HOSVD on
      the channel modes; exact at r1 = C, r2 = F (a projection that keeps
      every channel is folded into the core).
    - `spatial-svd`: k×k → k×1 (C→r) → 1×k (r→F), SVD of the (C·k)×(F·k)
      reshaping; exact at full rank. Not expressible in a Darknet cfg.
    - `depthwise-separable`: depthwise k×k + pointwise 1×1, the best
      rank-1 fit per input channel (least squares): approximate.
    - `kernel`: 5×5 → two 3×3 (7×7 → three), alternating least squares;
      approximate, needs fine-tuning.

    Ranks come from `rank=` (tucker2 `rank=R1:R2` or one value for both
    sides; kernel: channels between the stages) or from `energy=` (the
    share of squared singular values kept). `layers=` picks layers, `top=N`
    the N heaviest eligible convolutions, `min-macs=` skips small ones; a
    layer whose ranks would not save MACs is left alone. The last stage
    takes over the bias, activation and batch norm.

    The report (stderr) gives per layer the MACs before/after, the relative
    Frobenius error of the composed kernel and, with `images=`, the relative
    error of the layer's output on those images (the replacement fed the
    original layer's input) and the model output SQNR.

    ```
    qsim-opt m.mlirbc --qsim-factorize-conv="method=tucker2 top=3 energy=0.9 images=data/"
    ```
  }];
  let options = [
    Option<"method", "method", "std::string", "\"tucker2\"",
           "tucker2 | spatial-svd | depthwise-separable | kernel">,
    Option<"layers", "layers", "std::string", "\"\"",
           "Layers to factorize (indices, ranges); all eligible when empty">,
    Option<"top", "top", "int", "0", "Only the N heaviest eligible convolutions">,
    Option<"rank", "rank", "std::string", "\"\"",
           "R or R1:R2 (tucker2); channels between stages (kernel)">,
    Option<"energy", "energy", "double", "0.9",
           "Share of squared singular values kept when no rank is given">,
    Option<"minMacs", "min-macs", "int64_t", "0", "Skip convolutions with fewer MACs">,
    Option<"force", "force", "bool", "false",
           "Factorize even when the ranks save no MACs">,
    Option<"images", "images", "std::string", "\"\"",
           "Images (directory or comma-separated files) for output errors">,
    Option<"maxImages", "max-images", "int", "4", "Use at most N images">,
    Option<"report", "report", "bool", "true", "Print the report to stderr">,
  ];
}

def LightenPass : Pass<"qsim-lighten", "mlir::ModuleOp"> {
  let summary = "The lightening guideline as one pipeline, with a measured table";
  let description = [{
    Applies the embedded-systems guideline in order, measuring after every
    step and stopping as soon as the targets are met:

    - G1 backbone substitution (only with `with=`, `cut=`, `take=`; see
      --qsim-substitute-backbone),
    - G2 factorization of the `factorize-top` heaviest convolutions
      (`factorize-method`, `energy`; the energy is raised towards 1 while the
      output fidelity is not met),
    - G5 channel pruning, when `target-params` is not met (the smallest
      ratio that meets it, backed off while the fidelity is not met),
    - G3 post-training int8 (calibrated on `calib=`; a mixed-precision search
      when all-int8 misses the fidelity bound),
    - G4 fp16 for what int8 left in float (everything when G3 was rejected).

    Targets: `target-macs`, `target-params` (counts: 300M, 1.5G, 2e6, or a
    percentage of the original like 50%), `target-size` (weight bytes: 2M,
    900K, 50%) and `target-latency` (ms, measured here). Without any target
    every step runs. Fidelity: `min-sqnr` (dB, model outputs against the
    original's on the first `fidelity-images` calibration images),
    `max-sqnr-drop` (dB below the SQNR the original reaches in fp16, its
    numerically transparent deployment), `max-map-drop` (points, with
    `eval=DIR` of images and YOLO labels). A step that breaks a fidelity
    bound is rolled back and reported.

    The table (stderr) gives per step the output SQNR, mAP (with `eval=`),
    MACs, parameters, weight size and the measured latency (median of
    `latency-runs` forward passes). The module becomes the last accepted
    model.

    ```
    qsim-opt yolov3-tiny.mlirbc --qsim-lighten="target-macs=50% target-size=1M min-sqnr=10 calib=images/ eval=capp/" -o light.mlirbc
    ```
  }];
  let options = [
    Option<"targetMacs", "target-macs", "std::string", "\"\"", "MACs to reach (300M, 50%)">,
    Option<"targetParams", "target-params", "std::string", "\"\"",
           "Parameters to reach (prunes when not met)">,
    Option<"targetSize", "target-size", "std::string", "\"\"", "Weight bytes to reach (2M, 25%)">,
    Option<"targetLatency", "target-latency", "double", "0", "Milliseconds to reach">,
    Option<"minSqnr", "min-sqnr", "double", "0", "Lowest output SQNR accepted (dB)">,
    Option<"maxSqnrDrop", "max-sqnr-drop", "double", "-1",
           "Largest SQNR drop below the original's fp16 SQNR (dB)">,
    Option<"maxMapDrop", "max-map-drop", "double", "-1",
           "Largest mAP drop in points (needs eval=)">,
    Option<"calib", "calib", "std::string", "\"\"",
           "Calibration images (also used for the SQNR)">,
    Option<"calibImages", "calib-images", "int", "100", "Calibrate on at most N images">,
    Option<"fidelityImages", "fidelity-images", "int", "8",
           "Images for the output SQNR">,
    Option<"eval", "eval", "std::string", "\"\"",
           "Images with YOLO labels (same directory) for mAP">,
    Option<"evalImages", "eval-images", "int", "0", "Evaluate on at most N images (0: all)">,
    Option<"with", "with", "std::string", "\"\"", "G1: network to take a backbone from">,
    Option<"weights", "weights", "std::string", "\"\"", "G1: its weights">,
    Option<"cut", "cut", "std::string", "\"\"", "G1: FIRST:LAST layers of this model">,
    Option<"take", "take", "std::string", "\"\"", "G1: FIRST:LAST layers of the other">,
    Option<"factorizeMethod", "factorize-method", "std::string", "\"tucker2\"",
           "G2: method of --qsim-factorize-conv">,
    Option<"factorizeTop", "factorize-top", "int", "3", "G2: heaviest convolutions to factorize">,
    Option<"energy", "energy", "double", "0.9", "G2: starting energy">,
    Option<"maxPruneRatio", "max-prune-ratio", "double", "0.5", "G5: largest ratio tried">,
    Option<"roundTo", "round-to", "int", "8", "G5: channel multiple">,
    Option<"calibMethod", "calib-method", "std::string", "\"minmax\"", "G3: calibration method">,
    Option<"latencyRuns", "latency-runs", "int", "10", "Forward passes per latency measurement">,
    Option<"threads", "threads", "int", "0", "Threads for the measurements (0 = all cores)">,
  ];
  // G3/G4 quantize (casts and quantized types).
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::quant::QuantizationDialect"];
}

def SubstituteBackbonePass : Pass<"qsim-substitute-backbone", "mlir::ModuleOp"> {
  let summary = "Replace a range of layers by layers of another Darknet network";
  let description = [{
    Replaces layers `cut=FIRST:LAST` of this model by layers
    `take=FIRST:LAST` of the network `with=OTHER.cfg` (with its trained
    weights when `weights=OTHER.weights`, or `with=OTHER.cfg,weights=W`;
    otherwise initialised from `seed`). Where shapes differ at the cut
    points, adapters are inserted: max pooling or nearest upsampling for the
    spatial size, a 1x1 convolution (leaky, initialised) for the channels.
    Every later reference to a removed layer is remapped: references to the
    last cut layer take the new block's output, taps into the middle of the
    old backbone take the last new layer of the same spatial size. Layers
    that have no int8 form are listed (warnings) as they would stay in float
    on an int8 target. A summary goes to stderr; when anything is
    initialised it says that the model needs training.

    ```
    qsim-opt yolov3-tiny.mlirbc --qsim-substitute-backbone="with=Nano.cfg,weights=Nano.weights cut=0:12 take=0:57"
    ```
  }];
  let options = [
    Option<"with", "with", "std::string", "\"\"",
           "Darknet cfg of the network to take layers from (optionally ,weights=W)">,
    Option<"weights", "weights", "std::string", "\"\"", "Its weights">,
    Option<"cut", "cut", "std::string", "\"\"", "FIRST:LAST layers of this model">,
    Option<"take", "take", "std::string", "\"\"", "FIRST:LAST layers of the other">,
    Option<"seed", "seed", "unsigned", "1", "Initialisation seed (no weights, adapters)">,
    Option<"report", "report", "bool", "true", "Print a summary to stderr">,
  ];
}

#endif // QSIM_TRANSFORMS_PASSES_TD
