//===- ChannelsLastInt8Test.cpp - fast int8 layers are bit-exact ----------===//
//
// The channels-last int8 kernels (max pooling incl. stride-1 SPP pools,
// route, shortcut, upsampling) against the reference kernels on synthetic
// shapes, every value of the int8 range; then whole int8 networks (a
// synthetic SPP/route/shortcut net, and the real models when QSIM_MODELS_DIR
// is set) planned with fast and reference kernels: every int8 layer output
// must be identical.
//
//===----------------------------------------------------------------------===//

#include "ChannelsLastInt8.h"
#include "BandedConvInt8.h"
#include "FastRequant.h"
#include "TestEnv.h"

#include "qsim/Interpreter/Executor.h"
#include "qsim/Quant/Calibration.h"
#include "qsim/Quant/Precision.h"
#include "qsim/Quant/Quantizer.h"
#include "qsim/Target/Darknet/DarknetImporter.h"
#include "qsim/Target/ModelIO.h"
#include "qsim/Transforms/Passes.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/FileSystem.h"

#include <cctype>
#include <cstring>
#include <gtest/gtest.h>
#include <map>
#include <random>

using namespace qsim;
using namespace qsim::interp;

namespace {

using shapes::CHW;

std::vector<int8_t> randomInt8(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> d(-128, 127);
  std::vector<int8_t> v(n);
  for (int8_t &x : v)
    x = (int8_t)d(gen);
  return v;
}

std::vector<int8_t> toChannelsLast(const std::vector<int8_t> &chw,
                                   const CHW &s) {
  std::vector<int8_t> hwc(chw.size());
  for (int64_t c = 0; c < s.c; ++c)
    for (int64_t i = 0; i < s.h * s.w; ++i)
      hwc[i * s.c + c] = chw[c * s.h * s.w + i];
  return hwc;
}

struct PoolCase {
  CHW in;
  int64_t size, stride, padding;
};

class ChannelsLastMaxPool : public ::testing::TestWithParam<PoolCase> {};

TEST_P(ChannelsLastMaxPool, EqualsReference) {
  const PoolCase &pc = GetParam();
  const CHW &in = pc.in;
  // Darknet's output size rule.
  CHW out{in.c, (in.h + pc.padding - pc.size) / pc.stride + 1,
          (in.w + pc.padding - pc.size) / pc.stride + 1};
  auto x = randomInt8(in.size(), 7);
  std::vector<int8_t> want(out.size()), got(out.size());
  ref::maxPoolInt8(x.data(), in, pc.size, pc.stride, pc.stride, pc.padding,
                   want.data(), out);
  std::vector<int8_t> rows(in.h * out.w * in.c);
  cl::maxPoolInt8(toChannelsLast(x, in).data(), in, pc.size, pc.stride,
                  pc.stride, pc.padding, rows.data(), got.data(), out);
  EXPECT_EQ(toChannelsLast(want, out), got);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ChannelsLastMaxPool,
    ::testing::Values(PoolCase{{16, 12, 10}, 2, 2, 0},
                      PoolCase{{5, 7, 9}, 2, 2, 1},    // odd sizes, padded
                      PoolCase{{24, 13, 11}, 2, 1, 1}, // yolov3-tiny's last
                      PoolCase{{3, 9, 8}, 3, 2, 2},
                      PoolCase{{96, 10, 10}, 5, 1, 4}, // SPP
                      PoolCase{{96, 10, 10}, 9, 1, 8},
                      PoolCase{{40, 10, 10}, 13, 1, 12},
                      PoolCase{{7, 3, 4}, 2, 2, 6}), // windows in the padding
    [](const auto &info) { return "case" + std::to_string(info.index); });

TEST(ChannelsLastInt8, RouteSlicesAndRequantizes) {
  const int64_t h = 5, w = 6;
  CHW a{8, h, w}, b{12, h, w}, c{4, h, w};
  auto xa = randomInt8(a.size(), 1), xb = randomInt8(b.size(), 2),
       xc = randomInt8(c.size(), 3);
  rt::FixedPoint mb{1518500250, 31}, mc{1200000000, 33};
  for (int64_t groups : {1, 2, 4})
    for (int64_t groupId = 0; groupId < groups; ++groupId)
      for (rt::Rounding r : {rt::Rounding::TFLite, rt::Rounding::TosaDouble}) {
        CHW out{(a.c + b.c + c.c) / groups, h, w};
        std::vector<int8_t> want(out.size());
        ref::routeSliceInt8(xa.data(), a, groups, groupId, 0, 3, {}, true, r,
                            want.data(), 0);
        ref::routeSliceInt8(xb.data(), b, groups, groupId, -5, 3, mb, false, r,
                            want.data(), a.c / groups);
        ref::routeSliceInt8(xc.data(), c, groups, groupId, 17, 3, mc, false, r,
                            want.data(), (a.c + b.c) / groups);
        auto tb = cl::routeTable(-5, 3, mb, r),
             tc = cl::routeTable(17, 3, mc, r);
        auto la = toChannelsLast(xa, a), lb = toChannelsLast(xb, b),
             lc = toChannelsLast(xc, c);
        std::vector<cl::RoutePart> parts = {
            {la.data(), a.c, groupId * a.c / groups, a.c / groups, nullptr},
            {lb.data(), b.c, groupId * b.c / groups, b.c / groups, &tb},
            {lc.data(), c.c, groupId * c.c / groups, c.c / groups, &tc}};
        std::vector<int8_t> got(out.size());
        cl::routeInt8(parts, h * w, out.c, got.data());
        EXPECT_EQ(toChannelsLast(want, out), got)
            << "groups " << groups << " group " << groupId;
      }
}

TEST(ChannelsLastInt8, ShortcutEqualsReferenceOnEveryPair) {
  // Every (a, b) pair of int8 values, for each activation and rounding.
  std::vector<int8_t> a(65536), b(65536);
  for (int i = 0; i < 65536; ++i) {
    a[i] = (int8_t)(i / 256 - 128);
    b[i] = (int8_t)(i % 256 - 128);
  }
  CHW shape{256, 16, 16};
  for (Activation act :
       {Activation::linear, Activation::leaky, Activation::relu})
    for (rt::Rounding r : {rt::Rounding::TFLite, rt::Rounding::TosaDouble}) {
      ref::ShortcutInt8Params p;
      p.zp = {-3, 12};
      p.mult = {{1518500250, 16}, {1900000000, 15}};
      p.negMult = {1717986918, 34};
      p.act = act;
      p.zpOut = -7;
      p.rounding = r;
      std::vector<int8_t> want(65536), got(65536);
      ref::shortcutInt8({a.data(), b.data()}, {shape, shape}, p, want.data());
      cl::ShortcutInt8(p, 2).run({a.data(), b.data()}, 65536, got.data());
      EXPECT_EQ(want, got) << "activation " << (int)act;
      // A length that is not a multiple of the vector width.
      std::vector<int8_t> tail(65531, 0);
      cl::ShortcutInt8(p, 2).run({a.data(), b.data()}, 65531, tail.data());
      EXPECT_TRUE(std::equal(tail.begin(), tail.end(), want.begin()));
      // Three inputs: the per-input tables.
      auto c = randomInt8(65536, 9);
      p.zp.push_back(40);
      p.mult.push_back({1100000000, 17});
      ref::shortcutInt8({a.data(), b.data(), c.data()}, {shape, shape, shape},
                        p, want.data());
      cl::ShortcutInt8(p, 3).run({a.data(), b.data(), c.data()}, 65536,
                                 got.data());
      EXPECT_EQ(want, got) << "three inputs, activation " << (int)act;
    }
}

TEST(ChannelsLastInt8, QuantizeEqualsReference) {
  // Ties at +-0.5, -0.0, values beyond int32 and the saturation bounds, and
  // a length that is not a multiple of the vector width.
  std::vector<float> x = {0.0f,  -0.0f, 0.5f,   -0.5f,  1.5f,    -1.5f,
                          2.5f,  -2.5f, 127.4f, 127.6f, -128.6f, 3e9f,
                          -3e9f, 2e9f,  -2e9f,  1e30f,  -1e30f,  0.49999997f};
  std::mt19937 gen(5);
  std::uniform_real_distribution<float> d(-300.0f, 300.0f);
  while (x.size() < 1003)
    x.push_back(d(gen));
  for (float scale : {1.0f, 0.37f, 2.5f})
    for (int32_t zp : {0, -17, 90}) {
      std::vector<int8_t> want(x.size()), got(x.size());
      ref::quantize(x.data(), x.size(), scale, zp, want.data());
      cl::quantize(x.data(), x.size(), scale, zp, got.data());
      EXPECT_EQ(want, got) << "scale " << scale << " zero point " << zp;
    }
}

TEST(ChannelsLastInt8, UpsampleEqualsReference) {
  for (int64_t stride : {2, 3}) {
    CHW in{10, 4, 5}, out{10, 4 * stride, 5 * stride};
    auto x = randomInt8(in.size(), 4);
    std::vector<int8_t> want(out.size()), got(out.size());
    ref::upsampleInt8(x.data(), in, stride, want.data(), out);
    cl::upsampleInt8(toChannelsLast(x, in).data(), in, stride, got.data(), out);
    EXPECT_EQ(toChannelsLast(want, out), got) << "stride " << stride;
  }
}

TEST(ChannelsLastInt8, RequantizationEqualsReferenceAtTheExtremes) {
  // Accumulators over the whole int32 range (incl. sums with the bias that
  // overflow int32), each activation, both roundings, multipliers with and
  // without a left shift.
  const int64_t C = 24, pixels = 301;
  std::mt19937 gen(3);
  std::uniform_int_distribution<int32_t> any(INT32_MIN, INT32_MAX);
  std::uniform_int_distribution<int32_t> small(-70000, 70000);
  std::vector<int32_t> acc(pixels * C);
  for (size_t i = 0; i < acc.size(); ++i)
    acc[i] = i % 7 == 0    ? any(gen)
             : i % 11 == 0 ? (i % 2 ? INT32_MAX : INT32_MIN)
                           : small(gen);
  for (Activation act : {Activation::linear, Activation::leaky,
                         Activation::relu, Activation::relu6})
    for (rt::Rounding r : {rt::Rounding::TFLite, rt::Rounding::TosaDouble})
      for (int32_t baseShift : {36, 30}) {
        ref::Requant q;
        q.act = act;
        q.rounding = r;
        q.zpOut = -9;
        q.q6 = 90;
        for (int64_t f = 0; f < C; ++f) {
          q.bias.push_back(f % 3 == 0 ? any(gen) : small(gen));
          q.mult.push_back({(int32_t)(1073741824 + f * 40000000),
                            baseShift + (int32_t)(f % 5)});
          q.negMult.push_back({1717986918, 34 + (int32_t)(f % 3)});
        }
        std::vector<int8_t> want(acc.size()), got(acc.size());
        for (int64_t p = 0; p < pixels; ++p)
          for (int64_t f = 0; f < C; ++f)
            want[p * C + f] = q.apply(acc[p * C + f], f);
        RequantTables t(q, C);
        requantizeChannelsLast(acc.data(), pixels, C, t, got.data());
        EXPECT_EQ(want, got)
            << "activation " << (int)act << ", shift " << baseShift;
      }
}

TEST(ChannelsLastInt8, UnsaturatedRequantizationEqualsReference) {
  // Accumulators within a known bound and biases that keep acc + bias in
  // int32: the loops without the saturating add (and with a small bound the
  // packed loop) must agree with the reference for every activation, channel
  // count (rows of 64 values and tails), and shift (r = 0 included); the
  // bounds must be refused when a bias could overflow.
  for (bool edge : {false, true})
    for (int64_t C : {40, 16, 255, 3})
      for (Activation act : {Activation::linear, Activation::leaky,
                             Activation::relu, Activation::relu6})
        for (int32_t baseShift : {38, 33, 31}) {
          std::mt19937 gen(8 + C + baseShift);
          std::uniform_int_distribution<int32_t> bias(-5000000, 5000000);
          ref::Requant q;
          q.act = act;
          q.zpOut = act == Activation::relu6 ? -20 : 5;
          q.q6 = 70;
          int64_t maxBias = 0;
          for (int64_t f = 0; f < C; ++f) {
            q.bias.push_back(bias(gen) + (f % 5 == 0 ? 1 << 20 : 0));
            maxBias = std::max<int64_t>(maxBias, std::abs(q.bias.back()));
            q.mult.push_back({(int32_t)(1100000000 + f * 3000000),
                              baseShift + (int32_t)(f % 4)});
            q.negMult.push_back(
                {1717986918 - (int32_t)f * 1000, baseShift + (int32_t)(f % 3)});
          }
          // At the edge acc + bias just fits int32, h plus the rounding
          // constant does not.
          const int64_t bound =
              edge ? INT32_MAX - maxBias : (int64_t)9 * 64 * 128 * 255;
          const int64_t pixels = 203;
          std::uniform_int_distribution<int32_t> inBound(-bound, bound);
          std::uniform_int_distribution<int32_t> near(-300000, 300000);
          std::vector<int32_t> acc(pixels * C);
          for (size_t i = 0; i < acc.size(); ++i)
            acc[i] = i % 13 == 0  ? (i % 2 ? bound : -bound)
                     : i % 3 == 0 ? inBound(gen)
                                  : near(gen);
          std::vector<int8_t> want(acc.size()), got(acc.size());
          for (int64_t p = 0; p < pixels; ++p)
            for (int64_t f = 0; f < C; ++f)
              want[p * C + f] = q.apply(acc[p * C + f], f);
          RequantTables t(q, C);
          t.setAccumulatorBound(bound);
          EXPECT_TRUE(t.biasAddCannotOverflow);
          EXPECT_EQ(t.roundingAddCannotOverflow, !edge);
          requantizeChannelsLastSerial(acc.data(), pixels, C, t, got.data());
          EXPECT_EQ(want, got)
              << "activation " << (int)act << ", " << C << " channels, shift "
              << baseShift << (edge ? ", at the edge" : "");
          q.bias[C / 2] = INT32_MAX - bound + 1;
          RequantTables overflowing(q, C);
          overflowing.setAccumulatorBound(bound);
          EXPECT_FALSE(overflowing.biasAddCannotOverflow);
          EXPECT_FALSE(overflowing.roundingAddCannotOverflow);
        }
}

//===----------------------------------------------------------------------===//
// Whole networks
//===----------------------------------------------------------------------===//

std::vector<std::string> calibrationImages() {
  static std::vector<std::string> files;
  if (!files.empty())
    return files;
  llvm::SmallString<128> dir;
  llvm::sys::fs::createUniqueDirectory("qsim-cl-calib", dir);
  for (int k = 0; k < 2; ++k) {
    std::string path = std::string(dir) + "/img" + std::to_string(k) + ".ppm";
    FILE *f = fopen(path.c_str(), "wb");
    int w = 64 + 8 * k, h = 48 + 4 * k;
    fprintf(f, "P6 %d %d 255\n", w, h);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        for (int c = 0; c < 3; ++c)
          fputc((x * (5 + k) + y * 11 + c * 70 + ((x * y) % 13) * 7) % 256, f);
    fclose(f);
    files.push_back(path);
  }
  return files;
}

/// Quantizes `module` (all int8, defaults) after calibrating it.
void quantizeAllInt8(mlir::ModuleOp module) {
  registerQSimDialectPasses();
  registerQSimPasses();
  mlir::PassManager pm(module.getContext());
  std::string errs;
  llvm::raw_string_ostream es(errs);
  ASSERT_TRUE(
      succeeded(mlir::parsePassPipeline("qsim-fold-batchnorm", pm, es)));
  ASSERT_TRUE(succeeded(pm.run(module)));
  quantization::CalibrationOptions co;
  co.images = calibrationImages();
  co.progress = false;
  std::string error;
  ASSERT_TRUE(succeeded(quantization::calibrateModule(module, co)));
  quantization::PrecisionPlan plan;
  plan.preset = quantization::PrecisionPreset::AllInt8;
  ASSERT_TRUE(succeeded(quantization::assignPrecision(module, plan)));
  ASSERT_TRUE(succeeded(
      quantization::quantizeModule(module, quantization::QuantizeOptions())));
}

std::vector<rt::Tensor> runAll(mlir::ModuleOp m, KernelSet k,
                               const rt::Tensor &in,
                               std::vector<StepInfo> &infos, int threads = 0) {
  ExecutorOptions eo;
  eo.kernels = k;
  eo.threads = threads;
  eo.keepAllOutputs = true;
  std::string error;
  auto ex = Executor::create(m, eo);
  EXPECT_TRUE(ex);
  if (!ex)
    return {};
  ex->setInput(in);
  ex->run();
  infos = ex->steps();
  std::vector<rt::Tensor> outs;
  for (size_t i = 0; i < infos.size(); ++i)
    outs.push_back(ex->stepOutput(i));
  return outs;
}

/// Every int8 layer output of the fast plan equals the reference plan's;
/// returns how many int8 layers of each kind were compared.
std::map<std::string, int> expectBitExact(mlir::ModuleOp module,
                                          int threads = 0) {
  auto f = getMainFunc(module);
  auto t = mlir::cast<mlir::ShapedType>(f.getArgument(0).getType());
  rt::Tensor input(rt::DType::F32, t.getDimSize(1), t.getDimSize(2),
                   t.getDimSize(3));
  for (int64_t i = 0; i < input.numel(); ++i)
    input.f32()[i] = ((i * 2654435761u) % 1000) / 1000.0f;
  std::vector<StepInfo> infos;
  auto ref = runAll(module, KernelSet::Reference, input, infos);
  auto fast = runAll(module, KernelSet::Fast, input, infos, threads);
  std::map<std::string, int> kinds;
  EXPECT_EQ(ref.size(), fast.size());
  for (size_t i = 0; i < ref.size() && i < fast.size(); ++i) {
    if (ref[i].dtype() != rt::DType::I8)
      continue;
    ++kinds[infos[i].kind];
    EXPECT_EQ(0, std::memcmp(ref[i].raw(), fast[i].raw(), ref[i].bytes()))
        << infos[i].label << ": int8 outputs differ";
  }
  return kinds;
}

#define NET(body) "[net]\nwidth=40\nheight=32\nchannels=3\n" body

// Pools after routes, stride-1 SPP pools, shortcuts of two and three inputs,
// routes of inputs with different scales, upsampling.
const char *kSppNet = NET(
    "[convolutional]\nbatch_normalize=1\nfilters=16\nsize=3\nstride=2\npad=1\n"
    "activation=leaky\n"
    "[convolutional]\nbatch_normalize=1\nfilters=32\nsize=3\npad=1\n"
    "activation=leaky\n"
    "[route]\nlayers=-1\ngroups=2\ngroup_id=1\n"
    "[convolutional]\nfilters=16\nsize=3\npad=1\nactivation=leaky\n"
    "[route]\nlayers=-1,-3\n"
    "[maxpool]\nsize=2\nstride=2\n"
    "[convolutional]\nfilters=48\nsize=1\nactivation=linear\n"
    "[convolutional]\nfilters=48\nsize=3\npad=1\ngroups=48\nactivation=relu\n"
    "[shortcut]\nfrom=-2\nactivation=linear\n"
    "[shortcut]\nfrom=-3,-2\nactivation=leaky\n"
    "[maxpool]\nsize=5\nstride=1\n"
    "[route]\nlayers=-2\n"
    "[maxpool]\nsize=9\nstride=1\n"
    "[route]\nlayers=-4\n"
    "[maxpool]\nsize=13\nstride=1\n"
    "[route]\nlayers=-1,-3,-5,-6\n"
    "[convolutional]\nfilters=16\nsize=1\nactivation=leaky\n"
    "[upsample]\nstride=2\n"
    "[route]\nlayers=-1,4\n"
    "[convolutional]\nfilters=14\nsize=1\nactivation=linear\n"
    "[yolo]\nmask=0,1\nanchors=4,6,12,10\nclasses=2\nnum=2\n");

TEST(ChannelsLastInt8, SppNetworkIsBitExact) {
  mlir::DialectRegistry registry;
  registerQSimDialects(registry);
  mlir::MLIRContext ctx(registry);
  ctx.loadAllAvailableDialects();
  darknet::ImportOptions io;
  io.randomSeed = 5;
  auto module = darknet::importDarknetFromString(&ctx, kSppNet, "spp", io);
  ASSERT_TRUE(module);
  quantizeAllInt8(*module);
  auto kinds = expectBitExact(*module);
  EXPECT_EQ(kinds["maxpool"], 4);
  EXPECT_EQ(kinds["shortcut"], 2);
  EXPECT_GE(kinds["route"], 4);
  EXPECT_EQ(kinds["upsample"], 1);
}

TEST(ChannelsLastInt8, SppNetworkInBandsIsBitExact) {
  // The int8 convolutions in bands of one output row (first band padded at
  // the top, middle bands unpadded, last band padded at the bottom, strided
  // and depthwise layers) and of 3 KB of accumulators (several rows), on one
  // and two threads.
  mlir::DialectRegistry registry;
  registerQSimDialects(registry);
  mlir::MLIRContext ctx(registry);
  ctx.loadAllAvailableDialects();
  darknet::ImportOptions io;
  io.randomSeed = 11;
  auto module = darknet::importDarknetFromString(&ctx, kSppNet, "spp", io);
  ASSERT_TRUE(module);
  quantizeAllInt8(*module);
  for (int64_t bytes : {1, 3 << 10})
    for (int threads : {1, 2}) {
      setInt8ConvBandBytes(bytes);
      auto kinds = expectBitExact(*module, threads);
      EXPECT_EQ(kinds["convolutional"], 7)
          << bytes << " bytes, " << threads << " threads";
    }
  setInt8ConvBandBytes(0);
}

class RealModelInt8 : public ::testing::TestWithParam<const char *> {};

TEST_P(RealModelInt8, FastIsBitExactToReference) {
  QSIM_REQUIRE_MODELS();
  mlir::DialectRegistry registry;
  registerQSimDialects(registry);
  mlir::MLIRContext ctx(registry);
  ctx.loadAllAvailableDialects();
  ModelLoadOptions lo;
  lo.path = testenv::modelsDir() + "/darknet/" + GetParam() + ".cfg";
  lo.weightsPath = testenv::modelsDir() + "/weights/" + GetParam() + ".weights";
  auto module = loadModel(&ctx, lo);
  ASSERT_TRUE(module);
  quantizeAllInt8(*module);
  auto kinds = expectBitExact(*module);
  EXPECT_GT(kinds["maxpool"], 0);
  EXPECT_GT(kinds["route"], 0);
}

INSTANTIATE_TEST_SUITE_P(Models, RealModelInt8,
                         ::testing::Values("yolov4-tiny-aix2023",
                                           "yolo-fastest-1.1-xl"),
                         [](const auto &info) {
                           std::string n = info.param;
                           for (char &c : n)
                             if (!isalnum((unsigned char)c))
                               c = '_';
                           return n;
                         });

} // namespace
