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

    Sharded (docs/scale-out.md): `shard=K/N stats-out=F` observes every
    N-th image and writes mergeable statistics; `stats-in=F1,F2,...`
    merges them into exactly the single run's ranges (histogram methods
    take a ranges stage, then a histograms stage on the merged ranges).
  }];
  let options = [
    ListOption<"images", "images", "std::string",
               "Directories of images or image files (comma-separated)">,
    Option<"maxImages", "max-images", "int", "100", "Use at most N images">,
    Option<"method", "method", "::qsim::quantization::CalibrationMethod",
           "::qsim::quantization::CalibrationMethod::MinMax",
           "How the range is chosen from the observations",
           [{::llvm::cl::values(
             clEnumValN(::qsim::quantization::CalibrationMethod::MinMax,
                        "minmax", "the observed range"),
             clEnumValN(::qsim::quantization::CalibrationMethod::Percentile,
                        "percentile", "clip `percentile` % tails"),
             clEnumValN(::qsim::quantization::CalibrationMethod::Entropy,
                        "entropy", "TensorRT's KL-divergence threshold"),
             clEnumValN(::qsim::quantization::CalibrationMethod::MSE,
                        "mse", "least expected quantization MSE"),
             clEnumValN(::qsim::quantization::CalibrationMethod::Log2,
                        "log2", "observed range, power-of-two scales"))}]>,
    Option<"percentile", "percentile", "double", "99.99",
           "Percentile kept by method=percentile">,
    Option<"kernels", "kernels", "::qsim::interp::KernelSet",
           "::qsim::interp::KernelSet::Fast", "Interpreter kernels",
           [{::llvm::cl::values(
             clEnumValN(::qsim::interp::KernelSet::Fast, "fast", "oneDNN"),
             clEnumValN(::qsim::interp::KernelSet::Reference, "reference",
                        "plain loops (the specification)"))}]>,
    Option<"threads", "threads", "int", "0", "Threads (0 = all cores)">,
    Option<"progress", "progress", "bool", "true", "Progress bar on stderr">,
    Option<"shard", "shard", "std::string", "\"\"",
           "K/N: observe every N-th image from K (needs stats-out)">,
    Option<"statsOut", "stats-out", "std::string", "\"\"",
           "Write this shard's statistics here; the model is left as it is">,
    ListOption<"statsIn", "stats-in", "std::string",
               "Merged statistics of every shard (comma-separated): ranges "
               "before a histogram stage, or the last stage to record">,
  ];
}

def AssignPrecisionPass : Pass<"qsim-assign-precision", "mlir::ModuleOp"> {
  let summary = "Choose a precision (fp32, fp16, bf16, int8, w8a16) per layer";
  let description = [{
    Writes `qsim.precision` and `qsim.precision_reason` on every layer.
    Layers are Darknet indices; lists accept ranges (`3-9`). Explicit lists
    win over a plan written in the cfg (`precision=` / `quantize=` keys),
    which wins over `preset`, which wins over `default`. Presets:
    `all-int8` (every layer with an int8 form), `hybrid` (yolo2_light:
    convolutions int8 except the first, the last and those feeding a head;
    the rest fp32), `fp16` and `bf16` (everything but the heads). Asking int8 of a layer
    without an int8 form is an error naming it; presets keep such layers in
    fp32 with a remark.

    `w8a16=LIST` plans int8 weights with int16 activations (what
    --qsim-quantize's int16-layers does) for layers with a W8A16 form.

    `auto`: mixed-precision search. Every quantizable layer's sensitivity is
    measured (SQNR of the model's final outputs with only that layer in its
    fastest form, on the calibration images, which must already be recorded
    by --qsim-calibrate), then, most MACs per dB lost first, each layer
    takes the fastest of `precisions` (int8, then w8a16, then bf16, then
    fp16; bf16 only when asked for) with
    which the whole model's output SQNR stays above `min-sqnr` (and, with
    `labels`, its mAP@0.5 within `max-map-drop` points of fp32), else stays
    fp32, until `budget` (the fraction of the MACs that may stay in float)
    is reached. Then the greedy plan and its alternatives (each w8a16/fp16/bf16
    layer back in fp32, and all of them) that still meet the bounds are
    compared: by forward time in the interpreter (median of `time-runs`
    interleaved runs on one image; another plan must be 3 % faster to
    replace the greedy one), or by `costs` (per MAC, per precision); the
    cheapest is kept. Prints the table of what each layer got and why it
    was kept higher, and the candidate plans' times. With `eval-shards=N
    eval-workdir=DIR` every mAP check runs as N sharded qsim-run processes
    (`eval-executor=slurm`: one Slurm job array per candidate) whose merged
    mAP equals the in-process one, so the decisions are the same
    (docs/scale-out.md).

    ```
    qsim-opt m.mlirbc --qsim-assign-precision="preset=hybrid int8=7"
    qsim-opt m.mlirbc --qsim-assign-precision="auto min-sqnr=20 images=calib/"
    qsim-opt m.mlirbc --qsim-assign-precision="auto min-sqnr=30 images=calib/ costs=int8:1,w8a16:2,fp16:2,fp32:4"
    ```
  }];
  let options = [
    Option<"defaultPrecision", "default", "::qsim::Precision",
           "::qsim::Precision::FP32",
           "Precision of layers not otherwise planned",
           [{::llvm::cl::values(
             clEnumValN(::qsim::Precision::FP32, "fp32", "float"),
             clEnumValN(::qsim::Precision::FP16, "fp16", "IEEE half"),
             clEnumValN(::qsim::Precision::BF16, "bf16", "bfloat16"),
             clEnumValN(::qsim::Precision::Int8, "int8", "affine int8"))}]>,
    ListOption<"int8Layers", "int8", "std::string",
               "Layers in int8 (indices, ranges 3-9, topN)">,
    ListOption<"w8a16Layers", "w8a16", "std::string",
               "Layers in W8A16 (int8 weights, int16 activations)">,
    ListOption<"fp16Layers", "fp16", "std::string", "Layers in fp16">,
    ListOption<"bf16Layers", "bf16", "std::string", "Layers in bf16">,
    ListOption<"fp32Layers", "fp32", "std::string", "Layers in fp32">,
    Option<"preset", "preset", "::qsim::quantization::PrecisionPreset",
           "::qsim::quantization::PrecisionPreset::None",
           "A plan for every layer",
           [{::llvm::cl::values(
             clEnumValN(::qsim::quantization::PrecisionPreset::None, "none",
                        "no preset"),
             clEnumValN(::qsim::quantization::PrecisionPreset::AllInt8,
                        "all-int8", "every layer with an int8 form"),
             clEnumValN(::qsim::quantization::PrecisionPreset::Hybrid,
                        "hybrid", "yolo2_light's int8 convolutions"),
             clEnumValN(::qsim::quantization::PrecisionPreset::FP16, "fp16",
                        "everything but the heads"),
             clEnumValN(::qsim::quantization::PrecisionPreset::BF16, "bf16",
                        "everything but the heads, in bfloat16"))}]>,
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
    ListOption<"searchPrecisions", "precisions", "std::string",
               "auto: precisions a layer may get besides fp32, tried fastest "
               "first (int8, w8a16, bf16, fp16; default int8, w8a16, fp16)">,
    ListOption<"costs", "costs", "std::string",
               "auto: compare the candidate plans by this cost per MAC "
               "(precision:cost, e.g. int8:1,w8a16:2,fp16:3,fp32:4) instead "
               "of timing them">,
    Option<"timeRuns", "time-runs", "int", "5",
           "auto: forward runs per candidate plan when timing (median)">,
    Option<"evalShards", "eval-shards", "int", "0",
           "auto: evaluate each candidate's mAP by N sharded qsim-run "
           "processes (0: in this process)">,
    Option<"evalExecutor", "eval-executor", "std::string", "\"local\"",
           "auto: where the shards run: local or slurm">,
    Option<"evalWorkdir", "eval-workdir", "std::string", "\"\"",
           "auto: the shards' work directory (shared by the nodes)">,
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

    `weight-bits=N` (2..8) puts the weights on the symmetric grid
    [-(2^(N-1)-1), 2^(N-1)-1] (scale max|w| / (2^(N-1)-1)), stored in i8;
    the interpreter runs them exactly with the int8 kernels.
    `activation-bits=16` gives every int8-planned convolutional, connected,
    maxpool, upsample and dropout layer int16 activations (W8A16, as
    TFLite's 16x8: symmetric, zero point 0, 64-bit accumulation, reference
    kernels); `int16-layers=LIST` does so for the chosen layers only. For
    study only: `--qsim-lower-to-tosa` and `qsim-compile` refuse layers
    narrower than 8 bits and int16 activations.
  }];
  let options = [
    Option<"weights", "weights", "::qsim::quantization::WeightGranularity",
           "::qsim::quantization::WeightGranularity::PerChannel",
           "Weight scales",
           [{::llvm::cl::values(
             clEnumValN(::qsim::quantization::WeightGranularity::PerChannel,
                        "per-channel", "one scale per output channel"),
             clEnumValN(::qsim::quantization::WeightGranularity::PerTensor,
                        "per-tensor", "one scale per layer"))}]>,
    Option<"activations", "activations",
           "::qsim::quantization::ActivationScheme",
           "::qsim::quantization::ActivationScheme::Asymmetric",
           "Activation zero points",
           [{::llvm::cl::values(
             clEnumValN(::qsim::quantization::ActivationScheme::Asymmetric,
                        "asymmetric", "zero point from the range"),
             clEnumValN(::qsim::quantization::ActivationScheme::Symmetric,
                        "symmetric", "zero point 0"))}]>,
    Option<"scale", "scale", "::qsim::quantization::ScaleKind",
           "::qsim::quantization::ScaleKind::Float", "Scale values",
           [{::llvm::cl::values(
             clEnumValN(::qsim::quantization::ScaleKind::Float, "float",
                        "any positive scale"),
             clEnumValN(::qsim::quantization::ScaleKind::Pow2, "pow2",
                        "powers of two (yolo2_light)"))}]>,
    Option<"accumulator", "accumulator",
           "::qsim::quantization::AccumulatorWidth",
           "::qsim::quantization::AccumulatorWidth::Int32",
           "Convolution accumulator",
           [{::llvm::cl::values(
             clEnumValN(::qsim::quantization::AccumulatorWidth::Int32,
                        "int32", "32-bit"),
             clEnumValN(::qsim::quantization::AccumulatorWidth::Int16,
                        "int16", "16-bit, saturating (simulated)"))}]>,
    Option<"weightBits", "weight-bits", "int", "8",
           "Weight width, 2..8 (stored in i8 with the narrower range; "
           "code generation keeps 8)">,
    ListOption<"weight8Layers", "w8-layers", "std::string",
               "Layers whose weights stay 8-bit under weight-bits < 8: "
               "indices, ranges 3-9, topN, first (the first "
               "convolutional/connected layer), last (the heads)">,
    Option<"weightRange", "weight-range", "::qsim::quantization::WeightRange",
           "::qsim::quantization::WeightRange::Max",
           "Weight range per scale block",
           [{::llvm::cl::values(
             clEnumValN(::qsim::quantization::WeightRange::Max, "max",
                        "the largest |w|"),
             clEnumValN(::qsim::quantization::WeightRange::Mse, "mse",
                        "the clipped range with the least squared rounding "
                        "error"))}]>,
    Option<"activationBits", "activation-bits", "int", "8",
           "8, or 16: int16 activations (W8A16) for every int8-planned "
           "layer that has that form">,
    ListOption<"int16Layers", "int16-layers", "std::string",
               "int8-planned layers given int16 activations (W8A16): "
               "indices, ranges 3-9, topN">,
    Option<"rounding", "rounding", "::qsim::rt::Rounding",
           "::qsim::rt::Rounding::TFLite", "Requantization rounding",
           [{::llvm::cl::values(
             clEnumValN(::qsim::rt::Rounding::TFLite, "tflite",
                        "gemmlowp/TFLite doubling high multiply"),
             clEnumValN(::qsim::rt::Rounding::TosaDouble, "tosa-double",
                        "TOSA rescale with double_round"))}]>,
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::quant::QuantizationDialect"];
}

def EqualizePass : Pass<"qsim-equalize", "mlir::ModuleOp"> {
  let summary = "Cross-layer equalization of consecutive convolutions";
  let description = [{
    Cross-layer equalization (Nagel et al. 2019): a convolution whose
    activation is positively homogeneous (linear, relu, leaky) computes the
    same function when its output channel c is divided by s_c and every
    weight reading channel c further down is multiplied by s_c. The channel
    may pass through max pooling, upsampling, dropout and concatenating
    routes to the convolutions that read it (all of them are scaled).
    s_c = sqrt(r1/r2), with r1 the channel's weight range in the producer
    and r2 the range of the weights reading it, gives both the same range;
    pairs are swept until the scales settle. The float model's outputs are
    unchanged (up to float rounding); per-tensor int8 weights then lose much
    less precision (depthwise-heavy models gain most).

    A convolution is left alone, with a remark naming it and the reason,
    when its activation is not positively homogeneous (relu6, mish, swish,
    logistic, ...) or when its channels reach a shortcut, a head, a model
    output or any other layer that ties them to other layers' channels.
    Needs folded batch norms; run it before `--qsim-calibrate`.

    ```
    qsim-opt m.mlirbc --qsim-fold-batchnorm --qsim-equalize \
      --qsim-calibrate=images=calib/ --qsim-assign-precision=preset=all-int8 \
      --qsim-quantize=weights=per-tensor -o m-int8.mlirbc
    ```
  }];
  let options = [
    Option<"maxSweeps", "max-sweeps", "int", "50",
           "Sweeps over all pairs at most">,
    Option<"progress", "progress", "bool", "true", "Progress bar on stderr">,
    Option<"report", "report", "bool", "true",
           "Print the equalized layers to stderr">,
  ];
}

def BiasCorrectPass : Pass<"qsim-bias-correct", "mlir::ModuleOp"> {
  let summary = "Shift int8 layers' biases by the mean error quantization introduces";
  let description = [{
    Empirical bias correction (Nagel et al. 2019): quantizing weights and
    activations shifts the mean of every layer's output, and the shifts add
    up through the network. For every conv2d/connected layer planned int8,
    in program order, the float bias becomes
    `b + W·E[x_float] - W~·E[x_int8]` per output channel: `E[x]` is the mean
    input patch on the images, in the float model and in the quantized
    model whose earlier layers are already corrected (so every layer also
    undoes what reaches it from above), `W~` the weights as
    `--qsim-quantize` rounds them. Run it after `--qsim-calibrate` and
    `--qsim-assign-precision`, right before `--qsim-quantize`, with the same
    `weights=`/`activations=`/`scale=` options. Use images other than the
    ones you evaluate on. A table of the shifts goes to stderr.

    ```
    qsim-opt m.mlirbc --qsim-fold-batchnorm --qsim-calibrate=images=calib/ \
      --qsim-assign-precision=preset=all-int8 \
      --qsim-bias-correct="images=calib/ weights=per-tensor" \
      --qsim-quantize=weights=per-tensor -o m-int8.mlirbc
    ```

    `mode=analytic` needs no images (AIMET's analytic bias correction):
    where a layer's input comes from a batch norm that
    `--qsim-fold-batchnorm` kept the statistics of (`qsim.bn_stats`),
    directly or through upsample, a 1x1 maxpool or a route of such layers,
    `E[x]` per input channel is the mean of the activation (linear, relu,
    relu6, leaky) applied to N(beta, gamma^2), and the bias becomes
    `b - (W~ - W)·E[x]` (zero padding ignored). It corrects the weights'
    rounding only; the other layers keep their biases and the report says
    why (a remark for an activation without a closed-form mean).
  }];
  let options = [
    Option<"mode", "mode", "::qsim::quantization::BiasCorrectionMode",
           "::qsim::quantization::BiasCorrectionMode::Empirical",
           "Where the mean inputs come from",
           [{::llvm::cl::values(
             clEnumValN(::qsim::quantization::BiasCorrectionMode::Empirical,
                        "empirical", "calibration images (images=)"),
             clEnumValN(::qsim::quantization::BiasCorrectionMode::Analytic,
                        "analytic", "batch-norm statistics, no images"))}]>,
    ListOption<"images", "images", "std::string",
               "Directories of images or image files (comma-separated)">,
    Option<"maxImages", "max-images", "int", "32", "Use at most N images">,
    Option<"weights", "weights", "::qsim::quantization::WeightGranularity",
           "::qsim::quantization::WeightGranularity::PerChannel",
           "Weight scales (as --qsim-quantize will use)",
           [{::llvm::cl::values(
             clEnumValN(::qsim::quantization::WeightGranularity::PerChannel,
                        "per-channel", "one scale per output channel"),
             clEnumValN(::qsim::quantization::WeightGranularity::PerTensor,
                        "per-tensor", "one scale per layer"))}]>,
    Option<"scale", "scale", "::qsim::quantization::ScaleKind",
           "::qsim::quantization::ScaleKind::Float",
           "Weight scale values (as --qsim-quantize will use)",
           [{::llvm::cl::values(
             clEnumValN(::qsim::quantization::ScaleKind::Float, "float",
                        "any positive scale"),
             clEnumValN(::qsim::quantization::ScaleKind::Pow2, "pow2",
                        "powers of two (yolo2_light)"))}]>,
    Option<"activations", "activations",
           "::qsim::quantization::ActivationScheme",
           "::qsim::quantization::ActivationScheme::Asymmetric",
           "Activation zero points (as --qsim-quantize will use)",
           [{::llvm::cl::values(
             clEnumValN(::qsim::quantization::ActivationScheme::Asymmetric,
                        "asymmetric", "zero point from the range"),
             clEnumValN(::qsim::quantization::ActivationScheme::Symmetric,
                        "symmetric", "zero point 0"))}]>,
    Option<"weightBits", "weight-bits", "int", "8",
           "Weight width, 2..8 (as --qsim-quantize will use)">,
    ListOption<"weight8Layers", "w8-layers", "std::string",
               "Layers whose weights stay 8-bit under weight-bits < 8 (as --qsim-quantize will use): "
               "indices, ranges 3-9, topN, first (the first "
               "convolutional/connected layer), last (the heads)">,
    Option<"weightRange", "weight-range", "::qsim::quantization::WeightRange",
           "::qsim::quantization::WeightRange::Max",
           "Weight range per scale block (as --qsim-quantize will use)",
           [{::llvm::cl::values(
             clEnumValN(::qsim::quantization::WeightRange::Max, "max",
                        "the largest |w|"),
             clEnumValN(::qsim::quantization::WeightRange::Mse, "mse",
                        "the clipped range with the least squared rounding "
                        "error"))}]>,
    Option<"threads", "threads", "int", "0", "Threads (0 = all cores)">,
    Option<"progress", "progress", "bool", "true", "Progress bar on stderr">,
    Option<"report", "report", "bool", "true", "Print the shifts to stderr">,
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::quant::QuantizationDialect"];
}

def AdaRoundPass : Pass<"qsim-adaround", "mlir::ModuleOp"> {
  let summary = "Learn the rounding (up or down) of every int8 weight";
  let description = [{
    AdaRound (Nagel et al. 2020): for every conv2d/connected layer planned
    int8, in program order, chooses for each weight whether it rounds up or
    down so that the layer's output on the images changes least: with the
    Gram matrix H = X^T X of `samples` input patches (the layer's inputs in
    the quantized model whose earlier layers are already rounded), it
    minimises (q - w/s)^T s^2 H (q - w/s) per output channel, relaxing the
    choice to a rectified sigmoid (zeta 1.1, gamma -0.1) with the annealed
    regulariser (beta 20 to 2 after a 20 % warm-up, weight
    `regularization`), by Adam on the logits (`iterations`,
    `learning-rate`). An output channel keeps nearest rounding when the
    learned one is not better. The float weights become q * s, which
    `--qsim-quantize` with the same `weights=`/`scale=`/`weight-bits=`/
    `weight-range=` stores as exactly q.

    `target=float` (default; AdaRound's asymmetric reconstruction) fits
    the rounded layer on its quantized input to the original float
    model's output on the same images and positions, so that it also
    makes up for the error reaching it from above; `target=quantized` fits
    it to its own float weights on the quantized input. `bias-correct`
    also sets each layer's bias so that its mean output is the target's
    (empirical bias correction in the same sweep; the rounding then
    minimises the error's variance). A later `--qsim-bias-correct` sees the
    rounded weights as the float ones (it corrects only what the
    activations' quantization shifts); prefer `bias-correct` here.
    Run it after `--qsim-calibrate` and `--qsim-assign-precision`.
    Use images other than the ones you evaluate on.

    ```
    qsim-opt m.mlirbc --qsim-fold-batchnorm --qsim-calibrate=images=calib/ \
      --qsim-assign-precision=preset=all-int8 \
      --qsim-adaround="images=calib/ max-images=64" --qsim-quantize -o q.mlirbc
    ```
  }];
  let options = [
    ListOption<"images", "images", "std::string",
               "Directories of images or image files (comma-separated)">,
    Option<"maxImages", "max-images", "int", "32", "Use at most N images">,
    Option<"weights", "weights", "::qsim::quantization::WeightGranularity",
           "::qsim::quantization::WeightGranularity::PerChannel",
           "Weight scales (as --qsim-quantize will use)",
           [{::llvm::cl::values(
             clEnumValN(::qsim::quantization::WeightGranularity::PerChannel,
                        "per-channel", "one scale per output channel"),
             clEnumValN(::qsim::quantization::WeightGranularity::PerTensor,
                        "per-tensor", "one scale per layer"))}]>,
    Option<"scale", "scale", "::qsim::quantization::ScaleKind",
           "::qsim::quantization::ScaleKind::Float",
           "Weight scale values (as --qsim-quantize will use)",
           [{::llvm::cl::values(
             clEnumValN(::qsim::quantization::ScaleKind::Float, "float",
                        "any positive scale"),
             clEnumValN(::qsim::quantization::ScaleKind::Pow2, "pow2",
                        "powers of two (yolo2_light)"))}]>,
    Option<"activations", "activations",
           "::qsim::quantization::ActivationScheme",
           "::qsim::quantization::ActivationScheme::Asymmetric",
           "Activation zero points (as --qsim-quantize will use)",
           [{::llvm::cl::values(
             clEnumValN(::qsim::quantization::ActivationScheme::Asymmetric,
                        "asymmetric", "zero point from the range"),
             clEnumValN(::qsim::quantization::ActivationScheme::Symmetric,
                        "symmetric", "zero point 0"))}]>,
    Option<"weightBits", "weight-bits", "int", "8",
           "Weight width, 2..8 (as --qsim-quantize will use)">,
    ListOption<"weight8Layers", "w8-layers", "std::string",
               "Layers whose weights stay 8-bit under weight-bits < 8 (as --qsim-quantize will use): "
               "indices, ranges 3-9, topN, first (the first "
               "convolutional/connected layer), last (the heads)">,
    Option<"weightRange", "weight-range", "::qsim::quantization::WeightRange",
           "::qsim::quantization::WeightRange::Max",
           "Weight range per scale block (as --qsim-quantize will use)",
           [{::llvm::cl::values(
             clEnumValN(::qsim::quantization::WeightRange::Max, "max",
                        "the largest |w|"),
             clEnumValN(::qsim::quantization::WeightRange::Mse, "mse",
                        "the clipped range with the least squared rounding "
                        "error"))}]>,
    Option<"iterations", "iterations", "int", "500",
           "Adam steps per layer">,
    Option<"samples", "samples", "int", "4096",
           "Input patches per layer (over all images)">,
    Option<"regularization", "regularization", "double", "1.0",
           "Weight of the rounding regulariser">,
    Option<"learningRate", "learning-rate", "double", "0.01", "Adam step size">,
    Option<"target", "target", "::qsim::quantization::AdaRoundTarget",
           "::qsim::quantization::AdaRoundTarget::Float",
           "What a layer's rounded output is fitted to",
           [{::llvm::cl::values(
             clEnumValN(::qsim::quantization::AdaRoundTarget::Float, "float",
                        "the original float model's output (asymmetric)"),
             clEnumValN(::qsim::quantization::AdaRoundTarget::Quantized,
                        "quantized",
                        "the float weights on the quantized input"))}]>,
    Option<"biasCorrect", "bias-correct", "bool", "false",
           "Also correct each layer's bias to the target's mean output">,
    Option<"searchScales", "search-scales", "bool", "false",
           "Per-channel scales: the clipped range whose nearest rounding "
           "has the least layer loss">,
    Option<"seed", "seed", "unsigned", "1", "Seed of the patch sampling">,
    Option<"threads", "threads", "int", "0", "Threads (0 = all cores)">,
    Option<"progress", "progress", "bool", "true", "Progress bar on stderr">,
    Option<"report", "report", "bool", "true", "Print the per-layer losses to stderr">,
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

    With `images=`, every convolution that lost input channels is then refit
    by least squares so that its pre-activation output on those images (at
    `samples` sampled positions per image) matches the original model's
    (He et al. 2017; ThiNet): the removed channels' contribution is carried
    by the remaining ones, the layers are refit in order on the inputs the
    earlier refits produce, and a layer keeps its weights when the fit is not
    better. With `refit-downstream` (default), every later convolution is
    refit too, so that the remaining error does not accumulate towards the
    heads. The report gives each refit layer's relative output error before
    and after.

    `mode=magnitude`: zeros the `sparsity` fraction of smallest-magnitude
    weights of each convolutional/connected layer (`layers=` to choose);
    with `images=`, the non-grouped convolutions are sparsified by
    SparseGPT's second-order update instead (the weights whose removal costs
    the least output error on the images go, the remaining weights of the
    filter absorb their contribution; layer by layer on the inputs the
    earlier sparse layers produce; the bias is a column the sweep never
    zeroes, the mask is chosen in the units after the batch norm, and the
    kept weights are refit exactly for the mask); `allocation=sensitivity`
    shares the zeros among those layers by their output-error curves, the
    total staying `sparsity`;
    `--qsim-print-stats` then shows the sparsity and the size of a sparse
    encoding.

    A report (per layer filters before/after, MACs and parameters) goes to
    stderr.
  }];
  let options = [
    Option<"mode", "mode", "::qsim::lighten::PruneMode",
           "::qsim::lighten::PruneMode::Channel", "What is removed",
           [{::llvm::cl::values(
             clEnumValN(::qsim::lighten::PruneMode::Channel, "channel",
                        "whole channels (structured)"),
             clEnumValN(::qsim::lighten::PruneMode::Magnitude, "magnitude",
                        "the smallest weights (unstructured)"))}]>,
    Option<"ratio", "ratio", "double", "0.3", "channel: fraction of channels to remove">,
    Option<"criterion", "criterion", "::qsim::lighten::PruneCriterion",
           "::qsim::lighten::PruneCriterion::L1",
           "channel: how channels are ranked",
           [{::llvm::cl::values(
             clEnumValN(::qsim::lighten::PruneCriterion::L1, "l1",
                        "L1 norm of the filters"),
             clEnumValN(::qsim::lighten::PruneCriterion::L2, "l2",
                        "L2 norm of the filters"),
             clEnumValN(::qsim::lighten::PruneCriterion::BNGamma, "bn-gamma",
                        "batch-norm scale"),
             clEnumValN(::qsim::lighten::PruneCriterion::Contribution,
                        "contribution",
                        "with images=: the channel's share of its consumers' "
                        "outputs on the images"),
             clEnumValN(::qsim::lighten::PruneCriterion::Reconstruction,
                        "reconstruction",
                        "with images=: greedily, the output error the "
                        "consumers keep after their refit (group OBS)"))}]>,
    ListOption<"layers", "layers", "std::string",
               "Layers to prune (indices, ranges); all when empty">,
    Option<"roundTo", "round-to", "int", "8", "channel: keep a multiple of this many channels">,
    Option<"sparsity", "sparsity", "double", "0.5", "magnitude: fraction of weights zeroed">,
    Option<"allocation", "allocation", "::qsim::lighten::SparsityAllocation",
           "::qsim::lighten::SparsityAllocation::Uniform",
           "magnitude: how the zeros are shared among the layers",
           [{::llvm::cl::values(
             clEnumValN(::qsim::lighten::SparsityAllocation::Uniform,
                        "uniform", "`sparsity` of every layer"),
             clEnumValN(::qsim::lighten::SparsityAllocation::Sensitivity,
                        "sensitivity",
                        "with images=: per layer by its output error's "
                        "sensitivity, `sparsity` of all the weights in total"))}]>,
    ListOption<"images", "images", "std::string",
               "Images or folders: channel: refit the convolutions to the "
               "original's output (least squares); magnitude: choose and "
               "compensate the zeroed weights by their output error (SparseGPT)">,
    Option<"maxImages", "max-images", "int", "16", "Use at most N images for the refit">,
    Option<"samples", "samples", "int", "0",
           "Output positions sampled per image and layer for the refit (0: "
           "at least 256, 32768 over all images)">,
    Option<"refitDownstream", "refit-downstream", "bool", "true",
           "channel: also refit every later convolution to the original's output">,
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

    With `refit` (and `images=`), each replacement's last stage is refit by
    least squares to the original layer's pre-activation output on the
    images (data-aware factorization: the stages before it stay as the
    decomposition made them, the last absorbs what they lose on real data;
    the ridge is chosen on held-out positions and a refit is kept only where
    it is better there). Use more images (`max-images=16`) for the refit.

    ```
    qsim-opt m.mlirbc --qsim-factorize-conv="method=tucker2 top=3 energy=0.9 images=data/"
    qsim-opt m.mlirbc --qsim-factorize-conv="method=depthwise-separable top=3 images=coco/ max-images=16 refit"
    ```
  }];
  let options = [
    Option<"method", "method", "::qsim::lighten::FactorizeMethod",
           "::qsim::lighten::FactorizeMethod::Tucker2", "Factorization",
           [{::llvm::cl::values(
             clEnumValN(::qsim::lighten::FactorizeMethod::Tucker2, "tucker2",
                        "1x1, kxk core, 1x1 (HOSVD)"),
             clEnumValN(::qsim::lighten::FactorizeMethod::SpatialSvd,
                        "spatial-svd", "kx1 then 1xk"),
             clEnumValN(::qsim::lighten::FactorizeMethod::DepthwiseSeparable,
                        "depthwise-separable", "depthwise kxk + pointwise"),
             clEnumValN(::qsim::lighten::FactorizeMethod::Kernel, "kernel",
                        "5x5 as two 3x3, 7x7 as three"))}]>,
    ListOption<"layers", "layers", "std::string",
               "Layers to factorize (indices, ranges); all eligible when empty">,
    Option<"top", "top", "int", "0", "Only the N heaviest eligible convolutions">,
    Option<"rank", "rank", "std::string", "\"\"",
           "R or R1:R2 (tucker2); channels between stages (kernel)">,
    Option<"energy", "energy", "double", "0.9",
           "Share of squared singular values kept when no rank is given">,
    Option<"minMacs", "min-macs", "int64_t", "0", "Skip convolutions with fewer MACs">,
    Option<"force", "force", "bool", "false",
           "Factorize even when the ranks save no MACs">,
    ListOption<"images", "images", "std::string",
               "Images (directories or files, comma-separated) for output errors">,
    Option<"maxImages", "max-images", "int", "4", "Use at most N images">,
    Option<"refit", "refit", "bool", "false",
           "Refit each replacement's last stage to the original's output on the images">,
    Option<"samples", "samples", "int", "0",
           "refit: output positions sampled per image (0: at least 256, "
           "32768 over all images)">,
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
      output fidelity is not met; with `target-macs` missed, the highest
      energy that meets it for those layers, then one and two more layers,
      the first candidate within the bounds kept),
    - G5 channel pruning, when `target-params` is not met (the smallest
      ratio that meets it, backed off while the fidelity is not met),
    - G3 post-training int8 (calibrated on `calib=`; a mixed-precision search
      when all-int8 misses the fidelity bound),
    - G4 fp16 for what int8 left in float (everything when G3 was rejected).

    With `calib=`, G2 and G5 refit what they change by least squares on the
    first `refit-images` calibration images (the factorized layers' last
    stages, the convolutions that lost input channels; see
    --qsim-factorize-conv `refit` and --qsim-prune `images=`);
    `refit-images=0` turns this off.

    With `recover=train train-steps=N train-images=DIR` (a qsim-opt built
    with training, QSIM_ENABLE_TRAIN), G1, G2 and G5 fine-tune what they
    change for N steps (`train-batch` images each) towards the original
    model (distillation, as qsim-train) before it is measured and decided
    on; the table shows each such step before and after training, and G1 is
    then measured against the original and kept only within the bounds.

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
    Option<"evalShards", "eval-shards", "int", "0",
           "Measure mAP by N sharded qsim-run processes (0: in this process)">,
    Option<"evalExecutor", "eval-executor", "std::string", "\"local\"",
           "Where the shards run: local or slurm">,
    Option<"evalWorkdir", "eval-workdir", "std::string", "\"\"",
           "The shards' work directory (shared by the nodes)">,
    Option<"with", "with", "std::string", "\"\"", "G1: network to take a backbone from">,
    Option<"weights", "weights", "std::string", "\"\"", "G1: its weights">,
    Option<"cut", "cut", "std::string", "\"\"", "G1: FIRST:LAST layers of this model">,
    Option<"take", "take", "std::string", "\"\"", "G1: FIRST:LAST layers of the other">,
    Option<"factorizeMethod", "factorize-method",
           "::qsim::lighten::FactorizeMethod",
           "::qsim::lighten::FactorizeMethod::Tucker2",
           "G2: method of --qsim-factorize-conv",
           [{::llvm::cl::values(
             clEnumValN(::qsim::lighten::FactorizeMethod::Tucker2, "tucker2",
                        "1x1, kxk core, 1x1 (HOSVD)"),
             clEnumValN(::qsim::lighten::FactorizeMethod::SpatialSvd,
                        "spatial-svd", "kx1 then 1xk"),
             clEnumValN(::qsim::lighten::FactorizeMethod::DepthwiseSeparable,
                        "depthwise-separable", "depthwise kxk + pointwise"),
             clEnumValN(::qsim::lighten::FactorizeMethod::Kernel, "kernel",
                        "5x5 as two 3x3, 7x7 as three"))}]>,
    Option<"factorizeTop", "factorize-top", "int", "3", "G2: heaviest convolutions to factorize">,
    Option<"energy", "energy", "double", "0.9", "G2: starting energy">,
    Option<"maxPruneRatio", "max-prune-ratio", "double", "0.5", "G5: largest ratio tried">,
    Option<"roundTo", "round-to", "int", "8", "G5: channel multiple">,
    Option<"refitImages", "refit-images", "int", "16",
           "G2/G5: calibration images for the least-squares refit (0: no refit)">,
    Option<"calibMethod", "calib-method",
           "::qsim::quantization::CalibrationMethod",
           "::qsim::quantization::CalibrationMethod::MinMax",
           "G3: calibration method (as --qsim-calibrate's method)",
           [{::llvm::cl::values(
             clEnumValN(::qsim::quantization::CalibrationMethod::MinMax,
                        "minmax", ""),
             clEnumValN(::qsim::quantization::CalibrationMethod::Percentile,
                        "percentile", ""),
             clEnumValN(::qsim::quantization::CalibrationMethod::Entropy,
                        "entropy", ""),
             clEnumValN(::qsim::quantization::CalibrationMethod::MSE, "mse", ""),
             clEnumValN(::qsim::quantization::CalibrationMethod::Log2, "log2",
                        ""))}]>,
    Option<"latencyRuns", "latency-runs", "int", "10", "Forward passes per latency measurement">,
    Option<"threads", "threads", "int", "0", "Threads for the measurements (0 = all cores)">,
    Option<"recover", "recover", "std::string", "\"\"",
           "train: fine-tune G1, G2 and G5 towards the original before measuring "
           "them (qsim built with training)">,
    Option<"trainSteps", "train-steps", "int", "200", "recover=train: steps per step kept">,
    Option<"trainBatch", "train-batch", "int", "8", "recover=train: images per step">,
    Option<"trainImages", "train-images", "std::string", "\"\"",
           "recover=train: folder of training images (no labels needed)">,
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
