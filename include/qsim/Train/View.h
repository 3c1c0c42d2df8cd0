//===- View.h - the torch view of a network, without torch types -*- C++
//-*-===//
//
// The torch module lib/Train builds from a NetSpec, behind an interface of
// plain vectors so that callers (the MLIR side of lib/Train, the tests)
// need neither torch headers nor RTTI. Values are N x C x H x W, row-major.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_TRAIN_VIEW_H
#define QSIM_TRAIN_VIEW_H

#include "qsim/Train/NetSpec.h"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace qsim::train {

struct ViewOptions {
  /// int8 and fp16 layers as fake quantization (their own grids); false
  /// runs every layer in float.
  bool fakeQuant = true;
  /// Learn the activation ranges of int8 layers (LSQ, learned step size).
  bool learnRanges = false;
  /// Compute in double (gradient checks against finite differences).
  bool float64 = false;
  /// A batch norm right after a convolution is folded into its weights
  /// for the forward (the same function, one pass over the activations
  /// instead of four); the convolution's own output is then not computed.
  bool foldBatchNorm = true;
  /// Activations in NHWC memory order (oneDNN's native layout).
  bool channelsLast = true;
};

/// N x C x H x W values.
struct Blob {
  int64_t n = 0, c = 0, h = 0, w = 0;
  std::vector<double> data;
};

class NetView {
public:
  /// Fails with `error` naming the layer when a node has no torch form.
  static std::unique_ptr<NetView>
  create(const NetSpec &spec, const ViewOptions &options, std::string &error);
  ~NetView();

  /// The outputs of `nodes` (of every node when empty) for `input`.
  std::vector<Blob> forward(const Blob &input,
                            const std::vector<int> &nodes = {}) const;

  /// The outputs of every node when the nodes of `forced` hand the given
  /// values to their consumers (a layer's error alone, on the inputs
  /// another engine computed).
  std::vector<Blob> forwardForced(const Blob &input,
                                  const std::map<int, Blob> &forced) const;

  /// The trainable tensors: weights, biases, batch-norm scales and biases,
  /// learned range ends.
  size_t numParameters() const;
  std::string parameterName(size_t i) const;
  /// The node the parameter belongs to (-1: a learned range).
  int parameterNode(size_t i) const;
  std::vector<double> parameter(size_t i) const;
  void setParameter(size_t i, const std::vector<double> &values);

  struct Gradients {
    std::vector<std::vector<double>> parameters; // per parameter
    std::vector<double> input;
  };
  /// Gradients of L = sum_k <seeds[k], output of nodes[k]> with respect to
  /// every parameter and to the input.
  Gradients gradient(const Blob &input, const std::vector<int> &nodes,
                     const std::vector<std::vector<double>> &seeds) const;

  /// What the fake quantization of int8 node `node` computes with now: its
  /// int8 weights and int32 bias (conv/connected), the grids of its inputs
  /// and output (--qsim-quantize must produce exactly these).
  struct QuantState {
    std::vector<int8_t> weights;
    std::vector<int32_t> bias;
    std::vector<std::optional<QuantGrid>> inputs;
    std::optional<QuantGrid> output;
  };
  QuantState quantState(int node) const;

  /// Writes the current weights (and learned ranges) into `spec`.
  void exportTo(NetSpec &spec) const;

  struct Impl;

private:
  NetView();
  std::unique_ptr<Impl> impl;
};

/// torch's intra-op threads (0: leave torch's default, all cores).
void setTorchThreads(int threads);

} // namespace qsim::train

#endif
