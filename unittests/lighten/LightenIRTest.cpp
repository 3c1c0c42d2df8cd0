//===- LightenIRTest.cpp - lightening passes keep the numbers -------------===//
//
// Pruning and factorization on synthetic networks, checked by running the
// models in the interpreter (reference kernels):
//   - channel pruning at ratio 0 is the identity;
//   - removing filters that are exactly zero does not change any output;
//   - a pruned model exports to cfg/weights that reproduce its outputs;
//   - a factorized layer computes what the original layer computes with the
//     composed kernel (exactly the same function, up to summation order).
//
//===----------------------------------------------------------------------===//

#include "qsim/Interpreter/Executor.h"
#include "qsim/Lighten/Decompositions.h"
#include "qsim/Lighten/Factorization.h"
#include "qsim/Lighten/Pruning.h"
#include "qsim/Target/ModelIO.h"
#include "qsim/Target/Darknet/DarknetExporter.h"
#include "qsim/Target/Darknet/DarknetImporter.h"

#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/FileSystem.h"

#include <Eigen/Dense>

#include <cmath>
#include <fstream>
#include <gtest/gtest.h>

using namespace qsim;
using namespace qsim::lighten;

namespace {

// Every channel coupling: depthwise, shortcut, grouped route, concat, head.
const char *kCoupledCfg = R"(
[net]
width=24
height=24
channels=3
[convolutional]
batch_normalize=1
filters=16
size=3
pad=1
activation=leaky
[convolutional]
batch_normalize=1
filters=16
groups=16
size=3
pad=1
activation=leaky
[convolutional]
batch_normalize=1
filters=16
size=1
activation=linear
[shortcut]
from=0
activation=linear
[convolutional]
batch_normalize=1
filters=32
size=3
stride=2
pad=1
activation=leaky
[route]
layers=4
groups=2
group_id=1
[convolutional]
batch_normalize=1
filters=16
size=3
pad=1
activation=leaky
[route]
layers=6,5
[convolutional]
filters=14
size=1
activation=linear
[yolo]
mask=0,1
anchors=4,6, 12,10
classes=2
num=2
)";

// Convolutions without batch norm (biases), a 5x5 and a strided 3x3.
const char *kPlainCfg = R"(
[net]
width=20
height=20
channels=3
[convolutional]
filters=12
size=3
pad=1
activation=leaky
[convolutional]
filters=10
size=3
stride=2
pad=1
activation=leaky
[convolutional]
batch_normalize=1
filters=9
size=5
pad=1
activation=leaky
[convolutional]
filters=14
size=1
activation=linear
[yolo]
mask=0,1
anchors=4,6, 12,10
classes=2
num=2
)";

class LightenIR : public ::testing::Test {
protected:
  LightenIR() : ctx(makeRegistry()) {}
  static mlir::DialectRegistry makeRegistry() {
    mlir::DialectRegistry r;
    registerQSimDialects(r);
    return r;
  }
  mlir::OwningOpRef<mlir::ModuleOp> import(const char *cfg, uint64_t seed = 7) {
    darknet::ImportOptions io;
    io.randomSeed = seed;
    return darknet::importDarknetFromString(&ctx, cfg, "test.cfg", io);
  }
  rt::Tensor input(mlir::ModuleOp m) {
    auto t =
        mlir::cast<mlir::ShapedType>(getMainFunc(m).getArgument(0).getType());
    rt::Tensor in(rt::DType::F32, t.getDimSize(1), t.getDimSize(2),
                  t.getDimSize(3));
    uint32_t s = 99;
    for (int64_t i = 0; i < in.numel(); ++i) {
      s = s * 1664525u + 1013904223u;
      in.f32()[i] = (s >> 8) * (1.0f / 16777216.0f);
    }
    return in;
  }
  /// The function results on `in` (reference kernels).
  std::vector<std::vector<float>> run(mlir::ModuleOp m, const rt::Tensor &in) {
    interp::ExecutorOptions eo;
    eo.kernels = interp::KernelSet::Reference;
    eo.threads = 1;
    std::string error;
    auto ex = interp::Executor::create(m, eo);
    EXPECT_TRUE(ex);
    if (!ex)
      return {};
    ex->setInput(in);
    ex->run();
    std::vector<std::vector<float>> out;
    for (const rt::Tensor &t : ex->outputs())
      out.push_back(t.toFloat());
    return out;
  }
  static std::vector<std::string> shapes(mlir::ModuleOp m) {
    std::vector<std::string> s;
    getMainFunc(m).walk([&](mlir::Operation *op) {
      for (mlir::Type t : op->getResultTypes()) {
        std::string str;
        llvm::raw_string_ostream os(str);
        os << t;
        s.push_back(str);
      }
    });
    return s;
  }
  static Conv2DOp conv(mlir::ModuleOp m, int64_t layer) {
    auto layers = getLayers(getMainFunc(m));
    return mlir::cast<Conv2DOp>((*layers)[layer].head);
  }
  static double relDiff(const std::vector<float> &a,
                        const std::vector<float> &b) {
    double e = 0, n = 0;
    for (size_t i = 0; i < a.size(); ++i)
      e += (a[i] - b[i]) * (double)(a[i] - b[i]), n += (double)a[i] * a[i];
    return n > 0 ? std::sqrt(e / n) : std::sqrt(e);
  }
  mlir::MLIRContext ctx;
};

// The refits' automatic sample count: at least 256 positions per image and
// 32768 over all images; an explicit count is kept as given.
TEST(ReconstructOptions, AutomaticPositionsPerImage) {
  lighten::ReconstructOptions o;
  EXPECT_EQ(o.samplesPerImage, 0);
  EXPECT_EQ(o.positionsPerImage(1), 32768);
  EXPECT_EQ(o.positionsPerImage(29), 1130); // ceil(32768 / 29)
  EXPECT_EQ(o.positionsPerImage(128), 256);
  EXPECT_EQ(o.positionsPerImage(1000), 256);
  EXPECT_EQ(o.positionsPerImage(0), 32768);
  o.samplesPerImage = 64;
  EXPECT_EQ(o.positionsPerImage(29), 64);
}

TEST_F(LightenIR, PruneRatioZeroIsIdentity) {
  auto m = import(kCoupledCfg);
  ASSERT_TRUE(m);
  auto before = shapes(*m);
  auto in = input(*m);
  auto ref = run(*m, in);
  for (int64_t roundTo : {1, 8}) {
    auto p = m->clone();
    ChannelPruneOptions o;
    o.ratio = 0;
    o.roundTo = roundTo;
    ASSERT_TRUE(mlir::succeeded(pruneChannels(p, o, nullptr)));
    EXPECT_EQ(shapes(p), before);
    auto got = run(p, in);
    ASSERT_EQ(got.size(), ref.size());
    for (size_t i = 0; i < ref.size(); ++i)
      EXPECT_EQ(got[i], ref[i]) << "output " << i << " round-to " << roundTo;
    p->erase();
  }
}

TEST_F(LightenIR, PruningZeroFiltersIsExact) {
  auto m = import(kPlainCfg);
  ASSERT_TRUE(m);
  // Zero every other filter (and bias) of layer 0: leaky(0) = 0, so these
  // channels contribute nothing and removing them must not change a bit.
  Conv2DOp c0 = conv(*m, 0);
  std::vector<float> w = getFloats(*c0.getWeight());
  std::vector<float> b = getFloats(*c0.getBias());
  int64_t per = w.size() / 12;
  for (int64_t f = 0; f < 12; f += 2) {
    std::fill(w.begin() + f * per, w.begin() + (f + 1) * per, 0.0f);
    b[f] = 0;
  }
  c0->setAttr("weight", makeFloatAttr(&ctx, {12, 3, 3, 3}, "w0", w));
  c0->setAttr("bias", makeFloatAttr(&ctx, {12}, "b0", b));
  auto in = input(*m);
  auto ref = run(*m, in);

  ChannelPruneOptions o;
  o.ratio = 0.5;
  o.roundTo = 1;
  o.layers = {0};
  ASSERT_TRUE(mlir::succeeded(pruneChannels(*m, o, nullptr)));
  EXPECT_EQ(conv(*m, 0).getFilters(), 6);
  EXPECT_EQ(conv(*m, 1).getInputChannels(), 6);
  EXPECT_EQ(conv(*m, 1).getFilters(), 10); // not in layers=
  // The kept filters are the non-zero ones, in order.
  std::vector<float> kept = getFloats(*conv(*m, 0).getWeight());
  for (int64_t f = 0; f < 6; ++f)
    EXPECT_EQ(kept[f * per], w[(2 * f + 1) * per]);
  auto got = run(*m, in);
  ASSERT_EQ(got.size(), ref.size());
  for (size_t i = 0; i < ref.size(); ++i)
    EXPECT_EQ(got[i], ref[i]);
}

TEST_F(LightenIR, PrunedCoupledModelExportsAndReproduces) {
  auto m = import(kCoupledCfg);
  ASSERT_TRUE(m);
  ChannelPruneOptions o;
  o.ratio = 0.5;
  o.roundTo = 4;
  ASSERT_TRUE(mlir::succeeded(pruneChannels(*m, o, nullptr)));
  // Couplings hold: depthwise groups = filters, shortcut operands agree, the
  // head keeps its 14 outputs.
  Conv2DOp dw = conv(*m, 1);
  EXPECT_EQ(dw.getGroups(), dw.getFilters());
  EXPECT_EQ(conv(*m, 0).getFilters(), dw.getFilters());
  EXPECT_EQ(conv(*m, 2).getFilters(), dw.getFilters());
  EXPECT_EQ(conv(*m, 0).getFilters(), 8);
  EXPECT_EQ(conv(*m, 4).getFilters(), 16);
  EXPECT_EQ(conv(*m, 8).getFilters(), 14);
  EXPECT_EQ(conv(*m, 8).getInputChannels(), 16);

  llvm::SmallString<128> dir;
  ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("qsim-prune", dir));
  std::string cfgPath = (dir + "/p.cfg").str(),
              wPath = (dir + "/p.weights").str();
  {
    std::error_code ec;
    llvm::raw_fd_ostream cfg(cfgPath, ec), weights(wPath, ec);
    ASSERT_FALSE(ec);
    ASSERT_TRUE(mlir::succeeded(darknet::exportDarknet(*m, cfg, &weights)));
  }
  darknet::ImportOptions io;
  io.weightsPath = wPath;
  auto back = darknet::importDarknet(&ctx, cfgPath, io);
  ASSERT_TRUE(back);
  auto in = input(*m);
  auto a = run(*m, in), b = run(*back, in);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_EQ(a[i], b[i]);
  llvm::sys::fs::remove_directories(dir);
}

/// The original model with layer `layer`'s kernel replaced by `w`.
mlir::OwningOpRef<mlir::ModuleOp> withKernel(mlir::ModuleOp m, int64_t layer,
                                             const ConvWeight &w) {
  mlir::OwningOpRef<mlir::ModuleOp> c = m.clone();
  auto layers = getLayers(getMainFunc(*c));
  (*layers)[layer].head->setAttr("weight", makeFloatAttr(m.getContext(),
                                                         {w.f, w.c, w.kh, w.kw},
                                                         "composed", w.data));
  return c;
}

ConvWeight weightOf(Conv2DOp c) {
  return {c.getFilters(), c.getInputChannels(), c.getKernelH(), c.getKernelW(),
          getFloats(*c.getWeight())};
}

struct FactorCase {
  const char *name;
  FactorizeMethod method;
  int64_t layer, rank1, rank2;
  int64_t expectedLayers; // in the whole model afterwards
};

class Factorized : public LightenIR,
                   public ::testing::WithParamInterface<FactorCase> {};

TEST_P(Factorized, EqualsTheComposedKernel) {
  const FactorCase &fc = GetParam();
  auto m = import(kPlainCfg);
  ASSERT_TRUE(m);
  ConvWeight w = weightOf(conv(*m, fc.layer));
  // What the chain must compute: the same conv with the composed kernel.
  ConvWeight composed;
  switch (fc.method) {
  case FactorizeMethod::Tucker2:
    composed = reconstruct(tucker2(w, fc.rank1, fc.rank2, 1.0));
    break;
  case FactorizeMethod::SpatialSvd:
    composed = reconstruct(spatialSvd(w, fc.rank1, 1.0));
    break;
  case FactorizeMethod::DepthwiseSeparable:
    composed = reconstruct(depthwiseSeparable(w));
    break;
  case FactorizeMethod::Kernel:
    FAIL() << "not a composed-kernel case";
  }
  auto reference = withKernel(*m, fc.layer, composed);

  FactorizeOptions o;
  o.method = fc.method;
  o.layers = {fc.layer};
  o.rank1 = fc.rank1;
  o.rank2 = fc.rank2;
  o.force = true;
  FactorizeResult r;
  ASSERT_TRUE(mlir::succeeded(factorizeConvs(*m, o, r)));
  ASSERT_EQ(r.layers.size(), 1u);
  EXPECT_TRUE(r.layers[0].applied);
  EXPECT_EQ((int64_t)getLayers(getMainFunc(*m))->size(), fc.expectedLayers);
  EXPECT_EQ(shapes(*m).back(), shapes(*reference).back());

  auto in = input(*m);
  auto a = run(*reference, in), b = run(*m, in);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_LT(relDiff(a[i], b[i]), 2e-5) << fc.name;
}

INSTANTIATE_TEST_SUITE_P(
    Methods, Factorized,
    ::testing::Values(
        // Full rank: the composed kernel is the original.
        FactorCase{"tucker2_full", FactorizeMethod::Tucker2, 1, 12, 10, 5},
        FactorCase{"tucker2_low", FactorizeMethod::Tucker2, 1, 5, 4, 7},
        // r1 = C: the input projection is folded into the core.
        FactorCase{"tucker2_fold_in", FactorizeMethod::Tucker2, 1, 12, 4, 6},
        FactorCase{"tucker2_bn", FactorizeMethod::Tucker2, 2, 6, 5, 7},
        FactorCase{"svd_full", FactorizeMethod::SpatialSvd, 1, 30, 0, 6},
        FactorCase{"svd_low", FactorizeMethod::SpatialSvd, 1, 7, 0, 6},
        FactorCase{"svd_bn", FactorizeMethod::SpatialSvd, 2, 9, 0, 6},
        FactorCase{"dws", FactorizeMethod::DepthwiseSeparable, 1, 0, 0, 6},
        FactorCase{"dws_bn", FactorizeMethod::DepthwiseSeparable, 2, 0, 0, 6}),
    [](const auto &info) { return std::string(info.param.name); });

TEST_F(LightenIR, FactorizedDepthwiseSeparableIsExactOnRankOneSlices) {
  auto m = import(kPlainCfg);
  ASSERT_TRUE(m);
  // W[f][c] = P[f][c] * D[c]: exactly depthwise-separable.
  Conv2DOp c1 = conv(*m, 1);
  ConvWeight w = weightOf(c1);
  for (int64_t f = 0; f < w.f; ++f)
    for (int64_t c = 0; c < w.c; ++c)
      for (int64_t t = 0; t < 9; ++t)
        w.data[(f * w.c + c) * 9 + t] =
            std::sin(1.0 + f * 0.7 + c * 1.3) * std::cos(0.3 * t + c);
  c1->setAttr("weight", makeFloatAttr(&ctx, {w.f, w.c, 3, 3}, "rank1", w.data));
  auto original = m->clone();
  auto in = input(*m);
  auto ref = run(original, in);
  FactorizeOptions o;
  o.method = FactorizeMethod::DepthwiseSeparable;
  o.layers = {1};
  FactorizeResult r;
  ASSERT_TRUE(mlir::succeeded(factorizeConvs(*m, o, r)));
  EXPECT_LT(r.layers[0].weightError, 1e-6);
  EXPECT_LT(r.layers[0].macsAfter, r.layers[0].macsBefore);
  auto got = run(*m, in);
  for (size_t i = 0; i < ref.size(); ++i)
    EXPECT_LT(relDiff(ref[i], got[i]), 2e-5);
  original->erase();
}

TEST_F(LightenIR, KernelChainOfAComposedKernelMatchesAwayFromBorders) {
  auto m = import(kPlainCfg);
  ASSERT_TRUE(m);
  // Layer 2's 5x5 kernel made of two 3x3 convs (10 -> 6 -> 9 channels).
  ConvWeight a{6, 10, 3, 3, {}}, b{9, 6, 3, 3, {}};
  for (ConvWeight *x : {&a, &b}) {
    x->data.resize(x->size());
    for (size_t i = 0; i < x->data.size(); ++i)
      x->data[i] = std::sin(0.37 * i + x->f) * 0.3f;
  }
  ConvWeight k = composeKernels(a, b);
  Conv2DOp c2 = conv(*m, 2);
  // pad=1 (not 2): the chain must keep the output size (10 -> 8).
  c2->setAttr("weight", makeFloatAttr(&ctx, {9, 10, 5, 5}, "k5", k.data));
  auto original = m->clone();
  FactorizeOptions o;
  o.method = FactorizeMethod::Kernel;
  o.layers = {2};
  o.rank1 = 6;
  FactorizeResult r;
  ASSERT_TRUE(mlir::succeeded(factorizeConvs(*m, o, r)));
  ASSERT_TRUE(r.layers[0].applied);
  EXPECT_LT(r.layers[0].weightError, 1e-3);
  EXPECT_EQ(shapes(*m).back(), shapes(original).back());
  // Compare the factorized layer's output (the batch norm after the last
  // 3x3) with the original's, away from the one-pixel border where the
  // chain's zero padding of the intermediate differs.
  interp::ExecutorOptions eo;
  eo.kernels = interp::KernelSet::Reference;
  eo.keepAllOutputs = true;
  std::string error;
  auto exA = interp::Executor::create(original, eo);
  auto exB = interp::Executor::create(*m, eo);
  ASSERT_TRUE(exA && exB);
  auto in = input(*m);
  exA->setInput(in);
  exA->run();
  exB->setInput(in);
  exB->run();
  rt::Tensor ya = exA->stepOutput(2), yb = exB->stepOutput(3);
  ASSERT_EQ(ya.c(), yb.c());
  ASSERT_EQ(ya.h(), yb.h());
  std::vector<float> ia, ib;
  for (int64_t c = 0; c < ya.c(); ++c)
    for (int64_t y = 1; y + 1 < ya.h(); ++y)
      for (int64_t x = 1; x + 1 < ya.w(); ++x) {
        ia.push_back(ya.f32()[(c * ya.h() + y) * ya.w() + x]);
        ib.push_back(yb.f32()[(c * ya.h() + y) * ya.w() + x]);
      }
  EXPECT_LT(relDiff(ia, ib), 2e-3);
  original->erase();
}

TEST_F(LightenIR, FactorizeRefusesNonConvolutionsAndSkipsIneligible) {
  auto m = import(kPlainCfg);
  ASSERT_TRUE(m);
  FactorizeOptions o;
  o.layers = {4}; // the yolo layer
  FactorizeResult r;
  ctx.getDiagEngine().registerHandler([](mlir::Diagnostic &) {});
  EXPECT_TRUE(mlir::failed(factorizeConvs(*m, o, r)));
  o.layers = {3}; // 1x1: not eligible for tucker2, reported as skipped
  ASSERT_TRUE(mlir::succeeded(factorizeConvs(*m, o, r)));
  ASSERT_EQ(r.layers.size(), 1u);
  EXPECT_FALSE(r.layers[0].applied);
  EXPECT_EQ(r.layers[0].note, "1x1 kernel");
}

} // namespace

namespace {

/// Inputs from their own seeds (the fit's and a held-out one).
rt::Tensor seededInput(mlir::ModuleOp m, uint32_t seed) {
  auto t = mlir::cast<mlir::ShapedType>(getMainFunc(m).getArgument(0).getType());
  rt::Tensor in(rt::DType::F32, t.getDimSize(1), t.getDimSize(2),
                t.getDimSize(3));
  for (int64_t i = 0; i < in.numel(); ++i) {
    seed = seed * 1664525u + 1013904223u;
    in.f32()[i] = (seed >> 8) * (1.0f / 16777216.0f);
  }
  return in;
}

/// Inputs seeded 1..n: the images a refit or sparsity sweep fits to.
std::vector<rt::Tensor> seededInputs(mlir::ModuleOp m, uint32_t n) {
  std::vector<rt::Tensor> inputs;
  for (uint32_t s = 1; s <= n; ++s)
    inputs.push_back(seededInput(m, s));
  return inputs;
}

} // namespace

// Filters 6..11 of layer 0 are 0.25 x filters 0..5 (weights and bias), so
// after leaky (positively homogeneous) channel 6+j is 0.25 x channel j: L1
// pruning removes 6..11, and the least-squares refit of layer 1 must carry
// their contribution exactly; without the refit the output is off.
TEST_F(LightenIR, ReconstructionRecoversRemovedScaledCopies) {
  auto m = import(kPlainCfg);
  ASSERT_TRUE(m);
  Conv2DOp c0 = conv(*m, 0);
  std::vector<float> w = getFloats(*c0.getWeight());
  std::vector<float> b = getFloats(*c0.getBias());
  int64_t per = w.size() / 12;
  for (int64_t f = 6; f < 12; ++f) {
    for (int64_t k = 0; k < per; ++k)
      w[f * per + k] = 0.25f * w[(f - 6) * per + k];
    b[f] = 0.25f * b[f - 6];
  }
  c0->setAttr("weight", makeFloatAttr(&ctx, {12, 3, 3, 3}, "w0", w));
  c0->setAttr("bias", makeFloatAttr(&ctx, {12}, "b0", b));
  rt::Tensor heldOut = seededInput(*m, 12345);
  auto ref = run(*m, heldOut);

  auto pruned = m->clone();
  ChannelPruneOptions o;
  o.ratio = 0.5;
  o.roundTo = 1;
  o.layers = {0};
  ASSERT_TRUE(mlir::succeeded(pruneChannels(pruned, o, nullptr)));
  ASSERT_EQ(conv(pruned, 1).getInputChannels(), 6);
  auto unfitted = run(pruned, heldOut);

  std::vector<rt::Tensor> fitInputs = seededInputs(*m, 3);
  std::map<int64_t, std::vector<int64_t>> kept;
  for (int64_t f = 0; f < 10; ++f)
    kept[1].push_back(f);
  ReconstructOptions ro;
  ro.samplesPerImage = 100;
  ro.ridge = 1e-9;
  std::vector<ReconstructedLayer> fits;
  ASSERT_TRUE(mlir::succeeded(
      reconstructPrunedConvs(pruned, *m, fitInputs, kept, ro, fits)));
  ASSERT_EQ(fits.size(), 1u);
  EXPECT_EQ(fits[0].layer, 1);
  EXPECT_EQ(fits[0].samples, 300);
  // Errors on the held-out quarter of the samples.
  EXPECT_GT(fits[0].errorBefore, 1e-2);
  EXPECT_LT(fits[0].errorAfter, 1e-4);
  auto fitted = run(pruned, heldOut);
  ASSERT_EQ(fitted.size(), ref.size());
  for (size_t i = 0; i < ref.size(); ++i) {
    EXPECT_GT(relDiff(ref[i], unfitted[i]), 1e-2) << "output " << i;
    EXPECT_LT(relDiff(ref[i], fitted[i]), 1e-4) << "output " << i;
  }
  pruned->erase();
}

// With a batch norm after the refit conv, the fitted offset moves into the
// batch norm's mean; a bad request names the layer.
TEST_F(LightenIR, ReconstructionThroughBatchNormAndItsErrors) {
  auto m = import(kPlainCfg);
  ASSERT_TRUE(m);
  auto pruned = m->clone();
  ChannelPruneOptions o;
  o.ratio = 0.5;
  o.roundTo = 1;
  o.layers = {1};
  ASSERT_TRUE(mlir::succeeded(pruneChannels(pruned, o, nullptr)));
  ASSERT_EQ(conv(pruned, 2).getInputChannels(), 5);
  // 8 x 64 positions for 5x5x5 + 1 unknowns per filter.
  std::vector<rt::Tensor> fitInputs = seededInputs(*m, 8);
  std::map<int64_t, std::vector<int64_t>> kept;
  for (int64_t f = 0; f < 9; ++f)
    kept[2].push_back(f);
  std::vector<float> meanBefore =
      getFloats(*getLayers(getMainFunc(pruned))->at(2).batchNorm.getMean());
  std::vector<ReconstructedLayer> fits;
  ASSERT_TRUE(mlir::succeeded(
      reconstructPrunedConvs(pruned, *m, fitInputs, kept, {}, fits)));
  ASSERT_EQ(fits.size(), 1u);
  EXPECT_LT(fits[0].errorAfter, fits[0].errorBefore);
  std::vector<float> meanAfter =
      getFloats(*getLayers(getMainFunc(pruned))->at(2).batchNorm.getMean());
  EXPECT_NE(meanAfter, meanBefore);
  EXPECT_FALSE(conv(pruned, 2).getBias());
  // The held-out output moves towards the original's.
  rt::Tensor heldOut = seededInput(*m, 777);
  auto ref = run(*m, heldOut);
  auto fitted = run(pruned, heldOut);
  auto unfittedModule = m->clone();
  ASSERT_TRUE(mlir::succeeded(pruneChannels(unfittedModule, o, nullptr)));
  auto unfitted = run(unfittedModule, heldOut);
  EXPECT_LT(relDiff(ref[0], fitted[0]), relDiff(ref[0], unfitted[0]));
  unfittedModule->erase();

  // Wrong filter count; a layer that is not a convolution; no images.
  std::vector<ReconstructedLayer> none;
  EXPECT_TRUE(mlir::failed(reconstructPrunedConvs(
      pruned, *m, fitInputs, {{2, {0, 1}}}, {}, none)));
  EXPECT_TRUE(mlir::failed(
      reconstructPrunedConvs(pruned, *m, fitInputs, {{4, {0}}}, {}, none)));
  EXPECT_TRUE(mlir::failed(
      reconstructPrunedConvs(pruned, *m, {}, {{2, kept[2]}}, {}, none)));
  pruned->erase();
}

// With nothing removed the refit reproduces every layer (the original
// weights are the least-squares solution): outputs unchanged.
TEST_F(LightenIR, RefitWithNothingRemovedKeepsTheOutputs) {
  auto m = import(kPlainCfg);
  ASSERT_TRUE(m);
  auto copy = m->clone();
  std::vector<rt::Tensor> fitInputs = seededInputs(*m, 6);
  std::vector<RefitRequest> requests;
  for (int64_t layer : {1, 2, 3}) {
    RefitRequest r{layer, layer, {}};
    for (int64_t f = 0; f < conv(copy, layer).getFilters(); ++f)
      r.originalFilters.push_back(f);
    requests.push_back(r);
  }
  std::vector<ReconstructedLayer> fits;
  ASSERT_TRUE(mlir::succeeded(
      reconstructConvs(copy, *m, fitInputs, requests, {}, fits)));
  ASSERT_EQ(fits.size(), 3u);
  for (const ReconstructedLayer &f : fits)
    EXPECT_LT(f.errorBefore, 1e-6) << "layer " << f.layer;
  rt::Tensor heldOut = seededInput(*m, 4242);
  auto ref = run(*m, heldOut);
  auto got = run(copy, heldOut);
  for (size_t i = 0; i < ref.size(); ++i)
    EXPECT_LT(relDiff(ref[i], got[i]), 1e-5) << "output " << i;
  copy->erase();
}

// SparseGPT's update zeroes exactly the asked share and costs less output
// error than zeroing the smallest weights, on held-out inputs too.
TEST_F(LightenIR, SecondOrderSparsityBeatsMagnitude) {
  auto m = import(kPlainCfg);
  ASSERT_TRUE(m);
  std::vector<rt::Tensor> fitInputs = seededInputs(*m, 8);
  auto byMagnitude = m->clone();
  auto bySecondOrder = m->clone();
  ASSERT_TRUE(mlir::succeeded(pruneMagnitude(byMagnitude, 0.5, {2}, nullptr)));
  std::vector<SparsifiedLayer> sparse;
  ASSERT_TRUE(mlir::succeeded(
      sparsifyConvs(bySecondOrder, fitInputs, 0.5, {2}, {}, sparse)));
  ASSERT_EQ(sparse.size(), 1u);
  EXPECT_EQ(sparse[0].layer, 2);
  EXPECT_EQ(sparse[0].weights, 9 * 10 * 25);
  EXPECT_EQ(sparse[0].zeroed, 9 * 10 * 25 / 2);
  std::vector<float> w = getFloats(conv(bySecondOrder, 2).getWeightAttr());
  EXPECT_EQ(std::count(w.begin(), w.end(), 0.0f), 9 * 10 * 25 / 2);
  rt::Tensor heldOut = seededInput(*m, 31337);
  auto ref = run(*m, heldOut);
  auto magnitude = run(byMagnitude, heldOut);
  auto secondOrder = run(bySecondOrder, heldOut);
  EXPECT_LT(relDiff(ref[0], secondOrder[0]), relDiff(ref[0], magnitude[0]));
  byMagnitude->erase();
  bySecondOrder->erase();
}

namespace {

/// Layer 2 of kPlainCfg with filters 4..8 zeroed: after its batch norm and
/// leaky those channels are constant, so layer 3 (1x1, 9 inputs, a bias)
/// sees 5 constant input channels.
void makeConstantChannels(mlir::MLIRContext &ctx, mlir::ModuleOp m) {
  auto layers = getLayers(getMainFunc(m));
  auto c2 = mlir::cast<Conv2DOp>((*layers)[2].head);
  std::vector<float> w = getFloats(c2.getWeightAttr());
  for (size_t i = 4 * 250; i < w.size(); ++i)
    w[i] = 0.0f;
  c2->setAttr("weight", makeFloatAttr(&ctx, {9, 10, 5, 5}, "w2", w));
}

} // namespace

// The bias joins the sweep as a column that is never zeroed: the weights of
// constant input channels go first (the bias absorbs them), so zeroing half
// of layer 3's weights (63 of 126, the 70 of the constant channels
// available) barely changes its output. Without the bias column the
// constant part could only be pushed onto the varying channels.
TEST_F(LightenIR, SecondOrderSparsityMovesConstantInputsIntoTheBias) {
  auto m = import(kPlainCfg);
  ASSERT_TRUE(m);
  makeConstantChannels(ctx, *m);
  std::vector<rt::Tensor> fitInputs = seededInputs(*m, 8);
  auto sparse = m->clone();
  std::vector<SparsifiedLayer> report;
  ASSERT_TRUE(
      mlir::succeeded(sparsifyConvs(sparse, fitInputs, 0.5, {3}, {}, report)));
  ASSERT_EQ(report.size(), 1u);
  EXPECT_EQ(report[0].zeroed, 63);
  EXPECT_LT(report[0].error, 0.03) << report[0].magnitudeError;
  EXPECT_GT(report[0].magnitudeError, 5 * report[0].error);
  // Most zeros are weights of the constant channels (4..8).
  std::vector<float> w = getFloats(conv(sparse, 3).getWeightAttr());
  int64_t varying = 0;
  for (int64_t f = 0; f < 14; ++f)
    for (int64_t c = 0; c < 4; ++c)
      varying += w[f * 9 + c] == 0.0f;
  EXPECT_LE(varying, 20);
  rt::Tensor heldOut = seededInput(*m, 4711);
  auto ref = run(*m, heldOut);
  auto got = run(sparse, heldOut);
  EXPECT_LT(relDiff(ref[0], got[0]), 0.05) << varying;
  sparse->erase();
}

// The mask is chosen across the filters of a block in the units after the
// batch norm: filters whose gamma / sd is tiny contribute almost nothing,
// so their weights go first (on raw weights the four filters would lose
// about half of theirs, like the others).
TEST_F(LightenIR, SecondOrderSparsityWeighsFiltersByTheirBatchNormScale) {
  auto m = import(kPlainCfg);
  ASSERT_TRUE(m);
  BatchNormOp bn = (*getLayers(getMainFunc(*m)))[2].batchNorm;
  ASSERT_TRUE(bn && bn.getScale());
  std::vector<float> gamma = getFloats(*bn.getScale());
  for (int f = 0; f < 4; ++f)
    gamma[f] *= 1e-3f;
  bn->setAttr("scale", makeFloatAttr(&ctx, {9}, "gamma", gamma));
  std::vector<rt::Tensor> fitInputs = seededInputs(*m, 8);
  std::vector<SparsifiedLayer> report;
  ASSERT_TRUE(
      mlir::succeeded(sparsifyConvs(*m, fitInputs, 0.5, {2}, {}, report)));
  ASSERT_EQ(report.size(), 1u);
  EXPECT_EQ(report[0].zeroed, 9 * 250 / 2);
  std::vector<float> w = getFloats(conv(*m, 2).getWeightAttr());
  int64_t quiet = std::count(w.begin(), w.begin() + 4 * 250, 0.0f);
  EXPECT_GE(quiet, 950) << "of the 1000 weights of the four quiet filters";
}

// allocation=sensitivity: the per-layer shares keep the asked total exactly,
// and the layer whose weights cost nothing (layer 3: 5 of its 9 inputs are
// constant) takes at least its uniform share, the rest going where the
// output error grows slowest.
TEST_F(LightenIR, SparsityAllocationKeepsTheTotal) {
  auto m = import(kPlainCfg);
  ASSERT_TRUE(m);
  makeConstantChannels(ctx, *m);
  std::vector<rt::Tensor> fitInputs = seededInputs(*m, 8);
  std::map<int64_t, double> share;
  ASSERT_TRUE(
      mlir::succeeded(allocateSparsity(*m, fitInputs, 0.5, {}, {}, share)));
  ASSERT_EQ(share.size(), 4u);
  std::map<int64_t, double> weights = {
      {0, 12 * 27}, {1, 10 * 108}, {2, 9 * 250}, {3, 14 * 9}};
  double zeros = 0, total = 0;
  for (auto &[layer, s] : share) {
    EXPECT_GE(s, 0.0) << "layer " << layer;
    EXPECT_LE(s, 0.95) << "layer " << layer;
    zeros += s * weights[layer];
    total += weights[layer];
  }
  EXPECT_NEAR(zeros / total, 0.5, 1e-9);
  EXPECT_GE(share[3], 0.5);
  // The sweep zeroes those shares (up to rounding per block of columns).
  std::vector<SparsifiedLayer> report;
  ASSERT_TRUE(mlir::succeeded(
      sparsifyConvs(*m, fitInputs, 0.5, {}, {}, report, {}, share)));
  ASSERT_EQ(report.size(), 4u);
  int64_t zeroed = 0;
  for (const SparsifiedLayer &r : report)
    zeroed += r.zeroed;
  EXPECT_NEAR((double)zeroed, 0.5 * total, 8.0);
  // Without images it is refused.
  MagnitudePruneOptions mo;
  mo.allocation = SparsityAllocation::Sensitivity;
  ctx.getDiagEngine().registerHandler([](mlir::Diagnostic &) {});
  EXPECT_TRUE(mlir::failed(pruneMagnitude(*m, mo, nullptr)));
}

// After the sweep chose the mask, each filter's kept weights (and its bias)
// are the exact minimiser of the damped objective (w' - w)(H + lambda)
// (w' - w)^T on that support: its gradient vanishes on the kept weights.
// The sweep alone only updates the columns after each removal and leaves
// a gradient there. Layer 3 of kPlainCfg is a 1x1 conv on 10x10 outputs
// (fewer than the 256 samples per image), so H is every position's X^T X.
TEST_F(LightenIR, SecondOrderSparsityRefitsTheKeptWeightsExactly) {
  auto m = import(kPlainCfg);
  ASSERT_TRUE(m);
  std::vector<rt::Tensor> fitInputs = seededInputs(*m, 4);
  const int64_t in = 9, filters = 14, cols = in + 1;
  Eigen::MatrixXd h = Eigen::MatrixXd::Zero(cols, cols);
  interp::ExecutorOptions eo;
  eo.kernels = interp::KernelSet::Reference;
  eo.keepAllOutputs = true;
  std::string error;
  auto ex = interp::Executor::create(*m, eo);
  ASSERT_TRUE(ex);
  size_t step = 0;
  while (step < ex->steps().size() && ex->steps()[step].layer != 3)
    ++step;
  ASSERT_LT(step, ex->steps().size());
  for (const rt::Tensor &t : fitInputs) {
    ex->setInput(t);
    ex->run();
    rt::Tensor x = ex->stepInputs(step)[0];
    ASSERT_EQ(x.c(), in);
    int64_t hw = x.h() * x.w();
    Eigen::MatrixXd rows = Eigen::MatrixXd::Ones(hw, cols);
    for (int64_t c = 0; c < in; ++c)
      for (int64_t i = 0; i < hw; ++i)
        rows(i, c) = x.f32()[c * hw + i];
    h += rows.transpose() * rows;
  }
  // The sweep's damping: 1 % of the mean diagonal of the weights' columns.
  double lambda = 1e-2 * h.diagonal().head(in).mean();
  h.diagonal().array() += lambda;
  // Layer 3's [weights | bias], one row per filter.
  auto weightsAndBias = [&] {
    Eigen::MatrixXd wb(filters, cols);
    std::vector<float> w = getFloats(conv(*m, 3).getWeightAttr());
    std::vector<float> b = getFloats(*conv(*m, 3).getBias());
    for (int64_t f = 0; f < filters; ++f) {
      for (int64_t c = 0; c < in; ++c)
        wb(f, c) = w[f * in + c];
      wb(f, in) = b[f];
    }
    return wb;
  };
  Eigen::MatrixXd dense = weightsAndBias();
  std::vector<SparsifiedLayer> report;
  ASSERT_TRUE(
      mlir::succeeded(sparsifyConvs(*m, fitInputs, 0.5, {3}, {}, report)));
  Eigen::MatrixXd sparse = weightsAndBias();
  Eigen::MatrixXd gradient = (sparse - dense) * h;
  double scale =
      gradient.cwiseAbs().maxCoeff() + (dense * h).cwiseAbs().maxCoeff();
  for (int64_t f = 0; f < filters; ++f)
    for (int64_t c = 0; c < cols; ++c)
      if (c == in || sparse(f, c) != 0)
        EXPECT_LT(std::fabs(gradient(f, c)), 1e-5 * scale)
            << "filter " << f << " column " << c;
}
