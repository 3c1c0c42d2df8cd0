//===- BiasCorrection.cpp - empirical bias correction --------------------===//

#include "qsim/Quant/BiasCorrection.h"
#include "qsim/Quant/Precision.h"
#include "qsim/Quant/Recovery.h"
#include "qsim/Support/Progress.h"
#include "qsim/Support/StringUtils.h"

#include <climits>
#include <cmath>
#include <functional>
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
  const QuantizeOptions layerOpts = o.quantize.forLayer(layer.index);
  std::vector<float> wq = fakeQuantizeWeights(w, channels, layerOpts);
  std::vector<float> scales = chooseWeightScales(w, channels, layerOpts);
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
  size_t corrected = llvm::count_if(
      rows, [](const BiasCorrectionRow &r) { return r.kept.empty(); });
  if (corrected == rows.size())
    os << "bias correction: " << rows.size() << " layer(s)\n";
  else
    os << "bias correction: " << corrected << " of " << rows.size()
       << " layer(s)\n";
  os << strprintf("%-8s %9s %14s %14s\n", "layer", "channels", "mean |shift|",
                  "max |shift|");
  for (const BiasCorrectionRow &r : rows)
    if (r.kept.empty())
      os << strprintf("%-8lld %9lld %14.4g %14.4g\n", (long long)r.layer,
                      (long long)r.channels, r.meanShift, r.maxShift);
  for (const BiasCorrectionRow &r : rows)
    if (!r.kept.empty())
      os << "layer " << r.layer << ": bias kept: " << r.kept << "\n";
}

//===----------------------------------------------------------------------===//
// Analytic bias correction
//===----------------------------------------------------------------------===//

namespace {

/// E[max(y, 0)] for y ~ N(mean, sd^2): mean Phi(mean/sd) + sd phi(mean/sd).
double reluMean(double mean, double sd) {
  if (!(sd > 0))
    return std::max(mean, 0.0);
  double z = mean / sd;
  double cdf = 0.5 * std::erfc(-z / std::sqrt(2.0));
  double pdf = std::exp(-0.5 * z * z) / std::sqrt(2.0 * M_PI);
  return mean * cdf + sd * pdf;
}

/// "layer 4 (convolutional)" for the op producing `v`, "the network input"
/// for a block argument.
std::string describeValue(Value v) {
  if (Operation *def = v.getDefiningOp())
    return describeLayer(def);
  return "the network input";
}

int64_t channelsOf(Value v) {
  auto t = dyn_cast<ShapedType>(v.getType());
  return t && t.hasRank() && t.getRank() >= 2 ? t.getDimSize(1) : -1;
}

} // namespace

std::optional<double>
qsim::quantization::activationMean(Activation act, double mean, double sd) {
  switch (act) {
  case Activation::linear:
    return mean;
  case Activation::relu:
    return reluMean(mean, sd);
  case Activation::relu6:
    // clip(y, 0, 6) = relu(y) - relu(y - 6).
    return reluMean(mean, sd) - reluMean(mean - 6.0, sd);
  case Activation::leaky: {
    // Darknet's leaky: y for y > 0, 0.1 y below; E[min(y, 0)] = mean -
    // E[max(y, 0)].
    double pos = reluMean(mean, sd);
    return pos + 0.1 * (mean - pos);
  }
  default:
    return std::nullopt;
  }
}

std::optional<std::vector<double>>
qsim::quantization::batchNormChannelMeans(Value v, std::string &why) {
  Operation *def = v.getDefiningOp();
  if (!def) {
    why = "its input is the network input (no batch-norm statistics)";
    return std::nullopt;
  }
  if (isa<Conv2DOp, ConnectedOp>(def)) {
    std::optional<BatchNormStats> st = getBatchNormStats(def);
    if (!st) {
      why = "its input comes from " + describeLayer(def) +
            ", which has no batch-norm statistics";
      return std::nullopt;
    }
    Activation act = isa<Conv2DOp>(def)
                         ? cast<Conv2DOp>(def).getActivation()
                         : cast<ConnectedOp>(def).getActivation();
    std::vector<double> means(st->mean.size());
    for (size_t c = 0; c < means.size(); ++c) {
      std::optional<double> m = activationMean(act, st->mean[c], st->std[c]);
      if (!m) {
        why = "its input comes from " + describeLayer(def) +
              ", whose activation " + stringifyActivation(act).str() +
              " has no closed-form mean (analytic mode knows linear, relu, "
              "relu6 and leaky)";
        return std::nullopt;
      }
      means[c] = *m;
    }
    return means;
  }
  if (auto up = dyn_cast<UpsampleOp>(def)) {
    // Nearest-neighbour copies keep every channel's distribution (scaled).
    if (up.getStride() <= 0) {
      why = "its input comes from " + describeLayer(def) +
            ", a downsampling sum the analytic mode does not follow";
      return std::nullopt;
    }
    auto in = batchNormChannelMeans(up.getInput(), why);
    if (in)
      for (double &m : *in)
        m *= up.getScale().convertToDouble();
    return in;
  }
  if (auto pool = dyn_cast<MaxPoolOp>(def)) {
    // Only a 1x1 unpadded window (subsampling) keeps the distribution: the
    // maximum of several values has a larger mean than each.
    if (pool.getSize() != 1 || pool.getPadding() != 0) {
      why = "its input comes from " + describeLayer(def) +
            ", whose maximum over a window has no mean the statistics give";
      return std::nullopt;
    }
    return batchNormChannelMeans(pool.getInput(), why);
  }
  if (auto route = dyn_cast<RouteOp>(def)) {
    std::vector<double> out;
    int64_t groups = route.getGroups(), id = route.getGroupId();
    for (Value in : route.getInputs()) {
      auto means = batchNormChannelMeans(in, why);
      if (!means)
        return std::nullopt;
      int64_t c = means->size(), per = c / std::max<int64_t>(groups, 1);
      out.insert(out.end(), means->begin() + id * per,
                 means->begin() + (id + 1) * per);
    }
    if ((int64_t)out.size() != channelsOf(v)) {
      why = "its input comes from " + describeLayer(def) +
            ", whose channels do not add up";
      return std::nullopt;
    }
    return out;
  }
  // [dropout] is the identity at inference.
  if (auto drop = dyn_cast<DropoutOp>(def))
    return batchNormChannelMeans(drop.getInput(), why);
  if (auto sc = dyn_cast<ShortcutOp>(def)) {
    // The mean of a sum is the sum of the means, whatever the inputs'
    // dependence; only a linear activation keeps it so. AlexeyAB adds the
    // first min(C, C_l) channels of each further input.
    if (sc.getActivation() != Activation::linear) {
      why = "its input comes from " + describeLayer(def) + ", whose " +
            stringifyActivation(sc.getActivation()).str() +
            " activation of a sum has no mean the statistics give";
      return std::nullopt;
    }
    std::optional<std::vector<double>> out;
    for (Value in : sc.getInputs()) {
      auto means = batchNormChannelMeans(in, why);
      if (!means)
        return std::nullopt;
      if (!out) {
        out = std::move(means);
        continue;
      }
      for (size_t c = 0; c < std::min(out->size(), means->size()); ++c)
        (*out)[c] += (*means)[c];
    }
    return out;
  }
  why = "its input comes from " + describeValue(v) +
        ", which the analytic mode does not see through";
  return std::nullopt;
}

std::vector<double>
qsim::quantization::analyticBiasShift(Operation *weighted, ArrayRef<float> w,
                                      ArrayRef<float> wq,
                                      ArrayRef<double> inputMeans) {
  int64_t channels = outputChannels(weighted);
  int64_t size = w.size() / channels;
  std::vector<double> shift(channels, 0.0);
  // Input channel of weight k of filter f.
  std::function<int64_t(int64_t, int64_t)> channelOf;
  if (auto conv = dyn_cast<Conv2DOp>(weighted)) {
    int64_t groups = conv.getGroups(), perGroup = channels / groups;
    int64_t cg = conv.getInputChannels() / groups;
    int64_t kernel = size / cg;
    channelOf = [=](int64_t f, int64_t k) {
      return (f / perGroup) * cg + k / kernel;
    };
  } else {
    // A connected layer reads its input flattened as C x H x W.
    int64_t spatial = size / (int64_t)inputMeans.size();
    channelOf = [=](int64_t, int64_t k) { return k / spatial; };
  }
  for (int64_t f = 0; f < channels; ++f)
    for (int64_t k = 0; k < size; ++k) {
      int64_t i = f * size + k;
      shift[f] -= ((double)wq[i] - (double)w[i]) * inputMeans[channelOf(f, k)];
    }
  return shift;
}

FailureOr<std::vector<BiasCorrectionRow>>
qsim::quantization::correctBiasesAnalytically(ModuleOp module,
                                              const BiasCorrectionOptions &o) {
  std::vector<Layer> layers;
  std::vector<const Layer *> targets;
  if (failed(
          findInt8WeightedLayers(module, "qsim-bias-correct", layers, targets)))
    return failure();
  std::vector<BiasCorrectionRow> rows;
  for (const Layer *l : targets) {
    Operation *op = l->head;
    BiasCorrectionRow row;
    row.layer = l->index;
    row.channels = outputChannels(op);
    std::string why;
    std::optional<std::vector<double>> means =
        batchNormChannelMeans(op->getOperand(0), why);
    if (means && (int64_t)means->size() != channelsOf(op->getOperand(0))) {
      means.reset();
      why = "its input's statistics do not match its channels";
    }
    if (!means) {
      if (why.find("closed-form") != std::string::npos)
        op->emitRemark() << describeLayer(op) << ": bias kept: " << why;
      row.kept = why;
      rows.push_back(row);
      continue;
    }
    std::vector<float> w = getFloats(op->getAttrOfType<ElementsAttr>("weight"));
    std::vector<float> wq =
        fakeQuantizeWeights(w, row.channels, o.quantize.forLayer(l->index));
    std::vector<double> shift = analyticBiasShift(op, w, wq, *means);
    std::vector<float> bias(row.channels, 0.0f);
    if (auto b = op->getAttrOfType<ElementsAttr>("bias"))
      bias = getFloats(b);
    for (int64_t f = 0; f < row.channels; ++f) {
      bias[f] = (float)((double)bias[f] + shift[f]);
      row.meanShift += std::fabs(shift[f]) / row.channels;
      row.maxShift = std::max(row.maxShift, std::fabs(shift[f]));
    }
    op->setAttr("bias", makeFloatAttr(op->getContext(), {row.channels},
                                      "layer" + std::to_string(l->index) +
                                          "_bias_analytic",
                                      bias));
    rows.push_back(row);
  }
  return rows;
}
