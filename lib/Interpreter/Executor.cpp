//===- Executor.cpp - planning and running qsim modules ------------------===//

#include "ChannelsLastInt8.h"
#include "Plan.h"
#include "QuantKernels.h"
#include "ReferenceKernels.h"
#include "qsim/Dialect/QSim/IR/Layers.h"

#include "qsim/Dialect/QSim/IR/LayerStats.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "llvm/ADT/TypeSwitch.h"

#include <chrono>
#include <cstring>
#include <omp.h>

using namespace mlir;
using namespace qsim;
using namespace qsim::interp;

//===----------------------------------------------------------------------===//
// Plan: slots, conversions, buffers
//===----------------------------------------------------------------------===//

int Plan::newSlot(const CHW &shape, rt::DType dtype, int step) {
  Slot s;
  s.shape = shape;
  s.dtype = dtype;
  s.bytes = shape.size() * rt::dtypeSize(dtype);
  s.defStep = step;
  s.lastUse = step;
  slots.push_back(s);
  return slots.size() - 1;
}

int Plan::newDnnlSlot(const CHW &shape, const dnnl::memory::desc &md,
                      int step) {
  rt::DType dtype =
      md.data_type() == dnnl::memory::data_type::s8     ? rt::DType::I8
      : md.data_type() == dnnl::memory::data_type::bf16 ? rt::DType::BF16
                                                        : rt::DType::F32;
  int id = newSlot(shape, dtype, step);
  slots[id].dnnlLayout = true;
  slots[id].md = md;
  slots[id].bytes = md.get_size();
  return id;
}

Slot &Plan::storage(int slot) {
  while (slots[slot].aliasOf >= 0)
    slot = slots[slot].aliasOf;
  return slots[slot];
}

void Plan::use(int slot, int step) {
  for (int s = slot; s >= 0; s = slots[s].aliasOf)
    slots[s].lastUse = std::max(slots[s].lastUse, step);
}

dnnl::memory::data_type qsim::interp::dnnlType(rt::DType t) {
  switch (t) {
  case rt::DType::F32:
    return dnnl::memory::data_type::f32;
  case rt::DType::F16:
    return dnnl::memory::data_type::f16;
  case rt::DType::BF16:
    return dnnl::memory::data_type::bf16;
  case rt::DType::I8:
    return dnnl::memory::data_type::s8;
  case rt::DType::I32:
    return dnnl::memory::data_type::s32;
  case rt::DType::I16: // W8A16 layers run on the reference kernels only
    return dnnl::memory::data_type::undef;
  }
  return dnnl::memory::data_type::f32;
}

dnnl::memory::desc Plan::plainDesc(int slot) const {
  const CHW &s = slots[slot].shape;
  return dnnl::memory::desc({1, s.c, s.h, s.w}, dnnlType(slots[slot].dtype),
                            dnnl::memory::format_tag::nchw);
}

dnnl::memory Plan::memory(int slot) {
  const Slot &s = slots[slot];
  return dnnl::memory(s.dnnlLayout ? s.md : plainDesc(slot), engine, ptr(slot));
}

namespace {
/// A oneDNN reorder between two slots (layout conversion).
class ReorderKernel : public Kernel {
public:
  ReorderKernel(Plan &plan, int from, int to, const dnnl::memory::desc &src,
                const dnnl::memory::desc &dst)
      : prim(
            dnnl::reorder::primitive_desc(plan.engine, src, plan.engine, dst)) {
    inputs = {from};
    outputs = {to};
  }
  void bind(Plan &plan) override {
    src = plan.memory(inputs[0]);
    dst = plan.memory(outputs[0]);
  }
  void run(Plan &plan) override { prim.execute(plan.stream, src, dst); }

private:
  dnnl::reorder prim;
  dnnl::memory src, dst;
};

std::string descKey(const dnnl::memory::desc &md) {
  return std::string(reinterpret_cast<const char *>(&md.data), sizeof(md.data));
}
} // namespace

int Plan::plainOf(int slot, int step) {
  use(slot, step);
  if (!slots[slot].dnnlLayout)
    return slot;
  auto key = std::make_pair(slot, std::string("plain"));
  auto it = conversions.find(key);
  if (it != conversions.end()) {
    use(it->second, step);
    return it->second;
  }
  int out = newSlot(slots[slot].shape, slots[slot].dtype, step);
  slots[out].quant = slots[slot].quant;
  addKernel(step, std::make_unique<ReorderKernel>(
                      *this, slot, out, slots[slot].md, plainDesc(out)));
  conversions[key] = out;
  return out;
}

int Plan::dnnlOf(int slot, const dnnl::memory::desc &md, int step) {
  use(slot, step);
  const dnnl::memory::desc &cur =
      slots[slot].dnnlLayout ? slots[slot].md : plainDesc(slot);
  if (cur == md)
    return slot;
  auto key = std::make_pair(slot, descKey(md));
  auto it = conversions.find(key);
  if (it != conversions.end()) {
    use(it->second, step);
    return it->second;
  }
  int out = newDnnlSlot(slots[slot].shape, md, step);
  slots[out].quant = slots[slot].quant;
  addKernel(step, std::make_unique<ReorderKernel>(*this, slot, out, cur, md));
  conversions[key] = out;
  return out;
}

int Plan::f32Of(int slot, int step) {
  int plain = plainOf(slot, step);
  if (slots[plain].dtype == rt::DType::F32)
    return plain;
  auto key = std::make_pair(plain, std::string("f32"));
  auto it = conversions.find(key);
  if (it != conversions.end()) {
    use(it->second, step);
    return it->second;
  }
  int out = newSlot(slots[plain].shape, rt::DType::F32, step);
  int64_t n = slots[plain].shape.size();
  rt::DType from = slots[plain].dtype;
  rt::QuantParams q = slots[plain].quant;
  auto k = std::make_unique<FnKernel>([=](Plan &pl) {
    if (from == rt::DType::F16)
      ref::extendHalf(static_cast<uint16_t *>(pl.ptr(plain)), n, pl.f32(out));
    else if (from == rt::DType::BF16)
      ref::extendBF16(static_cast<uint16_t *>(pl.ptr(plain)), n, pl.f32(out));
    else if (from == rt::DType::I16)
      ref::dequantize16(static_cast<int16_t *>(pl.ptr(plain)), n, q.scale,
                        pl.f32(out));
    else
      ref::dequantize(static_cast<int8_t *>(pl.ptr(plain)), n, q.scale,
                      q.zeroPoint, pl.f32(out));
  });
  addKernel(step, std::move(k));
  conversions[key] = out;
  return out;
}

void Plan::allocate() {
  struct Buf {
    size_t bytes = 0;
    int busyUntil = -1;
  };
  std::vector<Buf> pool;
  std::vector<int> order;
  for (size_t i = 0; i < slots.size(); ++i)
    if (slots[i].aliasOf < 0)
      order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return slots[a].defStep < slots[b].defStep;
  });
  const int forever = std::numeric_limits<int>::max();
  for (int id : order) {
    Slot &s = slots[id];
    int until = s.pinned ? forever : std::max(s.lastUse, s.defStep);
    int best = -1;
    for (size_t b = 0; b < pool.size(); ++b) {
      if (pool[b].busyUntil >= s.defStep)
        continue;
      // Prefer the smallest buffer that fits, else the largest to grow.
      if (best < 0)
        best = b;
      else if (pool[b].bytes >= s.bytes &&
               (pool[best].bytes < s.bytes || pool[b].bytes < pool[best].bytes))
        best = b;
      else if (pool[best].bytes < s.bytes && pool[b].bytes > pool[best].bytes)
        best = b;
    }
    if (best < 0) {
      pool.push_back({});
      best = pool.size() - 1;
    }
    pool[best].bytes = std::max(pool[best].bytes, s.bytes);
    pool[best].busyUntil = until;
    s.buffer = best;
  }
  bufferBytes = 0;
  for (Buf &b : pool) {
    size_t n = (std::max<size_t>(b.bytes, 64) + 63) / 64 * 64;
    void *p = std::aligned_alloc(64, n);
    if (!p)
      throw std::bad_alloc();
    std::memset(p, 0, n);
    buffers.emplace_back(p, std::free);
    bufferBytes += n;
  }
  for (Slot &s : slots)
    if (s.aliasOf < 0)
      s.ptr = buffers[s.buffer].get();
  for (Step &st : steps)
    for (auto &k : st.kernels)
      k->bind(*this);
}

bool qsim::interp::readWeights(Operation *op, std::optional<ElementsAttr> attr,
                               StringRef what, int64_t count,
                               std::vector<float> &out, std::string &error) {
  if (!attr) {
    error = describeLayer(op) + " has no " + what.str() +
            " (a shape-only model: import it with --weights or "
            "--random-weights)";
    return false;
  }
  out = getFloats(*attr);
  if ((int64_t)out.size() != count) {
    error = describeLayer(op) + ": cannot read " + what.str() + " as floats";
    return false;
  }
  return true;
}

//===----------------------------------------------------------------------===//
// Building the plan
//===----------------------------------------------------------------------===//

namespace {

/// Whether `t` holds int16 activations (a W8A16 layer's).
static bool isInt16Type(Type t) {
  auto q = dyn_cast<quant::UniformQuantizedType>(getElementTypeOrSelf(t));
  return q && q.getStorageTypeIntegralWidth() == 16;
}

class PlanBuilder {
public:
  explicit PlanBuilder(Plan &plan) : plan(plan) {}
  bool build(ModuleOp module);

  /// Why build() failed: the message (naming the layer when one is at
  /// fault) and the head of the layer being planned then (null when the
  /// module as a whole is at fault), where the diagnostic goes.
  std::string error;
  Operation *failedLayer = nullptr;

private:
  bool buildLayer(const Layer &layer, int step);
  bool buildOp(Operation *op, const Layer &layer, int step, bool &skipBN);
  bool buildF32Op(Operation *op, const Layer &layer, int step, bool &skipBN);
  /// f16 and bf16 layers: narrow storage, f32 arithmetic (`dtype` is the
  /// storage type).
  bool buildNarrowFloatOp(Operation *op, const Layer &layer, int step,
                          bool &skipBN, rt::DType dtype);
  bool buildInt8Op(Operation *op, int step);
  /// W8A16 layers (int16 activations): reference kernels only.
  bool buildInt16Op(Operation *op, int step);
  bool buildInt16Weighted(Operation *op, int step);
  // One builder per op family: a fast (oneDNN) kernel when the plan asks for
  // fast kernels and it fits, else the reference kernel.
  bool buildF32Conv(Conv2DOp conv, BatchNormOp bn, int step, bool &skipBN);
  bool buildF32Connected(ConnectedOp fc, BatchNormOp bn, int step,
                         bool &skipBN);
  bool buildF32BatchNorm(BatchNormOp bn, int step);
  bool buildF32XnorConv(Conv2DOp conv, int step);
  bool buildF32MaxPool(MaxPoolOp mp, int step);
  bool buildF32Upsample(UpsampleOp up, int step);
  bool buildF32Route(RouteOp route, int step);
  bool buildF32Shortcut(ShortcutOp sc, int step);
  bool buildF32ReferenceOp(Operation *op, int step);
  /// The layers of the Darknet zoo (local, detection, sam, ...): reference
  /// kernels only. False with `error` unset when `op` is none of them.
  bool buildF32ZooOp(Operation *op, int step, int src, int dst);
  bool buildInt8Conv(Conv2DOp conv, int step);
  bool buildInt8Connected(ConnectedOp fc, int step);
  bool buildInt8MaxPool(MaxPoolOp mp, int step);
  bool buildInt8Upsample(UpsampleOp up, int step);
  bool buildInt8Reorg(ReorgOp r, int step);
  bool buildInt8Route(RouteOp route, int step);
  bool buildInt8Shortcut(ShortcutOp sc, int step);
  /// Binds `result` to `out`, the slot of a fast kernel, when one was built
  /// (out >= 0).
  bool boundFastResult(Value result, int out);
  /// Tries `build`, a oneDNN convolution or inner product that folds the
  /// layer's batch norm `bn`: true when it planned the layer (`skipBN` set
  /// when it took `bn`), false with `error` set when it failed, unset when
  /// fast kernels are off or the layer does not fit (reference kernel).
  std::optional<bool> tryDnnlLayer(Value result, BatchNormOp bn, bool &skipBN,
                                   function_ref<int(std::string &why)> build);
  bool buildCast(Operation *op, int step);
  /// An int8 result slot for `v` with its type's scale and zero point.
  int int8Result(Value v, int step);
  int slotOf(Value v) {
    auto it = plan.valueSlots.find(v);
    return it == plan.valueSlots.end() ? -1 : it->second;
  }
  bool fail(Operation *op, const std::string &msg) {
    error = describeLayer(op) + ": " + msg;
    return false;
  }
  /// A plain f32 output slot for `v`, bound to it.
  int plainResult(Value v, int step) {
    int s = plan.newSlot(chwOf(v), rt::DType::F32, step);
    plan.valueSlots[v] = s;
    return s;
  }
  bool fast() const { return plan.options.kernels == KernelSet::Fast; }
  /// The op's result shares its input's storage (identity ops).
  bool aliasResult(Operation *op, int step) {
    int src = slotOf(op->getOperand(0));
    int dst = plan.newSlot(chwOf(op->getResult(0)), rt::DType::F32, step);
    plan.slots[dst] = plan.slots[src];
    plan.slots[dst].aliasOf = src;
    plan.slots[dst].defStep = step;
    plan.slots[dst].lastUse = step;
    plan.slots[dst].pinned = false;
    plan.use(src, step);
    plan.valueSlots[op->getResult(0)] = dst;
    return true;
  }

  Plan &plan;
};

/// The threads a step runs on. Waking the worker threads costs tens of
/// microseconds when they wait passively, more than a small layer takes on
/// one core, so small layers run on the calling thread (oneDNN primitives
/// are created with the thread count they run with).
static int stepThreads(const StepInfo &info, int threads) {
  constexpr int64_t kParallelMacs = 3 << 20;       // ~50 us on one core
  constexpr int64_t kParallelElements = 256 << 10; // outputs of copy layers
  if (threads <= 1)
    return 1;
  if (info.macs >= kParallelMacs ||
      (info.macs == 0 && info.output.size() >= kParallelElements))
    return threads;
  return 1;
}

bool PlanBuilder::build(ModuleOp module) {
  func::FuncOp func = getMainFunc(module);
  if (!func) {
    error = "the module has no main function";
    return false;
  }
  if (func.getNumArguments() != 1) {
    error = "main must take exactly one input tensor";
    return false;
  }
  auto inType = dyn_cast<RankedTensorType>(func.getArgument(0).getType());
  if (!inType || inType.getRank() != 4 || !inType.getElementType().isF32()) {
    error = "main's input must be a tensor<1xCxHxWxf32>";
    return false;
  }
  plan.flavor = getFlavor(module);
  if (failed(getModuleRounding(module, plan.rounding, error)))
    return false;
  auto layers = getLayers(func);
  if (failed(layers)) {
    error = "the module's body is not a sequence of Darknet layers";
    return false;
  }
  plan.inputSlot = plan.newSlot(chwOf(func.getArgument(0)), rt::DType::F32, -1);
  plan.slots[plan.inputSlot].pinned = true;
  plan.valueSlots[func.getArgument(0)] = plan.inputSlot;

  llvm::DenseMap<Value, int64_t> producerStep;
  producerStep[func.getArgument(0)] = -1;
  for (const Layer &layer : *layers) {
    int step = plan.steps.size();
    plan.steps.emplace_back();
    Step &st = plan.steps.back();
    st.info.layer = layer.index;
    st.info.kind = layer.kind().str();
    st.info.label =
        "layer " + std::to_string(layer.index) + " (" + st.info.kind + ")";
    st.info.precision = getLayerPrecision(layer);
    st.info.output = chwOf(layer.output());
    st.info.head = layer.head;
    for (Operation *op : layer.ops)
      if (auto l = dyn_cast<LayerOpInterface>(op))
        st.info.macs += l.getMACs();
    for (Value v : layer.head->getOperands()) {
      Value src = v;
      while (Operation *def = src.getDefiningOp()) {
        if (!isPrecisionCast(def))
          break;
        src = def->getOperand(0);
      }
      auto it = producerStep.find(src);
      st.info.inputLayers.push_back(it == producerStep.end() ? -1 : it->second);
    }
    st.threads = stepThreads(st.info, plan.options.threads);
    omp_set_num_threads(st.threads);
    failedLayer = layer.head;
    if (!buildLayer(layer, step))
      return false;
    int out = slotOf(layer.output());
    if (out < 0)
      return fail(layer.head, "internal error: layer output not planned");
    plan.steps[step].outputSlot = out;
    for (Value v : layer.head->getOperands())
      if (int s = slotOf(v); s >= 0)
        plan.steps[step].inputSlots.push_back(s);
    if (plan.options.keepAllOutputs)
      plan.storage(out).pinned = true;
    producerStep[layer.output()] = layer.index;
  }
  failedLayer = nullptr;
  // Function results are read after the run: keep them, in plain layout.
  auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
  int last = plan.steps.size() - 1;
  for (Value v : ret.getOperands()) {
    int s = slotOf(v);
    if (s < 0) {
      error = "a function result is not produced by any layer";
      return false;
    }
    // The step whose output this is; a conversion to the plain layout is
    // appended to that step so the result is ready when it finishes.
    size_t stepIdx = last;
    for (size_t i = 0; i < plan.steps.size(); ++i)
      if (plan.steps[i].outputSlot == s)
        stepIdx = i;
    omp_set_num_threads(plan.steps[stepIdx].threads);
    int plain = plan.plainOf(s, stepIdx);
    plan.storage(plain).pinned = true;
    plan.storage(s).pinned = true;
    plan.resultSlots.push_back(plain);
    plan.resultSteps.push_back(stepIdx);
  }
  // A step session reads any layer's inputs after later layers ran: with
  // keepAllOutputs nothing is reused (layer inputs include the casts'
  // results, which are not layer outputs).
  if (plan.options.keepAllOutputs)
    for (size_t i = 0; i < plan.slots.size(); ++i)
      if (plan.slots[i].aliasOf < 0)
        plan.slots[i].pinned = true;
  plan.allocate();
  return true;
}

bool PlanBuilder::buildLayer(const Layer &layer, int step) {
  bool skipBN = false;
  BatchNormOp bn = layer.batchNorm;
  for (Operation *op : layer.ops) {
    if (skipBN && bn && op == bn.getOperation())
      continue;
    if (!buildOp(op, layer, step, skipBN))
      return false;
  }
  return true;
}

bool PlanBuilder::buildOp(Operation *op, const Layer &layer, int step,
                          bool &skipBN) {
  if (isPrecisionCast(op))
    return buildCast(op, step);
  bool anyInt16 = isInt16Type(op->getResult(0).getType());
  for (Value v : op->getOperands())
    anyInt16 |= isInt16Type(v.getType());
  if (anyInt16)
    return buildInt16Op(op, step);
  bool anyInt8 = isa<quant::UniformQuantizedType>(
      getElementTypeOrSelf(op->getResult(0).getType()));
  Type resultEl = getElementTypeOrSelf(op->getResult(0).getType());
  bool anyF16 = resultEl.isF16(), anyBF16 = resultEl.isBF16();
  for (Value v : op->getOperands()) {
    Type el = getElementTypeOrSelf(v.getType());
    anyInt8 |= isa<quant::UniformQuantizedType>(el);
    anyF16 |= el.isF16();
    anyBF16 |= el.isBF16();
  }
  if (anyInt8)
    return buildInt8Op(op, step);
  if (anyF16)
    return buildNarrowFloatOp(op, layer, step, skipBN, rt::DType::F16);
  if (anyBF16)
    return buildNarrowFloatOp(op, layer, step, skipBN, rt::DType::BF16);
  return buildF32Op(op, layer, step, skipBN);
}

bool PlanBuilder::buildNarrowFloatOp(Operation *op, const Layer &layer,
                                     int step, bool &skipBN, rt::DType dtype) {
  // bf16 convolutions and connected layers run on oneDNN's bf16 kernels
  // (bf16 x bf16 products, f32 accumulation, bias and activation in f32, the
  // output rounded to nearest even) when the CPU has bf16 dot products; a
  // batch norm left unfolded keeps the layer on the emulation below, which
  // applies it in f32 as the reference does.
  auto conv = dyn_cast<Conv2DOp>(op);
  if (dtype == rt::DType::BF16 && fast() && !layer.batchNorm &&
      (isa<ConnectedOp>(op) || (conv && !conv.getXnor()))) {
    int input = slotOf(op->getOperand(0));
    std::string why;
    int out = isa<Conv2DOp>(op)
                  ? buildDnnlConv(plan, step, op, nullptr, input, why,
                                  /*bf16=*/true)
                  : buildDnnlConnected(plan, step, op, nullptr, input, why,
                                       /*bf16=*/true);
    if (out >= 0) {
      plan.valueSlots[op->getResult(0)] = out;
      return true;
    }
    if (!why.empty()) {
      error = why; // already names the layer
      return false;
    }
  }
  // Dropout is an identity: it keeps its input's narrow storage.
  if (isa<DropoutOp>(op)) {
    int input = slotOf(op->getOperand(0));
    if (input >= 0 && plan.storage(input).dtype == dtype)
      return aliasResult(op, step);
  }
  // A shortcut of two bf16 tensors: oneDNN adds them in f32, applies the
  // activation and rounds to bf16, as the emulation does.
  if (dtype == rt::DType::BF16 && fast() && isa<ShortcutOp>(op)) {
    std::vector<int> ins;
    for (Value v : op->getOperands())
      ins.push_back(slotOf(v));
    if (llvm::all_of(ins, [&](int s) {
          return s >= 0 && plan.storage(s).dtype == rt::DType::BF16;
        })) {
      int out = buildDnnlShortcut(plan, step, cast<ShortcutOp>(op), ins);
      if (out >= 0) {
        plan.valueSlots[op->getResult(0)] = out;
        return true;
      }
    }
  }
  // Max pooling and nearest upsampling only pick bf16 values: oneDNN's bf16
  // primitives give the emulation's result bit for bit, without widening
  // the tensor and rounding it back (what made bf16 pooling slow).
  if (dtype == rt::DType::BF16 && fast() && isa<MaxPoolOp, UpsampleOp>(op)) {
    int input = slotOf(op->getOperand(0));
    if (input >= 0 && plan.storage(input).dtype == rt::DType::BF16) {
      int out =
          isa<MaxPoolOp>(op)
              ? buildDnnlMaxPool(plan, step, cast<MaxPoolOp>(op), input)
              : buildDnnlUpsample(plan, step, cast<UpsampleOp>(op), input);
      if (out >= 0) {
        plan.valueSlots[op->getResult(0)] = out;
        return true;
      }
    }
  }
  // Narrow storage, f32 arithmetic: the inputs are widened (exactly), the
  // layer runs in f32 with its narrow weights widened, its output is rounded
  // to the narrow type (docs/quantization.md, "fp16" and "bf16"). For bf16
  // this is the exact emulation of the hardware's arithmetic up to the order
  // of the f32 additions: a bf16 x bf16 product is exact in f32.
  std::vector<std::pair<Value, int>> saved;
  for (Value v : op->getOperands()) {
    int s = slotOf(v);
    if (s >= 0 && plan.storage(s).dtype == dtype) {
      saved.push_back({v, s});
      plan.valueSlots[v] = plan.f32Of(s, step);
    }
  }
  bool ok = buildF32Op(op, layer, step, skipBN);
  for (auto &[v, s] : saved)
    plan.valueSlots[v] = s;
  if (!ok)
    return false;
  SmallVector<Value> results(op->getResults());
  BatchNormOp bn = layer.batchNorm;
  if (skipBN && bn)
    results.push_back(bn.getResult());
  for (Value r : results) {
    auto it = plan.valueSlots.find(r);
    Type el = getElementTypeOrSelf(r.getType());
    if (it == plan.valueSlots.end() ||
        !(dtype == rt::DType::F16 ? el.isF16() : el.isBF16()))
      continue;
    int f = plan.plainOf(it->second, step);
    if (plan.storage(f).dtype == dtype) { // an identity (dropout) kept it
      it->second = f;
      continue;
    }
    int h = plan.newSlot(chwOf(r), dtype, step);
    int64_t n = chwOf(r).size();
    plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                     auto *out = static_cast<uint16_t *>(pl.ptr(h));
                     if (dtype == rt::DType::F16)
                       ref::truncateToHalf(pl.f32(f), n, out);
                     else
                       ref::truncateToBF16(pl.f32(f), n, out);
                   }));
    it->second = h;
  }
  return true;
}

static std::pair<float, int32_t> quantOf(Type t) {
  auto q = cast<quant::UniformQuantizedType>(getElementTypeOrSelf(t));
  return {(float)q.getScale(), (int32_t)q.getZeroPoint()};
}

bool PlanBuilder::buildCast(Operation *op, int step) {
  Value in = op->getOperand(0), out = op->getResult(0);
  int src = slotOf(in);
  if (src < 0)
    return fail(op, "internal error: cast input not planned");
  CHW shape = chwOf(out);
  int64_t n = shape.size();
  Type outEl = getElementTypeOrSelf(out.getType());
  if (isa<quant::QuantizeCastOp>(op) && isInt16Type(out.getType())) {
    int f = plan.f32Of(src, step);
    float scale = quantOf(out.getType()).first;
    int dst = plan.newSlot(shape, rt::DType::I16, step);
    plan.slots[dst].quant = {scale, 0};
    plan.valueSlots[out] = dst;
    plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                     ref::quantize16(pl.f32(f), n, scale,
                                     static_cast<int16_t *>(pl.ptr(dst)));
                   }));
    return true;
  }
  if (isa<quant::QuantizeCastOp>(op)) {
    int f = plan.f32Of(src, step);
    auto [scale, zp] = quantOf(out.getType());
    int dst = plan.newSlot(shape, rt::DType::I8, step);
    plan.slots[dst].quant = {scale, zp};
    plan.valueSlots[out] = dst;
    bool fastKernel = fast();
    plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                     auto *q = static_cast<int8_t *>(pl.ptr(dst));
                     if (fastKernel)
                       cl::quantize(pl.f32(f), n, scale, zp, q);
                     else
                       ref::quantize(pl.f32(f), n, scale, zp, q);
                   }));
    return true;
  }
  if (isa<quant::DequantizeCastOp>(op) || isa<arith::ExtFOp>(op)) {
    if (!outEl.isF32())
      return fail(op, "casts produce f32 here");
    plan.valueSlots[out] = plan.f32Of(src, step);
    return true;
  }
  if (isa<arith::TruncFOp>(op)) {
    if (!outEl.isF16() && !outEl.isBF16())
      return fail(op, "only f32 -> f16 and f32 -> bf16 truncation is "
                      "supported");
    bool half = outEl.isF16();
    int f = plan.f32Of(src, step);
    int dst =
        plan.newSlot(shape, half ? rt::DType::F16 : rt::DType::BF16, step);
    plan.valueSlots[out] = dst;
    plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                     auto *o = static_cast<uint16_t *>(pl.ptr(dst));
                     if (half)
                       ref::truncateToHalf(pl.f32(f), n, o);
                     else
                       ref::truncateToBF16(pl.f32(f), n, o);
                   }));
    return true;
  }
  return fail(op,
              "unsupported cast '" + op->getName().getStringRef().str() + "'");
}

/// The convolution geometry of a conv2d op, for the reference kernels.
static ref::ConvParams convParamsOf(Conv2DOp conv) {
  ref::ConvParams p;
  p.filters = conv.getFilters();
  p.kh = conv.getKernelH();
  p.kw = conv.getKernelW();
  p.sy = conv.getStride()[0];
  p.sx = conv.getStride()[1];
  p.py = conv.getPadding()[0];
  p.px = conv.getPadding()[1];
  p.groups = conv.getGroups();
  p.dilation = conv.getDilation();
  return p;
}

bool PlanBuilder::boundFastResult(Value result, int out) {
  if (out < 0)
    return false;
  plan.valueSlots[result] = out;
  return true;
}

std::optional<bool>
PlanBuilder::tryDnnlLayer(Value result, BatchNormOp bn, bool &skipBN,
                          function_ref<int(std::string &why)> build) {
  if (!fast())
    return std::nullopt;
  std::string why;
  int out = build(why);
  if (out >= 0) {
    plan.valueSlots[bn ? bn.getResult() : result] = out;
    skipBN = (bool)bn;
    return true;
  }
  if (!why.empty()) {
    error = why; // already names the layer
    return false;
  }
  return std::nullopt;
}

bool PlanBuilder::buildF32Op(Operation *op, const Layer &layer, int step,
                             bool &skipBN) {
  if (auto conv = dyn_cast<Conv2DOp>(op))
    return buildF32Conv(conv, layer.batchNorm, step, skipBN);
  if (auto fc = dyn_cast<ConnectedOp>(op))
    return buildF32Connected(fc, layer.batchNorm, step, skipBN);
  if (auto bn = dyn_cast<BatchNormOp>(op))
    return buildF32BatchNorm(bn, step);
  if (auto mp = dyn_cast<MaxPoolOp>(op))
    return buildF32MaxPool(mp, step);
  if (auto up = dyn_cast<UpsampleOp>(op))
    return buildF32Upsample(up, step);
  if (auto route = dyn_cast<RouteOp>(op))
    return buildF32Route(route, step);
  if (auto sc = dyn_cast<ShortcutOp>(op))
    return buildF32Shortcut(sc, step);
  if (isa<DropoutOp>(op))
    return aliasResult(op, step); // identity, as in Darknet
  return buildF32ReferenceOp(op, step);
}

bool PlanBuilder::buildF32Conv(Conv2DOp conv, BatchNormOp bn, int step,
                               bool &skipBN) {
  Operation *op = conv.getOperation();
  int input = slotOf(conv.getInput());
  if (conv.getXnor()) // binarized in float: reference kernel only
    return buildF32XnorConv(conv, step);
  if (auto built =
          tryDnnlLayer(conv.getResult(), bn, skipBN, [&](std::string &why) {
            return buildDnnlConv(plan, step, op, bn, input, why);
          }))
    return *built;
  ref::ConvParams p = convParamsOf(conv);
  CHW in = chwOf(conv.getInput()), outS = chwOf(conv.getResult());
  auto w = std::make_shared<std::vector<float>>();
  if (!readWeights(op, conv.getWeight(), "weights",
                   p.filters * (in.c / p.groups) * p.kh * p.kw, *w, error))
    return false;
  auto b = std::make_shared<std::vector<float>>();
  if (conv.getBias() &&
      !readWeights(op, conv.getBias(), "biases", p.filters, *b, error))
    return false;
  int src = plan.plainOf(input, step);
  int dst = plainResult(conv.getResult(), step);
  Activation act = conv.getActivation();
  Flavor flavor = plan.flavor;
  plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                   ref::conv2d(pl.f32(src), in, w->data(),
                               b->empty() ? nullptr : b->data(), p, pl.f32(dst),
                               outS);
                   ref::activate(pl.f32(dst), outS, act, flavor);
                 }));
  return true;
}

bool PlanBuilder::buildF32Connected(ConnectedOp fc, BatchNormOp bn, int step,
                                    bool &skipBN) {
  Operation *op = fc.getOperation();
  int input = slotOf(fc.getInput());
  if (auto built =
          tryDnnlLayer(fc.getResult(), bn, skipBN, [&](std::string &why) {
            return buildDnnlConnected(plan, step, op, bn, input, why);
          }))
    return *built;
  int64_t inputs = chwOf(fc.getInput()).size(), outputs = fc.getOutputSize();
  auto w = std::make_shared<std::vector<float>>();
  if (!readWeights(op, fc.getWeight(), "weights", inputs * outputs, *w, error))
    return false;
  auto b = std::make_shared<std::vector<float>>();
  if (fc.getBias() &&
      !readWeights(op, fc.getBias(), "biases", outputs, *b, error))
    return false;
  int src = plan.plainOf(input, step);
  int dst = plainResult(fc.getResult(), step);
  CHW outS = chwOf(fc.getResult());
  Activation act = fc.getActivation();
  Flavor flavor = plan.flavor;
  plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                   ref::connected(pl.f32(src), inputs, w->data(),
                                  b->empty() ? nullptr : b->data(), outputs,
                                  pl.f32(dst));
                   ref::activate(pl.f32(dst), outS, act, flavor);
                 }));
  return true;
}

bool PlanBuilder::buildF32BatchNorm(BatchNormOp bn, int step) {
  Operation *op = bn.getOperation();
  CHW s = chwOf(bn.getInput());
  auto scale = std::make_shared<std::vector<float>>();
  auto mean = std::make_shared<std::vector<float>>();
  auto var = std::make_shared<std::vector<float>>();
  auto bias = std::make_shared<std::vector<float>>();
  if (!readWeights(op, bn.getScale(), "batch-norm scales", s.c, *scale,
                   error) ||
      !readWeights(op, bn.getMean(), "batch-norm means", s.c, *mean, error) ||
      !readWeights(op, bn.getVariance(), "batch-norm variances", s.c, *var,
                   error) ||
      !readWeights(op, bn.getBias(), "batch-norm biases", s.c, *bias, error))
    return false;
  int src = plan.plainOf(slotOf(bn.getInput()), step);
  int dst = plainResult(bn.getResult(), step);
  Activation act = bn.getActivation();
  Flavor flavor = plan.flavor;
  plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                   ref::batchNorm(pl.f32(src), s, scale->data(), mean->data(),
                                  var->data(), bias->data(), flavor,
                                  pl.f32(dst));
                   ref::activate(pl.f32(dst), s, act, flavor);
                 }));
  return true;
}

bool PlanBuilder::buildF32MaxPool(MaxPoolOp mp, int step) {
  int input = slotOf(mp.getInput());
  if (fast() &&
      boundFastResult(mp.getResult(), buildDnnlMaxPool(plan, step, mp, input)))
    return true;
  CHW in = chwOf(mp.getInput()), outS = chwOf(mp.getResult());
  int64_t size = mp.getSize(), sy = mp.getStride()[0], sx = mp.getStride()[1],
          pad = mp.getPadding();
  int src = plan.plainOf(input, step);
  int dst = plainResult(mp.getResult(), step);
  plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                   ref::maxPool(pl.f32(src), in, size, sy, sx, pad, pl.f32(dst),
                                outS);
                 }));
  return true;
}

bool PlanBuilder::buildF32Upsample(UpsampleOp up, int step) {
  int input = slotOf(up.getInput());
  if (fast() &&
      boundFastResult(up.getResult(), buildDnnlUpsample(plan, step, up, input)))
    return true;
  CHW in = chwOf(up.getInput()), outS = chwOf(up.getResult());
  int64_t stride = up.getStride();
  float scale = up.getScale().convertToFloat();
  int src = plan.plainOf(input, step);
  int dst = plainResult(up.getResult(), step);
  plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                   ref::upsample(pl.f32(src), in, stride, scale, pl.f32(dst),
                                 outS);
                 }));
  return true;
}

bool PlanBuilder::buildF32Route(RouteOp route, int step) {
  Operation *op = route.getOperation();
  if (op->getNumOperands() == 1 && route.getGroups() == 1)
    return aliasResult(op, step);
  std::vector<int> ins;
  for (Value v : op->getOperands())
    ins.push_back(slotOf(v));
  if (fast() && boundFastResult(route.getResult(),
                                buildDnnlRoute(plan, step, route, ins)))
    return true;
  std::vector<int> srcs;
  std::vector<CHW> shapes;
  for (unsigned i = 0; i < op->getNumOperands(); ++i) {
    srcs.push_back(plan.plainOf(ins[i], step));
    shapes.push_back(chwOf(op->getOperand(i)));
  }
  int64_t groups = route.getGroups(), groupId = route.getGroupId();
  int dst = plainResult(route.getResult(), step);
  plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                   int64_t offset = 0;
                   for (size_t i = 0; i < srcs.size(); ++i) {
                     ref::routeSlice(pl.f32(srcs[i]), shapes[i], groups,
                                     groupId, pl.f32(dst), offset);
                     offset += shapes[i].c / groups;
                   }
                 }));
  return true;
}

bool PlanBuilder::buildF32Shortcut(ShortcutOp sc, int step) {
  std::vector<int> ins;
  std::vector<CHW> shapes;
  for (Value v : sc->getOperands()) {
    ins.push_back(slotOf(v));
    shapes.push_back(chwOf(v));
  }
  if (fast() &&
      boundFastResult(sc.getResult(), buildDnnlShortcut(plan, step, sc, ins)))
    return true;
  std::vector<int> srcs;
  for (int s : ins)
    srcs.push_back(plan.plainOf(s, step));
  int dst = plainResult(sc.getResult(), step);
  Activation act = sc.getActivation();
  Flavor flavor = plan.flavor;
  plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                   std::vector<const float *> ptrs;
                   for (int s : srcs)
                     ptrs.push_back(pl.f32(s));
                   ref::shortcut(ptrs, shapes, act, flavor, pl.f32(dst));
                 }));
  return true;
}

/// The single-input ops without a fast kernel: plain tensors and the
/// reference kernels.
bool PlanBuilder::buildF32ReferenceOp(Operation *op, int step) {
  int src = plan.plainOf(slotOf(op->getOperand(0)), step);
  int dst = plainResult(op->getResult(0), step);
  CHW in = chwOf(op->getOperand(0)), outS = chwOf(op->getResult(0));
  Flavor flavor = plan.flavor;
  if (auto a = dyn_cast<ActivationOp>(op)) {
    Activation act = a.getActivation();
    plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                     std::memcpy(pl.f32(dst), pl.f32(src),
                                 in.size() * sizeof(float));
                     ref::activate(pl.f32(dst), outS, act, flavor);
                   }));
    return true;
  }
  if (isa<AvgPoolOp>(op)) {
    plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                     ref::avgPool(pl.f32(src), in, pl.f32(dst));
                   }));
    return true;
  }
  if (auto r = dyn_cast<ReorgOp>(op)) {
    int64_t stride = r.getStride();
    bool reverse = r.getReverse();
    plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                     ref::reorg(pl.f32(src), in, stride, reverse, pl.f32(dst));
                   }));
    return true;
  }
  if (auto cr = dyn_cast<CropOp>(op)) {
    float scale = cr.getScale().convertToFloat();
    float shift = cr.getShift().convertToFloat();
    plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                     ref::crop(pl.f32(src), in, outS, scale, shift,
                               pl.f32(dst));
                   }));
    return true;
  }
  if (auto s = dyn_cast<ScaleChannelsOp>(op)) {
    int feat = plan.plainOf(slotOf(s.getFeatures()), step);
    bool wh = s.getScaleWh();
    Activation act = s.getActivation();
    plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                     ref::scaleChannels(pl.f32(src), pl.f32(feat), outS, wh,
                                        act, flavor, pl.f32(dst));
                   }));
    return true;
  }
  if (auto sm = dyn_cast<SoftmaxOp>(op)) {
    int64_t groups = sm.getGroups();
    float temp = sm.getTemperature().convertToFloat();
    plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                     ref::softmax(pl.f32(src), in.size(), groups, temp,
                                  pl.f32(dst));
                   }));
    return true;
  }
  if (auto y = dyn_cast<YoloOp>(op)) {
    ref::YoloParams p;
    p.classes = y.getClasses();
    p.n = y.getMask().size();
    p.scaleXY = y.getScaleXY().convertToFloat();
    p.newCoords = y.getNewCoords();
    plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                     ref::yolo(pl.f32(src), in, p, flavor, pl.f32(dst));
                   }));
    return true;
  }
  if (auto r = dyn_cast<RegionOp>(op)) {
    ref::RegionParams p;
    p.classes = r.getClasses();
    p.coords = r.getCoords();
    p.num = r.getNum();
    p.softmax = r.getSoftmax();
    plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                     ref::region(pl.f32(src), in, p, flavor, pl.f32(dst));
                   }));
    return true;
  }
  if (buildF32ZooOp(op, step, src, dst))
    return true;
  if (!error.empty())
    return false;
  return fail(op, "no kernel for '" + op->getName().getStringRef().str() + "'");
}

bool PlanBuilder::buildF32XnorConv(Conv2DOp conv, int step) {
  Operation *op = conv.getOperation();
  ref::ConvParams p = convParamsOf(conv);
  CHW in = chwOf(conv.getInput()), outS = chwOf(conv.getResult());
  const int64_t k = (in.c / p.groups) * p.kh * p.kw;
  std::vector<float> real;
  if (!readWeights(op, conv.getWeight(), "weights", p.filters * k, real, error))
    return false;
  // Darknet binarizes the weights once per forward; they do not change.
  auto w = std::make_shared<std::vector<float>>(real.size());
  ref::binarizeWeights(real.data(), p.filters, k, w->data());
  auto b = std::make_shared<std::vector<float>>();
  if (conv.getBias() &&
      !readWeights(op, conv.getBias(), "biases", p.filters, *b, error))
    return false;
  auto bin = std::make_shared<std::vector<float>>(in.size());
  int src = plan.plainOf(slotOf(conv.getInput()), step);
  int dst = plainResult(conv.getResult(), step);
  Activation act = conv.getActivation();
  Flavor flavor = plan.flavor;
  plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                   ref::binarizeInput(pl.f32(src), in.size(), bin->data());
                   ref::conv2d(bin->data(), in, w->data(),
                               b->empty() ? nullptr : b->data(), p, pl.f32(dst),
                               outS);
                   ref::activate(pl.f32(dst), outS, act, flavor);
                 }));
  return true;
}

bool PlanBuilder::buildF32ZooOp(Operation *op, int step, int src, int dst) {
  CHW in = chwOf(op->getOperand(0)), outS = chwOf(op->getResult(0));
  Flavor flavor = plan.flavor;
  if (auto l = dyn_cast<LocalOp>(op)) {
    int64_t size = l.getSize(), stride = l.getStride(), pad = l.getPad();
    auto w = std::make_shared<std::vector<float>>();
    auto b = std::make_shared<std::vector<float>>();
    if (!readWeights(op, l.getWeight(), "weights",
                     outS.size() * in.c * size * size, *w, error) ||
        (l.getBias() &&
         !readWeights(op, l.getBias(), "biases", outS.size(), *b, error)))
      return false;
    Activation act = l.getActivation();
    plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                     ref::local(pl.f32(src), in, w->data(),
                                b->empty() ? nullptr : b->data(), size, stride,
                                pad, pl.f32(dst), outS);
                     ref::activate(pl.f32(dst), outS, act, flavor);
                   }));
    return true;
  }
  if (auto a = dyn_cast<LocalAvgPoolOp>(op)) {
    int64_t size = a.getSize(), sy = a.getStride()[0], sx = a.getStride()[1];
    int64_t padding = a.getPadding();
    plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                     ref::localAvgPool(pl.f32(src), in, size, sy, sx, padding,
                                       pl.f32(dst), outS);
                   }));
    return true;
  }
  if (auto r = dyn_cast<Reorg3dOp>(op)) {
    int64_t stride = r.getStride();
    bool reverse = r.getReverse();
    plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                     ref::reorg3d(pl.f32(src), in, stride, reverse, pl.f32(dst),
                                  outS);
                   }));
    return true;
  }
  if (auto s = dyn_cast<SamOp>(op)) {
    int feat = plan.plainOf(slotOf(s.getFeatures()), step);
    Activation act = s.getActivation();
    plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                     ref::sam(pl.f32(src), pl.f32(feat), outS, act, flavor,
                              pl.f32(dst));
                   }));
    return true;
  }
  if (auto d = dyn_cast<DetectionOp>(op)) {
    int64_t side = d.getSide(), classes = d.getClasses();
    bool softmax = d.getSoftmax();
    plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                     ref::detection(pl.f32(src), in.size(), side, classes,
                                    softmax, pl.f32(dst));
                   }));
    return true;
  }
  if (auto g = dyn_cast<GaussianYoloOp>(op)) {
    int64_t classes = g.getClasses(), n = g.getMask().size();
    float scaleXY = g.getScaleXY().convertToFloat();
    plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                     ref::gaussianYolo(pl.f32(src), in, classes, n, scaleXY,
                                       pl.f32(dst));
                   }));
    return true;
  }
  return false;
}

int PlanBuilder::int8Result(Value v, int step) {
  auto [scale, zp] = quantOf(v.getType());
  int s = plan.newSlot(chwOf(v), rt::DType::I8, step);
  plan.slots[s].quant = {scale, zp};
  plan.valueSlots[v] = s;
  return s;
}

static std::vector<rt::FixedPoint> fixedPoints(ArrayRef<int32_t> m,
                                               ArrayRef<int32_t> sh) {
  std::vector<rt::FixedPoint> out;
  for (size_t i = 0; i < m.size(); ++i)
    out.push_back({m[i], sh[i]});
  return out;
}

template <typename T>
static bool readInts(Operation *op, std::optional<ElementsAttr> attr,
                     StringRef what, int64_t count, std::vector<T> &out,
                     std::string &error) {
  if (!attr) {
    error = describeLayer(op) + " has no " + what.str();
    return false;
  }
  if (attr->getNumElements() != count) {
    error = describeLayer(op) + ": " + what.str() + " has the wrong size";
    return false;
  }
  auto values = getInts<T>(*attr);
  if (!values) {
    error = describeLayer(op) + ": cannot read " + what.str();
    return false;
  }
  out = std::move(*values);
  return true;
}

/// The Requant of a quantized conv2d/connected op.
template <typename OpT>
static bool requantOf(OpT op, int64_t channels, rt::Rounding rounding,
                      ref::Requant &r, std::string &error) {
  r.act = op.getActivation();
  r.rounding = rounding;
  auto [sOut, zpOut] = quantOf(op.getResult().getType());
  r.zpOut = zpOut;
  r.q6 = rt::quantizeValue(6.0f, 1.0f / sOut, zpOut);
  r.mult = fixedPoints(*op.getMultiplier(), *op.getShift());
  if (op.getNegMultiplier())
    r.negMult = fixedPoints(*op.getNegMultiplier(), *op.getNegShift());
  if (op.getBias())
    return readInts(op.getOperation(), op.getBias(), "int32 biases", channels,
                    r.bias, error);
  r.bias.assign(channels, 0);
  return true;
}

bool PlanBuilder::buildInt8Op(Operation *op, int step) {
  if (auto conv = dyn_cast<Conv2DOp>(op))
    return buildInt8Conv(conv, step);
  if (auto fc = dyn_cast<ConnectedOp>(op))
    return buildInt8Connected(fc, step);
  if (auto mp = dyn_cast<MaxPoolOp>(op))
    return buildInt8MaxPool(mp, step);
  if (auto up = dyn_cast<UpsampleOp>(op))
    return buildInt8Upsample(up, step);
  if (isa<DropoutOp>(op))
    return aliasResult(op, step);
  if (auto r = dyn_cast<ReorgOp>(op))
    return buildInt8Reorg(r, step);
  if (auto route = dyn_cast<RouteOp>(op))
    return buildInt8Route(route, step);
  if (auto sc = dyn_cast<ShortcutOp>(op))
    return buildInt8Shortcut(sc, step);
  return fail(op, "has no int8 kernel");
}

bool PlanBuilder::buildInt16Op(Operation *op, int step) {
  if (isa<Conv2DOp, ConnectedOp>(op))
    return buildInt16Weighted(op, step);
  if (isa<DropoutOp>(op))
    return aliasResult(op, step);
  Value result = op->getResult(0);
  int src = plan.plainOf(slotOf(op->getOperand(0)), step);
  int dst = plan.newSlot(chwOf(result), rt::DType::I16, step);
  plan.slots[dst].quant = {quantOf(result.getType()).first, 0};
  plan.valueSlots[result] = dst;
  CHW in = chwOf(op->getOperand(0)), outS = chwOf(result);
  if (auto mp = dyn_cast<MaxPoolOp>(op)) {
    int64_t size = mp.getSize(), sy = mp.getStride()[0], sx = mp.getStride()[1],
            pad = mp.getPadding();
    plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                     ref::maxPoolInt16(
                         static_cast<int16_t *>(pl.ptr(src)), in, size, sy, sx,
                         pad, static_cast<int16_t *>(pl.ptr(dst)), outS);
                   }));
    return true;
  }
  if (auto up = dyn_cast<UpsampleOp>(op)) {
    int64_t stride = up.getStride();
    plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                     ref::upsampleInt16(
                         static_cast<int16_t *>(pl.ptr(src)), in, stride,
                         static_cast<int16_t *>(pl.ptr(dst)), outS);
                   }));
    return true;
  }
  return fail(op, "has no int16 (W8A16) kernel");
}

bool PlanBuilder::buildInt16Weighted(Operation *op, int step) {
  auto p = std::make_shared<ref::ConvInt16Params>();
  Value input = op->getOperand(0), result = op->getResult(0);
  CHW in = chwOf(input), outS = chwOf(result);
  int64_t channels, count;
  auto conv = dyn_cast<Conv2DOp>(op);
  if (conv) {
    p->conv = convParamsOf(conv);
    channels = p->conv.filters;
    count = channels * (in.c / p->conv.groups) * p->conv.kh * p->conv.kw;
  } else {
    channels = cast<ConnectedOp>(op).getOutputSize();
    count = channels * in.size();
  }
  auto weight = op->getAttrOfType<ElementsAttr>("weight");
  auto bias = op->getAttrOfType<ElementsAttr>("bias");
  auto mult = op->getAttrOfType<DenseI32ArrayAttr>("multiplier");
  auto shift = op->getAttrOfType<DenseI32ArrayAttr>("shift");
  auto negMult = op->getAttrOfType<DenseI32ArrayAttr>("neg_multiplier");
  auto negShift = op->getAttrOfType<DenseI32ArrayAttr>("neg_shift");
  if (!mult || !shift ||
      !readInts(op, weight ? std::optional<ElementsAttr>(weight) : std::nullopt,
                "int8 weights", count, p->weight, error))
    return error.empty() ? fail(op, "has no requantization constants") : false;
  ref::Requant16 &r = p->requant;
  r.act = op->getAttrOfType<ActivationAttr>("activation").getValue();
  float sOut = quantOf(result.getType()).first;
  r.q6 = (int32_t)std::min(32767.0f, std::round(6.0f / sOut));
  r.mult = fixedPoints(mult.asArrayRef(), shift.asArrayRef());
  if (negMult && negShift)
    r.negMult = fixedPoints(negMult.asArrayRef(), negShift.asArrayRef());
  r.bias.assign(channels, 0);
  if (bias && !readInts(op, std::optional<ElementsAttr>(bias), "int32 biases",
                        channels, r.bias, error))
    return false;
  int src = plan.plainOf(slotOf(input), step);
  int dst = plan.newSlot(outS, rt::DType::I16, step);
  plan.slots[dst].quant = {sOut, 0};
  plan.valueSlots[result] = dst;
  const bool isConv = (bool)conv;
  plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                   auto *x = static_cast<int16_t *>(pl.ptr(src));
                   auto *y = static_cast<int16_t *>(pl.ptr(dst));
                   if (isConv)
                     ref::conv2dInt16(x, in, *p, y, outS);
                   else
                     ref::connectedInt16(x, in.size(), *p, channels, y);
                 }));
  return true;
}

bool PlanBuilder::buildInt8Conv(Conv2DOp conv, int step) {
  Operation *op = conv.getOperation();
  auto p = std::make_shared<ref::ConvInt8Params>();
  p->conv = convParamsOf(conv);
  p->zpIn = quantOf(conv.getInput().getType()).second;
  p->accumulatorBits = conv.getAccumulatorBits().value_or(32);
  CHW in = chwOf(conv.getInput()), outS = chwOf(conv.getResult());
  if (!readInts(op, conv.getWeight(), "int8 weights",
                p->conv.filters * (in.c / p->conv.groups) * p->conv.kh *
                    p->conv.kw,
                p->weight, error) ||
      !requantOf(conv, p->conv.filters, plan.rounding, p->requant, error))
    return false;
  int input = slotOf(conv.getInput());
  if (fast() && p->accumulatorBits == 32 &&
      boundFastResult(conv.getResult(),
                      buildDnnlConvInt8(plan, step, conv, input, p.get())))
    return true;
  int src = plan.plainOf(input, step);
  int dst = int8Result(conv.getResult(), step);
  plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                   ref::conv2dInt8(static_cast<int8_t *>(pl.ptr(src)), in, *p,
                                   static_cast<int8_t *>(pl.ptr(dst)), outS);
                 }));
  return true;
}

bool PlanBuilder::buildInt8Connected(ConnectedOp fc, int step) {
  auto p = std::make_shared<ref::ConvInt8Params>();
  int64_t inputs = chwOf(fc.getInput()).size(), outputs = fc.getOutputSize();
  p->zpIn = quantOf(fc.getInput().getType()).second;
  p->accumulatorBits = fc.getAccumulatorBits().value_or(32);
  if (!readInts(fc.getOperation(), fc.getWeight(), "int8 weights",
                inputs * outputs, p->weight, error) ||
      !requantOf(fc, outputs, plan.rounding, p->requant, error))
    return false;
  int src = plan.plainOf(slotOf(fc.getInput()), step);
  int dst = int8Result(fc.getResult(), step);
  plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                   ref::connectedInt8(static_cast<int8_t *>(pl.ptr(src)),
                                      inputs, *p, outputs,
                                      static_cast<int8_t *>(pl.ptr(dst)));
                 }));
  return true;
}

bool PlanBuilder::buildInt8MaxPool(MaxPoolOp mp, int step) {
  int input = slotOf(mp.getInput());
  if (fast() && boundFastResult(mp.getResult(),
                                buildFastInt8MaxPool(plan, step, mp, input)))
    return true;
  CHW in = chwOf(mp.getInput()), outS = chwOf(mp.getResult());
  int64_t size = mp.getSize(), sy = mp.getStride()[0], sx = mp.getStride()[1],
          pad = mp.getPadding();
  int src = plan.plainOf(input, step);
  int dst = int8Result(mp.getResult(), step);
  plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                   ref::maxPoolInt8(static_cast<int8_t *>(pl.ptr(src)), in,
                                    size, sy, sx, pad,
                                    static_cast<int8_t *>(pl.ptr(dst)), outS);
                 }));
  return true;
}

bool PlanBuilder::buildInt8Upsample(UpsampleOp up, int step) {
  int input = slotOf(up.getInput());
  if (fast() && boundFastResult(up.getResult(),
                                buildFastInt8Upsample(plan, step, up, input)))
    return true;
  CHW in = chwOf(up.getInput()), outS = chwOf(up.getResult());
  int64_t stride = up.getStride();
  int src = plan.plainOf(input, step);
  int dst = int8Result(up.getResult(), step);
  plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                   ref::upsampleInt8(static_cast<int8_t *>(pl.ptr(src)), in,
                                     stride, static_cast<int8_t *>(pl.ptr(dst)),
                                     outS);
                 }));
  return true;
}

bool PlanBuilder::buildInt8Reorg(ReorgOp r, int step) {
  CHW in = chwOf(r.getInput());
  int64_t stride = r.getStride();
  bool reverse = r.getReverse();
  int src = plan.plainOf(slotOf(r.getInput()), step);
  int dst = int8Result(r.getResult(), step);
  plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                   ref::reorgInt8(static_cast<int8_t *>(pl.ptr(src)), in,
                                  stride, reverse,
                                  static_cast<int8_t *>(pl.ptr(dst)));
                 }));
  return true;
}

bool PlanBuilder::buildInt8Route(RouteOp route, int step) {
  Operation *op = route.getOperation();
  auto [sOut, zpOut] = quantOf(route.getResult().getType());
  std::vector<int> srcs;
  std::vector<CHW> shapes;
  std::vector<int32_t> zps;
  std::vector<char> identity;
  auto fps = fixedPoints(*route.getInputMultiplier(), *route.getInputShift());
  std::vector<int> ins;
  for (Value v : op->getOperands())
    ins.push_back(slotOf(v));
  bool copyOnly =
      op->getNumOperands() == 1 && route.getGroups() == 1 &&
      quantOf(op->getOperand(0).getType()) == std::make_pair(sOut, zpOut);
  if (copyOnly)
    return aliasResult(op, step); // in whatever layout the input has
  if (fast() && boundFastResult(route.getResult(),
                                buildFastInt8Route(plan, step, route, ins)))
    return true;
  for (Value v : op->getOperands()) {
    srcs.push_back(plan.plainOf(slotOf(v), step));
    shapes.push_back(chwOf(v));
    auto [s, zp] = quantOf(v.getType());
    zps.push_back(zp);
    identity.push_back(s == sOut && zp == zpOut);
  }
  int64_t groups = route.getGroups(), groupId = route.getGroupId();
  rt::Rounding rounding = plan.rounding;
  int32_t zo = zpOut;
  int dst = int8Result(route.getResult(), step);
  plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                   int64_t offset = 0;
                   for (size_t i = 0; i < srcs.size(); ++i) {
                     ref::routeSliceInt8(
                         static_cast<int8_t *>(pl.ptr(srcs[i])), shapes[i],
                         groups, groupId, zps[i], zo, fps[i], identity[i],
                         rounding, static_cast<int8_t *>(pl.ptr(dst)), offset);
                     offset += shapes[i].c / groups;
                   }
                 }));
  return true;
}

bool PlanBuilder::buildInt8Shortcut(ShortcutOp sc, int step) {
  std::vector<int> ins;
  for (Value v : sc->getOperands())
    ins.push_back(slotOf(v));
  if (fast() && boundFastResult(sc.getResult(),
                                buildFastInt8Shortcut(plan, step, sc, ins)))
    return true;
  auto p = std::make_shared<ref::ShortcutInt8Params>();
  std::vector<int> srcs;
  std::vector<CHW> shapes;
  for (Value v : sc->getOperands()) {
    srcs.push_back(plan.plainOf(slotOf(v), step));
    shapes.push_back(chwOf(v));
    p->zp.push_back(quantOf(v.getType()).second);
  }
  p->mult = fixedPoints(*sc.getInputMultiplier(), *sc.getInputShift());
  if (sc.getNegMultiplier())
    p->negMult = {(*sc.getNegMultiplier())[0], (*sc.getNegShift())[0]};
  p->act = sc.getActivation();
  p->zpOut = quantOf(sc.getResult().getType()).second;
  p->rounding = plan.rounding;
  int dst = int8Result(sc.getResult(), step);
  plan.addKernel(step, std::make_unique<FnKernel>([=](Plan &pl) {
                   std::vector<const int8_t *> ptrs;
                   for (int s : srcs)
                     ptrs.push_back(static_cast<int8_t *>(pl.ptr(s)));
                   ref::shortcutInt8(ptrs, shapes, *p,
                                     static_cast<int8_t *>(pl.ptr(dst)));
                 }));
  return true;
}

} // namespace

//===----------------------------------------------------------------------===//
// Executor
//===----------------------------------------------------------------------===//

Executor::Executor() : plan(std::make_unique<Plan>()) {}
Executor::~Executor() = default;

namespace {
/// Gives the calling thread back its OpenMP thread count on scope exit.
/// Planning and running set each step's count (omp_set_num_threads is a
/// per-thread setting), and a caller that also uses OpenMP must not inherit
/// the last step's: libtorch in qsim-train reads omp_get_max_threads() to
/// size its parallel regions and, at 1, sends 1x1 convolutions to its slow
/// reference-BLAS path (a training step ran ~2x slower after each teacher
/// forward pass).
class CallerThreadsGuard {
public:
  CallerThreadsGuard() : saved(omp_get_max_threads()) {}
  ~CallerThreadsGuard() {
    if (omp_get_max_threads() != saved)
      omp_set_num_threads(saved);
  }

private:
  int saved;
};
} // namespace

std::unique_ptr<Executor> Executor::create(ModuleOp module,
                                           const ExecutorOptions &options) {
  CallerThreadsGuard restore;
  std::unique_ptr<Executor> ex(new Executor());
  ex->plan->options = options;
  int threads = options.threads > 0 ? options.threads : omp_get_num_procs();
  omp_set_num_threads(threads);
  ex->plan->options.threads = threads;
  PlanBuilder builder(*ex->plan);
  bool built = false;
  try {
    built = builder.build(module);
  } catch (const dnnl::error &e) {
    builder.error = std::string("oneDNN: ") + e.what();
  } catch (const std::bad_alloc &) {
    builder.error = "out of memory while planning the model";
  }
  if (!built) {
    // At the layer being planned, so that the message gains its
    // "file.cfg:LINE" (the text already names the layer).
    Operation *at =
        builder.failedLayer ? builder.failedLayer : module.getOperation();
    at->emitError() << builder.error;
    return nullptr;
  }
  ex->plan->millis.assign(ex->plan->steps.size(), 0.0);
  for (const Step &s : ex->plan->steps)
    ex->plan->infos.push_back(s.info);
  return ex;
}

const std::vector<StepInfo> &Executor::steps() const { return plan->infos; }

CHW Executor::inputShape() const { return plan->slots[plan->inputSlot].shape; }
const ExecutorOptions &Executor::options() const { return plan->options; }

void Executor::setInput(const rt::Tensor &input) {
  Slot &s = plan->storage(plan->inputSlot);
  if (input.dtype() != rt::DType::F32 || input.c() != s.shape.c ||
      input.h() != s.shape.h || input.w() != s.shape.w)
    throw std::invalid_argument(
        "input tensor does not match the network input " + s.shape.str());
  std::memcpy(s.ptr, input.raw(), input.bytes());
}

void Executor::runStep(size_t i) {
  CallerThreadsGuard restore;
  executeStep(i);
}

void Executor::executeStep(size_t i) {
  Step &st = plan->steps[i];
  if (omp_get_max_threads() != st.threads)
    omp_set_num_threads(st.threads);
  for (auto &k : st.kernels)
    k->run(*plan);
  plan->stream.wait();
}

void Executor::run() {
  using clock = std::chrono::steady_clock;
  CallerThreadsGuard restore;
  for (size_t i = 0; i < plan->steps.size(); ++i) {
    auto t0 = plan->options.timeSteps ? clock::now() : clock::time_point();
    executeStep(i);
    if (plan->options.timeSteps)
      plan->millis[i] =
          std::chrono::duration<double, std::milli>(clock::now() - t0).count();
    if (plan->hook)
      plan->hook(i);
  }
}

static rt::Tensor plainCopy(Plan &plan, int slot) {
  Slot &s = plan.slots[slot];
  rt::Tensor t(s.dtype, s.shape.c, s.shape.h, s.shape.w);
  t.quant = s.quant;
  if (!s.dnnlLayout) {
    std::memcpy(t.raw(), plan.ptr(slot), t.bytes());
    return t;
  }
  dnnl::memory src = plan.memory(slot);
  dnnl::memory dst(plan.plainDesc(slot), plan.engine, t.raw());
  dnnl::reorder(src, dst).execute(plan.stream, src, dst);
  plan.stream.wait();
  return t;
}

rt::Tensor Executor::stepOutput(size_t i) const {
  return plainCopy(*plan, plan->steps[i].outputSlot);
}

std::vector<rt::Tensor> Executor::stepInputs(size_t i) const {
  std::vector<rt::Tensor> out;
  for (int s : plan->steps[i].inputSlots)
    out.push_back(plainCopy(*plan, s));
  return out;
}

std::vector<rt::Tensor> Executor::outputs() const {
  std::vector<rt::Tensor> out;
  for (int s : plan->resultSlots)
    out.push_back(plainCopy(*plan, s));
  return out;
}

const std::vector<size_t> &Executor::outputSteps() const {
  return plan->resultSteps;
}

void Executor::setStepHook(StepHook hook) { plan->hook = std::move(hook); }
const std::vector<double> &Executor::stepMillis() const { return plan->millis; }
size_t Executor::activationBytes() const { return plan->bufferBytes; }
