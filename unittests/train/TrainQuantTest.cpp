//===- TrainQuantTest.cpp - fake quantization against the integers -------===//
//
// A float model with a precision plan and calibrated ranges, seen as fake
// quantization on the grids --qsim-quantize gives it:
//   - equals the integer interpreter within one quantization step per
//     layer (float layers between int8 ones included);
//   - after weight and range updates (QAT, LSQ) written back into the
//     module, --qsim-quantize produces exactly the int8 weights, int32
//     biases and activation grids the fake quantization computed with.
//
//===----------------------------------------------------------------------===//

#include "TrainTestUtil.h"

#include "qsim/Dialect/QSim/Transforms/Passes.h"
#include "qsim/Quant/Calibration.h"
#include "qsim/Quant/Precision.h"
#include "qsim/Quant/Quantizer.h"
#include "qsim/Runtime/Image.h"

#include <cmath>
#include <gtest/gtest.h>

using namespace qsim;
using namespace qsim::train;
using namespace qsim::train::test;

namespace {

struct QatCase {
  std::string name;
  bool perChannel = true, symmetric = false, lsq = false;
};

class QuantView : public ::testing::TestWithParam<QatCase> {
protected:
  QuantView() : ctx(registry()) {}
  /// kDetectorCfg with folded batch norms, calibrated, all int8 that can
  /// be (swish and mish layers stay float).
  mlir::OwningOpRef<mlir::ModuleOp> plannedModel() {
    auto module = importCfg(ctx, kDetectorCfg, 6);
    EXPECT_TRUE(module);
    EXPECT_TRUE(succeeded(foldBatchNorms(*module)));
    quantization::CalibrationOptions co;
    std::string dir = writeImages(3, 40, 30);
    std::string error;
    EXPECT_TRUE(rt::listImageFiles(dir, co.images, error));
    co.progress = false;
    EXPECT_TRUE(succeeded(quantization::calibrateModule(*module, co)));
    quantization::PrecisionPlan plan;
    plan.preset = quantization::PrecisionPreset::AllInt8;
    EXPECT_TRUE(succeeded(quantization::assignPrecision(*module, plan)));
    return module;
  }
  quantization::QuantizeOptions quantizeOptions() const {
    quantization::QuantizeOptions qo;
    qo.perChannelWeights = GetParam().perChannel;
    qo.symmetricActivations = GetParam().symmetric;
    return qo;
  }
  /// The float model's spec with the grids of its quantized form.
  void qatSpec(mlir::ModuleOp module, ModuleSpec &ms) {
    ASSERT_TRUE(succeeded(readModule(module, ms)));
    mlir::OwningOpRef<mlir::ModuleOp> q(
        mlir::cast<mlir::ModuleOp>(module->clone()));
    ASSERT_TRUE(succeeded(quantization::quantizeModule(*q, quantizeOptions())));
    ModuleSpec qs;
    ASSERT_TRUE(succeeded(readModule(*q, qs, false)));
    ASSERT_TRUE(
        succeeded(overlayQuantization(ms, qs, GetParam().perChannel, false)));
    if (GetParam().lsq)
      buildRangeGroups(ms.spec, GridRule{GetParam().symmetric, false});
  }
  mlir::MLIRContext ctx;
};

TEST_P(QuantView, EqualsIntegerInterpreterWithinOneStep) {
  auto module = plannedModel();
  ModuleSpec ms;
  qatSpec(*module, ms);
  mlir::OwningOpRef<mlir::ModuleOp> q(
      mlir::cast<mlir::ModuleOp>(module->clone()));
  ASSERT_TRUE(succeeded(quantization::quantizeModule(*q, quantizeOptions())));
  ViewOptions vo;
  vo.learnRanges = GetParam().lsq;
  std::string error;
  auto view = NetView::create(ms.spec, vo, error);
  ASSERT_TRUE(view) << error;
  Blob in = randomInput(ms.spec, 1, 8);
  auto ref = interpreterLayers(*q, in, 0);
  // Each layer on the integer interpreter's own inputs: one rounding apart
  // at most. Through the whole network the differences compound a little.
  std::map<int, Blob> forced;
  for (size_t layer = 0; layer < ms.spec.layerOutputs.size(); ++layer) {
    Blob b;
    const Shape3 &s = ms.spec.nodes[ms.spec.layerOutputs[layer]].out;
    b.n = 1, b.c = s.c, b.h = s.h, b.w = s.w;
    b.data.assign(ref[layer].begin(), ref[layer].end());
    forced[ms.spec.layerOutputs[layer]] = b;
  }
  std::vector<Blob> alone = view->forwardForced(in, forced);
  std::vector<Blob> chained = view->forward(in);
  int int8Layers = 0;
  for (size_t layer = 0; layer < ms.spec.layerOutputs.size(); ++layer) {
    int node = ms.spec.layerOutputs[layer];
    const Node &n = ms.spec.nodes[node];
    ASSERT_EQ(alone[node].data.size(), ref[layer].size());
    if (!n.outputGrid) {
      EXPECT_LE(relativeMaxError(ref[layer], alone[node].data.data(),
                                 ref[layer].size()),
                1e-4)
          << n.label << " (float, on the interpreter's inputs)";
      continue;
    }
    ++int8Layers;
    double step = n.outputGrid->scale, worstAlone = 0, worstChained = 0;
    for (size_t i = 0; i < ref[layer].size(); ++i) {
      worstAlone =
          std::max(worstAlone, std::fabs(alone[node].data[i] - ref[layer][i]));
      worstChained = std::max(worstChained,
                              std::fabs(chained[node].data[i] - ref[layer][i]));
    }
    EXPECT_LE(worstAlone, step * 1.0001)
        << n.label << ": " << worstAlone / step << " steps";
    EXPECT_LE(worstChained, step * 3.0001)
        << n.label << ": " << worstChained / step << " steps through the net";
  }
  EXPECT_GE(int8Layers, 8);
}

/// Three steps of sign gradient descent on a random objective: weights,
/// biases and learned ranges all move.
void perturb(NetView &view, const ModuleSpec &ms) {
  Blob in = randomInput(ms.spec, 2, 3);
  std::vector<Blob> outs = view.forward(in, ms.spec.outputs);
  std::vector<std::vector<double>> seeds;
  for (const Blob &b : outs)
    seeds.emplace_back(b.data.size(), 1.0);
  for (int it = 0; it < 3; ++it) {
    NetView::Gradients g = view.gradient(in, ms.spec.outputs, seeds);
    for (size_t p = 0; p < view.numParameters(); ++p) {
      std::vector<double> v = view.parameter(p);
      double scale = 0;
      for (double x : v)
        scale = std::max(scale, std::fabs(x));
      for (size_t i = 0; i < v.size(); ++i)
        v[i] -= 0.03 * scale * (g.parameters[p][i] > 0 ? 1 : -1) *
                (i % 3 == 0 ? 1 : 0.3);
      view.setParameter(p, v);
    }
  }
}

TEST_P(QuantView, QuantizeGivesTheFakeQuantIntegers) {
  auto module = plannedModel();
  ModuleSpec ms;
  qatSpec(*module, ms);
  ViewOptions vo;
  vo.learnRanges = GetParam().lsq;
  std::string error;
  auto view = NetView::create(ms.spec, vo, error);
  ASSERT_TRUE(view) << error;
  perturb(*view, ms);
  NetSpec trained = ms.spec;
  view->exportTo(trained);
  ASSERT_TRUE(succeeded(writeModule(trained, ms)));
  ASSERT_TRUE(succeeded(mlir::verify(*module)));
  ASSERT_TRUE(
      succeeded(quantization::quantizeModule(*module, quantizeOptions())));
  ModuleSpec qs;
  ASSERT_TRUE(succeeded(readModule(*module, qs, false)));
  int weighted = 0;
  for (size_t i = 0; i < ms.spec.nodes.size(); ++i) {
    const Node &n = ms.spec.nodes[i];
    if (!n.isInt8())
      continue;
    NetView::QuantState st = view->quantState(i);
    const Node &qn = qs.spec.nodes[i];
    ASSERT_TRUE(qn.outputGrid) << n.label;
    EXPECT_EQ(st.output->scale, qn.outputGrid->scale) << n.label;
    EXPECT_EQ(st.output->zeroPoint, qn.outputGrid->zeroPoint) << n.label;
    for (size_t k = 0; k < st.inputs.size(); ++k)
      if (st.inputs[k]) {
        EXPECT_EQ(st.inputs[k]->scale, qn.inputGrids[k]->scale) << n.label;
        EXPECT_EQ(st.inputs[k]->zeroPoint, qn.inputGrids[k]->zeroPoint)
            << n.label;
      }
    if (st.weights.empty())
      continue;
    ++weighted;
    mlir::Operation *op = qs.ops[i];
    auto w = getInts<int8_t>(op->getAttrOfType<mlir::ElementsAttr>("weight"));
    auto b = getInts<int32_t>(op->getAttrOfType<mlir::ElementsAttr>("bias"));
    ASSERT_TRUE(w && b) << n.label;
    EXPECT_EQ(st.weights, *w) << n.label << ": int8 weights differ";
    EXPECT_EQ(st.bias, *b) << n.label << ": int32 biases differ";
  }
  EXPECT_GE(weighted, 4);
}

INSTANTIATE_TEST_SUITE_P(
    Qat, QuantView,
    ::testing::Values(QatCase{"per_channel"}, QatCase{"per_tensor", false},
                      QatCase{"symmetric", true, true},
                      QatCase{"lsq", true, false, true},
                      QatCase{"lsq_per_tensor_symmetric", false, true, true}),
    [](const ::testing::TestParamInfo<QatCase> &i) { return i.param.name; });

} // namespace
