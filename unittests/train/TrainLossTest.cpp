//===- TrainLossTest.cpp - the losses against Darknet's formulas ---------===//
//
// A torch translation unit (RTTI, no MLIR headers, as lib/Train's own):
// the YOLO loss's gradient is AlexeyAB's deltas, box metrics.
//
//===----------------------------------------------------------------------===//

#include "Losses.h"

#include <cmath>
#include <gtest/gtest.h>

using namespace qsim;
using namespace qsim::train;

namespace {

TEST(TrainLosses, BoxMetrics) {
  double a[4] = {0.5, 0.5, 0.2, 0.4}, far[4] = {0.9, 0.1, 0.1, 0.1};
  for (const char *k : {"iou", "giou", "diou", "ciou"}) {
    EXPECT_NEAR(boxMetric(a, a, k), 1.0, 1e-12) << k;
    EXPECT_LE(boxMetric(a, far, k), 0.0) << k;
  }
  EXPECT_LT(boxMetric(a, far, "giou"), 0.0);
  double b[4] = {0.55, 0.5, 0.2, 0.4};
  EXPECT_NEAR(boxMetric(a, b, "iou"), 0.15 * 0.4 / (2 * 0.08 - 0.06), 1e-9);
}

TEST(TrainLosses, YoloDeltasAsDarknet) {
  // One anchor (8x8 on a 32x32 network), a 1x1 grid, one class; the
  // truth box picks the anchor. MSE deltas (delta_yolo_box):
  // scale (2 - w*h) * iou_normalizer on tx - sigma(x), ln(w*W/aw) - tw.
  Node head;
  head.kind = NodeKind::Yolo;
  head.classes = 1;
  head.mask = {0};
  head.anchors = {8, 8};
  head.cfg = {{"iou_normalizer", "0.5"}};
  torch::Tensor raw = torch::zeros({1, 6, 1, 1}, torch::requires_grad());
  rt::GroundTruth g;
  g.classId = 0;
  g.box = rt::Box{0.6f, 0.5f, 0.5f, 0.25f};
  LossTerm t = yoloLoss(head, 32, 32, raw, {{g}}, {1});
  t.loss.backward();
  torch::Tensor grad = raw.grad().flatten();
  double scale = (2 - 0.5 * 0.25) * 0.5;
  EXPECT_NEAR(-grad[0].item<double>(), scale * (0.6 - 0.5), 1e-6);
  EXPECT_NEAR(-grad[1].item<double>(), 0, 1e-6);
  EXPECT_NEAR(-grad[2].item<double>(), scale * std::log(2.0), 1e-6);
  EXPECT_NEAR(-grad[3].item<double>(), 0, 1e-6);
  EXPECT_NEAR(-grad[4].item<double>(), 1 - 0.5, 1e-6); // objectness
  EXPECT_NEAR(-grad[5].item<double>(), 1 - 0.5, 1e-6); // the class
  // Darknet's cost: the sum of squared deltas.
  double d[6] = {scale * 0.1, 0, scale * std::log(2.0), 0, 0.5, 0.5};
  double cost = 0;
  for (double v : d)
    cost += v * v;
  EXPECT_NEAR(t.reported, cost, 1e-5);
}

TEST(TrainLosses, DistillationIsZeroForTheTeacherAndNeverNegative) {
  // Saturated teacher scores (sigmoid of -40 underflows towards 0 in float)
  // are where clamped targets once made the reported divergence negative.
  Node head;
  head.kind = NodeKind::Yolo;
  head.classes = 2;
  head.mask = {0, 1};
  head.anchors = {8, 8, 16, 16};
  torch::manual_seed(3);
  torch::Tensor teacher = torch::randn({2, 14, 4, 4}) * 3;
  for (int64_t first : {4, 11})
    teacher.index_put_(
        {torch::indexing::Slice(), torch::indexing::Slice(first, first + 3)},
        -40.0);
  // Float rounding only (clamped targets gave -5.5e-5 here).
  LossTerm same =
      distillationLoss(head, Flavor::AlexeyAB, teacher.clone(), teacher);
  EXPECT_NEAR(same.reported, 0.0, 1e-5);
  for (int i = 0; i < 4; ++i) {
    torch::Tensor student = teacher + torch::randn({2, 14, 4, 4});
    LossTerm t = distillationLoss(head, Flavor::AlexeyAB, student, teacher);
    EXPECT_GT(t.reported, same.reported) << "perturbation " << i;
  }
}

} // namespace
