//===- qsim-run.cpp - run qsim models on images --------------------------===//
//
// qsim-run MODEL (.mlirbc | .mlir | .cfg --weights W) --image IMG|DIR ...:
// options for the run library (lib/Evaluation: detection, mAP, dumps,
// statistics, timing, comparison) or a step session (lib/Session). See
// docs/qsim-run.md.
//
//===----------------------------------------------------------------------===//

#include "qsim/Dialect/QSim/IR/QSimOps.h"
#include "qsim/Evaluation/ImageBatch.h"
#include "qsim/Evaluation/RunReport.h"
#include "qsim/Evaluation/ShardedRun.h"
#include "qsim/Session/CommandLine.h"
#include "qsim/Support/Diagnostics.h"
#include "qsim/Support/ThreadWaits.h"
#include "qsim/Support/StringUtils.h"
#include "qsim/Target/ModelIO.h"
#include "qsim/Transforms/Passes.h"
#include "qsim/Transforms/QuantizePipeline.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/FileSystem.h"

#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdlib>

using namespace qsim;

namespace {

struct Options {
  std::string model, weights, image, names, flavor, saveModel, compare,
      kernels = "fast";
  std::optional<uint64_t> randomSeed;
  float hierThresh = 0.5f;
  int maxImages = 0;
  bool letterbox = false, noLetterbox = false, allowUnknownKeys = false;
  // Quantization before the run or session (also `quant`'s precision,
  // quantize and calibImages).
  std::string mode, calib, calibMethod = "minmax";
  QuantizeRequest quant;
  // What the run measures and prints; the session instead.
  eval::RunOptions run;
  eval::BatchOptions batch;
  session::SessionCommandLine session;
  // Sharded evaluation (docs/scale-out.md).
  std::string shard, partOut;
  std::vector<std::string> merge;
};

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

int fail(const std::string &msg) {
  fprintf(stderr, "qsim-run: error: %s\n", msg.c_str());
  return 1;
}

/// --mode / --precision: the same passes qsim-opt runs (fold batch norms,
/// calibrate, assign precisions, quantize), on the loaded float model.
/// Returns what went wrong, in qsim-run's words where it can tell.
std::string quantizeForRun(mlir::ModuleOp module, const Options &o) {
  QuantizeRequest r = o.quant;
  r.preset = *parseRunMode(o.mode); // CLI11 checked --mode
  if (!o.calib.empty())
    r.calib = {o.calib};
  quantization::parseCalibrationMethod(o.calibMethod, r.calibMethod);
  if (r.empty())
    return ""; // --mode float: run the model as it is
  if (module->hasAttr("qsim.quantization"))
    return "the model is already quantized; --mode/--precision apply to "
           "float models";
  std::string error;
  FailureOr<bool> int8 = assignPrecisionPlansInt8(r.precision, r.preset, error);
  if (succeeded(int8) && *int8 && r.calib.empty())
    return "int8 layers need calibration images: --calib DIR (images other "
           "than the ones you evaluate on)";
  if (failed(prepareQuantization(module, r, error)) ||
      failed(applyQuantization(module, r, error)))
    return error;
  return "";
}

/// --session and --break: the step session engine (lib/Session), with the
/// model and its quantization loaded first.
int runSession(const Options &o) {
  nlohmann::json load; // null: no model to load first
  if (!o.model.empty()) {
    load = {{"cmd", "load"}};
    for (auto [key, value] : {std::pair{"model", &o.model},
                              {"weights", &o.weights},
                              {"mode", &o.mode},
                              {"precision", &o.quant.precision},
                              {"quantize", &o.quant.quantize},
                              {"image", &o.image}})
      if (!value->empty())
        load[key] = *value;
    if (o.randomSeed)
      load["random_weights"] = *o.randomSeed;
    if (!o.calib.empty())
      load.update({{"calib", o.calib},
                   {"calib_images", o.quant.calibImages},
                   {"calib_method", o.calibMethod}});
  }
  std::string error;
  int rc = o.session.run(
      o.run.executor.threads, o.kernels == "reference", load, o.run.dumpDir,
      llvm::outs(),
      [](const std::string &endpoint) {
        fprintf(stderr, "qsim-run: session listening on %s\n",
                endpoint.c_str());
      },
      error);
  return rc != 0 && !error.empty() ? fail(error) : rc;
}

/// The model: loaded with --weights or --random-weights, quantized by
/// --mode/--precision, saved by --save-model. With `reference`, --compare's
/// model: a .cfg with the weights beside it, else the model's.
mlir::OwningOpRef<mlir::ModuleOp>
loadRunModel(mlir::MLIRContext *ctx, const Options &o, bool reference) {
  ModelLoadOptions lo;
  lo.path = reference ? o.compare : o.model;
  lo.allowUnknownKeys = o.allowUnknownKeys;
  if (!o.flavor.empty())
    lo.flavor = parseFlavor(o.flavor);
  if (reference) {
    std::string w = lo.path.substr(0, lo.path.size() - 4) + ".weights";
    if (isDarknetCfgPath(lo.path))
      lo.weightsPath = llvm::sys::fs::exists(w) ? w : o.weights;
    return loadModel(ctx, lo);
  }
  lo.weightsPath = o.weights;
  lo.randomSeed = o.randomSeed;
  auto module = loadModel(ctx, lo);
  if (!module)
    return nullptr;
  // A module whose only function is not @main is not a model qsim wrote.
  mlir::func::FuncOp mainFunc = getMainFunc(*module);
  if (mainFunc.getName() != "main") {
    fail("'" + lo.path + "' is not a qsim model: its function is @" +
         mainFunc.getName().str() + ", not @main");
    return nullptr;
  }
  std::string error = quantizeForRun(*module, o);
  if (error.empty() && !o.saveModel.empty())
    (void)saveModel(*module, o.saveModel, /*bytecode=*/true, error);
  if (error.empty())
    return module;
  fail(error);
  return nullptr;
}

/// The options that decide a run's results (a part's identity).
std::string runOptionsText(const Options &o) {
  const eval::InferenceOptions &io = o.run.inference;
  return strprintf(
      "thresh=%a nms=%a letterbox=%d/%d kernels=%s flavor=%s "
      "random-weights=%s mode=%s precision=%s quantize=%s calib=%s "
      "calib-images=%d calib-method=%s",
      io.thresh, io.nms, o.letterbox, o.noLetterbox, o.kernels.c_str(),
      o.flavor.c_str(),
      o.randomSeed ? std::to_string(*o.randomSeed).c_str() : "-",
      o.mode.c_str(), o.quant.precision.c_str(), o.quant.quantize.c_str(),
      o.calib.c_str(), o.quant.calibImages, o.calibMethod.c_str());
}

/// --shard K/N: keeps the shard's images and records each into `part`.
bool prepareShard(Options &o, const eval::ModelRun &run,
                  std::vector<std::string> &images, eval::RunPart &part,
                  std::string &error) {
  if (!eval::parseShard(o.shard, part.shard, error))
    return false;
  std::vector<std::string> modelFiles = {o.model};
  if (!o.weights.empty())
    modelFiles.push_back(o.weights);
  if (!eval::describeRun(run, o.model, modelFiles, runOptionsText(o), images,
                         o.batch.batch, part.identity, error))
    return false;
  images = eval::selectShard(images, part.shard);
  bool candidates = run.hasLabels();
  o.batch.recordImage = [&part, candidates](size_t n, const std::string &path,
                                            const eval::InferenceResult *r) {
    eval::recordPartImage(part, n, path, r, candidates);
  };
  return true;
}

/// --merge PARTS: the summary lines of the unsharded run.
int mergeParts(const Options &o) {
  std::string error;
  eval::MergedRun merged;
  std::vector<std::string> names;
  if ((!o.names.empty() && !rt::readNames(o.names, names, error)) ||
      !eval::mergeRunParts(o.merge, merged, error) ||
      !eval::reportMergedRun(merged, o.run.labelsDir, names, o.batch.jsonPath,
                             llvm::outs(), error))
    return fail(error);
  return 0;
}

/// Runs the model over the images with what the options ask of the run.
int runModel(Options &o) {
  mlir::DialectRegistry registry;
  registerQSimDialects(registry);
  mlir::MLIRContext ctx(registry);
  ctx.loadAllAvailableDialects();
  // Errors name the file, line and layer; the op's IR would be noise here.
  ctx.printOpOnDiagnostic(false);
  ToolDiagnostics diags(&ctx);
  auto module = loadRunModel(&ctx, o, /*reference=*/false);
  if (!module)
    return 1;
  o.batch.maxImagePixels = (int64_t)(o.session.maxImageMpixels * 1e6);
  o.run.executor.kernels = o.kernels == "reference"
                               ? interp::KernelSet::Reference
                               : interp::KernelSet::Fast;
  o.run.executor.timeSteps = !o.compare.empty(); // its ms columns
  if (o.letterbox || o.noLetterbox)
    o.run.inference.letterbox = o.letterbox;
  std::string error;
  auto run = eval::ModelRun::create(*module, o.run, error);
  if (!run)
    return fail(error);
  if (!o.names.empty() && !rt::readNames(o.names, o.batch.names, error))
    return fail(error);
  mlir::OwningOpRef<mlir::ModuleOp> reference;
  if (!o.compare.empty()) {
    if (!(reference = loadRunModel(&ctx, o, /*reference=*/true)))
      return 1;
    if (!run->compareWith(*reference, o.compare, error))
      return fail("--compare: " + error);
  }
  if (o.run.overflowReport && !run->hasInt8Convolutions())
    return fail("--overflow-report: the model has no int8 convolutions "
                "(quantize it, or use --mode int8)");
  std::vector<std::string> images;
  if (!o.image.empty() &&
      !eval::listRunImages(o.image, o.maxImages, images, o.batch.batch, error))
    return fail(error);
  if (!o.run.labelsDir.empty() && run->info().isClassifier())
    return fail("--eval needs a detection model");
  eval::RunPart part;
  if (!o.shard.empty() && !prepareShard(o, *run, images, part, error))
    return fail(error);
  o.batch.model = o.model;
  o.batch.warnSkipped = [](const std::string &why) {
    fprintf(stderr, "\nqsim-run: warning: skipping %s\n", why.c_str());
  };
  eval::BatchResult batch;
  if (!eval::runImages(*run, images, o.batch, llvm::outs(), batch, error) ||
      !eval::reportRun(*run, o.batch, batch, llvm::outs(), error) ||
      (!o.partOut.empty() && !eval::writeRunPart(o.partOut, part, error)))
    return fail(error);
  return 0;
}

void addOptions(CLI::App &app, Options &o) {
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
  app.add_option("--mode", o.mode,
                 "Quantize a float model before running: float, hybrid "
                 "(yolo2_light), int8 (every layer with an int8 form), fp16")
      ->check(CLI::IsMember({"float", "hybrid", "int8", "fp16"}));
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

/// What a shard run cannot do: reports that are not merged across shards.
std::string checkShardOptions(const Options &o) {
  if (o.shard.empty() != o.partOut.empty())
    return "--shard and --part-out go together";
  if (o.shard.empty())
    return "";
  if (o.image.empty())
    return "--shard needs --image DIR";
  for (auto [given, name] : {std::pair{!o.compare.empty(), "--compare"},
                             {o.run.overflowReport, "--overflow-report"},
                             {o.run.layerStats, "--layer-stats"},
                             {o.run.timeLayers, "--time-layers"},
                             {o.run.repeat > 0, "--repeat"}})
    if (given)
      return std::string(name) + " is not merged across shards: run it "
                                 "without --shard";
  return "";
}

} // namespace

int main(int argc, char **argv) {
  // Before anything else: workers that spin collapse a shared machine.
  preferPassiveThreadWaits(argv);
  Options o;
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
  if (o.session.requested())
    return runSession(o);
  if (!o.merge.empty()) {
    if (!o.model.empty() || !o.image.empty() || !o.shard.empty())
      return fail("--merge takes part files only (no model, --image or "
                  "--shard)");
    return mergeParts(o);
  }
  if (std::string error = checkShardOptions(o); !error.empty())
    return fail(error);
  if (o.model.empty())
    return fail("a model is required (see --help)");
  if (o.letterbox && o.noLetterbox)
    return fail("--letterbox and --no-letterbox exclude each other");
  if (o.image.empty() && o.run.repeat == 0)
    return fail("nothing to do: give --image (or --repeat N to time the "
                "forward pass on a constant input)");
  return runModel(o);
}
