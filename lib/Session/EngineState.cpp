//===- EngineState.cpp - a step session's state --------------------------===//
//
// The model and its executors, the request arguments every command checks,
// the run position, the float shadow.
//
//===----------------------------------------------------------------------===//

#include "EngineState.h"
#include "qsim/Evaluation/LayerAnalysis.h"
#include "qsim/Evaluation/RunStatistics.h"
#include "qsim/Support/Diagnostics.h"
#include "qsim/Target/ModelIO.h"

#include "llvm/Support/Path.h"

#include <cmath>

using namespace mlir;
using namespace qsim;
using namespace qsim::session;
using namespace qsim::session::handlers;

void handlers::reject(const std::string &msg) { throw RequestError{msg}; }

json handlers::number(double v) {
  if (std::isnan(v))
    return nullptr;
  if (std::isinf(v))
    return v > 0 ? "inf" : "-inf";
  return v;
}

json handlers::shapeJson(const rt::Tensor &t) { return {t.c(), t.h(), t.w()}; }

json handlers::summary(const std::vector<float> &values) {
  eval::TensorStats s = eval::computeTensorStats(values);
  return {{"min", s.min}, {"max", s.max},     {"mean", s.mean},
          {"std", s.std}, {"zeros", s.zeros}, {"count", s.count}};
}

json handlers::compareJson(const std::vector<float> &ref,
                           const std::vector<float> &test) {
  eval::LayerComparison c;
  c.add(ref, test, 1.0f, 0.0f);
  return {{"sqnr_db", number(c.sqnrDb())},
          {"cosine", number(c.cosine())},
          {"max_abs", c.maxAbsErr},
          {"mean_abs", c.meanAbsErr()}};
}

std::string handlers::extensionOf(const std::string &path) {
  return llvm::sys::path::extension(path).lower();
}

Engine::State::State(const Options &o) : opts(o), sandbox(o.rootDir) {
  DialectRegistry registry;
  registerQSimDialects(registry);
  ctx = std::make_unique<MLIRContext>(registry);
  ctx->loadAllAvailableDialects();
  ctx->printOpOnDiagnostic(false);
  // Diagnostics become the error message of the request that caused them.
  diagnostics = std::make_unique<DiagnosticCapture>(ctx.get());
}

std::string Engine::State::takeDiagnostics(const std::string &fallback) {
  return diagnostics->take(fallback);
}

void Engine::State::requireModel() {
  if (!runModule)
    reject("no model loaded (send {\"cmd\": \"load\", \"model\": PATH})");
}

int64_t Engine::State::layerArg(const json &req, const char *key) {
  requireModel();
  if (!req.contains(key) || !req[key].is_number_integer())
    reject(std::string("'") + key + "' must be a layer index");
  int64_t n = req[key].get<int64_t>();
  if (n < 0 || n >= (int64_t)steps.size())
    reject("layer " + std::to_string(n) + " does not exist (the model has " +
           std::to_string(steps.size()) + " layers)");
  return n;
}

void Engine::State::requireRan(int64_t n) {
  if (n >= position)
    reject("layer " + std::to_string(n) + " has not run yet (next layer: " +
           std::to_string(position) + "); step, continue or run-to first");
}

std::string Engine::State::str(const json &req, const char *key,
                               bool required) {
  if (!req.contains(key)) {
    if (required)
      reject(std::string("'") + key + "' is required");
    return "";
  }
  if (!req[key].is_string())
    reject(std::string("'") + key + "' must be a string");
  return req[key].get<std::string>();
}

std::string Engine::State::path(const json &req, const char *key, bool forWrite,
                                bool required) {
  std::string p = str(req, key, required);
  if (p.empty())
    return p;
  std::string resolved, error;
  if (!sandbox.resolve(p, forWrite, resolved, error))
    reject(error);
  return resolved;
}

void Engine::State::buildExecutor() {
  interp::ExecutorOptions eo;
  eo.kernels = opts.referenceKernels ? interp::KernelSet::Reference
                                     : interp::KernelSet::Fast;
  eo.threads = opts.threads;
  eo.keepAllOutputs = true;
  auto e = interp::Executor::create(*runModule, eo);
  if (!e)
    reject(takeDiagnostics("planning the model failed"));
  ex = std::move(e);
  steps = ex->steps();
  info = eval::describeModel(*runModule, *ex);
  stale = false;
  shadow.reset();
  shadowPosition = 0;
  makeInput(/*keepPreEdit=*/true);
}

void Engine::State::makeInput(bool keepPreEdit) {
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

void Engine::State::runStep(int64_t i) {
  try {
    ex->runStep(i);
  } catch (const std::exception &e) {
    reject("layer " + std::to_string(i) + ": " + e.what());
  }
}

void Engine::State::rebuildAndReplay() {
  int64_t pos = position;
  if (stale && !preEdit)
    preEdit = std::move(ex);
  buildExecutor();
  for (int64_t i = 0; i < pos; ++i)
    runStep(i);
  position = pos;
}

void Engine::State::ensureFresh() {
  if (stale)
    rebuildAndReplay();
}

void Engine::State::shadowTo(int64_t n) {
  if (!floatModule)
    reject("no float model to compare with (a quantized model was loaded: "
           "load the float model with mode= to quantize it in the session)");
  if (!shadow) {
    interp::ExecutorOptions eo;
    eo.threads = opts.threads;
    eo.keepAllOutputs = true;
    shadow = interp::Executor::create(*floatModule, eo);
    if (!shadow)
      reject("float shadow: " + takeDiagnostics("planning failed"));
    if (shadow->steps().size() != steps.size())
      reject("the float model has different layers");
    shadow->setInput(input);
    shadowPosition = 0;
  }
  for (; shadowPosition <= n; ++shadowPosition)
    shadow->runStep(shadowPosition);
}

rt::Tensor Engine::State::tensorOf(int64_t n, const std::string &what,
                                   int64_t inputIndex) {
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
