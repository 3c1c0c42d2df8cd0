//===- Executor.h - the qsim interpreter ------------------------*- C++ -*-===//
//
// Plan once, run many (docs/DESIGN): `Executor::create` turns a qsim module
// into an execution plan (a kernel per op, weights packed for the fast
// library, buffers assigned with reuse); `run()` executes it. The plan's
// steps are the model's Darknet layers; timing, dumps, calibration
// observers and the step session hook in between steps.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_INTERPRETER_EXECUTOR_H
#define QSIM_INTERPRETER_EXECUTOR_H

#include "qsim/Dialect/QSim/IR/Layers.h"
#include "qsim/Dialect/QSim/IR/Shapes.h"
#include "qsim/Runtime/Tensor.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace qsim::interp {

enum class KernelSet { Reference, Fast };

struct ExecutorOptions {
  /// Reference: plain loops, the specification. Fast: oneDNN where it has
  /// the op (conv, connected, pooling, resampling, concat, add).
  KernelSet kernels = KernelSet::Fast;
  /// Worker threads; 0 = all cores.
  int threads = 0;
  /// Keep every layer's output after the run (step session, --dump-layers
  /// of past layers); otherwise buffers are reused and a layer's output is
  /// only readable from the step hook right after it ran.
  bool keepAllOutputs = false;
  /// Measure the wall time of every step.
  bool timeSteps = false;
};

/// One step of the plan: one Darknet layer.
struct StepInfo {
  int64_t layer = 0;
  std::string kind;      // Darknet section name
  std::string label;     // "layer 12 (convolutional)"
  std::string precision; // fp32, fp16, int8, w8a16
  shapes::CHW output;
  std::vector<int64_t> inputLayers; // -1 = network input
  int64_t macs = 0;
  mlir::Operation *head = nullptr;
};

class Plan;

class Executor {
public:
  /// Builds the plan; on failure returns null after an error diagnostic at
  /// the layer that cannot be planned (its message names the layer), or at
  /// the module when the module as a whole is at fault. The module must
  /// outlive the executor.
  static std::unique_ptr<Executor> create(mlir::ModuleOp module,
                                          const ExecutorOptions &options);
  ~Executor();

  const std::vector<StepInfo> &steps() const;
  shapes::CHW inputShape() const;
  const ExecutorOptions &options() const;

  /// Sets the network input (a 3 x H x W f32 tensor of the right size).
  void setInput(const rt::Tensor &input);
  /// Runs every step in order, calling the hook after each. Each step runs
  /// on its planned OpenMP thread count; the caller's is restored afterwards
  /// (as by runStep and create).
  void run();
  /// Runs one step; the steps it depends on must have run since the last
  /// setInput (the step session guarantees this).
  void runStep(size_t step);

  /// The output of a step as a plain C x H x W tensor (a copy). Valid after
  /// the step ran, until its buffer is reused (always, with keepAllOutputs).
  rt::Tensor stepOutput(size_t step) const;
  /// The inputs of a step (plain copies), e.g. for a step session.
  std::vector<rt::Tensor> stepInputs(size_t step) const;
  /// The function results (detection heads, or the last layer) after run().
  std::vector<rt::Tensor> outputs() const;
  /// Indices of the steps whose outputs are the function results.
  const std::vector<size_t> &outputSteps() const;

  using StepHook = std::function<void(size_t step)>;
  void setStepHook(StepHook hook);
  /// Wall time of each step in the last run (timeSteps), milliseconds.
  const std::vector<double> &stepMillis() const;
  /// Bytes of activation buffers the plan allocated.
  size_t activationBytes() const;

private:
  Executor();
  /// runStep without restoring the caller's OpenMP thread count (run() does
  /// that once around all steps).
  void executeStep(size_t step);
  std::unique_ptr<Plan> plan;
};

} // namespace qsim::interp

#endif
