//===- EngineEdit.cpp - editing a session's weights and precisions -------===//
//
// set-weights (stored in the layer's own form, int8 re-quantized as the
// quantizer rounds), rerun (the edit's effect), set-precision (the run
// model re-quantized from the float twin).
//
//===----------------------------------------------------------------------===//

#include "EngineState.h"
#include "qsim/Quant/Precision.h"
#include "qsim/Quant/Quantizer.h"
#include "qsim/Runtime/QuantMath.h"
#include "qsim/Transforms/Passes.h"

#include "mlir/Dialect/Quant/QuantTypes.h"

#include <cmath>

using namespace mlir;
using namespace qsim;
using namespace qsim::session;
using namespace qsim::session::handlers;

Operation *Engine::State::weightOp(int64_t n) {
  Operation *head = steps[n].head;
  if (!head->getAttrOfType<ElementsAttr>("weight"))
    reject("layer " + std::to_string(n) + " (" + steps[n].kind +
           ") has no weights");
  return head;
}

LayerWeights Engine::State::weightsOf(int64_t n) {
  Operation *op = weightOp(n);
  auto attr = op->getAttrOfType<ElementsAttr>("weight");
  LayerWeights w;
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

void Engine::State::setWeights(int64_t n, const LayerWeights &w) {
  Operation *op = weightOp(n);
  auto attr = op->getAttrOfType<ElementsAttr>("weight");
  auto type = attr.getShapedType();
  std::string name = "edited_layer" + std::to_string(n) + "_weight";
  if (w.int8) {
    int64_t rows = w.shape[0], per = w.values.size() / rows;
    // A layer quantized with weight-bits < 8 keeps its narrower grid.
    int bits = quantization::getWeightBits(op).value_or(8);
    std::vector<int8_t> q(w.values.size());
    for (size_t i = 0; i < q.size(); ++i) {
      float s = w.scales.size() == 1 ? w.scales[0] : w.scales[i / per];
      q[i] = rt::quantizeWeight(w.values[i], s, bits); // as the quantizer
    }
    op->setAttr("weight", makeResourceAttr<int8_t>(type, name, q));
  } else if (w.f16) {
    std::vector<uint16_t> h(w.values.size());
    for (size_t i = 0; i < h.size(); ++i)
      h[i] = rt::floatToHalf(w.values[i]);
    op->setAttr("weight", makeResourceAttr<uint16_t>(type, name, h));
  } else if (type.getElementType().isBF16()) {
    // A bf16 layer keeps bf16 weights (rounded as --qsim-quantize does).
    std::vector<uint16_t> h(w.values.size());
    for (size_t i = 0; i < h.size(); ++i)
      h[i] = rt::floatToBF16(w.values[i]);
    op->setAttr("weight", makeResourceAttr<uint16_t>(type, name, h));
  } else {
    op->setAttr("weight", makeResourceAttr<float>(type, name, w.values));
  }
  // Edited weights no longer produce the folded batch norm's distribution.
  dropBatchNormStats(op);
  stale = true;
  ++edits;
}

void Engine::State::requantize() {
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

static std::string shapeText(const std::vector<int64_t> &dims) {
  std::string text;
  for (int64_t d : dims)
    text += (text.empty() ? "" : "x") + std::to_string(d);
  return text;
}

/// set-weights with 'file': all weights from a .npy of the layer's shape.
static void editFromFile(Engine::State &s, const json &req, int64_t n,
                         LayerWeights &w) {
  std::vector<int64_t> dims;
  std::vector<float> data;
  std::string error;
  if (!rt::readNpyArray(s.path(req, "file", false), dims, data, error))
    reject(error);
  if (data.size() != w.values.size() ||
      (dims.size() == w.shape.size() && dims != w.shape))
    reject("weights of shape " + shapeText(dims) + " do not fit layer " +
           std::to_string(n) + " (" + shapeText(w.shape) + ")");
  w.values = data;
}

/// set-weights with 'index' (flat, or one per dimension) and 'value'.
static void editAtIndex(const json &req, LayerWeights &w) {
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
}

/// set-weights with 'filter': one output channel at once, scaled by
/// 'scale' or set to 'value'.
static void editFilter(const json &req, LayerWeights &w) {
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
}

json handlers::cmdSetWeights(Engine::State &s, const json &req,
                             SessionControl &) {
  int64_t n = s.layerArg(req);
  LayerWeights w = s.weightsOf(n);
  std::vector<float> before = w.values;
  if (req.contains("file"))
    editFromFile(s, req, n, w);
  else if (req.contains("index") && req.contains("value"))
    editAtIndex(req, w);
  else if (req.contains("filter"))
    editFilter(req, w);
  else
    reject("set-weights needs 'file' (.npy), 'index' and 'value', or "
           "'filter' and 'scale'/'value'");
  s.setWeights(n, w);
  LayerWeights after = s.weightsOf(n);
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

json handlers::cmdRerun(Engine::State &s, const json &req, SessionControl &) {
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

json handlers::cmdSetPrecision(Engine::State &s, const json &req,
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
