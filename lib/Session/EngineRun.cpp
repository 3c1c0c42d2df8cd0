//===- EngineRun.cpp - running a session's model layer by layer ----------===//
//
// break, step, continue, run-to and restart: the run advances from its
// position to a target, a breakpoint or an SQNR condition, or until a
// control command stops it.
//
//===----------------------------------------------------------------------===//

#include "EngineState.h"
#include "qsim/Evaluation/LayerAnalysis.h"

#include <chrono>
#include <limits>

using namespace mlir;
using namespace qsim;
using namespace qsim::session;
using namespace qsim::session::handlers;

json handlers::cmdBreak(Engine::State &s, const json &req, SessionControl &) {
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

json handlers::cmdStep(Engine::State &s, const json &req, SessionControl &c) {
  int64_t count = req.value("count", 1);
  if (count < 1)
    reject("'count' must be >= 1");
  return runUntil(s, s.position + count - 1, false, c);
}
json handlers::cmdContinue(Engine::State &s, const json &, SessionControl &c) {
  return runUntil(s, std::numeric_limits<int64_t>::max(), true, c);
}
json handlers::cmdRunTo(Engine::State &s, const json &req, SessionControl &c) {
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
json handlers::cmdRestart(Engine::State &s, const json &, SessionControl &) {
  s.requireModel();
  s.ensureFresh();
  s.makeInput();
  return {{"position", s.position}};
}
