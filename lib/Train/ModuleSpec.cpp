//===- ModuleSpec.cpp - reading a module into a NetSpec and back ---------===//

#include "ModuleSpec.h"

#include "qsim/Dialect/QSim/IR/Layers.h"
#include "qsim/Runtime/QuantMath.h"
#include "qsim/Runtime/Tensor.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Quant/QuantTypes.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/EquivalenceClasses.h"

#include <cmath>

using namespace mlir;
using namespace qsim;
using namespace qsim::train;

namespace {

Act toAct(Activation a) {
  // Same order as QSimAttrs.td's Activation cases.
  return static_cast<Act>(static_cast<int>(a));
}

std::optional<QuantGrid> gridOf(Type t) {
  auto q = dyn_cast<quant::UniformQuantizedType>(getElementTypeOrSelf(t));
  if (!q)
    return std::nullopt;
  return QuantGrid{(float)q.getScale(), (int32_t)q.getZeroPoint()};
}

Shape3 shapeOf(Value v) {
  auto t = cast<ShapedType>(v.getType());
  return {t.getDimSize(1), t.getDimSize(2), t.getDimSize(3)};
}

std::map<std::string, std::string> stringMap(DictionaryAttr d) {
  std::map<std::string, std::string> out;
  if (!d)
    return out;
  for (NamedAttribute a : d) {
    if (auto s = dyn_cast<StringAttr>(a.getValue())) {
      out[a.getName().str()] = s.str();
      continue;
    }
    std::string text;
    llvm::raw_string_ostream os(text);
    a.getValue().print(os);
    out[a.getName().str()] = os.str();
  }
  return out;
}

/// The weight scales of an int8 weighted op (fixed, from `weight_quant`).
std::vector<float> weightScalesOf(Operation *op, int64_t channels,
                                  bool &perChannel) {
  auto wq = op->getAttrOfType<TypeAttr>("weight_quant");
  std::vector<float> scales(channels, 1.0f);
  perChannel = true;
  if (!wq)
    return scales;
  if (auto axis = dyn_cast<quant::UniformQuantizedPerAxisType>(wq.getValue())) {
    ArrayRef<double> s = axis.getScales();
    for (int64_t f = 0; f < channels && f < (int64_t)s.size(); ++f)
      scales[f] = (float)s[f];
  } else if (auto t = dyn_cast<quant::UniformQuantizedType>(wq.getValue())) {
    perChannel = false;
    std::fill(scales.begin(), scales.end(), (float)t.getScale());
  }
  return scales;
}

/// Float weights of a conv/connected op: f32/f16 as stored, int8 ones
/// dequantized with their scales (the bias in units of s_in * s_w).
LogicalResult readWeights(Operation *op, Node &n) {
  auto w = op->getAttrOfType<ElementsAttr>("weight");
  auto b = op->getAttrOfType<ElementsAttr>("bias");
  if (!w)
    return op->emitError() << describeLayer(op)
                           << ": has no weights (a shape-only model); "
                              "training needs weights";
  if (isFloatElement(w.getShapedType().getElementType())) {
    n.weight = getFloats(w);
    if (b)
      n.bias = getFloats(b);
    return success();
  }
  std::optional<QuantGrid> in = gridOf(op->getOperand(0).getType());
  auto wq = getInts<int8_t>(w);
  auto bq = b ? getInts<int32_t>(b) : std::optional<std::vector<int32_t>>();
  if (!wq || !in || (b && !bq))
    return op->emitError() << describeLayer(op)
                           << ": cannot read its integer weights";
  n.weightScales = weightScalesOf(op, n.filters, n.perChannelWeights);
  n.fixedWeightScales = true;
  int64_t per = wq->size() / n.filters;
  n.weight.resize(wq->size());
  for (int64_t f = 0; f < n.filters; ++f)
    for (int64_t i = 0; i < per; ++i)
      n.weight[f * per + i] = (*wq)[f * per + i] * n.weightScales[f];
  if (bq) {
    n.bias.resize(n.filters);
    for (int64_t f = 0; f < n.filters; ++f)
      n.bias[f] = (float)((double)(*bq)[f] * in->scale * n.weightScales[f]);
  }
  return success();
}

LogicalResult readBatchNorm(BatchNormOp bn, Node &n, bool withWeights) {
  n.kind = NodeKind::BatchNorm;
  n.act = toAct(bn.getActivation());
  if (!withWeights)
    return success();
  if (!bn.getScale() || !bn.getMean() || !bn.getVariance() || !bn.getBias())
    return bn.emitError() << describeLayer(bn)
                          << ": batch norm without its statistics (a "
                             "shape-only model); training needs weights";
  n.bnScale = getFloats(*bn.getScale());
  n.bnMean = getFloats(*bn.getMean());
  n.bnVariance = getFloats(*bn.getVariance());
  n.bnBias = getFloats(*bn.getBias());
  return success();
}

void readHead(Operation *op, Node &n) {
  if (auto y = dyn_cast<YoloOp>(op)) {
    n.kind = NodeKind::Yolo;
    n.classes = y.getClasses();
    n.num = y.getNum();
    n.mask.assign(y.getMask().begin(), y.getMask().end());
    n.anchors.assign(y.getAnchors().begin(), y.getAnchors().end());
    n.scaleXY = y.getScaleXY().convertToFloat();
    n.newCoords = y.getNewCoords();
    return;
  }
  auto r = cast<RegionOp>(op);
  n.kind = NodeKind::Region;
  n.classes = r.getClasses();
  n.coords = r.getCoords();
  n.num = r.getNum();
  n.anchors.assign(r.getAnchors().begin(), r.getAnchors().end());
  n.softmax = r.getSoftmax();
}

/// The fields of a qsim op other than conv/connected/batchnorm.
bool readSimpleOp(Operation *op, Node &n) {
  if (auto a = dyn_cast<ActivationOp>(op)) {
    n.kind = NodeKind::Activation;
    n.act = toAct(a.getActivation());
  } else if (auto mp = dyn_cast<MaxPoolOp>(op)) {
    n.kind = NodeKind::MaxPool;
    n.poolSize = mp.getSize();
    n.sy = mp.getStride()[0];
    n.sx = mp.getStride()[1];
    n.poolPadding = mp.getPadding();
  } else if (isa<AvgPoolOp>(op)) {
    n.kind = NodeKind::AvgPool;
  } else if (auto r = dyn_cast<RouteOp>(op)) {
    n.kind = NodeKind::Route;
    n.groups = r.getGroups();
    n.groupId = r.getGroupId();
  } else if (auto s = dyn_cast<ShortcutOp>(op)) {
    n.kind = NodeKind::Shortcut;
    n.act = toAct(s.getActivation());
  } else if (auto u = dyn_cast<UpsampleOp>(op)) {
    n.kind = NodeKind::Upsample;
    n.stride = u.getStride();
    n.upsampleScale = u.getScale().convertToFloat();
  } else if (auto r = dyn_cast<ReorgOp>(op)) {
    n.kind = NodeKind::Reorg;
    n.stride = r.getStride();
    n.reverse = r.getReverse();
  } else if (auto s = dyn_cast<ScaleChannelsOp>(op)) {
    n.kind = NodeKind::ScaleChannels;
    n.scaleWH = s.getScaleWh();
    n.act = toAct(s.getActivation());
  } else if (auto s = dyn_cast<SoftmaxOp>(op)) {
    n.kind = NodeKind::Softmax;
    n.groups = s.getGroups();
    n.temperature = s.getTemperature().convertToFloat();
  } else if (isa<DropoutOp>(op)) {
    n.kind = NodeKind::Dropout;
  } else if (isa<YoloOp, RegionOp>(op)) {
    readHead(op, n);
  } else {
    return false;
  }
  return true;
}

/// One qsim op as a node (inputs and quantization are set by the caller).
LogicalResult readOp(Operation *op, Node &n, bool withWeights) {
  n.out = shapeOf(op->getResult(0));
  n.cfg = stringMap(op->getAttrOfType<DictionaryAttr>("qsim.cfg"));
  if (auto c = dyn_cast<Conv2DOp>(op)) {
    n.kind = NodeKind::Conv;
    n.filters = c.getFilters();
    n.kh = c.getKernelH();
    n.kw = c.getKernelW();
    n.sy = c.getStride()[0];
    n.sx = c.getStride()[1];
    n.py = c.getPadding()[0];
    n.px = c.getPadding()[1];
    n.groups = c.getGroups();
    n.dilation = c.getDilation();
    n.act = toAct(c.getActivation());
    return withWeights ? readWeights(op, n) : success();
  }
  if (auto fc = dyn_cast<ConnectedOp>(op)) {
    n.kind = NodeKind::Connected;
    n.filters = fc.getOutputSize();
    n.act = toAct(fc.getActivation());
    return withWeights ? readWeights(op, n) : success();
  }
  if (auto bn = dyn_cast<BatchNormOp>(op))
    return readBatchNorm(bn, n, withWeights);
  if (readSimpleOp(op, n))
    return success();
  return op->emitError() << describeLayer(op) << ": '"
                         << op->getName().getStringRef()
                         << "' has no torch form: it cannot be trained";
}

/// The int8 / fp16 facts of a node from its op's types.
void readPrecision(Operation *op, Node &n) {
  Type el = getElementTypeOrSelf(op->getResult(0).getType());
  n.fp16 = el.isF16();
  n.outputGrid = gridOf(op->getResult(0).getType());
  if (!n.outputGrid)
    return;
  for (Value in : op->getOperands())
    n.inputGrids.push_back(gridOf(in.getType()));
  n.inputGroups.assign(n.inputGrids.size(), -1);
  bool identityRoute = false;
  if (auto r = dyn_cast<RouteOp>(op))
    identityRoute = r.getInputs().size() == 1 && r.getGroups() == 1;
  n.requantizes = isa<Conv2DOp, ConnectedOp, ShortcutOp>(op) ||
                  (isa<RouteOp>(op) && !identityRoute);
}

} // namespace

LogicalResult qsim::train::readModule(ModuleOp module, ModuleSpec &out,
                                      bool withWeights) {
  func::FuncOp func;
  auto layers = getMainLayers(module, &func);
  if (failed(layers))
    return failure();
  NetSpec &spec = out.spec;
  spec = NetSpec();
  out.ops.clear();
  spec.flavor = getFlavor(module) == qsim::Flavor::PJReddie
                    ? train::Flavor::PJReddie
                    : train::Flavor::AlexeyAB;
  spec.input = shapeOf(func.getArgument(0));
  spec.net = stringMap(module->getAttrOfType<DictionaryAttr>("qsim.net"));
  if (auto lb = module->getAttrOfType<BoolAttr>("qsim.letter_box"))
    spec.letterBox = lb.getValue();
  llvm::DenseMap<Value, int> nodeOf;
  nodeOf[func.getArgument(0)] = -1;
  for (const Layer &layer : *layers) {
    for (Operation *op : layer.ops) {
      if (isPrecisionCast(op)) {
        nodeOf[op->getResult(0)] = nodeOf.lookup(op->getOperand(0));
        continue;
      }
      Node n;
      n.layer = layer.index;
      n.label = describeLayer(op);
      if (failed(readOp(op, n, withWeights)))
        return failure();
      for (Value in : op->getOperands())
        n.inputs.push_back(nodeOf.lookup(in));
      readPrecision(op, n);
      nodeOf[op->getResult(0)] = spec.nodes.size();
      spec.nodes.push_back(std::move(n));
      out.ops.push_back(op);
    }
    spec.layerOutputs.push_back(nodeOf.lookup(layer.output()));
  }
  for (Value v : func.getBody().front().getTerminator()->getOperands())
    spec.outputs.push_back(nodeOf.lookup(v));
  return success();
}

LogicalResult qsim::train::overlayQuantization(ModuleSpec &floatSpec,
                                               const ModuleSpec &quantized,
                                               bool perChannel, bool pow2) {
  auto &fn = floatSpec.spec.nodes;
  const auto &qn = quantized.spec.nodes;
  if (fn.size() != qn.size())
    return floatSpec.ops.empty()
               ? failure()
               : floatSpec.ops.front()->emitError()
                     << "the quantized form of the model has other layers";
  for (size_t i = 0; i < fn.size(); ++i) {
    if (fn[i].kind != qn[i].kind)
      return floatSpec.ops[i]->emitError()
             << describeLayer(floatSpec.ops[i])
             << ": differs in the quantized form of the model";
    fn[i].inputGrids = qn[i].inputGrids;
    fn[i].inputGroups = qn[i].inputGroups;
    fn[i].outputGrid = qn[i].outputGrid;
    fn[i].requantizes = qn[i].requantizes;
    fn[i].fp16 = qn[i].fp16;
    fn[i].weightScales = qn[i].weightScales;
    fn[i].fixedWeightScales = false;
    fn[i].perChannelWeights = perChannel;
    fn[i].pow2WeightScales = pow2;
  }
  return success();
}

void qsim::train::buildRangeGroups(NetSpec &spec, GridRule rule) {
  // Owners of calibrated ranges: node index, or -1 for the network input
  // (stored as index + 1 in the classes).
  llvm::EquivalenceClasses<int> classes;
  std::map<int, QuantGrid> gridOfOwner;
  std::vector<int> outputOwner(spec.nodes.size(), INT32_MIN);
  auto inputOwner = [&](const Node &n, size_t k) {
    int p = n.inputs[k];
    return p >= 0 && spec.nodes[p].isInt8() ? outputOwner[p] : p;
  };
  for (size_t i = 0; i < spec.nodes.size(); ++i) {
    Node &n = spec.nodes[i];
    if (!n.isInt8())
      continue;
    for (size_t k = 0; k < n.inputs.size() && k < n.inputGrids.size(); ++k)
      if (n.inputGrids[k] &&
          (n.inputs[k] < 0 || !spec.nodes[n.inputs[k]].isInt8())) {
        classes.insert(n.inputs[k] + 1);
        gridOfOwner[n.inputs[k]] = *n.inputGrids[k];
      }
    if (n.requantizes) {
      outputOwner[i] = i;
      classes.insert(i + 1);
      gridOfOwner[i] = *n.outputGrid;
    } else {
      outputOwner[i] = inputOwner(n, 0);
    }
    // --qsim-quantize widens the int8 inputs of a concatenation to its
    // range: they share one learned range.
    if (n.kind == NodeKind::Route && n.groups == 1 && n.inputs.size() >= 2)
      for (size_t k = 0; k < n.inputs.size(); ++k)
        if (n.inputs[k] >= 0 && spec.nodes[n.inputs[k]].isInt8())
          classes.unionSets(i + 1, outputOwner[n.inputs[k]] + 1);
  }
  std::map<int, int> groupOfLeader;
  spec.gridGroups.clear();
  for (auto it = classes.begin(); it != classes.end(); ++it) {
    if (!it->isLeader())
      continue;
    GridGroup g;
    g.rule = rule;
    QuantGrid widest{0.0f, 0};
    for (auto m = classes.member_begin(it); m != classes.member_end(); ++m) {
      int owner = *m - 1;
      g.members.push_back(owner);
      if (gridOfOwner[owner].scale > widest.scale)
        widest = gridOfOwner[owner];
    }
    std::tie(g.lo, g.hi) = rangeForGrid(widest, rule);
    groupOfLeader[it->getData()] = spec.gridGroups.size();
    spec.gridGroups.push_back(std::move(g));
  }
  auto groupOf = [&](int owner) {
    return groupOfLeader[classes.getLeaderValue(owner + 1)];
  };
  for (size_t i = 0; i < spec.nodes.size(); ++i) {
    Node &n = spec.nodes[i];
    if (!n.isInt8())
      continue;
    n.outputGroup = groupOf(outputOwner[i]);
    n.inputGroups.assign(n.inputGrids.size(), -1);
    for (size_t k = 0; k < n.inputs.size() && k < n.inputGrids.size(); ++k)
      if (n.inputGrids[k])
        n.inputGroups[k] = groupOf(inputOwner(n, k));
  }
}

//===----------------------------------------------------------------------===//
// Writing back
//===----------------------------------------------------------------------===//

namespace {

std::string blobName(Operation *op, StringRef what) {
  int64_t layer = getLayerIndexFromLoc(op->getLoc()).value_or(0);
  return "layer" + std::to_string(layer) + "_trained_" + what.str();
}

/// A float attribute like `old` (f32 or f16 storage) holding `values`.
ElementsAttr floatLike(ElementsAttr old, ArrayRef<float> values, Operation *op,
                       StringRef what) {
  ShapedType type = old.getShapedType();
  if (type.getElementType().isF16()) {
    std::vector<uint16_t> h(values.size());
    for (size_t i = 0; i < values.size(); ++i)
      h[i] = rt::floatToHalf(values[i]);
    return makeResourceAttr(type, blobName(op, what), ArrayRef<uint16_t>(h));
  }
  return makeResourceAttr(type, blobName(op, what), values);
}

/// An int8 layer of a quantized module: the weights on its fixed scales
/// (rt::quantizeWeight) and the int32 bias in units of s_in * s_w[f].
void writeIntWeights(const Node &n, Operation *op) {
  auto w = op->getAttrOfType<ElementsAttr>("weight");
  int64_t per = n.weight.size() / n.filters;
  std::vector<int8_t> wq(n.weight.size());
  for (int64_t f = 0; f < n.filters; ++f)
    for (int64_t i = 0; i < per; ++i)
      wq[f * per + i] =
          rt::quantizeWeight(n.weight[f * per + i], n.weightScales[f]);
  op->setAttr("weight",
              makeResourceAttr(w.getShapedType(), blobName(op, "weight"),
                               ArrayRef<int8_t>(wq)));
  dropBatchNormStats(op);
  auto b = op->getAttrOfType<ElementsAttr>("bias");
  std::optional<QuantGrid> in = gridOf(op->getOperand(0).getType());
  if (!b || n.bias.empty() || !in)
    return;
  std::vector<int32_t> bq(n.filters);
  for (int64_t f = 0; f < n.filters; ++f) {
    double v =
        std::round((double)n.bias[f] / ((double)in->scale * n.weightScales[f]));
    bq[f] =
        (int32_t)std::max<double>(INT32_MIN, std::min<double>(INT32_MAX, v));
  }
  op->setAttr("bias", makeResourceAttr(b.getShapedType(), blobName(op, "bias"),
                                       ArrayRef<int32_t>(bq)));
}

void writeWeights(const Node &n, Operation *op) {
  if (n.kind == NodeKind::BatchNorm) {
    auto bn = cast<BatchNormOp>(op);
    bn.setScaleAttr(floatLike(*bn.getScale(), n.bnScale, op, "scale"));
    bn.setBiasAttr(floatLike(*bn.getBias(), n.bnBias, op, "bn_bias"));
    return;
  }
  auto w = op->getAttrOfType<ElementsAttr>("weight");
  if (!w || n.weight.empty())
    return;
  if (!isFloatElement(w.getShapedType().getElementType())) {
    writeIntWeights(n, op);
    return;
  }
  op->setAttr("weight", floatLike(w, n.weight, op, "weight"));
  // Trained weights no longer produce the folded batch norm's distribution.
  dropBatchNormStats(op);
  if (auto b = op->getAttrOfType<ElementsAttr>("bias"); b && !n.bias.empty())
    op->setAttr("bias", floatLike(b, n.bias, op, "bias"));
}

/// The learned range of `owner` in its `qsim.calib` (other keys kept).
void writeRange(const ModuleSpec &target, int owner, const GridGroup &g) {
  func::FuncOp func = target.ops.empty()
                          ? func::FuncOp()
                          : target.ops.front()->getParentOfType<func::FuncOp>();
  if (!func)
    return;
  MLIRContext *ctx = func.getContext();
  Builder b(ctx);
  DictionaryAttr old =
      owner < 0
          ? func.getArgAttrOfType<DictionaryAttr>(0, "qsim.calib")
          : target.ops[owner]->getAttrOfType<DictionaryAttr>("qsim.calib");
  NamedAttrList attrs(old ? old : b.getDictionaryAttr({}));
  attrs.set("lo", b.getF32FloatAttr(g.lo));
  attrs.set("hi", b.getF32FloatAttr(g.hi));
  attrs.set("trained", b.getBoolAttr(true));
  DictionaryAttr d = attrs.getDictionary(ctx);
  if (owner < 0)
    func.setArgAttr(0, "qsim.calib", d);
  else
    target.ops[owner]->setAttr("qsim.calib", d);
}

} // namespace

LogicalResult qsim::train::writeModule(const NetSpec &trained,
                                       const ModuleSpec &target) {
  if (trained.nodes.size() != target.ops.size())
    return failure();
  for (size_t i = 0; i < trained.nodes.size(); ++i)
    if (trained.nodes[i].hasWeights())
      writeWeights(trained.nodes[i], target.ops[i]);
  for (const GridGroup &g : trained.gridGroups)
    for (int owner : g.members)
      writeRange(target, owner, g);
  return success();
}
