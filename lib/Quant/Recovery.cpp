//===- Recovery.cpp - shared pieces of post-training recovery ------------===//

#include "qsim/Quant/Recovery.h"
#include "qsim/Evaluation/Inference.h"
#include "qsim/Evaluation/ModelMeasures.h"
#include "qsim/Quant/Precision.h"
#include "qsim/Runtime/Image.h"

using namespace mlir;
using namespace qsim;
using namespace qsim::quantization;

bool qsim::quantization::calibratedLog2(ModuleOp module) {
  bool log2 = false;
  module.walk([&](Operation *op) {
    if (auto d = op->getAttrOfType<DictionaryAttr>("qsim.calib"))
      if (auto m = d.getAs<StringAttr>("method"); m && m.getValue() == "log2")
        log2 = true;
  });
  return log2;
}

LogicalResult qsim::quantization::findInt8WeightedLayers(
    ModuleOp module, StringRef pass, std::vector<Layer> &layers,
    std::vector<const Layer *> &targets) {
  if (module->hasAttr("qsim.quantization"))
    return module.emitError() << "--" << pass
                              << ": the model is already quantized; run it on "
                                 "the float model before --qsim-quantize";
  auto found = getLayers(getMainFunc(module));
  if (failed(found))
    return failure();
  layers = std::move(*found);
  for (const Layer &l : layers) {
    if (!isa<Conv2DOp, ConnectedOp>(l.head) ||
        getAssignedPrecision(l) != "int8")
      continue;
    if (l.batchNorm)
      return l.head->emitError()
             << describeLayer(l.head) << ": fold its batch norm before --"
             << pass << " (--qsim-fold-batchnorm)";
    if (!l.head->getAttrOfType<ElementsAttr>("weight"))
      return l.head->emitError() << describeLayer(l.head)
                                 << ": has no weights (a shape-only model)";
    targets.push_back(&l);
  }
  if (targets.empty())
    return module.emitError()
           << "--" << pass
           << ": no convolutional or connected layer is planned int8 (run "
              "--qsim-assign-precision first)";
  return success();
}

LogicalResult qsim::quantization::forEachLayerInput(
    ModuleOp quantized, const Layer &layer, ArrayRef<rt::Tensor> inputs,
    const interp::ExecutorOptions &options,
    function_ref<void(size_t, const rt::Tensor &)> sink) {
  auto ex = interp::Executor::create(quantized, options);
  if (!ex)
    return failure(); // the diagnostic names the layer
  const auto &steps = ex->steps();
  size_t step = 0;
  while (step < steps.size() && steps[step].layer != layer.index)
    ++step;
  if (step == steps.size())
    return layer.head->emitError()
           << describeLayer(layer.head) << ": not a step of the quantized plan";
  for (size_t i = 0; i < inputs.size(); ++i) {
    ex->setInput(inputs[i]);
    for (size_t s = 0; s <= step; ++s)
      ex->runStep(s);
    rt::Tensor in = ex->stepInputs(step).front();
    if (in.dtype() != rt::DType::F32) {
      rt::Tensor f(rt::DType::F32, in.c(), in.h(), in.w());
      std::vector<float> v = in.toFloat();
      std::copy(v.begin(), v.end(), f.f32());
      in = std::move(f);
    }
    sink(i, in);
  }
  return success();
}

bool qsim::quantization::loadNetworkInputs(ModuleOp module,
                                           ArrayRef<std::string> files,
                                           int maxImages,
                                           std::vector<rt::Tensor> &out,
                                           std::string &error) {
  if (files.empty()) {
    error = "no images";
    return false;
  }
  auto ex = eval::createExecutor(module, error);
  if (!ex)
    return false;
  eval::ModelInfo info = eval::describeModel(module, *ex);
  rt::Preprocess pre = eval::choosePreprocess(info, std::nullopt);
  size_t n = files.size();
  if (maxImages > 0 && (size_t)maxImages < n)
    n = maxImages;
  for (size_t i = 0; i < n; ++i) {
    rt::Image im;
    if (!rt::loadImage(files[i], im, error, 64ll << 20))
      return false;
    out.push_back(rt::makeNetworkInput(im, info.netW, info.netH, pre));
  }
  return true;
}

std::vector<float>
qsim::quantization::chooseWeightScales(ArrayRef<float> w, int64_t channels,
                                       const QuantizeOptions &options) {
  return weightScales(w, channels, options);
}

std::vector<float>
qsim::quantization::fakeQuantizeWeights(ArrayRef<float> w, int64_t channels,
                                        const QuantizeOptions &options) {
  std::vector<float> scales = chooseWeightScales(w, channels, options);
  int64_t per = w.size() / channels;
  std::vector<float> out(w.size());
  for (int64_t f = 0; f < channels; ++f)
    for (int64_t i = 0; i < per; ++i)
      out[f * per + i] =
          rt::quantizeWeight(w[f * per + i], scales[f], options.weightBits) *
          scales[f];
  return out;
}

int64_t qsim::quantization::outputChannels(Operation *weighted) {
  if (auto conv = dyn_cast<Conv2DOp>(weighted))
    return conv.getFilters();
  return cast<ConnectedOp>(weighted).getOutputSize();
}

int64_t qsim::quantization::filtersPerGroup(Operation *weighted) {
  if (auto conv = dyn_cast<Conv2DOp>(weighted))
    return conv.getFilters() / conv.getGroups();
  return cast<ConnectedOp>(weighted).getOutputSize();
}

MeanPatch::MeanPatch(Operation *weighted) {
  if (auto c = dyn_cast<Conv2DOp>(weighted)) {
    conv = true;
    geometry = eval::ConvPatchGeometry::of(c);
    numGroups = geometry.groups;
    size = geometry.patchSize();
  } else {
    auto in = cast<ShapedType>(weighted->getOperand(0).getType());
    size = in.getNumElements() / in.getDimSize(0);
  }
  sums.assign(numGroups * size, 0.0);
}

void MeanPatch::add(const rt::Tensor &input) {
  std::vector<float> x = input.toFloat();
  ++count;
  if (!conv) {
    for (int64_t i = 0; i < size; ++i)
      sums[i] += x[i];
    return;
  }
  const eval::ConvPatchGeometry &g = geometry;
  int64_t cg = g.channelsPerGroup();
  // The patch element (c, ky, kx) summed over every output position: the
  // input pixels that position reads, zero where it reads the padding.
  for (int64_t c = 0; c < g.inC; ++c) {
    const float *plane = x.data() + c * g.inH * g.inW;
    for (int64_t ky = 0; ky < g.kh; ++ky)
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        double s = 0;
        for (int64_t oy = 0; oy < g.outH; ++oy) {
          int64_t y = oy * g.sy + (ky - g.py) * g.dilation;
          if (y < 0 || y >= g.inH)
            continue;
          for (int64_t ox = 0; ox < g.outW; ++ox) {
            int64_t xx = ox * g.sx + (kx - g.px) * g.dilation;
            if (xx >= 0 && xx < g.inW)
              s += plane[y * g.inW + xx];
          }
        }
        int64_t group = c / cg;
        sums[group * size + ((c % cg) * g.kh + ky) * g.kw + kx] += s;
      }
  }
}

std::vector<double> MeanPatch::mean(int64_t group) const {
  double n = (double)count * (conv ? geometry.outputPositions() : 1);
  std::vector<double> m(size);
  for (int64_t i = 0; i < size; ++i)
    m[i] = n > 0 ? sums[group * size + i] / n : 0.0;
  return m;
}
