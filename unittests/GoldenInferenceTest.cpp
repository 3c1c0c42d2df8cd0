//===- GoldenInferenceTest.cpp - the interpreter equals Darknet -----------===//
//
// For every model and image in ../shared/golden (the original Darknet's
// outputs): the preprocessed input equals Darknet's, every stored layer
// output is within 1e-4 x that layer's largest magnitude (reference and
// fast kernels), and the detections (or top-5) equal Darknet's: same classes,
// probabilities within 1e-3, boxes within 0.5 px.
//
//===----------------------------------------------------------------------===//

#include "TestEnv.h"

#include "qsim/Interpreter/Executor.h"
#include "qsim/Evaluation/Inference.h"
#include "qsim/Runtime/Evaluation.h"
#include "qsim/Target/ModelIO.h"

#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <gtest/gtest.h>
#include "llvm/ADT/StringSwitch.h"
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>

using namespace qsim;
using namespace qsim::interp;
using namespace qsim::eval;
using json = nlohmann::json;

namespace {

struct GoldenCase {
  std::string flavor, model, image;
  KernelSet kernels;
};

std::string caseName(const ::testing::TestParamInfo<GoldenCase> &info) {
  std::string s =
      info.param.flavor + "_" + info.param.model + "_" + info.param.image +
      "_" + (info.param.kernels == KernelSet::Fast ? "fast" : "reference");
  for (char &c : s)
    if (!isalnum((unsigned char)c))
      c = '_';
  return s;
}

std::string findImage(const std::string &stem) {
  for (const char *dir :
       {"images", "capp-aix-subset", "coco128/images/train2017"}) {
    std::string p = testenv::dataDir() + "/" + dir + "/" + stem + ".jpg";
    if (testenv::isFile(p))
      return p;
  }
  return "";
}

class GoldenInference : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(GoldenInference, EqualsDarknet) {
  QSIM_REQUIRE_GOLDEN();
  QSIM_REQUIRE_DATA();
  const GoldenCase &gc = GetParam();
  std::string dir =
      testenv::goldenDir() + "/" + gc.flavor + "/" + gc.model + "/" + gc.image;
  std::ifstream lf(dir + "/layers.json"), df(dir + "/detections.json");
  ASSERT_TRUE(lf && df) << "missing golden files in " << dir;
  json layers = json::parse(lf), dets = json::parse(df);

  mlir::DialectRegistry registry;
  registerQSimDialects(registry);
  mlir::MLIRContext ctx(registry);
  ModelLoadOptions lo;
  lo.path = testenv::modelsDir() + "/darknet/" + gc.model + ".cfg";
  lo.weightsPath = testenv::modelsDir() + "/weights/" + gc.model + ".weights";
  lo.flavor = gc.flavor == "alexeyab" ? Flavor::AlexeyAB : Flavor::PJReddie;
  auto module = loadModel(&ctx, lo);
  ASSERT_TRUE(module);
  ExecutorOptions eo;
  eo.kernels = gc.kernels;
  std::string error;
  auto ex = Executor::create(*module, eo);
  ASSERT_TRUE(ex);
  ModelInfo info = describeModel(*module, *ex);

  // Preprocessing: our network input from the image equals Darknet's.
  std::string imagePath = findImage(gc.image);
  ASSERT_FALSE(imagePath.empty()) << "image " << gc.image << " not found";
  rt::Image image;
  ASSERT_TRUE(rt::loadImage(imagePath, image, error)) << error;
  rt::Tensor input = rt::makeNetworkInput(image, info.netW, info.netH,
                                          choosePreprocess(info, std::nullopt));
  rt::Tensor golden;
  ASSERT_TRUE(rt::readNpy(dir + "/input.npy", golden, error)) << error;
  ASSERT_EQ(golden.numel(), input.numel());
  float inDiff = 0;
  for (int64_t i = 0; i < input.numel(); ++i)
    inDiff = std::max(inDiff, std::fabs(input.f32()[i] - golden.f32()[i]));
  EXPECT_LE(inDiff, 1e-6f);

  // Every stored layer.
  int compared = 0;
  double worst = 0;
  ex->setStepHook([&](size_t i) {
    const json &l = layers["layers"][i];
    if (l["file"].is_null())
      return;
    rt::Tensor ref;
    std::string err;
    ASSERT_TRUE(rt::readNpy(dir + "/" + l["file"].get<std::string>(), ref, err))
        << err;
    rt::Tensor out = ex->stepOutput(i);
    ASSERT_EQ(out.numel(), ref.numel()) << "layer " << i;
    float maxMag = 0, maxDiff = 0;
    std::vector<float> v = out.toFloat();
    for (int64_t k = 0; k < ref.numel(); ++k) {
      maxMag = std::max(maxMag, std::fabs(ref.f32()[k]));
      maxDiff = std::max(maxDiff, std::fabs(v[k] - ref.f32()[k]));
    }
    double rel = maxDiff / std::max(maxMag, 1e-30f);
    worst = std::max(worst, rel);
    EXPECT_LE(rel, 1e-4) << "layer " << i << " (" << l["type"] << "): max diff "
                         << maxDiff << ", max magnitude " << maxMag;
    ++compared;
  });
  InferenceOptions io; // thresh 0.25, nms 0.45 as the golden runs
  InferenceResult r = runImage(*ex, info, image, io);
  EXPECT_GT(compared, 0);
  RecordProperty("worst_relative_layer_difference", std::to_string(worst));
  printf("  %s/%s/%s: %d layers compared, worst relative difference %.3g\n",
         gc.flavor.c_str(), gc.model.c_str(), gc.image.c_str(), compared,
         worst);

  if (dets.contains("top5")) {
    const json &top = dets["top5"];
    ASSERT_EQ(r.top.size(), top.size());
    for (size_t i = 0; i < top.size(); ++i) {
      EXPECT_EQ(r.top[i].first, top[i]["class_index"].get<int>());
      EXPECT_NEAR(r.top[i].second, top[i]["prob"].get<double>(), 1e-3);
    }
    return;
  }
  const json &want = dets.contains("detector_test_nms")
                         ? dets["detector_test_nms"]["detections"]
                         : dets["detections"];
  ASSERT_EQ(r.reported.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    const auto &d = r.reported[i];
    const json &w = want[i];
    EXPECT_EQ(d.classId, w["class_id"].get<int>());
    EXPECT_NEAR(d.prob, w["prob"].get<double>(), 1e-3);
    const json &rel = w["bbox_rel"];
    EXPECT_NEAR(d.rel.x * r.imageW, rel["x"].get<double>() * r.imageW, 0.5);
    EXPECT_NEAR(d.rel.y * r.imageH, rel["y"].get<double>() * r.imageH, 0.5);
    EXPECT_NEAR(d.rel.w * r.imageW, rel["w"].get<double>() * r.imageW, 0.5);
    EXPECT_NEAR(d.rel.h * r.imageH, rel["h"].get<double>() * r.imageH, 0.5);
  }
}

std::vector<GoldenCase> goldenCases() {
  std::vector<GoldenCase> cases;
  struct {
    const char *flavor, *model, *image;
  } dirs[] = {{"alexeyab", "yolov3-tiny-aix2022", "dog"},
              {"alexeyab", "yolov3-tiny-aix2022", "CAPP_testset_close_10000"},
              {"alexeyab", "yolov4-tiny-aix2023", "dog"},
              {"alexeyab", "yolov4-tiny-aix2023", "CAPP_testset_close_10000"},
              {"alexeyab", "tiny", "dog"},
              {"alexeyab", "MobileNetV2-YOLOv3-Nano-coco", "dog"},
              {"alexeyab", "yolo-fastest-1.1-xl", "dog"},
              {"pjreddie", "yolov3-tiny-aix2022", "dog"},
              {"pjreddie", "tiny", "dog"}};
  for (auto k : {KernelSet::Reference, KernelSet::Fast})
    for (auto &d : dirs)
      cases.push_back({d.flavor, d.model, d.image, k});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Golden, GoldenInference,
                         ::testing::ValuesIn(goldenCases()), caseName);

} // namespace

namespace {

struct MapCase {
  const char *model, *images, *labels;
  double darknetMap; // ../shared/golden/MAP.md
  int tp, fp, fn;
};

class GoldenMap : public ::testing::TestWithParam<MapCase> {};

// mAP@0.5 over the shared labelled sets equals Darknet's `detector map`
// (MAP.md) within 0.2 points; the precision/recall line's counts too.
TEST_P(GoldenMap, EqualsDarknetDetectorMap) {
  QSIM_REQUIRE_MODELS();
  QSIM_REQUIRE_DATA();
  const MapCase &mc = GetParam();
  mlir::DialectRegistry registry;
  registerQSimDialects(registry);
  mlir::MLIRContext ctx(registry);
  ModelLoadOptions lo;
  lo.path = testenv::modelsDir() + "/darknet/" + mc.model + ".cfg";
  lo.weightsPath = testenv::modelsDir() + "/weights/" + mc.model + ".weights";
  auto module = loadModel(&ctx, lo);
  ASSERT_TRUE(module);
  std::string error;
  auto ex = Executor::create(*module, ExecutorOptions());
  ASSERT_TRUE(ex);
  ModelInfo info = describeModel(*module, *ex);
  std::string imageDir = testenv::dataDir() + "/" + mc.images;
  std::string labelDir = testenv::dataDir() + "/" + mc.labels;
  std::vector<std::string> images;
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(imageDir, ec), end; it != end && !ec;
       it.increment(ec))
    if (llvm::StringRef(it->path()).ends_with(".jpg"))
      images.push_back(it->path());
  std::sort(images.begin(), images.end());
  ASSERT_FALSE(images.empty());
  rt::MapEvaluator eval(info.classes());
  InferenceOptions io;
  io.thresh = 0.005f; // what detector map collects
  for (const std::string &path : images) {
    rt::Image image;
    ASSERT_TRUE(rt::loadImage(path, image, error)) << error;
    InferenceResult r = runImage(*ex, info, image, io);
    std::vector<rt::GroundTruth> truth;
    bool missing = false;
    ASSERT_TRUE(rt::readYoloLabels(rt::labelPathForImage(path, labelDir), truth,
                                   missing, error))
        << error;
    eval.addImage(r.detections, truth);
  }
  rt::MapResult m = eval.compute(0.5f, 0, 0.25f);
  printf("  %s: mAP@0.5 %.4f (Darknet %.4f)\n", mc.model, m.map, mc.darknetMap);
  EXPECT_NEAR(m.map * 100, mc.darknetMap * 100, 0.2);
  EXPECT_EQ(m.tp, mc.tp);
  EXPECT_EQ(m.fp, mc.fp);
  EXPECT_EQ(m.fn, mc.fn);
}

INSTANTIATE_TEST_SUITE_P(
    SharedSets, GoldenMap,
    ::testing::Values(
        MapCase{"yolov3-tiny-aix2022", "capp-aix-subset", "capp-aix-subset",
                0.841124, 545, 128, 204},
        MapCase{"yolov4-tiny-aix2023", "capp-aix-subset", "capp-aix-subset",
                0.862527, 564, 90, 185},
        MapCase{"yolo-fastest-1.1-xl", "coco128/images/train2017",
                "coco128/labels/train2017", 0.380311, 320, 403, 609},
        MapCase{"MobileNetV2-YOLOv3-Nano-coco", "coco128/images/train2017",
                "coco128/labels/train2017", 0.312115, 255, 346, 674}),
    [](const auto &info) {
      std::string s = info.param.model;
      for (char &c : s)
        if (!isalnum((unsigned char)c))
          c = '_';
      return s;
    });

} // namespace

//===----------------------------------------------------------------------===//
// Quantized accuracy on the real models (issue targets): calibrated on
// coco128 (not the evaluation images), evaluated on the CAPP subset.
//===----------------------------------------------------------------------===//

#include "qsim/Quant/Calibration.h"
#include "qsim/Quant/Precision.h"
#include "qsim/Quant/Quantizer.h"
#include "qsim/Transforms/Passes.h"
#include "mlir/Pass/PassManager.h"

namespace {
/// The --qsim-assign-precision preset a test case names.
qsim::quantization::PrecisionPreset presetNamed(llvm::StringRef name) {
  using qsim::quantization::PrecisionPreset;
  return llvm::StringSwitch<PrecisionPreset>(name)
      .Case("all-int8", PrecisionPreset::AllInt8)
      .Case("hybrid", PrecisionPreset::Hybrid)
      .Case("fp16", PrecisionPreset::FP16)
      .Case("bf16", PrecisionPreset::BF16)
      .Default(PrecisionPreset::None);
}

struct QuantMapCase {
  const char *model;
  const char *preset;
  double darknetMap; // fp32, MAP.md
  double maxDrop;    // points
};

class QuantizedMap : public ::testing::TestWithParam<QuantMapCase> {};

TEST_P(QuantizedMap, StaysWithinTarget) {
  QSIM_REQUIRE_MODELS();
  QSIM_REQUIRE_DATA();
  const QuantMapCase &qc = GetParam();
  mlir::DialectRegistry registry;
  registerQSimDialects(registry);
  mlir::MLIRContext ctx(registry);
  ctx.loadAllAvailableDialects();
  ModelLoadOptions lo;
  lo.path = testenv::modelsDir() + "/darknet/" + qc.model + ".cfg";
  lo.weightsPath = testenv::modelsDir() + "/weights/" + qc.model + ".weights";
  auto module = loadModel(&ctx, lo);
  ASSERT_TRUE(module);
  registerQSimDialectPasses();
  registerQSimPasses();
  mlir::PassManager pm(&ctx);
  std::string errs;
  llvm::raw_string_ostream es(errs);
  ASSERT_TRUE(succeeded(mlir::parsePassPipeline("qsim-fold-batchnorm", pm, es)));
  ASSERT_TRUE(succeeded(pm.run(*module)));
  std::string error;
  quantization::CalibrationOptions co;
  ASSERT_TRUE(rt::listImageFiles(testenv::dataDir() + "/coco128/images/train2017",
                                 co.images, error));
  co.maxImages = 50;
  co.progress = false;
  ASSERT_TRUE(succeeded(quantization::calibrateModule(*module, co)));
  quantization::PrecisionPlan plan;
  plan.preset = presetNamed(qc.preset);
  ASSERT_TRUE(succeeded(quantization::assignPrecision(*module, plan)));
  ASSERT_TRUE(succeeded(
      quantization::quantizeModule(*module, quantization::QuantizeOptions())));

  auto ex = Executor::create(*module, ExecutorOptions());
  ASSERT_TRUE(ex);
  ModelInfo info = describeModel(*module, *ex);
  std::vector<std::string> images;
  ASSERT_TRUE(rt::listImageFiles(testenv::dataDir() + "/capp-aix-subset", images,
                                 error));
  rt::MapEvaluator eval(info.classes());
  InferenceOptions io;
  io.thresh = 0.005f;
  for (const std::string &path : images) {
    rt::Image image;
    ASSERT_TRUE(rt::loadImage(path, image, error)) << error;
    InferenceResult r = runImage(*ex, info, image, io);
    std::vector<rt::GroundTruth> truth;
    bool missing = false;
    ASSERT_TRUE(rt::readYoloLabels(rt::labelPathForImage(path, ""), truth,
                                   missing, error));
    eval.addImage(r.detections, truth);
  }
  double map = eval.compute().map * 100;
  printf("  %s %s: mAP@0.5 %.2f %% (fp32 %.2f %%, %+.2f points)\n", qc.model,
         qc.preset, map, qc.darknetMap, map - qc.darknetMap);
  EXPECT_GE(map, qc.darknetMap - qc.maxDrop);
}

INSTANTIATE_TEST_SUITE_P(
    Presets, QuantizedMap,
    ::testing::Values(
        QuantMapCase{"yolov3-tiny-aix2022", "all-int8", 84.1124, 1.0},
        QuantMapCase{"yolov3-tiny-aix2022", "hybrid", 84.1124, 0.5},
        QuantMapCase{"yolov3-tiny-aix2022", "fp16", 84.1124, 0.1},
        QuantMapCase{"yolov3-tiny-aix2022", "bf16", 84.1124, 0.3},
        QuantMapCase{"yolov4-tiny-aix2023", "all-int8", 86.2527, 1.0},
        QuantMapCase{"yolov4-tiny-aix2023", "hybrid", 86.2527, 0.5},
        QuantMapCase{"yolov4-tiny-aix2023", "fp16", 86.2527, 0.1}),
    [](const auto &info) {
      std::string s = std::string(info.param.model) + "_" + info.param.preset;
      for (char &c : s)
        if (!isalnum((unsigned char)c))
          c = '_';
      return s;
    });

} // namespace

//===----------------------------------------------------------------------===//
// bf16 on the real models: oneDNN's bf16 kernels (where the CPU has them)
// against the reference emulation, within the tolerance of
// docs/quantization.md ("bf16"): every layer within 2^-5 of its largest
// magnitude and above 30 dB SQNR against the emulation (the differences
// of the f32 summation order carry on through 100 layers of
// yolo-fastest), the last layer above 40 dB.
//===----------------------------------------------------------------------===//

namespace {

class Bf16RealModel : public ::testing::TestWithParam<const char *> {};

TEST_P(Bf16RealModel, FastAgreesWithEmulation) {
  QSIM_REQUIRE_MODELS();
  const char *model = GetParam();
  mlir::DialectRegistry registry;
  registerQSimDialects(registry);
  mlir::MLIRContext ctx(registry);
  ctx.loadAllAvailableDialects();
  ModelLoadOptions lo;
  lo.path = testenv::modelsDir() + "/darknet/" + model + ".cfg";
  lo.weightsPath = testenv::modelsDir() + "/weights/" + model + ".weights";
  auto module = loadModel(&ctx, lo);
  ASSERT_TRUE(module);
  registerQSimDialectPasses();
  registerQSimPasses();
  mlir::PassManager pm(&ctx);
  std::string errs;
  llvm::raw_string_ostream es(errs);
  ASSERT_TRUE(
      succeeded(mlir::parsePassPipeline("qsim-fold-batchnorm", pm, es)));
  ASSERT_TRUE(succeeded(pm.run(*module)));
  quantization::PrecisionPlan plan;
  plan.preset = quantization::PrecisionPreset::BF16;
  ASSERT_TRUE(succeeded(quantization::assignPrecision(*module, plan)));
  ASSERT_TRUE(succeeded(
      quantization::quantizeModule(*module, quantization::QuantizeOptions())));

  auto inType = mlir::cast<mlir::ShapedType>(
      getMainFunc(*module).getArgument(0).getType());
  int64_t c = inType.getDimSize(1), h = inType.getDimSize(2),
          w = inType.getDimSize(3);
  // A smooth synthetic picture in [0, 1] (gradients and a few edges).
  rt::Tensor input(rt::DType::F32, c, h, w);
  for (int64_t k = 0; k < c; ++k)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        input.f32()[(k * h + y) * w + x] =
            0.5f + 0.4f * std::sin(0.05f * x + 0.3f * k) * std::cos(0.07f * y) +
            ((x / 40 + y / 30) % 2 ? 0.1f : -0.1f);
  std::vector<std::vector<float>> outs[2];
  std::vector<rt::DType> types;
  for (int set = 0; set < 2; ++set) {
    ExecutorOptions eo;
    eo.kernels = set ? KernelSet::Reference : KernelSet::Fast;
    eo.keepAllOutputs = true;
    auto ex = Executor::create(*module, eo);
    ASSERT_TRUE(ex);
    ex->setInput(input);
    ex->run();
    for (size_t i = 0; i < ex->steps().size(); ++i) {
      rt::Tensor t = ex->stepOutput(i);
      outs[set].push_back(t.toFloat());
      if (set == 0)
        types.push_back(t.dtype());
    }
  }
  ASSERT_EQ(outs[0].size(), outs[1].size());
  int bf16Layers = 0;
  float worst = 0;
  double lastSqnr = 0, worstSqnr = 1e9;
  for (size_t i = 0; i < outs[0].size(); ++i) {
    const std::vector<float> &fast = outs[0][i], &ref = outs[1][i];
    float mag = 0, diff = 0;
    for (size_t k = 0; k < ref.size(); ++k) {
      mag = std::max(mag, std::fabs(ref[k]));
      diff = std::max(diff, std::fabs(ref[k] - fast[k]));
    }
    bf16Layers += types[i] == rt::DType::BF16;
    worst = std::max(worst, diff / std::max(mag, 1e-30f));
    EXPECT_LE(diff, std::ldexp(1.0f, -5) * mag) << model << " layer " << i;
    double noise = 0, signal = 0;
    for (size_t k = 0; k < ref.size(); ++k) {
      signal += (double)ref[k] * ref[k];
      noise += (double)(ref[k] - fast[k]) * (ref[k] - fast[k]);
    }
    lastSqnr = noise > 0 ? 10 * std::log10(signal / noise) : 1e9;
    worstSqnr = std::min(worstSqnr, lastSqnr);
    EXPECT_GT(lastSqnr, 30.0) << model << " layer " << i;
  }
  EXPECT_GT(lastSqnr, 40.0) << model << ": the last layer";
  EXPECT_GT(bf16Layers, 10);
  printf("  %s bf16: %d bf16 layers, fast vs emulation: worst layer %.2e of "
         "its magnitude, worst layer SQNR %.1f dB, last layer %.1f dB\n",
         model, bf16Layers, worst, worstSqnr, lastSqnr);
}

INSTANTIATE_TEST_SUITE_P(Models, Bf16RealModel,
                         ::testing::Values("yolov3-tiny-aix2022",
                                           "yolo-fastest-1.1-xl"),
                         [](const auto &info) {
                           std::string s = info.param;
                           for (char &ch : s)
                             if (!isalnum((unsigned char)ch))
                               ch = '_';
                           return s;
                         });

} // namespace
