//===- Pruning.cpp - structured and unstructured pruning -----------------===//

#include "qsim/Lighten/Pruning.h"
#include "qsim/Dialect/QSim/IR/LayerStats.h"
#include "qsim/Evaluation/LayerActivations.h"
#include "qsim/Evaluation/ModelMeasures.h"
#include "qsim/Lighten/ChannelGroups.h"
#include "qsim/Runtime/Image.h"
#include "qsim/Support/StringUtils.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/Verifier.h"

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <optional>
#include <random>

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

using Matrix =
    Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// Chooses channels by the output error their removal leaves in the
/// convolutions that consume them once those are refit (ThiNet / He et al.
/// 2017, in the group-OBS form): per consumer, H = X^T X of its input
/// patches on the images and W its weights, scaled by its batch norm so
/// that errors are in normalized units. Removing the columns S of a channel
/// and re-optimizing the others costs tr(W_S [H^-1]_SS^-1 W_S^T); each
/// greedy removal updates W and H^-1 (the OBS compensation), so the next
/// choice sees what the refit will recover.
class ObsChannelSelector {
public:
  static FailureOr<ObsChannelSelector>
  build(ModuleOp module, ArrayRef<Layer> layers, const ChannelGroups &groups,
        const std::vector<rt::Tensor> &inputs, int64_t samplesPerImage);
  /// Indices into `classes` of the `count` classes to remove.
  std::vector<size_t> choose(const std::vector<std::vector<FilterRef>> &classes,
                             int64_t count);

private:
  struct Consumer {
    Matrix w, hinv;
    int64_t taps = 1;
  };
  /// The columns of `channels` in a consumer.
  std::vector<int64_t> columns(const Consumer &c,
                               const std::vector<int64_t> &channels) const;
  double cost(const Consumer &c, const std::vector<int64_t> &channels) const;
  void remove(Consumer &c, const std::vector<int64_t> &channels);
  /// The consumer channels of a class root.
  std::map<int, std::map<size_t, std::vector<int64_t>>> uses;
  std::map<std::pair<Operation *, int64_t>, int> rootOf;
  std::vector<Consumer> consumers;
};

FailureOr<ObsChannelSelector> ObsChannelSelector::build(
    ModuleOp module, ArrayRef<Layer> layers, const ChannelGroups &groups,
    const std::vector<rt::Tensor> &inputs, int64_t samplesPerImage) {
  ObsChannelSelector s;
  for (size_t e = 1; e < groups.numElements(); ++e)
    if (groups.element(e).source)
      s.rootOf[{groups.element(e).source, groups.element(e).channel}] =
          groups.find(e);
  std::map<int64_t, size_t> consumerOf; // layer -> consumer
  std::vector<Conv2DOp> convs;
  for (const Layer &l : layers) {
    auto conv = dyn_cast<Conv2DOp>(l.head);
    if (!conv || conv.getGroups() != 1)
      continue;
    auto g = eval::ConvPatchGeometry::of(conv);
    Consumer c;
    c.taps = g.kh * g.kw;
    int64_t p = g.patchSize(), f = conv.getFilters();
    std::vector<float> w = getFloats(conv.getWeightAttr());
    std::vector<float> scale(f, 1.0f), var(f, 1.0f);
    BatchNormOp bn = l.batchNorm;
    if (bn && bn.getScale() && bn.getVariance())
      scale = getFloats(*bn.getScale()), var = getFloats(*bn.getVariance());
    c.w.resize(f, p);
    for (int64_t i = 0; i < f; ++i)
      for (int64_t k = 0; k < p; ++k)
        c.w(i, k) = w[i * p + k] * scale[i] / std::sqrt(var[i] + 1e-6);
    // One more column than the patch: the consumer's bias (its input is a
    // constant 1, never removed). The refit fits the bias too, so a channel
    // whose activation is nearly constant costs nothing there; without the
    // column the selector would count its mean as lost.
    c.w.conservativeResize(f, p + 1);
    c.w.col(p).setZero();
    c.hinv = Matrix::Zero(c.w.cols(), c.w.cols());
    const std::vector<int> &ch = groups.channels(conv.getInput());
    for (int64_t k = 0; k < g.inC && k < (int64_t)ch.size(); ++k)
      if (!groups.isFixed(ch[k]))
        s.uses[groups.find(ch[k])][s.consumers.size()].push_back(k);
    consumerOf[l.index] = s.consumers.size();
    s.consumers.push_back(std::move(c));
    convs.push_back(conv);
  }
  std::vector<int64_t> indices;
  for (auto &[index, c] : consumerOf)
    indices.push_back(index);
  auto sink = [&](size_t image, int64_t layer,
                  const eval::LayerActivations &a) {
    size_t k = consumerOf.at(layer);
    auto g = eval::ConvPatchGeometry::of(convs[k]);
    std::mt19937_64 rng(layer * 1000003ull + image);
    std::vector<int64_t> pos =
        eval::samplePositions(g.outputPositions(), samplesPerImage, rng);
    std::vector<float> patches;
    eval::appendConvPatches(g, a.inputs[0].f32(), 0, pos, patches);
    int64_t p = g.patchSize(), cols = s.consumers[k].hinv.cols();
    Matrix x = Matrix::Ones(pos.size(), cols);
    for (size_t r = 0; r < pos.size(); ++r)
      for (int64_t j = 0; j < p; ++j)
        x(r, j) = patches[r * p + j];
    s.consumers[k].hinv.selfadjointView<Eigen::Lower>().rankUpdate(
        x.transpose());
  };
  if (failed(eval::recordLayerActivations(module, inputs, indices, sink)))
    return failure();
  for (Consumer &c : s.consumers) {
    Matrix h = c.hinv.selfadjointView<Eigen::Lower>();
    // SparseGPT's dampening: 1 % of the mean diagonal (dead inputs too).
    int64_t p = h.rows() - 1; // not the bias's column
    h.diagonal().array() += 0.01 * std::max(h.diagonal().head(p).mean(), 1e-12);
    c.hinv = h.ldlt().solve(Matrix::Identity(h.rows(), h.cols()));
  }
  return s;
}

std::vector<int64_t>
ObsChannelSelector::columns(const Consumer &c,
                            const std::vector<int64_t> &channels) const {
  std::vector<int64_t> cols;
  for (int64_t ch : channels)
    for (int64_t t = 0; t < c.taps; ++t)
      cols.push_back(ch * c.taps + t);
  return cols;
}

double ObsChannelSelector::cost(const Consumer &c,
                                const std::vector<int64_t> &channels) const {
  std::vector<int64_t> cols = columns(c, channels);
  Matrix hs = c.hinv(cols, cols);
  Matrix ws = c.w(Eigen::all, cols);
  Matrix x = hs.ldlt().solve(ws.transpose());
  return ws.transpose().cwiseProduct(x).sum();
}

void ObsChannelSelector::remove(Consumer &c,
                                const std::vector<int64_t> &channels) {
  std::vector<int64_t> cols = columns(c, channels);
  Matrix hs = c.hinv(cols, cols);
  Matrix k = hs.ldlt().solve(Matrix::Identity(hs.rows(), hs.cols()));
  Matrix rows = c.hinv(cols, Eigen::all); // [H^-1]_S,:
  Matrix kRows = k * rows;
  c.w -= c.w(Eigen::all, cols) * kRows;
  c.hinv -= rows.transpose() * kRows;
  c.w(Eigen::all, cols).setZero();
  c.hinv(cols, Eigen::all).setZero();
  c.hinv(Eigen::all, cols).setZero();
}

std::vector<size_t>
ObsChannelSelector::choose(const std::vector<std::vector<FilterRef>> &classes,
                           int64_t count) {
  std::vector<int> roots;
  for (const auto &cls : classes)
    roots.push_back(rootOf.at({cls[0].source, cls[0].channel}));
  std::vector<char> gone(classes.size(), 0);
  std::vector<size_t> out;
  for (int64_t step = 0; step < count; ++step) {
    double best = INFINITY;
    size_t pick = 0;
    for (size_t k = 0; k < classes.size(); ++k) {
      if (gone[k])
        continue;
      double e = 0;
      for (auto &[consumer, channels] : uses[roots[k]])
        e += cost(consumers[consumer], channels);
      if (e < best)
        best = e, pick = k;
    }
    gone[pick] = 1;
    out.push_back(pick);
    for (auto &[consumer, channels] : uses[roots[pick]])
      remove(consumers[consumer], channels);
  }
  return out;
}

/// What pruning changed in one layer (a line of the report).
struct PrunedLayer {
  int64_t layer;
  std::string kind;
  int64_t filtersBefore, filtersAfter, inputsBefore, inputsAfter;
  /// Convolutions: the original index of each remaining filter.
  std::vector<int64_t> keptFilters;
  bool grouped = false;
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
  /// Ranks by these per-filter importances instead of the weights.
  void setImportance(llvm::DenseMap<Operation *, std::vector<double>> given) {
    importance = std::move(given);
  }
  /// Chooses greedily by the consumers' refit error instead of ranking.
  void setSelector(ObsChannelSelector *s) { selector = s; }

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
  ObsChannelSelector *selector = nullptr;
};

const std::vector<double> &ChannelPruner::filterImportance(Operation *op) {
  auto it = importance.find(op);
  if (it != importance.end())
    return it->second;
  if (o.criterion == PruneCriterion::Contribution) // consumed by nothing
    return importance[op] = std::vector<double>(
               cast<ShapedType>(op->getResult(0).getType()).getDimSize(1), 0);
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
    std::vector<size_t> drop;
    if (selector) {
      drop = selector->choose(classes, n - keep);
    } else {
      std::vector<std::pair<double, size_t>> ranked;
      for (size_t k = 0; k < classes.size(); ++k) {
        double imp = 0;
        for (const FilterRef &r : classes[k])
          imp += filterImportance(r.source)[r.channel];
        ranked.push_back({imp, k});
      }
      std::stable_sort(ranked.begin(), ranked.end());
      for (int64_t k = 0; k < n - keep; ++k)
        drop.push_back(ranked[k].second);
    }
    for (size_t k : drop)
      for (const FilterRef &r : classes[k])
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
      bool inputsKept = count(inMask) == (int64_t)inMask.size();
      // The kept channels' batch-norm statistics still hold when only
      // output channels go; fewer inputs change what every channel sees.
      if (std::optional<BatchNormStats> st = getBatchNormStats(op);
          st && inputsKept && after != before) {
        BatchNormStats kept;
        for (int64_t f = 0; f < before; ++f)
          if (outMask[f]) {
            kept.mean.push_back(st->mean[f]);
            kept.std.push_back(st->std[f]);
          }
        setBatchNormStats(op, kept);
      } else if (!inputsKept) {
        dropBatchNormStats(op);
      }
      if (after == before && inputsKept)
        continue;
      PrunedLayer c{layerOf.lookup(op),     "convolutional", before, after,
                    (int64_t)inMask.size(), count(inMask),   {},     false};
      for (int64_t f = 0; f < before; ++f)
        if (outMask[f])
          c.keptFilters.push_back(f);
      c.grouped = conv.getGroups() != 1;
      changes.push_back(std::move(c));
    } else if (auto fc = dyn_cast<ConnectedOp>(op)) {
      std::vector<char> inMask = keepMask(fc.getInput());
      if (count(inMask) != (int64_t)inMask.size()) {
        op->setAttr("weight",
                    select(ctx, *fc.getWeight(), {}, inMask, base + "_weight"));
        dropBatchNormStats(op);
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

const char *criterionName(PruneCriterion c) {
  switch (c) {
  case PruneCriterion::L1:
    return "l1";
  case PruneCriterion::L2:
    return "l2";
  case PruneCriterion::BNGamma:
    return "bn-gamma";
  case PruneCriterion::Contribution:
    return "contribution";
  case PruneCriterion::Reconstruction:
    return "reconstruction";
  }
  return "?";
}

void printPruneReport(const ChannelPruneOptions &o,
                      ArrayRef<PrunedLayer> changes, const ModelStats &before,
                      ModuleOp module, raw_ostream &report) {
  auto after = computeModelStats(module);
  report << strprintf("channel pruning: ratio %g, %s, round-to %lld\n", o.ratio,
                      criterionName(o.criterion), (long long)o.roundTo);
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

/// Each producer filter's contribution to the outputs of the convolutions
/// that consume it on `inputs`: sum over consumers of E[x_c^2] (the mean
/// square of the consumer's input channel) times ||W[:, c]||^2 (the
/// weights that read it). Channels are followed through routes, pools and
/// shortcuts by the coupling analysis.
FailureOr<llvm::DenseMap<Operation *, std::vector<double>>>
channelContributions(ModuleOp module, ArrayRef<Layer> layers,
                     const ChannelGroups &groups,
                     const std::vector<rt::Tensor> &inputs) {
  std::map<int64_t, Conv2DOp> convs;
  for (const Layer &l : layers)
    if (auto conv = dyn_cast<Conv2DOp>(l.head))
      convs[l.index] = conv;
  std::map<int64_t, std::vector<double>> meanSquares;
  auto sink = [&](size_t, int64_t layer, const eval::LayerActivations &a) {
    const rt::Tensor &x = a.inputs[0];
    std::vector<double> &ms = meanSquares[layer];
    ms.resize(x.c(), 0.0);
    int64_t hw = x.h() * x.w();
    for (int64_t c = 0; c < x.c(); ++c) {
      double s = 0;
      for (int64_t i = 0; i < hw; ++i)
        s += (double)x.f32()[c * hw + i] * x.f32()[c * hw + i];
      ms[c] += s / hw / inputs.size();
    }
  };
  std::vector<int64_t> indices;
  for (auto &[index, conv] : convs)
    indices.push_back(index);
  if (failed(eval::recordLayerActivations(module, inputs, indices, sink)))
    return failure();
  llvm::DenseMap<Operation *, std::vector<double>> importance;
  for (auto &[index, conv] : convs) {
    std::vector<float> w = getFloats(conv.getWeightAttr());
    int64_t f = conv.getFilters(), c = conv.getInputChannels();
    int64_t groups_ = conv.getGroups(), cpg = c / groups_, fpg = f / groups_;
    int64_t taps = w.size() / (f * cpg);
    const std::vector<int> &elements = groups.channels(conv.getInput());
    for (int64_t ch = 0; ch < c && ch < (int64_t)elements.size(); ++ch) {
      const FilterRef &r = groups.element(elements[ch]);
      if (!r.source)
        continue;
      int64_t g = ch / cpg, local = ch % cpg;
      double norm = 0;
      for (int64_t fi = g * fpg; fi < (g + 1) * fpg; ++fi)
        for (int64_t k = 0; k < taps; ++k) {
          double v = w[(fi * cpg + local) * taps + k];
          norm += v * v;
        }
      std::vector<double> &imp = importance[r.source];
      imp.resize(
          cast<ShapedType>(r.source->getResult(0).getType()).getDimSize(1),
          0.0);
      imp[r.channel] += meanSquares[index][ch] * norm;
    }
  }
  return importance;
}

/// Refits the convolutions that lost input channels to `original`'s
/// outputs on the options' images, and reports each fit.
LogicalResult reconstructPruned(ModuleOp module, ModuleOp original,
                                const std::vector<rt::Tensor> &inputs,
                                ArrayRef<PrunedLayer> changes,
                                const ChannelPruneOptions &o,
                                raw_ostream *report) {
  std::map<int64_t, std::vector<int64_t>> kept;
  for (const PrunedLayer &c : changes)
    if (c.kind == "convolutional" && !c.grouped &&
        c.inputsAfter < c.inputsBefore)
      kept[c.layer] = c.keptFilters;
  if (o.refitDownstream && !changes.empty()) {
    // Every later convolution sees inputs that differ from the original's
    // (the refits are not exact): refit those too, to the original's own
    // output, so that the error does not accumulate towards the heads.
    std::map<int64_t, std::vector<int64_t>> keptByLayer;
    for (const PrunedLayer &c : changes)
      keptByLayer[c.layer] = c.keptFilters;
    int64_t first = changes.front().layer;
    auto layers = getLayers(getMainFunc(module));
    if (failed(layers))
      return failure();
    for (const Layer &l : *layers) {
      auto conv = dyn_cast<Conv2DOp>(l.head);
      if (!conv || l.index <= first || conv.getGroups() != 1 ||
          kept.count(l.index))
        continue;
      auto it = keptByLayer.find(l.index);
      if (it != keptByLayer.end()) {
        kept[l.index] = it->second;
        continue;
      }
      std::vector<int64_t> all(conv.getFilters());
      for (int64_t f = 0; f < conv.getFilters(); ++f)
        all[f] = f;
      kept[l.index] = std::move(all);
    }
  }
  std::vector<ReconstructedLayer> fits;
  if (failed(reconstructPrunedConvs(module, original, inputs, kept,
                                    o.reconstruct, fits)))
    return failure();
  if (!report)
    return success();
  *report << strprintf("reconstruction on %zu images (%lld positions each): "
                       "relative output error of the refit layers\n",
                       inputs.size(), (long long)o.reconstruct.samplesPerImage);
  for (const ReconstructedLayer &f : fits)
    *report << strprintf("%5lld  %.4f -> %.4f%s\n", (long long)f.layer,
                         f.errorBefore, f.errorAfter,
                         f.errorAfter < f.errorBefore ? ""
                                                      : "  (kept: no better)");
  return success();
}

} // namespace

LogicalResult qsim::lighten::pruneChannels(ModuleOp module,
                                           const ChannelPruneOptions &options,
                                           raw_ostream *report) {
  ChannelPruneOptions o = options; // the positions per image once known
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
  if ((o.criterion == PruneCriterion::Contribution ||
       o.criterion == PruneCriterion::Reconstruction) &&
      o.images.empty())
    return module.emitError()
           << "criterion=" << criterionName(o.criterion)
           << " needs images= (the channels are chosen by their effect on "
              "the consumers on those images)";
  // The images (read once) and the original, for ranking and refitting.
  OwningOpRef<ModuleOp> original;
  std::vector<rt::Tensor> inputs;
  if (!o.images.empty()) {
    original = module.clone();
    if (failed(loadRefitImages(module, o.images, o.maxImages, inputs)))
      return failure();
    o.reconstruct.samplesPerImage =
        o.reconstruct.positionsPerImage(inputs.size());
  }
  ChannelPruner pruner(*layers, *groups, o);
  if (o.criterion == PruneCriterion::Contribution) {
    auto importance = channelContributions(module, *layers, *groups, inputs);
    if (failed(importance))
      return failure();
    pruner.setImportance(std::move(*importance));
  }
  std::optional<ObsChannelSelector> selector;
  if (o.criterion == PruneCriterion::Reconstruction) {
    auto built = ObsChannelSelector::build(module, *layers, *groups, inputs,
                                           o.reconstruct.samplesPerImage);
    if (failed(built))
      return failure();
    selector.emplace(std::move(*built));
    pruner.setSelector(&*selector);
  }
  pruner.chooseRemovedFilters();
  std::vector<PrunedLayer> changes = pruner.removeChosen(func);
  if (failed(refreshResultTypes(func)) || failed(verify(module)))
    return failure();
  if (report)
    printPruneReport(o, changes, *before, module, *report);
  if (original &&
      failed(reconstructPruned(module, *original, inputs, changes, o, report)))
    return failure();
  return success();
}

LogicalResult qsim::lighten::pruneMagnitude(ModuleOp module, double sparsity,
                                            const std::set<int64_t> &layerSet,
                                            raw_ostream *report) {
  MagnitudePruneOptions o;
  o.sparsity = sparsity;
  o.layers = layerSet;
  return pruneMagnitude(module, o, report);
}

LogicalResult
qsim::lighten::pruneMagnitude(ModuleOp module,
                              const MagnitudePruneOptions &options,
                              raw_ostream *report) {
  MagnitudePruneOptions o = options; // the positions per image once known
  func::FuncOp func = getMainFunc(module);
  if (!func)
    return module.emitError() << "no main function";
  if (o.sparsity < 0 || o.sparsity >= 1)
    return module.emitError() << "sparsity must be in [0, 1)";
  auto layers = getLayers(func);
  if (failed(layers))
    return failure();
  for (const Layer &l : *layers) {
    if (!isa<Conv2DOp, ConnectedOp>(l.head) ||
        (!o.layers.empty() && !o.layers.count(l.index)))
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
  }
  if (o.allocation == SparsityAllocation::Sensitivity && o.images.empty())
    return module.emitError()
           << "allocation=sensitivity needs images= (each layer's share is "
              "chosen by its output error on those images)";
  // With images: the non-grouped convolutions by SparseGPT's update.
  std::map<int64_t, double> done;
  int64_t zeroedTotal = 0, weightsTotal = 0;
  if (!o.images.empty()) {
    std::vector<rt::Tensor> inputs;
    if (failed(loadRefitImages(module, o.images, o.maxImages, inputs)))
      return failure();
    o.reconstruct.samplesPerImage =
        o.reconstruct.positionsPerImage(inputs.size());
    std::map<int64_t, double> byLayer;
    if (o.allocation == SparsityAllocation::Sensitivity &&
        failed(allocateSparsity(module, inputs, o.sparsity, o.layers,
                                o.reconstruct, byLayer)))
      return failure();
    std::vector<SparsifiedLayer> sparse;
    OwningOpRef<ModuleOp> original = module.clone();
    if (failed(sparsifyConvs(module, inputs, o.sparsity, o.layers,
                             o.reconstruct, sparse, *original, byLayer)))
      return failure();
    if (report)
      *report << strprintf("second-order update on %zu images (%lld "
                           "positions each): relative output error\n",
                           inputs.size(),
                           (long long)o.reconstruct.samplesPerImage);
    for (const SparsifiedLayer &s : sparse) {
      done[s.layer] = (double)s.zeroed / std::max<int64_t>(s.weights, 1);
      zeroedTotal += s.zeroed;
      weightsTotal += s.weights;
      if (report)
        *report << strprintf("layer %lld (convolutional): %lld of %lld "
                             "weights zeroed, output error %.4f (magnitude "
                             "alone %.4f)\n",
                             (long long)s.layer, (long long)s.zeroed,
                             (long long)s.weights, s.error, s.magnitudeError);
    }
    layers = getLayers(func);
    if (failed(layers))
      return failure();
  }
  Builder b(module.getContext());
  for (const Layer &l : *layers) {
    if (!isa<Conv2DOp, ConnectedOp>(l.head) ||
        (!o.layers.empty() && !o.layers.count(l.index)))
      continue;
    if (auto it = done.find(l.index); it != done.end()) {
      l.head->setAttr("qsim.sparsity", b.getF64FloatAttr(it->second));
      continue;
    }
    l.head->setAttr("qsim.sparsity", b.getF64FloatAttr(o.sparsity));
    auto attr = l.head->getAttrOfType<ElementsAttr>("weight");
    std::vector<float> w = getFloats(attr);
    std::vector<size_t> order(w.size());
    std::iota(order.begin(), order.end(), 0);
    size_t k = (size_t)std::floor(o.sparsity * w.size());
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
    // Zeroed weights change the output's distribution.
    dropBatchNormStats(l.head);
    zeroedTotal += k;
    weightsTotal += w.size();
    if (report)
      *report << strprintf("layer %lld (%s): %zu of %zu weights zeroed\n",
                           (long long)l.index, l.kind().str().c_str(), k,
                           w.size());
  }
  if (report)
    *report << strprintf("total: %lld of %lld weights zeroed (%.2f %%)\n",
                         (long long)zeroedTotal, (long long)weightsTotal,
                         100.0 * zeroedTotal /
                             std::max<int64_t>(weightsTotal, 1));
  return success();
}
