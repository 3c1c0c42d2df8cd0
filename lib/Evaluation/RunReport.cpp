//===- RunReport.cpp - printing a model run's results --------------------===//

#include "qsim/Evaluation/RunReport.h"
#include "qsim/Support/StringUtils.h"

#include <cmath>
#include <map>
#include <tuple>

using namespace qsim;
using namespace qsim::eval;
using json = nlohmann::json;

std::string qsim::eval::className(const std::vector<std::string> &names,
                                  int id) {
  if (id >= 0 && id < (int)names.size())
    return names[id];
  return "class " + std::to_string(id);
}

const char *qsim::eval::preprocessName(rt::Preprocess p) {
  switch (p) {
  case rt::Preprocess::Resize:
    return "resize";
  case rt::Preprocess::Letterbox:
    return "letterbox";
  case rt::Preprocess::CenterCrop:
    return "resize_min + centre crop";
  }
  return "?";
}

void qsim::eval::printImageResult(llvm::raw_ostream &os,
                                  const std::string &path,
                                  const InferenceResult &r,
                                  const std::vector<std::string> &names,
                                  rt::Preprocess preprocess) {
  os << strprintf("%s: %dx%d, %s, forward %.1f ms\n", path.c_str(), r.imageW,
                  r.imageH, preprocessName(preprocess), r.forwardMillis);
  if (!r.top.empty()) {
    for (auto [id, p] : r.top)
      os << strprintf("  %6.2f%%  %s\n", p * 100, className(names, id).c_str());
  } else if (r.reported.empty()) {
    os << strprintf("  no detections above the threshold (%zu candidates)\n",
                    r.candidates);
  } else {
    os << strprintf("  %-24s %7s %6s %6s %6s %6s\n", "class", "prob", "left",
                    "top", "right", "bottom");
    for (const auto &d : r.reported)
      os << strprintf("  %-24s %6.2f%% %6d %6d %6d %6d\n",
                      className(names, d.classId).c_str(), d.prob * 100,
                      d.left, d.top, d.right, d.bottom);
  }
  if (!r.nonFiniteHint.empty())
    os << "  hint: " << r.nonFiniteHint << "\n";
}

json qsim::eval::imageResultJson(const std::string &path,
                                 const InferenceResult &r,
                                 const std::vector<std::string> &names) {
  json j = {{"image", path},
            {"width", r.imageW},
            {"height", r.imageH},
            {"forward_ms", r.forwardMillis}};
  if (!r.nonFiniteHint.empty())
    j["hint"] = r.nonFiniteHint;
  if (!r.top.empty()) {
    json top = json::array();
    for (auto [id, p] : r.top)
      top.push_back(
          {{"class_id", id}, {"name", className(names, id)}, {"prob", p}});
    j["top"] = top;
    return j;
  }
  json dets = json::array();
  for (const auto &d : r.reported)
    dets.push_back(
        {{"class_id", d.classId},
         {"name", className(names, d.classId)},
         {"prob", d.prob},
         {"objectness", d.objectness},
         {"box_rel",
          {{"x", d.rel.x}, {"y", d.rel.y}, {"w", d.rel.w}, {"h", d.rel.h}}},
         {"box_px",
          {{"left", d.left},
           {"top", d.top},
           {"right", d.right},
           {"bottom", d.bottom}}}});
  j["detections"] = dets;
  return j;
}

bool qsim::eval::drawDetections(const rt::Image &image,
                                const InferenceResult &r,
                                const std::vector<std::string> &names,
                                int classes, const std::string &pngPath,
                                std::string &error) {
  rt::Image im = image;
  int thickness = std::max(1, (int)(im.h * .006));
  std::map<std::tuple<int, int, int, int>,
           std::vector<const rt::ReportedDetection *>>
      boxes;
  for (const auto &d : r.reported)
    boxes[{d.left, d.top, d.right, d.bottom}].push_back(&d);
  for (auto &[box, ds] : boxes) {
    float cr, cg, cb;
    rt::classColor(ds[0]->classId, std::max(classes, 1), cr, cg, cb);
    auto [l, t, rr, b] = box;
    rt::drawBox(im, l, t, rr, b, thickness, cr, cg, cb);
    std::string label;
    for (const auto *d : ds) {
      if (!label.empty())
        label += ", ";
      label +=
          className(names, d->classId) + strprintf(" %.0f%%", d->prob * 100);
    }
    rt::drawLabel(im, l, t, label, cr, cg, cb);
  }
  return rt::writePng(pngPath, im, error);
}

void qsim::eval::printEvaluation(llvm::raw_ostream &os, const MapReport &m) {
  const rt::MapResult &r = m.result;
  os << strprintf("mAP@0.50 = %.4f (%.2f %%), mAP@0.50:0.95 = %.4f, %d "
                  "images, %d ground-truth boxes\n",
                  r.map, r.map * 100, m.map50to95, r.images, r.groundTruth);
  os << strprintf("at thresh %.2f: precision %.2f, recall %.2f, F1 %.2f, TP "
                  "%d, FP %d, FN %d, average IoU %.2f %%\n",
                  m.thresh, r.precision, r.recall, r.f1, r.tp, r.fp, r.fn,
                  r.avgIou * 100);
}

json qsim::eval::evaluationJson(const MapReport &m,
                                const std::vector<std::string> &names) {
  const rt::MapResult &r = m.result;
  json j = {{"map50", r.map},
            {"map50_95", m.map50to95},
            {"precision", r.precision},
            {"recall", r.recall},
            {"f1", r.f1},
            {"tp", r.tp},
            {"fp", r.fp},
            {"fn", r.fn},
            {"avg_iou", r.avgIou}};
  json per = json::array();
  for (const auto &c : r.perClass)
    per.push_back({{"class_id", c.classId},
                   {"name", className(names, c.classId)},
                   {"ap", c.ap},
                   {"ground_truth", c.groundTruth}});
  j["per_class"] = per;
  return j;
}

void qsim::eval::printOutputsOnlyNote(llvm::raw_ostream &os, size_t layers,
                                      size_t referenceLayers) {
  os << strprintf("note: the models have different layers (%zu vs %zu): "
                  "comparing their outputs, detections and mAP\n",
                  layers, referenceLayers);
}

void qsim::eval::printComparison(llvm::raw_ostream &os,
                                 const ComparisonReport &c) {
  os << strprintf("comparison against %s over %zu image(s)\n",
                  c.against.c_str(), c.images);
  os << strprintf("%5s  %-15s %-5s %9s %9s %11s %11s %8s %8s %8s\n", "layer",
                  "type", "prec", "SQNR dB", "cosine", "max abs", "mean abs",
                  "clipped", "ms", "ms fp");
  auto millis = [](std::optional<double> ms) {
    return ms ? strprintf("%.3f", *ms) : std::string();
  };
  for (const ComparisonRow &row : c.rows) {
    const LayerComparison &e = row.error;
    os << strprintf(
        "%5lld  %-15s %-5s %9.2f %9.6f %11.5g %11.5g %7.2f%% %8s %8s\n",
        (long long)row.layer.layer, row.layer.kind.c_str(),
        row.layer.precision.c_str(), e.sqnrDb(), e.cosine(), e.maxAbsErr,
        e.meanAbsErr(), e.clippedPercent(), millis(row.millis).c_str(),
        millis(row.referenceMillis).c_str());
  }
  os << strprintf("detections at thresh %.2f: %zu of %zu float detections "
                  "matched (same class, IoU >= 0.5); %zu quantized "
                  "detections\n",
                  c.thresh, c.matchedDetections, c.referenceDetections,
                  c.detections);
  if (c.map && c.referenceMap)
    os << strprintf("mAP@0.50: %.2f %% vs float %.2f %% (%+.2f points)\n",
                    *c.map * 100, *c.referenceMap * 100,
                    (*c.map - *c.referenceMap) * 100);
  if (c.weightBytes && c.referenceWeightBytes)
    os << strprintf("weights: %.1f KiB vs float %.1f KiB (%.2fx smaller)\n",
                    *c.weightBytes / 1024.0, *c.referenceWeightBytes / 1024.0,
                    *c.weightBytes
                        ? (double)*c.referenceWeightBytes / *c.weightBytes
                        : 0.0);
  os << strprintf(
      "forward (sum of layers, mean per image): %.2f ms vs float %.2f ms\n",
      c.forwardMillis, c.referenceForwardMillis);
}

void qsim::eval::printOverflow(llvm::raw_ostream &os, const OverflowReport &o) {
  os << strprintf("overflow of int8 convolutions over %zu image(s): %% of "
                  "int8 x int8 products outside int8, %% of accumulations "
                  "leaving int16\n",
                  o.images);
  os << strprintf("%5s  %-14s %8s %8s %8s  %8s %8s %8s  %s\n", "layer",
                  "output", "prod avg", "max", "min", "acc avg", "max", "min",
                  "worst-case bits");
  for (const OverflowRow &r : o.rows)
    os << strprintf(
        "%5lld  %-14s %7.2f%% %7.2f%% %7.2f%%  %7.2f%% %7.2f%% %7.2f%%  %d\n",
        (long long)r.layer.layer, r.layer.output.c_str(), r.products.mean,
        r.products.max, r.products.min, r.accumulators.mean, r.accumulators.max,
        r.accumulators.min, r.worstCaseBits);
}

void qsim::eval::printLayerStats(llvm::raw_ostream &os,
                                 const std::vector<LayerStatsRow> &rows) {
  os << strprintf("%5s  %-15s %-14s %12s %12s %12s %12s %8s\n", "layer", "type",
                  "output", "min", "max", "mean", "std", "zeros");
  for (const LayerStatsRow &r : rows)
    os << strprintf("%5lld  %-15s %-14s %12.5g %12.5g %12.5g %12.5g %7.2f%%\n",
                    (long long)r.layer.layer, r.layer.kind.c_str(),
                    r.layer.output.c_str(), r.stats.min, r.stats.max,
                    r.stats.mean, r.stats.std, r.stats.zeroPercent());
}

void qsim::eval::printForwardTiming(llvm::raw_ostream &os,
                                    const ForwardTiming &t) {
  os << strprintf("forward: median %.2f ms over %d runs (min %.2f, max "
                  "%.2f), %d threads, %s kernels\n",
                  t.median, t.runs, t.min, t.max, t.threads, t.kernels.c_str());
}

/// A bar of `width` characters for a share in [0, 1].
static std::string bar(double share, int width = 30) {
  int n = (int)std::lround(share * width);
  return std::string(std::max(0, std::min(n, width)), '#');
}

void qsim::eval::printLayerTimes(llvm::raw_ostream &os,
                                 const std::vector<LayerTimeRow> &rows) {
  double total = 0;
  for (const LayerTimeRow &r : rows)
    total += r.millis;
  os << strprintf("%5s  %-15s %-14s %9s %7s\n", "layer", "type", "output", "ms",
                  "share");
  for (const LayerTimeRow &r : rows)
    os << strprintf("%5lld  %-15s %-14s %9.3f %6.1f%% %s\n",
                    (long long)r.layer.layer, r.layer.kind.c_str(),
                    r.layer.output.c_str(), r.millis,
                    total > 0 ? 100 * r.millis / total : 0.0,
                    bar(total > 0 ? r.millis / total : 0).c_str());
  os << strprintf("total  %9.3f ms\n", total);
}
