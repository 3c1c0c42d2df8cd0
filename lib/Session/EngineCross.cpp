//===- EngineCross.cpp - one layer in another precision ------------------===//

#include "EngineState.h"
#include "qsim/Quant/Calibration.h"
#include "qsim/Quant/Precision.h"
#include "qsim/Quant/Quantizer.h"
#include "qsim/Session/Render.h"
#include "qsim/Transforms/Passes.h"

#include "mlir/IR/Builders.h"

#include <algorithm>

using namespace mlir;
using namespace qsim;
using namespace qsim::session;
using namespace qsim::session::handlers;

/// Runs a one-layer module on `input`; its output.
static rt::Tensor runAlone(Engine::State &s, ModuleOp module,
                           const rt::Tensor &input) {
  auto ex = interp::Executor::create(module, {});
  if (!ex)
    reject(s.takeDiagnostics("planning the layer failed"));
  ex->setInput(input);
  ex->run();
  return ex->outputs().front();
}

/// A `qsim.calib` range of the session's own making.
static DictionaryAttr sessionRange(MLIRContext *ctx, float lo, float hi) {
  Builder b(ctx);
  return b.getDictionaryAttr(
      {b.getNamedAttr("method", b.getStringAttr("session")),
       b.getNamedAttr("min", b.getF32FloatAttr(lo)),
       b.getNamedAttr("max", b.getF32FloatAttr(hi)),
       b.getNamedAttr("lo", b.getF32FloatAttr(lo)),
       b.getNamedAttr("hi", b.getF32FloatAttr(hi)),
       b.getNamedAttr("images", b.getI64IntegerAttr(1))});
}

/// The range of some values, extended to contain 0.
static std::pair<float, float> rangeWithZero(const std::vector<float> &v) {
  auto [mn, mx] = std::minmax_element(v.begin(), v.end());
  return {std::min(0.0f, *mn), std::max(0.0f, *mx)};
}

/// The int8 ranges of the layer module's input and output: the float
/// twin's calibration when there is one, else this input's. Returns a note
/// when they are not calibrated.
static std::string setInt8Ranges(Engine::State &s, ModuleOp mini,
                                 const Layer &layer, Value twinInput,
                                 const rt::Tensor &input) {
  MLIRContext *ctx = mini.getContext();
  func::FuncOp func = getMainFunc(mini);
  Operation *outDef = layer.output().getDefiningOp();
  auto inRange = quantization::getCalibratedRange(twinInput);
  bool calibrated = inRange && outDef->hasAttr("qsim.calib");
  if (!inRange)
    inRange = rangeWithZero(input.toFloat());
  func.setArgAttr(0, "qsim.calib",
                  sessionRange(ctx, inRange->first, inRange->second));
  if (!outDef->hasAttr("qsim.calib")) {
    // Run the float layer once for its output range.
    auto [lo, hi] = rangeWithZero(runAlone(s, mini, input).toFloat());
    outDef->setAttr("qsim.calib", sessionRange(ctx, lo, hi));
  }
  return calibrated
             ? ""
             : "no calibration recorded: int8 ranges taken from this image";
}

/// Quantizes the layer module of layer `n` to int8 or fp16 as the quantizer
/// would in a whole model; the note of setInt8Ranges.
static std::string quantizeLayerModule(Engine::State &s, int64_t n,
                                       ModuleOp mini, const std::string &p,
                                       Value twinInput,
                                       const rt::Tensor &input) {
  std::string note;
  if (failed(foldBatchNorms(mini)))
    reject(s.takeDiagnostics("folding the batch norm failed"));
  auto layers = getLayers(getMainFunc(mini));
  if (failed(layers))
    reject(s.takeDiagnostics("internal error"));
  if (p == "int8") {
    if (!hasInt8Form((*layers)[0]))
      reject("layer " + std::to_string(n) + " (" + s.steps[n].kind +
             ") has no int8 form");
    note = setInt8Ranges(s, mini, (*layers)[0], twinInput, input);
  }
  quantization::PrecisionPlan plan;
  plan.preset = p == "int8" ? quantization::PrecisionPreset::AllInt8
                            : quantization::PrecisionPreset::FP16;
  if (failed(quantization::assignPrecision(mini, plan)) ||
      failed(quantization::quantizeModule(mini, {})))
    reject(s.takeDiagnostics("quantizing the layer failed"));
  return note;
}

/// Layer n of the float twin alone, in `precision`, fed the session's own
/// input of layer n.
json handlers::cmdCross(Engine::State &s, const json &req, SessionControl &) {
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
  // The session's input of the layer, as real values.
  rt::Tensor actual = s.ex->stepInputs(n).at(0);
  std::vector<float> inF = actual.toFloat();
  rt::Tensor in(rt::DType::F32, actual.c(), actual.h(), actual.w());
  std::copy(inF.begin(), inF.end(), in.f32());

  // The layer alone, as the float twin has it (its precision marks dropped:
  // the precision asked for is assigned here).
  OwningOpRef<ModuleOp> mini = extractLayerModule(l);
  getMainFunc(*mini).walk([](Operation *op) {
    op->removeAttr("qsim.precision");
    op->removeAttr("qsim.precision_reason");
  });
  std::string note;
  if (p != "fp32")
    note = quantizeLayerModule(s, n, *mini, p, ins[0], in);
  rt::Tensor out = runAlone(s, *mini, in);
  std::vector<float> crossed = out.toFloat();
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
    std::string file = s.path(req, "file", true), error;
    bool ok = extensionOf(file) == ".png"
                  ? writeFeatureMapGrid(file, crossed, out.c(), out.h(),
                                        out.w(), error)
                  : rt::writeNpy(file, out, error);
    if (!ok)
      reject(error);
    r["file"] = req["file"];
  }
  return r;
}
