//===- Sensitivity.cpp - mixed-precision search --------------------------===//
//
// Per-layer sensitivity (output SQNR with only that layer in int8) against
// its MACs; layers go to int8 greedily, most MACs per unit of added noise
// first, each step verified on the whole model (SQNR and optionally mAP).
//
//===----------------------------------------------------------------------===//

#include "qsim/Quant/Sensitivity.h"
#include "qsim/Evaluation/Inference.h"
#include "qsim/Quant/Precision.h"
#include "qsim/Runtime/Evaluation.h"
#include "qsim/Runtime/Image.h"

#include "mlir/IR/BuiltinOps.h"
#include "qsim/Support/StringUtils.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace qsim;
using namespace qsim::quantization;
using namespace qsim::eval;

namespace {

struct Candidate {
  int64_t layer;
  std::string kind;
  int64_t macs;
  double sqnr = 0;
  std::string decision = "fp32", reason;
};

/// A clone of `module` with the given layers int8 (data movement between
/// int8 layers int8 too), everything else fp32, quantized.
OwningOpRef<ModuleOp> quantizedVariant(ModuleOp module,
                                       const std::set<int64_t> &int8,
                                       const QuantizeOptions &qo,
                                       std::string &error) {
  OwningOpRef<ModuleOp> clone = module.clone();
  auto layers = getLayers(getMainFunc(*clone));
  if (failed(layers)) {
    error = "not a layer sequence";
    return nullptr;
  }
  std::set<int64_t> chosen = int8;
  // Data movement whose every input comes from an int8 layer stays int8 so
  // that no cast separates it from its producers.
  llvm::DenseMap<Value, int64_t> producer;
  for (const Layer &l : *layers)
    producer[l.output()] = l.index;
  for (const Layer &l : *layers) {
    if (isa<Conv2DOp, ConnectedOp>(l.head) || !hasInt8Form(l))
      continue;
    bool all = l.head->getNumOperands() > 0;
    for (Value v : l.head->getOperands()) {
      auto it = producer.find(v);
      all &= it != producer.end() && chosen.count(it->second);
    }
    if (all)
      chosen.insert(l.index);
  }
  for (const Layer &l : *layers)
    setAssignedPrecision(l, chosen.count(l.index) ? "int8" : "fp32", "auto");
  if (failed(quantizeModule(*clone, qo))) {
    error = "quantization failed";
    return nullptr;
  }
  return clone;
}

/// The greedy search: sensitivities, then layers to int8 in priority order
/// while the whole model keeps its bounds.
class PrecisionSearch {
public:
  PrecisionSearch(ModuleOp module, const SearchOptions &o)
      : module(module), o(o) {}
  LogicalResult run(raw_ostream &os);

private:
  LogicalResult fail(const std::string &msg) {
    return module.emitError() << "--qsim-assign-precision auto: " << msg;
  }
  LogicalResult checkRequest();
  /// The images (and their labels with max-map-drop), preprocessed for the
  /// model, and the float model's outputs and mAP on them.
  LogicalResult loadImages();
  /// The output SQNR with each MAC-bearing layer alone in int8.
  LogicalResult measureSensitivities();
  /// Most MACs per unit of noise first (noise powers add up).
  void orderByPriority();
  /// Adds layers to int8 in that order while the bounds hold.
  LogicalResult chooseInt8Layers();
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
  /// The search's state: the int8 layers, the MACs left in float and the
  /// model's measures with them.
  std::set<int64_t> chosen;
  int64_t floatMacs = 0;
  double modelSqnr = std::numeric_limits<double>::infinity();
  double modelMap = 0;
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
    auto ex =
        interp::Executor::create(module, interp::ExecutorOptions(), error);
    if (!ex)
      return fail(error);
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
    int64_t macs = 0;
    for (Operation *op : l.ops)
      if (auto li = dyn_cast<LayerOpInterface>(op))
        macs += li.getMACs();
    totalMacs += macs;
    if (macs == 0 || !hasInt8Form(l))
      continue;
    Candidate c{l.index, l.kind().str(), macs};
    auto variant = quantizedVariant(module, {l.index}, o.quantize, error);
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

LogicalResult PrecisionSearch::chooseInt8Layers() {
  floatMacs = totalMacs;
  modelMap = floatMap;
  std::string error;
  for (size_t k : order) {
    Candidate &c = cands[k];
    if (o.budget > 0 && floatMacs <= o.budget * totalMacs) {
      c.reason = "budget reached";
      continue;
    }
    std::set<int64_t> trial = chosen;
    trial.insert(c.layer);
    auto variant = quantizedVariant(module, trial, o.quantize, error);
    std::vector<float> out;
    if (!variant || !runOutputs(*variant, inputs, out, error))
      return fail(error);
    double s = sqnr(reference, out);
    double m = floatMap;
    if (o.maxMapDrop >= 0 && !evaluateCandidateMap(*variant, m, error))
      return fail(error);
    if (o.minSqnr > 0 && s < o.minSqnr) {
      c.reason =
          strprintf("model SQNR would drop to %.1f dB < %.1f", s, o.minSqnr);
      continue;
    }
    if (o.maxMapDrop >= 0 && floatMap - m > o.maxMapDrop) {
      c.reason = strprintf("mAP would drop %.2f points > %.2f", floatMap - m,
                           o.maxMapDrop);
      continue;
    }
    chosen = trial;
    floatMacs -= c.macs;
    modelSqnr = s;
    modelMap = m;
    c.decision = "int8";
    c.reason = strprintf("model SQNR %.1f dB", s);
    if (o.maxMapDrop >= 0)
      c.reason += strprintf(", mAP %.2f", m);
  }
  return success();
}

LogicalResult PrecisionSearch::recordPlan() {
  std::string error;
  auto variant = quantizedVariant(module, chosen, o.quantize, error);
  if (!variant)
    return fail(error);
  auto vlayers = getLayers(getMainFunc(*variant));
  std::set<int64_t> finalInt8;
  for (const Layer &l : *vlayers)
    if (getAssignedPrecision(l) == "int8")
      finalInt8.insert(l.index);
  for (const Layer &l : layers)
    setAssignedPrecision(l, finalInt8.count(l.index) ? "int8" : "fp32", "auto");
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
    os << strprintf("%5lld  %-15s %12lld %7.1f%% %9.1f dB  %-5s %s\n",
                    (long long)c.layer, c.kind.c_str(), (long long)c.macs,
                    100.0 * c.macs / std::max<int64_t>(totalMacs, 1), c.sqnr,
                    c.decision.c_str(), c.reason.c_str());
  }
  os << strprintf("result: %zu of %zu convolutional/connected layers int8, "
                  "%.1f%% of the MACs in int8, model output SQNR %.1f dB",
                  chosen.size(), cands.size(),
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
  if (failed(chooseInt8Layers()) || failed(recordPlan()))
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
