//===- DarknetExporter.cpp - the qsim dialect to .cfg/.weights -----------===//

#include "qsim/Target/Darknet/DarknetExporter.h"
#include "qsim/Dialect/QSim/IR/Layers.h"
#include "qsim/Target/Darknet/WeightsFile.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/TypeSwitch.h"

#include <charconv>

using namespace mlir;
using namespace qsim;
using namespace qsim::darknet;

/// Shortest text that reads back as the same float.
static std::string formatFloat(float v) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, res.ptr);
}

/// The output of `conv` with its batch norm when one directly follows it
/// as its only user (the two ops of a batch_normalize=1 convolution).
static Value convLayerOutput(Conv2DOp conv, BatchNormOp &bn) {
  bn = {};
  if (conv->hasOneUse())
    if (auto b = dyn_cast<BatchNormOp>(*conv->user_begin());
        b && !b.getStandalone()) {
      bn = b;
      return b.getResult();
    }
  return conv.getResult();
}

static StringRef crnnRole(Operation *op) {
  if (auto role = op->getAttrOfType<StringAttr>("qsim.crnn"))
    return role.getValue();
  return "";
}

namespace {
class Exporter {
public:
  Exporter(ModuleOp module, raw_ostream &cfg, raw_ostream *weights)
      : module(module), cfg(cfg), weights(weights), flavor(getFlavor(module)) {}
  LogicalResult run();

private:
  LogicalResult exportLayer(const Layer &layer);
  /// Whether `layer` is the subsampling of a strided [shortcut]'s from=
  /// layer that the import added, to be written as that from= alone.
  bool foldsIntoShortcut(const Layer &layer);
  LogicalResult exportConvolutional(Conv2DOp conv, BatchNormOp bn);
  /// A convolution's biases, batch norm and weights, in Darknet's order.
  LogicalResult writeConvWeights(Conv2DOp conv, BatchNormOp bn);
  /// The [crnn] whose input convolution is `input`; its other ops go into
  /// `folded`.
  LogicalResult exportCrnn(Conv2DOp input, BatchNormOp inputBn);
  LogicalResult exportConnected(ConnectedOp fc, BatchNormOp bn);
  LogicalResult exportBatchNorm(BatchNormOp bn);
  LogicalResult exportActivation(ActivationOp a);
  LogicalResult exportMaxPool(MaxPoolOp mp);
  LogicalResult exportAvgPool(AvgPoolOp ap);
  LogicalResult exportRoute(RouteOp route);
  LogicalResult exportShortcut(ShortcutOp sc);
  LogicalResult exportUpsample(UpsampleOp up);
  LogicalResult exportReorg(ReorgOp ro);
  LogicalResult exportCrop(CropOp cr);
  LogicalResult exportScaleChannels(ScaleChannelsOp scl);
  LogicalResult exportSoftmax(SoftmaxOp sm);
  LogicalResult exportDropout(DropoutOp d);
  LogicalResult exportYolo(YoloOp y);
  LogicalResult exportRegion(RegionOp rg);
  LogicalResult exportLocal(LocalOp l);
  LogicalResult exportLocalAvgPool(LocalAvgPoolOp a);
  LogicalResult exportReorg3d(Reorg3dOp r);
  LogicalResult exportSam(SamOp sam);
  LogicalResult exportDetection(DetectionOp d);
  LogicalResult exportGaussianYolo(GaussianYoloOp g);
  /// The trailing sections without inference effect (qsim.cost,
  /// qsim.contrastive): `name` once per dictionary of keys.
  void trailingSections(StringRef attrName, StringRef name);
  /// The section `name` of `op`, whose input `input` Darknet takes from the
  /// previous layer (a [route] first when it is another layer's output).
  LogicalResult beginSection(Operation *op, Value input, StringRef name);
  /// `stride=`, or `stride_x=` and `stride_y=` when they differ.
  void strideKeys(ArrayRef<int64_t> stride);
  /// `anchors=` in pairs, as Darknet's cfgs write them.
  void anchorsKey(ArrayRef<float> anchors);
  /// A batch norm's scales, means and variances (its biases go first, with
  /// the layer's).
  LogicalResult writeBatchNormStats(Operation *op, BatchNormOp bn,
                                    int64_t channels);
  /// Index of the exported layer producing `v`; emits [route] when `v` is not
  /// the previous layer but is required to be.
  FailureOr<int64_t> producer(Operation *user, Value v);
  LogicalResult requirePrevious(Operation *user, Value v);
  void section(StringRef name) {
    cfg << "\n";
    // Where a layer came from (an adapter, a factorization stage), as a
    // comment Darknet skips.
    if (currentHead)
      if (auto origin = currentHead->getAttrOfType<StringAttr>("qsim.origin"))
        if (name == cast<LayerOpInterface>(currentHead).getDarknetSection())
          cfg << "# " << origin.getValue() << "\n";
    cfg << "[" << name << "]\n";
  }
  Operation *currentHead = nullptr;
  void key(StringRef k, int64_t v) { cfg << k << "=" << v << "\n"; }
  void key(StringRef k, StringRef v) { cfg << k << "=" << v << "\n"; }
  void keyF(StringRef k, float v) { cfg << k << "=" << formatFloat(v) << "\n"; }
  void extras(Operation *op);
  LogicalResult writeFloats(Operation *op, StringRef what,
                            std::optional<ElementsAttr> attr, int64_t count,
                            bool zerosIfAbsent = false);
  void finishLayer(Value out) { indexOf[out] = nextIndex++; }

  ModuleOp module;
  raw_ostream &cfg;
  raw_ostream *weights;
  Flavor flavor;
  llvm::DenseMap<Value, int64_t> indexOf;
  /// Heads of the layers written as part of an earlier section ([crnn]).
  llvm::DenseSet<Operation *> folded;
  int64_t nextIndex = 0;
  Value networkInput;
};
} // namespace

FailureOr<int64_t> Exporter::producer(Operation *user, Value v) {
  auto it = indexOf.find(v);
  if (it == indexOf.end()) {
    user->emitError() << describeLayer(user)
                      << ": Darknet layers can only reference earlier layers' "
                         "outputs, not the network input";
    return failure();
  }
  return it->second;
}

LogicalResult Exporter::requirePrevious(Operation *user, Value v) {
  if (v == networkInput && nextIndex == 0)
    return success();
  auto idx = producer(user, v);
  if (failed(idx))
    return failure();
  if (*idx == nextIndex - 1)
    return success();
  // Darknet feeds the previous layer implicitly: route to the real input.
  section("route");
  key("layers", *idx);
  indexOf[v] = nextIndex++;
  return success();
}

void Exporter::extras(Operation *op) {
  if (auto p = op->getAttrOfType<StringAttr>("qsim.precision"))
    key("precision", p.getValue());
  if (auto d = op->getAttrOfType<DictionaryAttr>("qsim.cfg"))
    for (NamedAttribute a : d)
      if (auto s = dyn_cast<StringAttr>(a.getValue()))
        key(a.getName().getValue(), s.getValue());
}

LogicalResult Exporter::writeFloats(Operation *op, StringRef what,
                                    std::optional<ElementsAttr> attr,
                                    int64_t count, bool zerosIfAbsent) {
  if (!weights)
    return success();
  if (!attr) {
    if (zerosIfAbsent) {
      std::vector<float> zeros(count, 0.0f);
      weights->write(reinterpret_cast<const char *>(zeros.data()),
                     count * sizeof(float));
      return success();
    }
    return op->emitError() << describeLayer(op) << ": has no " << what
                           << " (shape-only model); cannot write weights";
  }
  if (attr->getNumElements() != count)
    return op->emitError() << describeLayer(op) << ": " << what << " has "
                           << attr->getNumElements() << " values, expected "
                           << count;
  ArrayRef<float> direct = getFloatsNoCopy(*attr);
  if (!direct.empty()) {
    weights->write(reinterpret_cast<const char *>(direct.data()),
                   direct.size() * sizeof(float));
    return success();
  }
  std::vector<float> v = getFloats(*attr);
  if ((int64_t)v.size() != count)
    return op->emitError() << describeLayer(op) << ": " << what
                           << " is not stored as floats";
  weights->write(reinterpret_cast<const char *>(v.data()),
                 v.size() * sizeof(float));
  return success();
}

LogicalResult Exporter::exportLayer(const Layer &layer) {
  Operation *op = layer.head;
  currentHead = op;
  for (Operation *o : layer.ops)
    if (isPrecisionCast(o) || llvm::any_of(o->getResultTypes(), [](Type t) {
          return !isFloatElement(getElementTypeOrSelf(t));
        }))
      return op->emitError() << describeLayer(op)
                             << ": quantized layers cannot be written as a "
                                "Darknet model (export the float model)";
  if (folded.contains(op))
    return success(); // written with the [crnn] it belongs to
  if (auto conv = dyn_cast<Conv2DOp>(op); conv && crnnRole(conv) == "input")
    return exportCrnn(conv, layer.batchNorm);
  if (foldsIntoShortcut(layer)) {
    // No section: the shortcut's from= names the layer this one samples.
    auto mp = cast<MaxPoolOp>(op);
    indexOf[mp.getOutput()] = indexOf.lookup(mp.getInput());
    return success();
  }
  BatchNormOp bn = layer.batchNorm;
  LogicalResult written =
      llvm::TypeSwitch<Operation *, LogicalResult>(op)
          .Case([&](Conv2DOp conv) { return exportConvolutional(conv, bn); })
          .Case([&](ConnectedOp fc) { return exportConnected(fc, bn); })
          .Case([&](BatchNormOp standalone) {
            return exportBatchNorm(standalone);
          })
          .Case([&](ActivationOp a) { return exportActivation(a); })
          .Case([&](MaxPoolOp mp) { return exportMaxPool(mp); })
          .Case([&](AvgPoolOp ap) { return exportAvgPool(ap); })
          .Case([&](RouteOp route) { return exportRoute(route); })
          .Case([&](ShortcutOp sc) { return exportShortcut(sc); })
          .Case([&](UpsampleOp up) { return exportUpsample(up); })
          .Case([&](ReorgOp ro) { return exportReorg(ro); })
          .Case([&](CropOp cr) { return exportCrop(cr); })
          .Case([&](ScaleChannelsOp scl) { return exportScaleChannels(scl); })
          .Case([&](SoftmaxOp sm) { return exportSoftmax(sm); })
          .Case([&](DropoutOp d) { return exportDropout(d); })
          .Case([&](YoloOp y) { return exportYolo(y); })
          .Case([&](RegionOp rg) { return exportRegion(rg); })
          .Case([&](LocalOp l) { return exportLocal(l); })
          .Case([&](LocalAvgPoolOp a) { return exportLocalAvgPool(a); })
          .Case([&](Reorg3dOp r) { return exportReorg3d(r); })
          .Case([&](SamOp sam) { return exportSam(sam); })
          .Case([&](DetectionOp d) { return exportDetection(d); })
          .Case([&](GaussianYoloOp g) { return exportGaussianYolo(g); })
          .Default([&](Operation *) {
            return op->emitError()
                   << describeLayer(op) << ": no Darknet equivalent";
          });
  if (failed(written))
    return failure();
  finishLayer(layer.output());
  return success();
}

bool Exporter::foldsIntoShortcut(const Layer &layer) {
  // The import's reading of a strided [shortcut] (docs/darknet.md §R4.7):
  // it folds back when it is still exactly what the import made, a 1x1
  // maxpool of a layer's output, read only as shortcuts' from= inputs, whose
  // stride is the one Darknet derives from the sizes (W/w). Anything else
  // (a pass changed it) is exported as the [maxpool] it is, which computes
  // the same.
  auto mp = dyn_cast<MaxPoolOp>(layer.head);
  if (!mp || !mp->hasAttr("qsim.shortcut_subsample") || layer.ops.size() != 1 ||
      mp.getSize() != 1 || mp.getPadding() != 0 ||
      !indexOf.count(mp.getInput()))
    return false;
  shapes::CHW in = chwOf(mp.getInput()), out = chwOf(mp.getOutput());
  int64_t stride = mp.getStride()[0];
  if (mp.getStride()[1] != stride ||
      std::max<int64_t>(1, in.w / out.w) != stride ||
      std::max<int64_t>(1, in.h / out.h) != stride ||
      mp.getOutput().use_empty())
    return false;
  for (OpOperand &use : mp.getOutput().getUses())
    if (!isa<ShortcutOp>(use.getOwner()) || use.getOperandNumber() == 0)
      return false;
  return true;
}

//===----------------------------------------------------------------------===//
// One exporter per layer kind: its section, keys and weights (in Darknet's
// order)
//===----------------------------------------------------------------------===//

LogicalResult Exporter::beginSection(Operation *op, Value input,
                                     StringRef name) {
  if (failed(requirePrevious(op, input)))
    return failure();
  section(name);
  return success();
}

void Exporter::strideKeys(ArrayRef<int64_t> stride) {
  if (stride[0] == stride[1]) {
    key("stride", stride[1]);
  } else {
    key("stride_x", stride[1]);
    key("stride_y", stride[0]);
  }
}

void Exporter::anchorsKey(ArrayRef<float> anchors) {
  cfg << "anchors=";
  for (size_t i = 0; i < anchors.size(); ++i)
    cfg << (i == 0 ? "" : (i % 2 ? "," : ", ")) << formatFloat(anchors[i]);
  cfg << "\n";
}

LogicalResult Exporter::writeBatchNormStats(Operation *op, BatchNormOp bn,
                                            int64_t channels) {
  return failure(
      failed(writeFloats(op, "scale", bn.getScale(), channels)) ||
      failed(writeFloats(op, "mean", bn.getMean(), channels)) ||
      failed(writeFloats(op, "variance", bn.getVariance(), channels)));
}

LogicalResult Exporter::exportConvolutional(Conv2DOp conv, BatchNormOp bn) {
  Operation *op = conv.getOperation();
  if (failed(requirePrevious(op, conv.getInput())))
    return failure();
  if (conv.getKernelH() != conv.getKernelW())
    return op->emitError() << describeLayer(op)
                           << ": Darknet convolutions are square; this "
                           << "one is " << conv.getKernelH() << "x"
                           << conv.getKernelW();
  if (conv.getPadding()[0] != conv.getPadding()[1])
    return op->emitError() << describeLayer(op)
                           << ": Darknet pads both axes equally";
  section("convolutional");
  if (bn)
    key("batch_normalize", 1);
  key("filters", conv.getFilters());
  key("size", conv.getKernelH());
  strideKeys(conv.getStride());
  int64_t p = conv.getPadding()[0];
  if (p == conv.getKernelH() / 2 && p > 0)
    key("pad", 1);
  else if (p > 0)
    key("padding", p);
  if (conv.getGroups() != 1)
    key("groups", conv.getGroups());
  if (conv.getDilation() != 1)
    key("dilation", conv.getDilation());
  if (conv.getXnor())
    key("xnor", 1);
  key("activation",
      stringifyActivation(bn ? bn.getActivation() : conv.getActivation()));
  extras(op);
  // share_index (kept in qsim.cfg): the weights are another layer's and
  // Darknet reads none for this one.
  if (auto cfgKeys = op->getAttrOfType<DictionaryAttr>("qsim.cfg");
      cfgKeys && cfgKeys.get("share_index"))
    return success();
  return writeConvWeights(conv, bn);
}

LogicalResult Exporter::writeConvWeights(Conv2DOp conv, BatchNormOp bn) {
  Operation *op = conv.getOperation();
  int64_t f = conv.getFilters();
  if (bn) {
    if (failed(writeFloats(op, "bias", bn.getBias(), f)) ||
        failed(writeBatchNormStats(op, bn, f)))
      return failure();
  } else if (failed(writeFloats(op, "bias", conv.getBias(), f,
                                /*zerosIfAbsent=*/(bool)conv.getWeight()))) {
    return failure();
  }
  int64_t n = f * (conv.getInputChannels() / conv.getGroups()) *
              conv.getKernelH() * conv.getKernelW();
  return writeFloats(op, "weight", conv.getWeight(), n);
}

LogicalResult Exporter::exportCrnn(Conv2DOp input, BatchNormOp inputBn) {
  // The import's ops of one [crnn] (docs/darknet.md §R4.22): input
  // convolution, the zero state (upsample, scale 0) and the self
  // convolution on it, their sum (shortcut), the output convolution. They
  // fold back into one section when they are still exactly that chain.
  Operation *op = input.getOperation();
  auto changed = [&](StringRef what) {
    return op->emitError() << describeLayer(op) << ": the ops of this [crnn] "
                           << "layer were changed (" << what
                           << "); Darknet's [crnn] cannot express them";
  };
  Value in = inputBn ? inputBn.getResult() : input.getResult();
  UpsampleOp zero;
  ShortcutOp state;
  for (Operation *user : in.getUsers()) {
    if (auto z = dyn_cast<UpsampleOp>(user); z && crnnRole(z) == "zero")
      zero = z;
    else if (auto sc = dyn_cast<ShortcutOp>(user);
             sc && crnnRole(sc) == "state")
      state = sc;
    else
      return changed("the input convolution has another user");
  }
  if (!zero || !state || zero.getStride() != 1 ||
      zero.getScale().convertToFloat() != 0.0f || !zero->hasOneUse())
    return changed("no zero state");
  auto self = dyn_cast<Conv2DOp>(*zero->user_begin());
  if (!self || crnnRole(self) != "self")
    return changed("no self convolution");
  BatchNormOp selfBn, outputBn;
  Value selfOut = convLayerOutput(self, selfBn);
  if (state.getInputs().size() != 2 || state.getInputs()[0] != in ||
      state.getInputs()[1] != selfOut ||
      state.getActivation() != Activation::linear || !state->hasOneUse())
    return changed("the state is not input + self");
  auto output = dyn_cast<Conv2DOp>(*state->user_begin());
  if (!output || crnnRole(output) != "output")
    return changed("no output convolution");
  Value out = convLayerOutput(output, outputBn);
  Conv2DOp convs[] = {input, self, output};
  BatchNormOp bns[] = {inputBn, selfBn, outputBn};
  auto activationOf = [](Conv2DOp c, BatchNormOp b) {
    return b ? b.getActivation() : c.getActivation();
  };
  for (int i = 0; i < 3; ++i) {
    Conv2DOp c = convs[i];
    if (c.getSize() != input.getSize() || c.getStride() != input.getStride() ||
        c.getPadding() != input.getPadding() ||
        c.getGroups() != input.getGroups() ||
        c.getDilation() != input.getDilation() || c.getXnor() ||
        (bool)bns[i] != (bool)inputBn ||
        (bns[i] && c.getActivation() != Activation::linear) ||
        activationOf(c, bns[i]) != activationOf(input, inputBn))
      return changed("its convolutions differ in size, stride, padding, "
                     "groups, dilation, batch norm or activation");
  }
  if (input.getKernelH() != input.getKernelW() ||
      input.getStride()[0] != input.getStride()[1] ||
      input.getPadding()[0] != input.getPadding()[1])
    return changed("non-square kernel, stride or padding");
  if (failed(requirePrevious(op, input.getInput())))
    return failure();
  section("crnn");
  if (inputBn)
    key("batch_normalize", 1);
  int64_t k = input.getKernelH(), p = input.getPadding()[0];
  key("size", k);
  key("stride", input.getStride()[0]);
  if (p == k / 2 && p > 0)
    key("pad", 1);
  else if (p > 0)
    key("padding", p);
  key("output", output.getFilters());
  key("hidden", input.getFilters());
  if (input.getGroups() != 1)
    key("groups", input.getGroups());
  if (input.getDilation() != 1)
    key("dilation", input.getDilation());
  key("activation", stringifyActivation(activationOf(input, inputBn)));
  extras(op);
  for (int i = 0; i < 3; ++i)
    if (failed(writeConvWeights(convs[i], bns[i])))
      return failure();
  folded.insert(zero);
  folded.insert(self);
  folded.insert(state);
  folded.insert(output);
  finishLayer(out);
  return success();
}

LogicalResult Exporter::exportConnected(ConnectedOp fc, BatchNormOp bn) {
  Operation *op = fc.getOperation();
  if (failed(beginSection(op, fc.getInput(), "connected")))
    return failure();
  if (bn)
    key("batch_normalize", 1);
  key("output", fc.getOutputSize());
  key("activation",
      stringifyActivation(bn ? bn.getActivation() : fc.getActivation()));
  extras(op);
  int64_t o = fc.getOutputSize();
  int64_t in = cast<ShapedType>(fc.getInput().getType()).getNumElements();
  if (failed(writeFloats(op, "bias", bn ? bn.getBias() : fc.getBias(), o,
                         !bn && (bool)fc.getWeight())))
    return failure();
  auto header = module->getAttrOfType<DenseI64ArrayAttr>("qsim.weights_header");
  bool transposed = header && (header[0] > 1000 || header[1] > 1000);
  if (transposed && weights && fc.getWeight()) {
    std::vector<float> w = getFloats(*fc.getWeight()), t(w.size());
    for (int64_t a = 0; a < o; ++a)
      for (int64_t b = 0; b < in; ++b)
        t[b * o + a] = w[a * in + b];
    weights->write(reinterpret_cast<const char *>(t.data()),
                   t.size() * sizeof(float));
  } else if (failed(writeFloats(op, "weight", fc.getWeight(), o * in))) {
    return failure();
  }
  if (bn && failed(writeBatchNormStats(op, bn, o)))
    return failure();
  return success();
}

LogicalResult Exporter::exportBatchNorm(BatchNormOp bn) {
  Operation *op = bn.getOperation();
  if (failed(requirePrevious(op, bn.getInput())))
    return failure();
  if (bn.getActivation() != Activation::linear)
    return op->emitError() << describeLayer(op)
                           << ": a standalone [batchnorm] has no activation "
                              "in Darknet";
  section("batchnorm");
  extras(op);
  int64_t c = cast<ShapedType>(bn.getInput().getType()).getDimSize(1);
  if (flavor == Flavor::AlexeyAB &&
      failed(writeFloats(op, "bias", bn.getBias(), c)))
    return failure();
  return writeBatchNormStats(op, bn, c);
}

LogicalResult Exporter::exportActivation(ActivationOp a) {
  if (failed(beginSection(a, a.getInput(), "activation")))
    return failure();
  key("activation", stringifyActivation(a.getActivation()));
  extras(a);
  return success();
}

LogicalResult Exporter::exportMaxPool(MaxPoolOp mp) {
  if (failed(beginSection(mp, mp.getInput(), "maxpool")))
    return failure();
  key("size", mp.getSize());
  strideKeys(mp.getStride());
  if (mp.getPadding() != mp.getSize() - 1)
    key("padding", mp.getPadding());
  extras(mp);
  return success();
}

LogicalResult Exporter::exportAvgPool(AvgPoolOp ap) {
  if (failed(beginSection(ap, ap.getInput(), "avgpool")))
    return failure();
  extras(ap);
  return success();
}

LogicalResult Exporter::exportRoute(RouteOp route) {
  SmallVector<int64_t> refs;
  for (Value v : route.getInputs()) {
    auto idx = producer(route, v);
    if (failed(idx))
      return failure();
    refs.push_back(*idx == nextIndex - 1 ? -1 : *idx);
  }
  section("route");
  cfg << "layers=";
  llvm::interleave(refs, cfg, ",");
  cfg << "\n";
  if (route.getGroups() != 1) {
    key("groups", route.getGroups());
    key("group_id", route.getGroupId());
  }
  extras(route);
  return success();
}

LogicalResult Exporter::exportShortcut(ShortcutOp sc) {
  if (failed(requirePrevious(sc, sc.getInputs()[0])))
    return failure();
  SmallVector<int64_t> refs;
  for (Value v : sc.getInputs().drop_front()) {
    auto idx = producer(sc, v);
    if (failed(idx))
      return failure();
    refs.push_back(*idx - nextIndex);
  }
  section("shortcut");
  cfg << "from=";
  llvm::interleave(refs, cfg, ",");
  cfg << "\n";
  key("activation", stringifyActivation(sc.getActivation()));
  extras(sc);
  return success();
}

LogicalResult Exporter::exportUpsample(UpsampleOp up) {
  if (failed(beginSection(up, up.getInput(), "upsample")))
    return failure();
  key("stride", up.getStride());
  if (up.getScale().convertToFloat() != 1.0f)
    keyF("scale", up.getScale().convertToFloat());
  extras(up);
  return success();
}

LogicalResult Exporter::exportReorg(ReorgOp ro) {
  if (failed(beginSection(ro, ro.getInput(), "reorg")))
    return failure();
  key("stride", ro.getStride());
  if (ro.getReverse())
    key("reverse", 1);
  extras(ro);
  return success();
}

LogicalResult Exporter::exportCrop(CropOp cr) {
  float scale = cr.getScale().convertToFloat();
  float shift = cr.getShift().convertToFloat();
  bool adjust = scale == 2.0f && shift == -1.0f;
  if (!adjust && !(scale == 1.0f && shift == 0.0f))
    return cr.emitError() << describeLayer(cr) << ": Darknet's [crop] can "
                          << "only scale by 2 and shift by -1, or neither "
                          << "(noadjust=1)";
  if (failed(beginSection(cr, cr.getInput(), "crop")))
    return failure();
  key("crop_height", cr.getCropHeight());
  key("crop_width", cr.getCropWidth());
  if (!adjust)
    key("noadjust", 1);
  extras(cr);
  return success();
}

LogicalResult Exporter::exportScaleChannels(ScaleChannelsOp scl) {
  if (failed(requirePrevious(scl, scl.getScales())))
    return failure();
  auto idx = producer(scl, scl.getFeatures());
  if (failed(idx))
    return failure();
  section("scale_channels");
  key("from", *idx - nextIndex);
  if (scl.getScaleWh())
    key("scale_wh", 1);
  key("activation", stringifyActivation(scl.getActivation()));
  extras(scl);
  return success();
}

LogicalResult Exporter::exportSoftmax(SoftmaxOp sm) {
  if (failed(beginSection(sm, sm.getInput(), "softmax")))
    return failure();
  key("groups", sm.getGroups());
  if (sm.getTemperature().convertToFloat() != 1.0f)
    keyF("temperature", sm.getTemperature().convertToFloat());
  extras(sm);
  return success();
}

LogicalResult Exporter::exportDropout(DropoutOp d) {
  if (failed(beginSection(d, d.getInput(), "dropout")))
    return failure();
  keyF("probability", d.getProbability().convertToFloat());
  extras(d);
  return success();
}

LogicalResult Exporter::exportYolo(YoloOp y) {
  if (failed(beginSection(y, y.getInput(), "yolo")))
    return failure();
  cfg << "mask=";
  llvm::interleave(y.getMask(), cfg, ",");
  cfg << "\n";
  anchorsKey(y.getAnchors());
  key("classes", y.getClasses());
  key("num", y.getNum());
  if (y.getScaleXY().convertToFloat() != 1.0f)
    keyF("scale_x_y", y.getScaleXY().convertToFloat());
  if (y.getNewCoords())
    key("new_coords", 1);
  if (y.getNmsKind() != NmsKind::default_nms)
    key("nms_kind", stringifyNmsKind(y.getNmsKind()));
  if (y.getBetaNms().convertToFloat() != 0.6f)
    keyF("beta_nms", y.getBetaNms().convertToFloat());
  extras(y);
  return success();
}

LogicalResult Exporter::exportRegion(RegionOp rg) {
  if (failed(beginSection(rg, rg.getInput(), "region")))
    return failure();
  anchorsKey(rg.getAnchors());
  key("classes", rg.getClasses());
  key("coords", rg.getCoords());
  key("num", rg.getNum());
  if (rg.getSoftmax())
    key("softmax", 1);
  if (rg.getClassfix() != 0)
    key("classfix", rg.getClassfix());
  extras(rg);
  return success();
}

LogicalResult Exporter::run() {
  func::FuncOp func = getMainFunc(module);
  if (!func)
    return module.emitError() << "no main function to export";
  auto inType = dyn_cast<ShapedType>(func.getArgumentTypes().front());
  if (func.getNumArguments() != 1 || !inType || inType.getRank() != 4 ||
      !inType.getElementType().isF32())
    return func.emitError() << "main must take one tensor<1xCxHxWxf32>";
  networkInput = func.getArgument(0);
  auto layers = getLayers(func);
  if (failed(layers))
    return failure();

  cfg << "[net]\n";
  key("width", inType.getDimSize(3));
  key("height", inType.getDimSize(2));
  key("channels", inType.getDimSize(1));
  if (auto lb = module->getAttrOfType<BoolAttr>("qsim.letter_box");
      lb && lb.getValue())
    key("letter_box", 1);
  if (auto net = module->getAttrOfType<DictionaryAttr>("qsim.net"))
    for (NamedAttribute a : net)
      if (auto s = dyn_cast<StringAttr>(a.getValue()))
        key(a.getName().getValue(), s.getValue());

  if (weights) {
    WeightsHeader header;
    if (auto h =
            module->getAttrOfType<DenseI64ArrayAttr>("qsim.weights_header");
        h && h.size() == 4) {
      header.major = h[0];
      header.minor = h[1];
      header.revision = h[2];
      header.seen = h[3];
    }
    writeWeightsHeader(*weights, header, flavor);
  }
  for (const Layer &layer : *layers)
    if (failed(exportLayer(layer)))
      return failure();
  // The training-only layers the import set aside (docs/darknet.md §R1.2,
  // §R4.21).
  currentHead = nullptr;
  trailingSections("qsim.contrastive", "contrastive");
  trailingSections("qsim.cost", "cost");
  return success();
}

void Exporter::trailingSections(StringRef attrName, StringRef name) {
  if (auto list = module->getAttrOfType<ArrayAttr>(attrName))
    for (auto keys : list.getAsRange<DictionaryAttr>()) {
      section(name);
      for (NamedAttribute a : keys)
        if (auto s = dyn_cast<StringAttr>(a.getValue()))
          key(a.getName().getValue(), s.getValue());
    }
}

LogicalResult Exporter::exportLocal(LocalOp l) {
  Operation *op = l.getOperation();
  if (failed(beginSection(op, l.getInput(), "local")))
    return failure();
  key("filters", l.getFilters());
  key("size", l.getSize());
  key("stride", l.getStride());
  key("pad", l.getPad());
  key("activation", stringifyActivation(l.getActivation()));
  extras(op);
  auto out = cast<ShapedType>(l.getOutput().getType());
  int64_t outputs = out.getNumElements();
  int64_t c = cast<ShapedType>(l.getInput().getType()).getDimSize(1);
  return failure(
      failed(writeFloats(op, "bias", l.getBias(), outputs,
                         /*zerosIfAbsent=*/(bool)l.getWeight())) ||
      failed(writeFloats(op, "weight", l.getWeight(),
                         outputs * c * l.getSize() * l.getSize())));
}

LogicalResult Exporter::exportLocalAvgPool(LocalAvgPoolOp a) {
  if (failed(beginSection(a, a.getInput(), "local_avgpool")))
    return failure();
  key("size", a.getSize());
  strideKeys(a.getStride());
  if (a.getPadding() != a.getSize() - 1)
    key("padding", a.getPadding());
  extras(a);
  return success();
}

LogicalResult Exporter::exportReorg3d(Reorg3dOp r) {
  if (failed(beginSection(r, r.getInput(), "reorg3d")))
    return failure();
  key("stride", r.getStride());
  if (r.getReverse())
    key("reverse", 1);
  extras(r);
  return success();
}

LogicalResult Exporter::exportSam(SamOp sam) {
  if (failed(requirePrevious(sam, sam.getInput())))
    return failure();
  auto idx = producer(sam, sam.getFeatures());
  if (failed(idx))
    return failure();
  section("sam");
  key("from", *idx - nextIndex);
  if (sam.getActivation() != Activation::linear)
    key("activation", stringifyActivation(sam.getActivation()));
  extras(sam);
  return success();
}

LogicalResult Exporter::exportDetection(DetectionOp d) {
  if (failed(beginSection(d, d.getInput(), "detection")))
    return failure();
  key("classes", d.getClasses());
  key("coords", d.getCoords());
  key("num", d.getNum());
  key("side", d.getSide());
  key("softmax", d.getSoftmax() ? 1 : 0);
  key("sqrt", d.getSqrt() ? 1 : 0);
  extras(d);
  return success();
}

LogicalResult Exporter::exportGaussianYolo(GaussianYoloOp g) {
  if (failed(beginSection(g, g.getInput(), "Gaussian_yolo")))
    return failure();
  cfg << "mask=";
  llvm::interleave(g.getMask(), cfg, ",");
  cfg << "\n";
  anchorsKey(g.getAnchors());
  key("classes", g.getClasses());
  key("num", g.getNum());
  if (g.getScaleXY().convertToFloat() != 1.0f)
    keyF("scale_x_y", g.getScaleXY().convertToFloat());
  extras(g);
  return success();
}

LogicalResult qsim::darknet::exportDarknet(ModuleOp module, raw_ostream &cfg,
                                           raw_ostream *weights) {
  Exporter exporter(module, cfg, weights);
  return exporter.run();
}
