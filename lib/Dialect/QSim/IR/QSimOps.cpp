//===- QSimOps.cpp - qsim dialect, verifiers, shapes, costs --------------===//

#include "qsim/Dialect/QSim/IR/QSimOps.h"
#include "qsim/Dialect/QSim/IR/Layers.h"
#include "qsim/Dialect/QSim/IR/Shapes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace qsim;
using qsim::shapes::CHW;

#include "qsim/Dialect/QSim/IR/QSimDialect.cpp.inc"
#include "qsim/Dialect/QSim/IR/QSimEnums.cpp.inc"
#define GET_ATTRDEF_CLASSES
#include "qsim/Dialect/QSim/IR/QSimAttrs.cpp.inc"
#include "qsim/Dialect/QSim/IR/QSimInterfaces.cpp.inc"
#define GET_OP_CLASSES
#include "qsim/Dialect/QSim/IR/QSimOps.cpp.inc"

void QSimDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "qsim/Dialect/QSim/IR/QSimOps.cpp.inc"
      >();
  addAttributes<
#define GET_ATTRDEF_LIST
#include "qsim/Dialect/QSim/IR/QSimAttrs.cpp.inc"
      >();
}

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

static InFlightDiagnostic layerError(Operation *op) {
  return op->emitError() << describeLayer(op) << ": ";
}

static FailureOr<SmallVector<int64_t, 4>>
shapeResult(Operation *op, bool ok, const CHW &out, const std::string &err) {
  if (!ok) {
    layerError(op) << err;
    return failure();
  }
  return SmallVector<int64_t, 4>{1, out.c, out.h, out.w};
}

static LogicalResult checkDims(Operation *op, StringRef name,
                               ArrayRef<int64_t> a, size_t n) {
  if (a.size() != n)
    return layerError(op) << "'" << name << "' needs " << n << " values, got "
                          << a.size();
  return success();
}

/// A weight attribute, if present, must have exactly `shape`.
static LogicalResult checkWeightShape(Operation *op, StringRef name,
                                      std::optional<ElementsAttr> attr,
                                      ArrayRef<int64_t> shape) {
  if (!attr)
    return success();
  auto type = attr->getShapedType();
  if (type.getShape() != shape) {
    auto diag = layerError(op) << "'" << name << "' has shape [";
    llvm::interleaveComma(type.getShape(), diag);
    diag << "], expected [";
    llvm::interleaveComma(shape, diag);
    return diag << "]";
  }
  return success();
}

static bool isQuantElement(Type t) { return isa<quant::QuantizedType>(t); }

/// Int16 activations (W8A16 layers, --qsim-quantize activation-bits=16) are
/// per-tensor symmetric `!quant.uniform<i16:f32, s>` (zero point 0).
static bool isInt16Activation(Type t) {
  auto q = dyn_cast<quant::UniformQuantizedType>(t);
  return q && q.getStorageType().isSignlessInteger(16) && q.isSigned() &&
         q.getZeroPoint() == 0 && q.getStorageTypeMin() == -32768 &&
         q.getStorageTypeMax() == 32767 && q.getExpressedType().isF32();
}

/// Quantized weights are 2..8 bits wide, kept in i8: `weight_quant`'s
/// storage range is [-q, q] with q = 2^(bits-1) - 1 (127 for 8 bits, 7 for
/// 4), and every stored weight lies inside it.
static LogicalResult verifyWeightRange(Operation *op, ElementsAttr weight,
                                       quant::QuantizedType wq) {
  int64_t q = wq.getStorageTypeMax();
  bool known = false;
  for (int bits = 2; bits <= 8; ++bits)
    known |= q == (1 << (bits - 1)) - 1;
  if (!known || wq.getStorageTypeMin() != -q)
    return layerError(op) << "weight_quant storage range ["
                          << wq.getStorageTypeMin() << ", " << q
                          << "] is not a symmetric 2..8-bit grid [-q, q], "
                             "q = 2^(bits-1) - 1";
  ArrayRef<char> raw = getRawBytes(weight);
  char splat = 0;
  if (auto d = dyn_cast<DenseElementsAttr>(weight); d && d.isSplat()) {
    splat = (char)d.getSplatValue<int8_t>();
    raw = ArrayRef<char>(splat);
  }
  for (size_t i = 0; i < raw.size(); ++i)
    if ((int8_t)raw[i] < -q || (int8_t)raw[i] > q)
      return layerError(op)
             << "weight " << i << " is " << (int)(int8_t)raw[i]
             << ", outside weight_quant's range [" << -q << ", " << q << "]";
  return success();
}

/// Weighted ops: float layers carry f32/f16/bf16 weights; quantized layers
/// carry i8 weights with their per-axis quantization, i32 biases and the
/// requantization constants.
static LogicalResult verifyWeightedTypes(
    Operation *op, Value input, Value output,
    std::optional<ElementsAttr> weight, std::optional<ElementsAttr> bias,
    std::optional<Type> weightQuant, std::optional<ArrayRef<int32_t>> mult,
    std::optional<ArrayRef<int32_t>> shift,
    std::optional<ArrayRef<int32_t>> negMult,
    std::optional<ArrayRef<int32_t>> negShift, std::optional<int64_t> accBits,
    Activation act, int64_t channels) {
  Type inEl = getElementTypeOrSelf(input.getType());
  Type outEl = getElementTypeOrSelf(output.getType());
  bool quantized = isQuantElement(inEl);
  if (quantized != isQuantElement(outEl))
    return layerError(op) << "input and result must both be quantized or "
                             "both be float";
  if (!quantized) {
    if (!isFloatElement(inEl) || inEl != outEl)
      return layerError(op) << "float layers need the same f32, f16 or bf16 "
                               "element type on input and result";
    if (weightQuant || mult || shift || negMult || negShift || accBits)
      return layerError(op) << "float layer has quantization attributes";
    for (auto w : {weight, bias})
      if (w && !isFloatElement(w->getShapedType().getElementType()))
        return layerError(op) << "float layer needs f32, f16 or bf16 weights";
    return success();
  }
  if (isInt16Activation(inEl) != isInt16Activation(outEl))
    return layerError(op) << "a W8A16 layer has int16 input and result";
  if (isInt16Activation(outEl) && accBits)
    return layerError(op) << "a W8A16 layer accumulates in 64 bits "
                             "(no accumulator_bits)";
  if (!weight || !weightQuant || !mult || !shift)
    return layerError(op) << "quantized layer needs weight, weight_quant, "
                             "multiplier and shift";
  if (!weight->getShapedType().getElementType().isSignlessInteger(8))
    return layerError(op) << "quantized layer needs i8 weights";
  auto wq = dyn_cast<quant::QuantizedType>(*weightQuant);
  if (!wq || !wq.getStorageType().isSignlessInteger(8))
    return layerError(op) << "weight_quant must be a quantized type with i8 "
                             "storage";
  if (failed(verifyWeightRange(op, *weight, wq)))
    return failure();
  if (auto pa = dyn_cast<quant::UniformQuantizedPerAxisType>(wq))
    if ((int64_t)pa.getScales().size() != channels ||
        pa.getQuantizedDimension() != 0)
      return layerError(op) << "per-axis weight_quant needs " << channels
                            << " scales on dimension 0";
  if ((int64_t)mult->size() != channels || (int64_t)shift->size() != channels)
    return layerError(op) << "multiplier and shift need " << channels
                          << " values (one per output channel)";
  for (int32_t s : *shift)
    if (s < -31 || s > 62)
      return layerError(op) << "shift " << s << " out of range [-31, 62]";
  for (int32_t m : *mult)
    if (m < 0)
      return layerError(op) << "multiplier must be non-negative";
  if (bias && !bias->getShapedType().getElementType().isSignlessInteger(32))
    return layerError(op) << "quantized layer needs i32 biases";
  if (!hasInt8Activation(act))
    return layerError(op) << "an int8 layer supports linear, relu, relu6 and "
                             "leaky activations, not "
                          << stringifyActivation(act);
  bool hasNeg = negMult && negShift && (int64_t)negMult->size() == channels &&
                (int64_t)negShift->size() == channels;
  if ((act == Activation::leaky) != hasNeg)
    return layerError(op) << "an int8 leaky layer needs neg_multiplier and "
                             "neg_shift per output channel (and only it)";
  if (accBits && *accBits != 16 && *accBits != 32)
    return layerError(op) << "accumulator_bits must be 16 or 32";
  return success();
}

/// Int8 activations are per-tensor `!quant.uniform<i8:f32, s:zp>`.
static bool isInt8Activation(Type t) {
  auto q = dyn_cast<quant::UniformQuantizedType>(t);
  return q && q.getStorageType().isSignlessInteger(8) && q.isSigned() &&
         q.getStorageTypeMin() == -128 && q.getStorageTypeMax() == 127 &&
         q.getExpressedType().isF32();
}

/// Which element types each op kind accepts (docs/quantization.md):
/// detection heads and the layers without an int8 form run in float; data
/// movement keeps its input type; route and shortcut requantize.
static LogicalResult verifyElementTypes(Operation *op) {
  SmallVector<Type> types;
  for (Type t : op->getOperandTypes())
    types.push_back(getElementTypeOrSelf(t));
  Type result = getElementTypeOrSelf(op->getResult(0).getType());
  SmallVector<Type> all(types);
  all.push_back(result);
  for (Type t : all)
    if (!isFloatElement(t) && !isInt8Activation(t) && !isInt16Activation(t))
      return layerError(op)
             << "element type " << t
             << " is neither f32, f16, bf16, !quant.uniform<i8:f32, "
                "scale:zero_point> nor !quant.uniform<i16:f32, "
                "scale>";
  bool int16 = llvm::any_of(all, isInt16Activation);
  if (int16 &&
      !isa<Conv2DOp, ConnectedOp, MaxPoolOp, UpsampleOp, DropoutOp>(op))
    return layerError(op) << "has no int16 (W8A16) form: int16 activations "
                             "are for convolutional, connected, maxpool, "
                             "upsample and dropout layers";
  if (int16 && isa<MaxPoolOp, UpsampleOp, DropoutOp>(op)) {
    if (types[0] != result)
      return layerError(op)
             << "an int16 " << op->getName() << " keeps its input's scale";
    if (auto up = dyn_cast<UpsampleOp>(op); up && !up.hasInt8Form())
      return layerError(op) << "int16 upsampling needs a positive stride and "
                               "scale 1";
    return success();
  }
  bool quantized = isInt8Activation(result);
  if (isa<BatchNormOp, AvgPoolOp, ScaleChannelsOp, SoftmaxOp, YoloOp, RegionOp,
          ActivationOp, CropOp, LocalOp, LocalAvgPoolOp, Reorg3dOp, SamOp,
          DetectionOp, GaussianYoloOp>(op)) {
    if (quantized || llvm::any_of(types, isInt8Activation))
      return layerError(op) << "has no int8 form: it runs on f32, f16 or bf16 "
                               "(dequantize its input with quant.dcast)";
    return success();
  }
  if (isa<MaxPoolOp, UpsampleOp, ReorgOp, DropoutOp>(op)) {
    if (types[0] != result && (quantized || isInt8Activation(types[0])))
      return layerError(op) << "an int8 " << op->getName()
                            << " keeps its input's scale and zero point";
    if (auto up = dyn_cast<UpsampleOp>(op);
        up && quantized && !up.hasInt8Form())
      return layerError(op) << "int8 upsampling needs a positive stride and "
                               "scale 1";
    return success();
  }
  if (isa<RouteOp, ShortcutOp>(op)) {
    for (Type t : types)
      if (isInt8Activation(t) != quantized || (!quantized && t != result))
        return layerError(op) << "inputs and result must all be int8 or all "
                                 "the same float type";
    std::optional<ArrayRef<int32_t>> mult, shift;
    if (auto r = dyn_cast<RouteOp>(op)) {
      mult = r.getInputMultiplier();
      shift = r.getInputShift();
    } else {
      auto sc = cast<ShortcutOp>(op);
      mult = sc.getInputMultiplier();
      shift = sc.getInputShift();
      if (quantized) {
        Activation a = sc.getActivation();
        if (!hasInt8Activation(a, /*onShortcut=*/true))
          return layerError(op) << "an int8 shortcut supports linear, relu and "
                                   "leaky activations, not "
                                << stringifyActivation(a);
        bool hasNeg = sc.getNegMultiplier() && sc.getNegShift() &&
                      sc.getNegMultiplier()->size() == 1 &&
                      sc.getNegShift()->size() == 1;
        if ((a == Activation::leaky) != hasNeg)
          return layerError(op) << "an int8 leaky shortcut needs one "
                                   "neg_multiplier/neg_shift (and only it)";
      }
    }
    if (quantized != (mult && shift))
      return layerError(op)
             << (quantized ? "an int8 op needs" : "a float op has")
             << " input_multiplier/input_shift";
    if (quantized && (mult->size() != op->getNumOperands() ||
                      shift->size() != op->getNumOperands()))
      return layerError(op) << "input_multiplier/input_shift need one value "
                               "per input";
    return success();
  }
  return success(); // conv2d / connected: verifyWeightedTypes
}

LogicalResult qsim::detail::verifyLayerOp(Operation *op) {
  SmallVector<Type> types(op->getOperandTypes());
  types.append(op->getResultTypes().begin(), op->getResultTypes().end());
  for (Type t : types) {
    auto st = cast<ShapedType>(t);
    if (!st.hasStaticShape() || st.getDimSize(0) != 1)
      return layerError(op) << "tensors must be static 1xCxHxW, got " << t;
  }
  if (failed(verifyElementTypes(op)))
    return failure();
  auto layer = cast<LayerOpInterface>(op);
  auto shape = layer.inferOutputShape();
  if (failed(shape))
    return failure();
  auto resultShape = cast<ShapedType>(op->getResult(0).getType()).getShape();
  if (resultShape != ArrayRef<int64_t>(*shape)) {
    auto diag = layerError(op) << "result shape [";
    llvm::interleaveComma(resultShape, diag);
    diag << "] does not match Darknet's [";
    llvm::interleaveComma(*shape, diag);
    return diag << "]";
  }
  return success();
}

//===----------------------------------------------------------------------===//
// conv2d
//===----------------------------------------------------------------------===//

int64_t Conv2DOp::getInputChannels() { return chwOf(getInput()).c; }
bool Conv2DOp::isDepthwise() {
  return getGroups() > 1 && getGroups() == getInputChannels() &&
         getGroups() == getFilters();
}
//===----------------------------------------------------------------------===//
// int8 forms (the one rule: docs/quantization.md)
//===----------------------------------------------------------------------===//

bool qsim::hasInt8Activation(Activation a, bool onShortcut) {
  return a == Activation::linear || a == Activation::relu ||
         a == Activation::leaky || (!onShortcut && a == Activation::relu6);
}

/// The activation a weighted layer ends with: its own, or that of the batch
/// norm that follows it unfolded (folding moves it onto the layer).
static Activation layerActivation(Operation *op, Activation own) {
  Value out = op->getResult(0);
  if (out.hasOneUse())
    if (auto bn = dyn_cast<BatchNormOp>(*out.getUsers().begin());
        bn && !bn.getStandalone())
      return bn.getActivation();
  return own;
}

bool Conv2DOp::hasInt8Form() {
  // XNOR convolutions binarize in float (docs/darknet.md §R4.16).
  return !getXnor() &&
         hasInt8Activation(layerActivation(*this, getActivation()));
}
bool ConnectedOp::hasInt8Form() {
  return hasInt8Activation(layerActivation(*this, getActivation()));
}
bool ShortcutOp::hasInt8Form() {
  return hasInt8Activation(getActivation(), /*onShortcut=*/true);
}
bool UpsampleOp::hasInt8Form() {
  return getStride() > 0 && getScale().convertToFloat() == 1.0f;
}
bool MaxPoolOp::hasInt8Form() { return true; }
bool RouteOp::hasInt8Form() { return true; }
bool ReorgOp::hasInt8Form() { return true; }
bool DropoutOp::hasInt8Form() { return true; }

StringRef Conv2DOp::getDarknetSection() { return "convolutional"; }

FailureOr<SmallVector<int64_t, 4>> Conv2DOp::inferOutputShape() {
  if (getSize().size() != 2 || getStride().size() != 2 ||
      getPadding().size() != 2) {
    layerError(*this) << "size, stride and padding need 2 values each";
    return failure();
  }
  CHW out;
  std::string err;
  bool ok = shapes::conv2d(chwOf(getInput()), getFilters(), getSize()[0],
                           getSize()[1], getStride()[0], getStride()[1],
                           getPadding()[0], getPadding()[1], getGroups(),
                           getDilation(), out, err);
  return shapeResult(*this, ok, out, err);
}

int64_t Conv2DOp::getMACs() {
  auto out = chwOf(getOutput());
  return getFilters() * (getInputChannels() / getGroups()) * getKernelH() *
         getKernelW() * out.h * out.w;
}
// AlexeyAB divides an XNOR layer's figure by 32 (bit-packed products).
double Conv2DOp::getBFLOPs() {
  return 2.0 * getMACs() / 1e9 / (getXnor() ? 32 : 1);
}
int64_t Conv2DOp::getParameterCount() {
  return getFilters() * (getInputChannels() / getGroups()) * getKernelH() *
             getKernelW() +
         getFilters();
}

LogicalResult Conv2DOp::verify() {
  if (failed(checkDims(*this, "size", getSize(), 2)) ||
      failed(checkDims(*this, "stride", getStride(), 2)) ||
      failed(checkDims(*this, "padding", getPadding(), 2)))
    return failure();
  int64_t cin = getInputChannels();
  if (getGroups() < 1 || cin % getGroups() != 0)
    return layerError(*this) << "groups " << getGroups()
                             << " must divide the input channels " << cin;
  if (failed(checkWeightShape(
          *this, "weight", getWeight(),
          {getFilters(), cin / getGroups(), getKernelH(), getKernelW()})) ||
      failed(checkWeightShape(*this, "bias", getBias(), {getFilters()})))
    return failure();
  return verifyWeightedTypes(
      *this, getInput(), getOutput(), getWeight(), getBias(), getWeightQuant(),
      getMultiplier(), getShift(), getNegMultiplier(), getNegShift(),
      getAccumulatorBits(), getActivation(), getFilters());
}

//===----------------------------------------------------------------------===//
// connected
//===----------------------------------------------------------------------===//

StringRef ConnectedOp::getDarknetSection() { return "connected"; }
FailureOr<SmallVector<int64_t, 4>> ConnectedOp::inferOutputShape() {
  if (getOutputSize() < 1) {
    layerError(*this) << "output must be >= 1";
    return failure();
  }
  return SmallVector<int64_t, 4>{1, getOutputSize(), 1, 1};
}
int64_t ConnectedOp::getMACs() {
  return chwOf(getInput()).size() * getOutputSize();
}
// AlexeyAB's make_connected_layer never sets l.bflops, so its printed
// "Total BFLOPS" counts connected layers as 0 (docs/darknet.md
// "Statistics"); the MACs column still counts them.
double ConnectedOp::getBFLOPs() { return 0.0; }
int64_t ConnectedOp::getParameterCount() { return getMACs() + getOutputSize(); }
LogicalResult ConnectedOp::verify() {
  if (failed(checkWeightShape(*this, "weight", getWeight(),
                              {getOutputSize(), chwOf(getInput()).size()})) ||
      failed(checkWeightShape(*this, "bias", getBias(), {getOutputSize()})))
    return failure();
  return verifyWeightedTypes(
      *this, getInput(), getOutput(), getWeight(), getBias(), getWeightQuant(),
      getMultiplier(), getShift(), getNegMultiplier(), getNegShift(),
      getAccumulatorBits(), getActivation(), getOutputSize());
}

//===----------------------------------------------------------------------===//
// batchnorm
//===----------------------------------------------------------------------===//

StringRef BatchNormOp::getDarknetSection() {
  return getStandalone() ? "batchnorm" : "convolutional";
}
FailureOr<SmallVector<int64_t, 4>> BatchNormOp::inferOutputShape() {
  auto in = chwOf(getInput());
  return SmallVector<int64_t, 4>{1, in.c, in.h, in.w};
}
int64_t BatchNormOp::getParameterCount() {
  return (getStandalone() ? 4 : 3) * chwOf(getInput()).c;
}
LogicalResult BatchNormOp::verify() {
  int64_t c = chwOf(getInput()).c;
  for (auto [name, attr] :
       {std::pair<StringRef, std::optional<ElementsAttr>>{"scale", getScale()},
        {"mean", getMean()},
        {"variance", getVariance()},
        {"bias", getBias()}}) {
    if (failed(checkWeightShape(*this, name, attr, {c})))
      return failure();
    if (attr && !isFloatElement(attr->getShapedType().getElementType()))
      return layerError(*this) << "'" << name << "' must be f32, f16 or bf16";
  }
  Type el = getElementTypeOrSelf(getInput().getType());
  if (!isFloatElement(el) || el != getElementTypeOrSelf(getOutput().getType()))
    return layerError(*this) << "batch norm runs on f32, f16 or bf16 tensors "
                                "(fold it into the convolution before "
                                "quantizing: --qsim-fold-batchnorm)";
  if (getStandalone())
    return success();
  // Fused into its layer: the producer is a bias-less linear conv/connected.
  Operation *def = getInput().getDefiningOp();
  if (!def || !isa<Conv2DOp, ConnectedOp>(def))
    return layerError(*this)
           << "a batch norm that is part of its layer must follow a "
              "conv2d or connected op (mark a [batchnorm] layer standalone)";
  bool hasBias = isa<Conv2DOp>(def) ? (bool)cast<Conv2DOp>(def).getBias()
                                    : (bool)cast<ConnectedOp>(def).getBias();
  Activation act = isa<Conv2DOp>(def) ? cast<Conv2DOp>(def).getActivation()
                                      : cast<ConnectedOp>(def).getActivation();
  if (hasBias || act != Activation::linear || !def->getResult(0).hasOneUse())
    return layerError(*this)
           << "the " << describeLayer(def)
           << " it belongs to must have no bias, a linear activation and no "
              "other user";
  return success();
}

//===----------------------------------------------------------------------===//
// Element-wise, pooling, data movement
//===----------------------------------------------------------------------===//

static FailureOr<SmallVector<int64_t, 4>> sameShape(Value in) {
  auto c = chwOf(in);
  return SmallVector<int64_t, 4>{1, c.c, c.h, c.w};
}

StringRef ActivationOp::getDarknetSection() { return "activation"; }
FailureOr<SmallVector<int64_t, 4>> ActivationOp::inferOutputShape() {
  return sameShape(getInput());
}

StringRef DropoutOp::getDarknetSection() { return "dropout"; }
FailureOr<SmallVector<int64_t, 4>> DropoutOp::inferOutputShape() {
  return sameShape(getInput());
}

StringRef MaxPoolOp::getDarknetSection() { return "maxpool"; }
// The window arithmetic of maxpool, which local_avgpool shares (AlexeyAB
// builds both with make_maxpool_layer).
template <typename PoolOp>
static FailureOr<SmallVector<int64_t, 4>> poolWindowShape(PoolOp op) {
  if (op.getStride().size() != 2) {
    layerError(op) << "stride needs 2 values";
    return failure();
  }
  CHW out;
  std::string err;
  bool ok =
      shapes::maxpool(chwOf(op.getInput()), op.getSize(), op.getStride()[0],
                      op.getStride()[1], op.getPadding(), out, err);
  return shapeResult(op, ok, out, err);
}
template <typename PoolOp> static double poolWindowBFLOPs(PoolOp op) {
  auto out = chwOf(op.getOutput());
  // AlexeyAB: (size*size*c * out_h*out_w) / 1e9.
  return double(op.getSize() * op.getSize() * out.c * out.h * out.w) / 1e9;
}

FailureOr<SmallVector<int64_t, 4>> MaxPoolOp::inferOutputShape() {
  return poolWindowShape(*this);
}
double MaxPoolOp::getBFLOPs() {
  // The subsampling of a strided [shortcut] is part of that layer, which
  // Darknet counts by its output alone.
  if ((*this)->hasAttr("qsim.shortcut_subsample"))
    return 0.0;
  return poolWindowBFLOPs(*this);
}

StringRef AvgPoolOp::getDarknetSection() { return "avgpool"; }
FailureOr<SmallVector<int64_t, 4>> AvgPoolOp::inferOutputShape() {
  return SmallVector<int64_t, 4>{1, chwOf(getInput()).c, 1, 1};
}

StringRef RouteOp::getDarknetSection() { return "route"; }
FailureOr<SmallVector<int64_t, 4>> RouteOp::inferOutputShape() {
  std::vector<CHW> ins;
  for (Value v : getInputs())
    ins.push_back(chwOf(v));
  CHW out;
  std::string err;
  bool ok = shapes::route(ins, getGroups(), getGroupId(), out, err);
  return shapeResult(*this, ok, out, err);
}

StringRef ShortcutOp::getDarknetSection() { return "shortcut"; }
FailureOr<SmallVector<int64_t, 4>> ShortcutOp::inferOutputShape() {
  std::vector<CHW> ins;
  for (Value v : getInputs())
    ins.push_back(chwOf(v));
  CHW out;
  std::string err;
  bool ok = shapes::shortcut(ins, out, err);
  return shapeResult(*this, ok, out, err);
}
double ShortcutOp::getBFLOPs() {
  // The addition inside a [crnn] is not in Darknet's count of that layer
  // (its three convolutions' BFLOPs).
  if ((*this)->hasAttr("qsim.crnn"))
    return 0.0;
  auto out = chwOf(getOutput());
  // AlexeyAB: out_w * out_h * out_c * n / 1e9, n = number of from= layers.
  return double(out.size() * (int64_t)(getInputs().size() - 1)) / 1e9;
}

StringRef UpsampleOp::getDarknetSection() { return "upsample"; }
FailureOr<SmallVector<int64_t, 4>> UpsampleOp::inferOutputShape() {
  CHW out;
  std::string err;
  bool ok = shapes::upsample(chwOf(getInput()), getStride(), out, err);
  return shapeResult(*this, ok, out, err);
}

StringRef ReorgOp::getDarknetSection() { return "reorg"; }
FailureOr<SmallVector<int64_t, 4>> ReorgOp::inferOutputShape() {
  CHW out;
  std::string err;
  bool ok =
      shapes::reorg(chwOf(getInput()), getStride(), getReverse(), out, err);
  return shapeResult(*this, ok, out, err);
}

StringRef CropOp::getDarknetSection() { return "crop"; }
FailureOr<SmallVector<int64_t, 4>> CropOp::inferOutputShape() {
  CHW out;
  std::string err;
  bool ok = shapes::crop(chwOf(getInput()), getCropHeight(), getCropWidth(),
                         out, err);
  return shapeResult(*this, ok, out, err);
}

StringRef ScaleChannelsOp::getDarknetSection() { return "scale_channels"; }
FailureOr<SmallVector<int64_t, 4>> ScaleChannelsOp::inferOutputShape() {
  CHW out;
  std::string err;
  bool ok = shapes::scaleChannels(chwOf(getScales()), chwOf(getFeatures()),
                                  getScaleWh(), out, err);
  return shapeResult(*this, ok, out, err);
}

StringRef SoftmaxOp::getDarknetSection() { return "softmax"; }
FailureOr<SmallVector<int64_t, 4>> SoftmaxOp::inferOutputShape() {
  auto in = chwOf(getInput());
  if (getGroups() < 1 || in.size() % getGroups() != 0) {
    layerError(*this) << "groups " << getGroups() << " must divide the "
                      << in.size() << " inputs";
    return failure();
  }
  if (getTemperature().convertToFloat() <= 0.0f) {
    layerError(*this) << "temperature must be > 0";
    return failure();
  }
  return SmallVector<int64_t, 4>{1, in.c, in.h, in.w};
}

//===----------------------------------------------------------------------===//
// Heads
//===----------------------------------------------------------------------===//

/// The anchors, mask and float input every anchor-based head ([yolo],
/// [Gaussian_yolo]) needs.
template <typename HeadOp> static LogicalResult verifyAnchorHead(HeadOp op) {
  if (op.getNum() < 1)
    return layerError(op) << "num must be >= 1";
  // 2 * num values; more only when the mask names pairs past num (a cfg
  // whose anchors= lists them, docs/darknet.md "anchors="), never an
  // unused surplus, so that export writes what the import read.
  int64_t pairs = op.getAnchors().size() / 2;
  int64_t maxMask = -1;
  for (int64_t m : op.getMask())
    maxMask = std::max(maxMask, m);
  int64_t wantPairs = std::max(op.getNum(), maxMask + 1);
  if (op.getAnchors().size() % 2 != 0 || pairs != wantPairs) {
    if (maxMask < op.getNum())
      return layerError(op) << "anchors needs 2 * num = " << 2 * op.getNum()
                            << " values, got " << op.getAnchors().size();
    return layerError(op) << "mask index " << maxMask
                          << " is past num=" << op.getNum()
                          << ": anchors needs " << 2 * wantPairs
                          << " values, got " << op.getAnchors().size();
  }
  for (int64_t m : op.getMask())
    if (m < 0)
      return layerError(op)
             << "mask index " << m << " out of range for num=" << op.getNum();
  if (!isFloatElement(getElementTypeOrSelf(op.getInput().getType())))
    return layerError(op) << "detection heads run in float";
  return success();
}

StringRef YoloOp::getDarknetSection() { return "yolo"; }
FailureOr<SmallVector<int64_t, 4>> YoloOp::inferOutputShape() {
  CHW out;
  std::string err;
  bool ok =
      shapes::yolo(chwOf(getInput()), getClasses(), getMask().size(), out, err);
  return shapeResult(*this, ok, out, err);
}
LogicalResult YoloOp::verify() { return verifyAnchorHead(*this); }

StringRef RegionOp::getDarknetSection() { return "region"; }
FailureOr<SmallVector<int64_t, 4>> RegionOp::inferOutputShape() {
  CHW out;
  std::string err;
  bool ok = shapes::region(chwOf(getInput()), getClasses(), getCoords(),
                           getNum(), out, err);
  return shapeResult(*this, ok, out, err);
}
LogicalResult RegionOp::verify() {
  if ((int64_t)getAnchors().size() != 2 * getNum())
    return layerError(*this) << "anchors needs 2 * num = " << 2 * getNum()
                             << " values, got " << getAnchors().size();
  if (!isFloatElement(getElementTypeOrSelf(getInput().getType())))
    return layerError(*this) << "detection heads run in float";
  return success();
}

//===----------------------------------------------------------------------===//
// Layers of the Darknet zoo (docs/darknet.md §R4.16-§R4.21)
//===----------------------------------------------------------------------===//

StringRef LocalOp::getDarknetSection() { return "local"; }
FailureOr<SmallVector<int64_t, 4>> LocalOp::inferOutputShape() {
  CHW out;
  std::string err;
  bool ok = shapes::local(chwOf(getInput()), getFilters(), getSize(),
                          getStride(), getPad(), out, err);
  return shapeResult(*this, ok, out, err);
}
int64_t LocalOp::getMACs() {
  CHW out = chwOf(getOutput());
  return out.size() * chwOf(getInput()).c * getSize() * getSize();
}
// AlexeyAB's make_local_layer never sets l.bflops (as for [connected]).
double LocalOp::getBFLOPs() { return 0.0; }
int64_t LocalOp::getParameterCount() {
  return getMACs() + chwOf(getOutput()).size();
}
LogicalResult LocalOp::verify() {
  CHW out = chwOf(getOutput());
  int64_t c = chwOf(getInput()).c;
  if (failed(checkWeightShape(
          *this, "weight", getWeight(),
          {out.h * out.w, getFilters(), c, getSize(), getSize()})) ||
      failed(checkWeightShape(*this, "bias", getBias(),
                              {getFilters(), out.h, out.w})))
    return failure();
  return success();
}

StringRef LocalAvgPoolOp::getDarknetSection() { return "local_avgpool"; }
FailureOr<SmallVector<int64_t, 4>> LocalAvgPoolOp::inferOutputShape() {
  return poolWindowShape(*this);
}
double LocalAvgPoolOp::getBFLOPs() { return poolWindowBFLOPs(*this); }

StringRef Reorg3dOp::getDarknetSection() { return "reorg3d"; }
FailureOr<SmallVector<int64_t, 4>> Reorg3dOp::inferOutputShape() {
  CHW out;
  std::string err;
  bool ok =
      shapes::reorg3d(chwOf(getInput()), getStride(), getReverse(), out, err);
  return shapeResult(*this, ok, out, err);
}

StringRef SamOp::getDarknetSection() { return "sam"; }
FailureOr<SmallVector<int64_t, 4>> SamOp::inferOutputShape() {
  CHW a = chwOf(getInput()), b = chwOf(getFeatures());
  if (a != b) {
    layerError(*this) << "the previous layer is " << a.str()
                      << " but the from layer is " << b.str()
                      << " ([sam] multiplies equal shapes)";
    return failure();
  }
  return SmallVector<int64_t, 4>{1, a.c, a.h, a.w};
}

StringRef DetectionOp::getDarknetSection() { return "detection"; }
FailureOr<SmallVector<int64_t, 4>> DetectionOp::inferOutputShape() {
  return sameShape(getInput());
}
LogicalResult DetectionOp::verify() {
  if (getClasses() < 0 || getCoords() < 1 || getNum() < 1 || getSide() < 1)
    return layerError(*this) << "classes must be >= 0 and coords, num, side "
                                ">= 1";
  int64_t expected =
      getSide() * getSide() * ((1 + getCoords()) * getNum() + getClasses());
  int64_t got = chwOf(getInput()).size();
  if (got != expected)
    return layerError(*this)
           << "input has " << got << " values, side^2*((1+coords)*num+classes)"
           << " = " << expected;
  if (!isFloatElement(getElementTypeOrSelf(getInput().getType())))
    return layerError(*this) << "detection heads run in float";
  return success();
}

StringRef GaussianYoloOp::getDarknetSection() { return "Gaussian_yolo"; }
FailureOr<SmallVector<int64_t, 4>> GaussianYoloOp::inferOutputShape() {
  CHW in = chwOf(getInput());
  int64_t per = 9 + getClasses();
  if (getClasses() < 0 || in.c != per * (int64_t)getMask().size()) {
    layerError(*this) << "input has " << in.c << " channels, expected "
                      << getMask().size() << " * (9 + classes) = "
                      << per * (int64_t)getMask().size();
    return failure();
  }
  return sameShape(getInput());
}
LogicalResult GaussianYoloOp::verify() { return verifyAnchorHead(*this); }
