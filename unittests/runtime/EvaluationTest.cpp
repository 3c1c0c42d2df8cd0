//===- EvaluationTest.cpp - mAP, label files, label paths ----------------===//
//
// Hand-built cases with AP computed by hand from docs/darknet.md §R7
// (all-point and K-point, division by all classes, matching rules, the
// summary line), label reading and Darknet's image -> label path rules; with
// the real data, the GT counts of MAP.md.
//
//===----------------------------------------------------------------------===//

#include "qsim/Runtime/Evaluation.h"

#include "TestEnv.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>

using namespace qsim::rt;
namespace fs = std::filesystem;

namespace {

Detection det(Box b, std::vector<float> prob) {
  Detection d;
  d.bbox = b;
  d.objectness = 1;
  d.prob = std::move(prob);
  return d;
}

GroundTruth gt(int cls, Box b) {
  GroundTruth g;
  g.classId = cls;
  g.box = b;
  return g;
}

std::string writeTemp(const std::string &name, const std::string &text) {
  std::string path = ::testing::TempDir() + name;
  std::ofstream out(path, std::ios::binary);
  out << text;
  return path;
}

// Two well separated GT boxes and a box overlapping neither.
const Box kA{0.25f, 0.25f, 0.2f, 0.2f};
const Box kB{0.75f, 0.75f, 0.2f, 0.2f};
const Box kNowhere{0.25f, 0.75f, 0.2f, 0.2f};

/// 2 GT, detections TP (0.9), FP (0.8), TP (0.7) after sorting.
MapEvaluator twoGtThreeDets() {
  MapEvaluator ev(1);
  // Array order differs from the p order: the global sort decides.
  ev.addImage({det(kB, {0.7f}), det(kNowhere, {0.8f}), det(kA, {0.9f})},
              {gt(0, kA), gt(0, kB)});
  return ev;
}

} // namespace

//===----------------------------------------------------------------------===//
// mAP
//===----------------------------------------------------------------------===//

TEST(EvaluationMapTest, HandComputedAllPointAp) {
  // Sorted: TP, FP, TP -> precision 1, 1/2, 2/3; recall 1/2, 1/2, 1.
  // Step 9: R = 1, P = 2/3; rank 1: P = 2/3, AP += (1 - 1/2) * 2/3, R = 1/2;
  // rank 0: P = 1, AP += 0; finally AP += 1/2 * 1. AP = 1/3 + 1/2 = 5/6.
  MapResult r = twoGtThreeDets().compute();
  ASSERT_EQ(r.perClass.size(), 1u);
  EXPECT_NEAR(r.perClass[0].ap, 5.0 / 6.0, 1e-12);
  EXPECT_NEAR(r.map, 5.0 / 6.0, 1e-12);
  EXPECT_EQ(r.perClass[0].tp, 2);
  EXPECT_EQ(r.perClass[0].fp, 1);
  EXPECT_EQ(r.perClass[0].groundTruth, 2);
  EXPECT_EQ(r.images, 1);
  EXPECT_EQ(r.groundTruth, 2);
}

TEST(EvaluationMapTest, KPointInterpolation) {
  MapEvaluator ev = twoGtThreeDets();
  // 11 points: r_t = 0 .. 0.5 (6 points) see precision 1, r_t = 0.6 .. 1
  // (5 points) only the last record (2/3).
  EXPECT_NEAR(ev.compute(0.5f, 11).map, (6 + 5 * 2.0 / 3.0) / 11, 1e-12);
  // 101 points: 51 at 1, 50 at 2/3.
  EXPECT_NEAR(ev.compute(0.5f, 101).map, (51 + 50 * 2.0 / 3.0) / 101, 1e-12);
  // Darknet divides by K - 1 = 0 for K = 1: the recall level is NaN and
  // matches nothing.
  EXPECT_EQ(ev.compute(0.5f, 1).map, 0.0);
}

TEST(EvaluationMapTest, DividesByAllClasses) {
  // Four classes, only class 1 present and found perfectly.
  MapEvaluator ev(4);
  ev.addImage({det(kA, {0, 0.9f, 0, 0})}, {gt(1, kA)});
  MapResult r = ev.compute();
  ASSERT_EQ(r.perClass.size(), 4u);
  EXPECT_DOUBLE_EQ(r.perClass[1].ap, 1.0);
  EXPECT_EQ(r.perClass[0].ap, 0.0);
  EXPECT_EQ(r.perClass[2].groundTruth, 0);
  EXPECT_DOUBLE_EQ(r.map, 0.25);
}

TEST(EvaluationMapTest, RecordsPerClassAndAcrossImages) {
  // One class-0 GT per image. Image 0: a TP at 0.6 that also has a class-1
  // prob (a second record, an FP of class 1). Image 1: an FP at 0.9 and a TP
  // at 0.3. Sorted class 0: FP, TP, TP -> precision 0, 1/2, 2/3, recall 0,
  // 1/2, 1: AP = 1/2 * 2/3 + 1/2 * 2/3 = 2/3.
  MapEvaluator ev(2);
  ev.addImage({det(kA, {0.6f, 0.4f})}, {gt(0, kA)});
  ev.addImage({det(kB, {0.3f, 0}), det(kNowhere, {0.9f, 0})}, {gt(0, kB)});
  MapResult r = ev.compute();
  EXPECT_NEAR(r.perClass[0].ap, 2.0 / 3.0, 1e-12);
  EXPECT_EQ(r.perClass[0].tp, 2);
  EXPECT_EQ(r.perClass[0].fp, 1);
  EXPECT_EQ(r.perClass[1].tp, 0);
  EXPECT_EQ(r.perClass[1].fp, 1);
  EXPECT_EQ(r.perClass[1].ap, 0.0);
  EXPECT_NEAR(r.map, 1.0 / 3.0, 1e-12);
  EXPECT_EQ(r.images, 2);
  EXPECT_EQ(r.groundTruth, 2);
}

TEST(EvaluationMapTest, MissedGroundTruthLowersRecall) {
  // Image 1 has a GT and no detections: the single TP reaches recall 1/2.
  MapEvaluator ev(1);
  ev.addImage({det(kA, {0.9f})}, {gt(0, kA)});
  ev.addImage({}, {gt(0, kB)});
  EXPECT_NEAR(ev.compute().map, 0.5, 1e-12);
}

TEST(EvaluationMapTest, NoRematchingToTheSecondBestGt) {
  // GT A and B overlap (IoU 0.78). Both detections match A best; the second
  // also has IoU 0.86 with B but is not re-matched: an FP, and B stays
  // missed. Precision 1, 1/2 at recall 1/2, 1/2: AP = 1/2.
  Box a{0.5f, 0.5f, 0.4f, 0.4f}, b{0.55f, 0.5f, 0.4f, 0.4f};
  Box d2{0.52f, 0.5f, 0.4f, 0.4f};
  ASSERT_GT(boxIou(d2, b), 0.5f);
  ASSERT_GT(boxIou(d2, a), boxIou(d2, b));
  MapEvaluator ev(1);
  ev.addImage({det(a, {0.9f}), det(d2, {0.8f})}, {gt(0, a), gt(0, b)});
  MapResult r = ev.compute();
  EXPECT_EQ(r.perClass[0].tp, 1);
  EXPECT_EQ(r.perClass[0].fp, 1);
  EXPECT_NEAR(r.map, 0.5, 1e-12);
}

TEST(EvaluationMapTest, FirstGtOnEqualIou) {
  // The first detection has IoU 1/3 with both GTs (exact binary fractions)
  // and takes the first; the second then matches only GT 1: two TPs. Taking
  // the last GT on ties would leave the second detection without a GT.
  Box g0{0.375f, 0.5f, 0.25f, 0.25f}, g1{0.625f, 0.5f, 0.25f, 0.25f};
  Box between{0.5f, 0.5f, 0.25f, 0.25f};
  ASSERT_EQ(boxIou(between, g0), boxIou(between, g1));
  MapEvaluator ev(1);
  ev.addImage({det(between, {0.9f}), det(g1, {0.8f})}, {gt(0, g0), gt(0, g1)});
  MapResult r = ev.compute(0.3f);
  EXPECT_EQ(r.perClass[0].tp, 2);
  EXPECT_EQ(r.perClass[0].fp, 0);
  EXPECT_DOUBLE_EQ(r.map, 1.0);
}

TEST(EvaluationMapTest, StrictIouThreshold) {
  // IoU exactly 0.5: not a match at 0.5, a match at 0.49.
  Box g{1, 0.5f, 2, 1}, d{0.5f, 0.5f, 1, 1};
  ASSERT_EQ(boxIou(d, g), 0.5f);
  MapEvaluator ev(1);
  ev.addImage({det(d, {0.9f})}, {gt(0, g)});
  EXPECT_EQ(ev.compute(0.5f).map, 0.0);
  EXPECT_EQ(ev.compute(0.5f).perClass[0].fp, 1);
  EXPECT_DOUBLE_EQ(ev.compute(0.49f).map, 1.0);
}

TEST(EvaluationMapTest, ClassMustMatch) {
  MapEvaluator ev(2);
  ev.addImage({det(kA, {0, 0.9f})}, {gt(0, kA)});
  MapResult r = ev.compute();
  EXPECT_EQ(r.perClass[0].ap, 0.0);
  EXPECT_EQ(r.perClass[1].fp, 1);
  EXPECT_EQ(r.map, 0.0);
}

TEST(EvaluationMapTest, SummaryLineAtThresh) {
  // Array order: a 0.1 record on GT 0, then a 0.9 record on GT 0, then a 0.5
  // record on GT 1 and a 0.2 record nowhere. The summary line uses the
  // unsorted records with p > 0.25: the 0.9 one is an FP because an earlier
  // record of the image (p 0.1) already has GT 0; the 0.5 one is a TP.
  Box nearB{0.77f, 0.75f, 0.2f, 0.2f};
  const float iouB = boxIou(nearB, kB);
  MapEvaluator ev(1);
  ev.addImage({det(kA, {0.1f}), det(kA, {0.9f}), det(nearB, {0.5f}),
               det(kNowhere, {0.2f})},
              {gt(0, kA), gt(0, kB)});
  MapResult r = ev.compute(0.5f, 0, 0.25f);
  EXPECT_EQ(r.tp, 1);
  EXPECT_EQ(r.fp, 1);
  EXPECT_EQ(r.fn, 1);
  EXPECT_FLOAT_EQ(r.precision, 0.5);
  EXPECT_FLOAT_EQ(r.recall, 0.5);
  EXPECT_FLOAT_EQ(r.f1, 0.5);
  EXPECT_FLOAT_EQ(r.avgIou, iouB / 2);
  // The AP side sorts first: 0.9 TP, 0.5 TP, 0.2 FP, 0.1 FP -> AP 1.
  EXPECT_EQ(r.perClass[0].tp, 2);
  EXPECT_EQ(r.perClass[0].fp, 2);
  EXPECT_DOUBLE_EQ(r.map, 1.0);
  // With thresh 0.05 every record counts: TP, FP (GT 0 again), TP, FP.
  MapResult low = ev.compute(0.5f, 0, 0.05f);
  EXPECT_EQ(low.tp, 2);
  EXPECT_EQ(low.fp, 2);
  EXPECT_EQ(low.fn, 0);
  EXPECT_FLOAT_EQ(low.avgIou, (1.0f + iouB) / 4);
}

TEST(EvaluationMapTest, MapRange) {
  // IoU 0.21/0.29 = 0.724: a match for 0.50 .. 0.70 (5 of 10 thresholds).
  Box g{0.5f, 0.5f, 0.5f, 0.5f}, d{0.58f, 0.5f, 0.5f, 0.5f};
  ASSERT_NEAR(boxIou(d, g), 0.21 / 0.29, 1e-5);
  MapEvaluator ev(1);
  ev.addImage({det(d, {0.9f})}, {gt(0, g)});
  EXPECT_DOUBLE_EQ(ev.compute(0.7f).map, 1.0);
  EXPECT_EQ(ev.compute(0.75f).map, 0.0);
  EXPECT_DOUBLE_EQ(ev.mapRange(), 0.5);

  MapEvaluator perfect(1);
  perfect.addImage({det(g, {0.9f})}, {gt(0, g)});
  EXPECT_DOUBLE_EQ(perfect.mapRange(), 1.0);
}

TEST(EvaluationMapTest, NoDetections) {
  MapEvaluator ev(3);
  ev.addImage({}, {gt(0, kA), gt(2, kB)});
  MapResult r = ev.compute();
  EXPECT_EQ(r.map, 0.0);
  EXPECT_EQ(r.tp, 0);
  EXPECT_EQ(r.fp, 0);
  EXPECT_EQ(r.fn, 2);
  EXPECT_EQ(r.perClass[2].groundTruth, 1);
}

//===----------------------------------------------------------------------===//
// Label files and paths
//===----------------------------------------------------------------------===//

TEST(EvaluationLabelTest, ReadsUntilFirstMalformedLine) {
  std::string path =
      writeTemp("qsim-labels-malformed.txt", "3 0.5 0.25 0.125 0.75\n"
                                             "1 0.1 0.2 0.3 0.4\n"
                                             "x 0.5 0.5 0.1 0.1\n"
                                             "2 0.5 0.5 0.1 0.1\n");
  std::vector<GroundTruth> out;
  bool missing = true;
  std::string err;
  ASSERT_TRUE(readYoloLabels(path, out, missing, err)) << err;
  EXPECT_FALSE(missing);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].classId, 3);
  EXPECT_EQ(out[0].box.x, 0.5f);
  EXPECT_EQ(out[0].box.y, 0.25f);
  EXPECT_EQ(out[0].box.w, 0.125f);
  EXPECT_EQ(out[0].box.h, 0.75f);
  EXPECT_EQ(out[1].classId, 1);
  EXPECT_EQ(out[1].box.h, 0.4f);
}

TEST(EvaluationLabelTest, CrLfAndDarknetTokenStream) {
  std::vector<GroundTruth> out;
  bool missing = false;
  std::string err;
  // CRLF line ends (the CAPP labels have them).
  std::string crlf = writeTemp("qsim-labels-crlf.txt",
                               "12 0.1 0.2 0.3 0.4\r\n13 0.5 0.6 0.7 0.8\r\n");
  ASSERT_TRUE(readYoloLabels(crlf, out, missing, err)) << err;
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].classId, 13);
  EXPECT_EQ(out[1].box.h, 0.8f);
  // read_boxes uses fscanf("%d %f %f %f %f"): line breaks are whitespace, so
  // a box split over two lines still reads as one.
  std::string split =
      writeTemp("qsim-labels-split.txt", "4 0.5 0.5\n0.25 0.5\n");
  ASSERT_TRUE(readYoloLabels(split, out, missing, err)) << err;
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].classId, 4);
  EXPECT_EQ(out[0].box.w, 0.25f);
  // An empty file has no objects and is not "missing".
  std::string empty = writeTemp("qsim-labels-empty.txt", "");
  ASSERT_TRUE(readYoloLabels(empty, out, missing, err)) << err;
  EXPECT_TRUE(out.empty());
  EXPECT_FALSE(missing);
}

TEST(EvaluationLabelTest, MissingFileMeansNoObjects) {
  std::vector<GroundTruth> out{gt(1, kA)};
  bool missing = false;
  std::string err;
  EXPECT_TRUE(readYoloLabels(::testing::TempDir() + "no/such/labels.txt", out,
                             missing, err));
  EXPECT_TRUE(missing);
  EXPECT_TRUE(out.empty());
}

TEST(EvaluationLabelTest, DarknetLabelPathRules) {
  auto lp = [](const std::string &p) { return labelPathForImage(p, ""); };
  EXPECT_EQ(lp("/d/coco/images/train2017/000000000009.jpg"),
            "/d/coco/labels/train2017/000000000009.txt");
  EXPECT_EQ(lp("/d/coco/images/val2014/a.png"), "/d/coco/labels/val2014/a.txt");
  EXPECT_EQ(lp("/d/VOC2007/JPEGImages/000005.JPEG"),
            "/d/VOC2007/labels/000005.txt");
  EXPECT_EQ(lp("C:\\d\\images\\val2017\\a.bmp"),
            "C:\\d\\labels\\val2017\\a.txt");
  EXPECT_EQ(lp("C:\\d\\JPEGImages\\a.JPG"), "C:\\d\\labels\\a.txt");
  // A bare /images/ is not replaced: the label sits next to the image.
  EXPECT_EQ(lp("/d/capp/images/CAPP_1.jpg"), "/d/capp/images/CAPP_1.txt");
  EXPECT_EQ(lp("/d/capp/CAPP_1.jpg"), "/d/capp/CAPP_1.txt");
  // Only the first occurrence of a directory pattern.
  EXPECT_EQ(lp("/x/JPEGImages/JPEGImages/a.jpg"), "/x/labels/JPEGImages/a.txt");
  // Leading/trailing blanks are trimmed, then the extension replaced.
  EXPECT_EQ(lp(" \t/d/a.jpeg \t"), "/d/a.txt");
  // Only a final extension; unknown extensions stay.
  EXPECT_EQ(lp("/d/a.jpg.png"), "/d/a.jpg.txt");
  EXPECT_EQ(lp("/d/a.jpg.d/b.ppm"), "/d/a.jpg.d/b.txt");
  EXPECT_EQ(lp("/d/a.gif"), "/d/a.gif");
  EXPECT_EQ(lp("/d/a.Jpg"), "/d/a.Jpg");
  EXPECT_EQ(lp("/d/a.TIFF"), "/d/a.txt");
}

TEST(EvaluationLabelTest, LabelsDirOverride) {
  EXPECT_EQ(labelPathForImage("/d/images/train2017/a.b.jpg", "/lbl"),
            "/lbl/a.b.txt");
  EXPECT_EQ(labelPathForImage("img.png", "/lbl/"), "/lbl/img.txt");
}

TEST(EvaluationLabelTest, SharedDataGroundTruthCounts) {
  QSIM_REQUIRE_DATA();
  // MAP.md: CAPP subset 58 images / 749 GT (labels next to the images);
  // coco128 128 images / 929 GT with two label files missing.
  struct Set {
    std::string dir;
    int images, truth, missing;
  };
  const std::string data = qsim::testenv::dataDir();
  for (const Set &s : {Set{data + "/capp-aix-subset", 58, 749, 0},
                       Set{data + "/coco128/images/train2017", 128, 929, 2}}) {
    SCOPED_TRACE(s.dir);
    if (!qsim::testenv::isDir(s.dir))
      GTEST_SKIP() << "no " << s.dir;
    std::vector<std::string> imgs;
    for (const auto &e : fs::directory_iterator(s.dir))
      if (e.path().extension() == ".jpg")
        imgs.push_back(e.path().string());
    std::sort(imgs.begin(), imgs.end());
    int truth = 0, missingCount = 0;
    for (const std::string &img : imgs) {
      std::vector<GroundTruth> out;
      bool missing = false;
      std::string err;
      ASSERT_TRUE(readYoloLabels(labelPathForImage(img, ""), out, missing, err))
          << err;
      truth += (int)out.size();
      missingCount += missing;
    }
    EXPECT_EQ((int)imgs.size(), s.images);
    EXPECT_EQ(truth, s.truth);
    EXPECT_EQ(missingCount, s.missing);
  }
}
