//===- RecoveryTest.cpp - equalization and bias correction numerics ------===//
//
// Cross-layer equalization must leave the float model's function unchanged
// (it only moves scale between layers) while evening out the channel
// ranges; bias correction must bring the quantized model's mean outputs
// back to the float model's.
//
//===----------------------------------------------------------------------===//

#include "../TestEnv.h"

#include "qsim/Dialect/QSim/Transforms/Passes.h"
#include "qsim/Quant/AdaRound.h"
#include "qsim/Quant/BiasCorrection.h"
#include "qsim/Quant/Calibration.h"
#include "qsim/Quant/Equalization.h"
#include "qsim/Quant/Precision.h"
#include "qsim/Quant/Quantizer.h"
#include "qsim/Quant/Recovery.h"
#include "qsim/Runtime/Image.h"
#include "qsim/Target/Darknet/DarknetImporter.h"
#include "qsim/Target/ModelIO.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "llvm/Support/FileSystem.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace qsim;
using namespace qsim::quantization;

namespace {

class RecoveryTest : public ::testing::Test {
protected:
  RecoveryTest() : ctx(registry()) { ctx.loadAllAvailableDialects(); }
  static mlir::DialectRegistry registry() {
    mlir::DialectRegistry r;
    registerQSimDialects(r);
    return r;
  }
  mlir::OwningOpRef<mlir::ModuleOp> import(const std::string &cfg) {
    darknet::ImportOptions io;
    io.randomSeed = 11;
    return darknet::importDarknetFromString(&ctx, cfg, "test.cfg", io);
  }
  static rt::Tensor input(int64_t c, int64_t h, int64_t w, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    rt::Tensor t(rt::DType::F32, c, h, w);
    for (int64_t i = 0; i < t.numel(); ++i)
      t.f32()[i] = u(rng);
    return t;
  }
  /// The model's outputs on `in`, concatenated.
  static std::vector<float> run(mlir::ModuleOp module, const rt::Tensor &in) {
    std::string error;
    auto ex = interp::Executor::create(module, {});
    EXPECT_TRUE(ex);
    if (!ex)
      return {};
    ex->setInput(in);
    ex->run();
    std::vector<float> out;
    for (const rt::Tensor &t : ex->outputs()) {
      std::vector<float> v = t.toFloat();
      out.insert(out.end(), v.begin(), v.end());
    }
    return out;
  }
  /// max |a - b| / max |a|.
  static double relativeError(const std::vector<float> &a,
                              const std::vector<float> &b) {
    EXPECT_EQ(a.size(), b.size());
    double diff = 0, ref = 0;
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
      diff = std::max(diff, (double)std::fabs(a[i] - b[i]));
      ref = std::max(ref, (double)std::fabs(a[i]));
    }
    return ref > 0 ? diff / ref : diff;
  }
  /// Multiplies output channel c of `conv` (weights and bias) by
  /// factors[c % factors.size()]: channel ranges as uneven as trained
  /// depthwise layers have them.
  static void skewChannels(Conv2DOp conv, const std::vector<float> &factors) {
    std::vector<float> w = getFloats(conv.getWeightAttr());
    std::vector<float> b = getFloats(conv.getBiasAttr());
    int64_t per = w.size() / b.size();
    for (size_t c = 0; c < b.size(); ++c) {
      float f = factors[c % factors.size()];
      for (int64_t k = 0; k < per; ++k)
        w[c * per + k] *= f;
      b[c] *= f;
    }
    auto ctx = conv->getContext();
    conv.setWeightAttr(makeFloatAttr(
        ctx, conv.getWeightAttr().getShapedType().getShape(), "skew_w", w));
    conv.setBiasAttr(makeFloatAttr(ctx, {(int64_t)b.size()}, "skew_b", b));
  }
  static Conv2DOp convOfLayer(mlir::ModuleOp module, int64_t layer) {
    Conv2DOp found;
    module.walk([&](Conv2DOp c) {
      if (getLayerIndexFromLoc(c->getLoc()) == layer)
        found = c;
    });
    return found;
  }
  /// Calibrates `module` (all int8) on `count` written images of
  /// `size` x `size`; returns their network inputs.
  std::vector<rt::Tensor> calibrate(mlir::ModuleOp module,
                                    const std::string &name, int count,
                                    int size) {
    std::string dir = ::testing::TempDir() + "/" + name, error;
    EXPECT_FALSE(llvm::sys::fs::create_directories(dir));
    std::vector<std::string> files;
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    for (int i = 0; i < count; ++i) {
      rt::Image im;
      im.w = im.h = size;
      im.c = 3;
      for (int k = 0; k < size * size * 3; ++k)
        im.data.push_back(0.25f + 0.5f * u(rng) * ((k / size) % 3 == 0));
      files.push_back(dir + "/img" + std::to_string(i) + ".png");
      EXPECT_TRUE(rt::writePng(files.back(), im, error)) << error;
    }
    CalibrationOptions co;
    co.images = files;
    co.progress = false;
    EXPECT_TRUE(succeeded(calibrateModule(module, co)));
    PrecisionPlan plan;
    plan.preset = PrecisionPreset::AllInt8;
    EXPECT_TRUE(mlir::succeeded(assignPrecision(module, plan)));
    std::vector<rt::Tensor> inputs;
    EXPECT_TRUE(loadNetworkInputs(module, files, 0, inputs, error)) << error;
    return inputs;
  }
  mlir::MLIRContext ctx;
};

// 0 feeds 2 through a max pool and 6 through a concatenating route; 2 is
// depthwise; 6 is coupled to 8 by a shortcut; 7 is relu6.
const char *kChain = R"([net]
width=16
height=16
channels=3

[convolutional]
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
filters=8
groups=8
size=3
stride=1
pad=1
activation=relu

[convolutional]
filters=12
size=1
activation=leaky

[upsample]
stride=2

[route]
layers=4,0

[convolutional]
filters=10
size=3
pad=1
activation=linear

[convolutional]
filters=10
size=1
activation=relu6

[shortcut]
from=6
activation=linear

[convolutional]
filters=6
size=1
activation=linear
)";

TEST_F(RecoveryTest, EqualizationPreservesTheFunctionAndEvensRanges) {
  auto module = import(kChain);
  ASSERT_TRUE(module);
  skewChannels(convOfLayer(*module, 0), {0.02f, 1.0f, 30.0f, 0.5f});
  skewChannels(convOfLayer(*module, 2), {5.0f, 0.1f});
  rt::Tensor in = input(3, 16, 16, 1);
  std::vector<float> before = run(*module, in);
  std::vector<std::string> remarks;
  mlir::ScopedDiagnosticHandler handler(&ctx, [&](mlir::Diagnostic &d) {
    remarks.push_back(d.str());
    return mlir::success();
  });
  auto result = equalizeModule(*module, {});
  ASSERT_TRUE(mlir::succeeded(result));
  std::vector<float> after = run(*module, in);
  EXPECT_LE(relativeError(before, after), 1e-5);

  // 0 (read by 2 and 6), 2 (read by 3) and 3 (read by 6) are equalized.
  ASSERT_EQ(result->rows.size(), 3u);
  EXPECT_EQ(result->rows[0].layer, 0);
  EXPECT_EQ(result->rows[0].consumers, (std::vector<int64_t>{2, 6}));
  // The skewed producer keeps more precision (a depthwise layer between
  // two pairs trades some of its own for its neighbours').
  EXPECT_GT(result->rows[0].precisionAfter, result->rows[0].precisionBefore);
  // Equalized: filter c of layer 0 and the weights reading channel c (in
  // layer 2, depthwise, and at offset 12 of layer 6) have the same range.
  std::vector<float> w0 = getFloats(convOfLayer(*module, 0).getWeightAttr()),
                     w2 = getFloats(convOfLayer(*module, 2).getWeightAttr()),
                     w6 = getFloats(convOfLayer(*module, 6).getWeightAttr());
  for (int c = 0; c < 8; ++c) {
    float r1 = 0, r2 = 0;
    for (int k = 0; k < 27; ++k)
      r1 = std::max(r1, std::fabs(w0[c * 27 + k]));
    for (int k = 0; k < 9; ++k)
      r2 = std::max(r2, std::fabs(w2[c * 9 + k]));
    for (int f = 0; f < 10; ++f)
      for (int k = 0; k < 9; ++k)
        r2 = std::max(r2, std::fabs(w6[(f * 20 + 12 + c) * 9 + k]));
    EXPECT_NEAR(r1 / r2, 1.0, 1e-3) << "channel " << c;
  }
  // The others are left alone with a reason.
  auto mentions = [&](const std::string &a, const std::string &b) {
    for (const std::string &r : remarks)
      if (r.find(a) != std::string::npos && r.find(b) != std::string::npos)
        return true;
    return false;
  };
  EXPECT_TRUE(mentions("layer 6", "reach layer 8 (shortcut)"));
  EXPECT_TRUE(mentions("layer 7", "relu6 is not positively homogeneous"));
  EXPECT_TRUE(mentions("layer 9", "a model output"));
}

TEST_F(RecoveryTest, EqualizationRefusesUnfoldedBatchNormAndCalibratedModels) {
  auto module = import("[net]\nwidth=8\nheight=8\nchannels=3\n"
                       "[convolutional]\nbatch_normalize=1\nfilters=4\n"
                       "size=1\nactivation=leaky\n"
                       "[convolutional]\nfilters=2\nsize=1\n"
                       "activation=linear\n");
  ASSERT_TRUE(module);
  std::string message;
  mlir::ScopedDiagnosticHandler handler(&ctx, [&](mlir::Diagnostic &d) {
    if (d.getSeverity() == mlir::DiagnosticSeverity::Error)
      message = d.str();
    return mlir::success();
  });
  EXPECT_TRUE(mlir::failed(equalizeModule(*module, {})));
  EXPECT_NE(message.find("fold its batch norm"), std::string::npos);
  ASSERT_TRUE(mlir::succeeded(foldBatchNorms(*module)));
  getMainFunc(*module).setArgAttr(0, "qsim.calib", mlir::UnitAttr::get(&ctx));
  EXPECT_TRUE(mlir::failed(equalizeModule(*module, {})));
  EXPECT_NE(message.find("equalize before --qsim-calibrate"),
            std::string::npos);
}

TEST_F(RecoveryTest, EqualizationPreservesRealModels) {
  QSIM_REQUIRE_MODELS();
  for (const char *name : {"yolo-fastest-1.1-xl", "yolov3-tiny-aix2022"}) {
    std::string m = testenv::modelsDir();
    darknet::ImportOptions io;
    io.weightsPath = m + "/weights/" + name + ".weights";
    if (!testenv::isFile(io.weightsPath))
      GTEST_SKIP() << "no " << io.weightsPath;
    auto module =
        darknet::importDarknet(&ctx, m + "/darknet/" + name + ".cfg", io);
    ASSERT_TRUE(module) << name;
    ASSERT_TRUE(mlir::succeeded(foldBatchNorms(*module)));
    std::string error;
    auto ex = interp::Executor::create(*module, {});
    ASSERT_TRUE(ex);
    shapes::CHW shape = ex->inputShape();
    rt::Tensor in = input(shape.c, shape.h, shape.w, 3);
    ex.reset();
    std::vector<float> before = run(*module, in);
    mlir::ScopedDiagnosticHandler quiet(&ctx, [](mlir::Diagnostic &d) {
      return mlir::success(d.getSeverity() == mlir::DiagnosticSeverity::Remark);
    });
    auto result = equalizeModule(*module, {});
    ASSERT_TRUE(mlir::succeeded(result)) << name;
    EXPECT_GT(result->rows.size(), 0u) << name;
    EXPECT_LE(relativeError(before, run(*module, in)), 1e-5) << name;
  }
}

// Per-tensor weights of a layer with one large channel round the others
// coarsely: the quantized model's outputs are off on average.
const char *kSkewed = R"([net]
width=24
height=24
channels=3

[convolutional]
filters=16
size=3
stride=1
pad=1
activation=linear

[convolutional]
filters=8
size=1
activation=linear
)";

TEST_F(RecoveryTest, BiasCorrectionRestoresMeanOutputs) {
  auto module = import(kSkewed);
  ASSERT_TRUE(module);
  skewChannels(convOfLayer(*module, 0), {40.0f, 1.0f, 0.7f, 1.3f});
  std::vector<rt::Tensor> inputs = calibrate(*module, "bias-correct", 6, 24);
  ASSERT_EQ(inputs.size(), 6u);

  QuantizeOptions qo;
  qo.perChannelWeights = false;
  mlir::OwningOpRef<mlir::ModuleOp> plain = module->clone();
  BiasCorrectionOptions bo;
  bo.quantize = qo;
  bo.progress = false;
  auto rows = correctBiases(*module, inputs, bo);
  ASSERT_TRUE(mlir::succeeded(rows));
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_GT((*rows)[0].maxShift, 0.0);

  // Mean error per output channel over the images, float vs int8.
  mlir::OwningOpRef<mlir::ModuleOp> floatModel = plain->clone();
  ASSERT_TRUE(mlir::succeeded(quantizeModule(*plain, qo)));
  ASSERT_TRUE(mlir::succeeded(quantizeModule(*module, qo)));
  auto meanError = [&](mlir::ModuleOp q) {
    std::vector<double> sum;
    for (const rt::Tensor &in : inputs) {
      std::vector<float> f = run(*floatModel, in), o = run(q, in);
      sum.resize(f.size(), 0.0);
      for (size_t i = 0; i < f.size(); ++i)
        sum[i] += o[i] - f[i];
    }
    // Per channel (8 channels of 24 x 24).
    double total = 0;
    size_t per = sum.size() / 8;
    for (size_t c = 0; c < 8; ++c) {
      double s = 0;
      for (size_t i = 0; i < per; ++i)
        s += sum[c * per + i];
      total += std::fabs(s / (per * inputs.size()));
    }
    return total / 8;
  };
  double before = meanError(*plain), after = meanError(*module);
  EXPECT_GT(before, 0.0);
  EXPECT_LT(after, 0.25 * before) << "before " << before << " after " << after;
}

TEST_F(RecoveryTest, BiasCorrectionNeedsAnInt8Plan) {
  auto module = import(kSkewed);
  ASSERT_TRUE(module);
  std::string message;
  mlir::ScopedDiagnosticHandler handler(&ctx, [&](mlir::Diagnostic &d) {
    message = d.str();
    return mlir::success();
  });
  std::vector<rt::Tensor> inputs = {input(3, 24, 24, 1)};
  EXPECT_TRUE(mlir::failed(correctBiases(*module, inputs, {})));
  EXPECT_NE(message.find("no convolutional or connected layer is planned int8"),
            std::string::npos);
}

// A layer whose inputs are correlated (as neighbouring pixels are): the
// best rounding is not the nearest one.
TEST_F(RecoveryTest, AdaRoundIsNeverWorseThanNearestAndUsuallyBetter) {
  const int64_t filters = 6, size = 27, n = 400;
  std::mt19937 rng(3);
  std::normal_distribution<double> normal;
  std::vector<float> w(filters * size);
  for (float &v : w)
    v = (float)(0.1 * normal(rng));
  QuantizeOptions qo;
  std::vector<float> scales = chooseWeightScales(w, filters, qo);
  // Rows of X: a common component plus noise, so H has large off-diagonal
  // terms.
  std::vector<double> gram(size * size, 0.0);
  for (int64_t r = 0; r < n; ++r) {
    double common = normal(rng);
    std::vector<double> x(size);
    for (int64_t i = 0; i < size; ++i)
      x[i] = common + 0.3 * normal(rng);
    for (int64_t i = 0; i < size; ++i)
      for (int64_t j = 0; j < size; ++j)
        gram[i * size + j] += x[i] * x[j] / n;
  }
  AdaRoundOptions o;
  RoundingResult r = learnRounding(w, scales, size, gram, o);
  std::vector<int8_t> nearest(w.size());
  for (size_t k = 0; k < w.size(); ++k) {
    nearest[k] = rt::quantizeWeight(w[k], scales[k / size]);
    double g = w[k] / scales[k / size];
    EXPECT_LE(std::fabs(r.q[k] - g), 1.0) << "weight " << k; // floor or ceil
  }
  EXPECT_NEAR(r.nearestLoss, roundingLoss(w, nearest, scales, size, gram),
              1e-9 * r.nearestLoss);
  EXPECT_NEAR(r.loss, roundingLoss(w, r.q, scales, size, gram),
              1e-9 * r.nearestLoss);
  // Per output channel, never worse; over the layer, clearly better.
  for (int64_t f = 0; f < filters; ++f) {
    auto row = [&](const std::vector<int8_t> &q) {
      return roundingLoss(llvm::ArrayRef<float>(w).slice(f * size, size),
                          llvm::ArrayRef<int8_t>(q).slice(f * size, size),
                          llvm::ArrayRef<float>(scales).slice(f, 1), size,
                          gram);
    };
    EXPECT_LE(row(r.q), row(nearest) * (1 + 1e-12)) << "channel " << f;
  }
  EXPECT_LT(r.loss, 0.8 * r.nearestLoss);
  EXPECT_GT(r.changed, 0);
}

// The asymmetric problem (target=float): the rounded weights see x_q, the
// target is w x_f. The loss learnRounding reports is the sample mean of
// (w~ x_q - w x_f)^2, and no row is worse than nearest rounding on it.
TEST_F(RecoveryTest, AsymmetricAdaRoundMatchesTheSampleLossAndBeatsNearest) {
  const int64_t filters = 5, size = 18, n = 600;
  std::mt19937 rng(7);
  std::normal_distribution<double> normal;
  std::vector<float> w(filters * size);
  for (float &v : w)
    v = (float)(0.2 * normal(rng));
  AdaRoundOptions o;
  o.quantize.weightBits = 4;
  std::vector<float> scales = chooseWeightScales(w, filters, o.quantize);
  // x_f correlated (as neighbouring pixels), x_q = x_f plus an error that
  // the earlier layers' quantization would leave (itself correlated).
  std::vector<std::vector<double>> xf(n, std::vector<double>(size)), xq = xf;
  for (int64_t r = 0; r < n; ++r) {
    double common = normal(rng), drift = 0.03 * normal(rng);
    for (int64_t i = 0; i < size; ++i) {
      xf[r][i] = common + 0.3 * normal(rng);
      xq[r][i] = xf[r][i] + drift + 0.02 * normal(rng);
    }
  }
  std::vector<double> gram(size * size, 0.0), cross(size * size, 0.0),
      energy(filters, 0.0);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t i = 0; i < size; ++i)
      for (int64_t j = 0; j < size; ++j) {
        gram[i * size + j] += xq[r][i] * xq[r][j] / n;
        cross[i * size + j] += xq[r][i] * xf[r][j] / n;
      }
    for (int64_t f = 0; f < filters; ++f) {
      double y = 0;
      for (int64_t i = 0; i < size; ++i)
        y += w[f * size + i] * xf[r][i];
      energy[f] += y * y / n;
    }
  }
  // The sample loss of integers q at scales s, row f.
  auto sampleLossAt = [&](const std::vector<int8_t> &q,
                          const std::vector<float> &s, int64_t f) {
    double sum = 0;
    for (int64_t r = 0; r < n; ++r) {
      double e = 0;
      for (int64_t i = 0; i < size; ++i)
        e += q[f * size + i] * (double)s[f] * xq[r][i] -
             w[f * size + i] * xf[r][i];
      sum += e * e;
    }
    return sum / n;
  };
  auto sampleLoss = [&](const std::vector<int8_t> &q, int64_t f) {
    return sampleLossAt(q, scales, f);
  };
  RoundingResult r = learnRounding(w, scales, size, gram, cross, energy, o);
  std::vector<int8_t> nearest(w.size());
  for (size_t k = 0; k < w.size(); ++k) {
    nearest[k] = rt::quantizeWeight(w[k], scales[k / size], 4);
    double g = w[k] / scales[k / size];
    EXPECT_LE(std::fabs(r.q[k] - g), 1.0) << "weight " << k; // floor or ceil
    EXPECT_LE(std::abs(r.q[k]), 7) << "weight " << k;
  }
  double nearestTotal = 0, learnedTotal = 0;
  for (int64_t f = 0; f < filters; ++f) {
    double ln = sampleLoss(nearest, f), ll = sampleLoss(r.q, f);
    EXPECT_LE(ll, ln * (1 + 1e-9)) << "channel " << f;
    nearestTotal += ln;
    learnedTotal += ll;
  }
  EXPECT_NEAR(r.nearestLoss, nearestTotal, 1e-6 * nearestTotal);
  EXPECT_NEAR(r.loss, learnedTotal, 1e-6 * nearestTotal);
  EXPECT_LT(r.loss, 0.8 * r.nearestLoss);
  // The symmetric problem on x_q alone: at 4 bits it also beats nearest
  // on its own loss (with the regulariser at 0.01 it kept nearest on every
  // channel).
  RoundingResult sym = learnRounding(w, scales, size, gram, o);
  EXPECT_LT(sym.loss, 0.8 * sym.nearestLoss);
  EXPECT_LT(sym.keptRows, filters);

  // search-scales: per row, the chosen scale's nearest rounding is never
  // worse on the same loss than the max rule's, and no larger.
  std::vector<float> found =
      searchScales(w, scales, size, gram, cross, energy, o);
  std::vector<int8_t> nearestFound(w.size());
  for (size_t k = 0; k < w.size(); ++k)
    nearestFound[k] = rt::quantizeWeight(w[k], found[k / size], 4);
  double foundTotal = 0;
  for (int64_t f = 0; f < filters; ++f) {
    EXPECT_LE(found[f], scales[f]) << "channel " << f;
    double lf = sampleLossAt(nearestFound, found, f);
    EXPECT_LE(lf, sampleLoss(nearest, f) * (1 + 1e-9)) << "channel " << f;
    foundTotal += lf;
  }
  EXPECT_LT(foundTotal, nearestTotal);
}

// weight-range=mse: per block, never a larger squared rounding error than
// the max rule (ratio 1 is a candidate), clearly smaller with outliers at 4
// bits; weights already on a grid get their scale back (AdaRound's
// rounded weights are stored as the integers it learned).
TEST(WeightRange, MseClipsOutliersAndKeepsGridScales) {
  const int64_t channels = 6, per = 64;
  std::mt19937 rng(9);
  std::student_t_distribution<double> heavy(3.0);
  std::vector<float> w(channels * per);
  for (float &v : w)
    v = (float)(0.05 * heavy(rng));
  for (bool perChannel : {true, false}) {
    QuantizeOptions max, mse;
    max.weightBits = mse.weightBits = 4;
    max.perChannelWeights = mse.perChannelWeights = perChannel;
    mse.weightRange = WeightRange::Mse;
    std::vector<float> sMax = weightScales(w, channels, max),
                       sMse = weightScales(w, channels, mse);
    double eMax = 0, eMse = 0;
    for (int64_t c = 0; c < channels; ++c) {
      double cMax = 0, cMse = 0;
      for (int64_t i = 0; i < per; ++i) {
        float v = w[c * per + i];
        cMax += std::pow(v - rt::quantizeWeight(v, sMax[c], 4) * sMax[c], 2);
        cMse += std::pow(v - rt::quantizeWeight(v, sMse[c], 4) * sMse[c], 2);
      }
      if (perChannel)
        EXPECT_LE(cMse, cMax * (1 + 1e-12)) << "channel " << c;
      EXPECT_LE(sMse[c], sMax[c]);
      eMax += cMax;
      eMse += cMse;
    }
    EXPECT_LT(eMse, 0.95 * eMax) << (perChannel ? "per-channel" : "per-tensor");
    // On the grid: q * s with |q| = 7 somewhere in every channel.
    std::vector<float> grid(w.size());
    for (size_t k = 0; k < w.size(); ++k)
      grid[k] = rt::quantizeWeight(w[k], sMse[k / per], 4) * sMse[k / per];
    std::vector<float> back = weightScales(grid, channels, mse);
    for (int64_t c = 0; c < channels; ++c)
      EXPECT_NEAR(back[c], sMse[c], 1e-6 * sMse[c]) << "channel " << c;
  }
  // 8 bits and pow2 scales: still never worse than the max rule.
  QuantizeOptions p2;
  p2.pow2Scales = true;
  p2.weightRange = WeightRange::Mse;
  std::vector<float> s = weightScales(w, channels, p2);
  for (int64_t c = 0; c < channels; ++c)
    EXPECT_EQ(s[c], std::exp2(std::round(std::log2(s[c])))) << "channel " << c;
}

// AdaRound with a float target and bias correction at 4 bits: the
// quantized model's outputs get closer to the float model's than with
// nearest rounding, both in mean (the bias) and in mean squared error.
TEST_F(RecoveryTest, AdaRoundWithBiasCorrectionApproachesTheFloatModel) {
  auto module = import(kSkewed);
  ASSERT_TRUE(module);
  std::vector<rt::Tensor> inputs = calibrate(*module, "adaround-bc", 6, 24);
  mlir::OwningOpRef<mlir::ModuleOp> floatModel = module->clone();
  AdaRoundOptions o;
  o.quantize.weightBits = 4;
  o.iterations = 300;
  o.samples = 1024;
  o.progress = false;
  o.correctBias = true;
  mlir::OwningOpRef<mlir::ModuleOp> plain = module->clone();
  auto rows = adaroundModule(*module, inputs, o);
  ASSERT_TRUE(mlir::succeeded(rows));
  ASSERT_EQ(rows->size(), 2u);
  for (const AdaRoundRow &r : *rows) {
    EXPECT_LE(r.loss, r.nearestLoss * (1 + 1e-9)) << "layer " << r.layer;
    EXPECT_GT(r.meanBiasShift, 0.0) << "layer " << r.layer;
  }
  ASSERT_TRUE(mlir::succeeded(quantizeModule(*plain, o.quantize)));
  ASSERT_TRUE(mlir::succeeded(quantizeModule(*module, o.quantize)));
  auto errors = [&](mlir::ModuleOp q, double &meanAbs, double &mse) {
    std::vector<double> sum;
    mse = 0;
    size_t count = 0;
    for (const rt::Tensor &in : inputs) {
      std::vector<float> f = run(*floatModel, in), y = run(q, in);
      sum.resize(f.size(), 0.0);
      for (size_t i = 0; i < f.size(); ++i) {
        sum[i] += y[i] - f[i];
        mse += (y[i] - f[i]) * (y[i] - f[i]);
      }
      count += f.size();
    }
    mse /= count;
    meanAbs = 0;
    size_t per = sum.size() / 8; // 8 channels
    for (size_t c = 0; c < 8; ++c) {
      double s = 0;
      for (size_t i = 0; i < per; ++i)
        s += sum[c * per + i];
      meanAbs += std::fabs(s / (per * inputs.size())) / 8;
    }
  };
  double meanNearest, mseNearest, meanLearned, mseLearned;
  errors(*plain, meanNearest, mseNearest);
  errors(*module, meanLearned, mseLearned);
  EXPECT_LT(mseLearned, mseNearest)
      << "nearest " << mseNearest << " learned " << mseLearned;
  EXPECT_LT(meanLearned, 0.5 * meanNearest)
      << "nearest " << meanNearest << " learned " << meanLearned;
}

TEST_F(RecoveryTest, AdaRoundedWeightsAreStoredExactlyByQuantize) {
  auto module = import(kSkewed);
  ASSERT_TRUE(module);
  std::vector<rt::Tensor> inputs = calibrate(*module, "adaround", 4, 24);
  for (bool perChannel : {true, false}) {
    mlir::OwningOpRef<mlir::ModuleOp> m = module->clone();
    AdaRoundOptions o;
    o.quantize.perChannelWeights = perChannel;
    o.iterations = 200;
    o.samples = 512;
    o.progress = false;
    auto rows = adaroundModule(*m, inputs, o);
    ASSERT_TRUE(mlir::succeeded(rows));
    ASSERT_EQ(rows->size(), 2u);
    int64_t changed = 0;
    for (const AdaRoundRow &r : *rows) {
      EXPECT_LE(r.loss, r.nearestLoss * (1 + 1e-12)) << "layer " << r.layer;
      changed += r.changed;
    }
    EXPECT_GT(changed, 0);
    std::vector<std::vector<float>> rounded;
    m->walk(
        [&](Conv2DOp c) { rounded.push_back(getFloats(c.getWeightAttr())); });
    ASSERT_TRUE(mlir::succeeded(quantizeModule(*m, o.quantize)));
    size_t layer = 0;
    m->walk([&](Conv2DOp c) {
      auto q = getInts<int8_t>(c.getWeightAttr());
      ASSERT_TRUE(q.has_value());
      std::vector<float> s =
          chooseWeightScales(rounded[layer], c.getFilters(), o.quantize);
      size_t per = q->size() / c.getFilters();
      // The stored integer is the learned one: the rounded float weight
      // lies on the grid of the scale --qsim-quantize chooses.
      for (size_t k = 0; k < q->size(); ++k)
        ASSERT_NEAR(rounded[layer][k] / s[k / per], (double)(*q)[k], 1e-3)
            << "layer " << layer << " weight " << k;
      ++layer;
    });
  }
}

} // namespace

namespace {

/// E[act(y)], y ~ N(mean, sd^2), by Simpson's rule over mean +- 12 sd.
double integratedMean(Activation act, double mean, double sd) {
  auto f = [&](double y) {
    switch (act) {
    case Activation::relu:
      return std::max(y, 0.0);
    case Activation::relu6:
      return std::min(std::max(y, 0.0), 6.0);
    case Activation::leaky:
      return y > 0 ? y : 0.1 * y;
    default:
      return y;
    }
  };
  const int n = 20000; // even
  double a = mean - 12 * sd, h = 24 * sd / n, sum = 0;
  for (int i = 0; i <= n; ++i) {
    double y = a + i * h, z = (y - mean) / sd;
    double p = std::exp(-0.5 * z * z) / (sd * std::sqrt(2 * M_PI));
    sum += (i == 0 || i == n ? 1 : i % 2 ? 4 : 2) * f(y) * p;
  }
  return sum * h / 3;
}

} // namespace

TEST(AnalyticBiasCorrection, ActivationMeansMatchNumericIntegration) {
  for (Activation act : {Activation::linear, Activation::relu,
                         Activation::relu6, Activation::leaky})
    for (double mean : {-7.0, -1.3, -0.2, 0.0, 0.4, 2.5, 5.9, 9.0})
      for (double sd : {0.05, 0.7, 1.0, 3.2}) {
        std::optional<double> m = activationMean(act, mean, sd);
        ASSERT_TRUE(m) << stringifyActivation(act).str();
        EXPECT_NEAR(*m, integratedMean(act, mean, sd), 1e-6)
            << stringifyActivation(act).str() << " N(" << mean << ", " << sd
            << "^2)";
      }
  // A constant input (gamma = 0): the activation of the mean.
  EXPECT_DOUBLE_EQ(*activationMean(Activation::relu, -2.0, 0.0), 0.0);
  EXPECT_DOUBLE_EQ(*activationMean(Activation::leaky, -2.0, 0.0), -0.2);
  EXPECT_DOUBLE_EQ(*activationMean(Activation::relu6, 7.5, 0.0), 6.0);
  // Sampling agrees with the closed form for leaky (a second, independent
  // check of the negative part's slope).
  std::mt19937 rng(17);
  std::normal_distribution<double> normal(-0.3, 1.7);
  double sum = 0;
  const int samples = 400000;
  for (int i = 0; i < samples; ++i) {
    double y = normal(rng);
    sum += y > 0 ? y : 0.1 * y;
  }
  EXPECT_NEAR(sum / samples, *activationMean(Activation::leaky, -0.3, 1.7),
              0.01);
  // Activations without a closed form are refused.
  EXPECT_FALSE(activationMean(Activation::mish, 0.0, 1.0));
  EXPECT_FALSE(activationMean(Activation::logistic, 0.0, 1.0));
}

// Layer 0's (folded) batch norm feeds a 3x3 conv (layer 1) and, flattened, a
// connected layer (layer 2, through a route of layer 0): the bias shifts
// are -(W~ - W) E[x], computed here by hand.
TEST_F(RecoveryTest, AnalyticBiasShiftOfHandMadeLayers) {
  auto module = import(R"([net]
width=4
height=4
channels=1

[convolutional]
filters=2
size=1
activation=relu

[convolutional]
filters=3
size=3
pad=1
activation=linear

[route]
layers=0

[connected]
output=2
activation=linear
)");
  ASSERT_TRUE(module);
  Conv2DOp conv0 = convOfLayer(*module, 0), conv1 = convOfLayer(*module, 1);
  ASSERT_TRUE(conv0 && conv1);
  // Statistics by hand (as if folded; folding would erase layer 1, which
  // nothing reads): E[relu(N(1, 2^2))], E[relu(N(-0.5, 0.5^2))].
  setBatchNormStats(conv0, {{1.0f, -0.5f}, {2.0f, 0.5f}});
  double e0 = 1.0 * 0.5 * std::erfc(-0.5 / std::sqrt(2.0)) +
              2.0 * std::exp(-0.125) / std::sqrt(2 * M_PI);
  double e1 = -0.5 * 0.5 * std::erfc(1.0 / std::sqrt(2.0)) +
              0.5 * std::exp(-0.5) / std::sqrt(2 * M_PI);

  std::mt19937 rng(9);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> w1(3 * 2 * 9), b1 = {0.1f, -0.2f, 0.3f};
  for (float &v : w1)
    v = u(rng);
  conv1.setWeightAttr(makeFloatAttr(&ctx, {3, 2, 3, 3}, "hand_w1", w1));
  conv1.setBiasAttr(makeFloatAttr(&ctx, {3}, "hand_b1", b1));
  ConnectedOp fc;
  module->walk([&](ConnectedOp c) { fc = c; });
  ASSERT_TRUE(fc);
  std::vector<float> w2(2 * 2 * 16), b2 = {0.5f, 0.0f};
  for (float &v : w2)
    v = u(rng);
  fc->setAttr("weight", makeFloatAttr(&ctx, {2, 32}, "hand_w2", w2));
  fc->setAttr("bias", makeFloatAttr(&ctx, {2}, "hand_b2", b2));
  PrecisionPlan plan;
  plan.preset = PrecisionPreset::AllInt8;
  ASSERT_TRUE(mlir::succeeded(assignPrecision(*module, plan)));

  // Per-tensor int8 rounding, as --qsim-quantize does it.
  auto rounded = [](const std::vector<float> &w) {
    double m = 0;
    for (float v : w)
      m = std::max(m, (double)std::fabs(v));
    float s = (float)(m / 127);
    std::vector<double> q(w.size());
    for (size_t i = 0; i < w.size(); ++i)
      q[i] = std::max(-127.0f, std::min(127.0f, std::round(w[i] / s))) * s;
    return q;
  };
  std::vector<double> q1 = rounded(w1), q2 = rounded(w2);
  std::vector<float> b0 = getFloats(conv0.getBiasAttr());

  BiasCorrectionOptions o;
  o.quantize.perChannelWeights = false;
  auto rows = correctBiasesAnalytically(*module, o);
  ASSERT_TRUE(mlir::succeeded(rows));
  ASSERT_EQ(rows->size(), 3u);
  EXPECT_NE((*rows)[0].kept.find("network input"), std::string::npos);
  EXPECT_TRUE((*rows)[1].kept.empty()) << (*rows)[1].kept;
  EXPECT_TRUE((*rows)[2].kept.empty()) << (*rows)[2].kept;
  // Layer 0 reads the image: unchanged.
  EXPECT_EQ(getFloats(conv0.getBiasAttr()), b0);

  std::vector<float> got1 = getFloats(conv1.getBiasAttr());
  double largest = 0;
  for (int f = 0; f < 3; ++f) {
    double shift = 0;
    for (int c = 0; c < 2; ++c)
      for (int k = 0; k < 9; ++k) {
        int i = (f * 2 + c) * 9 + k;
        shift -= (q1[i] - w1[i]) * (c == 0 ? e0 : e1);
      }
    largest = std::max(largest, std::fabs(shift));
    EXPECT_NEAR(got1[f], b1[f] + shift, 1e-6) << "filter " << f;
  }
  EXPECT_GT(largest, 1e-4); // the rounding did shift something
  std::vector<float> got2 =
      getFloats(fc->getAttrOfType<mlir::ElementsAttr>("bias"));
  for (int f = 0; f < 2; ++f) {
    double shift = 0;
    for (int k = 0; k < 32; ++k)
      shift -= (q2[f * 32 + k] - w2[f * 32 + k]) * (k < 16 ? e0 : e1);
    EXPECT_NEAR(got2[f], b2[f] + shift, 1e-6) << "output " << f;
  }
}

// Folding keeps one deviation >= 0 per channel; the verifier refuses
// statistics that do not match the channels (stale after a rewrite).
TEST_F(RecoveryTest, BatchNormStatsAreVerified) {
  auto module = import(R"([net]
width=4
height=4
channels=1

[convolutional]
batch_normalize=1
filters=3
size=1
activation=leaky
)");
  ASSERT_TRUE(module);
  ASSERT_TRUE(mlir::succeeded(foldBatchNorms(*module)));
  Conv2DOp conv = convOfLayer(*module, 0);
  std::optional<BatchNormStats> st = getBatchNormStats(conv);
  ASSERT_TRUE(st);
  EXPECT_EQ(st->mean.size(), 3u);
  for (float s : st->std)
    EXPECT_GE(s, 0.0f);
  EXPECT_TRUE(mlir::succeeded(mlir::verify(*module)));
  std::string message;
  mlir::ScopedDiagnosticHandler handler(&ctx, [&](mlir::Diagnostic &d) {
    message = d.str();
    return mlir::success();
  });
  setBatchNormStats(conv, {{0.0f, 1.0f}, {1.0f, 1.0f}});
  EXPECT_TRUE(mlir::failed(mlir::verify(*module)));
  EXPECT_NE(message.find("'qsim.bn_stats' has 2 mean(s) and 2 std(s) for 3 "
                         "output channels"),
            std::string::npos)
      << message;
  setBatchNormStats(conv, {{0.0f, 1.0f, 2.0f}, {1.0f, -1.0f, 1.0f}});
  EXPECT_TRUE(mlir::failed(mlir::verify(*module)));
  EXPECT_NE(message.find("std -1"), std::string::npos) << message;
}
