//===- BiasCorrection.cpp - empirical bias correction --------------------===//

#include "qsim/Quant/BiasCorrection.h"
#include "qsim/Quant/Precision.h"
#include "qsim/Quant/Recovery.h"
#include "qsim/Support/Progress.h"
#include "qsim/Support/StringUtils.h"

#include <climits>
#include <cmath>
#include <map>

using namespace mlir;
using namespace qsim;
using namespace qsim::quantization;

namespace {

class BiasCorrector {
public:
  BiasCorrector(ModuleOp module, ArrayRef<rt::Tensor> inputs,
                const BiasCorrectionOptions &o)
      : module(module), inputs(inputs), o(o) {}
  FailureOr<std::vector<BiasCorrectionRow>> run();

private:
  LogicalResult findTargets();
  LogicalResult measureFloatMeans();
  LogicalResult quantizeClone();
  FailureOr<BiasCorrectionRow> correct(const Layer &layer);
  /// The mean patch `layer` sees in the (partly corrected) quantized clone.
  FailureOr<MeanPatch> quantizedMean(const Layer &layer);

  ModuleOp module;
  ArrayRef<rt::Tensor> inputs;
  const BiasCorrectionOptions &o;
  std::vector<Layer> layers;
  std::vector<const Layer *> targets;
  std::map<int64_t, MeanPatch> floatMeans;
  OwningOpRef<ModuleOp> quantized;
  std::map<int64_t, Operation *> quantizedHeads;
};

LogicalResult BiasCorrector::findTargets() {
  if (failed(
          findInt8WeightedLayers(module, "qsim-bias-correct", layers, targets)))
    return failure();
  if (inputs.empty())
    return module.emitError() << "--qsim-bias-correct: no images";
  return success();
}

LogicalResult BiasCorrector::measureFloatMeans() {
  std::vector<int64_t> indices;
  for (const Layer *l : targets) {
    indices.push_back(l->index);
    floatMeans.emplace(l->index, MeanPatch(l->head));
  }
  return eval::recordLayerActivations(
      module, inputs, indices,
      [&](size_t, int64_t layer, const eval::LayerActivations &a) {
        floatMeans.at(layer).add(a.inputs.front());
      },
      o.executor);
}

LogicalResult BiasCorrector::quantizeClone() {
  quantized = module.clone();
  if (failed(quantizeModule(*quantized, o.quantize)))
    return failure();
  auto qlayers = getLayers(getMainFunc(*quantized));
  if (failed(qlayers))
    return failure();
  for (const Layer &l : *qlayers)
    quantizedHeads[l.index] = l.head;
  return success();
}

FailureOr<MeanPatch> BiasCorrector::quantizedMean(const Layer &layer) {
  // A new plan for every layer: the plan packs the biases.
  MeanPatch mean(layer.head);
  if (failed(forEachLayerInput(
          *quantized, layer, inputs, o.executor,
          [&](size_t, const rt::Tensor &in) { mean.add(in); })))
    return failure();
  return mean;
}

FailureOr<BiasCorrectionRow> BiasCorrector::correct(const Layer &layer) {
  Operation *op = layer.head, *qop = quantizedHeads.at(layer.index);
  FailureOr<MeanPatch> qmean = quantizedMean(layer);
  if (failed(qmean))
    return failure();
  const MeanPatch &fmean = floatMeans.at(layer.index);
  int64_t channels = outputChannels(op), perGroup = filtersPerGroup(op);
  std::vector<float> w = getFloats(op->getAttrOfType<ElementsAttr>("weight"));
  std::vector<float> wq = fakeQuantizeWeights(w, channels, o.quantize);
  std::vector<float> scales = chooseWeightScales(w, channels, o.quantize);
  std::vector<float> bias(channels, 0.0f);
  if (auto b = op->getAttrOfType<ElementsAttr>("bias"))
    bias = getFloats(b);
  int64_t size = fmean.patchSize();
  BiasCorrectionRow row;
  row.layer = layer.index;
  row.channels = channels;
  auto qin = cast<mlir::quant::UniformQuantizedType>(
      getElementTypeOrSelf(qop->getOperand(0).getType()));
  std::vector<int32_t> qbias(channels);
  for (int64_t g = 0; g < fmean.groups(); ++g) {
    std::vector<double> mf = fmean.mean(g), mq = qmean->mean(g);
    for (int64_t f = g * perGroup; f < (g + 1) * perGroup; ++f) {
      double shift = 0;
      for (int64_t i = 0; i < size; ++i)
        shift +=
            (double)w[f * size + i] * mf[i] - (double)wq[f * size + i] * mq[i];
      bias[f] += (float)shift;
      row.meanShift += std::fabs(shift) / channels;
      row.maxShift = std::max(row.maxShift, std::fabs(shift));
      // The clone's int32 bias, as --qsim-quantize computes it.
      double acc =
          std::round((double)bias[f] / ((double)qin.getScale() * scales[f]));
      qbias[f] = (int32_t)std::max<double>(INT32_MIN,
                                           std::min<double>(INT32_MAX, acc));
    }
  }
  std::string base = "layer" + std::to_string(layer.index);
  op->setAttr("bias", makeFloatAttr(op->getContext(), {channels},
                                    base + "_bias_corrected", bias));
  qop->setAttr(
      "bias",
      makeResourceAttr(RankedTensorType::get(
                           {channels}, IntegerType::get(op->getContext(), 32)),
                       base + "_int8_bias", ArrayRef<int32_t>(qbias)));
  return row;
}

FailureOr<std::vector<BiasCorrectionRow>> BiasCorrector::run() {
  if (failed(findTargets()) || failed(measureFloatMeans()) ||
      failed(quantizeClone()))
    return failure();
  return mapWithProgress<BiasCorrectionRow>(
      "bias correction", targets, o.progress,
      [&](const Layer *l) { return correct(*l); });
}

} // namespace

FailureOr<std::vector<BiasCorrectionRow>>
qsim::quantization::correctBiases(ModuleOp module, ArrayRef<rt::Tensor> inputs,
                                  const BiasCorrectionOptions &options) {
  return BiasCorrector(module, inputs, options).run();
}

void qsim::quantization::printBiasCorrectionReport(
    ArrayRef<BiasCorrectionRow> rows, raw_ostream &os) {
  os << "bias correction: " << rows.size() << " layer(s)\n";
  os << strprintf("%-8s %9s %14s %14s\n", "layer", "channels", "mean |shift|",
                  "max |shift|");
  for (const BiasCorrectionRow &r : rows)
    os << strprintf("%-8lld %9lld %14.4g %14.4g\n", (long long)r.layer,
                    (long long)r.channels, r.meanShift, r.maxShift);
}
