//===- Losses.cpp - distillation, feature hints, the YOLO loss -----------===//

#include "Losses.h"

#include <cfloat>
#include <cmath>

using namespace qsim;
using namespace qsim::train;

//===----------------------------------------------------------------------===//
// Distillation
//===----------------------------------------------------------------------===//

/// Binary cross-entropy of logits against probabilities minus the targets'
/// own entropy: the KL divergence, zero when the student matches.
static torch::Tensor softBce(const torch::Tensor &logits,
                             const torch::Tensor &target, bool logitsAreProbs) {
  torch::Tensor bce =
      logitsAreProbs
          ? torch::binary_cross_entropy(torch::clamp(logits, 1e-7, 1 - 1e-7),
                                        target, {}, at::Reduction::None)
          : torch::binary_cross_entropy_with_logits(logits, target, {}, {},
                                                    at::Reduction::None);
  // xlogy(0, 0) = 0: the exact entropy of the targets, so that the result is
  // never below zero. Clamping the targets (as before) overstated the entropy
  // of saturated teacher scores and drove the loss slightly negative.
  torch::Tensor entropy =
      -(torch::xlogy(target, target) + torch::xlogy(1 - target, 1 - target));
  return bce - entropy.detach();
}

static LossTerm yoloDistillation(const Node &head, Flavor flavor,
                                 const torch::Tensor &s,
                                 const torch::Tensor &t) {
  const int64_t n = s.size(0), a = head.mask.size(), e = head.classes + 5;
  torch::Tensor sv = s.view({n, a, e, s.size(2), s.size(3)});
  torch::Tensor tv = t.detach().view({n, a, e, s.size(2), s.size(3)});
  const bool probs = flavor == Flavor::AlexeyAB && head.newCoords;
  auto decodeXY = [&](const torch::Tensor &v) {
    torch::Tensor xy = probs ? v : torch::sigmoid(v);
    if (flavor == Flavor::AlexeyAB && head.scaleXY != 1.0f)
      xy = xy * head.scaleXY - 0.5 * (head.scaleXY - 1.0f);
    return xy;
  };
  torch::Tensor tObj =
      probs ? tv.select(2, 4) : torch::sigmoid(tv.select(2, 4));
  torch::Tensor box =
      (decodeXY(sv.narrow(2, 0, 2)) - decodeXY(tv.narrow(2, 0, 2)))
          .pow(2)
          .sum(2) +
      (sv.narrow(2, 2, 2) - tv.narrow(2, 2, 2)).pow(2).sum(2);
  torch::Tensor obj = softBce(sv.select(2, 4), tObj, probs);
  torch::Tensor tCls = tv.narrow(2, 5, head.classes);
  torch::Tensor cls = softBce(sv.narrow(2, 5, head.classes),
                              probs ? tCls : torch::sigmoid(tCls), probs)
                          .sum(2);
  torch::Tensor total = (0.5 * tObj * box + obj + tObj * cls).sum() / n;
  return {total, total.item<double>()};
}

static LossTerm regionDistillation(const Node &head, const torch::Tensor &s,
                                   const torch::Tensor &t) {
  const int64_t n = s.size(0), size = head.coords + head.classes + 1;
  torch::Tensor sv = s.view({n, head.num, size, s.size(2), s.size(3)});
  torch::Tensor tv = t.detach().view({n, head.num, size, s.size(2), s.size(3)});
  torch::Tensor tObj = torch::sigmoid(tv.select(2, head.coords));
  torch::Tensor box =
      (torch::sigmoid(sv.narrow(2, 0, 2)) - torch::sigmoid(tv.narrow(2, 0, 2)))
          .pow(2)
          .sum(2) +
      (sv.narrow(2, 2, head.coords - 2) - tv.narrow(2, 2, head.coords - 2))
          .pow(2)
          .sum(2);
  torch::Tensor obj = softBce(sv.select(2, head.coords), tObj, false);
  torch::Tensor sCls = sv.narrow(2, head.coords + 1, head.classes);
  torch::Tensor tCls = tv.narrow(2, head.coords + 1, head.classes);
  torch::Tensor cls;
  if (head.softmax) {
    torch::Tensor p = torch::softmax(tCls, 2);
    cls =
        (p * (torch::log(torch::clamp(p, 1e-12)) - torch::log_softmax(sCls, 2)))
            .sum(2);
  } else {
    cls = softBce(sCls, torch::sigmoid(tCls), false).sum(2);
  }
  torch::Tensor total = (0.5 * tObj * box + obj + tObj * cls).sum() / n;
  return {total, total.item<double>()};
}

LossTerm qsim::train::distillationLoss(const Node &head, Flavor flavor,
                                       const torch::Tensor &student,
                                       const torch::Tensor &teacher) {
  if (head.kind == NodeKind::Yolo)
    return yoloDistillation(head, flavor, student, teacher);
  return regionDistillation(head, student, teacher);
}

//===----------------------------------------------------------------------===//
// Box metrics (AlexeyAB box.c)
//===----------------------------------------------------------------------===//

double qsim::train::boxMetric(const double a[4], const double b[4],
                              const std::string &kind) {
  auto overlap = [](double x1, double w1, double x2, double w2) {
    double l = std::max(x1 - w1 / 2, x2 - w2 / 2);
    double r = std::min(x1 + w1 / 2, x2 + w2 / 2);
    return r - l;
  };
  double iw = overlap(a[0], a[2], b[0], b[2]);
  double ih = overlap(a[1], a[3], b[1], b[3]);
  double inter = iw < 0 || ih < 0 ? 0 : iw * ih;
  double uni = a[2] * a[3] + b[2] * b[3] - inter;
  double iou = uni > 0 ? inter / uni : 0;
  if (kind == "iou" || kind == "mse")
    return iou;
  double cl = std::min(a[0] - a[2] / 2, b[0] - b[2] / 2);
  double cr = std::max(a[0] + a[2] / 2, b[0] + b[2] / 2);
  double ct = std::min(a[1] - a[3] / 2, b[1] - b[3] / 2);
  double cb = std::max(a[1] + a[3] / 2, b[1] + b[3] / 2);
  double cw = cr - cl, ch = cb - ct;
  if (kind == "giou") {
    double c = cw * ch;
    return c > 0 ? iou - (c - uni) / c : iou;
  }
  double c2 = cw * cw + ch * ch;
  double d2 = (a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]);
  double diou = c2 > 0 ? iou - d2 / c2 : iou;
  if (kind == "diou")
    return diou;
  // ciou: the aspect-ratio term with alpha = v / (1 - iou + v).
  double v = 4 / (M_PI * M_PI) *
             std::pow(std::atan(b[2] / b[3]) - std::atan(a[2] / a[3]), 2);
  double alpha = v > 0 ? v / (1 - iou + v) : 0;
  return diou - alpha * v;
}

//===----------------------------------------------------------------------===//
// The YOLO loss (AlexeyAB forward_yolo_layer)
//===----------------------------------------------------------------------===//

namespace {

struct YoloKeys {
  float ignoreThresh, truthThresh, iouThresh, iouNormalizer, objNormalizer,
      clsNormalizer, maxDelta, labelSmooth;
  std::string iouLoss;
};

YoloKeys yoloKeys(const Node &head) {
  YoloKeys k;
  k.ignoreThresh = cfgNumber(head.cfg, "ignore_thresh", 0.5);
  k.truthThresh = cfgNumber(head.cfg, "truth_thresh", 1);
  k.iouThresh = cfgNumber(head.cfg, "iou_thresh", 1);
  k.iouNormalizer = cfgNumber(head.cfg, "iou_normalizer", 0.75);
  k.objNormalizer = cfgNumber(head.cfg, "obj_normalizer", 1);
  k.clsNormalizer = cfgNumber(head.cfg, "cls_normalizer", 1);
  k.maxDelta = cfgNumber(head.cfg, "max_delta", FLT_MAX);
  k.labelSmooth = cfgNumber(head.cfg, "label_smooth_eps", 0);
  k.iouLoss = head.cfg.count("iou_loss") ? head.cfg.at("iou_loss") : "mse";
  return k;
}

/// One image of one head: the activated outputs (as the layer outputs
/// them), the raw values and the deltas, all [a][e][h][w].
struct HeadImage {
  const Node &head;
  const YoloKeys &keys;
  int64_t a, e, h, w;
  int netW, netH;
  const float *out, *raw;
  float *delta;
  size_t at(int64_t n, int64_t entry, int64_t j, int64_t i) const {
    return ((n * e + entry) * h + j) * w + i;
  }
  /// get_yolo_box: the predicted box in image fractions.
  void box(int64_t n, int64_t j, int64_t i, double b[4]) const {
    int64_t anchor = head.mask[n];
    b[0] = (i + out[at(n, 0, j, i)]) / w;
    b[1] = (j + out[at(n, 1, j, i)]) / h;
    double tw = raw[at(n, 2, j, i)], th = raw[at(n, 3, j, i)];
    if (head.newCoords) {
      b[2] = tw * tw * 4 * head.anchors[2 * anchor] / netW;
      b[3] = th * th * 4 * head.anchors[2 * anchor + 1] / netH;
    } else {
      b[2] = std::exp(tw) * head.anchors[2 * anchor] / netW;
      b[3] = std::exp(th) * head.anchors[2 * anchor + 1] / netH;
    }
  }
  void deltaClass(int64_t n, int64_t j, int64_t i, int classId);
  double deltaBox(const rt::GroundTruth &t, int64_t n, int64_t j, int64_t i);
  void assign(const rt::GroundTruth &t, int64_t n, int64_t j, int64_t i);
};

void HeadImage::deltaClass(int64_t n, int64_t j, int64_t i, int classId) {
  auto target = [&](bool on) {
    float y = on ? 1.0f : 0.0f;
    return keys.labelSmooth
               ? y * (1 - keys.labelSmooth) + 0.5f * keys.labelSmooth
               : y;
  };
  size_t own = at(n, 5 + classId, j, i);
  if (delta[own] != 0) {
    // Another truth already claimed this cell: only its class changes.
    delta[own] = keys.clsNormalizer * (target(true) - out[own]);
    return;
  }
  for (int64_t c = 0; c < head.classes; ++c) {
    size_t k = at(n, 5 + c, j, i);
    delta[k] = keys.clsNormalizer * (target(c == classId) - out[k]);
  }
}

double HeadImage::deltaBox(const rt::GroundTruth &t, int64_t n, int64_t j,
                           int64_t i) {
  double pred[4], truth[4] = {t.box.x, t.box.y, t.box.w, t.box.h};
  box(n, j, i, pred);
  double iou = boxMetric(pred, truth, "iou");
  double d[4];
  int64_t anchor = head.mask[n];
  if (keys.iouLoss == "mse") {
    // delta_yolo_box, MSE: scale (2 - w*h) * iou_normalizer on tx..th.
    double scale = (2 - t.box.w * t.box.h) * keys.iouNormalizer;
    double tx = t.box.x * w - i, ty = t.box.y * h - j;
    double tw = std::log(t.box.w * netW / head.anchors[2 * anchor]);
    double th = std::log(t.box.h * netH / head.anchors[2 * anchor + 1]);
    if (head.newCoords) {
      tw = std::sqrt(t.box.w * netW / (4 * head.anchors[2 * anchor]));
      th = std::sqrt(t.box.h * netH / (4 * head.anchors[2 * anchor + 1]));
    }
    d[0] = scale * (tx - out[at(n, 0, j, i)]);
    d[1] = scale * (ty - out[at(n, 1, j, i)]);
    d[2] = scale * (tw - raw[at(n, 2, j, i)]);
    d[3] = scale * (th - raw[at(n, 3, j, i)]);
  } else {
    // dx_box_iou: the metric's gradient with respect to the box (central
    // differences in double), w and h through e^t (not with new_coords).
    for (int c = 0; c < 4; ++c) {
      double hi[4], lo[4];
      std::copy(pred, pred + 4, hi);
      std::copy(pred, pred + 4, lo);
      double step = 1e-6 * std::max(1.0, std::fabs(pred[c]));
      hi[c] += step;
      lo[c] -= step;
      d[c] = (boxMetric(hi, truth, keys.iouLoss) -
              boxMetric(lo, truth, keys.iouLoss)) /
             (2 * step);
    }
    if (!head.newCoords) {
      d[2] *= std::exp(raw[at(n, 2, j, i)]);
      d[3] *= std::exp(raw[at(n, 3, j, i)]);
    }
    for (double &v : d)
      v *= keys.iouNormalizer;
  }
  for (int c = 0; c < 4; ++c) {
    double v = std::isfinite(d[c]) ? d[c] : 0;
    v = std::max<double>(-keys.maxDelta, std::min<double>(keys.maxDelta, v));
    delta[at(n, c, j, i)] += (float)v;
  }
  return iou;
}

void HeadImage::assign(const rt::GroundTruth &t, int64_t n, int64_t j,
                       int64_t i) {
  deltaBox(t, n, j, i);
  size_t obj = at(n, 4, j, i);
  delta[obj] = keys.objNormalizer * (1 - out[obj]);
  deltaClass(n, j, i, t.classId);
}

/// The deltas of one image (forward_yolo_layer's loops).
void imageDeltas(HeadImage &im, const std::vector<rt::GroundTruth> &truth) {
  const Node &head = im.head;
  const YoloKeys &k = im.keys;
  for (int64_t n = 0; n < im.a; ++n)
    for (int64_t j = 0; j < im.h; ++j)
      for (int64_t i = 0; i < im.w; ++i) {
        double pred[4];
        im.box(n, j, i, pred);
        double bestIou = 0, bestMatch = 0;
        size_t bestT = 0;
        bool anyClass = false;
        for (int64_t c = 0; c < head.classes && !anyClass; ++c)
          anyClass = im.out[im.at(n, 5 + c, j, i)] > 0.25f;
        for (size_t t = 0; t < truth.size(); ++t) {
          double tb[4] = {truth[t].box.x, truth[t].box.y, truth[t].box.w,
                          truth[t].box.h};
          double iou = boxMetric(pred, tb, "iou");
          if (iou > bestMatch && anyClass)
            bestMatch = iou;
          if (iou > bestIou)
            bestIou = iou, bestT = t;
        }
        size_t obj = im.at(n, 4, j, i);
        im.delta[obj] = bestMatch > k.ignoreThresh
                            ? 0.0f
                            : k.objNormalizer * (0 - im.out[obj]);
        if (bestIou > k.truthThresh)
          im.assign(truth[bestT], n, j, i);
      }
  for (const rt::GroundTruth &t : truth) {
    int64_t i = std::min<int64_t>(t.box.x * im.w, im.w - 1);
    int64_t j = std::min<int64_t>(t.box.y * im.h, im.h - 1);
    double shifted[4] = {0, 0, t.box.w, t.box.h};
    int bestN = 0;
    double best = 0;
    std::vector<double> anchorIou(head.anchors.size() / 2);
    for (size_t n = 0; n < anchorIou.size(); ++n) {
      double ab[4] = {0, 0, head.anchors[2 * n] / im.netW,
                      head.anchors[2 * n + 1] / im.netH};
      anchorIou[n] = boxMetric(ab, shifted, "iou");
      if (anchorIou[n] > best)
        best = anchorIou[n], bestN = n;
    }
    for (int64_t m = 0; m < im.a; ++m) {
      bool responsible =
          head.mask[m] == bestN ||
          (k.iouThresh < 1.0f && anchorIou[head.mask[m]] > k.iouThresh);
      if (responsible)
        im.assign(t, m, j, i);
    }
  }
  if (k.iouLoss == "mse")
    return;
  // averages_yolo_deltas: a cell claimed by several classes shares the box
  // delta.
  for (int64_t n = 0; n < im.a; ++n)
    for (int64_t j = 0; j < im.h; ++j)
      for (int64_t i = 0; i < im.w; ++i) {
        int classes = 0;
        for (int64_t c = 0; c < head.classes; ++c)
          classes += im.delta[im.at(n, 5 + c, j, i)] != 0;
        if (classes > 1)
          for (int c = 0; c < 4; ++c)
            im.delta[im.at(n, c, j, i)] /= classes;
      }
}

} // namespace

LossTerm
qsim::train::yoloLoss(const Node &head, int netW, int netH,
                      const torch::Tensor &raw,
                      const std::vector<std::vector<rt::GroundTruth>> &truth,
                      const std::vector<char> &labeled) {
  const int64_t n = raw.size(0), a = head.mask.size(), e = head.classes + 5;
  const int64_t h = raw.size(2), w = raw.size(3);
  torch::Tensor rawCpu = raw.detach().to(torch::kFloat).contiguous();
  torch::Tensor outCpu;
  {
    // The layer's own output (AlexeyAB): logistic and scale_x_y.
    torch::Tensor v = rawCpu.view({n, a, e, h, w});
    torch::Tensor xy =
        head.newCoords ? v.narrow(2, 0, 2) : torch::sigmoid(v.narrow(2, 0, 2));
    if (head.scaleXY != 1.0f)
      xy = xy * head.scaleXY - 0.5 * (head.scaleXY - 1.0f);
    torch::Tensor rest = head.newCoords ? v.narrow(2, 4, e - 4)
                                        : torch::sigmoid(v.narrow(2, 4, e - 4));
    outCpu = torch::cat({xy, v.narrow(2, 2, 2), rest}, 2).contiguous();
  }
  torch::Tensor delta = torch::zeros_like(rawCpu);
  YoloKeys keys = yoloKeys(head);
  int64_t images = 0;
  for (int64_t b = 0; b < n; ++b) {
    if (!labeled[b])
      continue;
    ++images;
    size_t offset = (size_t)b * a * e * h * w;
    HeadImage im{head,
                 keys,
                 a,
                 e,
                 h,
                 w,
                 netW,
                 netH,
                 outCpu.data_ptr<float>() + offset,
                 rawCpu.data_ptr<float>() + offset,
                 delta.data_ptr<float>() + offset};
    imageDeltas(im, truth[b]);
  }
  LossTerm term;
  if (!images) {
    term.loss = (raw * 0).sum();
    return term;
  }
  delta = delta.to(raw.scalar_type());
  term.loss = -(delta * raw).sum() / n;
  term.reported = delta.pow(2).sum().item<double>() / images;
  return term;
}
