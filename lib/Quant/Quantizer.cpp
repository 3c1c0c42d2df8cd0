//===- Quantizer.cpp - materializing a precision plan --------------------===//

#include "qsim/Quant/Quantizer.h"
#include "qsim/Quant/Calibration.h"
#include "qsim/Quant/Precision.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

#include <cmath>

using namespace mlir;
using namespace qsim;
using namespace qsim::quantization;

bool qsim::quantization::hasInt16Form(const Layer &layer) {
  Operation *op = layer.head;
  if (isa<Conv2DOp, ConnectedOp, MaxPoolOp, DropoutOp>(op))
    return true;
  if (auto up = dyn_cast<UpsampleOp>(op))
    return up.hasInt8Form();
  return false;
}

namespace {

enum class Kind { F32, F16, BF16, I8, I16 };

Kind kindOf(Value v) {
  Type el = getElementTypeOrSelf(v.getType());
  if (auto q = dyn_cast<mlir::quant::QuantizedType>(el))
    return q.getStorageTypeIntegralWidth() == 16 ? Kind::I16 : Kind::I8;
  if (el.isBF16())
    return Kind::BF16;
  return el.isF16() ? Kind::F16 : Kind::F32;
}

bool isInteger(Kind k) { return k == Kind::I8 || k == Kind::I16; }
bool isNarrowFloat(Kind k) { return k == Kind::F16 || k == Kind::BF16; }

/// The plan as the quantizer reads it: a W8A16 layer is an int8 layer
/// whose activations are int16 (it is in the int16 set, see run()).
std::string planOf(const Layer &layer) {
  std::string p = getAssignedPrecision(layer);
  return p == "w8a16" ? "int8" : p;
}

std::vector<int32_t> multipliers(const std::vector<rt::FixedPoint> &fps,
                                 bool shift) {
  std::vector<int32_t> out;
  for (const auto &f : fps)
    out.push_back(shift ? f.shift : f.multiplier);
  return out;
}

class Quantizer {
public:
  Quantizer(ModuleOp module, const QuantizeOptions &opts)
      : module(module), opts(opts), ctx(module.getContext()), b(ctx) {}
  LogicalResult run();

private:
  LogicalResult quantizeLayer(const Layer &layer, StringRef precision);
  void unifyRouteRanges(const std::vector<Layer> &layers);
  LogicalResult toFloat(const Layer &layer, Kind kind);
  LogicalResult toInteger(const Layer &layer, Kind kind);
  /// Whether an int8-planned layer gets int16 activations (W8A16).
  FailureOr<bool> wantsInt16(const Layer &layer);
  LogicalResult quantizeWeighted(Operation *op, int64_t channels);
  /// `v` converted to `target`, cast ops inserted before `before`.
  FailureOr<Value> convert(Value v, Kind target, Operation *before);
  /// Int8 (or symmetric int16) parameters for a float value from its
  /// calibration.
  FailureOr<rt::QuantChoice> paramsFor(Value v, Operation *user,
                                       Kind kind = Kind::I8);
  Type int8Type(rt::QuantChoice p) {
    return mlir::quant::UniformQuantizedType::get(
        mlir::quant::QuantizationFlags::Signed, b.getIntegerType(8),
        b.getF32Type(), p.scale, p.zeroPoint, -128, 127);
  }
  Type int16Type(rt::QuantChoice p) {
    return mlir::quant::UniformQuantizedType::get(
        mlir::quant::QuantizationFlags::Signed, b.getIntegerType(16),
        b.getF32Type(), p.scale, 0, -32768, 32767);
  }
  Type integerType(rt::QuantChoice p, Kind kind) {
    return kind == Kind::I16 ? int16Type(p) : int8Type(p);
  }
  static RankedTensorType withElement(Value v, Type el) {
    return RankedTensorType::get(cast<ShapedType>(v.getType()).getShape(), el);
  }
  static std::pair<float, int32_t> qparams(Value v) {
    auto q = cast<mlir::quant::UniformQuantizedType>(
        getElementTypeOrSelf(v.getType()));
    return {(float)q.getScale(), (int32_t)q.getZeroPoint()};
  }
  ElementsAttr toHalf(ElementsAttr a, StringRef name);
  ElementsAttr toBF16(ElementsAttr a, StringRef name);

  ModuleOp module;
  QuantizeOptions opts;
  MLIRContext *ctx;
  OpBuilder b;
  llvm::DenseMap<std::pair<Value, int>, Value> casts;
  /// Cast results -> the value whose calibration describes them.
  llvm::DenseMap<Value, Value> origin;
};

FailureOr<rt::QuantChoice> Quantizer::paramsFor(Value v, Operation *user,
                                                Kind kind) {
  auto it = origin.find(v);
  Value src = it == origin.end() ? v : it->second;
  auto range = getCalibratedRange(src);
  if (!range) {
    std::string who = isa<BlockArgument>(src)
                          ? std::string("the network input")
                          : describeLayer(src.getDefiningOp());
    return user->emitError() << describeLayer(user) << ": " << who
                             << " has no calibrated range (run "
                                "--qsim-calibrate before --qsim-quantize)";
  }
  if (kind == Kind::I16) {
    // Symmetric over [-32767, 32767], zero point 0 (TFLite's 16x8).
    float m = std::max(std::fabs(range->first), std::fabs(range->second));
    rt::QuantChoice c;
    c.scale = m > 0 ? m / 32767.0f : 1.0f;
    if (opts.pow2Scales)
      c.scale = std::exp2(std::ceil(std::log2(c.scale)));
    return c;
  }
  return rt::chooseQuantParams(range->first, range->second,
                               opts.symmetricActivations, opts.pow2Scales);
}

FailureOr<Value> Quantizer::convert(Value v, Kind target, Operation *before) {
  Kind k = kindOf(v);
  if (k == target)
    return v;
  auto key = std::make_pair(v, (int)target);
  if (auto it = casts.find(key); it != casts.end())
    return it->second;
  Value src = origin.count(v) ? origin[v] : v;
  b.setInsertionPoint(before);
  Location loc = before->getLoc();
  Value out;
  // Between two non-f32 kinds (integer <-> integer, integer <-> 16-bit
  // float, f16 <-> bf16, the last two the same width: no truncf) through f32.
  if (k != Kind::F32 && target != Kind::F32) {
    auto f = convert(v, Kind::F32, before);
    if (failed(f))
      return failure();
    auto r = convert(*f, target, before);
    if (failed(r))
      return failure();
    out = *r;
  } else if (isInteger(target)) {
    auto p = paramsFor(v, before, target);
    if (failed(p))
      return failure();
    out = b.create<mlir::quant::QuantizeCastOp>(
        loc, withElement(v, integerType(*p, target)), v);
  } else if (isInteger(k)) {
    out = b.create<mlir::quant::DequantizeCastOp>(
        loc, withElement(v, b.getF32Type()), v);
  } else if (isNarrowFloat(target)) {
    Type el = target == Kind::F16 ? (Type)b.getF16Type() : b.getBF16Type();
    out = b.create<arith::TruncFOp>(loc, withElement(v, el), v);
  } else {
    out = b.create<arith::ExtFOp>(loc, withElement(v, b.getF32Type()), v);
  }
  origin[out] = src;
  casts[key] = out;
  return out;
}

ElementsAttr Quantizer::toHalf(ElementsAttr a, StringRef name) {
  std::vector<float> v = getFloats(a);
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    h[i] = rt::floatToHalf(v[i]);
  auto type =
      RankedTensorType::get(a.getShapedType().getShape(), b.getF16Type());
  return makeResourceAttr(type, name, ArrayRef<uint16_t>(h));
}

ElementsAttr Quantizer::toBF16(ElementsAttr a, StringRef name) {
  std::vector<float> v = getFloats(a);
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    h[i] = rt::floatToBF16(v[i]);
  auto type =
      RankedTensorType::get(a.getShapedType().getShape(), b.getBF16Type());
  return makeResourceAttr(type, name, ArrayRef<uint16_t>(h));
}

LogicalResult Quantizer::toFloat(const Layer &layer, Kind kind) {
  Type el = kind == Kind::F16    ? (Type)b.getF16Type()
            : kind == Kind::BF16 ? (Type)b.getBF16Type()
                                 : (Type)b.getF32Type();
  std::string base = "layer" + std::to_string(layer.index) +
                     (kind == Kind::F16    ? "_f16"
                      : kind == Kind::BF16 ? "_bf16"
                                           : "");
  for (Operation *op : layer.ops) {
    if (isPrecisionCast(op))
      continue;
    for (OpOperand &operand : op->getOpOperands()) {
      // A batch norm reads its own layer's conv.
      if (operand.get().getDefiningOp() &&
          llvm::is_contained(layer.ops, operand.get().getDefiningOp()))
        continue;
      auto c = convert(operand.get(), kind, layer.ops.front());
      if (failed(c))
        return failure();
      operand.set(*c);
    }
    if (isNarrowFloat(kind)) {
      // Weights, biases and batch-norm parameters are stored narrow too: a
      // bf16 layer reads bf16-rounded weights and accumulates in f32.
      for (Value r : op->getResults())
        r.setType(withElement(r, el));
      for (NamedAttribute a : op->getAttrs())
        if (auto e = dyn_cast<ElementsAttr>(a.getValue());
            e && e.getShapedType().getElementType().isF32()) {
          std::string name = base + "_" + a.getName().getValue().str();
          op->setAttr(a.getName(),
                      kind == Kind::F16 ? toHalf(e, name) : toBF16(e, name));
        }
    }
  }
  return success();
}

LogicalResult Quantizer::quantizeWeighted(Operation *op, int64_t channels) {
  auto weightAttr = op->getAttrOfType<ElementsAttr>("weight");
  if (!weightAttr)
    return op->emitError()
           << describeLayer(op)
           << ": has no weights to quantize (a shape-only model)";
  std::vector<float> w = getFloats(weightAttr);
  std::vector<float> bias(channels, 0.0f);
  if (auto ba = op->getAttrOfType<ElementsAttr>("bias"))
    bias = getFloats(ba);
  auto [sIn, zpIn] = qparams(op->getOperand(0));
  auto [sOut, zpOut] = qparams(op->getResult(0));
  int64_t idx = getLayerIndexFromLoc(op->getLoc()).value_or(0);
  const QuantizeOptions layerOpts = opts.forLayer(idx);
  const int bits = layerOpts.weightBits;
  const int64_t qmax = rt::weightQMax(bits);
  std::vector<float> sw = weightScales(w, channels, layerOpts);
  int64_t per = w.size() / channels;
  std::vector<int8_t> wq(w.size());
  std::vector<int32_t> bq(channels);
  std::vector<rt::FixedPoint> m(channels), mneg(channels);
  for (int64_t f = 0; f < channels; ++f) {
    for (int64_t i = 0; i < per; ++i)
      wq[f * per + i] = rt::quantizeWeight(w[f * per + i], sw[f], bits);
    double accScale = (double)sIn * sw[f];
    double bv = std::round((double)bias[f] / accScale);
    bq[f] =
        (int32_t)std::max<double>(INT32_MIN, std::min<double>(INT32_MAX, bv));
    m[f] = rt::quantizeMultiplier(accScale / sOut);
    mneg[f] = rt::quantizeMultiplier(0.1 * accScale / sOut);
  }
  std::string base = "layer" + std::to_string(idx) + "_int8";
  auto wShape = weightAttr.getShapedType().getShape();
  op->setAttr("weight", makeResourceAttr(
                            RankedTensorType::get(wShape, b.getIntegerType(8)),
                            base + "_weight", ArrayRef<int8_t>(wq)));
  op->setAttr("bias", makeResourceAttr(RankedTensorType::get(
                                           {channels}, b.getIntegerType(32)),
                                       base + "_bias", ArrayRef<int32_t>(bq)));
  Type wq8;
  if (opts.perChannelWeights) {
    SmallVector<double> scales(sw.begin(), sw.end());
    SmallVector<int64_t> zps(channels, 0);
    wq8 = mlir::quant::UniformQuantizedPerAxisType::get(
        mlir::quant::QuantizationFlags::Signed, b.getIntegerType(8),
        b.getF32Type(), scales, zps, 0, -qmax, qmax);
  } else {
    wq8 = mlir::quant::UniformQuantizedType::get(
        mlir::quant::QuantizationFlags::Signed, b.getIntegerType(8),
        b.getF32Type(), sw[0], 0, -qmax, qmax);
  }
  op->setAttr("weight_quant", TypeAttr::get(wq8));
  op->setAttr("multiplier", b.getDenseI32ArrayAttr(multipliers(m, false)));
  op->setAttr("shift", b.getDenseI32ArrayAttr(multipliers(m, true)));
  if (op->getAttrOfType<ActivationAttr>("activation").getValue() ==
      Activation::leaky) {
    op->setAttr("neg_multiplier",
                b.getDenseI32ArrayAttr(multipliers(mneg, false)));
    op->setAttr("neg_shift", b.getDenseI32ArrayAttr(multipliers(mneg, true)));
  }
  // A W8A16 layer accumulates in 64 bits; the 16-bit accumulator
  // simulation is about int8 layers.
  if (opts.accumulatorBits == 16 && kindOf(op->getResult(0)) == Kind::I8)
    op->setAttr("accumulator_bits", b.getI64IntegerAttr(16));
  return success();
}

FailureOr<bool> Quantizer::wantsInt16(const Layer &layer) {
  bool chosen = opts.int16Layers.count(layer.index);
  if (chosen && !hasInt16Form(layer))
    return layer.head->emitError()
           << describeLayer(layer.head)
           << ": has no W8A16 form (int16 activations are for "
              "convolutional, connected, maxpool, upsample and dropout "
              "layers)";
  return chosen || (opts.activationBits == 16 && hasInt16Form(layer));
}

LogicalResult Quantizer::toInteger(const Layer &layer, Kind kind) {
  Operation *op = layer.head;
  if (layer.batchNorm)
    return op->emitError() << describeLayer(op)
                           << ": fold its batch norm before quantizing "
                              "(--qsim-fold-batchnorm)";
  if (!hasInt8Form(layer))
    return op->emitError() << describeLayer(op) << ": has no int8 form";
  for (OpOperand &operand : op->getOpOperands()) {
    auto c = convert(operand.get(), kind, layer.ops.front());
    if (failed(c))
      return failure();
    operand.set(*c);
  }
  Value result = op->getResult(0);
  // Data movement keeps its input's parameters.
  bool identityRoute = false;
  if (auto r = dyn_cast<RouteOp>(op))
    identityRoute = r.getInputs().size() == 1 && r.getGroups() == 1;
  if (isa<MaxPoolOp, UpsampleOp, ReorgOp, DropoutOp>(op) || identityRoute) {
    result.setType(
        withElement(result, getElementTypeOrSelf(op->getOperand(0).getType())));
    if (auto r = dyn_cast<RouteOp>(op)) {
      r.setInputMultiplierAttr(b.getDenseI32ArrayAttr({1 << 30}));
      r.setInputShiftAttr(b.getDenseI32ArrayAttr({30}));
    }
    return success();
  }
  auto p = paramsFor(result, op, kind);
  if (failed(p))
    return failure();
  result.setType(withElement(result, integerType(*p, kind)));
  float sOut = p->scale;
  if (auto conv = dyn_cast<Conv2DOp>(op))
    return quantizeWeighted(op, conv.getFilters());
  if (auto fc = dyn_cast<ConnectedOp>(op))
    return quantizeWeighted(op, fc.getOutputSize());
  std::vector<rt::FixedPoint> fps;
  bool shortcut = isa<ShortcutOp>(op);
  for (Value in : op->getOperands()) {
    double ratio = (double)qparams(in).first / sOut;
    if (shortcut)
      ratio *= 65536.0; // 2^16 extra fractional bits (QuantKernels.h)
    fps.push_back(rt::quantizeMultiplier(ratio));
  }
  if (auto r = dyn_cast<RouteOp>(op)) {
    r.setInputMultiplierAttr(b.getDenseI32ArrayAttr(multipliers(fps, false)));
    r.setInputShiftAttr(b.getDenseI32ArrayAttr(multipliers(fps, true)));
    return success();
  }
  auto sc = cast<ShortcutOp>(op);
  sc.setInputMultiplierAttr(b.getDenseI32ArrayAttr(multipliers(fps, false)));
  sc.setInputShiftAttr(b.getDenseI32ArrayAttr(multipliers(fps, true)));
  if (sc.getActivation() == Activation::leaky) {
    rt::FixedPoint neg = rt::quantizeMultiplier(0.1);
    sc.setNegMultiplierAttr(b.getDenseI32ArrayAttr({neg.multiplier}));
    sc.setNegShiftAttr(b.getDenseI32ArrayAttr({neg.shift}));
  }
  return success();
}

/// Follows identity data movement (max pooling, upsampling, reorg, dropout,
/// single-input routes) back to the op whose range defines the value.
static Operation *rangeSource(Value v) {
  Operation *def = v.getDefiningOp();
  while (def && (isa<MaxPoolOp, UpsampleOp, ReorgOp, DropoutOp>(def) ||
                 (isa<RouteOp>(def) && def->getNumOperands() == 1 &&
                  cast<RouteOp>(def).getGroups() == 1)))
    def = def->getOperand(0).getDefiningOp();
  return def;
}

void Quantizer::unifyRouteRanges(const std::vector<Layer> &layers) {
  // An int8 concatenation whose inputs share its scale and zero point is a
  // plain copy (TFLite does the same): widen the range of each int8 input's
  // source to the route's (which covers them all). Sources feeding several
  // routes take the union.
  llvm::DenseMap<Operation *, std::string> precisionOf;
  for (const Layer &l : layers)
    precisionOf[l.head] = planOf(l);
  for (const Layer &l : layers) {
    auto route = dyn_cast<RouteOp>(l.head);
    if (!route || precisionOf[l.head] != "int8" || route.getGroups() != 1 ||
        route.getInputs().size() < 2)
      continue;
    auto range = getCalibratedRange(route.getResult());
    if (!range)
      continue;
    for (Value in : route.getInputs()) {
      Operation *src = rangeSource(in);
      if (!src || !precisionOf.count(src) || precisionOf[src] != "int8")
        continue;
      auto d = src->getAttrOfType<DictionaryAttr>("qsim.calib");
      auto cur = getCalibratedRange(src->getResult(0));
      if (!d || !cur)
        continue;
      NamedAttrList attrs(d);
      attrs.set("lo", b.getF32FloatAttr(std::min(cur->first, range->first)));
      attrs.set("hi", b.getF32FloatAttr(std::max(cur->second, range->second)));
      attrs.set("unified_with_route", b.getBoolAttr(true));
      src->setAttr("qsim.calib", attrs.getDictionary(ctx));
    }
  }
  // The route's own range must cover its (possibly widened) inputs.
  for (const Layer &l : layers)
    if (auto route = dyn_cast<RouteOp>(l.head))
      if (precisionOf[l.head] == "int8" && route.getGroups() == 1 &&
          route.getInputs().size() >= 2)
        if (auto d = l.head->getAttrOfType<DictionaryAttr>("qsim.calib")) {
          float lo = 0, hi = 0;
          for (Value in : route.getInputs())
            if (Operation *src = rangeSource(in))
              if (auto r = getCalibratedRange(src->getResult(0))) {
                lo = std::min(lo, r->first);
                hi = std::max(hi, r->second);
              }
          NamedAttrList attrs(d);
          attrs.set("lo", b.getF32FloatAttr(lo));
          attrs.set("hi", b.getF32FloatAttr(hi));
          l.head->setAttr("qsim.calib", attrs.getDictionary(ctx));
        }
}

LogicalResult Quantizer::quantizeLayer(const Layer &layer,
                                       StringRef precision) {
  if (precision == "int8") {
    FailureOr<bool> int16 = wantsInt16(layer);
    if (failed(int16))
      return failure();
    return toInteger(layer, *int16 ? Kind::I16 : Kind::I8);
  }
  if (precision == "fp16")
    return toFloat(layer, Kind::F16);
  if (precision == "bf16")
    return toFloat(layer, Kind::BF16);
  if (precision == "fp32")
    return toFloat(layer, Kind::F32);
  return layer.head->emitError() << describeLayer(layer.head)
                                 << ": unknown precision '" << precision << "'";
}

LogicalResult Quantizer::run() {
  func::FuncOp func = getMainFunc(module);
  if (!func)
    return module.emitError() << "no main function";
  bool already = false;
  func.walk([&](Operation *op) { already |= isPrecisionCast(op); });
  if (already || module->hasAttr("qsim.quantization"))
    return module.emitError() << "the model is already quantized";
  auto layers = getLayers(func);
  if (failed(layers))
    return failure();
  for (int64_t i : opts.int16Layers) {
    if (i >= (int64_t)layers->size())
      return module.emitError()
             << "int16-layers: layer " << i << " does not exist (the model has "
             << layers->size() << " layers)";
    const Layer &l = (*layers)[i];
    if (planOf(l) != "int8")
      return l.head->emitError()
             << describeLayer(l.head) << ": int16 activations (W8A16) need a "
             << "layer planned int8, not " << getAssignedPrecision(l);
  }
  // A layer planned w8a16 is quantized exactly as int16-layers would: the
  // plan written by --qsim-assign-precision (auto, w8a16=, or a cfg's
  // precision=w8a16) and the option mean the same thing.
  for (const Layer &l : *layers)
    if (getAssignedPrecision(l) == "w8a16") {
      if (!hasInt16Form(l))
        return l.head->emitError()
               << describeLayer(l.head)
               << ": planned w8a16 but has no W8A16 form (int16 activations "
                  "are for convolutional, connected, maxpool, upsample and "
                  "dropout layers)";
      opts.int16Layers.insert(l.index);
    }
  unifyRouteRanges(*layers);
  for (const Layer &l : *layers)
    if (failed(quantizeLayer(l, planOf(l))))
      return failure();
  // The function keeps f32 results.
  auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
  for (OpOperand &operand : ret->getOpOperands()) {
    auto c = convert(operand.get(), Kind::F32, ret);
    if (failed(c))
      return failure();
    operand.set(*c);
  }
  module->setAttr(
      "qsim.quantization",
      b.getDictionaryAttr(
          {b.getNamedAttr("weights", b.getStringAttr(opts.perChannelWeights
                                                         ? "per-channel"
                                                         : "per-tensor")),
           b.getNamedAttr("activations",
                          b.getStringAttr(opts.symmetricActivations
                                              ? "symmetric"
                                              : "asymmetric")),
           b.getNamedAttr("scale",
                          b.getStringAttr(opts.pow2Scales ? "pow2" : "float")),
           b.getNamedAttr("accumulator",
                          b.getI64IntegerAttr(opts.accumulatorBits)),
           b.getNamedAttr("weight_bits", b.getI64IntegerAttr(opts.weightBits)),
           b.getNamedAttr("activation_bits",
                          b.getI64IntegerAttr(opts.activationBits)),
           b.getNamedAttr("rounding",
                          b.getStringAttr(rt::roundingName(opts.rounding)))}));
  return success();
}

} // namespace

std::vector<float>
qsim::quantization::weightScales(ArrayRef<float> w, int64_t channels,
                                 const QuantizeOptions &options) {
  std::vector<float> scales =
      rt::weightScales(w.data(), w.size(), channels, options.perChannelWeights,
                       options.pow2Scales, options.weightBits);
  if (options.weightRange == WeightRange::Max || w.empty())
    return scales;
  // At 4 bits the largest weight of a channel wastes most of the grid on a
  // few outliers; clipping them costs less than the coarser steps cost
  // every other weight. Ratio 1 (the max rule) is tried first and kept on
  // ties, so a block already on its grid gets its scale back.
  const int bits = options.weightBits;
  const float qmax = (float)rt::weightQMax(bits);
  int64_t blocks = options.perChannelWeights ? channels : 1;
  int64_t per = w.size() / blocks;
  for (int64_t b = 0; b < blocks; ++b) {
    ArrayRef<float> block = w.slice(b * per, per);
    float m = 0;
    for (float v : block)
      m = std::max(m, std::fabs(v));
    if (!(m > 0))
      continue;
    float best = options.perChannelWeights ? scales[b] : scales[0];
    double bestError = INFINITY;
    for (int step = 100; step >= 20; --step) {
      float s = (float)(step / 100.0) * m / qmax;
      if (options.pow2Scales)
        s = std::exp2(std::ceil(std::log2(s)));
      double error = 0;
      for (float v : block) {
        double d = (double)v - (double)rt::quantizeWeight(v, s, bits) * s;
        error += d * d;
      }
      if (error < bestError) {
        bestError = error;
        best = s;
      }
    }
    if (options.perChannelWeights)
      scales[b] = best;
    else
      std::fill(scales.begin(), scales.end(), best);
  }
  return scales;
}

LogicalResult qsim::quantization::parseWeight8Layers(
    ArrayRef<std::string> items, ModuleOp module, std::set<int64_t> &out) {
  std::vector<std::string> rest;
  bool first = false, last = false;
  for (const std::string &item : items) {
    StringRef t = StringRef(item).trim();
    if (t == "first")
      first = true;
    else if (t == "last")
      last = true;
    else
      rest.push_back(item);
  }
  if (failed(parseLayerList(rest, module, out)))
    return failure();
  if (!first && !last)
    return success();
  auto layers = getLayers(getMainFunc(module));
  if (failed(layers))
    return module.emitError() << "not a sequence of layers";
  bool seenFirst = false;
  for (const Layer &l : *layers) {
    if (!isa<Conv2DOp, ConnectedOp>(l.head))
      continue;
    if (first && !seenFirst) {
      out.insert(l.index);
      seenFirst = true;
    }
    if (!last)
      continue;
    if (feedsDetectionHead(l) ||
        llvm::any_of(l.output().getUsers(), llvm::IsaPred<func::ReturnOp>))
      out.insert(l.index);
  }
  return success();
}

LogicalResult
qsim::quantization::quantizeModule(ModuleOp module,
                                   const QuantizeOptions &options) {
  Quantizer q(module, options);
  return q.run();
}

std::optional<int> qsim::quantization::getWeightBits(Operation *weighted) {
  auto wq = weighted->getAttrOfType<TypeAttr>("weight_quant");
  if (!wq)
    return std::nullopt;
  auto q = dyn_cast<mlir::quant::QuantizedType>(wq.getValue());
  if (!q)
    return std::nullopt;
  int bits = 1;
  while (bits < 32 && rt::weightQMax(bits) < q.getStorageTypeMax())
    ++bits;
  return bits;
}
