//===- ZooLayersTest.cpp - layers added for the Darknet zoo, by formula --===//
//
// [crop] and a trailing [cost] checked against Darknet's formulas written
// out directly (forward_crop_layer with training off; the network output is
// the last non-cost layer), with both kernel sets.
//
//===----------------------------------------------------------------------===//

#include "qsim/Interpreter/Executor.h"
#include "qsim/Runtime/Detection.h"
#include "qsim/Target/Darknet/DarknetImporter.h"
#include "qsim/Target/ModelIO.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"

#include "llvm/Support/FileSystem.h"

#include <cmath>
#include <cstdio>
#include <fstream>
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
  auto ex = Executor::create(*module, eo);
  EXPECT_TRUE(ex);
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

//===----------------------------------------------------------------------===//
// [local], [detection], [sam], [reorg3d], [local_avgpool], [Gaussian_yolo],
// xnor=1, share_index, pjreddie's strided [shortcut] and [crnn] (issue 20),
// each against its formula written out here from Darknet's source
// (docs/darknet.md §R4.7, §R4.16-§R4.22), with known
// weights written to a .weights file. No Darknet binary is available to
// generate references, so these are the numerical checks.
//===----------------------------------------------------------------------===//

/// A signed input pattern (binarization needs both signs).
rt::Tensor signedInput(int64_t c, int64_t h, int64_t w) {
  rt::Tensor input(rt::DType::F32, c, h, w);
  for (int64_t i = 0; i < input.numel(); ++i)
    input.f32()[i] = 0.01f * (float)((i * 37) % 101) - 0.43f;
  return input;
}

/// Deterministic weights: small values of both signs.
std::vector<float> knownWeights(size_t n, int salt) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = 0.02f * (float)((i * 29 + salt * 13) % 41) - 0.4f;
  return v;
}

/// The step outputs of `cfg` with the weights `floats` (AlexeyAB header).
std::vector<rt::Tensor> runWithWeights(const char *cfg,
                                       const std::vector<float> &floats,
                                       const rt::Tensor &input,
                                       KernelSet kernels) {
  llvm::SmallString<128> path;
  if (llvm::sys::fs::createTemporaryFile("zoo", "weights", path))
    return {};
  {
    std::ofstream f(path.c_str(), std::ios::binary);
    int32_t head[3] = {0, 2, 5};
    uint64_t seen = 0;
    f.write(reinterpret_cast<const char *>(head), sizeof(head));
    f.write(reinterpret_cast<const char *>(&seen), sizeof(seen));
    f.write(reinterpret_cast<const char *>(floats.data()),
            floats.size() * sizeof(float));
  }
  mlir::DialectRegistry registry;
  registerQSimDialects(registry);
  mlir::MLIRContext ctx(registry);
  darknet::ImportOptions io;
  io.weightsPath = path.str().str();
  std::vector<rt::Tensor> outs;
  {
    auto module = darknet::importDarknetFromString(&ctx, cfg, "zoo.cfg", io);
    EXPECT_TRUE(module);
    if (module) {
      ExecutorOptions eo;
      eo.kernels = kernels;
      eo.keepAllOutputs = true;
      std::string error;
      auto ex = Executor::create(*module, eo);
      EXPECT_TRUE(ex);
      if (ex) {
        ex->setInput(input);
        ex->run();
        for (size_t i = 0; i < ex->steps().size(); ++i)
          outs.push_back(ex->stepOutput(i));
      }
    }
  }
  llvm::sys::fs::remove(path);
  return outs;
}

float at(const rt::Tensor &t, int64_t c, int64_t y, int64_t x, int64_t h,
         int64_t w) {
  if (y < 0 || y >= h || x < 0 || x >= w)
    return 0.0f;
  return t.f32()[(c * h + y) * w + x];
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

class ZooLayers : public ::testing::TestWithParam<KernelSet> {};

TEST_P(ZooLayers, LocalUnsharedWeightsPerPosition) {
  // 2x4x5 input; pad=1, size 3, stride 2: out (4-1)/2+1 = 2 by (5-1)/2+1 = 3.
  const char *cfg = "[net]\nwidth=5\nheight=4\nchannels=2\n"
                    "[local]\nfilters=3\nsize=3\nstride=2\npad=1\n"
                    "activation=linear\n";
  const int64_t F = 3, C = 2, H = 4, W = 5, OH = 2, OW = 3, L = OH * OW;
  std::vector<float> bias = knownWeights(F * L, 1);
  std::vector<float> weight = knownWeights(L * F * C * 9, 2);
  std::vector<float> file(bias);
  file.insert(file.end(), weight.begin(), weight.end());
  rt::Tensor in = signedInput(C, H, W);
  auto outs = runWithWeights(cfg, file, in, GetParam());
  ASSERT_EQ(outs.size(), 1u);
  std::vector<float> got = outs[0].toFloat();
  ASSERT_EQ((int64_t)got.size(), F * L);
  for (int64_t f = 0; f < F; ++f)
    for (int64_t oy = 0; oy < OH; ++oy)
      for (int64_t ox = 0; ox < OW; ++ox) {
        int64_t p = oy * OW + ox;
        double sum = bias[f * L + p];
        for (int64_t c = 0; c < C; ++c)
          for (int64_t ky = 0; ky < 3; ++ky)
            for (int64_t kx = 0; kx < 3; ++kx)
              sum += (double)weight[((p * F + f) * C + c) * 9 + ky * 3 + kx] *
                     at(in, c, oy * 2 - 1 + ky, ox * 2 - 1 + kx, H, W);
        EXPECT_NEAR(got[f * L + p], sum, 1e-5) << "f=" << f << " p=" << p;
      }
}

TEST_P(ZooLayers, DetectionSoftmaxPerCellClassBlock) {
  // side 2, 3 classes, 1 box of 4 coords: 4*((1+4)*1+3) = 32 inputs.
  const char *cfg = "[net]\nwidth=1\nheight=1\nchannels=32\n"
                    "[detection]\nclasses=3\ncoords=4\nnum=1\nside=2\n"
                    "softmax=1\nsqrt=1\n";
  rt::Tensor in = signedInput(32, 1, 1);
  auto outs = runWithWeights(cfg, {}, in, GetParam());
  ASSERT_EQ(outs.size(), 1u);
  std::vector<float> got = outs[0].toFloat();
  ASSERT_EQ(got.size(), 32u);
  const float *x = in.f32();
  for (int cell = 0; cell < 4; ++cell) {
    double sum = 0;
    for (int k = 0; k < 3; ++k)
      sum += std::exp((double)x[cell * 3 + k]);
    for (int k = 0; k < 3; ++k)
      EXPECT_NEAR(got[cell * 3 + k], std::exp((double)x[cell * 3 + k]) / sum,
                  1e-6);
  }
  for (int i = 12; i < 32; ++i) // confidences and boxes are copied
    EXPECT_EQ(got[i], x[i]);
}

TEST_P(ZooLayers, SamMultipliesByTheFromLayer) {
  const char *cfg = "[net]\nwidth=4\nheight=3\nchannels=2\n"
                    "[activation]\nactivation=linear\n"
                    "[activation]\nactivation=logistic\n"
                    "[sam]\nfrom=0\n";
  rt::Tensor in = signedInput(2, 3, 4);
  auto outs = runWithWeights(cfg, {}, in, GetParam());
  ASSERT_EQ(outs.size(), 3u);
  std::vector<float> got = outs[2].toFloat();
  for (int64_t i = 0; i < in.numel(); ++i) {
    double x = in.f32()[i];
    EXPECT_NEAR(got[i], sigmoid(x) * x, 1e-6) << i;
  }
}

TEST_P(ZooLayers, Reorg3dIsSpaceToDepth) {
  const char *cfg = "[net]\nwidth=4\nheight=4\nchannels=3\n"
                    "[activation]\nactivation=linear\n"
                    "[reorg3d]\nstride=2\n";
  rt::Tensor in = signedInput(3, 4, 4);
  auto outs = runWithWeights(cfg, {}, in, GetParam());
  ASSERT_EQ(outs.size(), 2u);
  std::vector<float> got = outs[1].toFloat();
  ASSERT_EQ(got.size(), 48u);
  // out[o*C + ch][j][i] = in[ch][j*s + o/s][i*s + o%s], C = 3, s = 2.
  for (int o = 0; o < 4; ++o)
    for (int ch = 0; ch < 3; ++ch)
      for (int j = 0; j < 2; ++j)
        for (int i = 0; i < 2; ++i)
          EXPECT_EQ(got[((o * 3 + ch) * 2 + j) * 2 + i],
                    at(in, ch, j * 2 + o / 2, i * 2 + o % 2, 4, 4));
}

TEST_P(ZooLayers, Reorg3dReverseFollowsDarknetsMapping) {
  // reverse=1 on 16x1x1 with stride 2: Darknet's reorg_cpu(out dims 2x2x4,
  // s=2, forward=1) scatters in[A] to out[B] (docs/darknet.md §4.9 table).
  const char *cfg = "[net]\nwidth=1\nheight=1\nchannels=16\n"
                    "[activation]\nactivation=linear\n"
                    "[reorg3d]\nstride=2\nreverse=1\n";
  rt::Tensor in = signedInput(16, 1, 1);
  auto outs = runWithWeights(cfg, {}, in, GetParam());
  ASSERT_EQ(outs.size(), 2u);
  std::vector<float> got = outs[1].toFloat();
  ASSERT_EQ(got.size(), 16u);
  const int W = 2, H = 2, C = 4, s = 2, outC = C / (s * s);
  std::vector<float> expect(16, 0.0f);
  for (int k = 0; k < C; ++k)
    for (int j = 0; j < H; ++j)
      for (int i = 0; i < W; ++i) {
        int c2 = k % outC, o = k / outC;
        int a = i + W * (j + H * k);
        int b = (i * s + o % s) + W * s * ((j * s + o / s) + H * s * c2);
        expect[b] = in.f32()[a];
      }
  for (int i = 0; i < 16; ++i)
    EXPECT_EQ(got[i], expect[i]) << i;
}

TEST_P(ZooLayers, LocalAvgPoolAveragesInBoundsTaps) {
  // size 3, stride 2, padding 2 (default size-1): offset -1.
  const char *cfg = "[net]\nwidth=5\nheight=4\nchannels=2\n"
                    "[local_avgpool]\nsize=3\nstride=2\n";
  rt::Tensor in = signedInput(2, 4, 5);
  auto outs = runWithWeights(cfg, {}, in, GetParam());
  ASSERT_EQ(outs.size(), 1u);
  std::vector<float> got = outs[0].toFloat();
  ASSERT_EQ(got.size(), 2u * 2 * 3);
  for (int c = 0; c < 2; ++c)
    for (int oy = 0; oy < 2; ++oy)
      for (int ox = 0; ox < 3; ++ox) {
        double sum = 0;
        int n = 0;
        for (int y = oy * 2 - 1; y < oy * 2 + 2; ++y)
          for (int x = ox * 2 - 1; x < ox * 2 + 2; ++x)
            if (y >= 0 && y < 4 && x >= 0 && x < 5) {
              sum += at(in, c, y, x, 4, 5);
              ++n;
            }
        EXPECT_NEAR(got[(c * 2 + oy) * 3 + ox], sum / n, 1e-6);
      }
}

TEST_P(ZooLayers, GaussianYoloActivations) {
  // One anchor, 2 classes: 11 channels [mu_x, s_x, mu_y, s_y, mu_w, s_w,
  // mu_h, s_h, obj, c0, c1]; scale_x_y 1.1 on mu_x, mu_y.
  const char *cfg = "[net]\nwidth=2\nheight=2\nchannels=11\n"
                    "[activation]\nactivation=linear\n"
                    "[Gaussian_yolo]\nmask=0\nanchors=10,14\nclasses=2\n"
                    "num=1\nscale_x_y=1.1\n";
  rt::Tensor in = signedInput(11, 2, 2);
  auto outs = runWithWeights(cfg, {}, in, GetParam());
  ASSERT_EQ(outs.size(), 2u);
  std::vector<float> got = outs[1].toFloat();
  for (int e = 0; e < 11; ++e)
    for (int i = 0; i < 4; ++i) {
      double x = in.f32()[e * 4 + i];
      double want = (e == 4 || e == 6) ? x : sigmoid(x);
      if (e == 0 || e == 2)
        want = want * 1.1 - 0.05;
      EXPECT_NEAR(got[e * 4 + i], want, 1e-6) << "e=" << e;
    }
}

TEST_P(ZooLayers, XnorBinarizesInputAndWeights) {
  const char *cfg = "[net]\nwidth=5\nheight=5\nchannels=3\n"
                    "[convolutional]\nxnor=1\nbin_output=1\nfilters=2\n"
                    "size=3\nstride=1\npad=1\nactivation=linear\n";
  std::vector<float> bias = knownWeights(2, 3);
  std::vector<float> weight = knownWeights(2 * 3 * 9, 4);
  std::vector<float> file(bias);
  file.insert(file.end(), weight.begin(), weight.end());
  rt::Tensor in = signedInput(3, 5, 5);
  auto outs = runWithWeights(cfg, file, in, GetParam());
  ASSERT_EQ(outs.size(), 1u);
  std::vector<float> got = outs[0].toFloat();
  ASSERT_EQ(got.size(), 2u * 25);
  for (int f = 0; f < 2; ++f) {
    double mean = 0;
    for (int k = 0; k < 27; ++k)
      mean += std::fabs(weight[f * 27 + k]);
    mean /= 27;
    for (int y = 0; y < 5; ++y)
      for (int x = 0; x < 5; ++x) {
        double sum = bias[f];
        for (int c = 0; c < 3; ++c)
          for (int ky = 0; ky < 3; ++ky)
            for (int kx = 0; kx < 3; ++kx) {
              int iy = y - 1 + ky, ix = x - 1 + kx;
              if (iy < 0 || iy >= 5 || ix < 0 || ix >= 5)
                continue; // padding reads 0 after binarization
              double xin = at(in, c, iy, ix, 5, 5) > 0 ? 1 : -1;
              double w = weight[f * 27 + c * 9 + ky * 3 + kx] > 0 ? mean
                                                                  : -mean;
              sum += w * xin;
            }
        EXPECT_NEAR(got[(f * 5 + y) * 5 + x], sum, 1e-5);
      }
  }
}

TEST_P(ZooLayers, ShareIndexReusesWeightsAndReadsNone) {
  // Layer 1 shares layer 0's weights and biases: the file holds layer 0's
  // floats only (the import checks the exact size).
  const char *cfg = "[net]\nwidth=3\nheight=3\nchannels=2\n"
                    "[convolutional]\nfilters=2\nsize=1\nactivation=linear\n"
                    "[convolutional]\nshare_index=-1\nfilters=2\nsize=1\n"
                    "activation=linear\n";
  std::vector<float> bias = knownWeights(2, 5);
  std::vector<float> weight = knownWeights(4, 6);
  std::vector<float> file(bias);
  file.insert(file.end(), weight.begin(), weight.end());
  rt::Tensor in = signedInput(2, 3, 3);
  auto outs = runWithWeights(cfg, file, in, GetParam());
  ASSERT_EQ(outs.size(), 2u);
  std::vector<float> a = outs[0].toFloat(), b = outs[1].toFloat();
  for (int f = 0; f < 2; ++f)
    for (int i = 0; i < 9; ++i) {
      double first = bias[f], second = bias[f];
      for (int c = 0; c < 2; ++c) {
        first += (double)weight[f * 2 + c] * in.f32()[c * 9 + i];
        second += (double)weight[f * 2 + c] * a[c * 9 + i];
      }
      EXPECT_NEAR(a[f * 9 + i], first, 1e-5);
      EXPECT_NEAR(b[f * 9 + i], second, 1e-5);
    }
}

TEST_P(ZooLayers, StridedShortcutAddsTheSubsampledFromLayer) {
  // pjreddie's shortcut of a larger from layer (docs/darknet.md §R4.7):
  // out[k][y][x] = in[k][y][x] + from[k][2y][2x] for k < min(3, 2); the
  // import puts a 1x1 maxpool of stride 2 (a step of its own) before it.
  const char *cfg = "[net]\nwidth=6\nheight=4\nchannels=2\n"
                    "[activation]\nactivation=linear\n"
                    "[maxpool]\nsize=2\nstride=2\n"
                    "[route]\nlayers=-1,-1,-1\ngroups=2\ngroup_id=1\n"
                    "[route]\nlayers=-2,-1\n"
                    "[shortcut]\nfrom=0\nactivation=linear\n";
  rt::Tensor in = signedInput(2, 4, 6);
  auto outs = runWithWeights(cfg, {}, in, GetParam());
  // activation, maxpool, route, route, subsampling maxpool, shortcut.
  ASSERT_EQ(outs.size(), 6u);
  std::vector<float> prev = outs[3].toFloat(), got = outs[5].toFloat();
  ASSERT_EQ(prev.size(), 5u * 2 * 3); // 2 + 3 channels of 2x3
  ASSERT_EQ(got.size(), prev.size());
  for (int64_t k = 0; k < 5; ++k)
    for (int64_t y = 0; y < 2; ++y)
      for (int64_t x = 0; x < 3; ++x) {
        int64_t i = (k * 2 + y) * 3 + x;
        float want = prev[i];
        if (k < 2)
          want += in.f32()[(k * 4 + 2 * y) * 6 + 2 * x];
        EXPECT_EQ(got[i], want) << "k=" << k << " y=" << y << " x=" << x;
      }
}

TEST_P(ZooLayers, CrnnOneFrameFromTheZeroState) {
  // AlexeyAB's [crnn] (docs/darknet.md §R4.22) on its first frame: state =
  // input_layer(x) + self_layer(0); out = output_layer(state). Three 3x3
  // convolutions with batch norm and leaky, 2 -> 2 (hidden) -> 3 channels.
  const char *cfg = "[net]\nwidth=4\nheight=3\nchannels=2\n"
                    "[crnn]\nbatch_normalize=1\nsize=3\npad=1\nhidden=2\n"
                    "output=3\nactivation=leaky\n";
  const int64_t C = 2, HID = 2, OUT = 3, H = 3, W = 4;
  struct Conv {
    int64_t filters, channels;
    std::vector<float> bias, scale, mean, variance, weight;
  };
  std::vector<float> file;
  auto makeConv = [&](int64_t filters, int64_t channels, int salt) {
    Conv c{filters,
           channels,
           knownWeights(filters, salt),
           knownWeights(filters, salt + 1),
           knownWeights(filters, salt + 2),
           knownWeights(filters, salt + 3),
           knownWeights(filters * channels * 9, salt + 4)};
    for (float &v : c.variance)
      v = 0.5f + std::fabs(v);
    for (auto *a : {&c.bias, &c.scale, &c.mean, &c.variance, &c.weight})
      file.insert(file.end(), a->begin(), a->end());
    return c;
  };
  // Darknet's order: input_layer, self_layer, output_layer.
  Conv input = makeConv(HID, C, 1), self = makeConv(HID, HID, 6),
       output = makeConv(OUT, HID, 11);
  auto forward = [&](const Conv &cv, const std::vector<double> &x) {
    std::vector<double> y(cv.filters * H * W);
    for (int64_t f = 0; f < cv.filters; ++f)
      for (int64_t oy = 0; oy < H; ++oy)
        for (int64_t ox = 0; ox < W; ++ox) {
          double acc = 0;
          for (int64_t c = 0; c < cv.channels; ++c)
            for (int64_t ky = 0; ky < 3; ++ky)
              for (int64_t kx = 0; kx < 3; ++kx) {
                int64_t iy = oy - 1 + ky, ix = ox - 1 + kx;
                if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                  acc += cv.weight[((f * cv.channels + c) * 3 + ky) * 3 + kx] *
                         x[(c * H + iy) * W + ix];
              }
          double v = (acc - cv.mean[f]) /
                         std::sqrt((double)cv.variance[f] + 1e-5) *
                         cv.scale[f] +
                     cv.bias[f];
          y[(f * H + oy) * W + ox] = v > 0 ? v : 0.1 * v;
        }
    return y;
  };
  rt::Tensor in = signedInput(C, H, W);
  std::vector<double> x(in.f32(), in.f32() + in.numel());
  std::vector<double> state = forward(input, x);
  std::vector<double> selfOut =
      forward(self, std::vector<double>(HID * H * W, 0.0));
  for (size_t i = 0; i < state.size(); ++i)
    state[i] += selfOut[i];
  std::vector<double> want = forward(output, state);

  auto outs = runWithWeights(cfg, file, in, GetParam());
  // input conv, zero state, self conv, state sum, output conv.
  ASSERT_EQ(outs.size(), 5u);
  std::vector<float> self0 = outs[2].toFloat(), got = outs[4].toFloat();
  // self_layer on the zero state: one value per channel, borders included.
  for (int64_t f = 0; f < HID; ++f)
    for (int64_t i = 0; i < H * W; ++i)
      EXPECT_EQ(self0[f * H * W + i], self0[f * H * W]) << f << " " << i;
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(got[i], want[i], 1e-5) << i;
}

// Decoding of the two new heads (docs/darknet.md §R4.17, §R4.20), values
// worked out by hand.
TEST(ZooHeadDecoding, DetectionV1BoxesAndProbabilities) {
  // side 1, 2 classes, 1 box: [cls0, cls1, conf, x, y, w, h].
  std::vector<float> out = {0.2f, 0.8f, 0.5f, 0.5f, 0.25f, 0.6f, 0.4f};
  rt::DetectionV1Head h;
  h.data = out.data();
  h.side = 1;
  h.classes = 2;
  h.num = 1;
  h.coords = 4;
  h.sqrt = true;
  rt::DecodeOptions o;
  o.netW = o.netH = o.imageW = o.imageH = 64;
  o.thresh = 0.25f;
  std::vector<rt::Detection> dets;
  rt::getDetectionV1Detections(h, o, dets);
  ASSERT_EQ(dets.size(), 1u);
  EXPECT_FLOAT_EQ(dets[0].bbox.x, 0.5f);
  EXPECT_FLOAT_EQ(dets[0].bbox.y, 0.25f);
  EXPECT_NEAR(dets[0].bbox.w, 0.36f, 1e-6); // sqrt=1: squared
  EXPECT_NEAR(dets[0].bbox.h, 0.16f, 1e-6);
  EXPECT_FLOAT_EQ(dets[0].objectness, 0.5f);
  EXPECT_EQ(dets[0].prob[0], 0.0f); // 0.1 is below the threshold
  EXPECT_NEAR(dets[0].prob[1], 0.4f, 1e-6);
}

TEST(ZooHeadDecoding, GaussianYoloDiscountsUncertainty) {
  // 1x1 cell, one anchor (10, 20), one class: [mu_x, s_x, mu_y, s_y, mu_w,
  // s_w, mu_h, s_h, obj, cls].
  std::vector<float> out = {0.5f, 0.2f, 0.5f, 0.2f, 0.0f,
                            0.2f, 0.0f, 0.2f, 0.9f, 0.8f};
  rt::GaussianYoloHead h;
  h.data = out.data();
  h.w = h.h = 1;
  h.classes = 1;
  h.mask = {0};
  h.anchors = {10.0f, 20.0f};
  rt::DecodeOptions o;
  o.netW = o.netH = o.imageW = o.imageH = 100;
  o.thresh = 0.25f;
  std::vector<rt::Detection> dets;
  rt::getGaussianYoloDetections(h, o, dets);
  ASSERT_EQ(dets.size(), 1u);
  EXPECT_FLOAT_EQ(dets[0].bbox.x, 0.5f);
  EXPECT_FLOAT_EQ(dets[0].bbox.y, 0.5f);
  EXPECT_NEAR(dets[0].bbox.w, 0.1f, 1e-6);
  EXPECT_NEAR(dets[0].bbox.h, 0.2f, 1e-6);
  EXPECT_NEAR(dets[0].prob[0], 0.9f * 0.8f * (1.0f - 0.2f), 1e-6);
  // Below the objectness threshold: no candidate.
  out[8] = 0.2f;
  dets.clear();
  rt::getGaussianYoloDetections(h, o, dets);
  EXPECT_TRUE(dets.empty());
}

INSTANTIATE_TEST_SUITE_P(Kernels, ZooLayers,
                         ::testing::Values(KernelSet::Reference,
                                           KernelSet::Fast),
                         [](const auto &info) {
                           return info.param == KernelSet::Reference
                                      ? std::string("reference")
                                      : std::string("fast");
                         });

INSTANTIATE_TEST_SUITE_P(Kernels, CropLayer,
                         ::testing::Values(KernelSet::Reference,
                                           KernelSet::Fast),
                         [](const auto &info) {
                           return info.param == KernelSet::Reference
                                      ? std::string("reference")
                                      : std::string("fast");
                         });

} // namespace
