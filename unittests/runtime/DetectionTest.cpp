//===- DetectionTest.cpp - box decoding, NMS, reports, top-k -------------===//
//
// Hand-computed IoU/DIoU, decoding of small synthetic heads (order,
// thresholds, formulas, letterbox correction), NMS (compaction, stable ties,
// per-class suppression, strict threshold, DIoU kinds), the report format,
// top_k and names files; then, with the real data, Darknet's golden
// detections decoded from the stored [yolo] outputs.
//
//===----------------------------------------------------------------------===//

#include "qsim/Runtime/Detection.h"
#include "qsim/Runtime/Tensor.h"

#include "TestEnv.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <random>

using namespace qsim::rt;
using nlohmann::json;

namespace {

Detection makeDet(float x, float y, float w, float h, float obj,
                  std::vector<float> prob, int tag) {
  Detection d;
  d.bbox = Box{x, y, w, h};
  d.objectness = obj;
  d.prob = std::move(prob);
  d.layer = tag; // identifies the detection after reordering
  return d;
}

std::vector<int> tags(const std::vector<Detection> &dets) {
  std::vector<int> t;
  for (const Detection &d : dets)
    t.push_back(d.layer);
  return t;
}

std::string writeTemp(const std::string &name, const std::string &text) {
  std::string path = ::testing::TempDir() + name;
  std::ofstream out(path, std::ios::binary);
  out << text;
  return path;
}

} // namespace

//===----------------------------------------------------------------------===//
// IoU and DIoU
//===----------------------------------------------------------------------===//

TEST(DetectionIouTest, HandComputedIou) {
  // [0.4,0.6]x[0.4,0.6] and [0.5,0.7]x[0.4,0.6]: I = 0.1*0.2, U = 0.06.
  EXPECT_NEAR(boxIou({0.5f, 0.5f, 0.2f, 0.2f}, {0.6f, 0.5f, 0.2f, 0.2f}),
              1.0 / 3.0, 1e-5);
  // Containment: a 2x2 box inside a 4x4 box, I = 4, U = 16.
  EXPECT_FLOAT_EQ(boxIou({0, 0, 4, 4}, {0, 0, 2, 2}), 0.25f);
  // Identical boxes.
  EXPECT_FLOAT_EQ(boxIou({3, 2, 1, 5}, {3, 2, 1, 5}), 1.0f);
  // Exactly representable 0.5: [0,2]x[0,1] against [0,1]x[0,1].
  EXPECT_EQ(boxIou({1, 0.5f, 2, 1}, {0.5f, 0.5f, 1, 1}), 0.5f);
}

TEST(DetectionIouTest, DisjointTouchingAndDegenerate) {
  EXPECT_EQ(boxIou({0, 0, 1, 1}, {5, 5, 1, 1}), 0.0f);
  // Edges touching: the overlap is 0, not negative, and I = 0 gives 0.
  EXPECT_EQ(boxIou({0, 0, 1, 1}, {1, 0, 1, 1}), 0.0f);
  // Overlapping in x only.
  EXPECT_EQ(boxIou({0, 0, 2, 2}, {0.5f, 3, 2, 2}), 0.0f);
  // Zero-size boxes: AlexeyAB returns 0 where I/U would be 0/0.
  float z = boxIou({1, 1, 0, 0}, {1, 1, 0, 0});
  EXPECT_FALSE(std::isnan(z));
  EXPECT_EQ(z, 0.0f);
}

TEST(DetectionIouTest, HandComputedDiou) {
  // a = [-1,1]^2, b = [0,2]x[-1,1]: I = 2, U = 6, IoU = 1/3; the enclosing
  // box is [-1,2]x[-1,1], c^2 = 9 + 4 = 13; d^2 = 1.
  Box a{0, 0, 2, 2}, b{1, 0, 2, 2};
  EXPECT_NEAR(boxDiou(a, b, 0.6f), 1.0 / 3.0 - std::pow(1.0 / 13.0, 0.6), 1e-6);
  EXPECT_NEAR(boxDiou(a, b, 1.0f), 1.0 / 3.0 - 1.0 / 13.0, 1e-6);
  // Same centre: d = 0, DIoU = IoU (here 0.25).
  EXPECT_FLOAT_EQ(boxDiou({0, 0, 4, 4}, {0, 0, 2, 2}, 0.6f), 0.25f);
  // Far apart: IoU 0 and a penalty close to (d^2/c^2)^beta.
  Box c{0, 0, 1, 1}, d{3, 0, 1, 1};
  // enclosing [-0.5,3.5]x[-0.5,0.5]: c^2 = 16 + 1, d^2 = 9.
  EXPECT_NEAR(boxDiou(c, d, 0.6f), -std::pow(9.0 / 17.0, 0.6), 1e-6);
  // Both boxes reduced to one point: c^2 = 0, DIoU = IoU = 0.
  EXPECT_EQ(boxDiou({2, 2, 0, 0}, {2, 2, 0, 0}, 0.6f), 0.0f);
}

//===----------------------------------------------------------------------===//
// Decoding
//===----------------------------------------------------------------------===//

namespace {

/// A [yolo] output of 2x1 cells, 2 anchors (mask {1, 2}), 2 classes:
/// 2 * 7 channels of 2 values.
struct SmallYolo {
  static constexpr int W = 2, H = 1, Area = 2, Classes = 2, N = 2;
  std::vector<float> data = std::vector<float>(N * (5 + Classes) * Area, 0);
  float &at(int a, int e, int cell) {
    return data[(a * (5 + Classes) + e) * Area + cell];
  }
  SmallYolo() {
    // cell 0, anchor 0: a candidate; class 1 falls under the threshold.
    at(0, 0, 0) = 0.5f;
    at(0, 1, 0) = 0.25f;
    at(0, 2, 0) = 0.0f;
    at(0, 3, 0) = 0.5f;
    at(0, 4, 0) = 0.9f;
    at(0, 5, 0) = 0.5f;
    at(0, 6, 0) = 0.2f;
    // cell 0, anchor 1: objectness == thresh, not a candidate (strict).
    at(1, 4, 0) = 0.25f;
    at(1, 5, 0) = 1.0f;
    // cell 1, anchor 0 and 1: both candidates.
    at(0, 0, 1) = 0.75f;
    at(0, 1, 1) = 0.5f;
    at(0, 2, 1) = -0.5f;
    at(0, 3, 1) = 0.25f;
    at(0, 4, 1) = 0.3f;
    at(0, 5, 1) = 1.0f;
    at(0, 6, 1) = 0.9f;
    at(1, 0, 1) = 0.125f;
    at(1, 1, 1) = 1.0f;
    at(1, 2, 1) = 0.5f;
    at(1, 3, 1) = 0.75f;
    at(1, 4, 1) = 0.8f;
    at(1, 5, 1) = 0.25f;
    at(1, 6, 1) = 0.5f;
  }
  YoloHead head(bool newCoords = false) const {
    YoloHead h;
    h.data = data.data();
    h.w = W;
    h.h = H;
    h.classes = Classes;
    h.mask = {1, 2};
    h.anchors = {10, 14, 20, 30, 40, 50};
    h.newCoords = newCoords;
    h.layer = 7;
    return h;
  }
};

DecodeOptions plainOptions(Flavor flavor = Flavor::AlexeyAB) {
  DecodeOptions o;
  o.netW = 64;
  o.netH = 32;
  o.imageW = 100;
  o.imageH = 80;
  o.thresh = 0.25f;
  o.letterbox = false;
  o.relative = true;
  o.flavor = flavor;
  return o;
}

float expectedExpScale(float t, float anchor, int size) {
  return (float)(std::exp((double)t) * anchor / size);
}

} // namespace

TEST(DetectionDecodeTest, YoloOrderThresholdsAndFormulas) {
  SmallYolo y;
  std::vector<Detection> dets;
  getYoloDetections(y.head(), plainOptions(), dets);
  // Cell-major, anchor inner; (cell 0, anchor 1) has obj == thresh.
  ASSERT_EQ(dets.size(), 3u);

  // (cell 0, anchor 0), anchor (20, 30).
  EXPECT_EQ(dets[0].layer, 7);
  EXPECT_FLOAT_EQ(dets[0].bbox.x, 0.25f); // (0 + 0.5) / 2
  EXPECT_FLOAT_EQ(dets[0].bbox.y, 0.25f); // (0 + 0.25) / 1
  EXPECT_EQ(dets[0].bbox.w, expectedExpScale(0.0f, 20, 64));
  EXPECT_EQ(dets[0].bbox.h, expectedExpScale(0.5f, 30, 32));
  EXPECT_EQ(dets[0].objectness, 0.9f);
  ASSERT_EQ(dets[0].prob.size(), 2u);
  EXPECT_EQ(dets[0].prob[0], 0.9f * 0.5f);
  EXPECT_EQ(dets[0].prob[1], 0.0f); // 0.18 <= 0.25

  // (cell 1, anchor 0), anchor (20, 30).
  EXPECT_FLOAT_EQ(dets[1].bbox.x, (1 + 0.75f) / 2);
  EXPECT_FLOAT_EQ(dets[1].bbox.y, 0.5f);
  EXPECT_EQ(dets[1].bbox.w, expectedExpScale(-0.5f, 20, 64));
  EXPECT_EQ(dets[1].prob[0], 0.3f);
  EXPECT_EQ(dets[1].prob[1], 0.3f * 0.9f);

  // (cell 1, anchor 1), anchor (40, 50).
  EXPECT_FLOAT_EQ(dets[2].bbox.x, (1 + 0.125f) / 2);
  EXPECT_FLOAT_EQ(dets[2].bbox.y, 1.0f);
  EXPECT_EQ(dets[2].bbox.w, expectedExpScale(0.5f, 40, 64));
  EXPECT_EQ(dets[2].bbox.h, expectedExpScale(0.75f, 50, 32));
  EXPECT_EQ(dets[2].prob[0], 0.0f); // 0.8 * 0.25 = 0.2
  EXPECT_EQ(dets[2].prob[1], 0.8f * 0.5f);

  // A second head appends after the first.
  getYoloDetections(y.head(), plainOptions(), dets);
  EXPECT_EQ(dets.size(), 6u);
  EXPECT_EQ(dets[3].bbox.x, dets[0].bbox.x);
}

TEST(DetectionDecodeTest, YoloNewCoords) {
  SmallYolo y;
  std::vector<Detection> dets;
  getYoloDetections(y.head(/*newCoords=*/true), plainOptions(), dets);
  ASSERT_EQ(dets.size(), 3u);
  // w = tw^2 * 4 * aw / net_w, no exp.
  EXPECT_FLOAT_EQ(dets[0].bbox.w, 0.0f);
  EXPECT_FLOAT_EQ(dets[0].bbox.h, 0.25f * 4 * 30 / 32);
  EXPECT_FLOAT_EQ(dets[1].bbox.w, 0.25f * 4 * 20 / 64);
  EXPECT_FLOAT_EQ(dets[2].bbox.w, 0.25f * 4 * 40 / 64);

  // pjreddie has no new_coords: the exp formula stays.
  std::vector<Detection> pj;
  DecodeOptions o = plainOptions(Flavor::PJReddie);
  o.imageW = 64; // image == net: the letterbox correction is the identity
  o.imageH = 32;
  getYoloDetections(y.head(/*newCoords=*/true), o, pj);
  ASSERT_EQ(pj.size(), 3u);
  EXPECT_EQ(pj[0].bbox.w, expectedExpScale(0.0f, 20, 64));
}

TEST(DetectionDecodeTest, LetterboxCorrection) {
  SmallYolo y;
  // A 768x576 image in a 320x320 letterbox: new_w 320, new_h 240, 40 rows
  // of padding at the top.
  DecodeOptions o = plainOptions(Flavor::PJReddie);
  o.letterbox = true; // pjreddie's tools always letterbox
  o.netW = o.netH = 320;
  o.imageW = 768;
  o.imageH = 576;
  std::vector<Detection> pj, ab, plain;
  getYoloDetections(y.head(), o, pj);
  o.flavor = Flavor::AlexeyAB;
  o.letterbox = true;
  getYoloDetections(y.head(), o, ab);
  o.letterbox = false;
  getYoloDetections(y.head(), o, plain);
  ASSERT_EQ(pj.size(), 3u);
  ASSERT_EQ(ab.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    const Box &p = plain[i].bbox;
    // x and w are untouched (no horizontal padding).
    EXPECT_FLOAT_EQ(pj[i].bbox.x, p.x);
    EXPECT_FLOAT_EQ(pj[i].bbox.w, p.w);
    EXPECT_NEAR(pj[i].bbox.y, (p.y - 40.0 / 320) / 0.75, 1e-6);
    EXPECT_NEAR(pj[i].bbox.h, p.h * 320.0 / 240, 1e-6);
    EXPECT_FLOAT_EQ(ab[i].bbox.y, pj[i].bbox.y);
    EXPECT_FLOAT_EQ(ab[i].bbox.h, pj[i].bbox.h);
  }
  EXPECT_NEAR(pj[0].bbox.y, (0.25 - 0.125) / 0.75, 1e-6);

  // pjreddie on an input that was resized, not letterboxed (qsim-run
  // --no-letterbox): no correction.
  std::vector<Detection> pjResized;
  o.flavor = Flavor::PJReddie;
  getYoloDetections(y.head(), o, pjResized);
  ASSERT_EQ(pjResized.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_FLOAT_EQ(pjResized[i].bbox.y, plain[i].bbox.y);
    EXPECT_FLOAT_EQ(pjResized[i].bbox.h, plain[i].bbox.h);
  }

  // Portrait image: the padding is horizontal (new_w = 576*320/768 = 240).
  o.letterbox = true;
  o.imageW = 576;
  o.imageH = 768;
  std::vector<Detection> portrait;
  getYoloDetections(y.head(), o, portrait);
  EXPECT_NEAR(portrait[1].bbox.x, (plain[1].bbox.x - 0.125) / 0.75, 1e-6);
  EXPECT_FLOAT_EQ(portrait[1].bbox.y, plain[1].bbox.y);

  // relative = false: pixels of the image.
  o.relative = false;
  std::vector<Detection> px;
  getYoloDetections(y.head(), o, px);
  EXPECT_NEAR(px[1].bbox.x, portrait[1].bbox.x * 576, 1e-3);
  EXPECT_NEAR(px[1].bbox.h, portrait[1].bbox.h * 768, 1e-3);
}

TEST(DetectionDecodeTest, RegionAlexeyABHwc) {
  // 2x1 cells, 2 anchors, 2 classes, HWC: (cell, anchor) blocks of 7.
  const int classes = 2, n = 2, e = classes + 5;
  std::vector<float> data(2 * n * e, 0.0f);
  auto at = [&](int cell, int a, int k) -> float & {
    return data[(cell * n + a) * e + k];
  };
  at(0, 0, 0) = 0.0f; // raw tx: sigma(0) = 0.5 at decode
  at(0, 0, 1) = 2.0f;
  at(0, 0, 2) = 0.5f;
  at(0, 0, 3) = -1.0f;
  at(0, 0, 4) = 0.9f; // already logistic
  at(0, 0, 5) = 0.5f;
  at(0, 0, 6) = 0.1f;
  at(1, 1, 0) = -1.0f;
  at(1, 1, 4) = 0.4f;
  at(1, 1, 5) = 1.0f;
  RegionHead head;
  head.data = data.data();
  head.w = 2;
  head.h = 1;
  head.classes = classes;
  head.num = n;
  head.anchors = {1.0f, 1.5f, 2.0f, 3.0f};
  head.layer = 3;
  DecodeOptions o = plainOptions();
  std::vector<Detection> dets;
  getRegionDetections(head, o, dets);
  // Every (cell, anchor) is a detection, cell-major, objectness forced to 1.
  ASSERT_EQ(dets.size(), 4u);
  for (const Detection &d : dets) {
    EXPECT_EQ(d.objectness, 1.0f);
    EXPECT_EQ(d.layer, 3);
  }
  auto sigma = [](float v) { return 1.0f / (1.0f + std::exp(-v)); };
  EXPECT_FLOAT_EQ(dets[0].bbox.x, 0.5f / 2);
  EXPECT_FLOAT_EQ(dets[0].bbox.y, sigma(2.0f));
  EXPECT_EQ(dets[0].bbox.w, expectedExpScale(0.5f, 1.0f, 2));
  EXPECT_EQ(dets[0].bbox.h, expectedExpScale(-1.0f, 1.5f, 1));
  EXPECT_EQ(dets[0].prob[0], 0.9f * 0.5f);
  EXPECT_EQ(dets[0].prob[1], 0.0f);
  // index 3 = cell 1, anchor 1 (anchors 2, 3).
  EXPECT_FLOAT_EQ(dets[3].bbox.x, (1 + sigma(-1.0f)) / 2);
  EXPECT_EQ(dets[3].bbox.w, expectedExpScale(0.0f, 2.0f, 2));
  EXPECT_EQ(dets[3].prob[0], 0.4f);
  // The zero-objectness boxes still get their (zero) probabilities.
  EXPECT_EQ(dets[1].prob, std::vector<float>({0.0f, 0.0f}));

  // classfix = -1 zeroes the scale below 0.5.
  head.classfix = -1;
  std::vector<Detection> fixed;
  getRegionDetections(head, o, fixed);
  EXPECT_EQ(fixed[0].prob[0], 0.9f * 0.5f);
  EXPECT_EQ(fixed[3].prob[0], 0.0f);
}

TEST(DetectionDecodeTest, RegionPJReddieChw) {
  // 2x1 cells, 2 anchors, coords 4, 1 class: E = 6 channels per anchor.
  const int area = 2, e = 6;
  std::vector<float> data(2 * e * area, 0.0f);
  auto at = [&](int a, int k, int cell) -> float & {
    return data[(a * e + k) * area + cell];
  };
  at(0, 0, 1) = 0.25f; // already logistic in pjreddie
  at(0, 1, 1) = 0.5f;
  at(0, 2, 1) = 0.5f;
  at(0, 4, 1) = 0.6f; // objectness
  at(0, 5, 1) = 0.5f; // class 0
  at(1, 4, 0) = 0.2f; // below thresh: objectness 0, no probs
  at(1, 5, 0) = 1.0f;
  at(1, 4, 1) = 0.7f;
  at(1, 5, 1) = 0.3f; // 0.21 <= thresh
  RegionHead head;
  head.data = data.data();
  head.w = 2;
  head.h = 1;
  head.classes = 1;
  head.num = 2;
  head.anchors = {1.0f, 1.0f, 3.0f, 2.0f};
  DecodeOptions o = plainOptions(Flavor::PJReddie);
  o.netW = o.netH = 64;
  o.imageW = o.imageH = 64; // square: the letterbox correction is identity
  std::vector<Detection> dets;
  getRegionDetections(head, o, dets);
  ASSERT_EQ(dets.size(), 4u);
  // Anchor-major: index a * area + cell.
  const Detection &a0c1 = dets[1];
  EXPECT_FLOAT_EQ(a0c1.bbox.x, (1 + 0.25f) / 2);
  EXPECT_FLOAT_EQ(a0c1.bbox.y, 0.5f);
  EXPECT_EQ(a0c1.bbox.w, expectedExpScale(0.5f, 1.0f, 2));
  EXPECT_EQ(a0c1.objectness, 0.6f);
  EXPECT_EQ(a0c1.prob[0], 0.6f * 0.5f);
  EXPECT_EQ(dets[0].objectness, 0.0f); // all-zero cell
  const Detection &a1c0 = dets[2];
  EXPECT_EQ(a1c0.objectness, 0.0f);
  EXPECT_EQ(a1c0.prob[0], 0.0f);
  EXPECT_EQ(a1c0.bbox.w, expectedExpScale(0.0f, 3.0f, 2));
  EXPECT_EQ(dets[3].objectness, 0.7f);
  EXPECT_EQ(dets[3].prob[0], 0.0f);
}

//===----------------------------------------------------------------------===//
// NMS
//===----------------------------------------------------------------------===//

TEST(DetectionNmsTest, CompactionOrderAndExclusion) {
  // objectness 0 at positions 1 and 3. Darknet swaps position 1 with the
  // last element (4), re-examines it, then swaps 3 with itself: the active
  // part is [0, 4, 2] and the tail [3, 1].
  std::vector<Detection> dets;
  dets.push_back(makeDet(0.1f, 0.1f, 0.1f, 0.1f, 0.5f, {0.5f}, 0));
  // Same box as 0 with a higher prob: it would suppress 0 if it took part.
  dets.push_back(makeDet(0.1f, 0.1f, 0.1f, 0.1f, 0.0f, {0.9f}, 1));
  dets.push_back(makeDet(0.5f, 0.5f, 0.1f, 0.1f, 0.5f, {0.5f}, 2));
  dets.push_back(makeDet(0.5f, 0.5f, 0.1f, 0.1f, 0.0f, {0.9f}, 3));
  dets.push_back(makeDet(0.9f, 0.9f, 0.1f, 0.1f, 0.5f, {0.5f}, 4));
  nmsSort(dets, 1, 0.45f);
  EXPECT_EQ(tags(dets), (std::vector<int>{0, 4, 2, 3, 1}));
  // Nothing was suppressed, and the excluded entries are untouched.
  for (const Detection &d : dets)
    EXPECT_GT(d.prob[0], 0.0f) << d.layer;
}

TEST(DetectionNmsTest, StableSortOnTies) {
  std::vector<Detection> dets;
  const float probs[] = {0.5f, 0.8f, 0.5f, 0.8f, 0.3f, 0.5f};
  for (int i = 0; i < 6; ++i) // far apart: no suppression
    dets.push_back(
        makeDet(0.1f * i + 0.05f, 0.5f, 0.01f, 0.01f, 0.9f, {probs[i]}, i));
  nmsSort(dets, 1, 0.45f);
  EXPECT_EQ(tags(dets), (std::vector<int>{1, 3, 0, 2, 5, 4}));
}

TEST(DetectionNmsTest, FinalOrderFollowsTheLastClass) {
  // Sorted by class 0 ([1, 2, 0]), then class 1: 2 first, then the class-1
  // ties 1 and 0 in their class-0 order.
  std::vector<Detection> dets;
  dets.push_back(makeDet(0.1f, 0.1f, 0.05f, 0.05f, 0.9f, {0.3f, 0.0f}, 0));
  dets.push_back(makeDet(0.5f, 0.5f, 0.05f, 0.05f, 0.9f, {0.9f, 0.0f}, 1));
  dets.push_back(makeDet(0.9f, 0.9f, 0.05f, 0.05f, 0.9f, {0.6f, 0.6f}, 2));
  nmsSort(dets, 2, 0.45f);
  EXPECT_EQ(tags(dets), (std::vector<int>{2, 1, 0}));
  // And with the last class all zero, the order is the class-0 order.
  std::vector<Detection> d2;
  d2.push_back(makeDet(0.1f, 0.1f, 0.05f, 0.05f, 0.9f, {0.3f, 0.0f}, 0));
  d2.push_back(makeDet(0.5f, 0.5f, 0.05f, 0.05f, 0.9f, {0.9f, 0.0f}, 1));
  d2.push_back(makeDet(0.9f, 0.9f, 0.05f, 0.05f, 0.9f, {0.6f, 0.0f}, 2));
  nmsSort(d2, 2, 0.45f);
  EXPECT_EQ(tags(d2), (std::vector<int>{1, 2, 0}));
}

TEST(DetectionNmsTest, SuppressionIsPerClass) {
  // IoU(A, B) = 0.038/0.042 > 0.45. Class 0: A (0.9) suppresses B; class 1:
  // B (0.7) suppresses A.
  std::vector<Detection> dets;
  dets.push_back(makeDet(0.5f, 0.5f, 0.2f, 0.2f, 0.9f, {0.9f, 0.3f}, 0));
  dets.push_back(makeDet(0.51f, 0.5f, 0.2f, 0.2f, 0.9f, {0.8f, 0.7f}, 1));
  // A distant box of class 0 is not affected.
  dets.push_back(makeDet(0.1f, 0.1f, 0.1f, 0.1f, 0.9f, {0.4f, 0.0f}, 2));
  nmsSort(dets, 2, 0.45f);
  // Final order: by class 1 (B, then A and 2 tied at 0 in class-0 order).
  ASSERT_EQ(tags(dets), (std::vector<int>{1, 0, 2}));
  EXPECT_EQ(dets[0].prob, (std::vector<float>{0.0f, 0.7f}));
  EXPECT_EQ(dets[1].prob, (std::vector<float>{0.9f, 0.0f}));
  EXPECT_EQ(dets[2].prob, (std::vector<float>{0.4f, 0.0f}));
  // Boxes and objectness are untouched.
  EXPECT_EQ(dets[0].bbox.x, 0.51f);
  EXPECT_EQ(dets[1].objectness, 0.9f);
}

TEST(DetectionNmsTest, StrictThreshold) {
  // IoU is exactly 0.5: not suppressed at 0.5, suppressed at 0.49.
  auto make = [] {
    std::vector<Detection> d;
    d.push_back(makeDet(1, 0.5f, 2, 1, 0.9f, {0.9f}, 0));
    d.push_back(makeDet(0.5f, 0.5f, 1, 1, 0.9f, {0.8f}, 1));
    return d;
  };
  auto d1 = make();
  nmsSort(d1, 1, 0.5f);
  EXPECT_EQ(d1[1].prob[0], 0.8f);
  auto d2 = make();
  nmsSort(d2, 1, 0.49f);
  EXPECT_EQ(d2[1].prob[0], 0.0f);
}

TEST(DetectionNmsTest, SuppressedBoxesDoNotSuppress) {
  // x intervals [0,1], [0.3,1.3], [0.6,1.6]: IoU(A,B) = IoU(B,C) = 0.7/1.3,
  // IoU(A,C) = 0.4/1.6. A removes B; B is then skipped, so C survives.
  std::vector<Detection> dets;
  dets.push_back(makeDet(0.5f, 0.5f, 1, 1, 0.9f, {0.9f}, 0));
  dets.push_back(makeDet(0.8f, 0.5f, 1, 1, 0.9f, {0.8f}, 1));
  dets.push_back(makeDet(1.1f, 0.5f, 1, 1, 0.9f, {0.7f}, 2));
  nmsSort(dets, 1, 0.45f);
  EXPECT_EQ(dets[0].prob[0], 0.9f);
  EXPECT_EQ(dets[1].prob[0], 0.0f);
  EXPECT_EQ(dets[2].prob[0], 0.7f);
}

TEST(DetectionNmsTest, DiouKinds) {
  // a = [-1,1]^2, b = [-0.5,1.5]x[-1,1]: IoU = 3/5 = 0.6; c^2 = 6.25 + 4,
  // d^2 = 0.25: DIoU(0.6) = 0.6 - (0.25/10.25)^0.6 ~ 0.4923,
  // DIoU(beta 1) = 0.6 - 0.0244 ~ 0.5756.
  auto make = [] {
    std::vector<Detection> d;
    d.push_back(makeDet(0, 0, 2, 2, 0.9f, {0.9f}, 0));
    d.push_back(makeDet(0.5f, 0, 2, 2, 0.9f, {0.8f}, 1));
    return d;
  };
  auto greedy = make();
  diouNmsSort(greedy, 1, 0.5f, NmsKind::Greedy, 1.0f); // beta unused
  EXPECT_EQ(greedy[1].prob[0], 0.8f);
  auto diou1 = make();
  diouNmsSort(diou1, 1, 0.5f, NmsKind::DIoU, 1.0f);
  EXPECT_EQ(diou1[1].prob[0], 0.0f);
  auto diou06 = make();
  diouNmsSort(diou06, 1, 0.5f, NmsKind::DIoU, 0.6f);
  EXPECT_EQ(diou06[1].prob[0], 0.8f);
  auto corners = make();
  diouNmsSort(corners, 1, 0.5f, NmsKind::Corners, 0.6f);
  EXPECT_EQ(corners[1].prob[0], 0.0f);
  auto plain = make();
  nmsSort(plain, 1, 0.5f);
  EXPECT_EQ(plain[1].prob[0], 0.0f);
  // Greedy at a lower threshold does suppress.
  auto greedyLow = make();
  diouNmsSort(greedyLow, 1, 0.45f, NmsKind::Greedy, 0.6f);
  EXPECT_EQ(greedyLow[1].prob[0], 0.0f);
}

/// Darknet's do_nms_sort / diounms_sort loop as written: every later box
/// against every box not yet suppressed (the specification that the
/// indexed NMS must equal).
void pairwiseNms(
    std::vector<Detection> &dets, int classes,
    const std::function<bool(const Box &, const Box &)> &suppress) {
  int k = (int)dets.size() - 1;
  for (int i = 0; i <= k; ++i)
    if (dets[i].objectness == 0) {
      std::swap(dets[i], dets[k]);
      --k;
      --i;
    }
  const int total = k + 1;
  for (int c = 0; c < classes; ++c) {
    std::stable_sort(dets.begin(), dets.begin() + total,
                     [c](const Detection &a, const Detection &b) {
                       return a.prob[c] > b.prob[c];
                     });
    for (int i = 0; i < total; ++i) {
      if (dets[i].prob[c] == 0)
        continue;
      for (int j = i + 1; j < total; ++j)
        if (suppress(dets[i].bbox, dets[j].bbox))
          dets[j].prob[c] = 0;
    }
  }
}

/// Random candidates: many small boxes spread out (as random weights give),
/// some large ones, and with `odd` also NaN, infinite, zero-sized and
/// inverted boxes and negative scores.
std::vector<Detection> randomCandidates(unsigned seed, int n, int classes,
                                        bool odd) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0, 1);
  std::vector<Detection> dets;
  for (int i = 0; i < n; ++i) {
    float w = u(rng) < 0.1f ? u(rng) : 0.02f + 0.05f * u(rng);
    float h = u(rng) < 0.1f ? u(rng) : 0.02f + 0.05f * u(rng);
    float x = u(rng), y = u(rng);
    std::vector<float> prob(classes);
    for (float &p : prob)
      p = u(rng) < 0.5f ? 0.0f : std::round(u(rng) * 20) / 20; // ties
    if (odd) {
      float r = u(rng);
      if (r < 0.02f)
        x = NAN;
      else if (r < 0.04f)
        w = INFINITY;
      else if (r < 0.06f)
        w = 0;
      else if (r < 0.08f)
        h = -h;
      else if (r < 0.10f)
        prob[0] = -0.5f;
    }
    dets.push_back(
        makeDet(x, y, w, h, u(rng) < 0.05f ? 0.0f : 0.5f, std::move(prob), i));
  }
  return dets;
}

TEST(DetectionNmsTest, IndexedNmsEqualsThePairwiseLoop) {
  const int classes = 3;
  for (unsigned seed = 1; seed <= 6; ++seed)
    for (float thresh : {0.45f, 0.0f, 0.2f, -1.0f, NAN}) {
      const bool odd = seed % 2 == 0;
      const int n = seed <= 2 ? 3000 : 400;
      auto expected = randomCandidates(seed, n, classes, odd);
      auto iou = expected;
      pairwiseNms(expected, classes, [thresh](const Box &a, const Box &b) {
        return boxIou(a, b) > thresh;
      });
      nmsSort(iou, classes, thresh);
      auto diouExpected = randomCandidates(seed, n, classes, odd);
      auto diou = diouExpected;
      pairwiseNms(diouExpected, classes, [thresh](const Box &a, const Box &b) {
        return boxDiou(a, b, 0.6f) > thresh;
      });
      diouNmsSort(diou, classes, thresh, NmsKind::DIoU, 0.6f);
      int zerosBefore = 0;
      for (const Detection &d : randomCandidates(seed, n, classes, odd))
        zerosBefore += (int)std::count(d.prob.begin(), d.prob.end(), 0.0f);
      for (auto [got, want] :
           {std::pair{&iou, &expected}, std::pair{&diou, &diouExpected}}) {
        ASSERT_EQ(got->size(), want->size());
        int zeros = 0;
        for (size_t i = 0; i < got->size(); ++i) {
          ASSERT_EQ((*got)[i].layer, (*want)[i].layer)
              << "seed " << seed << " thresh " << thresh << " at " << i;
          for (int c = 0; c < classes; ++c) {
            ASSERT_EQ((*got)[i].prob[c], (*want)[i].prob[c])
                << "seed " << seed << " thresh " << thresh << " box "
                << (*got)[i].layer << " class " << c;
            zeros += (*want)[i].prob[c] == 0;
          }
        }
        // Something was suppressed (nothing is, at a NaN threshold).
        if (std::isnan(thresh))
          EXPECT_EQ(zeros, zerosBefore);
        else
          EXPECT_GT(zeros, zerosBefore)
              << "seed " << seed << " thresh " << thresh;
      }
    }
}

//===----------------------------------------------------------------------===//
// Reports, top-k, names
//===----------------------------------------------------------------------===//

TEST(DetectionReportTest, OrderThresholdAndPixels) {
  std::vector<Detection> dets;
  // W = 101: left = 0.375 * 101 = 37.875 -> 37, right = 63.125 -> 63.
  dets.push_back(
      makeDet(0.5f, 0.5f, 0.25f, 0.5f, 0.9f, {0.0f, 0.6f, 0.25f}, 0));
  // Partly outside: left < 0 and bottom > H - 1 are clamped.
  dets.push_back(
      makeDet(0.05f, 0.875f, 0.2f, 0.5f, 0.8f, {0.7f, 0.8f, 0.3f}, 1));
  auto rep = reportDetections(dets, 101, 50, 0.25f);
  // (class, prob): (0, 0.7), (1, 0.8), (1, 0.6), (2, 0.3); 0.25 is not > 0.25.
  ASSERT_EQ(rep.size(), 4u);
  EXPECT_EQ(rep[0].classId, 0);
  EXPECT_EQ(rep[0].prob, 0.7f);
  EXPECT_EQ(rep[1].classId, 1);
  EXPECT_EQ(rep[1].prob, 0.8f);
  EXPECT_EQ(rep[2].classId, 1);
  EXPECT_EQ(rep[2].prob, 0.6f);
  EXPECT_EQ(rep[3].classId, 2);
  EXPECT_EQ(rep[3].prob, 0.3f);
  EXPECT_EQ(rep[2].objectness, 0.9f);
  EXPECT_EQ(rep[2].rel.w, 0.25f);

  EXPECT_EQ(rep[2].left, 37);
  EXPECT_EQ(rep[2].right, 63);
  EXPECT_EQ(rep[2].top, 12);    // 0.25 * 50 = 12.5
  EXPECT_EQ(rep[2].bottom, 37); // 0.75 * 50 = 37.5
  EXPECT_EQ(rep[1].left, 0);    // (0.05 - 0.1) * 101 = -5.05
  EXPECT_EQ(rep[1].right, 15);  // 0.15 * 101 = 15.15
  EXPECT_EQ(rep[1].top, 31);    // 0.625 * 50 = 31.25
  EXPECT_EQ(rep[1].bottom, 49); // 1.125 * 50 clamped to H - 1
}

TEST(DetectionReportTest, ClampsToTheImage) {
  // right = 0.5 px truncates to 0; a box beyond the right edge clamps both
  // ends to W - 1.
  std::vector<Detection> dets;
  dets.push_back(makeDet(0.0f, 0.5f, 0.0625f, 0.5f, 0.9f, {0.9f}, 0));
  dets.push_back(makeDet(1.5f, 0.5f, 0.25f, 0.5f, 0.9f, {0.8f}, 1));
  auto rep = reportDetections(dets, 16, 16, 0.25f);
  ASSERT_EQ(rep.size(), 2u);
  EXPECT_EQ(rep[0].left, 0);
  EXPECT_EQ(rep[0].right, 0); // 0.03125 * 16 = 0.5
  EXPECT_EQ(rep[1].left, 15);
  EXPECT_EQ(rep[1].right, 15);
}

TEST(DetectionTopKTest, DarknetTopK) {
  const float v[] = {0.9f, 0.3f, 0.5f, 0.5f, 0.1f};
  EXPECT_EQ(topK(v, 5, 1), (std::vector<int>{0}));
  // A new index moves down past the entries >= it: equal values keep the
  // lower index first.
  EXPECT_EQ(topK(v, 5, 3), (std::vector<int>{0, 2, 3}));
  EXPECT_EQ(topK(v, 5, 5), (std::vector<int>{0, 2, 3, 1, 4}));
  // k > n: only n entries.
  EXPECT_EQ(topK(v, 3, 5), (std::vector<int>{0, 2, 1}));
  EXPECT_TRUE(topK(v, 5, 0).empty());
  const float same[] = {1, 1, 1};
  EXPECT_EQ(topK(same, 3, 2), (std::vector<int>{0, 1}));
}

TEST(DetectionTopKTest, DisplacedEntriesPassOnlySmallerOnes) {
  // Darknet's top_k quirk: an entry pushed down by a larger value moves on
  // only past strictly smaller entries, so it lands after equal entries with
  // higher indices, or drops out. {0.5, 0.5, 0.9}, k = 2: 2 displaces 0,
  // which does not pass 1 (equal), and falls off the list.
  const float a[] = {0.5f, 0.5f, 0.9f};
  EXPECT_EQ(topK(a, 3, 2), (std::vector<int>{2, 1}));
  EXPECT_EQ(topK(a, 3, 3), (std::vector<int>{2, 1, 0}));
  const float b[] = {0.1f, 0.5f, 0.5f, 0.3f, 0.5f, 0.9f};
  EXPECT_EQ(topK(b, 6, 4), (std::vector<int>{5, 2, 4, 1}));
}

TEST(DetectionNamesTest, KeepsLinesVerbatim) {
  std::string path = writeTemp("qsim-names-test.names",
                               "person\nhersheys_cocoa \r\n\n two words\nlast");
  std::vector<std::string> names;
  std::string err;
  ASSERT_TRUE(readNames(path, names, err)) << err;
  EXPECT_EQ(names, (std::vector<std::string>{"person", "hersheys_cocoa ", "",
                                             " two words", "last"}));
  // A final newline does not add an empty name.
  path = writeTemp("qsim-names-test2.names", "a\nb\n");
  ASSERT_TRUE(readNames(path, names, err)) << err;
  EXPECT_EQ(names, (std::vector<std::string>{"a", "b"}));
}

TEST(DetectionNamesTest, MissingFile) {
  std::vector<std::string> names;
  std::string err;
  EXPECT_FALSE(readNames(::testing::TempDir() + "no/such.names", names, err));
  EXPECT_NE(err.find("such.names"), std::string::npos);
}

//===----------------------------------------------------------------------===//
// Darknet's golden detections
//===----------------------------------------------------------------------===//

namespace {

struct GoldenCase {
  const char *flavor, *model, *image, *names;
};

json readJson(const std::string &path) {
  std::ifstream in(path);
  if (!in)
    return json();
  return json::parse(in, nullptr, /*allow_exceptions=*/false);
}

struct MaxDiff {
  double prob = 0, objectness = 0, rel = 0;
  int px = 0;
  int64_t ulps = 0; // over prob, objectness and bbox_rel
};

/// Distance in float steps between ours and a golden value (the goldens are
/// printed with 9 significant digits, which round-trips a float).
int64_t ulpDistance(float ours, double golden) {
  float g = (float)golden;
  int32_t a, b;
  std::memcpy(&a, &ours, 4);
  std::memcpy(&b, &g, 4);
  if ((a < 0) != (b < 0))
    return ours == g ? 0 : INT64_MAX;
  return std::llabs((int64_t)a - (int64_t)b);
}

/// Compares our report with a golden list entry by entry.
void compareReport(const std::vector<ReportedDetection> &got, const json &want,
                   const std::vector<std::string> &names, MaxDiff &diff,
                   const std::string &what) {
  ASSERT_TRUE(want.is_array()) << what;
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    const json &w = want[i];
    const ReportedDetection &g = got[i];
    SCOPED_TRACE(what + " #" + std::to_string(i));
    int cls = w["class_id"].get<int>();
    EXPECT_EQ(g.classId, cls);
    if (cls >= 0 && cls < (int)names.size()) {
      EXPECT_EQ(names[cls], w["class_name"].get<std::string>());
    }
    double dp = std::fabs(g.prob - w["prob"].get<double>());
    double dobj = std::fabs(g.objectness - w["objectness"].get<double>());
    const json &r = w["bbox_rel"];
    double dr = std::max(std::max(std::fabs(g.rel.x - r["x"].get<double>()),
                                  std::fabs(g.rel.y - r["y"].get<double>())),
                         std::max(std::fabs(g.rel.w - r["w"].get<double>()),
                                  std::fabs(g.rel.h - r["h"].get<double>())));
    EXPECT_LE(dp, 1e-5);
    EXPECT_LE(dobj, 1e-5);
    EXPECT_LE(dr, 1e-5);
    const json &p = w["bbox_px"];
    int pd = std::max(std::max(std::abs(g.left - p["left"].get<int>()),
                               std::abs(g.top - p["top"].get<int>())),
                      std::max(std::abs(g.right - p["right"].get<int>()),
                               std::abs(g.bottom - p["bottom"].get<int>())));
    EXPECT_EQ(g.left, p["left"].get<int>());
    EXPECT_EQ(g.top, p["top"].get<int>());
    EXPECT_EQ(g.right, p["right"].get<int>());
    EXPECT_EQ(g.bottom, p["bottom"].get<int>());
    for (auto [o, gv] : {std::pair<float, double>{g.prob, w["prob"]},
                         {g.objectness, w["objectness"]},
                         {g.rel.x, r["x"]},
                         {g.rel.y, r["y"]},
                         {g.rel.w, r["w"]},
                         {g.rel.h, r["h"]}})
      diff.ulps = std::max(diff.ulps, ulpDistance(o, gv));
    diff.prob = std::max(diff.prob, dp);
    diff.objectness = std::max(diff.objectness, dobj);
    diff.rel = std::max(diff.rel, dr);
    diff.px = std::max(diff.px, pd);
  }
}

NmsKind nmsKindOf(const std::string &s) {
  if (s == "greedynms")
    return NmsKind::Greedy;
  if (s == "diounms")
    return NmsKind::DIoU;
  if (s == "cornersnms")
    return NmsKind::Corners;
  return NmsKind::Default;
}

class DetectionGoldenTest : public ::testing::TestWithParam<GoldenCase> {};

} // namespace

TEST_P(DetectionGoldenTest, DecodeNmsReport) {
  QSIM_REQUIRE_GOLDEN();
  const GoldenCase &gc = GetParam();
  const std::string dir = qsim::testenv::goldenDir() + "/" + gc.flavor + "/" +
                          gc.model + "/" + gc.image;
  if (!qsim::testenv::isDir(dir))
    GTEST_SKIP() << "no golden dir " << dir;
  json layers = readJson(dir + "/layers.json");
  json golden = readJson(dir + "/detections.json");
  ASSERT_TRUE(layers.is_object()) << dir;
  ASSERT_TRUE(golden.is_object()) << dir;

  std::vector<std::string> names;
  std::string err;
  ASSERT_TRUE(readNames(qsim::testenv::modelsDir() + "/darknet/" + gc.names,
                        names, err))
      << err;

  const bool pj = std::string(gc.flavor) == "pjreddie";
  DecodeOptions opts;
  opts.netW = layers["net"]["w"].get<int>();
  opts.netH = layers["net"]["h"].get<int>();
  opts.imageW = golden["image_w"].get<int>();
  opts.imageH = golden["image_h"].get<int>();
  opts.thresh = golden["thresh"].get<float>();
  opts.relative = true;
  opts.flavor = pj ? Flavor::PJReddie : Flavor::AlexeyAB;
  opts.letterbox = golden["get_network_boxes_letter"].get<int>() != 0;
  EXPECT_EQ(opts.letterbox, pj); // the AB cfgs here all have letter_box=0

  // Decode every [yolo] layer in layer order.
  std::vector<Tensor> outputs;
  std::vector<Detection> dets;
  int classes = 0;
  NmsKind kind = NmsKind::Default;
  int heads = 0;
  for (const json &l : layers["layers"]) {
    if (l["type"] != "yolo")
      continue;
    ASSERT_TRUE(l["file"].is_string()) << "yolo layer " << l["index"];
    Tensor t;
    ASSERT_TRUE(readNpy(dir + "/" + l["file"].get<std::string>(), t, err))
        << err;
    ASSERT_EQ(t.c(), l["output_shape"][0].get<int>());
    YoloHead head;
    head.data = t.f32();
    head.h = (int)t.h();
    head.w = (int)t.w();
    head.classes = l["classes"].get<int>();
    head.mask = l["mask"].get<std::vector<int>>();
    head.anchors = l["anchors"].get<std::vector<float>>();
    head.newCoords = l.value("new_coords", 0) != 0;
    head.layer = l["index"].get<int>();
    ASSERT_EQ(t.c(), (int64_t)head.mask.size() * (5 + head.classes));
    getYoloDetections(head, opts, dets);
    outputs.push_back(std::move(t));
    classes = head.classes;
    kind = nmsKindOf(l.value("nms_kind", std::string("default")));
    ++heads;
  }
  ASSERT_GE(heads, 1);
  EXPECT_EQ((int)dets.size(), golden["n_candidate_boxes"].get<int>());
  ASSERT_EQ((int)names.size(), classes);

  // do_nms_sort -> "detections".
  const float nmsThresh = golden["nms_thresh"].get<float>();
  std::vector<Detection> plain = dets;
  nmsSort(plain, classes, nmsThresh);
  MaxDiff diff;
  compareReport(reportDetections(plain, opts.imageW, opts.imageH, opts.thresh),
                golden["detections"], names, diff, "detections");

  // diounms_sort -> "detector_test_nms", for the greedynms cfgs.
  size_t nDiou = 0;
  if (golden.contains("detector_test_nms")) {
    const json &t = golden["detector_test_nms"];
    EXPECT_EQ(kind, nmsKindOf(t["nms_kind"].get<std::string>()));
    EXPECT_NE(kind, NmsKind::Default);
    std::vector<Detection> d = dets;
    diouNmsSort(d, classes, nmsThresh, kind, t["beta_nms"].get<float>());
    compareReport(reportDetections(d, opts.imageW, opts.imageH, opts.thresh),
                  t["detections"], names, diff, "detector_test_nms");
    nDiou = t["detections"].size();
  } else {
    EXPECT_EQ(kind, NmsKind::Default);
  }
  std::printf("[ golden   ] %s/%s/%s: %zu candidates, %zu + %zu detections, "
              "max |dprob| %.3g, |dobj| %.3g, |dbbox_rel| %.3g (%lld float "
              "steps), |dpx| %d\n",
              gc.flavor, gc.model, gc.image, dets.size(),
              golden["detections"].size(), nDiou, diff.prob, diff.objectness,
              diff.rel, (long long)diff.ulps, diff.px);
}

INSTANTIATE_TEST_SUITE_P(
    Darknet, DetectionGoldenTest,
    ::testing::Values(
        GoldenCase{"alexeyab", "yolov3-tiny-aix2022", "dog", "yolohw.names"},
        GoldenCase{"alexeyab", "yolov3-tiny-aix2022",
                   "CAPP_testset_close_10000", "yolohw.names"},
        GoldenCase{"alexeyab", "yolov4-tiny-aix2023", "dog", "yolohw.names"},
        GoldenCase{"alexeyab", "yolov4-tiny-aix2023",
                   "CAPP_testset_close_10000", "yolohw.names"},
        GoldenCase{"alexeyab", "MobileNetV2-YOLOv3-Nano-coco", "dog",
                   "coco.names"},
        GoldenCase{"alexeyab", "yolo-fastest-1.1-xl", "dog", "coco.names"},
        GoldenCase{"pjreddie", "yolov3-tiny-aix2022", "dog", "yolohw.names"}),
    [](const ::testing::TestParamInfo<GoldenCase> &info) {
      std::string s = std::string(info.param.flavor) + "_" + info.param.model +
                      "_" + info.param.image;
      for (char &c : s)
        if (!std::isalnum((unsigned char)c))
          c = '_';
      return s;
    });
