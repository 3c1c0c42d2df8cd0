//===- Engine.cpp - the step and cross inference session -----------------===//

#include "qsim/Session/Engine.h"
#include "qsim/Dialect/QSim/IR/LayerStats.h"
#include "qsim/Evaluation/Inference.h"
#include "qsim/Evaluation/LayerAnalysis.h"
#include "qsim/Evaluation/RunStatistics.h"
#include "qsim/Interpreter/Executor.h"
#include "qsim/Quant/Calibration.h"
#include "qsim/Quant/Precision.h"
#include "qsim/Quant/Quantizer.h"
#include "qsim/Runtime/Image.h"
#include "qsim/Session/Render.h"
#include "qsim/Support/Diagnostics.h"
#include "qsim/Target/ModelIO.h"
#include "qsim/Transforms/Passes.h"
#include "qsim/Transforms/QuantizePipeline.h"

#include "mlir/Dialect/Quant/QuantTypes.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <cmath>
#include <map>
#include <optional>
#include <set>

using namespace mlir;
using namespace qsim;
using namespace qsim::session;

//===----------------------------------------------------------------------===//
// SessionControl
//===----------------------------------------------------------------------===//

void SessionControl::begin(const std::string &cmd, double seconds) {
  std::lock_guard<std::mutex> l(m);
  command = cmd;
  paused = stopRequested = timedOut = false;
  position = total = 0;
  started = std::chrono::steady_clock::now();
  hasDeadline = seconds > 0;
  if (hasDeadline)
    deadline = started + std::chrono::microseconds((int64_t)(seconds * 1e6));
  running = true;
}

void SessionControl::end() {
  std::lock_guard<std::mutex> l(m);
  running = false;
  paused = false;
  command.clear();
  cv.notify_all();
}

bool SessionControl::checkpoint(int64_t pos, int64_t tot) {
  std::unique_lock<std::mutex> l(m);
  position = pos;
  total = tot;
  while (paused && !stopRequested) {
    if (hasDeadline) {
      if (cv.wait_until(l, deadline) == std::cv_status::timeout) {
        timedOut = true;
        return false;
      }
    } else {
      cv.wait(l);
    }
  }
  if (stopRequested)
    return false;
  if (hasDeadline && std::chrono::steady_clock::now() >= deadline) {
    timedOut = true;
    return false;
  }
  return true;
}

void SessionControl::pause() {
  std::lock_guard<std::mutex> l(m);
  paused = true;
}
void SessionControl::resume() {
  std::lock_guard<std::mutex> l(m);
  paused = false;
  cv.notify_all();
}
void SessionControl::stop() {
  std::lock_guard<std::mutex> l(m);
  stopRequested = true;
  cv.notify_all();
}
std::string SessionControl::stopReason() const {
  std::lock_guard<std::mutex> l(m);
  return timedOut ? "time limit" : "stopped";
}

json SessionControl::status() const {
  std::lock_guard<std::mutex> l(m);
  json j = {{"running", (bool)running}};
  if (running) {
    j["command"] = command;
    j["paused"] = paused;
    j["position"] = position;
    j["total"] = total;
    j["seconds"] = std::chrono::duration<double>(
                       std::chrono::steady_clock::now() - started)
                       .count();
  }
  return j;
}

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

namespace {

/// An error reply; thrown inside handlers and turned into {"ok": false}.
struct RequestError {
  std::string message;
};
[[noreturn]] void reject(const std::string &msg) { throw RequestError{msg}; }

/// JSON has no infinities: SQNR of identical tensors is "inf".
json number(double v) {
  if (std::isnan(v))
    return nullptr;
  if (std::isinf(v))
    return v > 0 ? "inf" : "-inf";
  return v;
}

json shapeJson(const rt::Tensor &t) { return {t.c(), t.h(), t.w()}; }

json summary(const std::vector<float> &v) {
  eval::TensorStats s = eval::computeTensorStats(v);
  return {{"min", s.min}, {"max", s.max},     {"mean", s.mean},
          {"std", s.std}, {"zeros", s.zeros}, {"count", s.count}};
}

json compareJson(const std::vector<float> &ref,
                 const std::vector<float> &test) {
  eval::LayerComparison c;
  c.add(ref, test, 1.0f, 0.0f);
  return {{"sqnr_db", number(c.sqnrDb())},
          {"cosine", number(c.cosine())},
          {"max_abs", c.maxAbsErr},
          {"mean_abs", c.meanAbsErr()}};
}

std::string extensionOf(const std::string &path) {
  return llvm::sys::path::extension(path).lower();
}

} // namespace

//===----------------------------------------------------------------------===//
// Engine state
//===----------------------------------------------------------------------===//

struct Engine::State {
  Options opts;
  std::unique_ptr<MLIRContext> ctx;
  std::string diagnostics; // of the current request
  std::unique_ptr<ScopedDiagnosticHandler> handler;

  /// The float twin (batch norms folded and calibrated when the session
  /// quantized the model; null when a quantized model was loaded).
  OwningOpRef<ModuleOp> floatModule;
  OwningOpRef<ModuleOp> runModule;
  std::unique_ptr<interp::Executor> ex, shadow;
  /// The executor as it was before the first weight edit not yet shown by
  /// rerun: the "before" of rerun's comparison.
  std::unique_ptr<interp::Executor> preEdit;
  eval::ModelInfo info;
  std::vector<interp::StepInfo> steps;
  std::string modelPath, imagePath;
  rt::Image image;
  bool haveImage = false;
  rt::Tensor input;
  int64_t position = 0, shadowPosition = 0;
  bool stale = false; // weights edited since the executor was built
  std::set<int64_t> breakpoints;
  std::optional<double> sqnrBreak;
  QuantizeRequest quant;
  std::map<int64_t, std::string> overrides;
  int64_t edits = 0;

  explicit State(const Options &o) : opts(o) {
    DialectRegistry registry;
    registerQSimDialects(registry);
    ctx = std::make_unique<MLIRContext>(registry);
    ctx->loadAllAvailableDialects();
    ctx->printOpOnDiagnostic(false);
    // Diagnostics become the error message of the request that caused them.
    handler = std::make_unique<ScopedDiagnosticHandler>(
        ctx.get(), [this](Diagnostic &d) {
          if (d.getSeverity() != DiagnosticSeverity::Error)
            return success();
          std::string loc = formatLocation(d.getLocation());
          if (!diagnostics.empty())
            diagnostics += "; ";
          diagnostics += (loc.empty() ? "" : loc + ": ") + d.str();
          return success();
        });
  }

  std::string takeDiagnostics(const std::string &fallback) {
    std::string d = diagnostics.empty() ? fallback : diagnostics;
    diagnostics.clear();
    return d;
  }

  // --- model and input ---------------------------------------------------

  void requireModel() {
    if (!runModule)
      reject("no model loaded (send {\"cmd\": \"load\", \"model\": PATH})");
  }

  int64_t layerArg(const json &req, const char *key = "layer") {
    requireModel();
    if (!req.contains(key) || !req[key].is_number_integer())
      reject(std::string("'") + key + "' must be a layer index");
    int64_t n = req[key].get<int64_t>();
    if (n < 0 || n >= (int64_t)steps.size())
      reject("layer " + std::to_string(n) + " does not exist (the model has " +
             std::to_string(steps.size()) + " layers)");
    return n;
  }

  void requireRan(int64_t n) {
    if (n >= position)
      reject("layer " + std::to_string(n) + " has not run yet (next layer: " +
             std::to_string(position) + "); step, continue or run-to first");
  }

  /// A file named by a request, checked against the session root.
  std::string path(const json &req, const char *key, bool forWrite,
                   bool required = true) {
    std::string p = str(req, key, required);
    if (p.empty() || opts.rootDir.empty())
      return p;
    llvm::SmallString<256> root, full;
    if (llvm::sys::fs::real_path(opts.rootDir, root))
      reject("the session root '" + opts.rootDir + "' does not exist");
    if (llvm::sys::path::is_absolute(p))
      full = p;
    else {
      full = root;
      llvm::sys::path::append(full, p);
    }
    llvm::sys::path::remove_dots(full, /*remove_dot_dot=*/true);
    auto inside = [&](llvm::StringRef x) {
      return x == root.str() ||
             (x.starts_with(root.str()) && x.size() > root.size() &&
              llvm::sys::path::is_separator(x[root.size()]));
    };
    llvm::SmallString<256> real;
    if (!forWrite) {
      if (llvm::sys::fs::real_path(full, real))
        reject("no such file: '" + p + "'");
    } else {
      // The directory must be inside; the file itself must not be a link.
      llvm::SmallString<256> dir(full);
      llvm::sys::path::remove_filename(dir);
      if (llvm::sys::fs::real_path(dir, real))
        reject("no such directory for '" + p + "'");
      llvm::sys::path::append(real, llvm::sys::path::filename(full));
      llvm::sys::fs::file_status st;
      if (!llvm::sys::fs::status(full, st, /*follow=*/false) &&
          st.type() == llvm::sys::fs::file_type::symlink_file)
        reject("'" + p + "' is a symbolic link: refused");
    }
    if (!inside(real))
      reject("'" + p + "' is outside the session's directory");
    return std::string(real.str());
  }

  std::string str(const json &req, const char *key, bool required = true) {
    if (!req.contains(key)) {
      if (required)
        reject(std::string("'") + key + "' is required");
      return "";
    }
    if (!req[key].is_string())
      reject(std::string("'") + key + "' must be a string");
    return req[key].get<std::string>();
  }

  void buildExecutor() {
    interp::ExecutorOptions eo;
    eo.kernels = opts.referenceKernels ? interp::KernelSet::Reference
                                       : interp::KernelSet::Fast;
    eo.threads = opts.threads;
    eo.keepAllOutputs = true;
    std::string error;
    auto e = interp::Executor::create(*runModule, eo, error);
    if (!e)
      reject(error);
    ex = std::move(e);
    steps = ex->steps();
    info = eval::describeModel(*runModule, *ex);
    stale = false;
    shadow.reset();
    shadowPosition = 0;
    makeInput(/*keepPreEdit=*/true);
  }

  void makeInput(bool keepPreEdit = false) {
    if (haveImage) {
      input = rt::makeNetworkInput(image, info.netW, info.netH,
                                   eval::choosePreprocess(info, std::nullopt));
    } else {
      // No image yet: a mid-grey input, so that layers can still be stepped.
      input = rt::Tensor(rt::DType::F32, info.netC, info.netH, info.netW);
      std::fill(input.f32(), input.f32() + input.numel(), 0.5f);
    }
    ex->setInput(input);
    position = 0;
    shadowPosition = 0;
    if (!keepPreEdit)
      preEdit.reset(); // its outputs belong to the previous run
    if (shadow)
      shadow->setInput(input);
  }

  void runStep(int64_t i) {
    try {
      ex->runStep(i);
    } catch (const std::exception &e) {
      reject("layer " + std::to_string(i) + ": " + e.what());
    }
  }

  /// After an edit or a precision change: rebuild the plan and run again up
  /// to the current position.
  void rebuildAndReplay() {
    int64_t pos = position;
    if (stale && !preEdit)
      preEdit = std::move(ex);
    buildExecutor();
    for (int64_t i = 0; i < pos; ++i)
      runStep(i);
    position = pos;
  }

  void ensureFresh() {
    if (stale)
      rebuildAndReplay();
  }

  /// The float shadow run up to layer n (inclusive).
  void shadowTo(int64_t n) {
    if (!floatModule)
      reject("no float model to compare with (a quantized model was loaded: "
             "load the float model with mode= to quantize it in the session)");
    if (!shadow) {
      interp::ExecutorOptions eo;
      eo.threads = opts.threads;
      eo.keepAllOutputs = true;
      std::string error;
      shadow = interp::Executor::create(*floatModule, eo, error);
      if (!shadow)
        reject("float shadow: " + error);
      if (shadow->steps().size() != steps.size())
        reject("the float model has different layers");
      shadow->setInput(input);
      shadowPosition = 0;
    }
    for (; shadowPosition <= n; ++shadowPosition)
      shadow->runStep(shadowPosition);
  }

  rt::Tensor tensorOf(int64_t n, const std::string &what, int64_t inputIndex) {
    requireRan(n);
    ensureFresh();
    if (what == "output")
      return ex->stepOutput(n);
    if (what == "input") {
      std::vector<rt::Tensor> ins = ex->stepInputs(n);
      if (inputIndex < 0 || inputIndex >= (int64_t)ins.size())
        reject("layer " + std::to_string(n) + " has " +
               std::to_string(ins.size()) + " input(s)");
      return ins[inputIndex];
    }
    reject("'what' must be input, output or weights");
  }

  // --- weights -------------------------------------------------------------

  struct Weights {
    std::vector<float> values; // real values
    std::vector<int64_t> shape;
    std::vector<float> scales; // int8: per output channel (or one)
    bool int8 = false, f16 = false;
  };

  Operation *weightOp(int64_t n) {
    Operation *head = steps[n].head;
    if (!head->getAttrOfType<ElementsAttr>("weight"))
      reject("layer " + std::to_string(n) + " (" + steps[n].kind +
             ") has no weights");
    return head;
  }

  Weights weightsOf(int64_t n) {
    Operation *op = weightOp(n);
    auto attr = op->getAttrOfType<ElementsAttr>("weight");
    Weights w;
    auto dims = attr.getShapedType().getShape();
    w.shape.assign(dims.begin(), dims.end());
    Type el = attr.getShapedType().getElementType();
    if (el.isInteger(8)) {
      w.int8 = true;
      auto wq = op->getAttrOfType<TypeAttr>("weight_quant");
      if (!wq)
        reject("layer " + std::to_string(n) + ": int8 weights without scales");
      if (auto pa = dyn_cast<quant::UniformQuantizedPerAxisType>(wq.getValue()))
        for (double s : pa.getScales())
          w.scales.push_back((float)s);
      else if (auto u = dyn_cast<quant::UniformQuantizedType>(wq.getValue()))
        w.scales.push_back((float)u.getScale());
      ArrayRef<char> raw = getRawBytes(attr);
      int64_t rows = w.shape[0], per = attr.getNumElements() / rows;
      w.values.resize(attr.getNumElements());
      for (int64_t i = 0; i < attr.getNumElements(); ++i) {
        float s = w.scales.size() == 1 ? w.scales[0] : w.scales[i / per];
        w.values[i] = s * (int8_t)raw[i];
      }
    } else {
      w.f16 = el.isF16();
      w.values = getFloats(attr);
    }
    return w;
  }

  void setWeights(int64_t n, const Weights &w) {
    Operation *op = weightOp(n);
    auto attr = op->getAttrOfType<ElementsAttr>("weight");
    auto type = attr.getShapedType();
    std::string name = "edited_layer" + std::to_string(n) + "_weight";
    if (w.int8) {
      int64_t rows = w.shape[0], per = w.values.size() / rows;
      std::vector<int8_t> q(w.values.size());
      for (size_t i = 0; i < q.size(); ++i) {
        float s = w.scales.size() == 1 ? w.scales[0] : w.scales[i / per];
        q[i] = rt::quantizeWeight(w.values[i], s); // as the quantizer rounds
      }
      op->setAttr("weight", makeResourceAttr<int8_t>(type, name, q));
    } else if (w.f16) {
      std::vector<uint16_t> h(w.values.size());
      for (size_t i = 0; i < h.size(); ++i)
        h[i] = rt::floatToHalf(w.values[i]);
      op->setAttr("weight", makeResourceAttr<uint16_t>(type, name, h));
    } else {
      op->setAttr("weight", makeResourceAttr<float>(type, name, w.values));
    }
    stale = true;
    ++edits;
  }

  // --- precisions ----------------------------------------------------------

  /// The run model rebuilt from the float twin with the session's plan and
  /// the per-layer overrides.
  void requantize() {
    if (!floatModule)
      reject("no float model: precisions can only change when the session "
             "loaded a float model");
    OwningOpRef<ModuleOp> next = floatModule->clone();
    {
      if (failed(foldBatchNorms(*next)))
        reject(takeDiagnostics("folding batch norms failed"));
    }
    auto layers = getLayers(getMainFunc(*next));
    if (failed(layers))
      reject(takeDiagnostics("not a layer sequence"));
    for (auto &[n, p] : overrides)
      quantization::setAssignedPrecision((*layers)[n], p, "session");
    std::string error;
    if (failed(applyQuantization(*next, quant, error)))
      reject(takeDiagnostics(error));
    runModule = std::move(next);
    preEdit.reset();
    rebuildAndReplay();
  }
};

//===----------------------------------------------------------------------===//
// Engine
//===----------------------------------------------------------------------===//

Engine::Engine(const Options &o) : s(std::make_unique<State>(o)) {}
Engine::~Engine() = default;
const Engine::Options &Engine::options() const { return s->opts; }

bool Engine::isControlCommand(const std::string &cmd) {
  return cmd == "status" || cmd == "pause" || cmd == "resume" || cmd == "stop";
}

bool Engine::isLongCommand(const std::string &cmd) {
  return cmd == "load" || cmd == "continue" || cmd == "run-to" ||
         cmd == "step" || cmd == "rerun" || cmd == "set-precision" ||
         cmd == "compare" || cmd == "cross";
}

json Engine::handleControl(const json &req, SessionControl &control) {
  std::string cmd = req.value("cmd", "");
  if (cmd == "pause")
    control.pause();
  else if (cmd == "resume")
    control.resume();
  else if (cmd == "stop")
    control.stop();
  json r = {{"ok", true}, {"status", control.status()}};
  return r;
}

std::string Engine::handleLine(const std::string &line,
                               SessionControl &control) {
  json req;
  try {
    req = json::parse(line);
  } catch (const json::exception &e) {
    return json({{"ok", false},
                 {"error", std::string("malformed JSON: ") + e.what()}})
        .dump();
  }
  if (isControlCommand(req.is_object() ? req.value("cmd", "") : "")) {
    json r = handleControl(req, control);
    if (req.contains("id"))
      r["id"] = req["id"];
    return r.dump();
  }
  return handle(req, control).dump();
}

namespace {
using Handler = json (*)(Engine::State &, const json &, SessionControl &);
} // namespace

// The command handlers. Each returns the reply's payload (ok is added) or
// throws RequestError.

static json cmdLoad(Engine::State &s, const json &req, SessionControl &) {
  bool newModel = req.contains("model");
  if (!newModel && !req.contains("image"))
    reject("load needs 'model' and/or 'image'");
  if (newModel) {
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
    auto loaded = loadModel(s.ctx.get(), lo);
    if (!loaded)
      reject(s.takeDiagnostics("cannot load '" + lo.path + "'"));
    OwningOpRef<ModuleOp> floatTwin, run;
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
        std::string error;
        if (failed(prepareQuantization(*floatTwin, cq, error)))
          reject(s.takeDiagnostics(error));
      }
      run = std::move(loaded);
    } else {
      std::string error;
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
  if (req.contains("image")) {
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

static json cmdInfo(Engine::State &s, const json &, SessionControl &) {
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

static json cmdBreak(Engine::State &s, const json &req, SessionControl &) {
  s.requireModel();
  if (req.value("clear", false)) {
    s.breakpoints.clear();
    s.sqnrBreak.reset();
  }
  if (req.contains("layer"))
    s.breakpoints.insert(s.layerArg(req));
  if (req.contains("delete"))
    s.breakpoints.erase(s.layerArg(req, "delete"));
  if (req.contains("sqnr_below")) {
    if (req["sqnr_below"].is_null())
      s.sqnrBreak.reset();
    else if (!req["sqnr_below"].is_number())
      reject("'sqnr_below' must be a number (dB) or null");
    else {
      if (!s.floatModule)
        reject("an SQNR condition needs the float model (load a float model "
               "with mode=)");
      s.sqnrBreak = req["sqnr_below"].get<double>();
    }
  }
  return {{"breakpoints", s.breakpoints},
          {"sqnr_below", s.sqnrBreak ? json(*s.sqnrBreak) : json(nullptr)}};
}

static json stepSummary(Engine::State &s, int64_t n) {
  rt::Tensor out = s.ex->stepOutput(n);
  json j = {{"layer", n},
            {"kind", s.steps[n].kind},
            {"precision", s.steps[n].precision},
            {"output", shapeJson(out)}};
  j["stats"] = summary(out.toFloat());
  return j;
}

/// Runs layers from the position; stops after `target`, at a breakpoint or
/// condition (when `useBreaks`), or on a control stop.
static json runUntil(Engine::State &s, int64_t target, bool useBreaks,
                     SessionControl &control) {
  s.requireModel();
  s.ensureFresh();
  int64_t total = s.steps.size();
  if (s.position >= total)
    reject("the run is complete (send restart to run again)");
  std::string reason = "end";
  int64_t ran = 0;
  json cond;
  auto t0 = std::chrono::steady_clock::now();
  while (s.position <= target && s.position < total) {
    if (!control.checkpoint(s.position, total)) {
      reason = control.stopReason();
      break;
    }
    int64_t n = s.position;
    s.runStep(n);
    ++s.position;
    ++ran;
    if (useBreaks && s.sqnrBreak) {
      s.shadowTo(n);
      std::vector<float> ref = s.shadow->stepOutput(n).toFloat();
      eval::LayerComparison c;
      c.add(ref, s.ex->stepOutput(n).toFloat(), 1.0f, 0.0f);
      if (c.sqnrDb() < *s.sqnrBreak) {
        reason = "condition";
        cond = {{"sqnr_db", number(c.sqnrDb())}, {"below", *s.sqnrBreak}};
        break;
      }
    }
    if (useBreaks && s.breakpoints.count(n)) {
      reason = "breakpoint";
      break;
    }
    if (n == target) {
      reason = "target";
      break;
    }
  }
  json r = {{"reason", reason},
            {"position", s.position},
            {"layers_run", ran},
            {"ms", std::chrono::duration<double, std::milli>(
                       std::chrono::steady_clock::now() - t0)
                       .count()}};
  if (!cond.is_null())
    r["condition"] = cond;
  if (s.position > 0)
    r["last"] = stepSummary(s, s.position - 1);
  if (s.position == total) {
    // The whole model ran: what it detected.
    eval::InferenceOptions io;
    int w = s.haveImage ? s.image.w : s.info.netW;
    int h = s.haveImage ? s.image.h : s.info.netH;
    auto res = eval::decodeOutputs(*s.ex, s.info, w, h, io);
    json dets = json::array();
    for (const auto &d : res.reported)
      dets.push_back({{"class_id", d.classId},
                      {"prob", d.prob},
                      {"box", {d.left, d.top, d.right, d.bottom}}});
    r["detections"] = dets;
    if (!res.top.empty()) {
      json top = json::array();
      for (auto [id, p] : res.top)
        top.push_back({{"class_id", id}, {"prob", p}});
      r["top"] = top;
    }
  }
  return r;
}

static json cmdStep(Engine::State &s, const json &req, SessionControl &c) {
  int64_t count = req.value("count", 1);
  if (count < 1)
    reject("'count' must be >= 1");
  return runUntil(s, s.position + count - 1, false, c);
}
static json cmdContinue(Engine::State &s, const json &, SessionControl &c) {
  return runUntil(s, std::numeric_limits<int64_t>::max(), true, c);
}
static json cmdRunTo(Engine::State &s, const json &req, SessionControl &c) {
  int64_t n = s.layerArg(req);
  if (n < s.position - 1)
    reject("layer " + std::to_string(n) + " has already run (next layer: " +
           std::to_string(s.position) + "); restart first");
  if (n == s.position - 1)
    return {{"reason", "target"},
            {"position", s.position},
            {"layers_run", 0},
            {"last", stepSummary(s, n)}};
  return runUntil(s, n, false, c);
}
static json cmdRestart(Engine::State &s, const json &, SessionControl &) {
  s.requireModel();
  s.ensureFresh();
  s.makeInput();
  return {{"position", s.position}};
}

static json statsOf(const rt::Tensor &t, int bins) {
  std::vector<float> v = t.toFloat();
  json j = summary(v);
  j["shape"] = shapeJson(t);
  j["dtype"] = rt::dtypeName(t.dtype());
  Histogram h = computeHistogram(v, bins);
  j["histogram"] = {{"lo", h.lo}, {"hi", h.hi}, {"counts", h.counts}};
  if (t.dtype() == rt::DType::I8) {
    int64_t clipped = 0;
    for (int64_t i = 0; i < t.numel(); ++i)
      clipped += t.i8()[i] == -128 || t.i8()[i] == 127;
    j["quant"] = {
        {"scale", t.quant.scale},
        {"zero_point", t.quant.zeroPoint},
        {"clipped_percent", t.numel() ? 100.0 * clipped / t.numel() : 0.0}};
  }
  return j;
}

static int binsArg(const json &req) {
  int bins = req.value("bins", 64);
  if (bins < 1 || bins > 4096)
    reject("'bins' must be in 1..4096");
  return bins;
}

static json cmdStats(Engine::State &s, const json &req, SessionControl &) {
  int64_t n = s.layerArg(req);
  std::string what = s.str(req, "what");
  int bins = binsArg(req);
  json r;
  if (what == "weights") {
    auto w = s.weightsOf(n);
    r = summary(w.values);
    r["shape"] = w.shape;
    r["dtype"] = w.int8 ? "i8" : w.f16 ? "f16" : "f32";
    Histogram h = computeHistogram(w.values, bins);
    r["histogram"] = {{"lo", h.lo}, {"hi", h.hi}, {"counts", h.counts}};
    if (w.int8) {
      int64_t clipped = 0;
      auto attr = s.steps[n].head->getAttrOfType<ElementsAttr>("weight");
      for (char q : getRawBytes(attr))
        clipped += (int8_t)q == -127 || (int8_t)q == 127;
      r["quant"] = {{"scales", w.scales},
                    {"clipped_percent", 100.0 * clipped / w.values.size()}};
    }
  } else {
    r = statsOf(s.tensorOf(n, what, req.value("input", 0)), bins);
  }
  r["layer"] = n;
  r["what"] = what;
  return r;
}

static json cmdCompare(Engine::State &s, const json &req, SessionControl &) {
  int64_t n = s.layerArg(req);
  s.requireRan(n);
  s.ensureFresh();
  s.shadowTo(n);
  json r = compareJson(s.shadow->stepOutput(n).toFloat(),
                       s.ex->stepOutput(n).toFloat());
  r["layer"] = n;
  r["precision"] = s.steps[n].precision;
  r["against"] = "float";
  return r;
}

static json cmdDump(Engine::State &s, const json &req, SessionControl &,
                    bool histogram) {
  int64_t n = s.layerArg(req);
  std::string what = s.str(req, "what");
  std::string file = s.path(req, "file", true);
  std::string ext = extensionOf(file);
  std::string error;
  bool ok;
  json r = {{"layer", n}, {"what", what}, {"file", req["file"]}};
  std::vector<float> values;
  std::vector<int64_t> shape;
  if (what == "weights") {
    auto w = s.weightsOf(n);
    values = w.values;
    shape = w.shape;
  } else {
    rt::Tensor t = s.tensorOf(n, what, req.value("input", 0));
    values = t.toFloat();
    shape = {t.c(), t.h(), t.w()};
  }
  if (histogram) {
    if (ext != ".png")
      reject("histogram files are .png");
    Histogram h = computeHistogram(values, binsArg(req));
    ok = writeHistogramPng(file, h, "layer " + std::to_string(n) + " " + what,
                           error);
    r["histogram"] = {{"lo", h.lo}, {"hi", h.hi}, {"counts", h.counts}};
  } else if (ext == ".npy") {
    ok = rt::writeNpyArray(file, shape, values.data(), error);
  } else if (ext == ".png") {
    if (what == "weights") {
      // Connected weights are [out, in]: a matrix of 1x1 "kernels".
      while (shape.size() < 4)
        shape.push_back(1);
      ok = writeKernelGrid(file, values, shape[0], shape[1], shape[2], shape[3],
                           error);
    } else {
      ok = writeFeatureMapGrid(file, values, shape[0], shape[1], shape[2],
                               error);
    }
  } else {
    reject("dump files are .npy or .png");
  }
  if (!ok)
    reject(error);
  r["shape"] = shape;
  return r;
}

static json cmdSetWeights(Engine::State &s, const json &req, SessionControl &) {
  int64_t n = s.layerArg(req);
  auto w = s.weightsOf(n);
  std::vector<float> before = w.values;
  if (req.contains("file")) {
    std::vector<int64_t> dims;
    std::vector<float> data;
    std::string error;
    if (!rt::readNpyArray(s.path(req, "file", false), dims, data, error))
      reject(error);
    if (data.size() != w.values.size() ||
        (dims.size() == w.shape.size() && dims != w.shape)) {
      std::string want, got;
      for (int64_t d : w.shape)
        want += (want.empty() ? "" : "x") + std::to_string(d);
      for (int64_t d : dims)
        got += (got.empty() ? "" : "x") + std::to_string(d);
      reject("weights of shape " + got + " do not fit layer " +
             std::to_string(n) + " (" + want + ")");
    }
    w.values = data;
  } else if (req.contains("index") && req.contains("value")) {
    if (!req["value"].is_number())
      reject("'value' must be a number");
    int64_t flat = 0;
    const json &idx = req["index"];
    if (idx.is_number_integer()) {
      flat = idx.get<int64_t>();
    } else if (idx.is_array() && idx.size() == w.shape.size()) {
      for (size_t k = 0; k < w.shape.size(); ++k) {
        if (!idx[k].is_number_integer())
          reject("'index' entries must be integers");
        int64_t v = idx[k].get<int64_t>();
        if (v < 0 || v >= w.shape[k])
          reject("index " + std::to_string(v) + " out of range for dimension " +
                 std::to_string(k) + " (size " + std::to_string(w.shape[k]) +
                 ")");
        flat = flat * w.shape[k] + v;
      }
    } else {
      reject("'index' must be a flat index or one index per dimension (" +
             std::to_string(w.shape.size()) + ")");
    }
    if (flat < 0 || flat >= (int64_t)w.values.size())
      reject("index " + std::to_string(flat) + " out of range (" +
             std::to_string(w.values.size()) + " weights)");
    w.values[flat] = req["value"].get<float>();
  } else if (req.contains("filter")) {
    // One output channel at once: scaled, or set to a value.
    if (!req["filter"].is_number_integer())
      reject("'filter' must be an output channel index");
    int64_t f = req["filter"].get<int64_t>();
    if (f < 0 || f >= w.shape[0])
      reject("filter " + std::to_string(f) + " out of range (" +
             std::to_string(w.shape[0]) + " filters)");
    int64_t per = w.values.size() / w.shape[0];
    bool scale = req.contains("scale");
    if (scale == req.contains("value") ||
        !req[scale ? "scale" : "value"].is_number())
      reject("'filter' needs a number in exactly one of 'scale' or 'value'");
    float x = req[scale ? "scale" : "value"].get<float>();
    for (int64_t i = f * per; i < (f + 1) * per; ++i)
      w.values[i] = scale ? w.values[i] * x : x;
  } else {
    reject("set-weights needs 'file' (.npy), 'index' and 'value', or "
           "'filter' and 'scale'/'value'");
  }
  s.setWeights(n, w);
  auto after = s.weightsOf(n);
  int64_t changed = 0;
  double maxChange = 0;
  for (size_t i = 0; i < before.size(); ++i)
    if (before[i] != after.values[i]) {
      ++changed;
      maxChange =
          std::max(maxChange, (double)std::fabs(before[i] - after.values[i]));
    }
  json r = {{"layer", n},
            {"changed", changed},
            {"max_change", maxChange},
            {"note", "send rerun to see the effect on the outputs"}};
  if (after.int8)
    r["stored_as"] = "int8 (value rounded to the layer's weight scale)";
  return r;
}

static json cmdRerun(Engine::State &s, const json &req, SessionControl &) {
  int64_t n = s.layerArg(req);
  s.requireRan(n);
  // The outputs as they were before the edits (kept by the rebuild).
  s.ensureFresh();
  interp::Executor &old = s.preEdit ? *s.preEdit : *s.ex;
  std::vector<float> before = old.stepOutput(n).toFloat();
  int64_t last = s.position - 1;
  std::vector<float> lastBefore = old.stepOutput(last).toFloat();
  s.preEdit.reset();
  std::vector<float> after = s.ex->stepOutput(n).toFloat();
  json r = {{"layer", n}, {"change", compareJson(before, after)}};
  int64_t changed = 0;
  for (size_t i = 0; i < before.size(); ++i)
    changed += before[i] != after[i];
  r["change"]["changed_values"] = changed;
  r["output"] = summary(after);
  if (last != n) {
    r["downstream"] = {
        {"layer", last},
        {"change", compareJson(lastBefore, s.ex->stepOutput(last).toFloat())}};
  }
  r["position"] = s.position;
  return r;
}

static json cmdSave(Engine::State &s, const json &req, SessionControl &) {
  s.requireModel();
  std::string file = s.path(req, "file", true);
  std::string error;
  bool bytecode = extensionOf(file) != ".mlir";
  if (failed(saveModel(*s.runModule, file, bytecode, error)))
    reject(error);
  return {{"file", req["file"]}, {"edits", s.edits}, {"bytecode", bytecode}};
}

static json cmdSetPrecision(Engine::State &s, const json &req,
                            SessionControl &) {
  int64_t n = s.layerArg(req);
  std::string p = s.str(req, "precision");
  if (p != "int8" && p != "fp16" && p != "fp32")
    reject("'precision' must be int8, fp16 or fp32");
  if (s.edits)
    reject("weights were edited: save the model and load it again before "
           "changing precisions (the float twin does not have the edits)");
  s.overrides[n] = p;
  s.requantize();
  return {{"layer", n},
          {"precision", s.steps[n].precision},
          {"position", s.position}};
}

/// Layer n of the float twin alone, in `precision`, fed the session's own
/// input of layer n.
static json cmdCross(Engine::State &s, const json &req, SessionControl &) {
  int64_t n = s.layerArg(req);
  std::string p = s.str(req, "precision");
  if (p != "int8" && p != "fp16" && p != "fp32")
    reject("'precision' must be int8, fp16 or fp32");
  s.requireRan(n);
  s.ensureFresh();
  if (!s.floatModule)
    reject("cross needs the float model: load a float model (with mode= to "
           "quantize it in the session)");
  auto layers = getLayers(getMainFunc(*s.floatModule));
  if (failed(layers))
    reject(s.takeDiagnostics("not a layer sequence"));
  const Layer &l = (*layers)[n];
  SmallVector<Value> ins = l.externalInputs();
  if (ins.size() != 1)
    reject("cross runs single-input layers; layer " + std::to_string(n) + " (" +
           s.steps[n].kind + ") has " + std::to_string(ins.size()));
  std::vector<rt::Tensor> actualIns = s.ex->stepInputs(n);
  std::vector<float> inF = actualIns.at(0).toFloat();
  rt::Tensor in(rt::DType::F32, actualIns[0].c(), actualIns[0].h(),
                actualIns[0].w());
  std::copy(inF.begin(), inF.end(), in.f32());

  // The layer alone, as the float twin has it (its precision marks dropped:
  // the precision asked for is assigned below).
  OwningOpRef<ModuleOp> mini = extractLayerModule(l);
  func::FuncOp func = getMainFunc(*mini);
  func.walk([](Operation *op) {
    op->removeAttr("qsim.precision");
    op->removeAttr("qsim.precision_reason");
  });
  MLIRContext *ctx = s.ctx.get();
  Value inV = ins[0];

  std::string note;
  if (p != "fp32") {
    if (failed(foldBatchNorms(*mini)))
      reject(s.takeDiagnostics("folding the batch norm failed"));
    auto miniLayers = getLayers(func);
    if (failed(miniLayers))
      reject(s.takeDiagnostics("internal error"));
    if (p == "int8") {
      if (!hasInt8Form((*miniLayers)[0]))
        reject("layer " + std::to_string(n) + " (" + s.steps[n].kind +
               ") has no int8 form");
      // Ranges: the calibration when there is one, else this image's.
      Builder ab(ctx);
      auto rangeDict = [&](float lo, float hi) {
        return ab.getDictionaryAttr(
            {ab.getNamedAttr("method", ab.getStringAttr("session")),
             ab.getNamedAttr("min", ab.getF32FloatAttr(lo)),
             ab.getNamedAttr("max", ab.getF32FloatAttr(hi)),
             ab.getNamedAttr("lo", ab.getF32FloatAttr(lo)),
             ab.getNamedAttr("hi", ab.getF32FloatAttr(hi)),
             ab.getNamedAttr("images", ab.getI64IntegerAttr(1))});
      };
      auto inRange = quantization::getCalibratedRange(inV);
      Operation *outDef = (*miniLayers)[0].output().getDefiningOp();
      bool calibrated = inRange && outDef->hasAttr("qsim.calib");
      if (inRange) {
        func.setArgAttr(0, "qsim.calib",
                        rangeDict(inRange->first, inRange->second));
      } else {
        auto [mn, mx] = std::minmax_element(inF.begin(), inF.end());
        func.setArgAttr(0, "qsim.calib",
                        rangeDict(std::min(0.0f, *mn), std::max(0.0f, *mx)));
      }
      if (!outDef->hasAttr("qsim.calib")) {
        // Run the float layer once for its output range.
        std::string error;
        auto fex = interp::Executor::create(*mini, {}, error);
        if (!fex)
          reject(error);
        fex->setInput(in);
        fex->run();
        std::vector<float> o = fex->outputs().front().toFloat();
        auto [mn, mx] = std::minmax_element(o.begin(), o.end());
        outDef->setAttr("qsim.calib",
                        rangeDict(std::min(0.0f, *mn), std::max(0.0f, *mx)));
      }
      if (!calibrated)
        note = "no calibration recorded: int8 ranges taken from this image";
    }
    quantization::PrecisionPlan plan;
    plan.preset = p == "int8" ? quantization::PrecisionPreset::AllInt8
                              : quantization::PrecisionPreset::FP16;
    if (failed(quantization::assignPrecision(*mini, plan)) ||
        failed(quantization::quantizeModule(*mini, {})))
      reject(s.takeDiagnostics("quantizing the layer failed"));
  }
  std::string error;
  auto mex = interp::Executor::create(*mini, {}, error);
  if (!mex)
    reject(error);
  mex->setInput(in);
  mex->run();
  std::vector<float> crossed = mex->outputs().front().toFloat();
  std::vector<float> current = s.ex->stepOutput(n).toFloat();
  json r = {{"layer", n},
            {"kind", s.steps[n].kind},
            {"current_precision", s.steps[n].precision},
            {"cross_precision", p},
            {"vs_current", compareJson(current, crossed)},
            {"output", summary(crossed)}};
  s.shadowTo(n);
  std::vector<float> ref = s.shadow->stepOutput(n).toFloat();
  r["vs_float"] = {{"current", compareJson(ref, current)},
                   {"cross", compareJson(ref, crossed)}};
  if (!note.empty())
    r["note"] = note;
  if (req.contains("file")) {
    // The crossed output, for a closer look.
    std::string file = s.path(req, "file", true);
    rt::Tensor o = mex->outputs().front();
    bool ok =
        extensionOf(file) == ".png"
            ? writeFeatureMapGrid(file, crossed, o.c(), o.h(), o.w(), error)
            : rt::writeNpy(file, o, error);
    if (!ok)
      reject(error);
    r["file"] = req["file"];
  }
  return r;
}

json Engine::handle(const json &req, SessionControl &control) {
  json reply;
  std::string cmd;
  try {
    if (!req.is_object())
      reject("a request is a JSON object with a \"cmd\"");
    if (!req.contains("cmd") || !req["cmd"].is_string())
      reject("the request has no \"cmd\" string");
    cmd = req["cmd"].get<std::string>();
    if (isControlCommand(cmd))
      return handleControl(req, control);
    static const std::map<std::string, Handler> handlers = {
        {"load", cmdLoad},
        {"info", cmdInfo},
        {"break", cmdBreak},
        {"step", cmdStep},
        {"continue", cmdContinue},
        {"run-to", cmdRunTo},
        {"restart", cmdRestart},
        {"stats", cmdStats},
        {"compare", cmdCompare},
        {"dump", [](State &s, const json &r,
                    SessionControl &c) { return cmdDump(s, r, c, false); }},
        {"histogram", [](State &s, const json &r,
                         SessionControl &c) { return cmdDump(s, r, c, true); }},
        {"set-weights", cmdSetWeights},
        {"rerun", cmdRerun},
        {"save", cmdSave},
        {"cross", cmdCross},
        {"set-precision", cmdSetPrecision},
    };
    auto it = handlers.find(cmd);
    if (it == handlers.end())
      reject("unknown command '" + cmd +
             "' (load, info, break, step, continue, run-to, restart, stats, "
             "compare, dump, histogram, set-weights, rerun, save, cross, "
             "set-precision, status, pause, resume, stop)");
    control.begin(cmd, s->opts.limits.commandSeconds);
    try {
      reply = it->second(*s, req, control);
    } catch (...) {
      control.end();
      throw;
    }
    control.end();
    reply["ok"] = true;
  } catch (const RequestError &e) {
    s->diagnostics.clear();
    reply = {{"ok", false}, {"error", e.message}};
  } catch (const std::exception &e) {
    s->diagnostics.clear();
    reply = {{"ok", false},
             {"error", std::string("internal error: ") + e.what()}};
  }
  if (!cmd.empty())
    reply["cmd"] = cmd;
  if (req.is_object() && req.contains("id"))
    reply["id"] = req["id"];
  return reply;
}
