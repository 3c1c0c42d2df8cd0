//===- FastInt8Layers.cpp - planning the channels-last int8 layers --------===//
//
// Max pooling, route, shortcut and upsampling of int8 tensors keep the
// channels-last (nhwc) layout of the int8 convolutions: their inputs are
// converted once in the plan if a producer wrote another layout (a cast, a
// reference kernel), and everything a kernel needs (tables, scratch rows) is
// built here, never per run.
//
//===----------------------------------------------------------------------===//

#include "ChannelsLastInt8.h"
#include "Plan.h"
#include "qsim/Dialect/QSim/IR/Layers.h"

using namespace mlir;
using namespace qsim;
using namespace qsim::interp;

namespace {

rt::QuantParams quantOf(Value v) {
  auto q = cast<quant::UniformQuantizedType>(getElementTypeOrSelf(v.getType()));
  return {(float)q.getScale(), (int32_t)q.getZeroPoint()};
}

dnnl::memory::desc channelsLast(const CHW &s) {
  return dnnl::memory::desc({1, s.c, s.h, s.w}, dnnl::memory::data_type::s8,
                            dnnl::memory::format_tag::nhwc);
}

/// The channels-last version of int8 slot `slot`, readable in `step`.
int channelsLastOf(Plan &plan, int slot, int step) {
  return plan.dnnlOf(slot, channelsLast(plan.slots[slot].shape), step);
}

/// A channels-last int8 result slot for `v`.
int channelsLastResult(Plan &plan, Value v, int step) {
  CHW shape = chwOf(v);
  int s = plan.newDnnlSlot(shape, channelsLast(shape), step);
  plan.slots[s].quant = quantOf(v);
  return s;
}

int8_t *bytes(Plan &plan, int slot) {
  return static_cast<int8_t *>(plan.ptr(slot));
}

} // namespace

int qsim::interp::buildFastInt8MaxPool(Plan &plan, int step, MaxPoolOp op,
                                       int inSlot) {
  CHW in = chwOf(op.getInput()), out = chwOf(op.getResult());
  int64_t size = op.getSize(), sy = op.getStride()[0], sx = op.getStride()[1],
          pad = op.getPadding();
  if (size <= 0 || sy <= 0 || sx <= 0 || in.c != out.c)
    return -1;
  int src = channelsLastOf(plan, inSlot, step);
  int dst = channelsLastResult(plan, op.getResult(), step);
  auto rows = std::make_shared<std::vector<int8_t>>(in.h * out.w * in.c);
  plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                   cl::maxPoolInt8(bytes(pl, src), in, size, sy, sx, pad,
                                   rows->data(), bytes(pl, dst), out);
                 }));
  return dst;
}

int qsim::interp::buildFastInt8Upsample(Plan &plan, int step, UpsampleOp op,
                                        int inSlot) {
  CHW in = chwOf(op.getInput()), out = chwOf(op.getResult());
  int64_t stride = op.getStride();
  if (stride <= 0 || in.c != out.c)
    return -1;
  int src = channelsLastOf(plan, inSlot, step);
  int dst = channelsLastResult(plan, op.getResult(), step);
  plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                   cl::upsampleInt8(bytes(pl, src), in, stride, bytes(pl, dst),
                                    out);
                 }));
  return dst;
}

int qsim::interp::buildFastInt8Route(Plan &plan, int step, RouteOp op,
                                     const std::vector<int> &ins) {
  CHW out = chwOf(op.getResult());
  int64_t groups = op.getGroups(), groupId = op.getGroupId();
  rt::QuantParams qOut = quantOf(op.getResult());
  if (!op.getInputMultiplier() || !op.getInputShift())
    return -1;
  auto mult = *op.getInputMultiplier();
  auto shift = *op.getInputShift();
  if (groups <= 0 || mult.size() != ins.size() || shift.size() != ins.size())
    return -1;
  // Tables live as long as the kernel; parts point into it.
  auto tables = std::make_shared<std::vector<cl::Int8Table>>();
  tables->reserve(ins.size());
  std::vector<cl::RoutePart> parts;
  std::vector<int> srcs;
  int64_t channels = 0;
  for (size_t i = 0; i < ins.size(); ++i) {
    Value v = op->getOperand(i);
    CHW s = chwOf(v);
    if (s.h != out.h || s.w != out.w || s.c % groups)
      return -1;
    rt::QuantParams q = quantOf(v);
    cl::RoutePart part;
    part.channels = s.c;
    part.count = s.c / groups;
    part.first = groupId * part.count;
    if (q.scale != qOut.scale || q.zeroPoint != qOut.zeroPoint) {
      tables->push_back(cl::routeTable(q.zeroPoint, qOut.zeroPoint,
                                       {mult[i], shift[i]}, plan.rounding));
      part.table = &tables->back();
    }
    channels += part.count;
    parts.push_back(part);
  }
  if (channels != out.c)
    return -1;
  for (int in : ins)
    srcs.push_back(channelsLastOf(plan, in, step));
  int dst = channelsLastResult(plan, op.getResult(), step);
  /// Binds the parts to their slots' buffers once.
  struct RouteKernel : public Kernel {
    std::vector<cl::RoutePart> parts;
    std::shared_ptr<std::vector<cl::Int8Table>> tables;
    int64_t pixels = 0, channels = 0;
    void bind(Plan &pl) override {
      for (size_t i = 0; i < parts.size(); ++i)
        parts[i].data = bytes(pl, inputs[i]);
    }
    void run(Plan &pl) override {
      cl::routeInt8(parts, pixels, channels, bytes(pl, outputs[0]));
    }
  };
  auto k = std::make_unique<RouteKernel>();
  k->parts = std::move(parts);
  k->tables = tables;
  k->pixels = out.h * out.w;
  k->channels = out.c;
  k->inputs = srcs;
  k->outputs = {dst};
  plan.addKernel(step, std::move(k));
  return dst;
}

int qsim::interp::buildFastInt8Shortcut(Plan &plan, int step, ShortcutOp op,
                                        const std::vector<int> &ins) {
  CHW out = chwOf(op.getResult());
  auto p = std::make_unique<ref::ShortcutInt8Params>();
  for (Value v : op->getOperands()) {
    if (chwOf(v) != out)
      return -1; // channel-prefix addition: reference kernel
    p->zp.push_back(quantOf(v).zeroPoint);
  }
  if (!op.getInputMultiplier() || !op.getInputShift())
    return -1;
  auto mult = *op.getInputMultiplier();
  auto shift = *op.getInputShift();
  if (mult.size() != ins.size() || shift.size() != ins.size())
    return -1;
  for (size_t i = 0; i < mult.size(); ++i)
    p->mult.push_back({mult[i], shift[i]});
  if (op.getNegMultiplier())
    p->negMult = {(*op.getNegMultiplier())[0], (*op.getNegShift())[0]};
  p->act = op.getActivation();
  p->zpOut = quantOf(op.getResult()).zeroPoint;
  p->rounding = plan.rounding;
  std::vector<int> srcs;
  for (int in : ins)
    srcs.push_back(channelsLastOf(plan, in, step));
  int dst = channelsLastResult(plan, op.getResult(), step);
  struct ShortcutKernel : public Kernel {
    std::unique_ptr<cl::ShortcutInt8> shortcut;
    std::vector<const int8_t *> ptrs;
    int64_t n = 0;
    void bind(Plan &pl) override {
      ptrs.clear();
      for (int s : inputs)
        ptrs.push_back(bytes(pl, s));
    }
    void run(Plan &pl) override {
      shortcut->run(ptrs, n, bytes(pl, outputs[0]));
    }
  };
  auto k = std::make_unique<ShortcutKernel>();
  k->shortcut = std::make_unique<cl::ShortcutInt8>(*p, ins.size());
  k->n = out.size();
  k->inputs = srcs;
  k->outputs = {dst};
  plan.addKernel(step, std::move(k));
  return dst;
}
