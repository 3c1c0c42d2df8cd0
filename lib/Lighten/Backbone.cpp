//===- Backbone.cpp - backbone substitution ------------------------------===//

#include "qsim/Lighten/Backbone.h"
#include "qsim/Dialect/QSim/IR/LayerStats.h"
#include "qsim/Lighten/Pruning.h"
#include "qsim/Support/StringUtils.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Verifier.h"

#include <cmath>
#include <random>

using namespace mlir;
using namespace qsim;
using namespace qsim::lighten;

namespace {

struct Shape {
  int64_t c, h, w;
};
Shape shapeOf(Value v) {
  auto t = cast<ShapedType>(v.getType());
  return {t.getDimSize(1), t.getDimSize(2), t.getDimSize(3)};
}
RankedTensorType tensor(MLIRContext *ctx, Shape s) {
  return RankedTensorType::get({1, s.c, s.h, s.w}, Float32Type::get(ctx));
}

class Substitution {
public:
  Substitution(ModuleOp module, ModuleOp donor, const BackboneOptions &o,
               raw_ostream *report)
      : module(module), donor(donor), o(o), report(report),
        ctx(module.getContext()), b(ctx), rng(o.seed) {}
  LogicalResult run();

private:
  /// Both layer ranges exist and this model is a float model.
  LogicalResult checkRequest();
  /// Clones the taken layers before the first cut layer, fed by `blockIn`
  /// (adapted to what they expect).
  LogicalResult cloneTakenLayers(Value blockIn);
  /// Every use of a cut layer from outside the cut now reads the new block
  /// (through adapters where the shapes differ).
  LogicalResult remapCutUses();
  void eraseCutLayers();
  void printReport(const FailureOr<ModelStats> &before);
  /// `v` with spatial size and channels of `want` (adapters as needed).
  FailureOr<Value> adapt(Value v, Shape want, Location loc);
  ElementsAttr randomWeights(ArrayRef<int64_t> shape, int64_t fanIn,
                             StringRef name);

  ModuleOp module, donor;
  const BackboneOptions &o;
  raw_ostream *report;
  MLIRContext *ctx;
  OpBuilder b;
  std::mt19937_64 rng;
  int adapters = 0;
  std::map<std::tuple<const void *, int64_t, int64_t, int64_t>, Value> cache;

  func::FuncOp func, donorFunc;
  std::vector<Layer> layers, donorLayers;
  /// The outputs of the cloned layers, in order.
  std::vector<Value> newOutputs;
  /// Cloned layers without an int8 form (warned about once they are in
  /// place), with their description.
  std::vector<std::pair<Operation *, std::string>> lacking;
};

ElementsAttr Substitution::randomWeights(ArrayRef<int64_t> shape, int64_t fanIn,
                                         StringRef name) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  std::vector<float> v(n);
  std::normal_distribution<float> dist(0.0f, std::sqrt(2.0f / fanIn));
  for (float &x : v)
    x = dist(rng);
  return makeFloatAttr(ctx, shape, name, v);
}

FailureOr<Value> Substitution::adapt(Value v, Shape want, Location loc) {
  Shape s = shapeOf(v);
  Value cur = v;
  auto create = [&](StringRef name, Type t, ValueRange ins,
                    ArrayRef<NamedAttribute> attrs) {
    OperationState st(loc, name);
    st.addOperands(ins);
    st.addTypes(t);
    st.addAttributes(attrs);
    st.addAttribute("qsim.origin",
                    b.getStringAttr("adapter (backbone substitution)"));
    return b.create(st)->getResult(0);
  };
  auto adaptSpatial = [&]() -> LogicalResult {
    if (s.h == want.h && s.w == want.w)
      return success();
    if (s.h % want.h == 0 && s.w % want.w == 0 &&
        s.h / want.h == s.w / want.w) {
      int64_t k = s.h / want.h;
      Shape n{s.c, want.h, want.w};
      cur = create("qsim.maxpool", tensor(ctx, n), cur,
                   {b.getNamedAttr("size", b.getI64IntegerAttr(k)),
                    b.getNamedAttr("stride", b.getDenseI64ArrayAttr({k, k})),
                    b.getNamedAttr("padding", b.getI64IntegerAttr(0))});
    } else if (want.h % s.h == 0 && want.w % s.w == 0 &&
               want.h / s.h == want.w / s.w) {
      int64_t k = want.h / s.h;
      Shape n{s.c, want.h, want.w};
      cur = create("qsim.upsample", tensor(ctx, n), cur,
                   {b.getNamedAttr("stride", b.getI64IntegerAttr(k)),
                    b.getNamedAttr("scale", b.getF32FloatAttr(1.0f))});
    } else {
      return emitError(loc)
             << "cannot adapt " << s.c << "x" << s.h << "x" << s.w << " to "
             << want.c << "x" << want.h << "x" << want.w
             << " (spatial sizes are not integer "
                "multiples)";
    }
    ++adapters;
    s = shapeOf(cur);
    return success();
  };
  auto adaptChannels = [&]() {
    if (s.c == want.c)
      return;
    std::string name = "adapter" + std::to_string(adapters);
    std::vector<float> zeros(want.c, 0.0f);
    Shape n{want.c, s.h, s.w};
    cur =
        create("qsim.conv2d", tensor(ctx, n), cur,
               {b.getNamedAttr("filters", b.getI64IntegerAttr(want.c)),
                b.getNamedAttr("size", b.getDenseI64ArrayAttr({1, 1})),
                b.getNamedAttr("stride", b.getDenseI64ArrayAttr({1, 1})),
                b.getNamedAttr("padding", b.getDenseI64ArrayAttr({0, 0})),
                b.getNamedAttr("activation",
                               ActivationAttr::get(ctx, Activation::leaky)),
                b.getNamedAttr("weight", randomWeights({want.c, s.c, 1, 1}, s.c,
                                                       name + "_weight")),
                b.getNamedAttr("bias", makeFloatAttr(ctx, {want.c},
                                                     name + "_bias", zeros))});
    ++adapters;
    s = shapeOf(cur);
  };
  // The 1x1 convolution runs at the smaller of the two spatial sizes.
  if (want.h > s.h) {
    adaptChannels();
    if (failed(adaptSpatial()))
      return failure();
  } else {
    if (failed(adaptSpatial()))
      return failure();
    adaptChannels();
  }
  return cur;
}

LogicalResult Substitution::checkRequest() {
  int64_t n = layers.size();
  if (o.cutFirst < 0 || o.cutLast >= n || o.cutFirst > o.cutLast)
    return module.emitError()
           << "cut=" << o.cutFirst << ":" << o.cutLast
           << " is not a layer range of this model (layers 0-" << n - 1 << ")";
  for (const Layer &l : layers)
    for (Type t : l.head->getResultTypes())
      if (!getElementTypeOrSelf(t).isF32())
        return module.emitError() << "substitute the backbone of the float "
                                     "model (before --qsim-quantize)";
  int64_t m = donorLayers.size();
  if (o.takeFirst < 0 || o.takeLast >= m || o.takeFirst > o.takeLast)
    return module.emitError() << "take=" << o.takeFirst << ":" << o.takeLast
                              << " is not a layer range of '" << o.otherCfg
                              << "' (layers 0-" << m - 1 << ")";
  return success();
}

LogicalResult Substitution::cloneTakenLayers(Value blockIn) {
  const Layer &firstCut = layers[o.cutFirst];
  Value takeIn = o.takeFirst == 0 ? donorFunc.getArgument(0)
                                  : donorLayers[o.takeFirst - 1].output();
  b.setInsertionPoint(firstCut.ops.front());
  Location loc = NameLoc::get(b.getStringAttr("backbone substitution"),
                              firstCut.head->getLoc());
  // Convolutions do not care about the spatial size: the taken layers run
  // at this model's resolution (only a connected layer fixes it), so the
  // block input only needs its channels adapted.
  Shape inWant = shapeOf(takeIn);
  bool fixedSize = false;
  for (int64_t i = o.takeFirst; i <= o.takeLast; ++i)
    fixedSize |= isa<ConnectedOp>(donorLayers[i].head);
  if (!fixedSize) {
    inWant.h = shapeOf(blockIn).h;
    inWant.w = shapeOf(blockIn).w;
  }
  auto in = adapt(blockIn, inWant, loc);
  if (failed(in))
    return failure();
  IRMapping map;
  map.map(takeIn, *in);
  for (int64_t i = o.takeFirst; i <= o.takeLast; ++i) {
    const Layer &l = donorLayers[i];
    for (Operation *op : l.ops) {
      for (Value v : op->getOperands())
        if (!map.contains(v))
          return module.emitError()
                 << "taken layer " << l.index << " of '" << o.otherCfg
                 << "' uses a layer before take=" << o.takeFirst
                 << " (other than its input)";
      Operation *c = b.clone(*op, map);
      c->setLoc(FusedLoc::get(
          ctx, {op->getLoc(),
                NameLoc::get(b.getStringAttr("from " + o.otherCfg + " layer " +
                                             std::to_string(l.index)))}));
      c->removeAttr("qsim.precision");
      c->removeAttr("qsim.precision_reason");
    }
    newOutputs.push_back(map.lookup(l.output()));
    if (o.warnInt8 && !hasInt8Form(l))
      lacking.push_back(
          {map.lookup(l.head->getResult(0)).getDefiningOp(),
           "layer " + std::to_string(l.index) + " (" + l.kind().str() + ")"});
  }
  return success();
}

LogicalResult Substitution::remapCutUses() {
  const Layer &firstCut = layers[o.cutFirst];
  llvm::DenseSet<Operation *> cutOps;
  // In program order, so that adapters are created deterministically.
  std::vector<Operation *> cutInOrder;
  for (int64_t i = o.cutFirst; i <= o.cutLast; ++i) {
    cutOps.insert(layers[i].ops.begin(), layers[i].ops.end());
    cutInOrder.insert(cutInOrder.end(), layers[i].ops.begin(),
                      layers[i].ops.end());
  }
  Value blockOut = newOutputs.back();
  std::vector<std::pair<OpOperand *, Value>> replacements;
  for (Operation *op : cutInOrder)
    for (Value r : op->getResults())
      for (OpOperand &use : r.getUses()) {
        if (cutOps.count(use.getOwner()))
          continue;
        Shape want = shapeOf(r);
        Value from = blockOut;
        if (r != layers[o.cutLast].output()) {
          // A tap into the middle of the old backbone: the last new layer
          // with the same spatial size.
          Value best;
          for (Value v : newOutputs)
            if (shapeOf(v).h == want.h && shapeOf(v).w == want.w)
              best = v;
          if (best)
            from = best;
        }
        // Adapters go after every cloned op (before the old first cut
        // layer, which is erased below), so that all taps dominate them;
        // one adapter per tapped value and shape.
        auto key =
            std::make_tuple(from.getAsOpaquePointer(), want.c, want.h, want.w);
        auto it = cache.find(key);
        if (it == cache.end()) {
          b.setInsertionPoint(firstCut.ops.front());
          auto adapted = adapt(from, want, use.getOwner()->getLoc());
          if (failed(adapted))
            return failure();
          it = cache.emplace(key, *adapted).first;
        }
        replacements.push_back({&use, it->second});
      }
  for (auto &[use, v] : replacements)
    use->set(v);
  return success();
}

/// Erases the cut layers, users first.
void Substitution::eraseCutLayers() {
  for (int64_t i = o.cutLast; i >= o.cutFirst; --i)
    for (auto it = layers[i].ops.rbegin(); it != layers[i].ops.rend(); ++it)
      (*it)->erase();
}

void Substitution::printReport(const FailureOr<ModelStats> &before) {
  auto after = computeModelStats(module);
  *report << strprintf("backbone substitution: layers %lld-%lld replaced by "
                       "layers %lld-%lld of %s",
                       (long long)o.cutFirst, (long long)o.cutLast,
                       (long long)o.takeFirst, (long long)o.takeLast,
                       o.otherCfg.c_str());
  *report << (o.otherWeights.empty()
                  ? " (initialised, seed " + std::to_string(o.seed) + ")"
                  : " (with " + o.otherWeights + ")")
          << ", " << adapters << " adapter layer(s)\n";
  if (succeeded(before) && succeeded(after))
    *report << strprintf("MACs %lld -> %lld, parameters %lld -> %lld, layers "
                         "%zu -> %zu\n",
                         (long long)before->macs, (long long)after->macs,
                         (long long)before->params, (long long)after->params,
                         before->layers.size(), after->layers.size());
  if (o.otherWeights.empty() || adapters > 0)
    *report << "note: the new layers"
            << (o.otherWeights.empty() ? "" : " (adapters)")
            << " are initialised, not trained: the model needs training "
               "(export it with --export-darknet and fine-tune in Darknet)\n";
}

LogicalResult Substitution::run() {
  func = getMainFunc(module);
  auto thisLayers = getLayers(func);
  if (!func || failed(thisLayers))
    return failure();
  layers = std::move(*thisLayers);
  donorFunc = getMainFunc(donor);
  auto takenLayers = getLayers(donorFunc);
  if (failed(takenLayers))
    return failure();
  donorLayers = std::move(*takenLayers);
  if (failed(checkRequest()))
    return failure();

  Value blockIn =
      o.cutFirst == 0 ? func.getArgument(0) : layers[o.cutFirst - 1].output();
  auto beforeStats = computeModelStats(module);
  if (failed(cloneTakenLayers(blockIn)))
    return failure();
  // The taken layers' shapes at this model's resolution.
  if (failed(refreshResultTypes(func)))
    return module.emitError() << "the taken layers do not fit this model's "
                                 "input size";
  if (failed(remapCutUses()))
    return failure();
  eraseCutLayers();
  if (failed(refreshResultTypes(func)) || failed(verify(module)))
    return failure();
  renumberLayerLocations(func);
  for (auto &[op, what] : lacking)
    op->emitWarning() << "taken " << what << " of '" << o.otherCfg
                      << "' has no int8 form: it stays in float on an int8 "
                         "target";
  if (report)
    printReport(beforeStats);
  return success();
}

} // namespace

bool qsim::lighten::parseBackboneOptions(StringRef with, StringRef weights,
                                         StringRef cut, StringRef take,
                                         BackboneOptions &o,
                                         std::string &error) {
  auto [cfg, rest] = with.split(",weights=");
  o.otherCfg = cfg.str();
  o.otherWeights = !rest.empty() ? rest.str() : weights.str();
  if (o.otherCfg.empty()) {
    error = "needs with=OTHER.cfg";
    return false;
  }
  auto range = [](StringRef s, int64_t &first, int64_t &last) {
    auto [a, b] = s.split(':');
    return !a.trim().getAsInteger(10, first) &&
           !b.trim().getAsInteger(10, last);
  };
  if (!range(cut, o.cutFirst, o.cutLast) ||
      !range(take, o.takeFirst, o.takeLast)) {
    error = "needs cut=FIRST:LAST and take=FIRST:LAST";
    return false;
  }
  return true;
}

LogicalResult qsim::lighten::substituteBackbone(ModuleOp module, ModuleOp donor,
                                                const BackboneOptions &options,
                                                raw_ostream *report) {
  Substitution s(module, donor, options, report);
  return s.run();
}
