//===- RunLibraryTest.cpp - qsim-run's run library
//-------------------------===//
//
// The pieces qsim-run, the step session and the studio's children share:
// tensor statistics, series summaries and median timing, detection
// matching, a comparison's summary (a model against itself, against a
// changed copy, against a restructured model) and its printed table.
//
//===----------------------------------------------------------------------===//

#include "qsim/Evaluation/ModelRun.h"
#include "qsim/Evaluation/RunReport.h"
#include "qsim/Support/Diagnostics.h"

#include "../QSimModelTest.h"

#include <cmath>
#include <gtest/gtest.h>

using namespace qsim;
using namespace qsim::eval;

namespace {

TEST(RunStatistics, TensorStatsOfKnownValues) {
  std::vector<float> v = {-2.0f, 0.0f, 1.0f, 3.0f, 0.0f, 4.0f};
  TensorStats s = computeTensorStats(v);
  EXPECT_EQ(s.count, 6);
  EXPECT_EQ(s.zeros, 2);
  EXPECT_EQ(s.min, -2.0f);
  EXPECT_EQ(s.max, 4.0f);
  EXPECT_DOUBLE_EQ(s.mean, 1.0);
  // Population variance: (9 + 1 + 0 + 4 + 1 + 9) / 6 = 4.
  EXPECT_DOUBLE_EQ(s.std, 2.0);
  EXPECT_DOUBLE_EQ(s.zeroPercent(), 100.0 / 3);
}

TEST(RunStatistics, TensorStatsOfNothingAndOfAConstant) {
  TensorStats none = computeTensorStats({});
  EXPECT_EQ(none.count, 0);
  EXPECT_EQ(none.min, 0.0f);
  EXPECT_EQ(none.max, 0.0f);
  EXPECT_EQ(none.mean, 0.0);
  EXPECT_EQ(none.zeroPercent(), 0.0);
  // A constant never gets a negative variance from rounding.
  std::vector<float> c(1000, 0.1f);
  TensorStats s = computeTensorStats(c);
  EXPECT_GE(s.std, 0.0);
  EXPECT_LT(s.std, 1e-6);
}

TEST(RunStatistics, SeriesSummary) {
  SeriesSummary s = summarizeSeries({2.0, 8.0, 5.0});
  EXPECT_DOUBLE_EQ(s.mean, 5.0);
  EXPECT_DOUBLE_EQ(s.max, 8.0);
  EXPECT_DOUBLE_EQ(s.min, 2.0);
  SeriesSummary none = summarizeSeries({});
  EXPECT_EQ(none.mean, 0.0);
  EXPECT_EQ(none.max, 0.0);
}

TEST(RunStatistics, MedianTiming) {
  EXPECT_EQ(medianOf({}), 0.0);
  EXPECT_EQ(medianOf({7.0}), 7.0);
  EXPECT_EQ(medianOf({9.0, 1.0, 5.0}), 5.0);
  // Even counts: the upper of the two middle values.
  EXPECT_EQ(medianOf({4.0, 1.0, 3.0, 2.0}), 3.0);
  // An outlier does not move it.
  EXPECT_EQ(medianOf({1.0, 1.1, 1.2, 1000.0, 0.9}), 1.1);
}

rt::ReportedDetection detection(int cls, float x, float y, float w, float h) {
  rt::ReportedDetection d;
  d.classId = cls;
  d.rel = {x, y, w, h};
  return d;
}

TEST(RunComparison, DetectionsMatchOneToOneBySameClassAndIoU) {
  std::vector<rt::ReportedDetection> ref = {
      detection(0, 0.5f, 0.5f, 0.2f, 0.2f),
      detection(0, 0.5f, 0.5f, 0.2f, 0.2f), // the same box twice
      detection(1, 0.2f, 0.2f, 0.1f, 0.1f)};
  std::vector<rt::ReportedDetection> test = {
      detection(0, 0.51f, 0.5f, 0.2f, 0.2f), // IoU 0.9 with ref[0]
      detection(1, 0.8f, 0.8f, 0.1f, 0.1f),  // right class, elsewhere
      detection(2, 0.2f, 0.2f, 0.1f, 0.1f)}; // right box, other class
  // ref[1] cannot reuse test[0]; nothing else overlaps in its class.
  EXPECT_EQ(countMatchedDetections(ref, test), 1u);
  EXPECT_EQ(countMatchedDetections(ref, ref), 3u);
  EXPECT_EQ(countMatchedDetections({}, test), 0u);
  // IoU just under 0.5 does not match: half-overlapping boxes (1/3).
  EXPECT_EQ(countMatchedDetections({detection(0, 0.5f, 0.5f, 0.2f, 0.2f)},
                                   {detection(0, 0.6f, 0.5f, 0.2f, 0.2f)}),
            0u);
}

// A detector (conv, head conv, yolo) and the same with one more layer
// before the head: a "restructured" model whose layers do not correspond.
const std::string kBody = "[net]\nwidth=16\nheight=16\nchannels=3\n"
                          "[convolutional]\nfilters=8\nsize=3\npad=1\n"
                          "activation=leaky\n";
const std::string kHead = "[convolutional]\nfilters=14\nsize=1\n"
                          "activation=linear\n[yolo]\nmask=0,1\n"
                          "anchors=4,6, 12,10\nclasses=2\nnum=2\n";
const std::string kDetector = kBody + kHead;
const std::string kDeeper =
    kBody + "[convolutional]\nfilters=8\nsize=1\nactivation=leaky\n" + kHead;

class RunLibrary : public testenv::QSimModelTest {
protected:
  static rt::Image image(int w, int h) {
    rt::Image im;
    im.w = w, im.h = h, im.c = 3;
    im.data.resize((size_t)w * h * 3);
    for (size_t i = 0; i < im.data.size(); ++i)
      im.data[i] = (float)((i * 37) % 101) / 100.0f;
    return im;
  }
  /// `model` compared against `reference` over two images.
  ComparisonReport compare(mlir::ModuleOp model, mlir::ModuleOp reference,
                           RunOptions o = {}) {
    o.inference.thresh = 0.01f;
    std::string error;
    auto run = ModelRun::create(model, o);
    EXPECT_TRUE(run);
    EXPECT_TRUE(succeeded(run->compareWith(reference, "float.mlirbc")));
    for (auto [w, h] : {std::pair{20, 16}, {16, 24}}) {
      InferenceResult r;
      EXPECT_TRUE(run->runImage("img.ppm", image(w, h), r, error)) << error;
    }
    return *run->comparison();
  }
};

TEST_F(RunLibrary, ComparisonOfAModelWithItselfIsExact) {
  auto m = import(kDetector, 3), same = import(kDetector, 3);
  ComparisonReport c = compare(*m, *same);
  EXPECT_EQ(c.against, "float.mlirbc");
  EXPECT_EQ(c.images, 2u);
  EXPECT_FALSE(c.outputsOnly);
  ASSERT_EQ(c.rows.size(), 3u); // conv, conv, yolo
  for (const ComparisonRow &row : c.rows) {
    EXPECT_TRUE(std::isinf(row.error.sqnrDb()) && row.error.sqnrDb() > 0);
    EXPECT_DOUBLE_EQ(row.error.cosine(), 1.0);
    EXPECT_EQ(row.error.maxAbsErr, 0.0);
    EXPECT_EQ(row.error.clipped, 0);
    EXPECT_TRUE(row.millis && row.referenceMillis);
  }
  EXPECT_EQ(c.rows[0].layer.kind, "convolutional");
  EXPECT_EQ(c.rows[2].layer.kind, "yolo");
  EXPECT_EQ(c.rows[0].layer.precision, "fp32");
  // Every detection of the reference is matched by its twin.
  EXPECT_GT(c.referenceDetections, 0u);
  EXPECT_EQ(c.matchedDetections, c.referenceDetections);
  EXPECT_EQ(c.detections, c.referenceDetections);
  ASSERT_TRUE(c.weightBytes && c.referenceWeightBytes);
  EXPECT_EQ(*c.weightBytes, *c.referenceWeightBytes);
  EXPECT_FALSE(c.map); // no labels
}

TEST_F(RunLibrary, ComparisonAccumulatesErrorsOfAChangedModel) {
  auto m = import(kDetector, 3), other = import(kDetector, 4);
  ComparisonReport c = compare(*m, *other);
  ASSERT_EQ(c.rows.size(), 3u);
  const LayerComparison &e = c.rows[0].error;
  // Two images of 8 x 16 x 16 outputs.
  EXPECT_EQ(e.count, 2 * 8 * 16 * 16);
  EXPECT_GT(e.maxAbsErr, 0.0);
  EXPECT_TRUE(std::isfinite(e.sqnrDb()));
  EXPECT_LT(e.cosine(), 1.0);
  EXPECT_LE(c.matchedDetections, c.referenceDetections);
}

TEST_F(RunLibrary, RestructuredModelsCompareTheirOutputs) {
  auto m = import(kDeeper, 3), reference = import(kDetector, 3);
  ComparisonReport c = compare(*m, *reference);
  EXPECT_TRUE(c.outputsOnly);
  ASSERT_EQ(c.rows.size(), 1u); // one head
  EXPECT_EQ(c.rows[0].layer.kind, "output 0");
  EXPECT_EQ(c.rows[0].layer.layer, 3);
  EXPECT_EQ(c.rows[0].error.count, 2 * 14 * 16 * 16);
  EXPECT_TRUE(c.rows[0].millis && c.rows[0].referenceMillis);
}

TEST_F(RunLibrary, ComparisonRefusesOtherInputs) {
  auto m = import(kDetector, 3);
  std::string cfg = kDetector;
  cfg.replace(cfg.find("width=16"), 8, "width=32");
  auto wide = import(cfg, 3);
  auto run = ModelRun::create(*m, {});
  ASSERT_TRUE(run);
  DiagnosticCapture diagnostics(m->getContext());
  EXPECT_TRUE(failed(run->compareWith(*wide, "wide")));
  // The models as a whole differ: no location.
  EXPECT_EQ(diagnostics.take(),
            "the models have different inputs (3x16x16 vs 3x16x32)");
}

TEST_F(RunLibrary, PlanningErrorIsAtTheLayer) {
  // Shape-only (no weights): layer 0 cannot be planned.
  auto m = darknet::importDarknetFromString(&ctx, kDetector, "test.cfg", {});
  ASSERT_TRUE(m);
  DiagnosticCapture diagnostics(&ctx);
  EXPECT_FALSE(ModelRun::create(*m, {}));
  // The message names the layer and is located at its cfg section.
  EXPECT_EQ(diagnostics.take(),
            "test.cfg:5:1: layer 0 (convolutional) has no weights (a "
            "shape-only model: import it with --weights or --random-weights)");
}

TEST_F(RunLibrary, ComparisonTablePrintsEveryRowAndTheSummary) {
  ComparisonReport c;
  c.against = "f.mlirbc";
  c.images = 2;
  c.outputsOnly = true;
  ComparisonRow row;
  row.layer = {5, "output 0", "14x16x16", "int8"};
  // SQNR 10 log10(5 / 0.25) = 13.01 dB, cosine 6 / sqrt(5 * 7.25), the
  // reference's 2 outside [-1, 1.5]: half clipped.
  row.error.add({1.0f, 2.0f}, {1.0f, 2.5f}, -1.0f, 1.5f);
  row.millis = 1.25;
  row.referenceMillis = 2.5;
  c.rows.push_back(row);
  row.layer = {9, "output 1", "14x32x32", "fp32"};
  row.millis.reset();
  row.referenceMillis.reset();
  c.rows.push_back(row);
  c.thresh = 0.25f;
  c.referenceDetections = 4;
  c.matchedDetections = 3;
  c.detections = 5;
  c.weightBytes = 1024;
  c.referenceWeightBytes = 4096;
  c.forwardMillis = 1.25;
  c.referenceForwardMillis = 2.5;
  std::string text;
  llvm::raw_string_ostream os(text);
  printComparison(os, c);
  EXPECT_EQ(os.str(),
            "comparison against f.mlirbc over 2 image(s)\n"
            "layer  type            prec    SQNR dB    cosine     max abs    "
            "mean abs  clipped       ms    ms fp\n"
            "    5  output 0        int8      13.01  0.996546         0.5    "
            "    0.25   50.00%    1.250    2.500\n"
            "    9  output 1        fp32      13.01  0.996546         0.5    "
            "    0.25   50.00%                  \n"
            "detections at thresh 0.25: 3 of 4 float detections matched "
            "(same class, IoU >= 0.5); 5 quantized detections\n"
            "weights: 1.0 KiB vs float 4.0 KiB (4.00x smaller)\n"
            "forward (sum of layers, mean per image): 1.25 ms vs float 2.50 "
            "ms\n");
}

TEST_F(RunLibrary, TimingAndLayerStatistics) {
  auto m = import(kDetector, 3);
  RunOptions o;
  o.layerStats = o.timeLayers = true;
  std::string error;
  auto run = ModelRun::create(*m, o);
  ASSERT_TRUE(run);
  ForwardTiming t = run->timeForward(5); // no image: a constant input
  EXPECT_EQ(t.runs, 5);
  EXPECT_EQ(t.kernels, "fast");
  EXPECT_LE(t.min, t.median);
  EXPECT_LE(t.median, t.max);
  ASSERT_EQ(t.layerMedians.size(), 3u);
  std::vector<LayerTimeRow> times = run->layerTimes(&t);
  ASSERT_EQ(times.size(), 3u);
  EXPECT_EQ(times[1].millis, t.layerMedians[1]);
  std::string text;
  llvm::raw_string_ostream os(text);
  printLayerTimes(os, {{{0, "convolutional", "8x16x16", "fp32"}, 3.0},
                       {{1, "yolo", "14x16x16", "fp32"}, 1.0}});
  EXPECT_EQ(os.str(), "layer  type            output                ms   "
                      "share\n"
                      "    0  convolutional   8x16x16            3.000   "
                      "75.0% #######################\n"
                      "    1  yolo            14x16x16           1.000   "
                      "25.0% ########\n"
                      "total      4.000 ms\n");
  // Statistics of the last image's layers.
  InferenceResult r;
  ASSERT_TRUE(run->runImage("img.ppm", image(16, 16), r, error)) << error;
  std::vector<LayerStatsRow> stats = run->layerStats();
  ASSERT_EQ(stats.size(), 3u);
  EXPECT_EQ(stats[0].stats.count, 8 * 16 * 16);
  EXPECT_LE(stats[0].stats.min, stats[0].stats.mean);
  EXPECT_LE(stats[0].stats.mean, stats[0].stats.max);
  EXPECT_EQ(stats[2].layer.output, "14x16x16");
}

} // namespace
