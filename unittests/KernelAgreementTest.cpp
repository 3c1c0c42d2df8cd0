//===- KernelAgreementTest.cpp - fast kernels equal the reference ---------===//
//
// Synthetic networks (random weights) covering every op kind and the
// variants the fast path treats specially (strides, padding, groups,
// dilation, activations without a oneDNN post-op, block-aligned and
// unaligned routes, channel-prefix shortcuts, ...). Every layer's output of
// the fast kernels must equal the reference kernels' within 1e-5 of the
// layer's largest magnitude (they differ only in summation order).
//
//===----------------------------------------------------------------------===//

#include "qsim/Interpreter/Executor.h"
#include "qsim/Target/ModelIO.h"
#include "qsim/Target/Darknet/DarknetImporter.h"

#include "mlir/IR/MLIRContext.h"

#include <cmath>
#include <gtest/gtest.h>
#include <omp.h>
#include <set>

using namespace qsim;
using namespace qsim::interp;

namespace {

struct NetCase {
  const char *name;
  const char *cfg;
  Flavor flavor = Flavor::AlexeyAB;
};

std::vector<std::vector<float>> runAll(mlir::ModuleOp module, KernelSet k,
                                       const rt::Tensor &input,
                                       std::vector<StepInfo> &infos) {
  ExecutorOptions eo;
  eo.kernels = k;
  eo.keepAllOutputs = true;
  std::string error;
  auto ex = Executor::create(module, eo);
  EXPECT_TRUE(ex);
  if (!ex)
    return {};
  ex->setInput(input);
  ex->run();
  infos = ex->steps();
  std::vector<std::vector<float>> outs;
  for (size_t i = 0; i < infos.size(); ++i)
    outs.push_back(ex->stepOutput(i).toFloat());
  return outs;
}

class KernelAgreement : public ::testing::TestWithParam<NetCase> {};

TEST_P(KernelAgreement, FastEqualsReference) {
  const NetCase &nc = GetParam();
  mlir::DialectRegistry registry;
  registerQSimDialects(registry);
  mlir::MLIRContext ctx(registry);
  darknet::ImportOptions io;
  io.randomSeed = 42;
  io.flavor = nc.flavor;
  auto module = darknet::importDarknetFromString(&ctx, nc.cfg, nc.name, io);
  ASSERT_TRUE(module);
  mlir::func::FuncOp f = getMainFunc(*module);
  auto inType = mlir::cast<mlir::ShapedType>(f.getArgument(0).getType());
  rt::Tensor input(rt::DType::F32, inType.getDimSize(1), inType.getDimSize(2),
                   inType.getDimSize(3));
  uint32_t state = 12345;
  for (int64_t i = 0; i < input.numel(); ++i) {
    state = state * 1664525u + 1013904223u;
    input.f32()[i] = (state >> 8) * (1.0f / 16777216.0f);
  }
  std::vector<StepInfo> refInfo, fastInfo;
  auto ref = runAll(*module, KernelSet::Reference, input, refInfo);
  auto fast = runAll(*module, KernelSet::Fast, input, fastInfo);
  ASSERT_EQ(ref.size(), fast.size());
  ASSERT_FALSE(ref.empty());
  for (size_t i = 0; i < ref.size(); ++i) {
    ASSERT_EQ(ref[i].size(), fast[i].size());
    float mag = 0, diff = 0;
    for (size_t k = 0; k < ref[i].size(); ++k) {
      ASSERT_FALSE(std::isnan(ref[i][k])) << refInfo[i].label;
      mag = std::max(mag, std::fabs(ref[i][k]));
      diff = std::max(diff, std::fabs(ref[i][k] - fast[i][k]));
    }
    EXPECT_LE(diff, 1e-5f * std::max(mag, 1e-6f))
        << refInfo[i].label << ": max diff " << diff << ", magnitude " << mag;
  }
}

#define NET(body) "[net]\nwidth=20\nheight=16\nchannels=3\n" body

const NetCase cases[] = {
    {"conv_bn_leaky_strides",
     NET("[convolutional]\nbatch_normalize=1\nfilters=16\nsize=3\nstride="
         "1\npad=1\nactivation=leaky\n"
         "[convolutional]\nfilters=32\nsize=3\nstride=2\npad=1\nactivation="
         "relu\n"
         "[convolutional]\nfilters=8\nsize=1\nstride=1\nactivation=linear\n"
         "[convolutional]\nfilters=8\nsize=5\nstride=1\npad=1\nactivation="
         "logistic\n"
         "[convolutional]\nfilters=8\nsize=3\nstride_x=2\nstride_y=1\npadding="
         "2\nactivation=leaky\n")},
    {"conv_groups_depthwise_dilation",
     NET("[convolutional]\nfilters=16\nsize=3\npad=1\nactivation=relu6\n"
         "[convolutional]\nfilters=16\nsize=3\npad=1\ngroups=16\nbatch_"
         "normalize=1\nactivation=relu6\n"
         "[convolutional]\nfilters=32\nsize=3\npad=1\ngroups=4\nactivation="
         "swish\n"
         "[convolutional]\nfilters=16\nsize=3\npad=1\ndilation=2\nactivation="
         "mish\n"
         "[convolutional]\nfilters=16\nsize=1\nstride=2\nactivation=tanh\n")},
    {"activations_without_post_ops",
     NET("[convolutional]\nfilters=8\nsize=3\npad=1\nactivation=selu\n"
         "[convolutional]\nfilters=8\nsize=3\npad=1\nactivation=gelu\n"
         "[convolutional]\nfilters=8\nsize=3\npad=1\nactivation=hardtan\n"
         "[convolutional]\nfilters=8\nsize=3\npad=1\nactivation=plse\n"
         "[convolutional]\nfilters=8\nsize=3\npad=1\nactivation=loggy\n"
         "[convolutional]\nfilters=8\nsize=3\npad=1\nactivation=elu\n"
         "[convolutional]\nfilters=8\nsize=3\npad=1\nactivation=hard_mish\n"
         "[convolutional]\nfilters=8\nsize=3\npad=1\nactivation=normalize_"
         "channels_softmax\n"
         "[convolutional]\nfilters=8\nsize=3\npad=1\nactivation=stair\n"
         "[activation]\nactivation=ramp\n")},
    {"maxpools",
     NET("[convolutional]\nfilters=16\nsize=3\npad=1\nactivation=leaky\n"
         "[maxpool]\nsize=2\nstride=2\n"
         "[maxpool]\nsize=2\nstride=1\n"
         "[maxpool]\nsize=3\nstride=1\n"
         "[maxpool]\nsize=3\nstride=2\n"
         "[maxpool]\nsize=5\nstride=1\npadding=4\n"
         "[maxpool]\nsize=2\nstride_x=2\nstride_y=1\n")},
    {"routes_aligned_and_not",
     NET("[convolutional]\nfilters=32\nsize=3\npad=1\nactivation=leaky\n"
         "[convolutional]\nfilters=64\nsize=3\npad=1\nactivation=leaky\n"
         "[route]\nlayers=-1\ngroups=2\ngroup_id=1\n"
         "[route]\nlayers=-1,0\n"
         "[convolutional]\nfilters=24\nsize=1\nactivation=leaky\n"
         "[route]\nlayers=-1,0\n"
         "[route]\nlayers=4\ngroups=2\ngroup_id=0\n"
         "[route]\nlayers=1\n")},
    {"shortcuts_upsample_downsample",
     NET("[convolutional]\nfilters=16\nsize=3\npad=1\nactivation=leaky\n"
         "[convolutional]\nfilters=16\nsize=3\npad=1\nactivation=leaky\n"
         "[shortcut]\nfrom=-2\nactivation=linear\n"
         "[convolutional]\nfilters=8\nsize=1\nactivation=leaky\n"
         "[shortcut]\nfrom=-2\nactivation=leaky\n"
         "[shortcut]\nfrom=-3,-4\nactivation=swish\n"
         "[upsample]\nstride=2\n"
         "[upsample]\nstride=-2\n"
         "[upsample]\nstride=2\nscale=0.5\n")},
    {"misc_layers",
     NET("[convolutional]\nfilters=16\nsize=3\npad=1\nactivation=leaky\n"
         "[reorg]\nstride=2\n"
         "[reorg]\nstride=2\nreverse=1\n"
         "[dropout]\nprobability=0.1\n"
         "[batchnorm]\n"
         "[avgpool]\n"
         "[scale_channels]\nfrom=-3\n"
         "[connected]\noutput=10\nactivation=leaky\n"
         "[connected]\noutput=6\nbatch_normalize=1\nactivation=linear\n"
         "[connected]\noutput=6\nactivation=selu\n"
         "[softmax]\ngroups=2\n")},
    {"yolo_heads",
     NET("[convolutional]\nfilters=16\nsize=3\nstride=2\npad=1\nactivation="
         "leaky\n"
         "[convolutional]\nfilters=21\nsize=1\nactivation=linear\n"
         "[yolo]\nmask=0,1,2\nanchors=1,2,3,4,5,6\nnum=3\nclasses=2\nscale_x_y="
         "1.1\n"
         "[route]\nlayers=0\n"
         "[convolutional]\nfilters=14\nsize=1\nactivation=logistic\n"
         "[yolo]\nmask=0,1\nanchors=1,2,3,4\nnum=2\nclasses=2\nnew_coords="
         "1\n")},
    {"region_alexeyab",
     NET("[convolutional]\nfilters=20\nsize=3\npad=1\nactivation=leaky\n"
         "[region]\nanchors=1,2,3,4\nclasses=5\nnum=2\nsoftmax=1\n")},
    {"region_pjreddie",
     NET("[convolutional]\nfilters=20\nsize=3\npad=1\nactivation=leaky\n"
         "[region]\nanchors=1,2,3,4\nclasses=5\nnum=2\nsoftmax=1\n"
         "[route]\nlayers=0\n"
         "[region]\nanchors=1,2,3,4\nclasses=5\nnum=2\n"),
     Flavor::PJReddie},
    {"batchnorm_pjreddie",
     NET("[convolutional]\nbatch_normalize=1\nfilters=16\nsize=3\npad="
         "1\nactivation=leaky\n"
         "[batchnorm]\n[yolo]\nmask=0\nanchors=1,2\nnum=1\nclasses=11\n"),
     Flavor::PJReddie},
};

INSTANTIATE_TEST_SUITE_P(Nets, KernelAgreement, ::testing::ValuesIn(cases),
                         [](const auto &info) {
                           return std::string(info.param.name);
                         });

} // namespace

// Each planned step sets its own OpenMP thread count (a per-thread setting);
// the caller's must survive create, run and runStep: qsim-train runs the
// teacher in the interpreter and libtorch on the same thread, and libtorch
// picks single-threaded, reference-BLAS convolutions when it reads 1.
TEST(ExecutorThreads, CallerThreadCountIsRestored) {
  mlir::DialectRegistry registry;
  registerQSimDialects(registry);
  mlir::MLIRContext ctx(registry);
  darknet::ImportOptions io;
  io.randomSeed = 7;
  // A convolution large enough for two threads, then small one-thread
  // layers, so the last step's count differs from the executor's.
  const char *cfg = "[net]\nwidth=64\nheight=64\nchannels=3\n"
                    "[convolutional]\nfilters=64\nsize=3\npad=1\nactivation="
                    "leaky\n"
                    "[convolutional]\nfilters=64\nsize=3\npad=1\nactivation="
                    "leaky\n"
                    "[maxpool]\nsize=2\nstride=2\n"
                    "[convolutional]\nfilters=4\nsize=1\nactivation=linear\n";
  auto module = darknet::importDarknetFromString(&ctx, cfg, "threads", io);
  ASSERT_TRUE(module);
  ExecutorOptions eo;
  eo.threads = 2;
  const int caller = 5;
  omp_set_num_threads(caller);
  auto ex = Executor::create(*module, eo);
  ASSERT_TRUE(ex);
  EXPECT_EQ(omp_get_max_threads(), caller) << "after create";
  std::set<int> counts;
  for (const StepInfo &s : ex->steps())
    counts.insert(s.macs >= (3 << 20) ? 2 : 1);
  ASSERT_EQ(counts.size(), 2u) << "the model must plan 1- and 2-thread steps";
  rt::Tensor input(rt::DType::F32, 3, 64, 64);
  for (int64_t i = 0; i < input.numel(); ++i)
    input.f32()[i] = (i % 17) / 17.0f;
  ex->setInput(input);
  ex->run();
  EXPECT_EQ(omp_get_max_threads(), caller) << "after run";
  ex->setInput(input);
  for (size_t i = 0; i < ex->steps().size(); ++i) {
    ex->runStep(i);
    EXPECT_EQ(omp_get_max_threads(), caller) << "after runStep " << i;
  }
  omp_set_num_threads(omp_get_num_procs());
}
