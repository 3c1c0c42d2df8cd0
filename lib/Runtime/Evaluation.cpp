//===- Evaluation.cpp - mAP as Darknet's `detector map` computes it ------===//
//
// docs/darknet.md §R7 (AlexeyAB validate_detector_map). Records are stored per
// image in post-NMS order; the GT matching depends on the IoU threshold, so
// it happens in compute().
//
//===----------------------------------------------------------------------===//

#include "qsim/Runtime/Evaluation.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

using namespace qsim::rt;

namespace {

/// find_replace: the first occurrence only.
void replaceFirst(std::string &s, const char *orig, const char *rep) {
  size_t pos = s.find(orig);
  if (pos != std::string::npos)
    s.replace(pos, std::strlen(orig), rep);
}

/// find_replace_extension: the last occurrence, and only if it ends `s`.
void replaceExtension(std::string &s, const char *orig, const char *rep) {
  size_t len = std::strlen(orig);
  size_t pos = s.rfind(orig);
  if (pos != std::string::npos && pos + len == s.size())
    s.replace(pos, len, rep);
}

/// trim: leading and trailing spaces and tabs.
void trimBlanks(std::string &s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) {
    s.clear();
    return;
  }
  size_t e = s.find_last_not_of(" \t");
  s = s.substr(b, e - b + 1);
}

} // namespace

bool qsim::rt::readYoloLabels(const std::string &path,
                              std::vector<GroundTruth> &out, bool &missing,
                              std::string &error) {
  out.clear();
  missing = false;
  std::FILE *f = std::fopen(path.c_str(), "r");
  if (!f) {
    // Darknet prints "Can't open label file" and counts no objects.
    missing = true;
    return true;
  }
  // read_boxes reads with fscanf, so the format is a whitespace-separated
  // token stream: the first token that does not convert ends the file.
  int id;
  float x, y, w, h;
  while (std::fscanf(f, "%d %f %f %f %f", &id, &x, &y, &w, &h) == 5) {
    GroundTruth g;
    g.classId = id;
    g.box = Box{x, y, w, h};
    out.push_back(g);
  }
  bool bad = std::ferror(f);
  std::fclose(f);
  if (bad) {
    error = "error reading label file '" + path + "'";
    return false;
  }
  return true;
}

std::string qsim::rt::labelPathForImage(const std::string &imagePath,
                                        const std::string &labelsDir) {
  if (!labelsDir.empty()) {
    size_t slash = imagePath.find_last_of("/\\");
    std::string name =
        slash == std::string::npos ? imagePath : imagePath.substr(slash + 1);
    size_t dot = name.rfind('.');
    std::string stem = dot == std::string::npos ? name : name.substr(0, dot);
    std::string dir = labelsDir;
    if (dir.back() != '/' && dir.back() != '\\')
      dir += '/';
    return dir + stem + ".txt";
  }
  // replace_image_to_label, in Darknet's order.
  std::string s = imagePath;
  replaceFirst(s, "/images/train2017/", "/labels/train2017/");
  replaceFirst(s, "/images/val2017/", "/labels/val2017/");
  replaceFirst(s, "/JPEGImages/", "/labels/");
  replaceFirst(s, "\\images\\train2017\\", "\\labels\\train2017\\");
  replaceFirst(s, "\\images\\val2017\\", "\\labels\\val2017\\");
  replaceFirst(s, "\\images\\train2014\\", "\\labels\\train2014\\");
  replaceFirst(s, "\\images\\val2014\\", "\\labels\\val2014\\");
  replaceFirst(s, "/images/train2014/", "/labels/train2014/");
  replaceFirst(s, "/images/val2014/", "/labels/val2014/");
  replaceFirst(s, "\\JPEGImages\\", "\\labels\\");
  trimBlanks(s);
  static const char *const exts[] = {".jpg", ".JPG", ".jpeg", ".JPEG",
                                     ".png", ".PNG", ".bmp",  ".BMP",
                                     ".ppm", ".PPM", ".tiff", ".TIFF"};
  for (const char *e : exts)
    replaceExtension(s, e, ".txt");
  return s;
}

void MapEvaluator::addImage(const std::vector<Detection> &dets,
                            const std::vector<GroundTruth> &truth) {
  const int image = (int)images.size();
  int detIndex = 0;
  // Step 6: one record per (detection, class) with prob > 0, in array order.
  for (const Detection &d : dets) {
    const int n = std::min(classes, (int)d.prob.size());
    for (int c = 0; c < n; ++c) {
      if (d.prob[c] > 0)
        records.push_back(Record{d.bbox, d.prob[c], c, image, detIndex++});
    }
  }
  images.push_back(ImageTruth{truth, totalTruth});
  totalTruth += (int)truth.size();
}

MapResult MapEvaluator::compute(float iouThresh, int points,
                                float thresh) const {
  MapResult res;
  res.images = (int)images.size();
  res.groundTruth = totalTruth;

  std::vector<int> gtPerClass(std::max(classes, 0), 0);
  for (const ImageTruth &it : images)
    for (const GroundTruth &g : it.truth)
      if (g.classId >= 0 && g.classId < classes) // Darknet would write OOB
        ++gtPerClass[g.classId];

  // Step 6: the best same-class GT with IoU > iouThresh, first on ties.
  const size_t n = records.size();
  std::vector<int> truthId(n, -1);
  std::vector<float> bestIou(n, 0.0f);
  for (size_t r = 0; r < n; ++r) {
    const Record &rec = records[r];
    const ImageTruth &it = images[rec.image];
    float maxIou = 0;
    for (size_t j = 0; j < it.truth.size(); ++j) {
      if (it.truth[j].classId != rec.cls)
        continue;
      float iou = boxIou(rec.box, it.truth[j].box);
      if (iou > iouThresh && iou > maxIou) {
        maxIou = iou;
        truthId[r] = it.firstId + (int)j;
      }
    }
    bestIou[r] = maxIou;
  }

  // Step 11: unsorted records with p > thresh; a GT already claimed by an
  // earlier record of the same image (any p) makes an FP. Global GT ids
  // belong to one image, so one flag per id is enough.
  {
    std::vector<char> claimed(totalTruth, 0);
    int tp = 0, fp = 0;
    float iouSum = 0; // Darknet accumulates in float
    for (size_t r = 0; r < n; ++r) {
      const int t = truthId[r];
      if (records[r].p > thresh) {
        if (t >= 0 && !claimed[t]) {
          ++tp;
          iouSum += bestIou[r];
        } else {
          ++fp;
        }
      }
      if (t >= 0)
        claimed[t] = 1;
    }
    res.tp = tp;
    res.fp = fp;
    res.fn = totalTruth - tp;
    // Darknet computes these in float; 0/0 (nothing above thresh) is NaN
    // there, 0 here.
    float p = (tp + fp) > 0 ? (float)tp / ((float)tp + (float)fp) : 0.0f;
    float rc = totalTruth > 0
                   ? (float)tp / ((float)tp + (float)(totalTruth - tp))
                   : 0.0f;
    float f1 = (p + rc) > 0 ? 2.f * p * rc / (p + rc) : 0.0f;
    res.precision = p;
    res.recall = rc;
    res.f1 = f1;
    res.avgIou = (tp + fp) > 0 ? iouSum / (tp + fp) : 0.0f;
  }

  // Step 7: stable sort by p descending.
  std::vector<int> order(n);
  for (size_t i = 0; i < n; ++i)
    order[i] = (int)i;
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return records[a].p > records[b].p; });

  // Step 8. precision_c/recall_c change only at ranks of class c; the other
  // ranks repeat the previous point (or (0, 0) before the first), which adds
  // exactly 0 to the step 9 sums, so one point per record of c suffices.
  struct PrPoint {
    double precision, recall;
  };
  std::vector<std::vector<PrPoint>> curve(std::max(classes, 0));
  std::vector<int> tpC(std::max(classes, 0), 0), fpC(std::max(classes, 0), 0);
  std::vector<char> taken(totalTruth, 0);
  for (size_t rank = 0; rank < n; ++rank) {
    const int r = order[rank];
    const int c = records[r].cls;
    const int t = truthId[r];
    if (t >= 0 && !taken[t]) {
      taken[t] = 1;
      ++tpC[c];
    } else {
      ++fpC[c]; // unmatched, or the GT went to a higher-p record
    }
    const int tp = tpC[c], fp = fpC[c];
    const int fn = gtPerClass[c] - tp;
    PrPoint pt;
    pt.precision = (tp + fp) > 0 ? (double)tp / (double)(tp + fp) : 0;
    pt.recall = (tp + fn) > 0 ? (double)tp / (double)(tp + fn) : 0;
    curve[c].push_back(pt);
  }

  double sum = 0;
  for (int c = 0; c < classes; ++c) {
    const std::vector<PrPoint> &pr = curve[c];
    double ap = 0;
    if (!pr.empty()) {
      if (points == 0) {
        // Step 9, all-point: walk back with the running max precision.
        double lastRecall = pr.back().recall;
        double lastPrecision = pr.back().precision;
        for (int i = (int)pr.size() - 2; i >= 0; --i) {
          double deltaRecall = lastRecall - pr[i].recall;
          lastRecall = pr[i].recall;
          if (pr[i].precision > lastPrecision)
            lastPrecision = pr[i].precision;
          ap += deltaRecall * lastPrecision;
        }
        ap += lastRecall * lastPrecision; // the segment down to recall 0
      } else {
        for (int t = 0; t < points; ++t) {
          // points == 1 gives 0/0 = NaN as in Darknet, matching nothing.
          double curRecall = t * 1.0 / (points - 1);
          double curPrecision = 0;
          for (const PrPoint &p : pr)
            if (p.recall >= curRecall && p.precision > curPrecision)
              curPrecision = p.precision;
          ap += curPrecision;
        }
        ap /= points;
      }
    }
    ClassAP cap;
    cap.classId = c;
    cap.groundTruth = gtPerClass[c];
    cap.tp = tpC[c];
    cap.fp = fpC[c];
    cap.ap = ap;
    res.perClass.push_back(cap);
    sum += ap;
  }
  // Step 10: over all classes of the cfg, present in the GT or not.
  res.map = classes > 0 ? sum / classes : 0;
  return res;
}

double MapEvaluator::mapRange() const {
  double sum = 0;
  for (int i = 0; i < 10; ++i)
    sum += compute((50 + 5 * i) / 100.0f).map;
  return sum / 10;
}
