//===- LayerActivationsTest.cpp - what layers see, and their im2col ------===//
//
// The recorder hands over exactly what the interpreter computed, and a
// convolution's output at a position is its filter times the patch that
// appendConvPatches builds (padding, stride, dilation and groups included):
// the identity every least-squares fit of a layer relies on.
//
//===----------------------------------------------------------------------===//

#include "qsim/Evaluation/LayerActivations.h"

#include "../QSimModelTest.h"

using namespace qsim;
using namespace qsim::eval;

namespace {

class LayerActivationsTest : public testenv::QSimModelTest {
protected:
  mlir::OwningOpRef<mlir::ModuleOp> import(const std::string &cfg) {
    return QSimModelTest::import(cfg, /*seed=*/7);
  }
  static rt::Tensor input(int64_t c, int64_t h, int64_t w) {
    rt::Tensor t(rt::DType::F32, c, h, w);
    for (int64_t i = 0; i < t.numel(); ++i)
      t.f32()[i] = (float)((i * 29) % 53) / 53.0f - 0.3f;
    return t;
  }
};

// Strided, padded, dilated and grouped convolutions without activation or
// batch norm, so that the output is exactly W x patch + bias.
const char *kConvs = R"([net]
width=11
height=9
channels=4

[convolutional]
filters=6
size=3
stride=2
pad=1
activation=linear

[convolutional]
filters=6
size=3
stride=1
pad=1
groups=2
dilation=2
activation=linear

[convolutional]
filters=5
size=1
stride=1
activation=linear
)";

TEST_F(LayerActivationsTest, ConvOutputIsFilterTimesPatch) {
  auto module = import(kConvs);
  ASSERT_TRUE(module);
  std::vector<rt::Tensor> inputs = {input(4, 9, 11), input(4, 9, 11)};
  std::vector<Conv2DOp> convs;
  module->walk([&](Conv2DOp c) { convs.push_back(c); });
  ASSERT_EQ(convs.size(), 3u);
  int checked = 0;
  auto sink = [&](size_t image, int64_t layer,
                  const LayerActivations &a) {
    Conv2DOp conv = convs[layer];
    ConvPatchGeometry g = ConvPatchGeometry::of(conv);
    ASSERT_EQ(a.inputs.size(), 1u);
    ASSERT_EQ(a.output.numel(), conv.getFilters() * g.outputPositions());
    std::vector<float> w = getFloats(conv.getWeightAttr());
    std::vector<float> b = getFloats(*conv.getBias());
    int64_t filtersPerGroup = conv.getFilters() / g.groups;
    std::vector<int64_t> all(g.outputPositions());
    for (size_t i = 0; i < all.size(); ++i)
      all[i] = i;
    for (int64_t group = 0; group < g.groups; ++group) {
      std::vector<float> rows;
      appendConvPatches(g, a.inputs[0].f32(), group, all, rows);
      for (int64_t p : all)
        for (int64_t f = group * filtersPerGroup;
             f < (group + 1) * filtersPerGroup; ++f) {
          double sum = b[f];
          for (int64_t k = 0; k < g.patchSize(); ++k)
            sum += (double)w[f * g.patchSize() + k] *
                   rows[p * g.patchSize() + k];
          EXPECT_NEAR(a.output.f32()[f * g.outputPositions() + p], sum,
                      1e-4 * (1 + std::abs(sum)))
              << "layer " << layer << " image " << image << " filter " << f
              << " position " << p;
          ++checked;
        }
    }
  };
  ASSERT_TRUE(mlir::succeeded(
      recordLayerActivations(*module, inputs, {0, 1, 2}, sink)));
  // 2 images x (6 x 5x6 + 6 x 5x6 + 5 x 5x6) outputs.
  EXPECT_EQ(checked, 2 * (6 + 6 + 5) * 30);
}

TEST_F(LayerActivationsTest, UnknownLayerIsAnError) {
  auto module = import(kConvs);
  ASSERT_TRUE(module);
  std::vector<rt::Tensor> inputs = {input(4, 9, 11)};
  auto none = [](size_t, int64_t, const LayerActivations &) {};
  EXPECT_TRUE(mlir::failed(
      recordLayerActivations(*module, inputs, {3}, none)));
}

TEST(SamplePositions, DistinctSortedAndAllWhenAskedForMore) {
  std::mt19937_64 rng(3);
  std::vector<int64_t> some = samplePositions(100, 10, rng);
  ASSERT_EQ(some.size(), 10u);
  for (size_t i = 1; i < some.size(); ++i)
    EXPECT_LT(some[i - 1], some[i]);
  EXPECT_GE(some.front(), 0);
  EXPECT_LT(some.back(), 100);
  std::vector<int64_t> all = samplePositions(7, 10, rng);
  EXPECT_EQ(all, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6}));
}

} // namespace
