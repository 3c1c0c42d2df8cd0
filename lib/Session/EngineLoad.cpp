//===- EngineLoad.cpp - loading and saving a session's model -------------===//
//
// load (a model, quantized in the session or not, and/or an image), info,
// save.
//
//===----------------------------------------------------------------------===//

#include "EngineState.h"
#include "qsim/Dialect/QSim/IR/LayerStats.h"
#include "qsim/Quant/Calibration.h"
#include "qsim/Target/ModelIO.h"

#include "llvm/Support/FileSystem.h"

using namespace mlir;
using namespace qsim;
using namespace qsim::session;
using namespace qsim::session::handlers;

/// Where the model of a load request is, checked against the limits.
static ModelLoadOptions modelLoadOptions(Engine::State &s, const json &req) {
  ModelLoadOptions lo;
  lo.path = s.path(req, "model", false);
  lo.weightsPath = s.path(req, "weights", false, false);
  if (req.contains("random_weights")) {
    if (!req["random_weights"].is_number_integer() ||
        req["random_weights"].get<int64_t>() < 0)
      reject("'random_weights' must be a non-negative integer seed");
    lo.randomSeed = req["random_weights"].get<uint64_t>();
  }
  for (const std::string &p : {lo.path, lo.weightsPath}) {
    if (p.empty())
      continue;
    uint64_t size = 0;
    if (llvm::sys::fs::file_size(p, size))
      reject("cannot open '" + p + "'");
    if ((int64_t)size > s.opts.limits.maxModelBytes)
      reject("'" + p + "' is " + std::to_string(size) +
             " bytes, over the session's limit of " +
             std::to_string(s.opts.limits.maxModelBytes));
  }
  return lo;
}

/// How a load request wants the model quantized (mode, precision, calib,
/// calib_method, calib_images, quantize).
static QuantizeRequest quantizeRequest(Engine::State &s, const json &req) {
  QuantizeRequest q;
  std::string mode = s.str(req, "mode", false);
  auto preset = parseRunMode(mode);
  if (!preset)
    reject("unknown mode '" + mode + "' (float, hybrid, int8, fp16)");
  q.preset = *preset;
  q.precision = s.str(req, "precision", false);
  if (std::string calib = s.path(req, "calib", false, false); !calib.empty())
    q.calib = {calib};
  std::string method = req.value("calib_method", std::string("minmax"));
  if (!quantization::parseCalibrationMethod(method, q.calibMethod))
    reject("unknown calib_method '" + method +
           "' (minmax, percentile, entropy, mse, log2)");
  q.calibImages = req.value("calib_images", 100);
  q.calibProgress = false;
  q.quantize = s.str(req, "quantize", false);
  return q;
}

/// A new model: the run model and its float twin (none for a quantized
/// model; calibrated when calibration images come with a float one).
static void loadModelInto(Engine::State &s, const json &req) {
  ModelLoadOptions lo = modelLoadOptions(s, req);
  QuantizeRequest q = quantizeRequest(s, req);
  auto loaded = loadModel(s.ctx.get(), lo);
  if (!loaded)
    reject(s.takeDiagnostics("cannot load '" + lo.path + "'"));
  OwningOpRef<ModuleOp> floatTwin, run;
  std::string error;
  if (loaded->getOperation()->hasAttr("qsim.quantization")) {
    if (!q.empty())
      reject("the model is already quantized; mode/precision apply to "
             "float models");
    run = std::move(loaded);
  } else if (q.empty()) {
    floatTwin = loaded->clone();
    if (!q.calib.empty()) {
      // Calibrated float twin: crossing a layer to int8 uses its ranges.
      QuantizeRequest cq = q;
      cq.alwaysCalibrate = true;
      if (failed(prepareQuantization(*floatTwin, cq, error)))
        reject(s.takeDiagnostics(error));
    }
    run = std::move(loaded);
  } else {
    if (failed(prepareQuantization(*loaded, q, error)))
      reject(s.takeDiagnostics(error));
    run = loaded->clone();
    if (failed(applyQuantization(*run, q, error)))
      reject(s.takeDiagnostics(error));
    floatTwin = std::move(loaded);
  }
  s.preEdit.reset();
  s.floatModule = std::move(floatTwin);
  s.runModule = std::move(run);
  s.quant = q;
  s.overrides.clear();
  s.breakpoints.clear();
  s.sqnrBreak.reset();
  s.edits = 0;
  s.modelPath = req["model"].get<std::string>();
  s.buildExecutor();
}

static void loadImageInto(Engine::State &s, const json &req) {
  s.requireModel();
  std::string path = s.path(req, "image", false);
  rt::Image im;
  std::string error;
  if (!rt::loadImage(path, im, error, s.opts.limits.maxImagePixels))
    reject(error);
  s.image = std::move(im);
  s.haveImage = true;
  s.imagePath = req["image"].get<std::string>();
  s.ensureFresh();
  s.makeInput();
}

json handlers::cmdLoad(Engine::State &s, const json &req, SessionControl &) {
  bool newModel = req.contains("model");
  if (!newModel && !req.contains("image"))
    reject("load needs 'model' and/or 'image'");
  if (newModel)
    loadModelInto(s, req);
  if (req.contains("image"))
    loadImageInto(s, req);
  json r = {
      {"model", s.modelPath},
      {"layers", (int64_t)s.steps.size()},
      {"input", shapeJson(s.input)},
      {"quantized", s.runModule->getOperation()->hasAttr("qsim.quantization")},
      {"float_shadow", (bool)s.floatModule},
      {"position", s.position}};
  if (s.haveImage)
    r["image"] = {
        {"path", s.imagePath}, {"width", s.image.w}, {"height", s.image.h}};
  else
    r["image"] = nullptr;
  return r;
}

json handlers::cmdInfo(Engine::State &s, const json &, SessionControl &) {
  s.requireModel();
  json layers = json::array();
  auto stats = computeModelStats(*s.runModule);
  for (size_t i = 0; i < s.steps.size(); ++i) {
    const auto &st = s.steps[i];
    json l = {{"index", st.layer},
              {"kind", st.kind},
              {"output", {st.output.c, st.output.h, st.output.w}},
              {"inputs", st.inputLayers},
              {"precision", st.precision},
              {"macs", st.macs}};
    if (succeeded(stats) && i < stats->layers.size())
      l["params"] = stats->layers[i].params;
    layers.push_back(l);
  }
  json r = {{"model", s.modelPath},
            {"layers", layers},
            {"position", s.position},
            {"breakpoints", s.breakpoints},
            {"sqnr_below", s.sqnrBreak ? json(*s.sqnrBreak) : json(nullptr)},
            {"weights_edited", s.edits},
            {"float_shadow", (bool)s.floatModule}};
  r["image"] = s.haveImage ? json(s.imagePath) : json(nullptr);
  return r;
}

json handlers::cmdSave(Engine::State &s, const json &req, SessionControl &) {
  s.requireModel();
  std::string file = s.path(req, "file", true);
  std::string error;
  bool bytecode = extensionOf(file) != ".mlir";
  if (failed(saveModel(*s.runModule, file, bytecode, error)))
    reject(error);
  return {{"file", req["file"]}, {"edits", s.edits}, {"bytecode", bytecode}};
}
