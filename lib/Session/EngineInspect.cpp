//===- EngineInspect.cpp - looking at a session's tensors ----------------===//
//
// stats, compare (against the float shadow), dump and histogram of a
// layer's input, output or weights.
//
//===----------------------------------------------------------------------===//

#include "EngineState.h"
#include "qsim/Session/Render.h"

using namespace mlir;
using namespace qsim;
using namespace qsim::session;
using namespace qsim::session::handlers;

static json histogramJson(const Histogram &h) {
  return {{"lo", h.lo}, {"hi", h.hi}, {"counts", h.counts}};
}

/// The summary, shape, element type and histogram of some values.
static json statsJson(const std::vector<float> &values, json shape, json dtype,
                      int bins) {
  json j = summary(values);
  j["shape"] = std::move(shape);
  j["dtype"] = std::move(dtype);
  j["histogram"] = histogramJson(computeHistogram(values, bins));
  return j;
}

static json statsOf(const rt::Tensor &t, int bins) {
  json j = statsJson(t.toFloat(), shapeJson(t), rt::dtypeName(t.dtype()), bins);
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

json handlers::cmdStats(Engine::State &s, const json &req, SessionControl &) {
  int64_t n = s.layerArg(req);
  std::string what = s.str(req, "what");
  int bins = binsArg(req);
  json r;
  if (what == "weights") {
    LayerWeights w = s.weightsOf(n);
    r = statsJson(w.values, w.shape,
                  w.int8  ? "i8"
                  : w.f16 ? "f16"
                          : "f32",
                  bins);
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

json handlers::cmdCompare(Engine::State &s, const json &req, SessionControl &) {
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

/// A layer's input, output or weights written as .npy, as a .png grid of
/// feature maps or kernels, or (`histogram`) as a histogram .png.
static json dump(Engine::State &s, const json &req, bool histogram) {
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
    LayerWeights w = s.weightsOf(n);
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
    r["histogram"] = histogramJson(h);
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

json handlers::cmdDump(Engine::State &s, const json &req, SessionControl &) {
  return dump(s, req, /*histogram=*/false);
}

json handlers::cmdHistogram(Engine::State &s, const json &req,
                            SessionControl &) {
  return dump(s, req, /*histogram=*/true);
}
