//===- Losses.h - distillation, feature hints, the YOLO loss ----*- C++ -*-===//
//
// Every loss is summed over an image and averaged over the batch (Darknet's
// scale: its deltas are per image, its update divides by the batch), so
// that the cfg's learning_rate keeps its meaning.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_LIB_TRAIN_LOSSES_H
#define QSIM_LIB_TRAIN_LOSSES_H

#include "qsim/Runtime/Evaluation.h"
#include "qsim/Train/NetSpec.h"

#include <torch/torch.h>

namespace qsim::train {

/// A loss to minimise and the value to report (for the soft-target terms,
/// the divergence from the teacher: 0 when the student equals it).
struct LossTerm {
  torch::Tensor loss;
  double reported = 0;
};

/// Distillation on a detection head's raw input (the conv output): box
/// terms by L2 on the values the head decodes (x, y as the layer outputs
/// them, w, h raw), objectness and class scores by binary cross-entropy
/// against the teacher's probabilities (softmax classes of a [region] head
/// by cross-entropy); box and class terms weighted by the teacher's
/// objectness.
LossTerm distillationLoss(const Node &head, Flavor flavor,
                          const torch::Tensor &student,
                          const torch::Tensor &teacher);

/// The [yolo] layer's training loss as AlexeyAB's forward_yolo_layer
/// computes its deltas (ignore_thresh, truth_thresh, iou_thresh, iou_loss
/// mse|iou|giou|diou|ciou, iou_normalizer, obj_normalizer, cls_normalizer,
/// max_delta, label_smooth_eps, scale_x_y from the layer's cfg keys). The
/// returned loss has exactly those deltas as its negative gradient with
/// respect to the raw input; `reported` is Darknet's cost (sum of squared
/// deltas) per image. Images without labels contribute nothing.
LossTerm yoloLoss(const Node &head, int netW, int netH,
                  const torch::Tensor &raw,
                  const std::vector<std::vector<rt::GroundTruth>> &truth,
                  const std::vector<char> &labeled);

/// IoU-family metric of two boxes (centre x, y, w, h): "iou", "giou",
/// "diou", "ciou" (box.c of AlexeyAB Darknet).
double boxMetric(const double a[4], const double b[4], const std::string &kind);

} // namespace qsim::train

#endif
