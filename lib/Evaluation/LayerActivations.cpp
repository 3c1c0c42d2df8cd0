//===- LayerActivations.cpp - what chosen layers see and produce ---------===//

#include "qsim/Evaluation/LayerActivations.h"

#include <algorithm>
#include <map>
#include <numeric>

using namespace mlir;
using namespace qsim;
using namespace qsim::eval;

/// `t` as real numbers in an f32 tensor (dequantized, widened), or `t`.
static rt::Tensor asFloat(const rt::Tensor &t) {
  if (t.dtype() == rt::DType::F32)
    return t;
  rt::Tensor f(rt::DType::F32, t.c(), t.h(), t.w());
  std::vector<float> v = t.toFloat();
  std::copy(v.begin(), v.end(), f.f32());
  return f;
}

LogicalResult qsim::eval::recordLayerActivations(
    ModuleOp module, ArrayRef<rt::Tensor> networkInputs,
    ArrayRef<int64_t> layers, ActivationSink sink,
    const interp::ExecutorOptions &options) {
  auto executor = interp::Executor::create(module, options);
  if (!executor)
    return failure(); // the diagnostic names the layer
  const auto &steps = executor->steps();
  std::map<size_t, int64_t> wanted; // step -> layer
  for (int64_t layer : layers) {
    auto it = std::find_if(steps.begin(), steps.end(), [&](const auto &s) {
      return s.layer == layer;
    });
    if (it == steps.end())
      return module.emitError() << "layer " << layer << " does not exist";
    wanted[it - steps.begin()] = layer;
  }
  // Only the steps up to the last wanted one run: the later layers are
  // not needed (a refit of an early layer would otherwise pay for the
  // whole network).
  size_t last = wanted.empty() ? 0 : wanted.rbegin()->first;
  for (size_t image = 0; image < networkInputs.size() && !wanted.empty();
       ++image) {
    executor->setInput(networkInputs[image]);
    for (size_t step = 0; step <= last; ++step) {
      executor->runStep(step);
      auto it = wanted.find(step);
      if (it == wanted.end())
        continue;
      LayerActivations a;
      for (const rt::Tensor &in : executor->stepInputs(step))
        a.inputs.push_back(asFloat(in));
      a.output = asFloat(executor->stepOutput(step));
      sink(image, it->second, a);
    }
  }
  return success();
}

ConvPatchGeometry ConvPatchGeometry::of(Conv2DOp conv) {
  auto in = cast<ShapedType>(conv.getInput().getType());
  auto out = cast<ShapedType>(conv.getResult().getType());
  ConvPatchGeometry g;
  g.inC = in.getDimSize(1);
  g.inH = in.getDimSize(2);
  g.inW = in.getDimSize(3);
  g.outH = out.getDimSize(2);
  g.outW = out.getDimSize(3);
  ArrayRef<int64_t> size = conv.getSize(), stride = conv.getStride(),
                    pad = conv.getPadding();
  g.kh = size[0];
  g.kw = size[1];
  g.sy = stride[0];
  g.sx = stride[1];
  g.py = pad[0];
  g.px = pad[1];
  g.dilation = conv.getDilation();
  g.groups = conv.getGroups();
  return g;
}

void qsim::eval::appendConvPatches(const ConvPatchGeometry &g,
                                   const float *input, int64_t group,
                                   ArrayRef<int64_t> positions,
                                   std::vector<float> &rows) {
  const int64_t cg = g.channelsPerGroup(), c0 = group * cg;
  rows.reserve(rows.size() + positions.size() * g.patchSize());
  for (int64_t p : positions) {
    int64_t oy = p / g.outW, ox = p % g.outW;
    for (int64_t c = 0; c < cg; ++c)
      for (int64_t ky = 0; ky < g.kh; ++ky)
        for (int64_t kx = 0; kx < g.kw; ++kx) {
          // Darknet scales the padding by the dilation (QSimOps.td conv2d).
          int64_t y = oy * g.sy + (ky - g.py) * g.dilation;
          int64_t x = ox * g.sx + (kx - g.px) * g.dilation;
          bool inside = y >= 0 && y < g.inH && x >= 0 && x < g.inW;
          rows.push_back(inside ? input[((c0 + c) * g.inH + y) * g.inW + x]
                                : 0.0f);
        }
  }
}

std::vector<int64_t> qsim::eval::samplePositions(int64_t positions,
                                                 int64_t count,
                                                 std::mt19937_64 &rng) {
  std::vector<int64_t> all(positions);
  std::iota(all.begin(), all.end(), 0);
  if (count < positions) {
    // Partial Fisher-Yates: the first `count` are a uniform sample.
    for (int64_t i = 0; i < count; ++i) {
      std::uniform_int_distribution<int64_t> pick(i, positions - 1);
      std::swap(all[i], all[pick(rng)]);
    }
    all.resize(count);
  }
  std::sort(all.begin(), all.end());
  return all;
}
