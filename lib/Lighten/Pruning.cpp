//===- Pruning.cpp - structured and unstructured pruning -----------------===//

#include "qsim/Lighten/Pruning.h"
#include "qsim/Dialect/QSim/IR/LayerStats.h"
#include "qsim/Lighten/ChannelGroups.h"
#include "qsim/Support/StringUtils.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/Verifier.h"

#include <algorithm>
#include <cmath>
#include <numeric>

using namespace mlir;
using namespace qsim;
using namespace qsim::lighten;

LogicalResult qsim::lighten::refreshResultTypes(func::FuncOp func) {
  for (Operation &op : func.getBody().front()) {
    if (op.hasTrait<OpTrait::IsTerminator>()) {
      func.setFunctionType(FunctionType::get(
          func.getContext(), func.getArgumentTypes(), op.getOperandTypes()));
      continue;
    }
    auto layer = dyn_cast<LayerOpInterface>(op);
    if (!layer) {
      // Casts keep their operand's shape.
      if (op.getNumOperands() == 1 && op.getNumResults() == 1) {
        auto in = cast<ShapedType>(op.getOperand(0).getType());
        auto outT = cast<ShapedType>(op.getResult(0).getType());
        op.getResult(0).setType(
            RankedTensorType::get(in.getShape(), outT.getElementType()));
      }
      continue;
    }
    auto shape = layer.inferOutputShape();
    if (failed(shape))
      return failure();
    Type el = getElementTypeOrSelf(op.getResult(0).getType());
    op.getResult(0).setType(RankedTensorType::get(*shape, el));
  }
  return success();
}

namespace {

/// Keeps rows (dimension 0) and/or columns (dimension 1, in blocks of
/// `inner` values) of a float weight.
ElementsAttr select(MLIRContext *ctx, ElementsAttr attr,
                    const std::vector<char> &rows,
                    const std::vector<char> &cols, StringRef name) {
  std::vector<float> v = getFloats(attr);
  auto shape = llvm::to_vector(attr.getShapedType().getShape());
  int64_t r = shape[0];
  int64_t c = shape.size() > 1 ? shape[1] : 1;
  int64_t inner = 1;
  for (size_t i = 2; i < shape.size(); ++i)
    inner *= shape[i];
  // Columns may be given per channel of a flattened C*H*W input.
  int64_t colBlock = cols.empty() ? 1 : (c / (int64_t)cols.size());
  std::vector<float> out;
  int64_t keptRows = 0, keptCols = 0;
  for (int64_t i = 0; i < r; ++i) {
    if (!rows.empty() && !rows[i])
      continue;
    ++keptRows;
    keptCols = 0;
    for (int64_t j = 0; j < c; ++j) {
      if (!cols.empty() && !cols[j / colBlock])
        continue;
      ++keptCols;
      out.insert(out.end(), v.begin() + (i * c + j) * inner,
                 v.begin() + (i * c + j + 1) * inner);
    }
  }
  shape[0] = keptRows;
  if (shape.size() > 1)
    shape[1] = keptCols;
  return makeFloatAttr(ctx, shape, name, out);
}

int64_t count(const std::vector<char> &mask) {
  return std::count(mask.begin(), mask.end(), 1);
}

/// A float model with weights to rank.
LogicalResult checkPrunable(ArrayRef<Layer> layers) {
  for (const Layer &l : layers)
    if (!isFloatElement(getElementTypeOrSelf(l.head->getResult(0).getType())))
      return l.head->emitError() << describeLayer(l.head)
                                 << ": prune the float model (before "
                                    "--qsim-quantize)";
  for (const Layer &l : layers)
    if (isa<Conv2DOp, ConnectedOp>(l.head) &&
        !l.head->getAttrOfType<ElementsAttr>("weight"))
      return l.head->emitError() << describeLayer(l.head)
                                 << ": has no weights to rank (a shape-only "
                                    "model)";
  return success();
}

/// What pruning changed in one layer (a line of the report).
struct PrunedLayer {
  int64_t layer;
  std::string kind;
  int64_t filtersBefore, filtersAfter, inputsBefore, inputsAfter;
};

/// Chooses the filters to remove and removes them with the input channels
/// that consume them.
class ChannelPruner {
public:
  ChannelPruner(ArrayRef<Layer> layers, const ChannelGroups &groups,
                const ChannelPruneOptions &o)
      : groups(groups), o(o) {
    for (const Layer &l : layers) {
      layerOf[l.head] = l.index;
      if (l.batchNorm)
        bnOf[l.head] = l.batchNorm;
    }
  }
  /// Per component (the classes of coupled channels that share their source
  /// convolutions), the `ratio` least important classes, rounded so that
  /// `roundTo` divides what remains.
  void chooseRemovedFilters();
  /// Removes the chosen filters, and the input channels they fed, from the
  /// weights, biases and batch norms of `func`'s ops.
  std::vector<PrunedLayer> removeChosen(func::FuncOp func);

private:
  /// Importance of each filter of a conv2d/connected op, cached.
  const std::vector<double> &filterImportance(Operation *op);
  /// Which channels of `v` stay.
  std::vector<char> keepMask(Value v) const;

  const ChannelGroups &groups;
  const ChannelPruneOptions &o;
  llvm::DenseMap<Operation *, int64_t> layerOf;
  llvm::DenseMap<Operation *, BatchNormOp> bnOf;
  llvm::DenseMap<Operation *, std::vector<double>> importance;
  /// Union-find roots of the removed channels.
  std::set<int> removedRoots;
};

const std::vector<double> &ChannelPruner::filterImportance(Operation *op) {
  auto it = importance.find(op);
  if (it != importance.end())
    return it->second;
  std::vector<float> w = getFloats(op->getAttrOfType<ElementsAttr>("weight"));
  int64_t f = cast<ShapedType>(op->getResult(0).getType()).getDimSize(1);
  int64_t per = w.size() / f;
  std::vector<double> imp(f, 0.0);
  BatchNormOp bn = bnOf.lookup(op);
  std::vector<float> gamma;
  if (o.criterion == PruneCriterion::BNGamma && bn && bn.getScale())
    gamma = getFloats(*bn.getScale());
  for (int64_t i = 0; i < f; ++i) {
    if (!gamma.empty()) {
      imp[i] = std::fabs(gamma[i]);
      continue;
    }
    double s = 0;
    for (int64_t k = 0; k < per; ++k) {
      double x = w[i * per + k];
      s += o.criterion == PruneCriterion::L2 ? x * x : std::fabs(x);
    }
    imp[i] = o.criterion == PruneCriterion::L2 ? std::sqrt(s) : s;
  }
  return importance[op] = imp;
}

void ChannelPruner::chooseRemovedFilters() {
  // Components: the classes sharing the same set of source convolutions.
  std::map<std::vector<Operation *>, std::vector<std::vector<FilterRef>>> comps;
  for (auto &cls : groups.prunableClasses()) {
    std::vector<Operation *> sources;
    bool allowed = true;
    for (const FilterRef &r : cls) {
      sources.push_back(r.source);
      if (!o.layers.empty() && !o.layers.count(layerOf.lookup(r.source)))
        allowed = false;
    }
    if (!allowed)
      continue;
    std::sort(sources.begin(), sources.end());
    sources.erase(std::unique(sources.begin(), sources.end()), sources.end());
    comps[sources].push_back(cls);
  }
  std::set<std::pair<Operation *, int64_t>> removed;
  for (auto &[sources, classes] : comps) {
    int64_t n = classes.size();
    int64_t keep = n - (int64_t)std::floor(o.ratio * n);
    if (o.roundTo > 1)
      keep = (keep + o.roundTo - 1) / o.roundTo * o.roundTo;
    keep = std::max<int64_t>(1, std::min(keep, n));
    std::vector<std::pair<double, size_t>> ranked;
    for (size_t k = 0; k < classes.size(); ++k) {
      double imp = 0;
      for (const FilterRef &r : classes[k])
        imp += filterImportance(r.source)[r.channel];
      ranked.push_back({imp, k});
    }
    std::stable_sort(ranked.begin(), ranked.end());
    for (int64_t k = 0; k < n - keep; ++k)
      for (const FilterRef &r : classes[ranked[k].second])
        removed.insert({r.source, r.channel});
  }
  for (size_t e = 1; e < groups.numElements(); ++e) {
    const FilterRef &r = groups.element(e);
    if (r.source && removed.count({r.source, r.channel}))
      removedRoots.insert(groups.find(e));
  }
}

std::vector<char> ChannelPruner::keepMask(Value v) const {
  const std::vector<int> &ch = groups.channels(v);
  std::vector<char> m(ch.size(), 1);
  for (size_t c = 0; c < ch.size(); ++c)
    if (removedRoots.count(groups.find(ch[c])))
      m[c] = 0;
  return m;
}

std::vector<PrunedLayer> ChannelPruner::removeChosen(func::FuncOp func) {
  MLIRContext *ctx = func.getContext();
  std::vector<PrunedLayer> changes;
  for (Operation &opRef : func.getBody().front()) {
    Operation *op = &opRef;
    std::string base = "layer" + std::to_string(layerOf.lookup(op)) + "_pruned";
    if (auto conv = dyn_cast<Conv2DOp>(op)) {
      std::vector<char> outMask = keepMask(conv.getResult());
      std::vector<char> inMask = keepMask(conv.getInput());
      int64_t before = conv.getFilters(), after = count(outMask);
      if (conv.isDepthwise()) {
        op->setAttr("weight", select(ctx, *conv.getWeight(), outMask, {},
                                     base + "_weight"));
        conv.setGroups(after);
      } else if (conv.getGroups() == 1) {
        op->setAttr("weight", select(ctx, *conv.getWeight(), outMask, inMask,
                                     base + "_weight"));
      } else {
        continue; // grouped convolutions are fixed by the analysis
      }
      if (conv.getBias())
        op->setAttr("bias",
                    select(ctx, *conv.getBias(), outMask, {}, base + "_bias"));
      conv.setFilters(after);
      if (after != before || count(inMask) != (int64_t)inMask.size())
        changes.push_back({layerOf.lookup(op), "convolutional", before, after,
                           (int64_t)inMask.size(), count(inMask)});
    } else if (auto fc = dyn_cast<ConnectedOp>(op)) {
      std::vector<char> inMask = keepMask(fc.getInput());
      if (count(inMask) != (int64_t)inMask.size()) {
        op->setAttr("weight",
                    select(ctx, *fc.getWeight(), {}, inMask, base + "_weight"));
        changes.push_back({layerOf.lookup(op), "connected", fc.getOutputSize(),
                           fc.getOutputSize(), (int64_t)inMask.size(),
                           count(inMask)});
      }
    } else if (auto bn = dyn_cast<BatchNormOp>(op)) {
      std::vector<char> m = keepMask(bn.getInput());
      if (count(m) == (int64_t)m.size() || !bn.getScale())
        continue;
      for (StringRef name : {"scale", "mean", "variance", "bias"})
        op->setAttr(name, select(ctx, op->getAttrOfType<ElementsAttr>(name), m,
                                 {}, base + "_bn_" + name.str()));
    }
  }
  return changes;
}

void printPruneReport(const ChannelPruneOptions &o,
                      ArrayRef<PrunedLayer> changes, const ModelStats &before,
                      ModuleOp module, raw_ostream &report) {
  auto after = computeModelStats(module);
  report << strprintf("channel pruning: ratio %g, %s, round-to %lld\n", o.ratio,
                      o.criterion == PruneCriterion::L1   ? "l1"
                      : o.criterion == PruneCriterion::L2 ? "l2"
                                                          : "bn-gamma",
                      (long long)o.roundTo);
  report << strprintf("%5s  %-15s %15s %15s\n", "layer", "type", "filters",
                      "input channels");
  for (const PrunedLayer &c : changes)
    report << strprintf("%5lld  %-15s %6lld -> %-6lld %6lld -> %-6lld\n",
                        (long long)c.layer, c.kind.c_str(),
                        (long long)c.filtersBefore, (long long)c.filtersAfter,
                        (long long)c.inputsBefore, (long long)c.inputsAfter);
  if (changes.empty() && o.ratio > 0)
    report << "note: no channel removed (the ratio is too small for "
              "round-to, or no layer is prunable)\n";
  if (succeeded(after))
    report << strprintf("MACs %lld -> %lld (%.1f%%), parameters %lld -> %lld "
                        "(%.1f%%)\n",
                        (long long)before.macs, (long long)after->macs,
                        100.0 * after->macs / std::max<int64_t>(before.macs, 1),
                        (long long)before.params, (long long)after->params,
                        100.0 * after->params /
                            std::max<int64_t>(before.params, 1));
}

} // namespace

LogicalResult qsim::lighten::pruneChannels(ModuleOp module,
                                           const ChannelPruneOptions &o,
                                           raw_ostream *report) {
  func::FuncOp func = getMainFunc(module);
  if (!func)
    return module.emitError() << "no main function";
  if (o.ratio < 0 || o.ratio >= 1)
    return module.emitError() << "prune ratio must be in [0, 1)";
  auto before = computeModelStats(module);
  auto layers = getLayers(func);
  if (failed(before) || failed(layers) || failed(checkPrunable(*layers)))
    return failure();
  auto groups = ChannelGroups::analyze(func);
  if (failed(groups))
    return failure();
  ChannelPruner pruner(*layers, *groups, o);
  pruner.chooseRemovedFilters();
  std::vector<PrunedLayer> changes = pruner.removeChosen(func);
  if (failed(refreshResultTypes(func)) || failed(verify(module)))
    return failure();
  if (report)
    printPruneReport(o, changes, *before, module, *report);
  return success();
}

LogicalResult qsim::lighten::pruneMagnitude(ModuleOp module, double sparsity,
                                            const std::set<int64_t> &layerSet,
                                            raw_ostream *report) {
  func::FuncOp func = getMainFunc(module);
  if (!func)
    return module.emitError() << "no main function";
  if (sparsity < 0 || sparsity >= 1)
    return module.emitError() << "sparsity must be in [0, 1)";
  auto layers = getLayers(func);
  if (failed(layers))
    return failure();
  Builder b(module.getContext());
  for (const Layer &l : *layers) {
    if (!isa<Conv2DOp, ConnectedOp>(l.head) ||
        (!layerSet.empty() && !layerSet.count(l.index)))
      continue;
    auto attr = l.head->getAttrOfType<ElementsAttr>("weight");
    if (!attr)
      return l.head->emitError() << describeLayer(l.head)
                                 << ": has no weights (a shape-only model)";
    if (!isFloatElement(attr.getShapedType().getElementType()) ||
        !isFloatElement(getElementTypeOrSelf(l.head->getResult(0).getType())))
      return l.head->emitError() << describeLayer(l.head)
                                 << ": prune the float model (before "
                                    "--qsim-quantize)";
    std::vector<float> w = getFloats(attr);
    std::vector<size_t> order(w.size());
    std::iota(order.begin(), order.end(), 0);
    size_t k = (size_t)std::floor(sparsity * w.size());
    std::nth_element(order.begin(), order.begin() + k, order.end(),
                     [&](size_t a, size_t c) {
                       return std::fabs(w[a]) < std::fabs(w[c]) ||
                              (std::fabs(w[a]) == std::fabs(w[c]) && a < c);
                     });
    for (size_t i = 0; i < k; ++i)
      w[order[i]] = 0.0f;
    l.head->setAttr(
        "weight",
        makeFloatAttr(module.getContext(), attr.getShapedType().getShape(),
                      "layer" + std::to_string(l.index) + "_sparse", w));
    l.head->setAttr("qsim.sparsity", b.getF64FloatAttr(sparsity));
    if (report)
      *report << strprintf("layer %lld (%s): %zu of %zu weights zeroed\n",
                           (long long)l.index, l.kind().str().c_str(), k,
                           w.size());
  }
  return success();
}
