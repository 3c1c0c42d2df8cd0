//===- EngineState.h - the session behind Engine (private) ------*- C++ -*-===//
//
// What a step session holds between requests, the helpers its commands
// share, and the commands, grouped in files by concern:
//   Engine.cpp         dispatch, errors, control commands
//   EngineState.cpp    the state: arguments, the run, the float shadow
//   EngineLoad.cpp     load, info, save
//   EngineRun.cpp      break, step, continue, run-to, restart
//   EngineInspect.cpp  stats, compare, dump, histogram
//   EngineEdit.cpp     set-weights, rerun, set-precision (weights and
//                      re-quantization)
//   EngineCross.cpp    cross
//   PathSandbox.cpp    which files a request may name
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_LIB_SESSION_ENGINESTATE_H
#define QSIM_LIB_SESSION_ENGINESTATE_H

#include "PathSandbox.h"
#include "qsim/Evaluation/Inference.h"
#include "qsim/Interpreter/Executor.h"
#include "qsim/Session/Engine.h"
#include "qsim/Support/Diagnostics.h"
#include "qsim/Transforms/QuantizePipeline.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OwningOpRef.h"

#include <map>
#include <optional>
#include <set>

namespace qsim::session {
namespace handlers {

/// An error reply; thrown inside handlers and turned into {"ok": false}.
struct RequestError {
  std::string message;
};
[[noreturn]] void reject(const std::string &msg);

/// JSON has no infinities: SQNR of identical tensors is "inf".
json number(double v);
json shapeJson(const rt::Tensor &t);
/// min, max, mean, std, zeros, count (eval::computeTensorStats).
json summary(const std::vector<float> &values);
/// SQNR, cosine, max and mean absolute error of `test` against `ref`.
json compareJson(const std::vector<float> &ref, const std::vector<float> &test);
/// The lower-case extension of a file name (".npy").
std::string extensionOf(const std::string &path);

/// A layer's weights as real values, and how they are stored.
struct LayerWeights {
  std::vector<float> values;
  std::vector<int64_t> shape;
  std::vector<float> scales; // int8: per output channel (or one)
  bool int8 = false, f16 = false;
};

} // namespace handlers

struct Engine::State {
  Options opts;
  PathSandbox sandbox;
  std::unique_ptr<mlir::MLIRContext> ctx;
  /// The current request's error diagnostics, the error of its reply.
  std::unique_ptr<DiagnosticCapture> diagnostics;

  /// The float twin (batch norms folded and calibrated when the session
  /// quantized the model; null when a quantized model was loaded).
  mlir::OwningOpRef<mlir::ModuleOp> floatModule;
  mlir::OwningOpRef<mlir::ModuleOp> runModule;
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

  explicit State(const Options &o);
  /// The diagnostics of this request as one message, else `fallback`.
  std::string takeDiagnostics(const std::string &fallback);

  // --- request arguments (EngineState.cpp) -------------------------------
  void requireModel();
  int64_t layerArg(const json &req, const char *key = "layer");
  void requireRan(int64_t n);
  std::string str(const json &req, const char *key, bool required = true);
  /// A file named by a request, checked against the session root.
  std::string path(const json &req, const char *key, bool forWrite,
                   bool required = true);

  // --- the run (EngineState.cpp) -----------------------------------------
  void buildExecutor();
  void makeInput(bool keepPreEdit = false);
  void runStep(int64_t i);
  /// After an edit or a precision change: rebuild the plan and run again up
  /// to the current position.
  void rebuildAndReplay();
  void ensureFresh();
  /// The float shadow run up to layer n (inclusive).
  void shadowTo(int64_t n);
  rt::Tensor tensorOf(int64_t n, const std::string &what, int64_t inputIndex);

  // --- weights and precisions (EngineEdit.cpp) ---------------------------
  mlir::Operation *weightOp(int64_t n);
  handlers::LayerWeights weightsOf(int64_t n);
  /// Stores edited weights in the layer's own form: int8 re-quantized as
  /// the quantizer does (rt::quantizeWeight), f16 rounded, f32 as they are.
  void setWeights(int64_t n, const handlers::LayerWeights &w);
  /// The run model rebuilt from the float twin with the session's plan and
  /// the per-layer overrides.
  void requantize();
};

namespace handlers {

/// The command handlers. Each returns the reply's payload (ok is added) or
/// throws RequestError.
using Handler = json (*)(Engine::State &, const json &, SessionControl &);

// EngineLoad.cpp
json cmdLoad(Engine::State &s, const json &req, SessionControl &);
json cmdInfo(Engine::State &s, const json &req, SessionControl &);
json cmdSave(Engine::State &s, const json &req, SessionControl &);
// EngineRun.cpp
json cmdBreak(Engine::State &s, const json &req, SessionControl &);
json cmdStep(Engine::State &s, const json &req, SessionControl &);
json cmdContinue(Engine::State &s, const json &req, SessionControl &);
json cmdRunTo(Engine::State &s, const json &req, SessionControl &);
json cmdRestart(Engine::State &s, const json &req, SessionControl &);
// EngineInspect.cpp
json cmdStats(Engine::State &s, const json &req, SessionControl &);
json cmdCompare(Engine::State &s, const json &req, SessionControl &);
json cmdDump(Engine::State &s, const json &req, SessionControl &);
json cmdHistogram(Engine::State &s, const json &req, SessionControl &);
// EngineEdit.cpp
json cmdSetWeights(Engine::State &s, const json &req, SessionControl &);
json cmdRerun(Engine::State &s, const json &req, SessionControl &);
json cmdSetPrecision(Engine::State &s, const json &req, SessionControl &);
// EngineCross.cpp
json cmdCross(Engine::State &s, const json &req, SessionControl &);

} // namespace handlers
} // namespace qsim::session

#endif
