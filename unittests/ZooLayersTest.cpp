//===- ZooLayersTest.cpp - layers added for the Darknet zoo, by formula --===//
//
// [crop] and a trailing [cost] checked against Darknet's formulas written
// out directly (forward_crop_layer with training off; the network output is
// the last non-cost layer), with both kernel sets.
//
//===----------------------------------------------------------------------===//

#include "qsim/Interpreter/Executor.h"
#include "qsim/Target/Darknet/DarknetImporter.h"
#include "qsim/Target/ModelIO.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"

#include <cmath>
#include <gtest/gtest.h>

using namespace qsim;
using namespace qsim::interp;

namespace {

rt::Tensor patternInput(int64_t c, int64_t h, int64_t w) {
  rt::Tensor input(rt::DType::F32, c, h, w);
  for (int64_t i = 0; i < input.numel(); ++i)
    input.f32()[i] = 0.01f * (float)((i * 37) % 101);
  return input;
}

/// The outputs of every step of `cfg` run on `input` (random weights).
std::vector<rt::Tensor> runSteps(const char *cfg, const rt::Tensor &input,
                                 KernelSet kernels) {
  mlir::DialectRegistry registry;
  registerQSimDialects(registry);
  mlir::MLIRContext ctx(registry);
  darknet::ImportOptions io;
  io.randomSeed = 7;
  auto module = darknet::importDarknetFromString(&ctx, cfg, "zoo.cfg", io);
  EXPECT_TRUE(module);
  if (!module)
    return {};
  ExecutorOptions eo;
  eo.kernels = kernels;
  eo.keepAllOutputs = true;
  std::string error;
  auto ex = Executor::create(*module, eo, error);
  EXPECT_TRUE(ex) << error;
  if (!ex)
    return {};
  ex->setInput(input);
  ex->run();
  std::vector<rt::Tensor> outs;
  for (size_t i = 0; i < ex->steps().size(); ++i)
    outs.push_back(ex->stepOutput(i));
  return outs;
}

class CropLayer : public ::testing::TestWithParam<KernelSet> {};

TEST_P(CropLayer, CentredWindowScaledAndShifted) {
  // 10x9 input, odd margins: offsets (10-4)/2 = 3 and (9-5)/2 = 2.
  const char *cfg = "[net]\nwidth=9\nheight=10\nchannels=3\n"
                    "[crop]\ncrop_height=4\ncrop_width=5\nflip=1\nangle=7\n"
                    "[crop]\ncrop_height=3\ncrop_width=2\nnoadjust=1\n";
  rt::Tensor in = patternInput(3, 10, 9);
  std::vector<rt::Tensor> outs = runSteps(cfg, in, GetParam());
  ASSERT_EQ(outs.size(), 2u);
  std::vector<float> a = outs[0].toFloat(), b = outs[1].toFloat();
  ASSERT_EQ(a.size(), 3u * 4 * 5);
  ASSERT_EQ(b.size(), 3u * 3 * 2);
  const float *x = in.f32();
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 4; ++y)
      for (int xx = 0; xx < 5; ++xx)
        EXPECT_FLOAT_EQ(a[(c * 4 + y) * 5 + xx],
                        x[(c * 10 + y + 3) * 9 + xx + 2] * 2.0f - 1.0f)
            << "c=" << c << " y=" << y << " x=" << xx;
  // The second crop (noadjust) of the 4x5 output: offsets 0 and 1.
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 3; ++y)
      for (int xx = 0; xx < 2; ++xx)
        EXPECT_FLOAT_EQ(b[(c * 3 + y) * 2 + xx], a[(c * 4 + y) * 5 + xx + 1]);
}

TEST_P(CropLayer, TrailingCostLeavesTheSoftmaxAsOutput) {
  const char *cfg = "[net]\nwidth=6\nheight=6\nchannels=2\n"
                    "[avgpool]\n[softmax]\n[cost]\ntype=sse\n";
  rt::Tensor in = patternInput(2, 6, 6);
  std::vector<rt::Tensor> outs = runSteps(cfg, in, GetParam());
  ASSERT_EQ(outs.size(), 2u); // avgpool, softmax: no step for the cost
  std::vector<float> sm = outs.back().toFloat();
  ASSERT_EQ(sm.size(), 2u);
  double mean[2] = {0, 0};
  for (int c = 0; c < 2; ++c) {
    for (int i = 0; i < 36; ++i)
      mean[c] += in.f32()[c * 36 + i];
    mean[c] /= 36;
  }
  double e0 = std::exp(mean[0]), e1 = std::exp(mean[1]);
  EXPECT_NEAR(sm[0], e0 / (e0 + e1), 1e-6);
  EXPECT_NEAR(sm[1], e1 / (e0 + e1), 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Kernels, CropLayer,
                         ::testing::Values(KernelSet::Reference,
                                           KernelSet::Fast),
                         [](const auto &info) {
                           return info.param == KernelSet::Reference
                                      ? std::string("reference")
                                      : std::string("fast");
                         });

} // namespace
