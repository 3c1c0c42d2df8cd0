//===- qsim-run.cpp - run qsim models on images --------------------------===//
//
// qsim-run MODEL (.mlirbc | .mlir | .cfg --weights W) --image IMG|DIR ...:
// only the options; what they do (a run with detection, mAP, dumps,
// statistics, timing, comparison; a shard merge; a step session) is
// eval::runCommand (lib/Evaluation/RunCommand.cpp). See docs/qsim-run.md.
//
//===----------------------------------------------------------------------===//

#include "qsim/Evaluation/RunCommand.h"
#include "qsim/Support/ThreadWaits.h"
#include "qsim/Transforms/Passes.h"

#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>

using namespace qsim;

namespace {

/// A number within [lo, hi] (NaN and infinities refused), checked by CLI11
/// before the value is stored.
CLI::Validator numberIn(double lo, double hi) {
  char buf[64];
  snprintf(buf, sizeof(buf), "[%g, %g]", lo, hi);
  std::string range = buf;
  return CLI::Validator(
      [=](std::string &text) -> std::string {
        char *end = nullptr;
        double v = std::strtod(text.c_str(), &end);
        if (text.empty() || *end != '\0' || !std::isfinite(v) || v < lo ||
            v > hi)
          return "expected a number in " + range + ", got '" + text + "'";
        return "";
      },
      "NUMBER in " + range);
}

void addOptions(CLI::App &app, eval::RunCommandOptions &o) {
  app.add_option("model", o.model,
                 "Model: .mlirbc, .mlir or Darknet .cfg (optional with "
                 "--session: a client may load one)");
  app.add_option("--weights", o.weights, "Darknet .weights for a .cfg model");
  app.add_option("--random-weights", o.randomSeed,
                 "Synthetic weights from this seed for a .cfg model");
  app.add_option("--image", o.image,
                 "An image (jpg, png, bmp) or a directory of images");
  app.add_option("--names", o.names, "Class names file, one per line");
  app.add_option("--thresh", o.run.inference.thresh, "Confidence threshold")
      ->check(numberIn(0, 1))
      ->capture_default_str();
  app.add_option("--hier-thresh", o.hierThresh,
                 "Hierarchical threshold (accepted for Darknet compatibility; "
                 "yolo and region without trees do not use it)")
      ->check(numberIn(0, 1))
      ->capture_default_str();
  app.add_option("--nms", o.run.inference.nms, "NMS IoU threshold")
      ->check(numberIn(0, 1))
      ->capture_default_str();
  app.add_option("--json", o.batch.jsonPath, "Write detections as JSON");
  app.add_option(
      "--draw", o.batch.draw,
      "Write the image with labelled boxes (a directory for a batch)");
  app.add_option(
      "--dump-layers", o.run.dumpDir,
      "Write every layer's output as NNN_<type>.npy (float32, CxHxW)");
  app.add_flag("--layer-stats", o.run.layerStats,
               "Print min/max/mean/std/zeros of every layer's output");
  app.add_flag("--time-layers", o.run.timeLayers,
               "Print each layer's wall time and share of the total");
  app.add_option("--threads", o.run.executor.threads,
                 "Worker threads (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--repeat", o.run.repeat,
                 "Run the forward pass N times after a warm-up and print the "
                 "median time (model load and image decode excluded)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--kernels", o.kernels,
                 "reference (plain loops) or fast (oneDNN)")
      ->check(CLI::IsMember({"reference", "fast"}))
      ->capture_default_str();
  app.add_option("--darknet-flavor", o.flavor,
                 "alexeyab or pjreddie (default: the model's, else alexeyab)")
      ->check(CLI::IsMember({"alexeyab", "pjreddie"}));
  app.add_flag("--letterbox", o.letterbox, "Letterbox the input (override)");
  app.add_flag("--no-letterbox", o.noLetterbox, "Plain resize (override)");
  app.add_option("--eval", o.run.labelsDir,
                 "Compute mAP against YOLO label files in this directory "
                 "(<image stem>.txt)");
  app.add_option("--top", o.run.inference.topK, "Classifier: classes to report")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--max-images", o.maxImages,
                 "Use at most N images of a directory (0: all)")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--allow-unknown-keys", o.allowUnknownKeys,
               "Unknown keys of a .cfg model are warnings");
  app.add_flag("-q,--quiet", o.batch.quiet,
               "No per-image output (summaries only)");
  app.add_option(
         "--mode", o.mode,
         "Quantize a float model before running: float, hybrid "
         "(yolo2_light), int8 (every layer with an int8 form), fp16, bf16")
      ->check(CLI::IsMember({"float", "hybrid", "int8", "fp16", "bf16"}));
  app.add_option("--precision", o.quant.precision,
                 "Per-layer plan, e.g. \"int8=top3\" or \"fp32=0,15 "
                 "default=int8\" (options of --qsim-assign-precision)");
  app.add_option("--calib", o.calib,
                 "Calibration images for int8 layers (use images other than "
                 "those you evaluate on)");
  app.add_option("--calib-images", o.quant.calibImages,
                 "Calibrate on at most N images")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--calib-method", o.calibMethod,
                 "minmax, percentile, entropy, mse or log2")
      ->check(CLI::IsMember({"minmax", "percentile", "entropy", "mse", "log2"}))
      ->capture_default_str();
  app.add_option("--quantize", o.quant.quantize,
                 "Options of --qsim-quantize, e.g. \"weights=per-tensor "
                 "rounding=tosa-double\"");
  app.add_option(
      "--save-model", o.saveModel,
      "Write the model as run (after --mode/--precision) as bytecode");
  app.add_option("--compare", o.compare,
                 "A float model to compare against layer by layer (SQNR, "
                 "cosine, errors, clipping, detections, mAP, size, time)");
  app.add_flag("--overflow-report", o.run.overflowReport,
               "Per int8 convolution: % of int8 x int8 products overflowing "
               "int8 and of accumulations overflowing int16, and the "
               "worst-case accumulator width");
  app.add_option("--shard", o.shard,
                 "Run shard K of N (every N-th image from K, K in 0..N-1) "
                 "and write its part file (--part-out)");
  app.add_option("--part-out", o.partOut,
                 "The shard's part file: per-image mAP candidates and times");
  app.add_option("--merge", o.merge,
                 "Merge part files (every shard of one run) and print the "
                 "unsharded run's summary (with --eval LABELS: its mAP)")
      ->expected(1, -1);
  o.session.addOptions(app);
}

} // namespace

int main(int argc, char **argv) {
  // Before anything else: workers that spin collapse a shared machine.
  preferPassiveThreadWaits(argv);
  eval::RunCommandOptions o;
  registerQSimDialectPasses();
  registerQSimPasses();
  CLI::App app{
      "qsim-run: run a qsim or Darknet model on images.\n\n"
      "  qsim-run model.mlirbc --image dog.jpg --names coco.names\n"
      "  qsim-run model.cfg --weights model.weights --image DIR --eval DIR\n"
      "  qsim-run model.mlirbc --image dog.jpg --time-layers --repeat 20\n",
      "qsim-run"};
  addOptions(app, o);
  CLI11_PARSE(app, argc, argv);
  return eval::runCommand(o);
}
