//===- Plan.h - the interpreter's execution plan (internal) -----*- C++ -*-===//
//
// Values live in slots with a layout (plain C x H x W, or a oneDNN memory
// descriptor for the fast kernels); conversions between layouts are kernels
// inserted where a consumer needs them. Buffers are assigned after planning
// from each slot's first and last use, so memory is reused across layers.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_LIB_INTERPRETER_PLAN_H
#define QSIM_LIB_INTERPRETER_PLAN_H

#include "qsim/Interpreter/Executor.h"
#include "qsim/Runtime/QuantMath.h"

#include "mlir/IR/Value.h"
#include "llvm/ADT/DenseMap.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <map>

namespace qsim::interp {

using shapes::CHW;

struct Slot {
  CHW shape;
  rt::DType dtype = rt::DType::F32;
  rt::QuantParams quant;
  /// Fast kernels' layout; plain C x H x W when not set.
  bool dnnlLayout = false;
  dnnl::memory::desc md;
  size_t bytes = 0;
  int defStep = -1, lastUse = -1;
  /// Never shares its buffer (network input and outputs, kept outputs).
  bool pinned = false;
  /// Shares the storage of another slot (dropout is an identity).
  int aliasOf = -1;
  int buffer = -1;
  void *ptr = nullptr;

  rt::Tensor view() const {
    return rt::Tensor::view(dtype, shape.c, shape.h, shape.w, ptr);
  }
  float *f32() const { return static_cast<float *>(ptr); }
};

class Plan;

class Kernel {
public:
  virtual ~Kernel() = default;
  /// Called once buffers are assigned (slot pointers are final).
  virtual void bind(Plan &plan) {}
  virtual void run(Plan &plan) = 0;
  std::vector<int> inputs, outputs;
};

/// A kernel given as a function over the plan (most plain kernels).
class FnKernel : public Kernel {
public:
  explicit FnKernel(std::function<void(Plan &)> fn) : fn(std::move(fn)) {}
  void run(Plan &plan) override { fn(plan); }

private:
  std::function<void(Plan &)> fn;
};

struct Step {
  StepInfo info;
  /// Threads the step's kernels were planned and run with.
  int threads = 1;
  std::vector<std::unique_ptr<Kernel>> kernels;
  int outputSlot = -1;
  std::vector<int> inputSlots;
};

class Plan {
public:
  ExecutorOptions options;
  Flavor flavor = Flavor::AlexeyAB;
  std::vector<Slot> slots;
  std::vector<Step> steps;
  llvm::DenseMap<mlir::Value, int> valueSlots;
  int inputSlot = -1;
  std::vector<int> resultSlots;
  std::vector<size_t> resultSteps;
  std::vector<std::shared_ptr<void>> buffers;
  size_t bufferBytes = 0;
  Executor::StepHook hook;
  std::vector<double> millis;
  std::vector<StepInfo> infos;

  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};

  /// New plain slot defined in `step`.
  int newSlot(const CHW &shape, rt::DType dtype, int step);
  /// New slot in a oneDNN layout.
  int newDnnlSlot(const CHW &shape, const dnnl::memory::desc &md, int step);
  /// Records that `step` reads `slot` (extends its lifetime).
  void use(int slot, int step);
  /// A plain version of `slot` readable in `step` (a reorder kernel is added
  /// to `step` when the slot is in a oneDNN layout).
  int plainOf(int slot, int step);
  /// A version of `slot` in layout `md`, readable in `step`.
  int dnnlOf(int slot, const dnnl::memory::desc &md, int step);
  /// An f32 version of a plain f16 or int8 slot (widened / dequantized).
  int f32Of(int slot, int step);
  rt::Rounding rounding = rt::Rounding::TFLite;
  /// oneDNN descriptor of a plain slot (nchw, its data type).
  dnnl::memory::desc plainDesc(int slot) const;
  /// Storage of a slot (follows aliases).
  Slot &storage(int slot);
  void *ptr(int slot) { return storage(slot).ptr; }
  float *f32(int slot) { return static_cast<float *>(storage(slot).ptr); }
  dnnl::memory memory(int slot);

  /// Assigns buffers to slots (reusing them between non-overlapping
  /// lifetimes) and binds the kernels.
  void allocate();

  Step &currentStep() { return steps.back(); }
  void addKernel(int step, std::unique_ptr<Kernel> k) {
    steps[step].kernels.push_back(std::move(k));
  }

private:
  std::map<std::pair<int, std::string>, int> conversions;
};

dnnl::memory::data_type dnnlType(rt::DType t);

/// Builds the fast (oneDNN) kernel for a conv2d/connected op, with its fused
/// batch norm (may be null) and activation; returns the output slot or -1
/// with `error` set when oneDNN cannot run it (the caller falls back to the
/// reference kernel). With `bf16` (a bf16 layer without batch norm, reading
/// a bf16 slot): bf16 source and weights, f32 accumulation, bias and
/// activation, bf16 output; -1 when the activation is no oneDNN post-op or
/// oneDNN has only its reference bf16 kernel on this CPU (no bf16 dot
/// products to gain from: the caller emulates).
int buildDnnlConv(Plan &plan, int step, mlir::Operation *op, BatchNormOp bn,
                  int inputSlot, std::string &error, bool bf16 = false);
int buildDnnlConnected(Plan &plan, int step, mlir::Operation *op,
                       BatchNormOp bn, int inputSlot, std::string &error,
                       bool bf16 = false);
int buildDnnlMaxPool(Plan &plan, int step, MaxPoolOp op, int inputSlot);
int buildDnnlUpsample(Plan &plan, int step, UpsampleOp op, int inputSlot);
int buildDnnlShortcut(Plan &plan, int step, ShortcutOp op,
                      const std::vector<int> &inputSlots);
/// Route in the blocked layout when every slice is block-aligned; -1 if not.
int buildDnnlRoute(Plan &plan, int step, RouteOp op,
                   const std::vector<int> &inputSlots);
/// Fast int8 convolution: oneDNN s8 x s8 -> s32 with the input zero point,
/// then the reference requantization (bit-exact to the reference kernel).
/// Returns -1 when oneDNN cannot run it.
struct ConvInt8Setup;
int buildDnnlConvInt8(Plan &plan, int step, Conv2DOp op, int inputSlot,
                      const void *params);

/// Fast int8 max pooling, upsampling, route and shortcut in the channels-last
/// layout of the int8 convolutions (ChannelsLastInt8.h), bit-exact to the
/// reference kernels; -1 when the layer does not fit them (the caller uses
/// the reference kernel).
int buildFastInt8MaxPool(Plan &plan, int step, MaxPoolOp op, int inputSlot);
int buildFastInt8Upsample(Plan &plan, int step, UpsampleOp op, int inputSlot);
int buildFastInt8Route(Plan &plan, int step, RouteOp op,
                       const std::vector<int> &inputSlots);
int buildFastInt8Shortcut(Plan &plan, int step, ShortcutOp op,
                          const std::vector<int> &inputSlots);

/// The weight attribute as f32 values (f16, bf16 widened), or an error.
bool readWeights(mlir::Operation *op, std::optional<mlir::ElementsAttr> attr,
                 llvm::StringRef what, int64_t count, std::vector<float> &out,
                 std::string &error);

} // namespace qsim::interp

#endif
