//===- Lighten.cpp - --qsim-lighten: the guideline as one pipeline -------===//
//
// G1 backbone -> G2 factorization -> G5 pruning -> G3 int8 -> G4 fp16, each
// step tried on a clone, measured (SQNR against the reference outputs, mAP,
// MACs, parameters, weight bytes, latency), kept when it respects the
// fidelity bounds, and the pipeline stops once every target is met.
//
//===----------------------------------------------------------------------===//

#include "qsim/Dialect/QSim/IR/LayerStats.h"
#include "qsim/Interpreter/Executor.h"
#include "qsim/Lighten/Backbone.h"
#include "qsim/Lighten/Factorization.h"
#include "qsim/Lighten/Pruning.h"
#include "qsim/Quant/Calibration.h"
#include "qsim/Quant/Precision.h"
#include "qsim/Quant/Sensitivity.h"
#include "qsim/Support/StringUtils.h"
#include "qsim/Target/ModelIO.h"
#include "qsim/Transforms/Passes.h"


#include "llvm/ADT/StringExtras.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

namespace qsim {
#define GEN_PASS_DEF_LIGHTENPASS
#include "qsim/Transforms/Passes.h.inc"
} // namespace qsim

using namespace mlir;
using namespace qsim;

namespace {

/// "300M", "1.5G", "2e6", "900K", "2MiB", or "50%" of `original`.
std::optional<double> parseTarget(StringRef s, double original,
                                  std::string &error) {
  s = s.trim();
  if (s.empty())
    return std::nullopt;
  double scale = 1;
  StringRef num = s;
  if (num.consume_back("%"))
    scale = original / 100.0;
  else {
    num.consume_back("B");
    if (num.consume_back("Ki"))
      scale = 1024.0;
    else if (num.consume_back("Mi"))
      scale = 1024.0 * 1024.0;
    else if (num.consume_back("Gi"))
      scale = 1024.0 * 1024.0 * 1024.0;
    else if (num.consume_back("K") || num.consume_back("k"))
      scale = 1e3;
    else if (num.consume_back("M"))
      scale = 1e6;
    else if (num.consume_back("G"))
      scale = 1e9;
  }
  double v;
  if (num.trim().getAsDouble(v) || v <= 0) {
    error = "bad target '" + s.str() + "' (e.g. 300M, 2e6, 1.5MiB or 50%)";
    return std::nullopt;
  }
  return v * scale;
}

std::string human(double v) {
  if (v >= 1e9)
    return strprintf("%.2fG", v / 1e9);
  if (v >= 1e6)
    return strprintf("%.2fM", v / 1e6);
  if (v >= 1e3)
    return strprintf("%.1fK", v / 1e3);
  return strprintf("%.0f", v);
}

std::string humanBytes(double b) {
  if (b >= 1024.0 * 1024.0)
    return strprintf("%.2f MiB", b / (1024.0 * 1024.0));
  return strprintf("%.1f KiB", b / 1024.0);
}

struct Measurement {
  int64_t macs = 0, params = 0, bytes = 0;
  double latencyMs = 0;
  double sqnr = std::numeric_limits<double>::quiet_NaN(); // not measured
  std::optional<double> map;
};

struct Row {
  std::string step, what;
  std::optional<Measurement> m;
  std::string decision;
};

class Guideline {
public:
  Guideline(ModuleOp module, const LightenPassOptions &o)
      : module(module), o(o), ctx(module.getContext()) {}
  LogicalResult run();

private:
  LogicalResult fail(const Twine &msg) {
    return module.emitError() << "--qsim-lighten: " << msg;
  }
  FailureOr<Measurement> measure(ModuleOp m);
  /// Empty when `m` respects the fidelity bounds, else why not.
  std::string violation(const Measurement &m) const;
  bool targetsMet(const Measurement &m) const;
  std::string unmetTargets(const Measurement &m) const;
  void commit(OwningOpRef<ModuleOp> next, const Measurement &m, Row row);
  LogicalResult setReference(ModuleOp m);

  LogicalResult stepBackbone();
  LogicalResult stepFactorize();
  LogicalResult stepPrune();
  LogicalResult stepQuantize();

  ModuleOp module;
  const LightenPassOptions &o;
  MLIRContext *ctx;
  OwningOpRef<ModuleOp> current;
  Measurement currentM;
  std::vector<Row> rows;

  std::vector<rt::Tensor> fidelityInputs;
  std::vector<float> reference;
  std::vector<rt::Image> evalImages;
  std::vector<std::vector<rt::GroundTruth>> truth;
  double referenceMap = 0;
  double sqnrFloor = 0;
  std::optional<double> targetMacs, targetParams, targetBytes;
  /// G3's precision plan (layer list), for G4.
  std::vector<std::string> int8Layers;
  bool g3Kept = false;
};

FailureOr<Measurement> Guideline::measure(ModuleOp m) {
  Measurement r;
  auto stats = computeModelStats(m);
  if (failed(stats))
    return failure();
  r.macs = stats->macs;
  r.params = stats->params;
  r.bytes = stats->weightBytes;
  std::string error;
  {
    interp::ExecutorOptions eo;
    eo.threads = o.threads;
    auto ex = interp::Executor::create(m, eo, error);
    if (!ex)
      return fail(error);
    if (fidelityInputs.empty()) {
      // No images: latency on a mid-grey input (the same work).
      shapes::CHW in = ex->inputShape();
      rt::Tensor grey(rt::DType::F32, in.c, in.h, in.w);
      std::fill(grey.f32(), grey.f32() + grey.numel(), 0.5f);
      ex->setInput(grey);
    } else {
      ex->setInput(fidelityInputs.front());
    }
    ex->run(); // warm-up
    std::vector<double> ms;
    for (int i = 0; i < std::max(1, (int)o.latencyRuns); ++i) {
      auto t0 = std::chrono::steady_clock::now();
      ex->run();
      ms.push_back(std::chrono::duration<double, std::milli>(
                       std::chrono::steady_clock::now() - t0)
                       .count());
    }
    std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
    r.latencyMs = ms[ms.size() / 2];
    if (!reference.empty()) {
      std::vector<float> out;
      if (!eval::runOutputs(m, fidelityInputs, out, error))
        return fail(error);
      r.sqnr = eval::sqnr(reference, out);
    }
  }
  if (!evalImages.empty()) {
    double map;
    if (!eval::evaluateMap(m, evalImages, truth, map, error))
      return fail(error);
    r.map = map;
  }
  return r;
}

std::string Guideline::violation(const Measurement &m) const {
  if (sqnrFloor > 0 && m.sqnr < sqnrFloor)
    return strprintf("SQNR %.1f dB < %.1f dB", m.sqnr, sqnrFloor);
  if (o.maxMapDrop >= 0 && m.map && referenceMap - *m.map > o.maxMapDrop)
    return strprintf("mAP drop %.2f > %.2f points", referenceMap - *m.map,
                     (double)o.maxMapDrop);
  return "";
}

bool Guideline::targetsMet(const Measurement &m) const {
  bool any = targetMacs || targetParams || targetBytes || o.targetLatency > 0;
  if (!any)
    return false; // no targets: the whole guideline runs
  return unmetTargets(m).empty();
}

std::string Guideline::unmetTargets(const Measurement &m) const {
  std::string s;
  auto add = [&](const std::string &x) { s += (s.empty() ? "" : ", ") + x; };
  if (targetMacs && m.macs > *targetMacs)
    add("MACs " + human(m.macs) + " > " + human(*targetMacs));
  if (targetParams && m.params > *targetParams)
    add("params " + human(m.params) + " > " + human(*targetParams));
  if (targetBytes && m.bytes > *targetBytes)
    add("size " + humanBytes(m.bytes) + " > " + humanBytes(*targetBytes));
  if (o.targetLatency > 0 && m.latencyMs > o.targetLatency)
    add(strprintf("latency %.2f ms > %.2f ms", m.latencyMs,
                  (double)o.targetLatency));
  return s;
}

void Guideline::commit(OwningOpRef<ModuleOp> next, const Measurement &m,
                       Row row) {
  current = std::move(next);
  currentM = m;
  row.m = m;
  rows.push_back(row);
}

LogicalResult Guideline::setReference(ModuleOp m) {
  std::string error;
  reference.clear();
  if (!fidelityInputs.empty() &&
      !eval::runOutputs(m, fidelityInputs, reference, error))
    return fail(error);
  if (!evalImages.empty() &&
      !eval::evaluateMap(m, evalImages, truth, referenceMap, error))
    return fail(error);
  return success();
}

LogicalResult Guideline::stepBackbone() {
  if (o.with.empty()) {
    rows.push_back({"G1", "backbone substitution", {}, "skipped (no with=)"});
    return success();
  }
  lighten::BackboneOptions bo;
  std::string error;
  if (!lighten::parseBackboneOptions(o.with, o.weights, o.cut, o.take, bo,
                                     error))
    return fail("G1 " + error);
  OwningOpRef<ModuleOp> donor =
      loadDonorNetwork(current->getContext(), bo.otherCfg, bo.otherWeights,
                       bo.seed, getFlavor(*current));
  if (!donor)
    return fail("G1 cannot import '" + bo.otherCfg + "'");
  OwningOpRef<ModuleOp> next = current->clone();
  if (failed(lighten::substituteBackbone(*next, *donor, bo, nullptr)))
    return failure();
  // The new backbone changes what the head sees: from here on, fidelity is
  // measured against the substituted model (it needs fine-tuning first).
  if (failed(setReference(*next)))
    return failure();
  auto m = measure(*next);
  if (failed(m))
    return failure();
  std::string what = "backbone from " + bo.otherCfg;
  commit(std::move(next), *m,
         {"G1",
          what,
          {},
          "kept; needs training: later SQNR/mAP are relative "
          "to this model"});
  return success();
}

LogicalResult Guideline::stepFactorize() {
  double energy = o.energy;
  std::string lastWhy, lastWhat;
  std::optional<Measurement> lastM;
  for (int attempt = 0; attempt < 3; ++attempt, energy = (1 + energy) / 2) {
    lighten::FactorizeOptions fo;
    fo.method = o.factorizeMethod;
    fo.top = o.factorizeTop;
    fo.energy = energy;
    OwningOpRef<ModuleOp> next = current->clone();
    lighten::FactorizeResult fr;
    if (failed(lighten::factorizeConvs(*next, fo, fr)))
      return failure();
    int applied = 0;
    for (const auto &l : fr.layers)
      applied += l.applied;
    std::string what =
        strprintf("%s of the %d heaviest convs, energy %.3g",
                  lighten::stringifyFactorizeMethod(o.factorizeMethod).data(),
                  (int)o.factorizeTop, energy);
    if (applied == 0)
      break; // higher energies only raise the ranks
    auto m = measure(*next);
    if (failed(m))
      return failure();
    std::string why = violation(*m);
    if (why.empty()) {
      commit(std::move(next), *m, {"G2", what, {}, "kept"});
      return success();
    }
    lastWhy = why;
    lastWhat = what;
    lastM = *m;
  }
  if (!lastM)
    rows.push_back(
        {"G2", lighten::stringifyFactorizeMethod(o.factorizeMethod).str(), {},
         "skipped: the ranks save no MACs"});
  else
    rows.push_back({"G2", lastWhat, lastM, "rejected: " + lastWhy});
  return success();
}

LogicalResult Guideline::stepPrune() {
  if (!targetParams) {
    rows.push_back({"G5", "channel pruning", {}, "skipped (no target-params)"});
    return success();
  }
  if (currentM.params <= *targetParams) {
    rows.push_back({"G5", "channel pruning", {}, "skipped (params met)"});
    return success();
  }
  auto pruned = [&](double ratio) -> FailureOr<OwningOpRef<ModuleOp>> {
    OwningOpRef<ModuleOp> next = current->clone();
    lighten::ChannelPruneOptions po;
    po.ratio = ratio;
    po.roundTo = o.roundTo;
    if (failed(lighten::pruneChannels(*next, po, nullptr)))
      return failure();
    return next;
  };
  auto paramsOf = [&](ModuleOp m) -> int64_t {
    auto s = computeModelStats(m);
    return succeeded(s) ? s->params : std::numeric_limits<int64_t>::max();
  };
  // The smallest ratio that meets the parameter target.
  double lo = 0, hi = o.maxPruneRatio;
  auto atMax = pruned(hi);
  if (failed(atMax))
    return failure();
  bool reachable = paramsOf(**atMax) <= *targetParams;
  if (reachable)
    for (int i = 0; i < 8; ++i) {
      double mid = (lo + hi) / 2;
      auto m = pruned(mid);
      if (failed(m))
        return failure();
      (paramsOf(**m) <= *targetParams ? hi : lo) = mid;
    }
  // Back off while the fidelity bound is broken.
  std::string lastWhy;
  std::optional<Measurement> lastM;
  for (double ratio = hi; ratio >= 0.05; ratio *= 0.7) {
    auto next = pruned(ratio);
    if (failed(next))
      return failure();
    auto m = measure(**next);
    if (failed(m))
      return failure();
    std::string why = violation(*m);
    std::string what = strprintf("channels, ratio %.3f, l1, round-to %d", ratio,
                                 (int)o.roundTo);
    if (why.empty()) {
      commit(std::move(*next), *m,
             {"G5",
              what,
              {},
              reachable && ratio == hi ? "kept"
                                       : "kept (params target not reached)"});
      return success();
    }
    lastWhy = why;
    lastM = *m;
  }
  rows.push_back({"G5", "channel pruning", lastM, "rejected: " + lastWhy});
  return success();
}

LogicalResult Guideline::stepQuantize() {
  if (o.calib.empty()) {
    rows.push_back({"G3", "int8", {}, "skipped (needs calib=DIR)"});
    rows.push_back({"G4", "fp16", {}, "skipped (needs calib=DIR)"});
    return success();
  }
  // Fold batch norms and calibrate once; G3 and G4 both start from here.
  OwningOpRef<ModuleOp> calibrated = current->clone();
  {
    if (failed(foldBatchNorms(*calibrated)))
      return failure();
    quantization::CalibrationOptions co;
    std::string error;
    if (!rt::listImageFiles(o.calib, co.images, error))
      return fail(error);
    co.method = o.calibMethod;
    co.maxImages = o.calibImages;
    co.threads = o.threads;
    if (!quantization::calibrateModule(*calibrated, co, error))
      return fail(error);
  }
  auto quantized = [&](const quantization::PrecisionPlan &plan)
      -> FailureOr<OwningOpRef<ModuleOp>> {
    OwningOpRef<ModuleOp> next = calibrated->clone();
    if (failed(quantization::assignPrecision(*next, plan)) ||
        failed(quantization::quantizeModule(*next, {})))
      return failure();
    return next;
  };
  auto int8List = [](ModuleOp m) {
    std::vector<std::string> list;
    auto layers = getLayers(getMainFunc(m));
    if (succeeded(layers))
      for (const Layer &l : *layers)
        if (quantization::getAssignedPrecision(l) == "int8")
          list.push_back(std::to_string(l.index));
    return list;
  };

  // G3: every layer with an int8 form; a mixed-precision search when that
  // breaks the SQNR bound.
  quantization::PrecisionPlan all;
  all.preset = quantization::PrecisionPreset::AllInt8;
  auto q = quantized(all);
  if (failed(q))
    return failure();
  auto m = measure(**q);
  if (failed(m))
    return failure();
  std::string why = violation(*m);
  if (why.empty()) {
    // The list as planned (before quantization rewrote the types).
    OwningOpRef<ModuleOp> planned = calibrated->clone();
    if (succeeded(quantization::assignPrecision(*planned, all)))
      int8Layers = int8List(*planned);
    commit(std::move(*q), *m,
           {"G3", "int8 (all layers with an int8 form)", {}, "kept"});
    g3Kept = true;
  } else if (sqnrFloor > 0) {
    OwningOpRef<ModuleOp> planned = calibrated->clone();
    quantization::SearchOptions so;
    so.minSqnr = sqnrFloor;
    so.images = o.calib;
    so.maxImages = o.fidelityImages;
    std::string table;
    llvm::raw_string_ostream ts(table);
    if (failed(quantization::searchPrecision(*planned, so, ts)))
      return failure();
    int8Layers = int8List(*planned);
    OwningOpRef<ModuleOp> next = planned->clone();
    if (failed(quantization::quantizeModule(*next, {})))
      return failure();
    auto mm = measure(*next);
    if (failed(mm))
      return failure();
    std::string why2 = violation(*mm);
    if (why2.empty() && !int8Layers.empty()) {
      commit(std::move(next), *mm,
             {"G3",
              "int8 (mixed: layers " + llvm::join(int8Layers, ",") + ")",
              {},
              "kept (all-int8: " + why + ")"});
      g3Kept = true;
    } else {
      rows.push_back({"G3", "int8", *m, "rejected: " + why});
    }
  } else {
    rows.push_back({"G3", "int8", *m, "rejected: " + why});
  }
  if (targetsMet(currentM))
    return success();

  // G4: what int8 left in float goes to fp16 (everything without G3).
  quantization::PrecisionPlan half;
  if (g3Kept) {
    half.defaultPrecision = Precision::FP16;
    half.int8 = int8Layers;
  } else {
    half.preset = quantization::PrecisionPreset::FP16;
  }
  auto h = quantized(half);
  if (failed(h))
    return failure();
  auto hm = measure(**h);
  if (failed(hm))
    return failure();
  std::string hwhy = violation(*hm);
  std::string what =
      g3Kept ? "fp16 for the layers int8 left in float" : "fp16 (every layer)";
  if (!hwhy.empty())
    rows.push_back({"G4", what, *hm, "rejected: " + hwhy});
  else if (g3Kept && hm->bytes >= currentM.bytes &&
           hm->latencyMs >= currentM.latencyMs)
    rows.push_back({"G4", what, *hm, "not kept: no smaller or faster"});
  else
    commit(std::move(*h), *hm, {"G4", what, {}, "kept"});
  return success();
}

LogicalResult Guideline::run() {
  if (module->hasAttr("qsim.quantization"))
    return fail("lighten the float model (before --qsim-quantize)");
  current = module.clone();
  auto stats = computeModelStats(*current);
  if (failed(stats))
    return failure();
  std::string error;
  targetMacs = parseTarget(o.targetMacs, stats->macs, error);
  if (error.empty())
    targetParams = parseTarget(o.targetParams, stats->params, error);
  if (error.empty())
    targetBytes = parseTarget(o.targetSize, stats->weightBytes, error);
  if (!error.empty())
    return fail(error);
  if ((o.minSqnr > 0 || o.maxSqnrDrop >= 0) && o.calib.empty())
    return fail("min-sqnr/max-sqnr-drop need calib=DIR (images for the "
                "output SQNR)");
  if (o.maxMapDrop >= 0 && o.eval.empty())
    return fail("max-map-drop needs eval=DIR (images with YOLO labels)");

  // Inputs for the SQNR and latency, and the labelled set for mAP.
  if (!o.calib.empty()) {
    std::vector<std::string> files;
    if (!rt::listImageFiles(o.calib, files, error))
      return fail(error);
    if ((int)files.size() > o.fidelityImages)
      files.resize(std::max(1, (int)o.fidelityImages));
    if (!eval::loadNetworkInputs(*current, files, fidelityInputs,
                                         error))
      return fail(error);
  }
  if (!o.eval.empty()) {
    std::vector<std::string> files;
    if (!rt::listImageFiles(o.eval, files, error))
      return fail(error);
    if (o.evalImages > 0 && (int)files.size() > o.evalImages)
      files.resize(o.evalImages);
    for (const std::string &f : files) {
      rt::Image im;
      std::vector<rt::GroundTruth> gt;
      bool missing;
      if (!rt::loadImage(f, im, error) ||
          !rt::readYoloLabels(rt::labelPathForImage(f, o.eval), gt, missing,
                              error))
        return fail(error);
      evalImages.push_back(std::move(im));
      truth.push_back(std::move(gt));
    }
  }
  if (failed(setReference(*current)))
    return failure();
  sqnrFloor = o.minSqnr;
  double fp16Sqnr = 0;
  if (o.maxSqnrDrop >= 0) {
    // The original in fp16 is the numerically transparent deployment; a
    // "drop" is measured from there.
    OwningOpRef<ModuleOp> half = current->clone();
    quantization::PrecisionPlan p;
    p.preset = quantization::PrecisionPreset::FP16;
    if (failed(foldBatchNorms(*half)) ||
        failed(quantization::assignPrecision(*half, p)) ||
        failed(quantization::quantizeModule(*half, {})))
      return failure();
    std::vector<float> out;
    if (!eval::runOutputs(*half, fidelityInputs, out, error))
      return fail(error);
    fp16Sqnr = eval::sqnr(reference, out);
    sqnrFloor = std::max(sqnrFloor, fp16Sqnr - o.maxSqnrDrop);
  }
  auto base = measure(*current);
  if (failed(base))
    return failure();
  currentM = *base;
  rows.push_back({"G0", "original", *base, ""});

  auto &os = llvm::errs();
  os << "--qsim-lighten: the guideline (G1 backbone, G2 factorization, G5 "
        "pruning, G3 int8, G4 fp16)\n";
  std::string targets;
  if (targetMacs)
    targets += " MACs<=" + human(*targetMacs);
  if (targetParams)
    targets += " params<=" + human(*targetParams);
  if (targetBytes)
    targets += " size<=" + humanBytes(*targetBytes);
  if (o.targetLatency > 0)
    targets += strprintf(" latency<=%.2fms", (double)o.targetLatency);
  os << "targets:" << (targets.empty() ? " none (every step runs)" : targets)
     << "\n";
  os << "fidelity:";
  if (sqnrFloor > 0)
    os << strprintf(" output SQNR >= %.1f dB", sqnrFloor);
  if (o.maxSqnrDrop >= 0)
    os << strprintf(" (original in fp16: %.1f dB, minus %.1f)", fp16Sqnr,
                    (double)o.maxSqnrDrop);
  if (o.maxMapDrop >= 0)
    os << strprintf(" mAP drop <= %.2f", (double)o.maxMapDrop);
  if (sqnrFloor <= 0 && o.maxMapDrop < 0)
    os << " no bound";
  os << strprintf("; SQNR on %zu image(s), mAP on %zu\n", fidelityInputs.size(),
                  evalImages.size());

  using StepFn = LogicalResult (Guideline::*)();
  std::pair<const char *, StepFn> steps[] = {{"G1", &Guideline::stepBackbone},
                                             {"G2", &Guideline::stepFactorize},
                                             {"G5", &Guideline::stepPrune},
                                             {"G3", &Guideline::stepQuantize}};
  bool met = false;
  for (auto &[name, fn] : steps) {
    if (targetsMet(currentM)) {
      met = true;
      rows.push_back({name, "", {}, "not needed: targets met"});
      if (StringRef(name) == "G3")
        rows.push_back({"G4", "", {}, "not needed: targets met"});
      continue;
    }
    if (failed((this->*fn)()))
      return failure();
  }
  met = met || targetsMet(currentM);

  // The table.
  os << strprintf("%-4s %-50s %8s %7s %9s %9s %10s %8s  %s\n", "step", "what",
                  "SQNR dB", "mAP", "MACs", "params", "size", "ms", "decision");
  for (const Row &r : rows) {
    std::string sq = "-", mp = "-", macs = "-", params = "-", size = "-",
                lat = "-";
    if (r.m) {
      sq = std::isnan(r.m->sqnr)   ? "-"
           : std::isinf(r.m->sqnr) ? "inf"
                                   : strprintf("%.1f", r.m->sqnr);
      mp = r.m->map ? strprintf("%.2f", *r.m->map) : "-";
      macs = human(r.m->macs);
      params = human(r.m->params);
      size = humanBytes(r.m->bytes);
      lat = r.m->latencyMs > 0 ? strprintf("%.2f", r.m->latencyMs) : "-";
    }
    os << strprintf("%-4s %-50s %8s %7s %9s %9s %10s %8s  %s\n", r.step.c_str(),
                    r.what.substr(0, 50).c_str(), sq.c_str(), mp.c_str(),
                    macs.c_str(), params.c_str(), size.c_str(), lat.c_str(),
                    r.decision.c_str());
  }
  bool anyTarget =
      targetMacs || targetParams || targetBytes || o.targetLatency > 0;
  if (anyTarget)
    os << (met ? "targets met\n"
               : "targets NOT met: " + unmetTargets(currentM) + "\n");

  // The module becomes the last kept model.
  module.getBodyRegion().takeBody(current->getBodyRegion());
  module->setAttrs(current->getOperation()->getAttrDictionary());
  return success();
}

struct LightenPass : public qsim::impl::LightenPassBase<LightenPass> {
  using LightenPassBase::LightenPassBase;
  void runOnOperation() override {
    LightenPassOptions options;
    options.targetMacs = targetMacs;
    options.targetParams = targetParams;
    options.targetSize = targetSize;
    options.targetLatency = targetLatency;
    options.minSqnr = minSqnr;
    options.maxSqnrDrop = maxSqnrDrop;
    options.maxMapDrop = maxMapDrop;
    options.calib = calib;
    options.calibImages = calibImages;
    options.fidelityImages = fidelityImages;
    options.eval = eval;
    options.evalImages = evalImages;
    options.with = with;
    options.weights = weights;
    options.cut = cut;
    options.take = take;
    options.factorizeMethod = factorizeMethod;
    options.factorizeTop = factorizeTop;
    options.energy = energy;
    options.maxPruneRatio = maxPruneRatio;
    options.roundTo = roundTo;
    options.calibMethod = calibMethod;
    options.latencyRuns = latencyRuns;
    options.threads = threads;
    Guideline g(getOperation(), options);
    if (failed(g.run()))
      signalPassFailure();
  }
};

} // namespace
