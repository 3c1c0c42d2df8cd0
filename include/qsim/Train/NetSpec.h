//===- NetSpec.h - a qsim module as plain data for training -----*- C++ -*-===//
//
// The bridge between the IR and libtorch: lib/Train reads a module into a
// NetSpec (one node per qsim op, weights as float vectors, the int8 grid of
// every quantized value), the torch view is built from the NetSpec, and the
// trained NetSpec is written back into the same module. The header holds no
// MLIR and no torch types, so that the translation units on either side
// never include the other's headers (libtorch needs RTTI, LLVM has none).
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_TRAIN_NETSPEC_H
#define QSIM_TRAIN_NETSPEC_H

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace qsim::train {

enum class NodeKind {
  Conv,
  Connected,
  BatchNorm,
  Activation,
  MaxPool,
  AvgPool,
  Route,
  Shortcut,
  Upsample,
  Reorg,
  ScaleChannels,
  Softmax,
  Dropout,
  Yolo,
  Region,
};
const char *nodeKindName(NodeKind k);

/// Darknet's activations (DARKNET.md §4.0), in the dialect's order.
enum class Act {
  Linear,
  Logistic,
  Loggy,
  Relu,
  Relu6,
  Leaky,
  Relie,
  Ramp,
  Elu,
  Selu,
  Gelu,
  Tanh,
  Plse,
  Hardtan,
  Lhtan,
  Stair,
  Swish,
  Mish,
  HardMish,
  NormalizeChannels,
  NormalizeChannelsSoftmax,
  NormalizeChannelsSoftmaxMaxval,
};

/// The int8 grid of a value: real = scale * (q - zeroPoint), q in
/// [-128, 127] (QuantMath.h).
struct QuantGrid {
  float scale = 1.0f;
  int32_t zeroPoint = 0;
};

/// How an activation grid is derived when it is learned (LSQ): exactly as
/// rt::chooseQuantParams derives it from a calibrated range [lo, hi].
struct GridRule {
  bool symmetric = false;
  bool pow2 = false;
};

struct Shape3 {
  int64_t c = 0, h = 0, w = 0;
  int64_t size() const { return c * h * w; }
};

/// One qsim op of the network.
struct Node {
  NodeKind kind = NodeKind::Conv;
  /// The Darknet layer this op belongs to and its label for messages
  /// ("layer 12 (convolutional)").
  int64_t layer = 0;
  std::string label;
  /// Producers: node indices, -1 for the network input.
  std::vector<int> inputs;
  Shape3 out;
  Act act = Act::Linear;

  // conv2d / connected
  int64_t filters = 0, kh = 1, kw = 1, sy = 1, sx = 1, py = 0, px = 0;
  int64_t groups = 1, dilation = 1;
  std::vector<float> weight, bias; // bias empty: none
  // batchnorm (scale, rolling mean and variance, bias)
  std::vector<float> bnScale, bnMean, bnVariance, bnBias;
  // maxpool (size, sy, sx, padding = Darknet's total padding)
  int64_t poolSize = 1, poolPadding = 0;
  // upsample / reorg
  int64_t stride = 1;
  float upsampleScale = 1.0f;
  bool reverse = false;
  // route
  int64_t groupId = 0;
  // scale_channels
  bool scaleWH = false;
  // softmax
  float temperature = 1.0f;
  // yolo / region
  int64_t classes = 0, num = 0, coords = 4;
  std::vector<int64_t> mask;
  std::vector<float> anchors;
  float scaleXY = 1.0f;
  bool newCoords = false, softmax = false;
  /// The layer's training-only cfg keys (`qsim.cfg`: ignore_thresh,
  /// iou_loss, jitter, ...), as written in the cfg.
  std::map<std::string, std::string> cfg;

  // Quantization (empty for float layers).
  /// int8 layer reading a float producer (or the network input): the grid
  /// of the quant.qcast in between (the producer's calibrated range);
  /// nullopt where the producer is int8 already.
  std::vector<std::optional<QuantGrid>> inputGrids;
  /// int8 layer: the grid of its output (data movement keeps its input's).
  std::optional<QuantGrid> outputGrid;
  /// int8 conv, connected, route and shortcut round their output to
  /// outputGrid; max pooling, upsampling, reorg, dropout and a plain
  /// one-input route only move values already on it.
  bool requantizes = false;
  /// Learned ranges (LSQ): the group of outputGrid and of each inputGrid,
  /// -1 where the grid is fixed.
  int outputGroup = -1;
  std::vector<int> inputGroups;
  /// int8 conv/connected: weight scales per output channel (equal for a
  /// per-tensor scale). Fixed: used as they are; else recomputed from the
  /// weights on every forward as --qsim-quantize does (max |w| / 127).
  std::vector<float> weightScales;
  bool fixedWeightScales = false;
  bool perChannelWeights = true;
  bool pow2WeightScales = false;
  /// fp16 layer: weights and outputs rounded to binary16.
  bool fp16 = false;

  bool hasWeights() const {
    return kind == NodeKind::Conv || kind == NodeKind::Connected ||
           kind == NodeKind::BatchNorm;
  }
  bool isInt8() const { return outputGrid.has_value(); }
};

enum class Flavor { AlexeyAB, PJReddie };

/// A learned activation range (LSQ): the calibrated range of `members`
/// (node indices, -1 = the network input), which --qsim-quantize turns into
/// one grid. The values an int8 route concatenates share the route's group,
/// so that the quantizer's range unification leaves the learned range alone.
struct GridGroup {
  float lo = 0, hi = 0;
  GridRule rule;
  std::vector<int> members;
};

struct NetSpec {
  Flavor flavor = Flavor::AlexeyAB;
  Shape3 input;
  std::vector<Node> nodes;
  /// Nodes whose values are the function results, in order.
  std::vector<int> outputs;
  /// Node holding each Darknet layer's output (index = layer).
  std::vector<int> layerOutputs;
  std::vector<GridGroup> gridGroups;
  /// The cfg's [net] keys (`qsim.net`: learning_rate, burn_in, hue, ...).
  std::map<std::string, std::string> net;
  bool letterBox = false;
  bool quantized() const;
};

/// The grid rt::chooseQuantParams picks for [lo, hi] under `rule`.
QuantGrid gridFromRange(float lo, float hi, GridRule rule);
/// A range [lo, hi] for which gridFromRange gives exactly `g` (searched
/// ulp by ulp when the plain inverse rounds elsewhere).
std::pair<float, float> rangeForGrid(QuantGrid g, GridRule rule);

/// A cfg value as a number, or `fallback` when absent or malformed.
double cfgNumber(const std::map<std::string, std::string> &cfg,
                 const std::string &key, double fallback);

} // namespace qsim::train

#endif
