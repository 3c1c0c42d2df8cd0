//===- ChannelGroups.cpp - which channels must be pruned together --------===//

#include "qsim/Lighten/ChannelGroups.h"

using namespace mlir;
using namespace qsim;
using namespace qsim::lighten;

int ChannelGroups::newElement(FilterRef r) {
  elements.push_back(r);
  parent.push_back(parent.size());
  return elements.size() - 1;
}

int ChannelGroups::find(int e) const {
  while (parent[e] != e) {
    parent[e] = parent[parent[e]];
    e = parent[e];
  }
  return e;
}

void ChannelGroups::unite(int a, int b) {
  a = find(a);
  b = find(b);
  if (a == b)
    return;
  // Keep the fixed element (0) as a root so that isFixed stays cheap.
  if (b == 0)
    std::swap(a, b);
  parent[b] = a;
}

void ChannelGroups::fix(const std::vector<int> &ch) {
  for (int e : ch)
    unite(0, e);
}

const std::vector<int> &ChannelGroups::channels(Value v) const {
  static const std::vector<int> none;
  auto it = valueChannels.find(v);
  return it == valueChannels.end() ? none : it->second;
}

static int64_t channelCount(Value v) {
  return cast<ShapedType>(v.getType()).getDimSize(1);
}

FailureOr<ChannelGroups> ChannelGroups::analyze(func::FuncOp func) {
  ChannelGroups g;
  g.newElement({}); // element 0: fixed
  auto fresh = [&](Value v) {
    std::vector<int> ch(channelCount(v));
    for (int &e : ch)
      e = 0;
    return ch;
  };
  for (BlockArgument arg : func.getArguments())
    g.valueChannels[arg] = fresh(arg); // the network input is fixed
  for (Operation &opRef : func.getBody().front()) {
    Operation *op = &opRef;
    if (op->hasTrait<OpTrait::IsTerminator>()) {
      for (Value v : op->getOperands())
        g.fix(g.channels(v)); // model outputs keep their channels
      continue;
    }
    for (Type t : op->getResultTypes())
      if (!isFloatElement(getElementTypeOrSelf(t)))
        return op->emitError() << describeLayer(op)
                               << ": prune the float model (before "
                                  "--qsim-quantize)";
    if (op->getNumResults() != 1)
      return op->emitError() << "unexpected op in a qsim function";
    Value out = op->getResult(0);
    auto in = [&](unsigned i) -> const std::vector<int> & {
      return g.channels(op->getOperand(i));
    };
    std::vector<int> outCh;
    if (auto conv = dyn_cast<Conv2DOp>(op)) {
      int64_t groups = conv.getGroups(), c = conv.getInputChannels();
      if (conv.isDepthwise()) {
        outCh = in(0); // filter c is removed with input channel c
      } else {
        if (groups > 1) {
          // Grouped convs would need every group pruned alike: not handled.
          g.fix(in(0));
        }
        for (int64_t f = 0; f < conv.getFilters(); ++f)
          outCh.push_back(g.newElement({op, f}));
        if (groups > 1)
          g.fix(outCh);
      }
      (void)c;
    } else if (auto fc = dyn_cast<ConnectedOp>(op)) {
      // Input channels can be pruned (weight columns); outputs usually feed
      // a classifier: fixed.
      outCh = fresh(out);
    } else if (isa<BatchNormOp, ActivationOp, MaxPoolOp, UpsampleOp, DropoutOp,
                   AvgPoolOp, CropOp>(op)) {
      outCh = in(0);
    } else if (auto route = dyn_cast<RouteOp>(op)) {
      int64_t G = route.getGroups(), j = route.getGroupId();
      for (unsigned i = 0; i < op->getNumOperands(); ++i) {
        const std::vector<int> &ch = in(i);
        int64_t part = ch.size() / G;
        for (int64_t k = 0; k < part; ++k)
          for (int64_t other = 0; other < G; ++other)
            g.unite(ch[k], ch[other * part + k]);
        outCh.insert(outCh.end(), ch.begin() + j * part,
                     ch.begin() + (j + 1) * part);
      }
    } else if (auto sc = dyn_cast<ShortcutOp>(op)) {
      outCh = in(0);
      bool samePrefix = true;
      for (unsigned i = 1; i < op->getNumOperands(); ++i)
        samePrefix &= in(i).size() == outCh.size();
      if (!samePrefix) {
        for (unsigned i = 0; i < op->getNumOperands(); ++i)
          g.fix(in(i));
      } else {
        for (unsigned i = 1; i < op->getNumOperands(); ++i)
          for (size_t c = 0; c < outCh.size(); ++c)
            g.unite(outCh[c], in(i)[c]);
      }
    } else if (auto s = dyn_cast<ScaleChannelsOp>(op)) {
      outCh = in(1);
      if (s.getScaleWh() || in(0).size() != outCh.size())
        g.fix(in(0));
      else
        for (size_t c = 0; c < outCh.size(); ++c)
          g.unite(in(0)[c], outCh[c]);
    } else {
      // reorg, softmax, yolo, region: channel positions carry meaning.
      for (unsigned i = 0; i < op->getNumOperands(); ++i)
        g.fix(in(i));
      outCh = fresh(out);
    }
    g.valueChannels[out] = std::move(outCh);
  }
  return g;
}

std::vector<std::vector<FilterRef>> ChannelGroups::prunableClasses() const {
  std::map<int, std::vector<FilterRef>> byRoot;
  for (size_t e = 1; e < elements.size(); ++e)
    if (!isFixed(e))
      byRoot[find(e)].push_back(elements[e]);
  std::vector<std::vector<FilterRef>> out;
  for (auto &[root, members] : byRoot)
    out.push_back(std::move(members));
  return out;
}
