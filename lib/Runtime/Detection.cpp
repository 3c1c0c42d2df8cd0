//===- Detection.cpp - Darknet's box decoding, NMS, top-k ----------------===//
//
// docs/darknet.md §R5 (get_network_boxes), §R6 (do_nms_sort, diounms_sort)
// and §R8 (top_k). The arithmetic keeps Darknet's float/double mix: where
// the C code calls exp() or uses a double literal the sub-expression is
// evaluated in double and rounded to float on assignment.
//
//===----------------------------------------------------------------------===//

#include "qsim/Runtime/Detection.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <optional>

using namespace qsim::rt;

namespace {

/// AlexeyAB's logistic_activate (float, expf).
float logisticF(float x) { return 1.0f / (1.0f + std::exp(-x)); }

/// w = exp(t) * anchor / size with exp and the products in double, as C
/// evaluates `exp(x) * biases[..] / w`.
float expScale(float t, float anchor, int size) {
  return (float)(std::exp((double)t) * (double)anchor / (double)size);
}

/// correct_yolo_boxes / correct_region_boxes for dets[first..].
void correctBoxes(std::vector<Detection> &dets, size_t first,
                  const DecodeOptions &o) {
  const int netW = o.netW, netH = o.netH, w = o.imageW, h = o.imageH;
  // pjreddie's tools always letterbox, so it always corrects for that; the
  // correction follows the preprocessing actually applied (a resized input
  // under --no-letterbox must not be corrected as letterboxed).
  bool letter = o.letterbox;
  int newW = netW, newH = netH;
  if (letter) {
    if ((float)netW / w < (float)netH / h) {
      newW = netW;
      newH = (h * netW) / w;
    } else {
      newH = netH;
      newW = (w * netH) / h;
    }
  }
  float deltaW = (float)(netW - newW), deltaH = (float)(netH - newH);
  float ratioW = (float)newW / netW, ratioH = (float)newH / netH;
  // The flavours scale w, h by the same ratio computed differently (AB:
  // reciprocal of the float ratio; PJ: netw/new_w directly).
  float scaleW, scaleH;
  if (o.flavor == Flavor::AlexeyAB) {
    scaleW = 1 / ratioW;
    scaleH = 1 / ratioH;
  } else {
    scaleW = (float)netW / newW;
    scaleH = (float)netH / newH;
  }
  for (size_t i = first; i < dets.size(); ++i) {
    Box &b = dets[i].bbox;
    // The offset is in double (`/ 2.`), the division by the float ratio too.
    b.x = (float)((b.x - deltaW / 2. / netW) / ratioW);
    b.y = (float)((b.y - deltaH / 2. / netH) / ratioH);
    b.w *= scaleW;
    b.h *= scaleH;
    if (!o.relative) {
      b.x *= w;
      b.w *= w;
      b.y *= h;
      b.h *= h;
    }
  }
}

float probAt(const Detection &d, int k) {
  return k < (int)d.prob.size() ? d.prob[k] : 0.0f;
}

/// A box's extent, as overlap() computes it (x - w/2, x + w/2).
struct Extent {
  float left, right, top, bottom;
  /// Finite and not inverted: only such boxes can overlap another by a
  /// positive area.
  bool regular;
};

Extent extentOf(const Box &b) {
  Extent e{b.x - b.w / 2, b.x + b.w / 2, b.y - b.h / 2, b.y + b.h / 2, false};
  e.regular = std::isfinite(e.left) && std::isfinite(e.right) &&
              std::isfinite(e.top) && std::isfinite(e.bottom) &&
              e.left <= e.right && e.top <= e.bottom;
  return e;
}

/// The boxes of one class kept so far by the greedy suppression, indexed by
/// the cells of a uniform grid that their extents cover. Every suppression
/// test of Darknet's NMS (IoU, DIoU, greedy DIoU > thresh >= 0) implies an
/// IoU above zero, i.e. extents that overlap by a positive length on both
/// axes, which therefore share a cell (cell indices are monotone in the
/// coordinate). So a box needs to be tested only against the kept boxes of
/// its cells, plus those too large or irregular to index, which are tested
/// always: the same decisions as testing every pair, in near-linear time
/// where boxes are small and many (random weights give tens of thousands).
class KeptBoxes {
public:
  KeptBoxes(const std::vector<Detection> &dets, int total) {
    float minX = INFINITY, maxX = -INFINITY, minY = INFINITY, maxY = -INFINITY;
    for (int i = 0; i < total; ++i) {
      Extent e = extentOf(dets[i].bbox);
      if (!e.regular)
        continue;
      minX = std::min(minX, e.left);
      maxX = std::max(maxX, e.right);
      minY = std::min(minY, e.top);
      maxY = std::max(maxY, e.bottom);
    }
    originX = minX;
    originY = minY;
    grid = (int)std::clamp(std::sqrt((double)total), 1.0, 256.0);
    if (!(maxX > minX) || !(maxY > minY))
      grid = 1;
    scaleX = grid > 1 ? grid / (maxX - minX) : 0.0f;
    scaleY = grid > 1 ? grid / (maxY - minY) : 0.0f;
    if (!std::isfinite(scaleX) || !std::isfinite(scaleY))
      grid = 1, scaleX = scaleY = 0.0f;
    cells.resize((size_t)grid * grid);
    stamp.assign(total, 0);
  }

  /// Forgets the kept boxes (for the next class).
  void clear() {
    all.clear();
    for (size_t c : touched)
      cells[c].clear();
    touched.clear();
    unindexed.clear();
  }

  /// Whether a kept box makes `suppress(kept, box)` true.
  template <typename SuppressFn>
  bool suppressedBy(const std::vector<Detection> &dets, const Box &box,
                    SuppressFn &suppress) {
    Extent e = extentOf(box);
    int x0, x1, y0, y1;
    if (!cellRange(e, x0, x1, y0, y1)) {
      // Tested against every kept box.
      for (int k : all)
        if (suppress(dets[k].bbox, box))
          return true;
      return false;
    }
    for (int k : unindexed)
      if (suppress(dets[k].bbox, box))
        return true;
    ++generation;
    for (int y = y0; y <= y1; ++y)
      for (int x = x0; x <= x1; ++x)
        for (int k : cells[(size_t)y * grid + x]) {
          if (stamp[k] == generation)
            continue;
          stamp[k] = generation;
          if (suppress(dets[k].bbox, box))
            return true;
        }
    return false;
  }

  void add(const std::vector<Detection> &dets, int k) {
    all.push_back(k);
    int x0, x1, y0, y1;
    if (!cellRange(extentOf(dets[k].bbox), x0, x1, y0, y1)) {
      unindexed.push_back(k);
      return;
    }
    for (int y = y0; y <= y1; ++y)
      for (int x = x0; x <= x1; ++x) {
        size_t c = (size_t)y * grid + x;
        if (cells[c].empty())
          touched.push_back(c);
        cells[c].push_back(k);
      }
  }

private:
  /// The cells an extent covers; false for extents that are irregular or
  /// cover too many cells to index (they are tested against everything).
  bool cellRange(const Extent &e, int &x0, int &x1, int &y0, int &y1) const {
    if (!e.regular)
      return false;
    x0 = cellOf(e.left, originX, scaleX);
    x1 = cellOf(e.right, originX, scaleX);
    y0 = cellOf(e.top, originY, scaleY);
    y1 = cellOf(e.bottom, originY, scaleY);
    constexpr int kMaxCells = 64;
    return (int64_t)(x1 - x0 + 1) * (y1 - y0 + 1) <= kMaxCells;
  }
  int cellOf(float v, float origin, float scale) const {
    float t = (v - origin) * scale;
    if (!(t > 0))
      return 0;
    return t >= grid ? grid - 1 : (int)t;
  }

  float originX = 0, originY = 0, scaleX = 0, scaleY = 0;
  int grid = 1;
  std::vector<std::vector<int>> cells;
  std::vector<size_t> touched;
  std::vector<int> unindexed;
  /// Every kept box, in the order kept.
  std::vector<int> all;
  std::vector<uint32_t> stamp;
  uint32_t generation = 0;
};

/// The skeleton shared by do_nms_sort and diounms_sort: compaction of the
/// objectness == 0 entries, then per class a stable sort by prob descending
/// (glibc's qsort is a merge sort here) and suppression of later boxes.
/// Darknet tests every later box against every box not yet suppressed; a
/// box is suppressed exactly when some earlier kept box suppresses it, so
/// with `thresh >= 0` only kept boxes that can overlap it are tested
/// (KeptBoxes). Any other threshold tests every pair, as Darknet does.
template <typename SuppressFn>
void nmsSkeleton(std::vector<Detection> &dets, int classes, float thresh,
                 SuppressFn suppress) {
  int k = (int)dets.size() - 1;
  for (int i = 0; i <= k; ++i) {
    if (dets[i].objectness == 0) {
      std::swap(dets[i], dets[k]);
      --k;
      --i; // re-examine the element just swapped in
    }
  }
  const int total = k + 1;
  const bool overlapNeeded = thresh >= 0;
  std::optional<KeptBoxes> kept;
  if (overlapNeeded)
    kept.emplace(dets, total);
  for (int c = 0; c < classes; ++c) {
    // Probabilities are never NaN (they pass a `> thresh` test), so this
    // comparator is a strict weak order and any stable sort matches glibc.
    std::stable_sort(dets.begin(), dets.begin() + total,
                     [c](const Detection &a, const Detection &b) {
                       return probAt(a, c) > probAt(b, c);
                     });
    if (!overlapNeeded) {
      for (int i = 0; i < total; ++i) {
        if (probAt(dets[i], c) == 0)
          continue; // suppressed boxes do not suppress
        const Box &a = dets[i].bbox;
        for (int j = i + 1; j < total; ++j) {
          // Zeroing an already-zero prob changes nothing; skip the test.
          if (probAt(dets[j], c) == 0)
            continue;
          if (suppress(a, dets[j].bbox))
            dets[j].prob[c] = 0;
        }
      }
      continue;
    }
    kept->clear();
    for (int i = 0; i < total; ++i) {
      if (probAt(dets[i], c) == 0)
        continue; // suppressed boxes do not suppress
      if (kept->suppressedBy(dets, dets[i].bbox, suppress))
        dets[i].prob[c] = 0;
      else
        kept->add(dets, i);
    }
  }
}

/// box_diou / box_diounms with the exponent as a double: box_diou passes the
/// double literal 0.6, box_diounms a float beta.
float diou(const Box &a, const Box &b, double beta) {
  float top = std::fmin(a.y - a.h / 2, b.y - b.h / 2);
  float bot = std::fmax(a.y + a.h / 2, b.y + b.h / 2);
  float left = std::fmin(a.x - a.w / 2, b.x - b.w / 2);
  float right = std::fmax(a.x + a.w / 2, b.x + b.w / 2);
  float w = right - left;
  float h = bot - top;
  float c = w * w + h * h;
  float iou = boxIou(a, b);
  if (c == 0)
    return iou;
  float d = (a.x - b.x) * (a.x - b.x) + (a.y - b.y) * (a.y - b.y);
  float u = (float)std::pow((double)(d / c), beta);
  return iou - u;
}

/// diou(a, b, beta) > thresh without the pow() where the IoU alone decides:
/// DIoU is the IoU minus a non-negative penalty (or the IoU itself), so an
/// IoU not above `thresh` cannot give a DIoU above it (NaN fails both).
bool diouAbove(const Box &a, const Box &b, double beta, float thresh) {
  return boxIou(a, b) > thresh && diou(a, b, beta) > thresh;
}

float overlap(float x1, float w1, float x2, float w2) {
  float l1 = x1 - w1 / 2;
  float l2 = x2 - w2 / 2;
  float left = l1 > l2 ? l1 : l2;
  float r1 = x1 + w1 / 2;
  float r2 = x2 + w2 / 2;
  float right = r1 < r2 ? r1 : r2;
  return right - left;
}

} // namespace

void qsim::rt::getYoloDetections(const YoloHead &head,
                                 const DecodeOptions &opts,
                                 std::vector<Detection> &dets) {
  const int lw = head.w, lh = head.h, area = lw * lh;
  const int n = (int)head.mask.size();
  const size_t entries = 5 + (size_t)head.classes;
  // pjreddie has no new_coords.
  const bool newCoords = head.newCoords && opts.flavor == Flavor::AlexeyAB;
  const size_t first = dets.size();
  for (int i = 0; i < area; ++i) {
    const int row = i / lw, col = i % lw;
    for (int a = 0; a < n; ++a) {
      const float *p = head.data + (size_t)a * entries * area + i;
      const float obj = p[4 * (size_t)area];
      if (!(obj > opts.thresh))
        continue;
      const int m = head.mask[a];
      const float aw = head.anchors[2 * m], ah = head.anchors[2 * m + 1];
      Detection d;
      d.layer = head.layer;
      d.bbox.x = (col + p[0]) / lw;
      d.bbox.y = (row + p[(size_t)area]) / lh;
      const float tw = p[2 * (size_t)area], th = p[3 * (size_t)area];
      if (newCoords) {
        d.bbox.w = tw * tw * 4 * aw / opts.netW;
        d.bbox.h = th * th * 4 * ah / opts.netH;
      } else {
        d.bbox.w = expScale(tw, aw, opts.netW);
        d.bbox.h = expScale(th, ah, opts.netH);
      }
      d.objectness = obj;
      d.prob.resize(head.classes);
      for (int c = 0; c < head.classes; ++c) {
        float prob = obj * p[(5 + (size_t)c) * area];
        d.prob[c] = prob > opts.thresh ? prob : 0;
      }
      dets.push_back(std::move(d));
    }
  }
  correctBoxes(dets, first, opts);
}

void qsim::rt::getGaussianYoloDetections(const GaussianYoloHead &head,
                                         const DecodeOptions &opts,
                                         std::vector<Detection> &dets) {
  const int lw = head.w, lh = head.h, area = lw * lh;
  const size_t entries = 9 + (size_t)head.classes;
  const size_t first = dets.size();
  for (int i = 0; i < area; ++i) {
    const int row = i / lw, col = i % lw;
    for (size_t a = 0; a < head.mask.size(); ++a) {
      const float *p = head.data + a * entries * area + i;
      const float obj = p[8 * (size_t)area];
      if (!(obj > opts.thresh))
        continue;
      const int m = head.mask[a];
      Detection d;
      d.layer = head.layer;
      d.bbox.x = (col + p[0]) / lw;
      d.bbox.y = (row + p[2 * (size_t)area]) / lh;
      d.bbox.w = expScale(p[4 * (size_t)area], head.anchors[2 * m], opts.netW);
      d.bbox.h =
          expScale(p[6 * (size_t)area], head.anchors[2 * m + 1], opts.netH);
      d.objectness = obj;
      // uc_aver in float, divided by the double 4.0; 1.0 - it in double.
      float uc = (float)((p[1 * (size_t)area] + p[3 * (size_t)area] +
                          p[5 * (size_t)area] + p[7 * (size_t)area]) /
                         4.0);
      d.prob.resize(head.classes);
      for (int c = 0; c < head.classes; ++c) {
        float prob = (float)(obj * p[(9 + (size_t)c) * area] * (1.0 - uc));
        d.prob[c] = prob > opts.thresh ? prob : 0;
      }
      dets.push_back(std::move(d));
    }
  }
  correctBoxes(dets, first, opts);
}

void qsim::rt::getDetectionV1Detections(const DetectionV1Head &head,
                                        const DecodeOptions &opts,
                                        std::vector<Detection> &dets) {
  const int cells = head.side * head.side;
  const float *p = head.data;
  for (int i = 0; i < cells; ++i) {
    const int row = i / head.side, col = i % head.side;
    for (int n = 0; n < head.num; ++n) {
      const float scale = p[cells * head.classes + i * head.num + n];
      const float *b = p + cells * (head.classes + head.num) +
                       (i * head.num + n) * head.coords;
      Detection d;
      d.layer = head.layer;
      d.bbox.x = (b[0] + col) / head.side;
      d.bbox.y = (b[1] + row) / head.side;
      d.bbox.w = (float)std::pow(b[2], head.sqrt ? 2 : 1);
      d.bbox.h = (float)std::pow(b[3], head.sqrt ? 2 : 1);
      d.objectness = scale;
      d.prob.resize(head.classes);
      for (int c = 0; c < head.classes; ++c) {
        float prob = scale * p[i * head.classes + c];
        d.prob[c] = prob > opts.thresh ? prob : 0;
      }
      dets.push_back(std::move(d));
    }
  }
}

void qsim::rt::getRegionDetections(const RegionHead &head,
                                   const DecodeOptions &opts,
                                   std::vector<Detection> &dets) {
  const int lw = head.w, lh = head.h, area = lw * lh, n = head.num;
  const size_t first = dets.size();
  dets.resize(first + (size_t)area * n);
  if (opts.flavor == Flavor::AlexeyAB) {
    // custom_get_region_detections on the HWC buffer; offsets 4 and 5 are
    // hard-coded there (classes + 5 entries per anchor).
    const size_t entries = (size_t)head.classes + 5;
    for (int i = 0; i < area; ++i) {
      const int row = i / lw, col = i % lw;
      for (int a = 0; a < n; ++a) {
        const size_t index = (size_t)i * n + a;
        const float *p = head.data + index * entries;
        float scale = p[4];
        if (head.classfix == -1 && scale < .5)
          scale = 0;
        Detection &d = dets[first + index];
        d.layer = head.layer;
        d.bbox.x = (col + logisticF(p[0])) / lw;
        d.bbox.y = (row + logisticF(p[1])) / lh;
        d.bbox.w = expScale(p[2], head.anchors[2 * a], lw);
        d.bbox.h = expScale(p[3], head.anchors[2 * a + 1], lh);
        d.objectness = 1; // every box enters NMS
        d.prob.assign(head.classes, 0.0f);
        for (int c = 0; c < head.classes; ++c) {
          float prob = scale * p[5 + c];
          d.prob[c] = prob > opts.thresh ? prob : 0;
        }
      }
    }
  } else {
    // get_region_detections on the CHW buffer, anchor-major.
    const size_t entries = (size_t)head.coords + head.classes + 1;
    for (int i = 0; i < area; ++i) {
      const int row = i / lw, col = i % lw;
      for (int a = 0; a < n; ++a) {
        const size_t index = (size_t)a * area + i;
        const float *p = head.data + (size_t)a * entries * area + i;
        const float scale = p[(size_t)head.coords * area];
        Detection &d = dets[first + index];
        d.layer = head.layer;
        d.bbox.x = (col + p[0]) / lw;
        d.bbox.y = (row + p[(size_t)area]) / lh;
        d.bbox.w = expScale(p[2 * (size_t)area], head.anchors[2 * a], lw);
        d.bbox.h = expScale(p[3 * (size_t)area], head.anchors[2 * a + 1], lh);
        d.objectness = scale > opts.thresh ? scale : 0;
        d.prob.assign(head.classes, 0.0f);
        if (d.objectness != 0) {
          for (int c = 0; c < head.classes; ++c) {
            float prob =
                scale * p[((size_t)head.coords + 1 + c) * (size_t)area];
            d.prob[c] = prob > opts.thresh ? prob : 0;
          }
        }
      }
    }
  }
  correctBoxes(dets, first, opts);
}

float qsim::rt::boxIou(const Box &a, const Box &b) {
  float w = overlap(a.x, a.w, b.x, b.w);
  float h = overlap(a.y, a.h, b.y, b.h);
  float i = (w < 0 || h < 0) ? 0.0f : w * h;
  float u = a.w * a.h + b.w * b.h - i;
  if (i == 0 || u == 0)
    return 0;
  return i / u;
}

float qsim::rt::boxDiou(const Box &a, const Box &b, float beta) {
  return diou(a, b, beta);
}

void qsim::rt::nmsSort(std::vector<Detection> &dets, int classes,
                       float thresh) {
  nmsSkeleton(dets, classes, thresh, [thresh](const Box &a, const Box &b) {
    return boxIou(a, b) > thresh;
  });
}

void qsim::rt::diouNmsSort(std::vector<Detection> &dets, int classes,
                           float thresh, NmsKind kind, float beta) {
  switch (kind) {
  case NmsKind::Greedy:
    // box_diou: the exponent is the double literal 0.6, not beta_nms.
    nmsSkeleton(dets, classes, thresh, [thresh](const Box &a, const Box &b) {
      return diouAbove(a, b, 0.6, thresh);
    });
    return;
  case NmsKind::DIoU:
    nmsSkeleton(dets, classes, thresh,
                [thresh, beta](const Box &a, const Box &b) {
                  return diouAbove(a, b, beta, thresh);
                });
    return;
  case NmsKind::Corners:
  case NmsKind::Default:
    // Darknet's diounms_sort would suppress nothing for the default kind;
    // its tools never call it that way, so plain IoU NMS is the useful
    // meaning here.
    nmsSkeleton(dets, classes, thresh, [thresh](const Box &a, const Box &b) {
      return boxIou(a, b) > thresh;
    });
    return;
  }
}

std::vector<ReportedDetection>
qsim::rt::reportDetections(const std::vector<Detection> &dets, int imageW,
                           int imageH, float thresh) {
  std::vector<ReportedDetection> out;
  for (const Detection &d : dets) {
    for (int c = 0; c < (int)d.prob.size(); ++c) {
      if (!(d.prob[c] > thresh))
        continue;
      ReportedDetection r;
      r.classId = c;
      r.prob = d.prob[c];
      r.objectness = d.objectness;
      r.rel = d.bbox;
      const Box &b = d.bbox;
      // draw_detections: `b.w / 2.` makes the expression double; the
      // conversion to int truncates toward zero.
      r.left = (int)((b.x - b.w / 2.) * imageW);
      r.right = (int)((b.x + b.w / 2.) * imageW);
      r.top = (int)((b.y - b.h / 2.) * imageH);
      r.bottom = (int)((b.y + b.h / 2.) * imageH);
      r.left = std::clamp(r.left, 0, std::max(imageW - 1, 0));
      r.right = std::clamp(r.right, 0, std::max(imageW - 1, 0));
      r.top = std::clamp(r.top, 0, std::max(imageH - 1, 0));
      r.bottom = std::clamp(r.bottom, 0, std::max(imageH - 1, 0));
      out.push_back(r);
    }
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const ReportedDetection &a, const ReportedDetection &b) {
                     if (a.classId != b.classId)
                       return a.classId < b.classId;
                     return a.prob > b.prob;
                   });
  return out;
}

std::vector<int> qsim::rt::topK(const float *values, int n, int k) {
  if (k <= 0)
    return {};
  std::vector<int> index(k, -1);
  // top_k: each value bubbles down past the entries it strictly exceeds, so
  // equal values keep the lower index in front.
  for (int i = 0; i < n; ++i) {
    int curr = i;
    for (int j = 0; j < k; ++j) {
      if (index[j] < 0 || values[curr] > values[index[j]])
        std::swap(curr, index[j]);
      if (curr < 0)
        break; // the rest of the list is still empty
    }
  }
  // With k > n Darknet leaves -1 entries at the end; drop them.
  index.resize(std::min(k, std::max(n, 0)));
  return index;
}

bool qsim::rt::readNames(const std::string &path,
                         std::vector<std::string> &names, std::string &error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot open names file '" + path + "'";
    return false;
  }
  names.clear();
  std::string line;
  // Names are kept verbatim (yolohw.names has a trailing space Darknet
  // keeps); only the line ending goes.
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    names.push_back(line);
  }
  if (in.bad()) {
    error = "error reading names file '" + path + "'";
    return false;
  }
  return true;
}

std::vector<Detection> qsim::rt::decodeHeads(const std::vector<HeadSpec> &heads,
                                             const DecodeOptions &d,
                                             float nms) {
  std::vector<Detection> dets;
  for (const HeadSpec &h : heads) {
    if (h.isGaussianYolo)
      getGaussianYoloDetections(h.gaussian, d, dets);
    else if (h.isDetectionV1)
      getDetectionV1Detections(h.v1, d, dets);
    else if (h.isYolo)
      getYoloDetections(h.yolo, d, dets);
    else
      getRegionDetections(h.region, d, dets);
  }
  if (heads.empty())
    return dets;
  const HeadSpec &last = heads.back();
  if (last.nmsKind == NmsKind::Default || !last.isYolo)
    nmsSort(dets, last.classes, nms);
  else
    diouNmsSort(dets, last.classes, nms, last.nmsKind, last.betaNms);
  return dets;
}
