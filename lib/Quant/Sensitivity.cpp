//===- Sensitivity.cpp - mixed-precision search --------------------------===//
//
// Per-layer sensitivity (output SQNR with only that layer in int8) against
// its MACs; layers go to int8 greedily, most MACs per unit of added noise
// first, each step verified on the whole model (SQNR and optionally mAP).
//
//===----------------------------------------------------------------------===//

#include "qsim/Quant/Sensitivity.h"
#include "qsim/Evaluation/Inference.h"
#include "qsim/Interpreter/Executor.h"
#include "qsim/Quant/Precision.h"
#include "qsim/Runtime/Evaluation.h"
#include "qsim/Runtime/Image.h"

#include "mlir/IR/BuiltinOps.h"
#include "qsim/Support/Diagnostics.h"
#include "qsim/Support/StringUtils.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>

using namespace mlir;
using namespace qsim;
using namespace qsim::quantization;
using namespace qsim::eval;

namespace {

using Assignment = std::map<int64_t, Precision>;

bool isInteger(Precision p) {
  return p == Precision::Int8 || p == Precision::W8A16;
}

/// Whether the search decides this layer's precision (the others follow
/// their producers): convolutional/connected layers, and anything else
/// with MACs and an int8 form.
bool isSearchLayer(const Layer &l, int64_t macs) {
  return macs > 0 && (hasInt8Form(l) || isa<Conv2DOp, ConnectedOp>(l.head));
}

int64_t macsOf(const Layer &l) {
  int64_t macs = 0;
  for (Operation *op : l.ops)
    if (auto li = dyn_cast<LayerOpInterface>(op))
      macs += li.getMACs();
  return macs;
}

/// One try of a precision for a layer during the greedy pass.
struct Attempt {
  Precision precision;
  bool accepted;
  std::string why;
};

struct Candidate {
  int64_t layer;
  std::string kind;
  int64_t macs;
  /// The precisions this layer has a form for, fastest first.
  std::vector<Precision> options;
  double sqnr = 0; // alone, at options.front()
  Precision decision = Precision::FP32;
  std::vector<Attempt> attempts;
  std::string note; // budget, or the timing's verdict
};

/// A clone of `module` with the given layers in the given precisions,
/// everything else fp32 except data movement that follows its producers,
/// quantized.
OwningOpRef<ModuleOp> quantizedVariant(ModuleOp module,
                                       const Assignment &assigned,
                                       const QuantizeOptions &qo,
                                       std::string &error) {
  OwningOpRef<ModuleOp> clone = module.clone();
  auto layers = getLayers(getMainFunc(*clone));
  if (failed(layers)) {
    error = "not a layer sequence";
    return nullptr;
  }
  Assignment chosen = assigned;
  // Data movement whose every input comes from layers of one precision
  // takes that precision so that no cast separates it from its producers
  // (int8 and w8a16 producers meet in int8).
  llvm::DenseMap<Value, int64_t> producer;
  for (const Layer &l : *layers)
    producer[l.output()] = l.index;
  for (const Layer &l : *layers) {
    if (isSearchLayer(l, macsOf(l)) || isa<Conv2DOp, ConnectedOp>(l.head) ||
        isa<YoloOp, RegionOp>(l.head) || l.head->getNumOperands() == 0)
      continue;
    std::optional<Precision> common;
    for (Value v : l.head->getOperands()) {
      auto it = producer.find(v);
      auto p = it == producer.end() || !chosen.count(it->second)
                   ? Precision::FP32
                   : chosen[it->second];
      if (p == Precision::FP32 ||
          (common && *common != p && !(isInteger(*common) && isInteger(p)))) {
        common = Precision::FP32;
        break;
      }
      common = common && *common != p ? Precision::Int8 : p;
    }
    if (*common == Precision::W8A16 && !hasInt16Form(l))
      common = Precision::Int8;
    if (isInteger(*common) && !hasInt8Form(l))
      continue;
    if (*common != Precision::FP32)
      chosen[l.index] = *common;
  }
  for (const Layer &l : *layers) {
    auto it = chosen.find(l.index);
    setAssignedPrecision(
        l,
        stringifyPrecision(it == chosen.end() ? Precision::FP32 : it->second),
        "auto");
  }
  if (failed(quantizeModule(*clone, qo))) {
    error = "quantization failed";
    return nullptr;
  }
  return clone;
}

/// A whole-model plan among the final candidates: the greedy result, or it
/// with some w8a16/fp16/bf16 layers put back to fp32 (faster when the casts
/// around them cost more than the narrower arithmetic saves).
struct PlanCandidate {
  std::string name;
  Assignment assigned;
  std::vector<int64_t> restored; // layers put back to fp32
  OwningOpRef<ModuleOp> variant;
  double sqnr = 0, map = 0;
  std::string rejected; // why it breaks the bounds ("" = meets them)
  double cost = 0;      // median ms, or the cost model's price
};

/// The greedy search: sensitivities, then each layer to the fastest
/// precision with which the whole model keeps its bounds, then the fastest
/// of the final candidate plans.
class PrecisionSearch {
public:
  PrecisionSearch(ModuleOp module, const SearchOptions &o)
      : module(module), o(o) {}
  LogicalResult run(raw_ostream &os);

private:
  LogicalResult fail(const std::string &msg) {
    return module.emitError() << kPass << msg;
  }
  /// An executor for `m`, or null after the planning diagnostic (at the
  /// layer, with the pass's name before it).
  std::unique_ptr<interp::Executor> planExecutor(ModuleOp m) {
    DiagnosticPrefix prefix(module.getContext(), kPass);
    return interp::Executor::create(m, interp::ExecutorOptions());
  }
  static constexpr const char *kPass = "--qsim-assign-precision auto: ";
  LogicalResult checkRequest();
  /// The images (and their labels with max-map-drop), preprocessed for the
  /// model, and the float model's outputs and mAP on them.
  LogicalResult loadImages();
  /// The output SQNR with each searched layer alone in its fastest form.
  LogicalResult measureSensitivities();
  /// Most MACs per unit of noise first (noise powers add up).
  void orderByPriority();
  /// Gives each layer, in that order, the fastest precision with which the
  /// bounds hold.
  LogicalResult choosePrecisions();
  /// Measures `assigned` on the whole model: SQNR, mAP, and whether it
  /// meets the bounds ("" or why not).
  LogicalResult measurePlan(const Assignment &assigned,
                            OwningOpRef<ModuleOp> &variant, double &s,
                            double &m, std::string &rejected);
  /// The greedy result and its alternatives, compared by time or cost.
  LogicalResult pickFastestPlan();
  LogicalResult timePlans(std::vector<PlanCandidate *> &meeting);
  /// Records the plan the search found on the module's layers.
  LogicalResult recordPlan();
  void printReport(raw_ostream &os) const;
  /// mAP@0.5 of the model or a candidate: in process, or sharded.
  bool evaluateCandidateMap(ModuleOp m, double &map, std::string &error);

  ModuleOp module;
  const SearchOptions &o;
  std::vector<Layer> layers;
  std::vector<rt::Image> images;
  std::vector<rt::Tensor> inputs;
  std::vector<std::vector<rt::GroundTruth>> truth;
  std::vector<float> reference;
  double floatMap = 0;
  std::vector<Candidate> cands;
  std::vector<size_t> order;
  int64_t totalMacs = 0;
  /// The search's state: the non-fp32 layers, the MACs left in float and
  /// the model's measures with them.
  Assignment chosen;
  int64_t floatMacs = 0;
  double modelSqnr = std::numeric_limits<double>::infinity();
  double modelMap = 0;
  /// The final candidate plans (empty when there was only the greedy one)
  /// and which one was kept.
  std::vector<PlanCandidate> plans;
  size_t keptPlan = 0;
};

LogicalResult PrecisionSearch::checkRequest() {
  if (o.minSqnr <= 0 && o.maxMapDrop < 0 && o.budget <= 0)
    return fail("give min-sqnr, max-map-drop or budget");
  if (o.images.empty())
    return fail("needs images=DIR for the sensitivity measurements");
  if (o.maxMapDrop >= 0 && o.labels.empty())
    return fail("max-map-drop needs labels=DIR");
  auto found = getLayers(getMainFunc(module));
  if (failed(found))
    return failure();
  layers = std::move(*found);
  for (const Layer &l : layers)
    if (l.batchNorm)
      return fail("fold batch norms first (--qsim-fold-batchnorm)");
  return success();
}

LogicalResult PrecisionSearch::loadImages() {
  std::string error;
  std::vector<std::string> files;
  if (!rt::listImageFiles(o.images, files, error))
    return fail(error);
  if (o.maxImages > 0 && (int)files.size() > o.maxImages)
    files.resize(o.maxImages);
  {
    auto ex = planExecutor(module);
    if (!ex)
      return failure();
    eval::ModelInfo info = eval::describeModel(module, *ex);
    for (const std::string &f : files) {
      rt::Image im;
      if (!rt::loadImage(f, im, error))
        return fail(error);
      inputs.push_back(
          rt::makeNetworkInput(im, info.netW, info.netH,
                               eval::choosePreprocess(info, std::nullopt)));
      if (!o.labels.empty()) {
        std::vector<rt::GroundTruth> gt;
        bool missing;
        if (!rt::readYoloLabels(rt::labelPathForImage(f, o.labels), gt, missing,
                                error))
          return fail(error);
        truth.push_back(gt);
      }
      images.push_back(std::move(im));
    }
  }
  if (!runOutputs(module, inputs, reference, error))
    return fail(error);
  if (o.maxMapDrop >= 0 && !evaluateCandidateMap(module, floatMap, error))
    return fail(error);
  return success();
}

LogicalResult PrecisionSearch::measureSensitivities() {
  std::string error;
  for (const Layer &l : layers) {
    int64_t macs = macsOf(l);
    totalMacs += macs;
    if (!isSearchLayer(l, macs))
      continue;
    Candidate c{l.index, l.kind().str(), macs};
    for (Precision p : o.precisions)
      if ((p == Precision::Int8 && hasInt8Form(l)) ||
          (p == Precision::W8A16 && hasInt8Form(l) && hasInt16Form(l)) ||
          p == Precision::FP16 || p == Precision::BF16)
        c.options.push_back(p);
    if (c.options.empty())
      continue;
    auto variant = quantizedVariant(module, {{l.index, c.options.front()}},
                                    o.quantize, error);
    std::vector<float> out;
    if (!variant || !runOutputs(*variant, inputs, out, error))
      return fail(error);
    c.sqnr = sqnr(reference, out);
    cands.push_back(c);
  }
  return success();
}

void PrecisionSearch::orderByPriority() {
  auto priority = [](const Candidate &c) {
    double noise = std::pow(10.0, -std::min(c.sqnr, 120.0) / 10.0);
    return c.macs / std::max(noise, 1e-12);
  };
  order.resize(cands.size());
  for (size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return priority(cands[a]) > priority(cands[b]);
  });
}

bool PrecisionSearch::evaluateCandidateMap(ModuleOp m, double &map,
                                           std::string &error) {
  if (o.evaluation.enabled())
    return evaluateMapSharded(m, o.evaluation, o.images, o.labels, o.maxImages,
                              map, llvm::errs(), error);
  return evaluateMap(m, images, truth, map, error);
}

LogicalResult PrecisionSearch::measurePlan(const Assignment &assigned,
                                           OwningOpRef<ModuleOp> &variant,
                                           double &s, double &m,
                                           std::string &rejected) {
  std::string error;
  variant = quantizedVariant(module, assigned, o.quantize, error);
  std::vector<float> out;
  if (!variant || !runOutputs(*variant, inputs, out, error))
    return fail(error);
  s = sqnr(reference, out);
  m = floatMap;
  if (o.maxMapDrop >= 0 && !evaluateCandidateMap(*variant, m, error))
    return fail(error);
  rejected.clear();
  if (o.minSqnr > 0 && s < o.minSqnr)
    rejected =
        strprintf("model SQNR would drop to %.1f dB < %.1f", s, o.minSqnr);
  else if (o.maxMapDrop >= 0 && floatMap - m > o.maxMapDrop)
    rejected = strprintf("mAP would drop %.2f points > %.2f", floatMap - m,
                         o.maxMapDrop);
  return success();
}

LogicalResult PrecisionSearch::choosePrecisions() {
  floatMacs = totalMacs;
  modelMap = floatMap;
  for (size_t k : order) {
    Candidate &c = cands[k];
    if (o.budget > 0 && floatMacs <= o.budget * totalMacs) {
      c.note = "budget reached";
      continue;
    }
    for (Precision p : c.options) {
      Assignment trial = chosen;
      trial[c.layer] = p;
      OwningOpRef<ModuleOp> variant;
      double s, m;
      std::string rejected;
      if (failed(measurePlan(trial, variant, s, m, rejected)))
        return failure();
      if (!rejected.empty()) {
        c.attempts.push_back({p, false, rejected});
        continue;
      }
      std::string why = strprintf("model SQNR %.1f dB", s);
      if (o.maxMapDrop >= 0)
        why += strprintf(", mAP %.2f", m);
      c.attempts.push_back({p, true, why});
      chosen = trial;
      if (isInteger(p))
        floatMacs -= c.macs;
      modelSqnr = s;
      modelMap = m;
      c.decision = p;
      break;
    }
  }
  return success();
}

LogicalResult PrecisionSearch::pickFastestPlan() {
  // The alternatives: each w8a16/fp16/bf16 layer back to fp32, and all of them
  // at once. Few enough to time: the first ones by MACs.
  const size_t maxAlternatives = 6;
  std::vector<int64_t> wide;
  for (size_t k : order)
    if (cands[k].decision == Precision::W8A16 ||
        cands[k].decision == Precision::FP16 ||
        cands[k].decision == Precision::BF16)
      wide.push_back(cands[k].layer);
  if (wide.empty())
    return success();
  plans.push_back({"greedy plan", chosen});
  for (int64_t layer : wide) {
    if (plans.size() > maxAlternatives)
      break;
    PlanCandidate alt{strprintf("layer %lld %s -> fp32", (long long)layer,
                                stringifyPrecision(chosen[layer]).data()),
                      chosen};
    alt.assigned.erase(layer);
    alt.restored = {layer};
    plans.push_back(std::move(alt));
  }
  if (wide.size() > 1) {
    PlanCandidate all{"all w8a16/fp16/bf16 layers -> fp32", chosen};
    for (int64_t layer : wide)
      all.assigned.erase(layer);
    all.restored = wide;
    plans.push_back(std::move(all));
  }
  // The greedy plan met the bounds when it was built; the others are
  // measured as every greedy step was.
  std::vector<PlanCandidate *> meeting;
  for (PlanCandidate &p : plans) {
    if (failed(measurePlan(p.assigned, p.variant, p.sqnr, p.map, p.rejected)))
      return failure();
    if (p.rejected.empty())
      meeting.push_back(&p);
  }
  if (meeting.size() > 1 && failed(timePlans(meeting)))
    return failure();
  // The greedy plan stays unless another is clearly cheaper: with timing,
  // by more than 3 % (the noise of a median on a shared machine).
  PlanCandidate *best = &plans.front();
  double margin = o.costs.empty() ? 0.97 : 1.0;
  if (!best->rejected.empty())
    best = meeting.empty() ? nullptr : meeting.front();
  for (PlanCandidate *p : meeting)
    if (best && p != best && p->cost < best->cost * margin)
      best = p;
  if (!best)
    return success(); // keep the greedy state (it met the bounds)
  keptPlan = best - plans.data();
  if (keptPlan == 0)
    return success();
  for (int64_t layer : best->restored)
    for (Candidate &c : cands)
      if (c.layer == layer) {
        c.note = strprintf(
            "%s put back to fp32: plan %s",
            stringifyPrecision(c.decision).data(),
            o.costs.empty()
                ? strprintf("%.2f ms faster", plans.front().cost - best->cost)
                      .c_str()
                : strprintf("cost %.6g lower", plans.front().cost - best->cost)
                      .c_str());
        if (isInteger(c.decision))
          floatMacs += c.macs;
        c.decision = Precision::FP32;
      }
  chosen = best->assigned;
  modelSqnr = best->sqnr;
  modelMap = best->map;
  return success();
}

LogicalResult
PrecisionSearch::timePlans(std::vector<PlanCandidate *> &meeting) {
  if (!o.costs.empty()) {
    for (PlanCandidate *p : meeting) {
      auto vlayers = getLayers(getMainFunc(*p->variant));
      if (failed(vlayers))
        return fail("not a layer sequence");
      std::vector<std::pair<int64_t, Precision>> priced;
      for (size_t i = 0; i < vlayers->size(); ++i)
        priced.push_back(
            {macsOf(layers[i]),
             *parsePrecision(getAssignedPrecision((*vlayers)[i]))});
      p->cost = planCost(priced, o.costs);
    }
    return success();
  }
  // Forward time on one input, the plans interleaved (each round runs them
  // all, starting from a different one) so that a slow spell of the machine
  // hits them alike; the median of the rounds.
  std::vector<std::unique_ptr<interp::Executor>> exs;
  for (PlanCandidate *p : meeting) {
    exs.push_back(planExecutor(*p->variant));
    if (!exs.back())
      return failure();
    exs.back()->setInput(inputs.front());
    exs.back()->run(); // warm up: buffers, caches
  }
  std::vector<std::vector<double>> ms(meeting.size());
  for (int r = 0; r < std::max(o.timeRuns, 1); ++r)
    for (size_t j = 0; j < meeting.size(); ++j) {
      size_t i = (j + r) % meeting.size();
      exs[i]->setInput(inputs.front());
      auto t0 = std::chrono::steady_clock::now();
      exs[i]->run();
      ms[i].push_back(std::chrono::duration<double, std::milli>(
                          std::chrono::steady_clock::now() - t0)
                          .count());
    }
  for (size_t i = 0; i < meeting.size(); ++i)
    meeting[i]->cost = median(ms[i]);
  return success();
}

LogicalResult PrecisionSearch::recordPlan() {
  std::string error;
  auto variant = quantizedVariant(module, chosen, o.quantize, error);
  if (!variant)
    return fail(error);
  auto vlayers = getLayers(getMainFunc(*variant));
  if (failed(vlayers))
    return fail("not a layer sequence");
  for (size_t i = 0; i < layers.size(); ++i)
    setAssignedPrecision(layers[i], getAssignedPrecision((*vlayers)[i]),
                         "auto");
  return success();
}

void PrecisionSearch::printReport(raw_ostream &os) const {
  os << "mixed-precision search on " << inputs.size() << " images";
  if (o.minSqnr > 0)
    os << strprintf(", min output SQNR %.1f dB", o.minSqnr);
  if (o.maxMapDrop >= 0)
    os << strprintf(", max mAP drop %.2f (fp32 mAP %.2f)", o.maxMapDrop,
                    floatMap);
  if (o.budget > 0)
    os << strprintf(", float MAC budget %.0f%%", o.budget * 100);
  os << "\n";
  os << strprintf("%5s  %-15s %12s %8s %12s  %-5s %s\n", "layer", "type",
                  "MACs", "MAC %", "alone SQNR", "prec", "why");
  for (size_t k : order) {
    const Candidate &c = cands[k];
    // A layer that took its fastest form needs no history; one kept higher
    // says what each faster precision would have done.
    std::string why;
    for (const Attempt &a : c.attempts) {
      if (!why.empty())
        why += "; ";
      if (c.attempts.size() > 1 || !a.accepted)
        why += stringifyPrecision(a.precision).str() +
               (a.accepted ? " ok: " : ": ");
      why += a.why;
    }
    if (!c.note.empty())
      why += (why.empty() ? "" : "; ") + c.note;
    os << strprintf("%5lld  %-15s %12lld %7.1f%% %9.1f dB  %-5s %s\n",
                    (long long)c.layer, c.kind.c_str(), (long long)c.macs,
                    100.0 * c.macs / std::max<int64_t>(totalMacs, 1), c.sqnr,
                    stringifyPrecision(c.decision).data(), why.c_str());
  }
  if (!plans.empty()) {
    if (o.costs.empty())
      os << strprintf("candidate plans: forward time on one image, median of "
                      "%d interleaved runs\n",
                      std::max(o.timeRuns, 1));
    else
      os << "candidate plans: cost model (MACs x cost per precision)\n";
    for (size_t i = 0; i < plans.size(); ++i) {
      const PlanCandidate &p = plans[i];
      std::string what = !p.rejected.empty() ? "rejected: " + p.rejected
                         : o.costs.empty()   ? strprintf("%10.3f ms", p.cost)
                                             : strprintf("cost %.6g", p.cost);
      os << strprintf("  %-36s %s%s\n", p.name.c_str(), what.c_str(),
                      i == keptPlan ? "  (kept)" : "");
    }
  }
  int count[5] = {0, 0, 0, 0, 0};
  for (const Candidate &c : cands)
    ++count[(int)c.decision];
  // bf16 is named only when it was a candidate: the line stays as it was
  // for the searches that do not ask for it.
  std::string bf16 = llvm::is_contained(o.precisions, Precision::BF16)
                         ? strprintf("%d bf16, ", count[(int)Precision::BF16])
                         : std::string();
  os << strprintf("result: %d int8, %d w8a16, %d fp16, %s%d fp32 of %zu "
                  "convolutional/connected layers, %.1f%% of the MACs in "
                  "integer, model output SQNR %.1f dB",
                  count[(int)Precision::Int8], count[(int)Precision::W8A16],
                  count[(int)Precision::FP16], bf16.c_str(),
                  count[(int)Precision::FP32], cands.size(),
                  100.0 * (totalMacs - floatMacs) /
                      std::max<int64_t>(totalMacs, 1),
                  modelSqnr);
  if (o.maxMapDrop >= 0)
    os << strprintf(", mAP %.2f (fp32 %.2f)", modelMap, floatMap);
  os << "\n";
}

LogicalResult PrecisionSearch::run(raw_ostream &os) {
  if (failed(checkRequest()) || failed(loadImages()) ||
      failed(measureSensitivities()))
    return failure();
  orderByPriority();
  if (failed(choosePrecisions()) || failed(pickFastestPlan()) ||
      failed(recordPlan()))
    return failure();
  printReport(os);
  return success();
}

} // namespace

LogicalResult qsim::quantization::searchPrecision(ModuleOp module,
                                                  const SearchOptions &o,
                                                  llvm::raw_ostream &os) {
  return PrecisionSearch(module, o).run(os);
}

bool qsim::quantization::parseSearchPrecisions(ArrayRef<std::string> items,
                                               std::vector<Precision> &out,
                                               std::string &error) {
  std::set<Precision> want;
  for (StringRef item : items) {
    auto p = parsePrecision(item.trim());
    if (!p || *p == Precision::FP32) {
      error = "precisions: '" + item.trim().str() +
              "' is not one of int8, w8a16, bf16, fp16 (fp32 is always "
              "allowed)";
      return false;
    }
    want.insert(*p);
  }
  if (want.empty()) {
    error = "precisions: give at least one of int8, w8a16, bf16, fp16";
    return false;
  }
  out.clear();
  // Speed order: bf16 before fp16, which is emulated (f32 arithmetic on
  // widened values) while bf16 has dot products on AVX512-BF16 / Armv8.6.
  for (Precision p :
       {Precision::Int8, Precision::W8A16, Precision::BF16, Precision::FP16})
    if (want.count(p))
      out.push_back(p);
  return true;
}

bool qsim::quantization::parsePrecisionCosts(ArrayRef<std::string> items,
                                             ArrayRef<Precision> needed,
                                             std::map<Precision, double> &out,
                                             std::string &error) {
  out.clear();
  for (StringRef item : items) {
    auto [name, value] = item.trim().split(':');
    auto p = parsePrecision(name.trim());
    double cost;
    if (!p || value.trim().getAsDouble(cost) || !(cost > 0)) {
      error = "costs: bad item '" + item.trim().str() +
              "' (expected precision:cost, e.g. int8:1, cost > 0)";
      return false;
    }
    out[*p] = cost;
  }
  for (Precision p : needed)
    if (!out.count(p)) {
      error = "costs: no cost for " + stringifyPrecision(p).str();
      return false;
    }
  return true;
}

double
qsim::quantization::planCost(ArrayRef<std::pair<int64_t, Precision>> layers,
                             const std::map<Precision, double> &costs) {
  double total = 0;
  for (auto [macs, p] : layers) {
    auto it = costs.find(p);
    total += macs * (it == costs.end() ? 0.0 : it->second);
  }
  return total;
}

double qsim::quantization::median(std::vector<double> values) {
  if (values.empty())
    return 0;
  size_t n = values.size();
  std::sort(values.begin(), values.end());
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}
