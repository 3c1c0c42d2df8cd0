//===- Evaluation.h - mAP as Darknet's `detector map` computes it -*- C++ -*-===//
//
// docs/darknet.md §R7: records in post-NMS order, matching to the best
// same-class GT by IoU > iou_thresh, global sort by probability, cumulative
// TP/FP, all-point (points = 0) or K-point interpolated AP, mAP over all
// classes.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_RUNTIME_EVALUATION_H
#define QSIM_RUNTIME_EVALUATION_H

#include "qsim/Runtime/Detection.h"

#include <string>
#include <vector>

namespace qsim::rt {

struct GroundTruth {
  int classId = 0;
  Box box; // fractions of the image, centre format
};

/// Reads a YOLO label file ("id x y w h" per line) until the first malformed
/// line, as Darknet does. A missing file means no objects (returns true,
/// `missing` set).
bool readYoloLabels(const std::string &path, std::vector<GroundTruth> &out,
                    bool &missing, std::string &error);

/// The label file Darknet uses for an image (replace_image_to_label), or,
/// when `labelsDir` is non-empty, labelsDir/<image stem>.txt.
std::string labelPathForImage(const std::string &imagePath,
                              const std::string &labelsDir);

struct ClassAP {
  int classId = 0;
  int groundTruth = 0;
  int tp = 0, fp = 0; // over all records of this class
  double ap = 0;
};

struct MapResult {
  double map = 0;        // at iouThresh (fraction, not %)
  std::vector<ClassAP> perClass;
  // The summary line at `thresh` (default 0.25), docs/darknet.md §R7 step 11.
  int tp = 0, fp = 0, fn = 0;
  double precision = 0, recall = 0, f1 = 0, avgIou = 0;
  int images = 0, groundTruth = 0;
};

/// Accumulates images, then computes mAP. Detections are the post-NMS array
/// of one image with boxes as fractions of that image.
class MapEvaluator {
public:
  explicit MapEvaluator(int classes) : classes(classes) {}
  void addImage(const std::vector<Detection> &dets,
                const std::vector<GroundTruth> &truth);
  /// iouThresh 0.5 and points 0 are `detector map`'s defaults; thresh is
  /// the precision/recall line's confidence threshold.
  MapResult compute(float iouThresh = 0.5f, int points = 0,
                    float thresh = 0.25f) const;
  /// COCO-style mAP@0.5:0.95 (mean over IoU 0.50, 0.55, ..., 0.95 of the
  /// all-point mAP).
  double mapRange() const;

private:
  struct Record {
    Box box;
    float p;
    int cls;
    int image;
    int detIndex; // order within the image (step 6)
  };
  struct ImageTruth {
    std::vector<GroundTruth> truth;
    int firstId; // global id of truth[0]
  };
  int classes;
  std::vector<Record> records;
  std::vector<ImageTruth> images;
  int totalTruth = 0;
};

} // namespace qsim::rt

#endif
