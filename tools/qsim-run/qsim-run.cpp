//===- qsim-run.cpp - run qsim models on images --------------------------===//
//
// qsim-run MODEL (.mlirbc | .mlir | .cfg --weights W) --image IMG|DIR ...
// Detection, classification, batch evaluation (mAP), per-layer dumps,
// statistics and timing. See docs/qsim-run.md.
//
//===----------------------------------------------------------------------===//

#include "qsim/Dialect/QSim/IR/LayerStats.h"
#include "qsim/Interpreter/Executor.h"
#include "qsim/Evaluation/Inference.h"
#include "qsim/Evaluation/LayerAnalysis.h"
#include "qsim/Runtime/Evaluation.h"
#include "qsim/Support/Diagnostics.h"
#include "qsim/Support/FileUtils.h"
#include "qsim/Target/ModelIO.h"
#include "qsim/Support/Progress.h"
#include "qsim/Transforms/Passes.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "qsim/Session/Server.h"
#include "qsim/Transforms/QuantizePipeline.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

using namespace qsim;
using namespace qsim::interp;
using namespace qsim::eval;
using json = nlohmann::json;
using llvm::cast;
using llvm::isa;

namespace {

struct Options {
  std::string model, weights, image, names, jsonOut, draw, dumpLayers, eval;
  std::string kernels = "fast", flavor;
  std::string mode, precision, calib, calibMethod = "minmax", quantize,
                                      saveModel, compare;
  int calibImages = 100;
  bool overflowReport = false;
  std::optional<uint64_t> randomSeed;
  float thresh = 0.25f, hierThresh = 0.5f, nms = 0.45f;
  int threads = 0, repeat = 0, top = 5, maxImages = 0;
  bool layerStats = false, timeLayers = false, letterbox = false,
       noLetterbox = false, quiet = false, allowUnknownKeys = false;
  // Step sessions.
  bool session = false;
  std::string listen, sessionRoot;
  std::optional<int64_t> breakAt;
  double maxModelMb = 1024, maxImageMpixels = 64, commandTimeout = 0,
         maxRequestKb = 1024;
};

int fail(const std::string &msg) {
  fprintf(stderr, "qsim-run: error: %s\n", msg.c_str());
  return 1;
}

/// --mode / --precision: the same passes qsim-opt runs (fold batch norms,
/// calibrate, assign precisions, quantize), on the loaded float model.
bool quantizeForRun(mlir::ModuleOp module, const Options &o) {
  QuantizeRequest r;
  // CLI11 checked --mode and --calib-method against their values.
  r.preset = *parseRunMode(o.mode);
  r.precision = o.precision;
  if (!o.calib.empty())
    r.calib = {o.calib};
  r.calibImages = o.calibImages;
  quantization::parseCalibrationMethod(o.calibMethod, r.calibMethod);
  r.quantize = o.quantize;
  if (r.empty())
    return true; // --mode float: run the model as it is
  std::string error;
  if (failed(prepareQuantization(module, r, error)) ||
      failed(applyQuantization(module, r, error))) {
    if (error.find("calibration images") != std::string::npos)
      error = "int8 layers need calibration images: --calib DIR (images "
              "other than the ones you evaluate on)";
    else if (error.find("already quantized") != std::string::npos)
      error = "the model is already quantized; --mode/--precision apply to "
              "float models";
    fail(error);
    return false;
  }
  return true;
}

bool isImageFile(const std::string &p) {
  std::string ext = llvm::sys::path::extension(p).lower();
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp" ||
         ext == ".tga" || ext == ".gif" || ext == ".ppm" || ext == ".pgm";
}

bool listImages(const std::string &path, std::vector<std::string> &out,
                std::string &error) {
  if (!llvm::sys::fs::is_directory(path)) {
    if (!llvm::sys::fs::exists(path)) {
      error = "no such image or directory: '" + path + "'";
      return false;
    }
    out.push_back(path);
    return true;
  }
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(path, ec), end; it != end && !ec;
       it.increment(ec))
    if (isImageFile(it->path()))
      out.push_back(it->path());
  if (ec) {
    error = "cannot list '" + path + "': " + ec.message();
    return false;
  }
  std::sort(out.begin(), out.end());
  if (out.empty()) {
    error = "no images (jpg, png, bmp, ...) in '" + path + "'";
    return false;
  }
  return true;
}

std::string className(const std::vector<std::string> &names, int id) {
  if (id >= 0 && id < (int)names.size())
    return names[id];
  return "class " + std::to_string(id);
}

struct TensorStats {
  float min = 0, max = 0;
  double mean = 0, std = 0;
  int64_t zeros = 0, count = 0;
};

TensorStats computeStats(const rt::Tensor &t) {
  TensorStats s;
  std::vector<float> v = t.toFloat();
  s.count = v.size();
  if (v.empty())
    return s;
  s.min = s.max = v[0];
  double sum = 0, sq = 0;
  for (float x : v) {
    s.min = std::min(s.min, x);
    s.max = std::max(s.max, x);
    sum += x;
    sq += (double)x * x;
    s.zeros += x == 0.0f;
  }
  s.mean = sum / v.size();
  s.std = std::sqrt(std::max(0.0, sq / v.size() - s.mean * s.mean));
  return s;
}

std::string bar(double share, int width = 30) {
  int n = (int)std::lround(share * width);
  return std::string(std::max(0, std::min(n, width)), '#');
}

json detectionsJson(const InferenceResult &r,
                    const std::vector<std::string> &names) {
  json arr = json::array();
  for (const auto &d : r.reported)
    arr.push_back(
        {{"class_id", d.classId},
         {"name", className(names, d.classId)},
         {"prob", d.prob},
         {"objectness", d.objectness},
         {"box_rel",
          {{"x", d.rel.x}, {"y", d.rel.y}, {"w", d.rel.w}, {"h", d.rel.h}}},
         {"box_px",
          {{"left", d.left},
           {"top", d.top},
           {"right", d.right},
           {"bottom", d.bottom}}}});
  return arr;
}

void printResult(const std::string &path, const InferenceResult &r,
                 const std::vector<std::string> &names, const char *pre) {
  printf("%s: %dx%d, %s, forward %.1f ms\n", path.c_str(), r.imageW, r.imageH,
         pre, r.forwardMillis);
  if (!r.top.empty()) {
    for (auto [id, p] : r.top)
      printf("  %6.2f%%  %s\n", p * 100, className(names, id).c_str());
    return;
  }
  if (r.reported.empty()) {
    printf("  no detections above the threshold (%zu candidates)\n",
           r.candidates);
    return;
  }
  printf("  %-24s %7s %6s %6s %6s %6s\n", "class", "prob", "left", "top",
         "right", "bottom");
  for (const auto &d : r.reported)
    printf("  %-24s %6.2f%% %6d %6d %6d %6d\n",
           className(names, d.classId).c_str(), d.prob * 100, d.left, d.top,
           d.right, d.bottom);
}

bool drawResult(const rt::Image &image, const InferenceResult &r,
                const std::vector<std::string> &names, int classes,
                const std::string &out, std::string &error) {
  rt::Image im = image;
  int thickness = std::max(1, (int)(im.h * .006));
  // One box per detection, labelled with every class above the threshold
  // (as Darknet's draw_detections).
  std::map<std::tuple<int, int, int, int>,
           std::vector<const rt::ReportedDetection *>>
      boxes;
  for (const auto &d : r.reported)
    boxes[{d.left, d.top, d.right, d.bottom}].push_back(&d);
  for (auto &[box, ds] : boxes) {
    float cr, cg, cb;
    rt::classColor(ds[0]->classId, std::max(classes, 1), cr, cg, cb);
    auto [l, t, rr, b] = box;
    rt::drawBox(im, l, t, rr, b, thickness, cr, cg, cb);
    std::string label;
    for (const auto *d : ds) {
      if (!label.empty())
        label += ", ";
      char buf[32];
      snprintf(buf, sizeof buf, " %.0f%%", d->prob * 100);
      label += className(names, d->classId) + buf;
    }
    rt::drawLabel(im, l, t, label, cr, cg, cb);
  }
  return rt::writePng(out, im, error);
}

const char *preprocessName(rt::Preprocess p) {
  switch (p) {
  case rt::Preprocess::Resize:
    return "resize";
  case rt::Preprocess::Letterbox:
    return "letterbox";
  case rt::Preprocess::CenterCrop:
    return "resize_min + centre crop";
  }
  return "?";
}

/// --session and --break: the step session engine (lib/Session).
int runSession(const Options &o) {
  session::Engine::Options eo;
  eo.threads = o.threads;
  eo.referenceKernels = o.kernels == "reference";
  eo.rootDir = o.sessionRoot;
  eo.limits.maxModelBytes = (int64_t)(o.maxModelMb * 1024 * 1024);
  eo.limits.maxImagePixels = (int64_t)(o.maxImageMpixels * 1e6);
  eo.limits.commandSeconds = o.commandTimeout;
  eo.limits.maxRequestBytes = (size_t)(o.maxRequestKb * 1024);
  session::Engine engine(eo);
  session::SessionControl control;
  auto call = [&](const json &req) {
    json r = engine.handle(req, control);
    if (!r.value("ok", false))
      fail(r.value("error", std::string("request failed")));
    return r;
  };
  if (!o.model.empty()) {
    json load = {{"cmd", "load"}, {"model", o.model}};
    if (!o.weights.empty())
      load["weights"] = o.weights;
    if (o.randomSeed)
      load["random_weights"] = *o.randomSeed;
    if (!o.mode.empty())
      load["mode"] = o.mode;
    if (!o.precision.empty())
      load["precision"] = o.precision;
    if (!o.calib.empty()) {
      load["calib"] = o.calib;
      load["calib_images"] = o.calibImages;
      load["calib_method"] = o.calibMethod;
    }
    if (!o.quantize.empty())
      load["quantize"] = o.quantize;
    if (!o.image.empty())
      load["image"] = o.image;
    if (!call(load).value("ok", false))
      return 1;
  }
  if (o.breakAt) {
    if (o.model.empty() || o.image.empty())
      return fail("--break needs a model and --image");
    int64_t n = *o.breakAt;
    json r = call({{"cmd", "run-to"}, {"layer", n}});
    if (!r.value("ok", false))
      return 1;
    json info = call({{"cmd", "info"}});
    const json &l = info["layers"][n];
    printf("stopped after layer %lld (%s, %s), output %s\n", (long long)n,
           l["kind"].get<std::string>().c_str(),
           l["precision"].get<std::string>().c_str(),
           l["output"].dump().c_str());
    printf("%-8s %-14s %12s %12s %12s %12s %8s\n", "tensor", "shape", "min",
           "max", "mean", "std", "zeros");
    bool hasWeights = false;
    for (const char *what : {"input", "output", "weights"}) {
      json st = engine.handle({{"cmd", "stats"}, {"layer", n}, {"what", what}},
                              control);
      if (!st.value("ok", false))
        continue; // a layer without weights
      hasWeights |= std::string(what) == "weights";
      std::string shape;
      for (auto &d : st["shape"])
        shape += (shape.empty() ? "" : "x") + std::to_string(d.get<int64_t>());
      printf("%-8s %-14s %12.5g %12.5g %12.5g %12.5g %7.2f%%\n", what,
             shape.c_str(), st["min"].get<double>(), st["max"].get<double>(),
             st["mean"].get<double>(), st["std"].get<double>(),
             100.0 * st["zeros"].get<double>() /
                 std::max<double>(1, st["count"].get<double>()));
      if (st.contains("quant") && st["quant"].contains("scale"))
        printf("         int8 scale %.6g zero point %d, %.2f%% at the int8 "
               "limits\n",
               st["quant"]["scale"].get<double>(),
               st["quant"]["zero_point"].get<int>(),
               st["quant"]["clipped_percent"].get<double>());
    }
    if (!o.dumpLayers.empty()) {
      if (auto ec = llvm::sys::fs::create_directories(o.dumpLayers))
        return fail("cannot create '" + o.dumpLayers + "': " + ec.message());
      char prefix[32];
      snprintf(prefix, sizeof prefix, "/%03lld_", (long long)n);
      for (const char *what : {"input", "output", "weights"}) {
        if (std::string(what) == "weights" && !hasWeights)
          continue;
        for (const char *ext : {".npy", ".png"}) {
          std::string file = o.dumpLayers + prefix + what + ext;
          json d = call(
              {{"cmd", "dump"}, {"layer", n}, {"what", what}, {"file", file}});
          if (!d.value("ok", false))
            return 1;
          printf("wrote %s\n", file.c_str());
        }
      }
    }
    return 0;
  }
  session::Server server(engine);
  server.installSignalHandlers();
  if (o.listen.empty())
    return server.serveStdio();
  std::string error;
  int rc = server.serveSocket(o.listen, error, [](const std::string &ep) {
    fprintf(stderr, "qsim-run: session listening on %s\n", ep.c_str());
  });
  if (rc != 0 && !error.empty())
    return fail(error);
  return rc;
}

} // namespace

int main(int argc, char **argv) {
  Options o;
  registerQSimDialectPasses();
  registerQSimPasses();
  CLI::App app{
      "qsim-run: run a qsim or Darknet model on images.\n\n"
      "  qsim-run model.mlirbc --image dog.jpg --names coco.names\n"
      "  qsim-run model.cfg --weights model.weights --image DIR --eval DIR\n"
      "  qsim-run model.mlirbc --image dog.jpg --time-layers --repeat 20\n",
      "qsim-run"};
  app.add_option("model", o.model,
                 "Model: .mlirbc, .mlir or Darknet .cfg (optional with "
                 "--session: a client may load one)");
  app.add_option("--weights", o.weights, "Darknet .weights for a .cfg model");
  app.add_option("--random-weights", o.randomSeed,
                 "Synthetic weights from this seed for a .cfg model");
  app.add_option("--image", o.image,
                 "An image (jpg, png, bmp) or a directory of images");
  app.add_option("--names", o.names, "Class names file, one per line");
  app.add_option("--thresh", o.thresh, "Confidence threshold")
      ->capture_default_str();
  app.add_option("--hier-thresh", o.hierThresh,
                 "Hierarchical threshold (accepted for Darknet compatibility; "
                 "yolo and region without trees do not use it)")
      ->capture_default_str();
  app.add_option("--nms", o.nms, "NMS IoU threshold")->capture_default_str();
  app.add_option("--json", o.jsonOut, "Write detections as JSON");
  app.add_option(
      "--draw", o.draw,
      "Write the image with labelled boxes (a directory for a batch)");
  app.add_option(
      "--dump-layers", o.dumpLayers,
      "Write every layer's output as NNN_<type>.npy (float32, CxHxW)");
  app.add_flag("--layer-stats", o.layerStats,
               "Print min/max/mean/std/zeros of every layer's output");
  app.add_flag("--time-layers", o.timeLayers,
               "Print each layer's wall time and share of the total");
  app.add_option("--threads", o.threads, "Worker threads (default: all cores)");
  app.add_option("--repeat", o.repeat,
                 "Run the forward pass N times after a warm-up and print the "
                 "median time (model load and image decode excluded)");
  app.add_option("--kernels", o.kernels,
                 "reference (plain loops) or fast (oneDNN)")
      ->check(CLI::IsMember({"reference", "fast"}))
      ->capture_default_str();
  app.add_option("--darknet-flavor", o.flavor,
                 "alexeyab or pjreddie (default: the model's, else alexeyab)")
      ->check(CLI::IsMember({"alexeyab", "pjreddie"}));
  app.add_flag("--letterbox", o.letterbox, "Letterbox the input (override)");
  app.add_flag("--no-letterbox", o.noLetterbox, "Plain resize (override)");
  app.add_option("--eval", o.eval,
                 "Compute mAP against YOLO label files in this directory "
                 "(<image stem>.txt)");
  app.add_option("--top", o.top, "Classifier: classes to report")
      ->capture_default_str();
  app.add_option("--max-images", o.maxImages,
                 "Use at most N images of a directory");
  app.add_flag("--allow-unknown-keys", o.allowUnknownKeys,
               "Unknown keys of a .cfg model are warnings");
  app.add_flag("-q,--quiet", o.quiet, "No per-image output (summaries only)");
  app.add_option("--mode", o.mode,
                 "Quantize a float model before running: float, hybrid "
                 "(yolo2_light), int8 (every layer with an int8 form), fp16")
      ->check(CLI::IsMember({"float", "hybrid", "int8", "fp16"}));
  app.add_option("--precision", o.precision,
                 "Per-layer plan, e.g. \"int8=top3\" or \"fp32=0,15 "
                 "default=int8\" (options of --qsim-assign-precision)");
  app.add_option("--calib", o.calib,
                 "Calibration images for int8 layers (use images other than "
                 "those you evaluate on)");
  app.add_option("--calib-images", o.calibImages,
                 "Calibrate on at most N images")
      ->capture_default_str();
  app.add_option("--calib-method", o.calibMethod,
                 "minmax, percentile, entropy, mse or log2")
      ->check(CLI::IsMember({"minmax", "percentile", "entropy", "mse", "log2"}))
      ->capture_default_str();
  app.add_option("--quantize", o.quantize,
                 "Options of --qsim-quantize, e.g. \"weights=per-tensor "
                 "rounding=tosa-double\"");
  app.add_option(
      "--save-model", o.saveModel,
      "Write the model as run (after --mode/--precision) as bytecode");
  app.add_option("--compare", o.compare,
                 "A float model to compare against layer by layer (SQNR, "
                 "cosine, errors, clipping, detections, mAP, size, time)");
  app.add_flag("--overflow-report", o.overflowReport,
               "Per int8 convolution: % of int8 x int8 products overflowing "
               "int8 and of accumulations overflowing int16, and the "
               "worst-case accumulator width");
  app.add_flag("--session", o.session,
               "Serve a step session: newline-delimited JSON requests on "
               "stdin, replies on stdout (docs/step-debugging.md); MODEL "
               "(and --image, --mode, ...) are loaded first when given");
  app.add_option("--listen", o.listen,
                 "With --session: serve on unix:PATH or tcp:127.0.0.1:PORT "
                 "instead of stdin/stdout (several clients; a second one can "
                 "pause/resume/stop a run)");
  app.add_option("--session-root", o.sessionRoot,
                 "With --session: every file a request names must lie in "
                 "this directory (relative paths are relative to it)");
  app.add_option("--max-model-mb", o.maxModelMb,
                 "With --session: largest model/weights file a request may "
                 "load")
      ->capture_default_str();
  app.add_option("--max-image-mpixels", o.maxImageMpixels,
                 "With --session: largest image a request may load")
      ->capture_default_str();
  app.add_option("--max-request-kb", o.maxRequestKb,
                 "With --session: longest request line")
      ->capture_default_str();
  app.add_option("--command-timeout", o.commandTimeout,
                 "With --session: seconds one command may run (0: no limit; "
                 "runs stop at a layer boundary)")
      ->capture_default_str();
  app.add_option("--break", o.breakAt,
                 "Run --image up to layer N, print the statistics of its "
                 "input, output and weights, and with --dump-layers DIR write "
                 "them as .npy and .png (non-interactive session)");
  CLI11_PARSE(app, argc, argv);

  if (o.session || o.breakAt)
    return runSession(o);

  if (o.model.empty())
    return fail("a model is required (see --help)");
  if (o.letterbox && o.noLetterbox)
    return fail("--letterbox and --no-letterbox exclude each other");
  if (o.image.empty() && o.repeat == 0)
    return fail("nothing to do: give --image (or --repeat N to time the "
                "forward pass on a constant input)");

  mlir::DialectRegistry registry;
  registerQSimDialects(registry);
  mlir::MLIRContext ctx(registry);
  ctx.loadAllAvailableDialects();
  // Errors name the file, line and layer; the op's IR would be noise here.
  ctx.printOpOnDiagnostic(false);
  ToolDiagnostics diags(&ctx);
  ModelLoadOptions lo;
  lo.path = o.model;
  lo.weightsPath = o.weights;
  lo.randomSeed = o.randomSeed;
  lo.allowUnknownKeys = o.allowUnknownKeys;
  if (!o.flavor.empty())
    lo.flavor = parseFlavor(o.flavor);
  auto module = loadModel(&ctx, lo);
  if (!module)
    return 1;
  if (!o.mode.empty() || !o.precision.empty()) {
    if (!quantizeForRun(*module, o))
      return 1;
  }
  if (!o.saveModel.empty()) {
    std::string err;
    if (failed(saveModel(*module, o.saveModel, /*bytecode=*/true, err)))
      return fail(err);
  }

  ExecutorOptions eo;
  eo.kernels =
      o.kernels == "reference" ? KernelSet::Reference : KernelSet::Fast;
  eo.threads = o.threads;
  eo.timeSteps = o.timeLayers || !o.compare.empty();
  std::string error;
  auto executor = Executor::create(*module, eo, error);
  if (!executor)
    return fail(error);
  ModelInfo info = describeModel(*module, *executor);
  InferenceOptions io;
  io.thresh = o.thresh;
  io.nms = o.nms;
  io.topK = o.top;
  if (o.letterbox)
    io.letterbox = true;
  if (o.noLetterbox)
    io.letterbox = false;

  std::vector<std::string> names;
  if (!o.names.empty() && !rt::readNames(o.names, names, error))
    return fail(error);
  const auto &steps = executor->steps();

  // Per-layer hooks: dumps and statistics of the last image run.
  std::vector<TensorStats> stats(steps.size());
  bool collect = o.layerStats || !o.dumpLayers.empty();
  std::string dumpError;
  if (!o.dumpLayers.empty()) {
    if (auto ec = llvm::sys::fs::create_directories(o.dumpLayers))
      return fail("cannot create '" + o.dumpLayers + "': " + ec.message());
  }
  // --compare: the float model runs on the same inputs, layer by layer.
  mlir::OwningOpRef<mlir::ModuleOp> floatModule;
  std::unique_ptr<Executor> floatEx;
  bool outputsOnly = false;
  std::vector<eval::LayerComparison> comparisons(steps.size());
  std::vector<std::vector<float>> quantOut(steps.size()),
      floatOut(steps.size());
  std::vector<std::pair<float, float>> clipRange(steps.size(), {1.0f, 0.0f});
  std::vector<double> msQuant(steps.size(), 0), msFloat(steps.size(), 0);
  size_t floatDets = 0, matchedDets = 0, quantDets = 0;
  std::unique_ptr<rt::MapEvaluator> floatEval;
  if (!o.compare.empty()) {
    ModelLoadOptions flo;
    flo.path = o.compare;
    flo.flavor = lo.flavor;
    flo.allowUnknownKeys = o.allowUnknownKeys;
    if (isDarknetCfgPath(o.compare)) {
      std::string w = o.compare.substr(0, o.compare.size() - 4) + ".weights";
      flo.weightsPath = llvm::sys::fs::exists(w) ? w : o.weights;
    }
    floatModule = loadModel(&ctx, flo);
    if (!floatModule)
      return 1;
    ExecutorOptions feo = eo;
    feo.timeSteps = true;
    floatEx = Executor::create(*floatModule, feo, error);
    if (!floatEx)
      return fail("--compare: " + error);
    if (floatEx->inputShape() != executor->inputShape())
      return fail("--compare: the models have different inputs (" +
                  executor->inputShape().str() + " vs " +
                  floatEx->inputShape().str() + ")");
    if (floatEx->steps().size() != steps.size()) {
      // A restructured model (factorized, pruned, new backbone): its layers
      // do not correspond one to one; the outputs (heads) still do.
      if (floatEx->outputSteps().size() != executor->outputSteps().size())
        return fail("--compare: the models have different outputs (" +
                    std::to_string(executor->outputSteps().size()) + " vs " +
                    std::to_string(floatEx->outputSteps().size()) + ")");
      outputsOnly = true;
      printf("note: the models have different layers (%zu vs %zu): comparing "
             "their outputs, detections and mAP\n",
             steps.size(), floatEx->steps().size());
    } else {
      floatEx->setStepHook(
          [&](size_t i) { floatOut[i] = floatEx->stepOutput(i).toFloat(); });
    }
  }
  // --overflow-report: int8 convolutions' inputs, per image.
  struct OverflowSeries {
    std::vector<double> products, accumulators;
  };
  std::vector<OverflowSeries> overflow(steps.size());
  bool anyInt8Conv = false;
  for (const StepInfo &s : steps)
    anyInt8Conv |= isa<Conv2DOp>(s.head) && s.precision == "int8";
  if (o.overflowReport && !anyInt8Conv)
    return fail("--overflow-report: the model has no int8 convolutions "
                "(quantize it, or use --mode int8)");
  collect |= !o.compare.empty() || o.overflowReport;
  if (collect)
    executor->setStepHook([&](size_t i) {
      rt::Tensor out = executor->stepOutput(i);
      if (o.layerStats)
        stats[i] = computeStats(out);
      if (!o.dumpLayers.empty() && dumpError.empty()) {
        char name[64];
        snprintf(name, sizeof name, "/%03lld_%s.npy", (long long)steps[i].layer,
                 steps[i].kind.c_str());
        rt::writeNpy(o.dumpLayers + name, out, dumpError);
      }
      if (!o.compare.empty()) {
        quantOut[i] = out.toFloat();
        clipRange[i] = eval::representableRange(out);
      }
      if (o.overflowReport && isa<Conv2DOp>(steps[i].head) &&
          steps[i].precision == "int8") {
        std::vector<rt::Tensor> ins = executor->stepInputs(i);
        auto s = eval::analyzeOverflow(cast<Conv2DOp>(steps[i].head),
                                               ins[0]);
        overflow[i].products.push_back(s.productPercent);
        overflow[i].accumulators.push_back(s.accumulatorPercent);
      }
    });

  std::vector<std::string> images;
  if (!o.image.empty() && !listImages(o.image, images, error))
    return fail(error);
  if (o.maxImages > 0 && (int)images.size() > o.maxImages)
    images.resize(o.maxImages);
  bool batch = images.size() > 1 || llvm::sys::fs::is_directory(o.image);
  if (!o.eval.empty() && info.isClassifier())
    return fail("--eval needs a detection model");

  rt::Preprocess pre = choosePreprocess(info, io.letterbox);
  json jsonImages = json::array();
  std::unique_ptr<rt::MapEvaluator> evaluator;
  if (!o.eval.empty())
    evaluator = std::make_unique<rt::MapEvaluator>(info.classes());
  size_t totalDetections = 0, failedImages = 0;
  double totalMs = 0;
  if (batch && !o.draw.empty())
    if (auto ec = llvm::sys::fs::create_directories(o.draw))
      return fail("cannot create '" + o.draw + "': " + ec.message());

  ProgressBar progress("images", images.size(), batch);
  for (size_t n = 0; n < images.size(); ++n) {
    const std::string &path = images[n];
    rt::Image image;
    if (!rt::loadImage(path, image, error, 64ll << 20)) {
      if (!batch)
        return fail(error);
      fprintf(stderr, "\nqsim-run: warning: skipping %s\n", error.c_str());
      ++failedImages;
      continue;
    }
    InferenceOptions runOpts = io;
    if (evaluator)
      runOpts.thresh = 0.005f; // what `detector map` collects
    InferenceResult r;
    try {
      r = runImage(*executor, info, image, runOpts);
    } catch (const std::exception &e) {
      return fail(path + ": " + e.what());
    }
    if (!dumpError.empty())
      return fail(dumpError);
    if (floatEx) {
      for (size_t i = 0; i < steps.size(); ++i)
        msQuant[i] += executor->stepMillis()[i];
      InferenceResult fr;
      try {
        fr = runImage(*floatEx, describeModel(*floatModule, *floatEx), image,
                      runOpts);
      } catch (const std::exception &e) {
        return fail(o.compare + ": " + e.what());
      }
      if (outputsOnly) {
        std::vector<rt::Tensor> qo = executor->outputs(),
                                fo = floatEx->outputs();
        for (size_t k = 0; k < qo.size(); ++k) {
          auto [lo, hi] = eval::representableRange(qo[k]);
          comparisons[k].add(fo[k].toFloat(), qo[k].toFloat(), lo, hi);
        }
        for (double t : floatEx->stepMillis())
          msFloat[0] += t;
      } else {
        for (size_t i = 0; i < steps.size(); ++i) {
          comparisons[i].add(floatOut[i], quantOut[i], clipRange[i].first,
                             clipRange[i].second);
          msFloat[i] += floatEx->stepMillis()[i];
        }
      }
      // Agreement of the final detections: each float detection matched by
      // a quantized one of the same class with IoU >= 0.5 (one to one).
      auto fRep =
          rt::reportDetections(fr.detections, fr.imageW, fr.imageH, o.thresh);
      auto qRep =
          rt::reportDetections(r.detections, r.imageW, r.imageH, o.thresh);
      std::vector<char> used(qRep.size(), 0);
      for (const auto &f : fRep) {
        for (size_t k = 0; k < qRep.size(); ++k)
          if (!used[k] && qRep[k].classId == f.classId &&
              rt::boxIou(qRep[k].rel, f.rel) >= 0.5f) {
            used[k] = 1;
            ++matchedDets;
            break;
          }
      }
      floatDets += fRep.size();
      quantDets += qRep.size();
      if (evaluator) {
        if (!floatEval)
          floatEval = std::make_unique<rt::MapEvaluator>(info.classes());
        std::vector<rt::GroundTruth> truth;
        bool missing = false;
        std::string lerr;
        if (rt::readYoloLabels(rt::labelPathForImage(path, o.eval), truth,
                               missing, lerr))
          floatEval->addImage(fr.detections, truth);
      }
    }
    if (!o.dumpLayers.empty()) {
      rt::Tensor input = rt::makeNetworkInput(image, info.netW, info.netH, pre);
      if (!rt::writeNpy(o.dumpLayers + "/input.npy", input, error))
        return fail(error);
    }
    if (evaluator) {
      std::vector<rt::GroundTruth> truth;
      bool missing = false;
      std::string lp = rt::labelPathForImage(path, o.eval);
      if (!rt::readYoloLabels(lp, truth, missing, error))
        return fail(error);
      evaluator->addImage(r.detections, truth);
      // Report at the user's threshold.
      r.reported =
          rt::reportDetections(r.detections, r.imageW, r.imageH, o.thresh);
    }
    totalDetections += r.reported.size();
    totalMs += r.forwardMillis;
    if (!o.quiet && !(batch && evaluator)) {
      if (batch)
        fprintf(stderr, "\r\033[K");
      printResult(path, r, names, preprocessName(pre));
    }
    if (!o.jsonOut.empty()) {
      json j = {{"image", path},
                {"width", r.imageW},
                {"height", r.imageH},
                {"forward_ms", r.forwardMillis}};
      if (!r.top.empty()) {
        json top = json::array();
        for (auto [id, p] : r.top)
          top.push_back(
              {{"class_id", id}, {"name", className(names, id)}, {"prob", p}});
        j["top"] = top;
      } else {
        j["detections"] = detectionsJson(r, names);
      }
      jsonImages.push_back(j);
    }
    if (!o.draw.empty() && !info.isClassifier()) {
      std::string out = o.draw;
      if (batch)
        out += "/" + llvm::sys::path::stem(path).str() + ".png";
      if (!drawResult(image, r, names, info.classes(), out, error))
        return fail(error);
    }
    progress.update(n + 1);
  }
  progress.finish();

  if (batch)
    printf("summary: %zu images (%zu unreadable), %zu detections, mean "
           "forward %.1f ms\n",
           images.size(), failedImages, totalDetections,
           images.size() > failedImages
               ? totalMs / (images.size() - failedImages)
               : 0.0);
  json evalJson;
  if (evaluator) {
    rt::MapResult m = evaluator->compute(0.5f, 0, o.thresh);
    double m5095 = evaluator->mapRange();
    printf("mAP@0.50 = %.4f (%.2f %%), mAP@0.50:0.95 = %.4f, %d images, %d "
           "ground-truth boxes\n",
           m.map, m.map * 100, m5095, m.images, m.groundTruth);
    printf("at thresh %.2f: precision %.2f, recall %.2f, F1 %.2f, TP %d, FP "
           "%d, FN %d, average IoU %.2f %%\n",
           o.thresh, m.precision, m.recall, m.f1, m.tp, m.fp, m.fn,
           m.avgIou * 100);
    evalJson = {
        {"map50", m.map},     {"map50_95", m5095}, {"precision", m.precision},
        {"recall", m.recall}, {"f1", m.f1},        {"tp", m.tp},
        {"fp", m.fp},         {"fn", m.fn},        {"avg_iou", m.avgIou}};
    json per = json::array();
    for (const auto &c : m.perClass)
      per.push_back({{"class_id", c.classId},
                     {"name", className(names, c.classId)},
                     {"ap", c.ap},
                     {"ground_truth", c.groundTruth}});
    evalJson["per_class"] = per;
  }

  if (floatEx) {
    size_t n = images.size() - failedImages;
    printf("comparison against %s over %zu image(s)\n", o.compare.c_str(), n);
    printf("%5s  %-15s %-5s %9s %9s %11s %11s %8s %8s %8s\n", "layer", "type",
           "prec", "SQNR dB", "cosine", "max abs", "mean abs", "clipped", "ms",
           "ms fp");
    if (outputsOnly) {
      // Model outputs only (ms: the whole forward pass).
      double tq = 0;
      for (double t : msQuant)
        tq += t;
      const auto &outs = executor->outputSteps();
      for (size_t k = 0; k < outs.size(); ++k) {
        const auto &c = comparisons[k];
        const StepInfo &st = steps[outs[k]];
        char msQ[32] = "", msF[32] = "";
        if (k == 0) {
          snprintf(msQ, sizeof msQ, "%.3f", n ? tq / n : 0.0);
          snprintf(msF, sizeof msF, "%.3f", n ? msFloat[0] / n : 0.0);
        }
        printf("%5lld  %-15s %-5s %9.2f %9.6f %11.5g %11.5g %7.2f%% %8s %8s\n",
               (long long)st.layer, ("output " + std::to_string(k)).c_str(),
               st.precision.c_str(), c.sqnrDb(), c.cosine(), c.maxAbsErr,
               c.meanAbsErr(), c.clippedPercent(), msQ, msF);
      }
    }
    for (size_t i = 0; i < steps.size() && !outputsOnly; ++i) {
      const auto &c = comparisons[i];
      printf(
          "%5lld  %-15s %-5s %9.2f %9.6f %11.5g %11.5g %7.2f%% %8.3f %8.3f\n",
          (long long)steps[i].layer, steps[i].kind.c_str(),
          steps[i].precision.c_str(), c.sqnrDb(), c.cosine(), c.maxAbsErr,
          c.meanAbsErr(), c.clippedPercent(), n ? msQuant[i] / n : 0.0,
          n ? msFloat[i] / n : 0.0);
    }
    double tq = 0, tf = 0;
    for (size_t i = 0; i < steps.size(); ++i) {
      tq += msQuant[i];
      tf += msFloat[i];
    }
    printf("detections at thresh %.2f: %zu of %zu float detections matched "
           "(same class, IoU >= 0.5); %zu quantized detections\n",
           o.thresh, matchedDets, floatDets, quantDets);
    if (evaluator && floatEval) {
      double qm = evaluator->compute(0.5f, 0, o.thresh).map;
      double fm = floatEval->compute(0.5f, 0, o.thresh).map;
      printf("mAP@0.50: %.2f %% vs float %.2f %% (%+.2f points)\n", qm * 100,
             fm * 100, (qm - fm) * 100);
    }
    auto qs = computeModelStats(*module), fs = computeModelStats(*floatModule);
    if (succeeded(qs) && succeeded(fs))
      printf("weights: %.1f KiB vs float %.1f KiB (%.2fx smaller)\n",
             qs->weightBytes / 1024.0, fs->weightBytes / 1024.0,
             qs->weightBytes ? (double)fs->weightBytes / qs->weightBytes : 0.0);
    printf(
        "forward (sum of layers, mean per image): %.2f ms vs float %.2f ms\n",
        n ? tq / n : 0.0, n ? tf / n : 0.0);
  }

  if (o.overflowReport) {
    printf("overflow of int8 convolutions over %zu image(s): %% of int8 x int8 "
           "products outside int8, %% of accumulations leaving int16\n",
           images.size() - failedImages);
    printf("%5s  %-14s %8s %8s %8s  %8s %8s %8s  %s\n", "layer", "output",
           "prod avg", "max", "min", "acc avg", "max", "min",
           "worst-case bits");
    for (size_t i = 0; i < steps.size(); ++i) {
      const auto &s = overflow[i];
      if (s.products.empty())
        continue;
      auto stat = [](const std::vector<double> &v, double &avg, double &mx,
                     double &mn) {
        avg = 0;
        mx = -1;
        mn = 1e300;
        for (double x : v) {
          avg += x;
          mx = std::max(mx, x);
          mn = std::min(mn, x);
        }
        avg /= v.size();
      };
      double pa, px, pn, aa, ax, an;
      stat(s.products, pa, px, pn);
      stat(s.accumulators, aa, ax, an);
      printf(
          "%5lld  %-14s %7.2f%% %7.2f%% %7.2f%%  %7.2f%% %7.2f%% %7.2f%%  %d\n",
          (long long)steps[i].layer, steps[i].output.str().c_str(), pa, px, pn,
          aa, ax, an,
          eval::staticAccumulatorBits(cast<Conv2DOp>(steps[i].head)));
    }
  }

  if (o.layerStats) {
    printf("%5s  %-15s %-14s %12s %12s %12s %12s %8s\n", "layer", "type",
           "output", "min", "max", "mean", "std", "zeros");
    for (size_t i = 0; i < steps.size(); ++i)
      printf("%5lld  %-15s %-14s %12.5g %12.5g %12.5g %12.5g %7.2f%%\n",
             (long long)steps[i].layer, steps[i].kind.c_str(),
             steps[i].output.str().c_str(), stats[i].min, stats[i].max,
             stats[i].mean, stats[i].std,
             stats[i].count ? 100.0 * stats[i].zeros / stats[i].count : 0.0);
  }

  if (o.repeat > 0) {
    if (images.empty()) {
      rt::Tensor input(rt::DType::F32, info.netC, info.netH, info.netW);
      std::fill(input.f32(), input.f32() + input.numel(), 0.5f);
      executor->setInput(input);
    }
    executor->setStepHook(nullptr);
    executor->run(); // warm-up
    std::vector<double> times;
    std::vector<std::vector<double>> perStep(steps.size());
    for (int r = 0; r < o.repeat; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      executor->run();
      times.push_back(std::chrono::duration<double, std::milli>(
                          std::chrono::steady_clock::now() - t0)
                          .count());
      if (o.timeLayers)
        for (size_t i = 0; i < steps.size(); ++i)
          perStep[i].push_back(executor->stepMillis()[i]);
    }
    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v.empty() ? 0.0 : v[v.size() / 2];
    };
    printf("forward: median %.2f ms over %d runs (min %.2f, max %.2f), %d "
           "threads, %s kernels\n",
           median(times), o.repeat,
           *std::min_element(times.begin(), times.end()),
           *std::max_element(times.begin(), times.end()),
           executor->options().threads, o.kernels.c_str());
    if (o.timeLayers) {
      std::vector<double> med(steps.size());
      for (size_t i = 0; i < steps.size(); ++i)
        med[i] = median(perStep[i]);
      // Replace the single-run timings printed below by the medians.
      const_cast<std::vector<double> &>(executor->stepMillis()) = med;
    }
  }

  if (o.timeLayers) {
    const auto &ms = executor->stepMillis();
    double total = 0;
    for (double t : ms)
      total += t;
    printf("%5s  %-15s %-14s %9s %7s\n", "layer", "type", "output", "ms",
           "share");
    for (size_t i = 0; i < steps.size(); ++i)
      printf("%5lld  %-15s %-14s %9.3f %6.1f%% %s\n", (long long)steps[i].layer,
             steps[i].kind.c_str(), steps[i].output.str().c_str(), ms[i],
             total > 0 ? 100 * ms[i] / total : 0.0,
             bar(total > 0 ? ms[i] / total : 0).c_str());
    printf("total  %9.3f ms\n", total);
  }

  if (!o.jsonOut.empty()) {
    json root = {{"model", o.model}, {"images", jsonImages}};
    if (evaluator)
      root["evaluation"] = evalJson;
    if (failed(writeFileAtomically(
            o.jsonOut,
            [&](llvm::raw_ostream &os) {
              os << root.dump(1) << "\n";
              return mlir::success();
            },
            error)))
      return fail(error);
  }
  return 0;
}
