//===- View.cpp - the torch view behind plain vectors --------------------===//

#include "qsim/Train/View.h"
#include "TorchNet.h"

using namespace qsim::train;

struct NetView::Impl {
  std::unique_ptr<TorchNet> net;
};

NetView::NetView() : impl(std::make_unique<Impl>()) {}
NetView::~NetView() = default;

std::unique_ptr<NetView> NetView::create(const NetSpec &spec,
                                         const ViewOptions &options,
                                         std::string &error) {
  if (!TorchNet::validate(spec, error))
    return nullptr;
  std::unique_ptr<NetView> view(new NetView());
  view->impl->net = std::make_unique<TorchNet>(spec, options);
  return view;
}

static torch::Tensor toTensor(const Blob &b, torch::Dtype type) {
  return torch::from_blob(const_cast<double *>(b.data.data()),
                          {b.n, b.c, b.h, b.w}, torch::kDouble)
      .to(type)
      .clone();
}

static Blob toBlob(const torch::Tensor &t) {
  Blob b;
  if (!t.defined())
    return b; // not computed (a convolution folded into its batch norm)
  torch::Tensor d = t.detach().to(torch::kDouble).contiguous();
  std::vector<int64_t> s(d.sizes().begin(), d.sizes().end());
  while (s.size() < 4)
    s.push_back(1);
  b.n = s[0];
  b.c = s[1];
  b.h = s[2];
  b.w = s[3];
  b.data.assign(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
  return b;
}

std::vector<Blob> NetView::forward(const Blob &input,
                                   const std::vector<int> &nodes) const {
  torch::NoGradGuard noGrad;
  TorchNet &net = *impl->net;
  std::vector<torch::Tensor> outs = net.forward(toTensor(input, net.dtype()));
  std::vector<Blob> result;
  if (nodes.empty()) {
    for (const torch::Tensor &t : outs)
      result.push_back(toBlob(t));
    return result;
  }
  for (int i : nodes)
    result.push_back(toBlob(outs[i]));
  return result;
}

std::vector<Blob>
NetView::forwardForced(const Blob &input,
                       const std::map<int, Blob> &forced) const {
  torch::NoGradGuard noGrad;
  TorchNet &net = *impl->net;
  std::map<int, torch::Tensor> values;
  for (const auto &[node, blob] : forced)
    values[node] = toTensor(blob, net.dtype());
  std::vector<Blob> result;
  for (const torch::Tensor &t :
       net.forwardForced(toTensor(input, net.dtype()), values))
    result.push_back(toBlob(t));
  return result;
}

size_t NetView::numParameters() const { return impl->net->parameters().size(); }

std::string NetView::parameterName(size_t i) const {
  return impl->net->parameters()[i].name;
}

int NetView::parameterNode(size_t i) const {
  return impl->net->parameters()[i].node;
}

std::vector<double> NetView::parameter(size_t i) const {
  torch::Tensor t = impl->net->parameters()[i]
                        .tensor.detach()
                        .to(torch::kDouble)
                        .contiguous();
  return std::vector<double>(t.data_ptr<double>(),
                             t.data_ptr<double>() + t.numel());
}

void NetView::setParameter(size_t i, const std::vector<double> &values) {
  torch::NoGradGuard noGrad;
  torch::Tensor &t = impl->net->parameters()[i].tensor;
  torch::Tensor v = torch::from_blob(const_cast<double *>(values.data()),
                                     t.sizes(), torch::kDouble)
                        .to(t.scalar_type());
  t.copy_(v);
}

NetView::Gradients
NetView::gradient(const Blob &input, const std::vector<int> &nodes,
                  const std::vector<std::vector<double>> &seeds) const {
  TorchNet &net = *impl->net;
  torch::Tensor x = toTensor(input, net.dtype());
  x.set_requires_grad(true);
  std::vector<torch::Tensor> outs = net.forward(x);
  torch::Tensor loss = torch::zeros({}, net.dtype());
  for (size_t k = 0; k < nodes.size(); ++k) {
    const torch::Tensor &o = outs[nodes[k]];
    torch::Tensor seed = torch::from_blob(const_cast<double *>(seeds[k].data()),
                                          o.sizes(), torch::kDouble)
                             .to(net.dtype());
    loss = loss + (o * seed).sum();
  }
  for (auto &p : net.parameters())
    if (p.tensor.grad().defined())
      p.tensor.mutable_grad().zero_();
  loss.backward();
  Gradients g;
  auto flat = [](const torch::Tensor &t, int64_t n) {
    if (!t.defined())
      return std::vector<double>(n, 0.0);
    torch::Tensor d = t.to(torch::kDouble).contiguous();
    return std::vector<double>(d.data_ptr<double>(),
                               d.data_ptr<double>() + d.numel());
  };
  for (auto &p : net.parameters())
    g.parameters.push_back(flat(p.tensor.grad(), p.tensor.numel()));
  g.input = flat(x.grad(), x.numel());
  return g;
}

void NetView::exportTo(NetSpec &spec) const { impl->net->exportTo(spec); }

NetView::QuantState NetView::quantState(int node) const {
  torch::NoGradGuard noGrad;
  const TorchNet &net = *impl->net;
  const Node &n = net.spec().nodes[node];
  QuantState q;
  for (size_t k = 0; k < n.inputs.size(); ++k)
    q.inputs.push_back(net.inputGrid(node, k));
  q.output = net.outputGrid(node);
  if (!n.isInt8() ||
      (n.kind != NodeKind::Conv && n.kind != NodeKind::Connected))
    return q;
  TorchNet::IntWeights w = net.intWeights(node);
  torch::Tensor wi = w.weights.to(torch::kInt8).contiguous();
  q.weights.assign(wi.data_ptr<int8_t>(), wi.data_ptr<int8_t>() + wi.numel());
  if (w.bias.defined()) {
    torch::Tensor bi = w.bias.to(torch::kInt).contiguous();
    q.bias.assign(bi.data_ptr<int32_t>(), bi.data_ptr<int32_t>() + bi.numel());
  }
  return q;
}

void qsim::train::setTorchThreads(int threads) {
  if (threads > 0)
    torch::set_num_threads(threads);
}
