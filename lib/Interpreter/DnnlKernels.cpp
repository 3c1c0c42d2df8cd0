//===- DnnlKernels.cpp - the fast kernels, on oneDNN ---------------------===//
//
// Convolution, inner product, max pooling, nearest upsampling, residual add
// and block-aligned concatenation run in oneDNN, with activations keeping
// oneDNN's preferred (blocked) layout between layers; batch norm is folded
// into the convolution (in double, as AlexeyAB's fuse_conv_batchnorm) and
// the activation becomes a post-op. Anything oneDNN cannot express here
// returns -1 and the caller uses the reference kernel.
//
//===----------------------------------------------------------------------===//

#include "Plan.h"
#include "QuantKernels.h"
#include "ReferenceKernels.h"
#include "qsim/Dialect/QSim/IR/Layers.h"

#include <cmath>

using namespace mlir;
using namespace qsim;
using namespace qsim::interp;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

namespace {

/// The oneDNN post-op for a Darknet activation, if it has one.
bool appendActivation(dnnl::post_ops &po, Activation act) {
  using alg = dnnl::algorithm;
  switch (act) {
  case Activation::linear:
    return true;
  case Activation::leaky:
    po.append_eltwise(1.f, alg::eltwise_relu, 0.1f, 0.f);
    return true;
  case Activation::relu:
    po.append_eltwise(1.f, alg::eltwise_relu, 0.f, 0.f);
    return true;
  case Activation::relu6:
    po.append_eltwise(1.f, alg::eltwise_clip, 0.f, 6.f);
    return true;
  case Activation::logistic:
    po.append_eltwise(1.f, alg::eltwise_logistic, 0.f, 0.f);
    return true;
  case Activation::tanh:
    po.append_eltwise(1.f, alg::eltwise_tanh, 0.f, 0.f);
    return true;
  case Activation::elu:
    po.append_eltwise(1.f, alg::eltwise_elu, 1.f, 0.f);
    return true;
  case Activation::swish:
    po.append_eltwise(1.f, alg::eltwise_swish, 1.f, 0.f);
    return true;
  case Activation::mish:
    po.append_eltwise(1.f, alg::eltwise_mish, 0.f, 0.f);
    return true;
  default:
    return false;
  }
}

/// A primitive with its source/destination slots and constant arguments.
class PrimitiveKernel : public Kernel {
public:
  PrimitiveKernel(dnnl::primitive prim,
                  std::vector<std::pair<int, int>> slotArgs,
                  std::unordered_map<int, dnnl::memory> constArgs,
                  std::function<void(Plan &)> after = nullptr)
      : prim(std::move(prim)), slotArgs(std::move(slotArgs)),
        args(std::move(constArgs)), after(std::move(after)) {
    for (auto [arg, slot] : this->slotArgs)
      (arg == DNNL_ARG_DST ? outputs : inputs).push_back(slot);
  }
  void bind(Plan &plan) override {
    for (auto [arg, slot] : slotArgs)
      args[arg] = plan.memory(slot);
  }
  void run(Plan &plan) override {
    prim.execute(plan.stream, args);
    if (after) {
      plan.stream.wait();
      after(plan);
    }
  }

private:
  dnnl::primitive prim;
  std::vector<std::pair<int, int>> slotArgs;
  std::unordered_map<int, dnnl::memory> args;
  std::function<void(Plan &)> after;
};

/// Folds a batch norm into weights [F][K] and biases (in double).
void foldBatchNorm(BatchNormOp bn, Flavor flavor, int64_t filters,
                   std::vector<float> &w, std::vector<float> &b,
                   std::string &error) {
  std::vector<float> scale, mean, var, bias;
  Operation *op = bn.getOperation();
  if (!readWeights(op, bn.getScale(), "batch-norm scales", filters, scale,
                   error) ||
      !readWeights(op, bn.getMean(), "batch-norm means", filters, mean,
                   error) ||
      !readWeights(op, bn.getVariance(), "batch-norm variances", filters, var,
                   error) ||
      !readWeights(op, bn.getBias(), "batch-norm biases", filters, bias, error))
    return;
  int64_t k = w.size() / filters;
  if (b.empty())
    b.assign(filters, 0.0f);
  for (int64_t f = 0; f < filters; ++f) {
    double sd = flavor == Flavor::AlexeyAB
                    ? std::sqrt((double)(var[f] + .00001f))
                    : std::sqrt((double)var[f]) + .000001f;
    double factor = (double)scale[f] / sd;
    for (int64_t i = 0; i < k; ++i)
      w[f * k + i] = (float)(w[f * k + i] * factor);
    b[f] = (float)((double)bias[f] + factor * ((double)b[f] - mean[f]));
  }
}

/// Output slot for a primitive's destination: plain when oneDNN chose nchw.
int resultSlot(Plan &plan, const CHW &shape, const dnnl::memory::desc &md,
               int step) {
  dnnl::memory::desc plain({1, shape.c, shape.h, shape.w}, md.data_type(),
                           tag::nchw);
  if (md == plain)
    return plan.newSlot(shape,
                        md.data_type() == dt::s8     ? rt::DType::I8
                        : md.data_type() == dt::bf16 ? rt::DType::BF16
                                                     : rt::DType::F32,
                        step);
  return plan.newDnnlSlot(shape, md, step);
}

/// Whether oneDNN runs a bf16 primitive with a real kernel here: without
/// bf16 dot products it offers only its reference loops, slower than the
/// emulation through the f32 kernels.
bool usableBF16(const std::string &impl) { return impl.rfind("ref", 0) != 0; }

dnnl::memory::desc slotDesc(Plan &plan, int slot) {
  const Slot &s = plan.slots[slot];
  return s.dnnlLayout ? s.md : plan.plainDesc(slot);
}

} // namespace

int qsim::interp::buildDnnlConv(Plan &plan, int step, Operation *op,
                                BatchNormOp bn, int inSlot, std::string &error,
                                bool bf16) {
  auto conv = cast<Conv2DOp>(op);
  if (bf16 && bn)
    return -1;
  CHW in = chwOf(conv.getInput());
  CHW out = chwOf(bn ? bn.getResult() : conv.getResult());
  int64_t F = conv.getFilters(), G = conv.getGroups(), kh = conv.getKernelH(),
          kw = conv.getKernelW(), sy = conv.getStride()[0],
          sx = conv.getStride()[1], d = conv.getDilation();
  int64_t pl_y = conv.getPadding()[0] * d, pl_x = conv.getPadding()[1] * d;
  // oneDNN's output-size rule with Darknet's output size gives the right
  // padding; Darknet's dilated shape rule can make it negative: fall back.
  int64_t pr_y = (out.h - 1) * sy + (kh - 1) * d + 1 - in.h - pl_y;
  int64_t pr_x = (out.w - 1) * sx + (kw - 1) * d + 1 - in.w - pl_x;
  if (pr_y < 0 || pr_x < 0)
    return -1;
  std::vector<float> w, b;
  if (!readWeights(op, conv.getWeight(), "weights", F * (in.c / G) * kh * kw, w,
                   error))
    return -1;
  if (conv.getBias() && !readWeights(op, conv.getBias(), "biases", F, b, error))
    return -1;
  if (bn) {
    foldBatchNorm(bn, plan.flavor, F, w, b, error);
    if (!error.empty())
      return -1;
  }
  if (b.empty())
    b.assign(F, 0.0f);
  Activation act = bn ? bn.getActivation() : conv.getActivation();
  dnnl::post_ops po;
  bool fused = appendActivation(po, act);
  // bf16: the activation must be a post-op, applied in f32 before oneDNN
  // rounds the output.
  if (bf16 && !fused)
    return -1;
  dnnl::primitive_attr attr;
  attr.set_post_ops(po);

  dt data = bf16 ? dt::bf16 : dt::f32;
  dnnl::memory::dims srcDims = {1, in.c, in.h, in.w};
  dnnl::memory::dims wDims =
      G == 1 ? dnnl::memory::dims{F, in.c, kh, kw}
             : dnnl::memory::dims{G, F / G, in.c / G, kh, kw};
  dnnl::memory::dims dstDims = {1, out.c, out.h, out.w};
  auto srcMd = dnnl::memory::desc(srcDims, data, tag::any);
  auto wMd = dnnl::memory::desc(wDims, data, tag::any);
  auto bMd = dnnl::memory::desc({F}, dt::f32, tag::a);
  // Activations oneDNN lacks are applied by us on a plain output.
  auto dstMd = dnnl::memory::desc(dstDims, data, fused ? tag::any : tag::nchw);
  auto desc = dnnl::convolution_forward::desc(
      dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
      srcMd, wMd, bMd, dstMd, {sy, sx}, {d - 1, d - 1}, {pl_y, pl_x},
      {pr_y, pr_x});
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::convolution_forward prim;
  try {
    pd = dnnl::convolution_forward::primitive_desc(desc, attr, plan.engine);
    if (bf16 && !usableBF16(pd.impl_info_str()))
      return -1;
    // Created here: oneDNN 2.6 offers AMX bf16 kernels for some grouped
    // shapes that then fail to initialise.
    prim = dnnl::convolution_forward(pd);
  } catch (const dnnl::error &) {
    if (bf16)
      return -1; // no bf16 convolution of this shape: emulate
    throw;
  }

  // Weights into oneDNN's preferred layout, once.
  dnnl::memory userW(
      dnnl::memory::desc(wDims, dt::f32, G == 1 ? tag::oihw : tag::goihw),
      plan.engine, w.data());
  dnnl::memory packedW(pd.weights_desc(), plan.engine);
  dnnl::reorder(userW, packedW).execute(plan.stream, userW, packedW);
  dnnl::memory bias(bMd, plan.engine);
  std::memcpy(bias.get_data_handle(), b.data(), F * sizeof(float));
  plan.stream.wait();

  int src = plan.dnnlOf(inSlot, pd.src_desc(), step);
  int dst = resultSlot(plan, out, pd.dst_desc(), step);
  std::function<void(Plan &)> after;
  if (!fused) {
    Flavor flavor = plan.flavor;
    after = [=](Plan &pl) { ref::activate(pl.f32(dst), out, act, flavor); };
  }
  plan.addKernel(step,
                 std::make_unique<PrimitiveKernel>(
                     prim,
                     std::vector<std::pair<int, int>>{{DNNL_ARG_SRC, src},
                                                      {DNNL_ARG_DST, dst}},
                     std::unordered_map<int, dnnl::memory>{
                         {DNNL_ARG_WEIGHTS, packedW}, {DNNL_ARG_BIAS, bias}},
                     after));
  return dst;
}

int qsim::interp::buildDnnlConnected(Plan &plan, int step, Operation *op,
                                     BatchNormOp bn, int inSlot,
                                     std::string &error, bool bf16) {
  auto fc = cast<ConnectedOp>(op);
  if (bf16 && bn)
    return -1;
  CHW in = chwOf(fc.getInput());
  int64_t O = fc.getOutputSize();
  std::vector<float> w, b;
  if (!readWeights(op, fc.getWeight(), "weights", O * in.size(), w, error))
    return -1;
  if (fc.getBias() && !readWeights(op, fc.getBias(), "biases", O, b, error))
    return -1;
  if (bn) {
    foldBatchNorm(bn, plan.flavor, O, w, b, error);
    if (!error.empty())
      return -1;
  }
  if (b.empty())
    b.assign(O, 0.0f);
  Activation act = bn ? bn.getActivation() : fc.getActivation();
  dnnl::post_ops po;
  if (!appendActivation(po, act))
    return -1;
  dnnl::primitive_attr attr;
  attr.set_post_ops(po);
  dt data = bf16 ? dt::bf16 : dt::f32;
  dnnl::memory::dims wDims = {O, in.c, in.h, in.w};
  auto srcMd = dnnl::memory::desc({1, in.c, in.h, in.w}, data, tag::any);
  auto wMd = dnnl::memory::desc(wDims, data, tag::any);
  auto bMd = dnnl::memory::desc({O}, dt::f32, tag::a);
  auto dstMd = dnnl::memory::desc({1, O}, data, tag::nc);
  auto desc = dnnl::inner_product_forward::desc(
      dnnl::prop_kind::forward_inference, srcMd, wMd, bMd, dstMd);
  dnnl::inner_product_forward::primitive_desc pd;
  dnnl::inner_product_forward prim;
  try {
    pd = dnnl::inner_product_forward::primitive_desc(desc, attr, plan.engine);
    if (bf16 && !usableBF16(pd.impl_info_str()))
      return -1;
    prim = dnnl::inner_product_forward(pd);
  } catch (const dnnl::error &) {
    if (bf16)
      return -1;
    throw;
  }
  dnnl::memory userW(dnnl::memory::desc(wDims, dt::f32, tag::oihw), plan.engine,
                     w.data());
  dnnl::memory packedW(pd.weights_desc(), plan.engine);
  dnnl::reorder(userW, packedW).execute(plan.stream, userW, packedW);
  dnnl::memory bias(bMd, plan.engine);
  std::memcpy(bias.get_data_handle(), b.data(), O * sizeof(float));
  plan.stream.wait();
  int src = plan.dnnlOf(inSlot, pd.src_desc(), step);
  // [1, O] is the same memory as a plain O x 1 x 1 tensor.
  int dst =
      plan.newSlot({O, 1, 1}, bf16 ? rt::DType::BF16 : rt::DType::F32, step);
  class FcKernel : public PrimitiveKernel {
  public:
    using PrimitiveKernel::PrimitiveKernel;
  };
  auto kernel = std::make_unique<PrimitiveKernel>(
      prim, std::vector<std::pair<int, int>>{{DNNL_ARG_SRC, src}},
      std::unordered_map<int, dnnl::memory>{{DNNL_ARG_WEIGHTS, packedW},
                                            {DNNL_ARG_BIAS, bias}});
  // The destination is bound by hand: its 2-D descriptor differs from the
  // slot's plain 4-D one.
  struct DstBinder : public Kernel {
    std::unique_ptr<PrimitiveKernel> inner;
    dnnl::inner_product_forward prim;
    dnnl::memory::desc dstMd;
    int src, dst;
    std::unordered_map<int, dnnl::memory> args;
    void bind(Plan &plan) override {
      args[DNNL_ARG_SRC] = plan.memory(src);
      args[DNNL_ARG_DST] = dnnl::memory(dstMd, plan.engine, plan.ptr(dst));
    }
    void run(Plan &plan) override { prim.execute(plan.stream, args); }
  };
  auto k = std::make_unique<DstBinder>();
  k->prim = prim;
  k->dstMd = dstMd;
  k->src = src;
  k->dst = dst;
  k->args[DNNL_ARG_WEIGHTS] = packedW;
  k->args[DNNL_ARG_BIAS] = bias;
  k->inputs = {src};
  k->outputs = {dst};
  (void)kernel;
  plan.addKernel(step, std::move(k));
  return dst;
}

int qsim::interp::buildDnnlMaxPool(Plan &plan, int step, MaxPoolOp op,
                                   int inSlot) {
  CHW in = chwOf(op.getInput()), out = chwOf(op.getResult());
  int64_t k = op.getSize(), sy = op.getStride()[0], sx = op.getStride()[1];
  int64_t pl = op.getPadding() / 2;
  int64_t pr_y = (out.h - 1) * sy + k - in.h - pl;
  int64_t pr_x = (out.w - 1) * sx + k - in.w - pl;
  if (pr_y < 0 || pr_x < 0 || pl >= k || pr_y >= k || pr_x >= k)
    return -1; // a window entirely in the padding: Darknet gives -FLT_MAX
  auto srcMd = slotDesc(plan, inSlot);
  auto dstMd =
      dnnl::memory::desc({1, out.c, out.h, out.w}, srcMd.data_type(), tag::any);
  auto desc = dnnl::pooling_forward::desc(
      dnnl::prop_kind::forward_inference, dnnl::algorithm::pooling_max, srcMd,
      dstMd, {sy, sx}, {k, k}, {pl, pl}, {pr_y, pr_x});
  auto pd = dnnl::pooling_forward::primitive_desc(desc, plan.engine);
  int src = plan.dnnlOf(inSlot, pd.src_desc(), step);
  int dst = resultSlot(plan, out, pd.dst_desc(), step);
  plan.slots[dst].quant = plan.slots[inSlot].quant; // max keeps the scale
  plan.addKernel(step, std::make_unique<PrimitiveKernel>(
                           dnnl::pooling_forward(pd),
                           std::vector<std::pair<int, int>>{
                               {DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}},
                           std::unordered_map<int, dnnl::memory>{}));
  return dst;
}

int qsim::interp::buildDnnlUpsample(Plan &plan, int step, UpsampleOp op,
                                    int inSlot) {
  if (op.getStride() <= 0 || op.getScale().convertToFloat() != 1.0f)
    return -1;
  CHW out = chwOf(op.getResult());
  auto srcMd = slotDesc(plan, inSlot);
  auto dstMd =
      dnnl::memory::desc({1, out.c, out.h, out.w}, srcMd.data_type(), tag::any);
  auto desc = dnnl::resampling_forward::desc(
      dnnl::prop_kind::forward_inference, dnnl::algorithm::resampling_nearest,
      srcMd, dstMd);
  auto pd = dnnl::resampling_forward::primitive_desc(desc, plan.engine);
  int src = plan.dnnlOf(inSlot, pd.src_desc(), step);
  int dst = resultSlot(plan, out, pd.dst_desc(), step);
  plan.slots[dst].quant = plan.slots[inSlot].quant; // nearest copies values
  plan.addKernel(step, std::make_unique<PrimitiveKernel>(
                           dnnl::resampling_forward(pd),
                           std::vector<std::pair<int, int>>{
                               {DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}},
                           std::unordered_map<int, dnnl::memory>{}));
  return dst;
}

int qsim::interp::buildDnnlShortcut(Plan &plan, int step, ShortcutOp op,
                                    const std::vector<int> &ins) {
  if (ins.size() != 2)
    return -1;
  CHW a = chwOf(op.getInputs()[0]), b = chwOf(op.getInputs()[1]);
  if (a != b)
    return -1; // channel-prefix addition: reference kernel
  dnnl::post_ops po;
  if (!appendActivation(po, op.getActivation()))
    return -1;
  dnnl::primitive_attr attr;
  attr.set_post_ops(po);
  auto md0 = slotDesc(plan, ins[0]);
  auto desc = dnnl::binary::desc(dnnl::algorithm::binary_add, md0, md0, md0);
  auto pd = dnnl::binary::primitive_desc(desc, attr, plan.engine);
  int src0 = plan.dnnlOf(ins[0], md0, step);
  int src1 = plan.dnnlOf(ins[1], md0, step);
  int dst = resultSlot(plan, a, pd.dst_desc(), step);
  plan.addKernel(step,
                 std::make_unique<PrimitiveKernel>(
                     dnnl::binary(pd),
                     std::vector<std::pair<int, int>>{{DNNL_ARG_SRC_0, src0},
                                                      {DNNL_ARG_SRC_1, src1},
                                                      {DNNL_ARG_DST, dst}},
                     std::unordered_map<int, dnnl::memory>{}));
  return dst;
}

/// True for oneDNN's nChw16c layout (channel blocks of 16).
static bool isChannelBlocked16(const dnnl::memory::desc &md) {
  const auto &blk = md.data.format_desc.blocking;
  return md.data.format_kind == dnnl_blocked && blk.inner_nblks == 1 &&
         blk.inner_idxs[0] == 1 && blk.inner_blks[0] == 16 &&
         md.data.offset0 == 0;
}

int qsim::interp::buildDnnlRoute(Plan &plan, int step, RouteOp op,
                                 const std::vector<int> &ins) {
  CHW out = chwOf(op.getResult());
  int64_t groups = op.getGroups(), groupId = op.getGroupId();
  auto outMd =
      dnnl::memory::desc({1, out.c, out.h, out.w}, dt::f32, tag::nChw16c);
  int64_t offset = 0;
  for (size_t i = 0; i < ins.size(); ++i) {
    const Slot &s = plan.slots[ins[i]];
    int64_t part = s.shape.c / groups;
    if (!s.dnnlLayout || !isChannelBlocked16(s.md) || part % 16 ||
        (groupId * part) % 16 || offset % 16 || (s.shape.c % 16 && groups > 1))
      return -1;
    offset += part;
  }
  int dst = plan.newDnnlSlot(out, outMd, step);
  offset = 0;
  for (size_t i = 0; i < ins.size(); ++i) {
    const Slot &s = plan.slots[ins[i]];
    int64_t part = s.shape.c / groups;
    auto srcSub =
        s.md.submemory_desc({1, part, out.h, out.w}, {0, groupId * part, 0, 0});
    auto dstSub =
        outMd.submemory_desc({1, part, out.h, out.w}, {0, offset, 0, 0});
    int src = ins[i];
    plan.use(src, step);
    auto pd =
        dnnl::reorder::primitive_desc(plan.engine, srcSub, plan.engine, dstSub);
    struct SubReorder : public Kernel {
      dnnl::reorder prim;
      dnnl::memory::desc srcMd, dstMd;
      int src, dst;
      dnnl::memory srcMem, dstMem;
      void bind(Plan &plan) override {
        srcMem = dnnl::memory(srcMd, plan.engine, plan.ptr(src));
        dstMem = dnnl::memory(dstMd, plan.engine, plan.ptr(dst));
      }
      void run(Plan &plan) override {
        prim.execute(plan.stream,
                     {{DNNL_ARG_FROM, srcMem}, {DNNL_ARG_TO, dstMem}});
      }
    };
    auto k = std::make_unique<SubReorder>();
    k->prim = dnnl::reorder(pd);
    k->srcMd = srcSub;
    k->dstMd = dstSub;
    k->src = src;
    k->dst = dst;
    k->inputs = {src};
    k->outputs = {dst};
    plan.addKernel(step, std::move(k));
    offset += part;
  }
  return dst;
}
