//===- TrainTest.cpp - short trainings on synthetic models ---------------===//
//
// trainModule on a tiny detector (32x32, a few steps, one thread): the loss
// goes down and the student matches the teacher better; the YOLO loss with
// labels goes down; checkpoints reload bit-exact and a resumed run equals
// a straight one; a fixed seed gives the same weights twice; frozen layers
// stay; bad inputs fail with a message and leave the student unchanged.
// Also the pieces: the schedule, the augmentation, the loader's
// determinism (the YOLO deltas: TrainLossTest.cpp).
//
//===----------------------------------------------------------------------===//

#include "Data.h"
#include "Schedule.h"
#include "TrainTestUtil.h"

#include "qsim/Evaluation/ModelMeasures.h"
#include "qsim/Train/Train.h"

#include "mlir/IR/Diagnostics.h"
#include "llvm/Support/FileSystem.h"

#include <cmath>
#include <gtest/gtest.h>

using namespace qsim;
using namespace qsim::train;
using namespace qsim::train::test;

namespace {

/// The raw bytes of every weight attribute, in op order.
std::vector<std::string> weightBytes(mlir::ModuleOp m) {
  std::vector<std::string> out;
  getMainFunc(m).walk([&](mlir::Operation *op) {
    for (mlir::NamedAttribute a : op->getAttrs())
      if (auto e = mlir::dyn_cast<mlir::ElementsAttr>(a.getValue())) {
        llvm::ArrayRef<char> raw = getRawBytes(e);
        out.emplace_back(raw.begin(), raw.end());
      }
  });
  return out;
}

class Training : public ::testing::Test {
protected:
  Training() : ctx(registry()) { ctx.loadAllAvailableDialects(); }
  static const std::string &images() {
    static std::string dir = writeImages(12, 40, 36, 2, 7);
    return dir;
  }
  TrainOptions options(int64_t steps = 24) {
    TrainOptions o;
    o.images = {images()};
    o.steps = steps;
    o.batch = 4;
    o.threads = 1;
    o.loaderThreads = 2;
    o.seed = 5;
    o.progressBar = false;
    return o;
  }
  /// Output SQNR of `student` against `teacher` on the training images.
  double sqnrToTeacher(mlir::ModuleOp student, mlir::ModuleOp teacher) {
    std::vector<std::string> files;
    std::string error;
    EXPECT_TRUE(rt::listImageFiles(images(), files, error));
    std::vector<rt::Tensor> inputs;
    EXPECT_TRUE(eval::loadNetworkInputs(teacher, files, inputs, error));
    std::vector<float> t, s;
    EXPECT_TRUE(eval::runOutputs(teacher, inputs, t, error));
    EXPECT_TRUE(eval::runOutputs(student, inputs, s, error));
    return eval::sqnr(t, s);
  }
  /// trainModule with diagnostics collected into `messages`.
  mlir::LogicalResult train(mlir::ModuleOp s, mlir::ModuleOp t,
                            const TrainOptions &o, TrainSummary *summary,
                            const TrainCallbacks &cb = {}) {
    mlir::ScopedDiagnosticHandler handler(&ctx, [&](mlir::Diagnostic &d) {
      messages += d.str() + "\n";
      return mlir::success();
    });
    return trainModule(s, t, o, cb, summary);
  }
  static double mean(const std::vector<TrainProgress> &h, size_t from, size_t n,
                     double TrainProgress::*field) {
    double sum = 0;
    for (size_t i = from; i < from + n; ++i)
      sum += h[i].*field;
    return sum / n;
  }
  mlir::MLIRContext ctx;
  std::string messages;
};

TEST_F(Training, DistillationBringsTheStudentCloser) {
  auto teacher = importCfg(ctx, kTinyYoloCfg, 1);
  auto student = importCfg(ctx, kTinyYoloCfg, 2);
  ASSERT_TRUE(teacher && student);
  double before = sqnrToTeacher(*student, *teacher);
  TrainSummary summary;
  TrainOptions o = options(40);
  o.lr = 0.01;
  ASSERT_TRUE(succeeded(train(*student, *teacher, o, &summary))) << messages;
  ASSERT_EQ(summary.history.size(), 40u);
  double first = mean(summary.history, 0, 8, &TrainProgress::loss);
  double last = mean(summary.history, 32, 8, &TrainProgress::loss);
  EXPECT_LT(last, 0.7 * first) << "loss " << first << " -> " << last;
  double after = sqnrToTeacher(*student, *teacher);
  EXPECT_GT(after, before + 1.0)
      << "SQNR to the teacher " << before << " -> " << after << " dB";
  EXPECT_EQ(checkpointStep(*student), 40);
  EXPECT_TRUE(succeeded(mlir::verify(*student)));
}

TEST_F(Training, YoloLossGoesDownWithLabels) {
  auto teacher = importCfg(ctx, kTinyYoloCfg, 1);
  auto student = importCfg(ctx, kTinyYoloCfg, 2);
  TrainOptions o = options(40);
  o.labels = images();
  o.distillWeight = 0;
  o.lr = 0.01;
  o.augment = false;
  TrainSummary summary;
  ASSERT_TRUE(succeeded(train(*student, *teacher, o, &summary))) << messages;
  double first = mean(summary.history, 0, 8, &TrainProgress::yolo);
  double last = mean(summary.history, 32, 8, &TrainProgress::yolo);
  EXPECT_GT(first, 0);
  EXPECT_LT(last, 0.8 * first) << "YOLO cost " << first << " -> " << last;
}

TEST_F(Training, SeedGivesTheSameWeightsTwice) {
  auto teacher = importCfg(ctx, kTinyYoloCfg, 1);
  std::vector<std::vector<std::string>> runs;
  for (uint64_t seed : {5, 5, 6}) {
    auto student = importCfg(ctx, kTinyYoloCfg, 2);
    TrainOptions o = options(8);
    o.seed = seed;
    ASSERT_TRUE(succeeded(train(*student, *teacher, o, nullptr))) << messages;
    runs.push_back(weightBytes(*student));
  }
  EXPECT_EQ(runs[0], runs[1]);
  EXPECT_NE(runs[0], runs[2]);
}

TEST_F(Training, CheckpointReloadsBitExactAndResumes) {
  auto teacher = importCfg(ctx, kTinyYoloCfg, 1);
  llvm::SmallString<128> dir;
  llvm::sys::fs::createUniqueDirectory("qsim-train-ckpt", dir);
  std::string path = std::string(dir) + "/ckpt.mlirbc";
  mlir::OwningOpRef<mlir::ModuleOp> inMemory;
  std::string optimizerState;
  TrainCallbacks cb;
  cb.checkpoint = [&](mlir::ModuleOp m, int64_t step,
                      const std::string &state) {
    EXPECT_EQ(step, 6);
    inMemory = mlir::cast<mlir::ModuleOp>(m->clone());
    optimizerState = state;
    std::string error;
    return saveModel(m, path, true, error);
  };
  auto straight = importCfg(ctx, kTinyYoloCfg, 2);
  TrainOptions o = options(12);
  o.checkpointEvery = 6;
  ASSERT_TRUE(succeeded(train(*straight, *teacher, o, nullptr, cb)))
      << messages;
  ASSERT_TRUE(inMemory);
  ModelLoadOptions lo;
  lo.path = path;
  auto reloaded = loadModel(&ctx, lo);
  ASSERT_TRUE(reloaded);
  EXPECT_EQ(weightBytes(*reloaded), weightBytes(*inMemory));
  EXPECT_EQ(checkpointStep(*reloaded), 6);
  EXPECT_EQ(sqnrToTeacher(*reloaded, *inMemory),
            std::numeric_limits<double>::infinity());
  // Resuming from the checkpoint gives the straight run's weights.
  TrainOptions r = options(12);
  r.optimizerState = optimizerState;
  r.resume = true;
  TrainSummary summary;
  ASSERT_TRUE(succeeded(train(*reloaded, *teacher, r, &summary))) << messages;
  EXPECT_EQ(summary.firstStep, 6);
  EXPECT_EQ(summary.history.size(), 6u);
  EXPECT_EQ(weightBytes(*reloaded), weightBytes(*straight));
}

TEST_F(Training, FrozenLayersStay) {
  auto teacher = importCfg(ctx, kTinyYoloCfg, 1);
  auto student = importCfg(ctx, kTinyYoloCfg, 2);
  auto layers = getLayers(getMainFunc(*student));
  auto attrsOf = [](const Layer &l) {
    std::vector<std::string> out;
    for (mlir::Operation *op : l.ops)
      for (mlir::NamedAttribute a : op->getAttrs())
        if (auto e = mlir::dyn_cast<mlir::ElementsAttr>(a.getValue()))
          out.emplace_back(getRawBytes(e).begin(), getRawBytes(e).end());
    return out;
  };
  std::vector<std::string> l0 = attrsOf((*layers)[0]),
                           l4 = attrsOf((*layers)[4]);
  TrainOptions o = options(4);
  o.freeze = {"0-2"};
  ASSERT_TRUE(succeeded(train(*student, *teacher, o, nullptr))) << messages;
  layers = getLayers(getMainFunc(*student));
  EXPECT_EQ(attrsOf((*layers)[0]), l0);
  EXPECT_NE(attrsOf((*layers)[4]), l4);
}

TEST_F(Training, HintsThroughAnAdapter) {
  auto teacher = importCfg(ctx, kTinyYoloCfg, 1);
  std::string narrow = kTinyYoloCfg;
  narrow.replace(narrow.find("filters=16"), 10, "filters=12");
  auto student = importCfg(ctx, narrow, 2);
  ASSERT_TRUE(student);
  TrainOptions o = options(30);
  o.hints = {{2, 2}, {4, 4}};
  o.distillWeight = 0;
  o.lr = 0.01;
  TrainSummary summary;
  ASSERT_TRUE(succeeded(train(*student, *teacher, o, &summary))) << messages;
  double first = mean(summary.history, 0, 6, &TrainProgress::hint);
  double last = mean(summary.history, 24, 6, &TrainProgress::hint);
  EXPECT_GT(first, 0);
  EXPECT_LT(last, first);
}

TEST_F(Training, StopsWhenAsked) {
  auto teacher = importCfg(ctx, kTinyYoloCfg, 1);
  auto student = importCfg(ctx, kTinyYoloCfg, 2);
  int steps = 0;
  TrainCallbacks cb;
  cb.progress = [&](const TrainProgress &) { ++steps; };
  cb.stop = [&] { return steps >= 3; };
  TrainSummary summary;
  ASSERT_TRUE(succeeded(train(*student, *teacher, options(20), &summary, cb)))
      << messages;
  EXPECT_TRUE(summary.stopped);
  EXPECT_EQ(summary.lastStep, 3);
  EXPECT_EQ(checkpointStep(*student), 3);
}

TEST_F(Training, BadInputsFailAndLeaveTheStudent) {
  auto student = importCfg(ctx, kTinyYoloCfg, 2);
  auto original = weightBytes(*student);
  auto expectFailure = [&](mlir::ModuleOp teacher, const TrainOptions &o,
                           const std::string &needle) {
    messages.clear();
    EXPECT_TRUE(failed(train(*student, teacher, o, nullptr)));
    EXPECT_NE(messages.find(needle), std::string::npos)
        << "expected '" << needle << "' in: " << messages;
    EXPECT_EQ(weightBytes(*student), original);
  };
  auto teacher = importCfg(ctx, kTinyYoloCfg, 1);
  auto other = importCfg(ctx, kDetectorCfg, 1);
  TrainOptions o = options(2);
  o.teacherName = "other.mlirbc";
  expectFailure(*other, o, "the teacher 'other.mlirbc' takes 3x24x24 inputs");
  llvm::SmallString<128> empty;
  llvm::sys::fs::createUniqueDirectory("qsim-train-empty", empty);
  o = options(2);
  o.images = {std::string(empty)};
  expectFailure(*teacher, o, "no images");
  o = options(2);
  o.lr = std::nan("");
  expectFailure(*teacher, o, "learning rate must be a positive number");
  o = options(-3);
  expectFailure(*teacher, o, "steps must be positive");
  o = options(2);
  o.yoloWeight = -1;
  expectFailure(*teacher, o, "loss weights must be non-negative");
  o = options(2);
  o.qat = true;
  expectFailure(*teacher, o, "--qat needs a precision plan");
  darknet::ImportOptions shapeOnly;
  auto noWeights =
      darknet::importDarknetFromString(&ctx, kTinyYoloCfg, "s.cfg", shapeOnly);
  messages.clear();
  EXPECT_TRUE(failed(train(*noWeights, *teacher, options(2), nullptr)));
  EXPECT_NE(messages.find("has no weights"), std::string::npos) << messages;
}

TEST_F(Training, TeacherWithOtherHeadsIsRefused) {
  auto student = importCfg(ctx, kTinyYoloCfg, 2);
  std::string moreClasses = kTinyYoloCfg;
  moreClasses.replace(moreClasses.find("filters=14"), 10, "filters=16");
  moreClasses.replace(moreClasses.find("classes=2"), 9, "classes=3");
  auto teacher = importCfg(ctx, moreClasses, 1);
  ASSERT_TRUE(teacher);
  TrainOptions o = options(2);
  o.teacherName = "t.mlirbc";
  EXPECT_TRUE(failed(train(*student, *teacher, o, nullptr)));
  EXPECT_NE(
      messages.find("output 0 of the teacher 't.mlirbc' is layer 6 (yolo)"),
      std::string::npos)
      << messages;
}

//===----------------------------------------------------------------------===//
// The pieces
//===----------------------------------------------------------------------===//

TEST(TrainSchedule, FollowsTheNetKeys) {
  std::map<std::string, std::string> net = {
      {"learning_rate", "0.01"}, {"burn_in", "1000"},
      {"max_batches", "10000"},  {"policy", "steps"},
      {"steps", "8000,9000"},    {"scales", ".1,.1"}};
  Schedule s;
  std::string error;
  ASSERT_TRUE(scheduleFromNet(net, 100, {}, s, error)) << error;
  // Everything scaled by 100 / 10000: burn-in 10 steps, steps at 80, 90.
  EXPECT_EQ(s.burnIn, 10);
  EXPECT_DOUBLE_EQ(s.rate(0), 0);
  EXPECT_DOUBLE_EQ(s.rate(5), 0.01 * std::pow(0.5, 4));
  EXPECT_DOUBLE_EQ(s.rate(50), 0.01);
  EXPECT_NEAR(s.rate(85), 0.001, 1e-12);
  EXPECT_NEAR(s.rate(95), 0.0001, 1e-12);
  ScheduleRequest cosine;
  cosine.policy = Policy::Cosine;
  cosine.burnIn = 0;
  ASSERT_TRUE(scheduleFromNet(net, 100, cosine, s, error));
  EXPECT_DOUBLE_EQ(s.rate(0), 0.01);
  EXPECT_NEAR(s.rate(50), 0.005, 1e-12);
  net["steps"] = "8000";
  EXPECT_FALSE(scheduleFromNet(net, 100, {}, s, error));
  EXPECT_NE(error.find("scales"), std::string::npos);
}

TEST(TrainData, AugmentationPieces) {
  rt::Image im;
  im.w = 5;
  im.h = 3;
  im.c = 3;
  for (int i = 0; i < 45; ++i)
    im.data.push_back((i * 37 % 101) / 100.0f);
  rt::Image same = im;
  distortImage(same, 0, 1, 1);
  for (size_t i = 0; i < im.data.size(); ++i)
    EXPECT_NEAR(same.data[i], im.data[i], 1e-6);
  rt::Image flipped = im;
  flipImage(flipped);
  EXPECT_EQ(flipped.at(0, 1, 2), im.at(4, 1, 2));
  flipImage(flipped);
  EXPECT_EQ(flipped.data, im.data);
  rt::Image bright = im;
  distortImage(bright, 0, 1, 2);
  for (size_t i = 0; i < im.data.size(); ++i)
    EXPECT_GE(bright.data[i] + 1e-6, std::min(1.0f, im.data[i]));
}

TEST(TrainData, BatchesDependOnSeedAndStepOnly) {
  DataOptions d;
  d.images = {writeImages(5, 30, 20, 2, 3)};
  d.labels = d.images[0];
  d.classes = 2;
  d.netW = d.netH = 16;
  d.batch = 3;
  d.seed = 9;
  d.threads = 2;
  d.augmentation.jitter = 0.2f;
  d.augmentation.hue = 0.1f;
  d.augmentation.saturation = d.augmentation.exposure = 1.5f;
  std::string error;
  auto a = DataLoader::create(d, error), b = DataLoader::create(d, error);
  ASSERT_TRUE(a && b) << error;
  EXPECT_EQ(a->labeledCount(), 5u);
  Batch a0, a1, a2, b2;
  ASSERT_TRUE(a->get(0, a0, error) && a->get(1, a1, error) &&
              a->get(2, a2, error) && b->get(2, b2, error));
  EXPECT_EQ(a2.data, b2.data);
  EXPECT_EQ(a2.files, b2.files);
  EXPECT_NE(a0.data, a1.data);
  for (const auto &truth : a2.truth)
    for (const rt::GroundTruth &g : truth) {
      EXPECT_GE(g.box.x - g.box.w / 2, -1e-6);
      EXPECT_LE(g.box.x + g.box.w / 2, 1 + 1e-6);
    }
  d.labels = d.images[0];
  d.classes = 1; // labels name class 1
  EXPECT_FALSE(DataLoader::create(d, error));
  EXPECT_NE(error.find("is not one of the model's 1 classes"),
            std::string::npos)
      << error;
}

} // namespace
