//===- TorchNet.h - a NetSpec as torch tensors and a forward ----*- C++ -*-===//
//
// The torch view of a qsim module (docs/training.md): one torch computation
// per qsim op, Darknet's formulas exactly as lib/Interpreter's reference
// kernels (the specification) compute them, and int8 / fp16 layers as fake
// quantization on the module's own grids (straight-through estimator, or
// learned step sizes). Compiled with RTTI, without MLIR headers.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_LIB_TRAIN_TORCHNET_H
#define QSIM_LIB_TRAIN_TORCHNET_H

#include "qsim/Train/NetSpec.h"
#include "qsim/Train/View.h"

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace qsim::train {

class TorchNet {
public:
  enum class Role { Weight, Bias, BnScale, BnBias, RangeLo, RangeHi };
  struct Param {
    torch::Tensor tensor;
    int node = -1;  // -1 for a learned range
    int group = -1; // learned ranges
    Role role = Role::Weight;
    std::string name;
  };

  /// Whether every node of `spec` has a torch form; names the layer if not.
  static bool validate(const NetSpec &spec, std::string &error);
  TorchNet(const NetSpec &spec, const ViewOptions &options);

  /// Every node's output for the batch `x` [N, C, H, W]. Outputs no later
  /// node reads are dropped unless `keep[i]` (empty: keep all).
  std::vector<torch::Tensor> forward(const torch::Tensor &x,
                                     const std::vector<bool> &keep = {}) const;
  /// The same, but the nodes of `forced` pass the given values on to their
  /// consumers instead of their own (their own output is still returned):
  /// each node's output from exactly the inputs another engine computed.
  std::vector<torch::Tensor>
  forwardForced(const torch::Tensor &x,
                const std::map<int, torch::Tensor> &forced) const;

  std::vector<Param> &parameters() { return params; }
  const std::vector<Param> &parameters() const { return params; }
  const NetSpec &spec() const { return net; }
  torch::Dtype dtype() const { return type; }
  /// An int8 conv/connected node's integers as the fake quantization uses
  /// them: weights [F, K] (rounded, as floats), the int32 bias [F] (double)
  /// and the weight scales [F].
  struct IntWeights {
    torch::Tensor scales, weights, bias;
  };
  IntWeights intWeights(int i) const;
  /// The grid a node's input k / output uses now (learned or fixed).
  std::optional<QuantGrid> inputGrid(int i, size_t k) const;
  std::optional<QuantGrid> outputGrid(int i) const;
  /// Keeps learned ranges valid (lo <= 0 <= hi, non-empty) after a step.
  void clampRanges();
  /// Writes weights and learned ranges into `spec` (same structure).
  void exportTo(NetSpec &spec) const;

private:
  struct NodeTensors {
    torch::Tensor weight, bias, bnScale, bnBias, bnMean, bnVariance;
    torch::Tensor reorgIndex;
  };
  torch::Tensor input(const std::vector<torch::Tensor> &outs,
                      const torch::Tensor &x, int node, size_t k) const;
  torch::Tensor runNode(int i, const std::vector<torch::Tensor> &outs,
                        const torch::Tensor &x) const;
  torch::Tensor conv(const Node &n, const torch::Tensor &in,
                     const torch::Tensor &w, const torch::Tensor &b) const;
  torch::Tensor foldedBatchNorm(int i, const torch::Tensor &in) const;
  torch::Tensor connected(const Node &n, const NodeTensors &t,
                          const torch::Tensor &in, int i) const;
  torch::Tensor dataMovement(const Node &n, int i,
                             const std::vector<torch::Tensor> &ins) const;
  torch::Tensor head(const Node &n, const torch::Tensor &in) const;
  /// The weight and bias a layer computes with (fake-quantized if int8).
  std::pair<torch::Tensor, torch::Tensor> effectiveWeights(int i) const;
  /// Fake quantization of an activation on grid `g` (or learned group).
  torch::Tensor fakeQuant(const torch::Tensor &x, QuantGrid g, int group) const;
  QuantGrid currentGrid(QuantGrid fixed, int group) const;
  torch::Tensor toHalfSte(const torch::Tensor &x) const;
  void addParam(torch::Tensor t, int node, Role role, const std::string &what);

  NetSpec net; // structure only: weight vectors are moved into tensors
  ViewOptions opts;
  torch::Dtype type;
  std::vector<NodeTensors> tensors;
  std::vector<torch::Tensor> rangeLo, rangeHi;
  std::vector<int> lastUse;
  /// Convolutions computed by the batch norm that follows them.
  std::vector<bool> foldedIntoNext;
  std::vector<Param> params;
};

/// Darknet's activation `a` on x (DARKNET.md §4.0), differentiable.
torch::Tensor activate(const torch::Tensor &x, Act a, Flavor flavor);

/// rt::roundHalfAwayFromZero in x's precision: trunc(x ± 0.5).
torch::Tensor roundHalfAway(const torch::Tensor &x);

} // namespace qsim::train

#endif
