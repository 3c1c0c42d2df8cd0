//===- ChannelGroups.h - which channels must be pruned together -*- C++ -*-===//
//
// An analysis over a float qsim function: every channel of every value is
// traced to the filter that produces it, and channels that must disappear
// together are unioned:
//   - a shortcut ties its operands' channels (they are added);
//   - a depthwise conv ties its output channel to its input channel;
//   - a route concatenates (channel offsets), and a route with groups=G
//     ties channel i of every group of its input (so slices stay aligned);
//   - scale_channels ties the scale of channel c to feature channel c;
//   - the network input, the function results, the inputs of detection
//     heads, softmax and reorg, grouped (non-depthwise) convolutions and
//     channel-prefix shortcuts are fixed.
// A class of channels is prunable when nothing in it is fixed.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_LIGHTEN_CHANNELGROUPS_H
#define QSIM_LIGHTEN_CHANNELGROUPS_H

#include "qsim/Dialect/QSim/IR/Layers.h"

#include "llvm/ADT/DenseMap.h"

#include <map>
#include <vector>

namespace qsim::lighten {

/// One filter (output channel) of a conv2d or connected op.
struct FilterRef {
  mlir::Operation *source = nullptr; // null: the "fixed" element
  int64_t channel = 0;
};

class ChannelGroups {
public:
  /// Fails (with a diagnostic) on quantized or malformed functions.
  static mlir::FailureOr<ChannelGroups> analyze(mlir::func::FuncOp func);

  /// The classes (lists of filters) that can be pruned.
  std::vector<std::vector<FilterRef>> prunableClasses() const;
  /// Element ids of the channels of `v` (index = channel).
  const std::vector<int> &channels(mlir::Value v) const;
  /// Union-find root of an element.
  int find(int e) const;
  bool isFixed(int e) const { return find(e) == find(0); }
  const FilterRef &element(int e) const { return elements[e]; }
  size_t numElements() const { return elements.size(); }

private:
  int newElement(FilterRef r);
  void unite(int a, int b);
  void fix(const std::vector<int> &ch);
  std::vector<FilterRef> elements;
  mutable std::vector<int> parent;
  llvm::DenseMap<mlir::Value, std::vector<int>> valueChannels;
};

} // namespace qsim::lighten

#endif
