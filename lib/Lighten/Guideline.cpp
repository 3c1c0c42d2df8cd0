//===- Guideline.cpp - the lightening guideline as one pipeline ----------===//
//
// G1 backbone -> G2 factorization -> G5 pruning -> G3 int8 -> G4 fp16, each
// step tried on a clone, measured (SQNR against the reference outputs, mAP,
// MACs, parameters, weight bytes, latency), kept when it respects the
// fidelity bounds, and the pipeline stops once every target is met.
//
//===----------------------------------------------------------------------===//

#include "qsim/Lighten/Guideline.h"

#include "qsim/Dialect/QSim/IR/LayerStats.h"
#include "qsim/Dialect/QSim/Transforms/Passes.h"
#include "qsim/Evaluation/ModelMeasures.h"
#include "qsim/Evaluation/ShardedEvaluation.h"
#include "qsim/Interpreter/Executor.h"
#include "qsim/Lighten/Pruning.h"
#include "qsim/Quant/Precision.h"
#include "qsim/Quant/Sensitivity.h"
#include "qsim/Support/Diagnostics.h"
#include "qsim/Support/StringUtils.h"

#include "llvm/ADT/StringExtras.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

using namespace mlir;
using namespace qsim;
using namespace qsim::lighten;

namespace {
RecoveryHook &recoveryHook() {
  static RecoveryHook hook;
  return hook;
}
} // namespace

void qsim::lighten::setRecoveryHook(RecoveryHook hook) {
  recoveryHook() = std::move(hook);
}

bool qsim::lighten::hasRecoveryHook() {
  return static_cast<bool>(recoveryHook());
}

double GuidelineTarget::resolve(double original) const {
  return percentOfOriginal ? amount * (original / 100.0) : amount;
}

std::optional<GuidelineTarget>
qsim::lighten::parseGuidelineTarget(StringRef text, std::string &error) {
  StringRef s = text.trim();
  if (s.empty())
    return std::nullopt;
  GuidelineTarget target;
  double scale = 1;
  StringRef num = s;
  if (num.consume_back("%"))
    target.percentOfOriginal = true;
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
  target.amount = v * scale;
  return target;
}

namespace {

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

/// One line of the table (two with recover=train: before and after).
struct Row {
  std::string step, what;
  std::optional<Measurement> m;
  std::string decision;
  std::optional<Measurement> before; // recover=train: before training
  std::string trained;               // and how it was trained
};

/// Assigns `plan` to `module` and quantizes it in place.
LogicalResult quantizeWithPlan(ModuleOp module,
                               const quantization::PrecisionPlan &plan) {
  return failure(failed(quantization::assignPrecision(module, plan)) ||
                 failed(quantization::quantizeModule(module, {})));
}

/// A quantized copy of the calibrated `module`.
FailureOr<OwningOpRef<ModuleOp>>
quantizedCopy(ModuleOp module, const quantization::PrecisionPlan &plan) {
  OwningOpRef<ModuleOp> copy = module.clone();
  if (failed(quantizeWithPlan(*copy, plan)))
    return failure();
  return copy;
}

/// The Darknet indices of the layers planned in int8.
std::vector<std::string> int8LayersOf(ModuleOp module) {
  std::vector<std::string> list;
  auto layers = getLayers(getMainFunc(module));
  if (succeeded(layers))
    for (const Layer &l : *layers)
      if (quantization::getAssignedPrecision(l) == "int8")
        list.push_back(std::to_string(l.index));
  return list;
}

class Guideline {
public:
  Guideline(ModuleOp module, const GuidelineOptions &o, ModuleOp donor,
            raw_ostream &os)
      : module(module), o(o), donor(donor), os(os) {}
  LogicalResult run();

private:
  LogicalResult fail(const Twine &msg) {
    return module.emitError() << "--qsim-lighten: " << msg;
  }

  // Setting up: targets, images, the reference and the fidelity floor.
  LogicalResult resolveRequest();
  LogicalResult loadImages();
  LogicalResult loadEvalSet();
  LogicalResult setReference(ModuleOp m);
  LogicalResult setFidelityFloor();

  // Measuring and deciding.
  FailureOr<Measurement> measure(ModuleOp m);
  /// mAP@0.5 on the evaluation set: in process, or by sharded qsim-run
  /// processes (options.evaluation).
  bool evaluationMap(ModuleOp m, double &map, std::string &error);
  double medianLatencyMs(interp::Executor &executor);
  /// Empty when `m` respects the fidelity bounds, else why not.
  std::string violation(const Measurement &m) const;
  bool anyTarget() const;
  bool targetsMet(const Measurement &m) const;
  std::string unmetTargets(const Measurement &m) const;
  void commit(OwningOpRef<ModuleOp> next, const Measurement &m, Row row);

  // The steps, in the order they run.
  LogicalResult runSteps();
  LogicalResult stepBackbone();
  LogicalResult stepFactorize();
  FailureOr<OwningOpRef<ModuleOp>> factorizedCopy(ModuleOp from, int top,
                                                  double energy, int &applied,
                                                  bool refit = true);
  std::string factorizeWhat(int top, double energy) const;
  /// G2 kept (`applied` layers) but the MACs target missed: the energies
  /// that meet it for as many and more layers, while the bounds hold.
  LogicalResult meetMacsTarget(ModuleOp before, int applied);
  LogicalResult stepPrune();
  /// The current model pruned at `ratio`; with `refit`, refit on the
  /// calibration images when the options ask for it.
  FailureOr<OwningOpRef<ModuleOp>> prunedCopy(double ratio,
                                              bool refit = false);
  /// Whether G2/G5 refit what they change (calibration images given).
  bool refits() const { return !o.calibDir.empty() && o.refitImages > 0; }
  /// recover=train: measures `next` into row.before, then fine-tunes it
  /// towards the original; nothing without recovery.
  LogicalResult recoverStep(ModuleOp next, Row &row);
  LogicalResult stepQuantize();
  FailureOr<OwningOpRef<ModuleOp>> calibratedCopy();
  LogicalResult stepInt8(ModuleOp calibrated);
  LogicalResult stepMixedInt8(ModuleOp calibrated, const Measurement &allInt8,
                              const std::string &allInt8Violation);
  LogicalResult stepFp16(ModuleOp calibrated);

  // The report.
  void printSettings() const;
  void printTable() const;

  ModuleOp module;
  const GuidelineOptions &o;
  ModuleOp donor;
  raw_ostream &os;
  OwningOpRef<ModuleOp> current;
  Measurement currentM;
  std::vector<Row> rows;

  std::vector<rt::Tensor> fidelityInputs;
  std::vector<float> reference;
  std::vector<rt::Image> evalImages;
  std::vector<std::vector<rt::GroundTruth>> truth;
  double referenceMap = 0;
  double sqnrFloor = 0;
  /// The original's output SQNR in fp16 (with maxSqnrDrop).
  double fp16Sqnr = 0;
  std::optional<double> targetMacs, targetParams, targetBytes;
  /// G3's precision plan (layer list), for G4.
  std::vector<std::string> int8Layers;
  bool g3Kept = false;
};

//===----------------------------------------------------------------------===//
// Setting up
//===----------------------------------------------------------------------===//

LogicalResult Guideline::resolveRequest() {
  if (module->hasAttr("qsim.quantization"))
    return fail("lighten the float model (before --qsim-quantize)");
  auto stats = computeModelStats(module);
  if (failed(stats))
    return failure();
  if (o.targetMacs)
    targetMacs = o.targetMacs->resolve(stats->macs);
  if (o.targetParams)
    targetParams = o.targetParams->resolve(stats->params);
  if (o.targetBytes)
    targetBytes = o.targetBytes->resolve(stats->weightBytes);
  if ((o.minSqnr || o.maxSqnrDrop) && o.calibDir.empty())
    return fail("min-sqnr/max-sqnr-drop need calib=DIR (images for the "
                "output SQNR)");
  if (o.maxMapDrop && o.evalDir.empty())
    return fail("max-map-drop needs eval=DIR (images with YOLO labels)");
  return success();
}

/// Inputs for the SQNR and latency, and the labelled set for mAP.
LogicalResult Guideline::loadImages() {
  if (!o.calibDir.empty()) {
    std::vector<std::string> files;
    std::string error;
    if (!rt::listImageFiles(o.calibDir, files, error))
      return fail(error);
    if ((int)files.size() > o.fidelityImages)
      files.resize(std::max(1, o.fidelityImages));
    if (!eval::loadNetworkInputs(*current, files, fidelityInputs, error))
      return fail(error);
  }
  if (!o.evalDir.empty())
    return loadEvalSet();
  return success();
}

LogicalResult Guideline::loadEvalSet() {
  std::vector<std::string> files;
  std::string error;
  if (!rt::listImageFiles(o.evalDir, files, error))
    return fail(error);
  if (o.evalImages > 0 && (int)files.size() > o.evalImages)
    files.resize(o.evalImages);
  for (const std::string &f : files) {
    rt::Image im;
    std::vector<rt::GroundTruth> gt;
    bool missing;
    if (!rt::loadImage(f, im, error) ||
        !rt::readYoloLabels(rt::labelPathForImage(f, o.evalDir), gt, missing,
                            error))
      return fail(error);
    evalImages.push_back(std::move(im));
    truth.push_back(std::move(gt));
  }
  return success();
}

LogicalResult Guideline::setReference(ModuleOp m) {
  std::string error;
  reference.clear();
  if (!fidelityInputs.empty() &&
      !eval::runOutputs(m, fidelityInputs, reference, error))
    return fail(error);
  if (!evalImages.empty() && !evaluationMap(m, referenceMap, error))
    return fail(error);
  return success();
}

LogicalResult Guideline::setFidelityFloor() {
  sqnrFloor = o.minSqnr.value_or(0);
  if (!o.maxSqnrDrop)
    return success();
  // The original in fp16 is the numerically transparent deployment; a
  // "drop" is measured from there.
  OwningOpRef<ModuleOp> half = current->clone();
  quantization::PrecisionPlan p;
  p.preset = quantization::PrecisionPreset::FP16;
  if (failed(foldBatchNorms(*half)) || failed(quantizeWithPlan(*half, p)))
    return failure();
  std::vector<float> out;
  std::string error;
  if (!eval::runOutputs(*half, fidelityInputs, out, error))
    return fail(error);
  fp16Sqnr = eval::sqnr(reference, out);
  sqnrFloor = std::max(sqnrFloor, fp16Sqnr - *o.maxSqnrDrop);
  return success();
}

//===----------------------------------------------------------------------===//
// Measuring and deciding
//===----------------------------------------------------------------------===//

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
    std::unique_ptr<interp::Executor> ex;
    {
      DiagnosticPrefix prefix(module.getContext(), "--qsim-lighten: ");
      ex = interp::Executor::create(m, eo);
    }
    if (!ex)
      return failure();
    r.latencyMs = medianLatencyMs(*ex);
    if (!reference.empty()) {
      std::vector<float> out;
      if (!eval::runOutputs(m, fidelityInputs, out, error))
        return fail(error);
      r.sqnr = eval::sqnr(reference, out);
    }
  }
  if (!evalImages.empty()) {
    double map;
    if (!evaluationMap(m, map, error))
      return fail(error);
    r.map = map;
  }
  return r;
}

bool Guideline::evaluationMap(ModuleOp m, double &map, std::string &error) {
  if (o.evaluation.enabled())
    return eval::evaluateMapSharded(m, o.evaluation, o.evalDir, o.evalDir,
                                    o.evalImages, map, llvm::errs(), error);
  return eval::evaluateMap(m, evalImages, truth, map, error);
}

/// The median of `latencyRuns` forward passes after a warm-up, on the first
/// fidelity input.
double Guideline::medianLatencyMs(interp::Executor &ex) {
  if (fidelityInputs.empty()) {
    // No images: latency on a mid-grey input (the same work).
    shapes::CHW in = ex.inputShape();
    rt::Tensor grey(rt::DType::F32, in.c, in.h, in.w);
    std::fill(grey.f32(), grey.f32() + grey.numel(), 0.5f);
    ex.setInput(grey);
  } else {
    ex.setInput(fidelityInputs.front());
  }
  ex.run(); // warm-up
  std::vector<double> ms;
  for (int i = 0; i < std::max(1, o.latencyRuns); ++i) {
    auto t0 = std::chrono::steady_clock::now();
    ex.run();
    ms.push_back(std::chrono::duration<double, std::milli>(
                     std::chrono::steady_clock::now() - t0)
                     .count());
  }
  std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
  return ms[ms.size() / 2];
}

std::string Guideline::violation(const Measurement &m) const {
  if (sqnrFloor > 0 && m.sqnr < sqnrFloor)
    return strprintf("SQNR %.1f dB < %.1f dB", m.sqnr, sqnrFloor);
  if (o.maxMapDrop && m.map && referenceMap - *m.map > *o.maxMapDrop)
    return strprintf("mAP drop %.2f > %.2f points", referenceMap - *m.map,
                     *o.maxMapDrop);
  return "";
}

bool Guideline::anyTarget() const {
  return targetMacs || targetParams || targetBytes || o.targetLatencyMs;
}

bool Guideline::targetsMet(const Measurement &m) const {
  if (!anyTarget())
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
  if (o.targetLatencyMs && m.latencyMs > *o.targetLatencyMs)
    add(strprintf("latency %.2f ms > %.2f ms", m.latencyMs,
                  *o.targetLatencyMs));
  return s;
}

void Guideline::commit(OwningOpRef<ModuleOp> next, const Measurement &m,
                       Row row) {
  current = std::move(next);
  currentM = m;
  row.m = m;
  rows.push_back(row);
}

//===----------------------------------------------------------------------===//
// The steps
//===----------------------------------------------------------------------===//

LogicalResult Guideline::runSteps() {
  using StepFn = LogicalResult (Guideline::*)();
  std::pair<const char *, StepFn> steps[] = {{"G1", &Guideline::stepBackbone},
                                             {"G2", &Guideline::stepFactorize},
                                             {"G5", &Guideline::stepPrune},
                                             {"G3", &Guideline::stepQuantize}};
  for (auto &[name, fn] : steps) {
    if (targetsMet(currentM)) {
      rows.push_back({name, "", {}, "not needed: targets met"});
      if (StringRef(name) == "G3")
        rows.push_back({"G4", "", {}, "not needed: targets met"});
      continue;
    }
    if (failed((this->*fn)()))
      return failure();
  }
  return success();
}

LogicalResult Guideline::stepBackbone() {
  if (!o.backbone) {
    rows.push_back({"G1", "backbone substitution", {}, "skipped (no with=)"});
    return success();
  }
  OwningOpRef<ModuleOp> next = current->clone();
  if (failed(substituteBackbone(*next, donor, *o.backbone, nullptr)))
    return failure();
  if (o.recover) {
    // Trained towards the original, so measured against it and kept only
    // within the fidelity bounds.
    Row row{"G1", "backbone from " + o.backbone->otherCfg, {}, ""};
    if (failed(recoverStep(*next, row)))
      return failure();
    auto m = measure(*next);
    if (failed(m))
      return failure();
    std::string why = violation(*m);
    row.decision = why.empty() ? "kept" : "rejected: " + why;
    row.m = *m;
    if (why.empty())
      commit(std::move(next), *m, row);
    else
      rows.push_back(row);
    return success();
  }
  // The new backbone changes what the head sees: from here on, fidelity is
  // measured against the substituted model (it needs fine-tuning first).
  if (failed(setReference(*next)))
    return failure();
  auto m = measure(*next);
  if (failed(m))
    return failure();
  std::string what = "backbone from " + o.backbone->otherCfg;
  commit(std::move(next), *m,
         {"G1",
          what,
          {},
          "kept; needs training: later SQNR/mAP are relative "
          "to this model"});
  return success();
}

/// One G2 candidate: `top` heaviest convolutions of `from` at `energy`,
/// refit on the images when the guideline refits and `refit` allows it.
/// `applied` is how many were factorized (0: the ranks save nothing).
FailureOr<OwningOpRef<ModuleOp>>
Guideline::factorizedCopy(ModuleOp from, int top, double energy, int &applied,
                          bool refit) {
  FactorizeOptions fo;
  fo.method = o.factorizeMethod;
  fo.top = top;
  fo.energy = energy;
  if (refit && refits()) {
    fo.images = {o.calibDir};
    fo.maxImages = o.refitImages;
    fo.refit = true;
  }
  OwningOpRef<ModuleOp> next = from.clone();
  FactorizeResult fr;
  if (failed(factorizeConvs(*next, fo, fr)))
    return failure();
  applied = 0;
  for (const auto &l : fr.layers)
    applied += l.applied;
  return next;
}

std::string Guideline::factorizeWhat(int top, double energy) const {
  return strprintf("%s of the %d heaviest convs, energy %.3g%s",
                   stringifyFactorizeMethod(o.factorizeMethod).data(), top,
                   energy, refits() ? ", refit" : "");
}

LogicalResult Guideline::stepFactorize() {
  // The model before G2: every candidate, however many layers it takes, is
  // factorized (and refit) from here.
  OwningOpRef<ModuleOp> before = current->clone();
  double energy = o.energy;
  std::string lastWhy;
  std::optional<Measurement> lastM;
  std::optional<Row> lastRow;
  for (int attempt = 0; attempt < 3; ++attempt, energy = (1 + energy) / 2) {
    int applied = 0;
    auto next = factorizedCopy(*before, o.factorizeTop, energy, applied);
    if (failed(next))
      return failure();
    if (applied == 0)
      break; // higher energies only raise the ranks
    Row row{"G2", factorizeWhat(o.factorizeTop, energy), {}, "kept"};
    if (failed(recoverStep(**next, row)))
      return failure();
    auto m = measure(**next);
    if (failed(m))
      return failure();
    std::string why = violation(*m);
    if (why.empty()) {
      commit(std::move(*next), *m, row);
      return meetMacsTarget(*before, applied);
    }
    lastRow = row;
    lastWhy = why;
    lastM = *m;
  }
  if (!lastRow)
    rows.push_back({"G2",
                    stringifyFactorizeMethod(o.factorizeMethod).str(),
                    {},
                    "skipped: the ranks save no MACs"});
  else {
    lastRow->m = lastM;
    lastRow->decision = "rejected: " + lastWhy;
    rows.push_back(*lastRow);
  }
  return success();
}

/// With a MACs target that the kept G2 model misses: for `factorize-top`
/// convolutions, then one more, then two more, the highest energy in
/// [kMinEnergy, 1) whose MACs meet the target, found by bisection on the
/// MACs alone (no images), then refit and measured like any candidate; the
/// first that respects the fidelity bounds replaces the kept model. The
/// order (fewest layers first) and the acceptance are the guideline's
/// usual ones, so nothing is chosen by comparing mAPs of candidates.
LogicalResult Guideline::meetMacsTarget(ModuleOp before, int applied) {
  constexpr double kMinEnergy = 0.5;
  size_t kept = rows.size() - 1; // the G2 row committed last
  auto macsOf = [&](int top, double e, int &n) -> FailureOr<int64_t> {
    auto probe = factorizedCopy(before, top, e, n, /*refit=*/false);
    if (failed(probe))
      return failure();
    auto stats = computeModelStats(**probe);
    if (failed(stats))
      return failure();
    return stats->macs;
  };
  for (int top = o.factorizeTop; top <= o.factorizeTop + 2; ++top) {
    if (!targetMacs || currentM.macs <= *targetMacs)
      break;
    int n = 0;
    auto atLow = macsOf(top, kMinEnergy, n);
    if (failed(atLow))
      return failure();
    if (top > o.factorizeTop && n <= applied)
      break; // no further convolution saves MACs
    applied = std::max(applied, n);
    if (*atLow > *targetMacs)
      continue; // even at the lowest energy these layers miss the target
    // Up to 1 (full ranks, nothing saved), not the first energy: with more
    // layers the target may be met at a higher energy than it was missed at.
    double lo = kMinEnergy, hi = 1.0;
    for (int i = 0; i < 12; ++i) {
      double mid = (lo + hi) / 2;
      auto m = macsOf(top, mid, n);
      if (failed(m))
        return failure();
      (*m <= *targetMacs ? lo : hi) = mid;
    }
    int used = 0;
    auto next = factorizedCopy(before, top, lo, used);
    if (failed(next))
      return failure();
    Row row{"G2", factorizeWhat(top, lo), {}, "kept"};
    if (failed(recoverStep(**next, row)))
      return failure();
    auto m = measure(**next);
    if (failed(m))
      return failure();
    std::string why = violation(*m);
    if (!why.empty()) {
      row.m = *m;
      row.decision = "rejected: " + why;
      rows.push_back(row);
      continue;
    }
    rows[kept].decision = "superseded: MACs target not met";
    commit(std::move(*next), *m, row);
    kept = rows.size() - 1;
  }
  return success();
}

LogicalResult Guideline::recoverStep(ModuleOp next, Row &row) {
  if (!o.recover)
    return success();
  if (!hasRecoveryHook())
    return fail("recover=train needs qsim built with training (libtorch, "
                "QSIM_ENABLE_TRAIN): this tool has none");
  auto before = measure(next);
  if (failed(before))
    return failure();
  row.before = *before;
  // The teacher is the original model (the pass's module, unchanged until
  // the guideline ends).
  std::string note;
  if (failed(recoveryHook()(next, module, *o.recover, note)))
    return failure();
  row.trained = strprintf("+ %lld training steps",
                          static_cast<long long>(o.recover->steps)) +
                (note.empty() ? "" : ": " + note);
  return success();
}

FailureOr<OwningOpRef<ModuleOp>> Guideline::prunedCopy(double ratio,
                                                       bool refit) {
  OwningOpRef<ModuleOp> next = current->clone();
  ChannelPruneOptions po;
  po.ratio = ratio;
  po.roundTo = o.roundTo;
  if (refit && refits()) {
    po.images = {o.calibDir};
    po.maxImages = o.refitImages;
  }
  if (failed(pruneChannels(*next, po, nullptr)))
    return failure();
  return next;
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
  auto paramsOf = [&](ModuleOp m) -> int64_t {
    auto s = computeModelStats(m);
    return succeeded(s) ? s->params : std::numeric_limits<int64_t>::max();
  };
  // The smallest ratio that meets the parameter target.
  double lo = 0, hi = o.maxPruneRatio;
  auto atMax = prunedCopy(hi);
  if (failed(atMax))
    return failure();
  bool reachable = paramsOf(**atMax) <= *targetParams;
  if (reachable)
    for (int i = 0; i < 8; ++i) {
      double mid = (lo + hi) / 2;
      auto m = prunedCopy(mid);
      if (failed(m))
        return failure();
      (paramsOf(**m) <= *targetParams ? hi : lo) = mid;
    }
  // Back off while the fidelity bound is broken.
  std::string lastWhy;
  std::optional<Measurement> lastM;
  std::optional<Row> lastRow;
  for (double ratio = hi; ratio >= 0.05; ratio *= 0.7) {
    auto next = prunedCopy(ratio, /*refit=*/true);
    if (failed(next))
      return failure();
    std::string what = strprintf("channels, ratio %.3f, l1, round-to %d%s",
                                 ratio, o.roundTo, refits() ? ", refit" : "");
    Row row{"G5", what, {}, ""};
    if (failed(recoverStep(**next, row)))
      return failure();
    auto m = measure(**next);
    if (failed(m))
      return failure();
    std::string why = violation(*m);
    if (why.empty()) {
      row.decision = reachable && ratio == hi
                         ? "kept"
                         : "kept (params target not reached)";
      commit(std::move(*next), *m, row);
      return success();
    }
    lastWhy = why;
    lastM = *m;
    lastRow = row;
  }
  Row rejected = lastRow.value_or(Row{"G5", "channel pruning", {}, ""});
  rejected.m = lastM;
  rejected.decision = "rejected: " + lastWhy;
  rows.push_back(rejected);
  return success();
}

LogicalResult Guideline::stepQuantize() {
  if (o.calibDir.empty()) {
    rows.push_back({"G3", "int8", {}, "skipped (needs calib=DIR)"});
    rows.push_back({"G4", "fp16", {}, "skipped (needs calib=DIR)"});
    return success();
  }
  // Fold batch norms and calibrate once; G3 and G4 both start from here.
  auto calibrated = calibratedCopy();
  if (failed(calibrated) || failed(stepInt8(**calibrated)))
    return failure();
  if (targetsMet(currentM))
    return success();
  return stepFp16(**calibrated);
}

FailureOr<OwningOpRef<ModuleOp>> Guideline::calibratedCopy() {
  OwningOpRef<ModuleOp> calibrated = current->clone();
  if (failed(foldBatchNorms(*calibrated)))
    return failure();
  quantization::CalibrationOptions co;
  std::string error;
  if (!rt::listImageFiles(o.calibDir, co.images, error))
    return fail(error);
  co.method = o.calibMethod;
  co.maxImages = o.calibImages;
  co.threads = o.threads;
  DiagnosticPrefix prefix(module.getContext(), "--qsim-lighten: ");
  if (failed(quantization::calibrateModule(*calibrated, co)))
    return failure();
  return calibrated;
}

/// G3: every layer with an int8 form; a mixed-precision search when that
/// breaks the SQNR bound.
LogicalResult Guideline::stepInt8(ModuleOp calibrated) {
  quantization::PrecisionPlan all;
  all.preset = quantization::PrecisionPreset::AllInt8;
  auto q = quantizedCopy(calibrated, all);
  if (failed(q))
    return failure();
  auto m = measure(**q);
  if (failed(m))
    return failure();
  std::string why = violation(*m);
  if (why.empty()) {
    // The list as planned (before quantization rewrote the types).
    OwningOpRef<ModuleOp> planned = calibrated.clone();
    if (succeeded(quantization::assignPrecision(*planned, all)))
      int8Layers = int8LayersOf(*planned);
    commit(std::move(*q), *m,
           {"G3", "int8 (all layers with an int8 form)", {}, "kept"});
    g3Kept = true;
    return success();
  }
  if (sqnrFloor > 0)
    return stepMixedInt8(calibrated, *m, why);
  rows.push_back({"G3", "int8", *m, "rejected: " + why});
  return success();
}

/// G3 when all-int8 (`allInt8`) breaks the SQNR bound: the layers the
/// mixed-precision search keeps in int8.
LogicalResult Guideline::stepMixedInt8(ModuleOp calibrated,
                                       const Measurement &allInt8,
                                       const std::string &allInt8Violation) {
  OwningOpRef<ModuleOp> planned = calibrated.clone();
  quantization::SearchOptions so;
  // G3 is the int8 step (and code generation keeps 8-bit): W8A16 and fp16
  // are not its to choose.
  so.precisions = {Precision::Int8};
  so.minSqnr = sqnrFloor;
  so.images = o.calibDir;
  so.maxImages = o.fidelityImages;
  std::string table;
  llvm::raw_string_ostream ts(table);
  if (failed(quantization::searchPrecision(*planned, so, ts)))
    return failure();
  int8Layers = int8LayersOf(*planned);
  OwningOpRef<ModuleOp> next = planned->clone();
  if (failed(quantization::quantizeModule(*next, {})))
    return failure();
  auto m = measure(*next);
  if (failed(m))
    return failure();
  if (violation(*m).empty() && !int8Layers.empty()) {
    commit(std::move(next), *m,
           {"G3",
            "int8 (mixed: layers " + llvm::join(int8Layers, ",") + ")",
            {},
            "kept (all-int8: " + allInt8Violation + ")"});
    g3Kept = true;
  } else {
    rows.push_back({"G3", "int8", allInt8, "rejected: " + allInt8Violation});
  }
  return success();
}

/// G4: what int8 left in float goes to fp16 (everything without G3).
LogicalResult Guideline::stepFp16(ModuleOp calibrated) {
  quantization::PrecisionPlan half;
  if (g3Kept) {
    half.defaultPrecision = Precision::FP16;
    half.int8 = int8Layers;
  } else {
    half.preset = quantization::PrecisionPreset::FP16;
  }
  auto h = quantizedCopy(calibrated, half);
  if (failed(h))
    return failure();
  auto m = measure(**h);
  if (failed(m))
    return failure();
  std::string why = violation(*m);
  std::string what =
      g3Kept ? "fp16 for the layers int8 left in float" : "fp16 (every layer)";
  if (!why.empty())
    rows.push_back({"G4", what, *m, "rejected: " + why});
  else if (g3Kept && m->bytes >= currentM.bytes &&
           m->latencyMs >= currentM.latencyMs)
    rows.push_back({"G4", what, *m, "not kept: no smaller or faster"});
  else
    commit(std::move(*h), *m, {"G4", what, {}, "kept"});
  return success();
}

//===----------------------------------------------------------------------===//
// The report
//===----------------------------------------------------------------------===//

void Guideline::printSettings() const {
  os << "--qsim-lighten: the guideline (G1 backbone, G2 factorization, G5 "
        "pruning, G3 int8, G4 fp16)\n";
  std::string targets;
  if (targetMacs)
    targets += " MACs<=" + human(*targetMacs);
  if (targetParams)
    targets += " params<=" + human(*targetParams);
  if (targetBytes)
    targets += " size<=" + humanBytes(*targetBytes);
  if (o.targetLatencyMs)
    targets += strprintf(" latency<=%.2fms", *o.targetLatencyMs);
  os << "targets:" << (targets.empty() ? " none (every step runs)" : targets)
     << "\n";
  os << "fidelity:";
  if (sqnrFloor > 0)
    os << strprintf(" output SQNR >= %.1f dB", sqnrFloor);
  if (o.maxSqnrDrop)
    os << strprintf(" (original in fp16: %.1f dB, minus %.1f)", fp16Sqnr,
                    *o.maxSqnrDrop);
  if (o.maxMapDrop)
    os << strprintf(" mAP drop <= %.2f", *o.maxMapDrop);
  if (sqnrFloor <= 0 && !o.maxMapDrop)
    os << " no bound";
  os << strprintf("; SQNR on %zu image(s), mAP on %zu\n", fidelityInputs.size(),
                  evalImages.size());
  if (o.recover)
    os << strprintf("recovery: G1, G2 and G5 fine-tuned %lld steps of %d "
                    "images from %s towards the original\n",
                    static_cast<long long>(o.recover->steps), o.recover->batch,
                    o.recover->images.c_str());
}

void Guideline::printTable() const {
  os << strprintf("%-4s %-50s %8s %7s %9s %9s %10s %8s  %s\n", "step", "what",
                  "SQNR dB", "mAP", "MACs", "params", "size", "ms", "decision");
  auto line = [&](const std::string &step, const std::string &what,
                  const std::optional<Measurement> &m,
                  const std::string &decision) {
    std::string sq = "-", mp = "-", macs = "-", params = "-", size = "-",
                lat = "-";
    if (m) {
      sq = std::isnan(m->sqnr)   ? "-"
           : std::isinf(m->sqnr) ? "inf"
                                 : strprintf("%.1f", m->sqnr);
      mp = m->map ? strprintf("%.2f", *m->map) : "-";
      macs = human(m->macs);
      params = human(m->params);
      size = humanBytes(m->bytes);
      lat = m->latencyMs > 0 ? strprintf("%.2f", m->latencyMs) : "-";
    }
    os << strprintf("%-4s %-50s %8s %7s %9s %9s %10s %8s  %s\n", step.c_str(),
                    what.substr(0, 50).c_str(), sq.c_str(), mp.c_str(),
                    macs.c_str(), params.c_str(), size.c_str(), lat.c_str(),
                    decision.c_str());
  };
  for (const Row &r : rows) {
    if (!r.before) {
      line(r.step, r.what, r.m, r.decision);
      continue;
    }
    // recover=train: the step as it came out, then fine-tuned.
    line(r.step, r.what, r.before, "before training");
    line(r.step, r.trained, r.m, r.decision);
  }
  // Once the targets are met no later step runs, so meeting them at the end
  // is meeting them anywhere.
  if (anyTarget())
    os << (targetsMet(currentM)
               ? "targets met\n"
               : "targets NOT met: " + unmetTargets(currentM) + "\n");
}

LogicalResult Guideline::run() {
  if (failed(resolveRequest()))
    return failure();
  current = module.clone();
  if (failed(loadImages()) || failed(setReference(*current)) ||
      failed(setFidelityFloor()))
    return failure();
  auto base = measure(*current);
  if (failed(base))
    return failure();
  currentM = *base;
  rows.push_back({"G0", "original", *base, ""});
  printSettings();
  if (failed(runSteps()))
    return failure();
  printTable();

  // The module becomes the last kept model.
  module.getBodyRegion().takeBody(current->getBodyRegion());
  module->setAttrs(current->getOperation()->getAttrDictionary());
  return success();
}

} // namespace

LogicalResult qsim::lighten::applyGuideline(ModuleOp module,
                                            const GuidelineOptions &options,
                                            ModuleOp donor,
                                            raw_ostream &report) {
  assert(!options.backbone == !donor &&
         "G1 needs its donor network, and only G1");
  return Guideline(module, options, donor, report).run();
}
