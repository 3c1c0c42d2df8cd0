//===- TorchNet.cpp - a NetSpec as torch tensors and a forward -----------===//
//
// Each node computes what lib/Interpreter/ReferenceKernels.cpp computes
// (DARKNET.md §4), in torch operations autograd can differentiate. Where
// Darknet's formula has a branch whose other side can overflow (exp of a
// large input), the unused side is computed on a clamped input so that its
// gradient stays finite.
//
//===----------------------------------------------------------------------===//

#include "TorchNet.h"

#include "qsim/Runtime/QuantMath.h"

#include <cfloat>
#include <cmath>

using namespace qsim;
using namespace qsim::train;
namespace F = torch::nn::functional;

//===----------------------------------------------------------------------===//
// Activations (DARKNET.md §4.0)
//===----------------------------------------------------------------------===//

static torch::Tensor normalizeChannels(const torch::Tensor &x, Act a) {
  // Per pixel across channels (dim 1), with Darknet's 1e-4 in the sum.
  if (a == Act::NormalizeChannels) {
    torch::Tensor pos = torch::relu(x);
    return pos / (pos.sum(1, true) + 1e-4);
  }
  torch::Tensor e = a == Act::NormalizeChannelsSoftmax
                        ? torch::exp(x)
                        : torch::exp(x - std::get<0>(x.max(1, true)));
  return e / (e.sum(1, true) + 1e-4);
}

torch::Tensor qsim::train::activate(const torch::Tensor &x, Act a,
                                    Flavor flavor) {
  switch (a) {
  case Act::Linear:
    return x;
  case Act::Logistic:
    return torch::sigmoid(x);
  case Act::Loggy:
    return 2 * torch::sigmoid(x) - 1;
  case Act::Relu:
    return torch::relu(x);
  case Act::Relu6:
    return torch::clamp(x, 0, 6);
  case Act::Leaky:
    return torch::leaky_relu(x, 0.1);
  case Act::Relie:
    return torch::where(x > 0, x, 0.01 * x);
  case Act::Ramp:
    return torch::relu(x) + 0.1 * x;
  case Act::Elu:
    return torch::where(x >= 0, x, torch::exp(torch::clamp_max(x, 0)) - 1);
  case Act::Selu:
    return torch::where(x >= 0, 1.0507 * x,
                        1.0507 * 1.6732 *
                            (torch::exp(torch::clamp_max(x, 0)) - 1));
  case Act::Gelu:
    return 0.5 * x * (1 + torch::tanh(0.797885 * x + 0.035677 * x * x * x));
  case Act::Tanh:
    return torch::tanh(x);
  case Act::Plse:
    return torch::where(
        x < -4, 0.01 * (x + 4),
        torch::where(x > 4, 0.01 * (x - 4) + 1, 0.125 * x + 0.5));
  case Act::Hardtan:
    return torch::clamp(x, -1, 1);
  case Act::Lhtan:
    return torch::where(x < 0, 0.001 * x,
                        torch::where(x > 1, 0.001 * (x - 1) + 1, x));
  case Act::Stair: {
    // n = floor(x); even n: floor(x/2), odd: (x - n) + floor(x/2).
    torch::Tensor n = torch::floor(x);
    torch::Tensor half = torch::floor(x / 2);
    return torch::where(torch::fmod(n, 2) == 0, half, (x - n) + half);
  }
  case Act::Swish:
    return x * torch::sigmoid(x);
  case Act::Mish: {
    torch::Tensor softplus = torch::where(
        x > 20, x,
        torch::where(x < -20, torch::exp(torch::clamp_max(x, 0)),
                     torch::log(torch::exp(torch::clamp_max(x, 20)) + 1)));
    return x * torch::tanh(softplus);
  }
  case Act::HardMish:
    return torch::where(
        x > 0, x, torch::where(x > -2, x * x / 2 + x, torch::zeros_like(x)));
  case Act::NormalizeChannels:
  case Act::NormalizeChannelsSoftmax:
  case Act::NormalizeChannelsSoftmaxMaxval:
    return normalizeChannels(x, a);
  }
  (void)flavor; // both flavours share these formulas up to float rounding
  return x;
}

torch::Tensor qsim::train::roundHalfAway(const torch::Tensor &x) {
  // (int)(v + 0.5f) / (int)(v - 0.5f), as rt::roundHalfAwayFromZero.
  return torch::where(x >= 0, torch::trunc(x + 0.5), torch::trunc(x - 0.5));
}

/// std::round (exact half away from zero), for the int32 bias.
static torch::Tensor roundHalfAwayExact(const torch::Tensor &x) {
  torch::Tensor t = torch::trunc(x);
  return t + torch::where(torch::abs(x - t) >= 0.5, torch::sign(x),
                          torch::zeros_like(x));
}

//===----------------------------------------------------------------------===//
// Construction
//===----------------------------------------------------------------------===//

bool TorchNet::validate(const NetSpec &spec, std::string &error) {
  for (size_t i = 0; i < spec.nodes.size(); ++i) {
    const Node &n = spec.nodes[i];
    for (int in : n.inputs)
      if (in < -1 || in >= (int)i) {
        error = n.label + ": reads a value computed after it";
        return false;
      }
    size_t needed = n.kind == NodeKind::ScaleChannels ? 2 : 1;
    if (n.inputs.size() < needed) {
      error = n.label + ": " + nodeKindName(n.kind) + " without its inputs";
      return false;
    }
    if ((n.kind == NodeKind::Conv || n.kind == NodeKind::Connected) &&
        n.weight.empty()) {
      error = n.label + ": has no weights (a shape-only model): import it with "
                        "--weights or --random-weights to train it";
      return false;
    }
    if (n.kind == NodeKind::BatchNorm &&
        (n.bnScale.empty() || n.bnMean.empty() || n.bnVariance.empty() ||
         n.bnBias.empty())) {
      error = n.label + ": batch norm without its statistics (a shape-only "
                        "model)";
      return false;
    }
  }
  return true;
}

static torch::Tensor fromVector(const std::vector<float> &v,
                                std::vector<int64_t> shape, torch::Dtype type) {
  return torch::from_blob(const_cast<float *>(v.data()), shape, torch::kFloat)
      .to(type)
      .clone();
}

void TorchNet::addParam(torch::Tensor t, int node, Role role,
                        const std::string &what) {
  t.set_requires_grad(true);
  Param p;
  p.tensor = t;
  p.node = node;
  p.role = role;
  p.name =
      (node >= 0 ? net.nodes[node].label : std::string("range")) + " " + what;
  params.push_back(p);
}

TorchNet::TorchNet(const NetSpec &spec, const ViewOptions &options)
    : net(spec), opts(options),
      type(options.float64 ? torch::kDouble : torch::kFloat) {
  tensors.resize(net.nodes.size());
  lastUse.assign(net.nodes.size(), -1);
  for (size_t i = 0; i < net.nodes.size(); ++i) {
    Node &n = net.nodes[i];
    for (int in : n.inputs)
      if (in >= 0)
        lastUse[in] = (int)i;
    NodeTensors &t = tensors[i];
    if (n.kind == NodeKind::Conv) {
      t.weight = fromVector(
          n.weight,
          {n.filters, (int64_t)n.weight.size() / (n.filters * n.kh * n.kw),
           n.kh, n.kw},
          type);
      addParam(t.weight, i, Role::Weight, "weight");
    } else if (n.kind == NodeKind::Connected) {
      t.weight = fromVector(
          n.weight, {n.filters, (int64_t)n.weight.size() / n.filters}, type);
      addParam(t.weight, i, Role::Weight, "weight");
    }
    if ((n.kind == NodeKind::Conv || n.kind == NodeKind::Connected) &&
        !n.bias.empty()) {
      t.bias = fromVector(n.bias, {n.filters}, type);
      addParam(t.bias, i, Role::Bias, "bias");
    }
    if (n.kind == NodeKind::BatchNorm) {
      int64_t c = n.bnScale.size();
      t.bnScale = fromVector(n.bnScale, {1, c, 1, 1}, type);
      t.bnBias = fromVector(n.bnBias, {1, c, 1, 1}, type);
      t.bnMean = fromVector(n.bnMean, {1, c, 1, 1}, type);
      t.bnVariance = fromVector(n.bnVariance, {1, c, 1, 1}, type);
      addParam(t.bnScale, i, Role::BnScale, "scale");
      addParam(t.bnBias, i, Role::BnBias, "bias");
    }
    if (n.kind == NodeKind::Reorg) {
      // The flat gather index of Darknet's reorg_cpu (ReferenceKernels.cpp):
      // reverse=0: out[a] = in[b]; reverse=1: out[b] = in[a].
      const Node &src = n.inputs[0] >= 0 ? net.nodes[n.inputs[0]] : n;
      Shape3 s = n.inputs[0] >= 0 ? src.out : net.input;
      int64_t w = s.w, h = s.h, c = s.c, st = n.stride, outC = c / (st * st);
      std::vector<int64_t> idx(s.size());
      for (int64_t k = 0; k < c; ++k)
        for (int64_t j = 0; j < h; ++j)
          for (int64_t x = 0; x < w; ++x) {
            int64_t a = x + w * (j + h * k);
            int64_t c2 = k % outC, o = k / outC;
            int64_t w2 = x * st + o % st, h2 = j * st + o / st;
            int64_t b = w2 + w * st * (h2 + h * st * c2);
            if (n.reverse)
              idx[b] = a;
            else
              idx[a] = b;
          }
      t.reorgIndex = torch::tensor(idx, torch::kLong);
    }
    // The weights live in the tensors now.
    n.weight.clear();
    n.bias.clear();
    n.bnScale.clear();
    n.bnBias.clear();
  }
  for (int out : net.outputs)
    if (out >= 0)
      lastUse[out] = (int)net.nodes.size();
  std::vector<int> uses(net.nodes.size(), 0);
  for (const Node &n : net.nodes)
    for (int in : n.inputs)
      if (in >= 0)
        ++uses[in];
  foldedIntoNext.assign(net.nodes.size(), false);
  for (size_t i = 0; opts.foldBatchNorm && i < net.nodes.size(); ++i) {
    const Node &bn = net.nodes[i];
    int p = bn.kind == NodeKind::BatchNorm ? bn.inputs[0] : -1;
    if (p < 0)
      continue;
    const Node &c = net.nodes[p];
    bool quantized = opts.fakeQuant && (c.isInt8() || c.fp16 || bn.fp16);
    foldedIntoNext[p] = c.kind == NodeKind::Conv && c.act == Act::Linear &&
                        !tensors[p].bias.defined() && uses[p] == 1 &&
                        p + 1 == (int)i && !quantized;
  }
  if (opts.learnRanges)
    for (size_t g = 0; g < net.gridGroups.size(); ++g) {
      rangeLo.push_back(torch::tensor((double)net.gridGroups[g].lo, type));
      rangeHi.push_back(torch::tensor((double)net.gridGroups[g].hi, type));
      addParam(rangeLo.back(), -1, Role::RangeLo,
               "lo of group " + std::to_string(g));
      params.back().group = g;
      addParam(rangeHi.back(), -1, Role::RangeHi,
               "hi of group " + std::to_string(g));
      params.back().group = g;
    }
}

void TorchNet::clampRanges() {
  torch::NoGradGuard noGrad;
  for (size_t g = 0; g < rangeLo.size(); ++g) {
    rangeLo[g].clamp_max_(0);
    rangeHi[g].clamp_min_(0);
    // A collapsed range would give a scale of zero.
    if (rangeHi[g].item<double>() - rangeLo[g].item<double>() < 1e-6)
      rangeHi[g].add_(1e-6);
  }
}

void TorchNet::exportTo(NetSpec &spec) const {
  auto toVector = [](const torch::Tensor &t, std::vector<float> &out) {
    torch::Tensor f = t.detach().to(torch::kFloat).contiguous();
    out.assign(f.data_ptr<float>(), f.data_ptr<float>() + f.numel());
  };
  for (size_t i = 0; i < tensors.size() && i < spec.nodes.size(); ++i) {
    const NodeTensors &t = tensors[i];
    Node &n = spec.nodes[i];
    if (t.weight.defined())
      toVector(t.weight, n.weight);
    if (t.bias.defined())
      toVector(t.bias, n.bias);
    if (t.bnScale.defined()) {
      toVector(t.bnScale, n.bnScale);
      toVector(t.bnBias, n.bnBias);
    }
  }
  for (size_t g = 0; g < rangeLo.size() && g < spec.gridGroups.size(); ++g) {
    spec.gridGroups[g].lo = (float)rangeLo[g].item<double>();
    spec.gridGroups[g].hi = (float)rangeHi[g].item<double>();
  }
}

//===----------------------------------------------------------------------===//
// Fake quantization
//===----------------------------------------------------------------------===//

QuantGrid TorchNet::currentGrid(QuantGrid fixed, int group) const {
  if (group < 0 || !opts.learnRanges || group >= (int)rangeLo.size())
    return fixed;
  return gridFromRange((float)rangeLo[group].item<double>(),
                       (float)rangeHi[group].item<double>(),
                       net.gridGroups[group].rule);
}

torch::Tensor TorchNet::fakeQuant(const torch::Tensor &x, QuantGrid fixed,
                                  int group) const {
  QuantGrid g = currentGrid(fixed, group);
  // Exactly rt::quantizeValue then rt::dequantizeValue.
  const float inv = 1.0f / g.scale;
  torch::Tensor q =
      torch::clamp(roundHalfAway(x * inv) + g.zeroPoint, -128, 127);
  torch::Tensor exact = (q - g.zeroPoint) * g.scale;
  const float lo = g.scale * (float)(-128 - g.zeroPoint);
  const float hi = g.scale * (float)(127 - g.zeroPoint);
  if (group < 0 || !opts.learnRanges || group >= (int)rangeLo.size()) {
    // Straight-through inside the grid's range, zero gradient outside.
    torch::Tensor clipped = torch::clamp(x, lo, hi);
    return clipped + (exact - clipped).detach();
  }
  // LSQ (Esser et al. 2020): the step size s, a function of the learned
  // range as rt::chooseQuantParams computes it, gets the gradient of the
  // rounding error, scaled by 1/sqrt(elements per image * 127).
  const GridRule rule = net.gridGroups[group].rule;
  torch::Tensor loT = torch::clamp_max(rangeLo[group], 0);
  torch::Tensor hiT = torch::clamp_min(rangeHi[group], 0);
  torch::Tensor s =
      rule.symmetric ? torch::maximum(-loT, hiT) / 127 : (hiT - loT) / 255;
  double gradScale = 1.0 / std::sqrt((double)(x.numel() / x.size(0)) * 127.0);
  torch::Tensor sScaled = (s - s * gradScale).detach() + s * gradScale;
  torch::Tensor v = torch::clamp(x / sScaled + g.zeroPoint, -128, 127);
  torch::Tensor rounded = (torch::round(v) - v).detach() + v;
  torch::Tensor lsq = (rounded - g.zeroPoint) * sScaled;
  return lsq + (exact - lsq).detach();
}

torch::Tensor TorchNet::toHalfSte(const torch::Tensor &x) const {
  return x + (x.to(torch::kHalf).to(type) - x).detach();
}

std::optional<QuantGrid> TorchNet::inputGrid(int i, size_t k) const {
  const Node &n = net.nodes[i];
  if (k >= n.inputGrids.size() || !n.inputGrids[k])
    return std::nullopt;
  return currentGrid(*n.inputGrids[k],
                     k < n.inputGroups.size() ? n.inputGroups[k] : -1);
}

std::optional<QuantGrid> TorchNet::outputGrid(int i) const {
  const Node &n = net.nodes[i];
  if (!n.outputGrid)
    return std::nullopt;
  return currentGrid(*n.outputGrid, n.outputGroup);
}

TorchNet::IntWeights TorchNet::intWeights(int i) const {
  const Node &n = net.nodes[i];
  const NodeTensors &t = tensors[i];
  const int64_t f = n.filters;
  torch::Tensor flat = t.weight.detach().reshape({f, -1});
  IntWeights r;
  if (n.fixedWeightScales) {
    r.scales = fromVector(n.weightScales, {f}, type);
  } else {
    // rt::weightScales: max |w| / 127 per channel (or over the tensor).
    torch::Tensor m = std::get<0>(flat.abs().max(1));
    if (!n.perChannelWeights)
      m = m.max().expand({f});
    r.scales = torch::where(m > 0, m / 127, torch::full_like(m, 1e-8));
    if (n.pow2WeightScales) {
      torch::Tensor c = r.scales.to(torch::kFloat).contiguous();
      std::vector<float> v(c.data_ptr<float>(), c.data_ptr<float>() + f);
      for (float &s : v)
        s = std::ldexp(1.0f, (int)std::ceil(std::log2((double)s)));
      r.scales = fromVector(v, {f}, type);
    }
  }
  // rt::quantizeWeight: round(w / scale) clamped to [-127, 127].
  r.weights =
      torch::clamp(roundHalfAway(flat / r.scales.view({f, 1})), -127, 127);
  if (!t.bias.defined())
    return r;
  // The int32 bias in units of s_in * s_w[f] (the quantizer's std::round
  // in double).
  QuantGrid in = inputGrid(i, 0).value_or(QuantGrid());
  torch::Tensor acc = (double)in.scale * r.scales.to(torch::kDouble);
  r.bias =
      torch::clamp(roundHalfAwayExact(t.bias.detach().to(torch::kDouble) / acc),
                   (double)INT32_MIN, (double)INT32_MAX);
  return r;
}

std::pair<torch::Tensor, torch::Tensor>
TorchNet::effectiveWeights(int i) const {
  const Node &n = net.nodes[i];
  const NodeTensors &t = tensors[i];
  if (!opts.fakeQuant || (!n.isInt8() && !n.fp16))
    return {t.weight, t.bias};
  if (n.fp16)
    return {toHalfSte(t.weight), t.bias.defined() ? toHalfSte(t.bias) : t.bias};
  const int64_t f = n.filters;
  IntWeights q = intWeights(i);
  torch::Tensor flat = t.weight.reshape({f, -1});
  torch::Tensor sCol = q.scales.view({f, 1});
  torch::Tensor wq = q.weights * sCol;
  // Straight-through; with fixed scales no gradient beyond the range.
  torch::Tensor clipped =
      n.fixedWeightScales
          ? torch::maximum(torch::minimum(flat, 127 * sCol), -127 * sCol)
          : flat;
  torch::Tensor w = (clipped + (wq - clipped).detach()).view(t.weight.sizes());
  if (!t.bias.defined())
    return {w, t.bias};
  QuantGrid in = inputGrid(i, 0).value_or(QuantGrid());
  torch::Tensor acc = (double)in.scale * q.scales.to(torch::kDouble);
  torch::Tensor b = (q.bias * acc).to(type);
  return {w, t.bias + (b - t.bias).detach()};
}

//===----------------------------------------------------------------------===//
// Forward
//===----------------------------------------------------------------------===//

torch::Tensor TorchNet::input(const std::vector<torch::Tensor> &outs,
                              const torch::Tensor &x, int node,
                              size_t k) const {
  const Node &n = net.nodes[node];
  int producer = n.inputs[k];
  torch::Tensor v = producer < 0 ? x : outs[producer];
  if (!v.defined())
    return v; // a convolution folded into this batch norm
  // A float producer read by an int8 layer goes through the quantizer's
  // quant.qcast; an int8 producer's values are on their grid already.
  if (opts.fakeQuant && n.isInt8() && k < n.inputGrids.size() &&
      n.inputGrids[k] && (producer < 0 || !net.nodes[producer].isInt8()))
    v = fakeQuant(v, *n.inputGrids[k],
                  k < n.inputGroups.size() ? n.inputGroups[k] : -1);
  return v;
}

torch::Tensor TorchNet::conv(const Node &n, const torch::Tensor &in,
                             const torch::Tensor &w,
                             const torch::Tensor &b) const {
  const int64_t d = n.dilation;
  const int64_t top = n.py * d, left = n.px * d;
  // Rows/columns of padded input the output reads (Darknet's output size
  // does not include the dilation, DARKNET.md §4.1).
  const int64_t needH = (n.out.h - 1) * n.sy + d * (n.kh - 1) + 1;
  const int64_t needW = (n.out.w - 1) * n.sx + d * (n.kw - 1) + 1;
  const int64_t bottom = needH - (in.size(2) + top);
  const int64_t right = needW - (in.size(3) + left);
  const std::vector<int64_t> stride = {n.sy, n.sx}, dilation = {d, d};
  torch::Tensor y;
  if (bottom <= top && right <= left) {
    const std::vector<int64_t> padding = {top, left};
    y = torch::conv2d(in, w, b, stride, padding, dilation, n.groups);
  } else {
    torch::Tensor padded = torch::constant_pad_nd(
        in,
        {left, std::max<int64_t>(right, 0), top, std::max<int64_t>(bottom, 0)},
        0);
    const std::vector<int64_t> padding = {0, 0};
    y = torch::conv2d(padded, w, b, stride, padding, dilation, n.groups);
  }
  if (y.size(2) != n.out.h || y.size(3) != n.out.w)
    y = y.narrow(2, 0, n.out.h).narrow(3, 0, n.out.w);
  return y;
}

torch::Tensor TorchNet::foldedBatchNorm(int i, const torch::Tensor &in) const {
  // y = (conv(x, W) - mean) / sd * scale + bias = conv(x, W * a) + b with
  // a = scale / sd, b = bias - mean * a.
  const Node &bn = net.nodes[i];
  const int p = bn.inputs[0];
  const NodeTensors &t = tensors[i];
  torch::Tensor sd = net.flavor == Flavor::AlexeyAB
                         ? torch::sqrt(t.bnVariance + 1e-5)
                         : torch::sqrt(t.bnVariance) + 1e-6;
  torch::Tensor a = (t.bnScale / sd).reshape({-1});
  torch::Tensor w = tensors[p].weight * a.view({-1, 1, 1, 1});
  torch::Tensor b = t.bnBias.reshape({-1}) - t.bnMean.reshape({-1}) * a;
  return conv(net.nodes[p], in, w, b);
}

torch::Tensor TorchNet::connected(const Node &n, const NodeTensors &t,
                                  const torch::Tensor &in, int i) const {
  auto [w, b] = effectiveWeights(i);
  torch::Tensor y = torch::linear(in.flatten(1), w, b);
  return y.view({in.size(0), n.filters, 1, 1});
}

static torch::Tensor maxPool(const Node &n, const torch::Tensor &in) {
  // Window origin at -(padding/2); out-of-range taps never win (they read
  // -FLT_MAX, as Darknet's).
  const int64_t off = n.poolPadding / 2;
  const int64_t needH = (n.out.h - 1) * n.sy + n.poolSize;
  const int64_t needW = (n.out.w - 1) * n.sx + n.poolSize;
  const int64_t bottom = std::max<int64_t>(needH - (in.size(2) + off), 0);
  const int64_t right = std::max<int64_t>(needW - (in.size(3) + off), 0);
  torch::Tensor padded = in;
  if (off || bottom || right)
    padded = torch::constant_pad_nd(in, {off, right, off, bottom}, -FLT_MAX);
  torch::Tensor y =
      torch::max_pool2d(padded, {n.poolSize, n.poolSize}, {n.sy, n.sx});
  return y.narrow(2, 0, n.out.h).narrow(3, 0, n.out.w);
}

static torch::Tensor shortcut(const Node &n,
                              const std::vector<torch::Tensor> &ins) {
  // in0 + the others over their common channel prefix (AlexeyAB).
  torch::Tensor out = ins[0];
  const int64_t c0 = ins[0].size(1);
  for (size_t k = 1; k < ins.size(); ++k) {
    const int64_t m = std::min(c0, ins[k].size(1));
    torch::Tensor add = ins[k].narrow(1, 0, m);
    if (m == c0)
      out = out + add;
    else
      out =
          torch::cat({out.narrow(1, 0, m) + add, out.narrow(1, m, c0 - m)}, 1);
  }
  return out;
}

torch::Tensor
TorchNet::dataMovement(const Node &n, int i,
                       const std::vector<torch::Tensor> &ins) const {
  const torch::Tensor &in = ins[0];
  const int64_t batch = in.size(0);
  switch (n.kind) {
  case NodeKind::MaxPool:
    return maxPool(n, in);
  case NodeKind::AvgPool:
    return in.mean({2, 3}, true);
  case NodeKind::Route: {
    std::vector<torch::Tensor> parts;
    for (const torch::Tensor &t : ins) {
      const int64_t part = t.size(1) / n.groups;
      parts.push_back(n.groups == 1 ? t : t.narrow(1, n.groupId * part, part));
    }
    return parts.size() == 1 ? parts[0] : torch::cat(parts, 1);
  }
  case NodeKind::Shortcut:
    return shortcut(n, ins);
  case NodeKind::Upsample: {
    torch::Tensor y;
    if (n.stride > 0) {
      y = in.repeat_interleave(n.stride, 2).repeat_interleave(n.stride, 3);
    } else {
      // Darknet's downsample: the sum (not the mean) of each block.
      const int64_t d = -n.stride;
      y = in.reshape({batch, in.size(1), in.size(2) / d, d, in.size(3) / d, d})
              .sum({3, 5});
    }
    return n.upsampleScale == 1.0f ? y : y * n.upsampleScale;
  }
  case NodeKind::Reorg:
    return in.reshape({batch, -1})
        .index_select(1, tensors[i].reorgIndex)
        .view({batch, n.out.c, n.out.h, n.out.w});
  case NodeKind::ScaleChannels:
    // inputs: the scales (1x1xC or HxWx1), then the features.
    return ins[1] * ins[0];
  case NodeKind::Softmax: {
    torch::Tensor flat = in.reshape({batch, n.groups, -1});
    return torch::softmax(flat / n.temperature, 2)
        .view({batch, n.out.c, n.out.h, n.out.w});
  }
  case NodeKind::Dropout:
    return in;
  default:
    break;
  }
  return in;
}

torch::Tensor TorchNet::head(const Node &n, const torch::Tensor &in) const {
  const int64_t batch = in.size(0), h = in.size(2), w = in.size(3);
  if (n.kind == NodeKind::Yolo) {
    const int64_t a = n.mask.size(), e = n.classes + 5;
    torch::Tensor v = in.reshape({batch, a, e, h, w});
    torch::Tensor xy = v.narrow(2, 0, 2), wh = v.narrow(2, 2, 2),
                  rest = v.narrow(2, 4, e - 4);
    if (net.flavor == Flavor::PJReddie) {
      xy = torch::sigmoid(xy);
    } else {
      if (!n.newCoords)
        xy = torch::sigmoid(xy);
      const float alpha = n.scaleXY;
      const float beta = (float)(-0.5 * (double)(n.scaleXY - 1.0f));
      if (alpha != 1.0f)
        xy = xy * alpha + beta;
    }
    if (net.flavor == Flavor::PJReddie || !n.newCoords)
      rest = torch::sigmoid(rest);
    return torch::cat({xy, wh, rest}, 2).reshape(in.sizes());
  }
  // [region] (DARKNET.md §4.11).
  const int64_t size = n.coords + n.classes + 1;
  if (net.flavor == Flavor::AlexeyAB) {
    // CHW -> HWC, logistic on entry 4, softmax over the classes.
    torch::Tensor t = in.reshape({batch, n.num * size, h * w})
                          .transpose(1, 2)
                          .reshape({batch, h * w * n.num, size});
    std::vector<torch::Tensor> parts = {t.narrow(2, 0, 4),
                                        torch::sigmoid(t.narrow(2, 4, 1))};
    torch::Tensor cls = t.narrow(2, 5, size - 5);
    parts.push_back(n.softmax ? torch::softmax(cls, 2) : cls);
    return torch::cat(parts, 2).reshape(in.sizes());
  }
  torch::Tensor v = in.reshape({batch, n.num, size, h, w});
  std::vector<torch::Tensor> parts = {torch::sigmoid(v.narrow(2, 0, 2)),
                                      v.narrow(2, 2, n.coords - 2),
                                      torch::sigmoid(v.narrow(2, n.coords, 1))};
  torch::Tensor cls = v.narrow(2, n.coords + 1, n.classes);
  parts.push_back(n.softmax ? torch::softmax(cls, 2) : torch::sigmoid(cls));
  return torch::cat(parts, 2).reshape(in.sizes());
}

torch::Tensor TorchNet::runNode(int i, const std::vector<torch::Tensor> &outs,
                                const torch::Tensor &x) const {
  const Node &n = net.nodes[i];
  const NodeTensors &t = tensors[i];
  std::vector<torch::Tensor> ins;
  for (size_t k = 0; k < n.inputs.size(); ++k)
    ins.push_back(input(outs, x, i, k));
  torch::Tensor y;
  switch (n.kind) {
  case NodeKind::Conv: {
    auto [w, b] = effectiveWeights(i);
    y = conv(n, ins[0], w, b);
    break;
  }
  case NodeKind::Connected:
    y = connected(n, t, ins[0], i);
    break;
  case NodeKind::BatchNorm: {
    if (n.inputs[0] >= 0 && foldedIntoNext[n.inputs[0]]) {
      int src = net.nodes[n.inputs[0]].inputs[0];
      y = foldedBatchNorm(i, src < 0 ? x : outs[src]);
      break;
    }
    torch::Tensor sd = net.flavor == Flavor::AlexeyAB
                           ? torch::sqrt(t.bnVariance + 1e-5)
                           : torch::sqrt(t.bnVariance) + 1e-6;
    torch::Tensor scale =
        opts.fakeQuant && n.fp16 ? toHalfSte(t.bnScale) : t.bnScale;
    torch::Tensor bias =
        opts.fakeQuant && n.fp16 ? toHalfSte(t.bnBias) : t.bnBias;
    y = (ins[0] - t.bnMean) / sd * scale + bias;
    break;
  }
  case NodeKind::Activation:
    y = ins[0];
    break;
  case NodeKind::Yolo:
  case NodeKind::Region:
    y = head(n, ins[0]);
    break;
  default:
    y = dataMovement(n, i, ins);
    break;
  }
  y = activate(y, n.act, net.flavor);
  if (!opts.fakeQuant)
    return y;
  if (n.fp16)
    y = toHalfSte(y);
  if (n.isInt8() && n.requantizes)
    y = fakeQuant(y, *n.outputGrid, n.outputGroup);
  return y;
}

std::vector<torch::Tensor>
TorchNet::forward(const torch::Tensor &x, const std::vector<bool> &keep) const {
  std::vector<torch::Tensor> outs(net.nodes.size());
  torch::Tensor in = x.to(type);
  if (opts.channelsLast)
    in = in.contiguous(torch::MemoryFormat::ChannelsLast);
  for (size_t i = 0; i < net.nodes.size(); ++i) {
    if (foldedIntoNext[i])
      continue; // the batch norm after it computes it
    outs[i] = runNode((int)i, outs, in);
    if (keep.empty())
      continue;
    for (int p : net.nodes[i].inputs)
      if (p >= 0 && lastUse[p] == (int)i && !keep[p])
        outs[p] = torch::Tensor();
  }
  return outs;
}

std::vector<torch::Tensor>
TorchNet::forwardForced(const torch::Tensor &x,
                        const std::map<int, torch::Tensor> &forced) const {
  std::vector<torch::Tensor> outs(net.nodes.size()), own(net.nodes.size());
  torch::Tensor in = x.to(type);
  for (size_t i = 0; i < net.nodes.size(); ++i) {
    if (foldedIntoNext[i])
      continue;
    own[i] = outs[i] = runNode((int)i, outs, in);
    auto it = forced.find((int)i);
    if (it != forced.end())
      outs[i] = it->second.to(type).view(own[i].sizes());
  }
  return own;
}
