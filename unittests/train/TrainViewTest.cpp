//===- TrainViewTest.cpp - the torch view equals the interpreter ---------===//
//
// The torch view of a module (lib/Train) against the interpreter's
// reference kernels (the specification), layer by layer (<= 1e-4 of the
// layer's largest magnitude), on synthetic models that together hold every
// op kind and activation, in both flavours, with batch norms folded into
// the convolutions for the forward or not; on the real models when
// QSIM_MODELS_DIR is set. Gradients of the view against finite differences
// (in double) for the same models.
//
//===----------------------------------------------------------------------===//

#include "TrainTestUtil.h"

#include "qsim/Runtime/Image.h"

#include "llvm/Support/Path.h"

#include <cmath>
#include <cstdlib>
#include <gtest/gtest.h>

using namespace qsim;
using namespace qsim::train;
using namespace qsim::train::test;

namespace {

struct ModelCase {
  std::string name, cfg;
  qsim::Flavor flavor = qsim::Flavor::AlexeyAB;
};

std::vector<ModelCase> modelCases() {
  std::vector<ModelCase> cases = {
      {"detector", kDetectorCfg},
      {"misc", kMiscCfg},
      {"softmax", kSoftmaxCfg},
      {"new_coords", kNewCoordsCfg},
      {"detector_pjreddie", kDetectorCfg, qsim::Flavor::PJReddie},
      {"misc_pjreddie", kMiscCfg, qsim::Flavor::PJReddie},
  };
  for (const char *act : {"linear",
                          "logistic",
                          "loggy",
                          "relu",
                          "relu6",
                          "leaky",
                          "relie",
                          "ramp",
                          "elu",
                          "selu",
                          "gelu",
                          "tanh",
                          "plse",
                          "hardtan",
                          "lhtan",
                          "stair",
                          "swish",
                          "mish",
                          "hard_mish",
                          "normalize_channels",
                          "normalize_channels_softmax",
                          "normalize_channels_softmax_maxval"})
    cases.push_back({std::string("act_") + act, activationCfg(act)});
  return cases;
}

std::string caseName(const ::testing::TestParamInfo<ModelCase> &info) {
  return info.param.name;
}

class ViewAgreement : public ::testing::TestWithParam<ModelCase> {};

TEST_P(ViewAgreement, EqualsReferenceKernels) {
  const ModelCase &mc = GetParam();
  mlir::MLIRContext ctx(registry());
  auto module = importCfg(ctx, mc.cfg, 3, mc.flavor);
  ASSERT_TRUE(module);
  ModuleSpec ms;
  ASSERT_TRUE(succeeded(readModule(*module, ms)));
  Blob in = randomInput(ms.spec, 2, 5);
  std::vector<std::vector<std::vector<float>>> ref = {
      interpreterLayers(*module, in, 0), interpreterLayers(*module, in, 1)};
  ASSERT_EQ(ref[0].size(), ms.spec.layerOutputs.size());
  for (bool fast : {true, false}) {
    ViewOptions vo;
    vo.foldBatchNorm = vo.channelsLast = fast;
    std::string error;
    auto view = NetView::create(ms.spec, vo, error);
    ASSERT_TRUE(view) << error;
    std::vector<Blob> outs = view->forward(in);
    for (size_t layer = 0; layer < ms.spec.layerOutputs.size(); ++layer) {
      const Blob &b = outs[ms.spec.layerOutputs[layer]];
      size_t per = b.c * b.h * b.w;
      for (int k = 0; k < 2; ++k) {
        ASSERT_EQ(per, ref[k][layer].size()) << "layer " << layer;
        EXPECT_LE(relativeMaxError(ref[k][layer], b.data.data() + k * per, per),
                  1e-4)
            << ms.spec.nodes[ms.spec.layerOutputs[layer]].label << ", image "
            << k << (fast ? ", folded, channels last" : ", unfolded, NCHW");
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Synthetic, ViewAgreement,
                         ::testing::ValuesIn(modelCases()), caseName);

/// L = sum_k <seeds[k], outputs[k]>.
double objective(const NetView &view, const Blob &in,
                 const std::vector<int> &nodes,
                 const std::vector<std::vector<double>> &seeds) {
  std::vector<Blob> outs = view.forward(in, nodes);
  double l = 0;
  for (size_t k = 0; k < outs.size(); ++k)
    for (size_t i = 0; i < outs[k].data.size(); ++i)
      l += seeds[k][i] * outs[k].data[i];
  return l;
}

struct FdStats {
  int checked = 0, kinks = 0;
};

/// Compares d L / d v[i] with central differences; entries where two step
/// sizes disagree sit on a kink (relu, max pooling ties, stair) and are
/// counted, not compared.
void checkEntries(const std::function<double(double)> &lossAt, double value,
                  double analytic, const std::string &what, FdStats &st) {
  double h = 1e-5 * std::max(1.0, std::fabs(value));
  double fd1 = (lossAt(value + h) - lossAt(value - h)) / (2 * h);
  double fd2 = (lossAt(value + h / 4) - lossAt(value - h / 4)) / (h / 2);
  double scale = std::max({1.0, std::fabs(fd1), std::fabs(analytic)});
  ++st.checked;
  if (std::fabs(fd1 - fd2) > 1e-5 * scale) {
    ++st.kinks;
    return;
  }
  EXPECT_NEAR(analytic, fd2, 2e-5 * scale) << what;
}

class ViewGradients : public ::testing::TestWithParam<ModelCase> {};

TEST_P(ViewGradients, MatchFiniteDifferences) {
  const ModelCase &mc = GetParam();
  mlir::MLIRContext ctx(registry());
  auto module = importCfg(ctx, mc.cfg, 4, mc.flavor);
  ASSERT_TRUE(module);
  ModuleSpec ms;
  ASSERT_TRUE(succeeded(readModule(*module, ms)));
  ViewOptions vo;
  vo.float64 = true;
  std::string error;
  auto view = NetView::create(ms.spec, vo, error);
  ASSERT_TRUE(view) << error;
  Blob in = randomInput(ms.spec, 2, 9);
  std::vector<int> nodes = ms.spec.outputs;
  std::vector<Blob> outs = view->forward(in, nodes);
  std::vector<std::vector<double>> seeds;
  uint32_t s = 17;
  for (const Blob &b : outs) {
    seeds.emplace_back(b.data.size());
    for (double &v : seeds.back()) {
      s = s * 1664525u + 1013904223u;
      v = ((s >> 8) & 1 ? 1.0 : -1.0) * (0.5 + ((s >> 12) % 100) / 100.0);
    }
  }
  NetView::Gradients g = view->gradient(in, nodes, seeds);
  FdStats st;
  for (size_t p = 0; p < view->numParameters(); ++p) {
    std::vector<double> values = view->parameter(p);
    for (size_t j = 0; j < 4 && j < values.size(); ++j) {
      size_t i = (j * 7919 + p * 31) % values.size();
      auto lossAt = [&](double v) {
        std::vector<double> changed = values;
        changed[i] = v;
        view->setParameter(p, changed);
        double l = objective(*view, in, nodes, seeds);
        view->setParameter(p, values);
        return l;
      };
      checkEntries(lossAt, values[i], g.parameters[p][i],
                   view->parameterName(p) + "[" + std::to_string(i) + "]", st);
    }
  }
  for (size_t j = 0; j < 8; ++j) {
    size_t i = (j * 104729 + 13) % in.data.size();
    auto lossAt = [&](double v) {
      Blob changed = in;
      changed.data[i] = v;
      return objective(*view, changed, nodes, seeds);
    };
    checkEntries(lossAt, in.data[i], g.input[i],
                 "input[" + std::to_string(i) + "]", st);
  }
  EXPECT_GT(st.checked, 0);
  EXPECT_LE(st.kinks * 5, st.checked)
      << st.kinks << " of " << st.checked << " entries on a kink";
}

INSTANTIATE_TEST_SUITE_P(Synthetic, ViewGradients,
                         ::testing::ValuesIn(modelCases()), caseName);

//===----------------------------------------------------------------------===//
// Real models
//===----------------------------------------------------------------------===//

class RealModelView : public ::testing::TestWithParam<const char *> {};

TEST_P(RealModelView, EqualsReferenceKernels) {
  const char *models = std::getenv("QSIM_MODELS_DIR");
  if (!models)
    GTEST_SKIP() << "QSIM_MODELS_DIR is not set: the real models are skipped";
  std::string name = GetParam();
  mlir::MLIRContext ctx(registry());
  darknet::ImportOptions io;
  io.weightsPath = std::string(models) + "/weights/" + name + ".weights";
  auto module = darknet::importDarknet(
      &ctx, std::string(models) + "/darknet/" + name + ".cfg", io);
  ASSERT_TRUE(module);
  ModuleSpec ms;
  ASSERT_TRUE(succeeded(readModule(*module, ms)));
  Blob in = randomInput(ms.spec, 1, 21);
  if (const char *data = std::getenv("QSIM_DATA_DIR")) {
    rt::Image im;
    std::string error;
    if (rt::loadImage(std::string(data) + "/images/dog.jpg", im, error)) {
      rt::Tensor t =
          rt::makeNetworkInput(im, in.w, in.h, rt::Preprocess::Resize);
      for (size_t i = 0; i < in.data.size(); ++i)
        in.data[i] = t.f32()[i];
    }
  }
  auto ref = interpreterLayers(*module, in, 0);
  std::string error;
  auto view = NetView::create(ms.spec, ViewOptions(), error);
  ASSERT_TRUE(view) << error;
  std::vector<Blob> outs = view->forward(in);
  for (size_t layer = 0; layer < ms.spec.layerOutputs.size(); ++layer) {
    const Blob &b = outs[ms.spec.layerOutputs[layer]];
    EXPECT_LE(relativeMaxError(ref[layer], b.data.data(), b.data.size()), 1e-4)
        << name << " " << ms.spec.nodes[ms.spec.layerOutputs[layer]].label;
  }
}

INSTANTIATE_TEST_SUITE_P(Real, RealModelView,
                         ::testing::Values("yolov3-tiny-aix2022",
                                           "yolov4-tiny-aix2023",
                                           "yolo-fastest-1.1-xl",
                                           "MobileNetV2-YOLOv3-Nano-coco"),
                         [](const ::testing::TestParamInfo<const char *> &i) {
                           std::string n = i.param;
                           for (char &c : n)
                             if (!isalnum((unsigned char)c))
                               c = '_';
                           return n;
                         });

} // namespace
