//===- LoweringUtils.cpp - what the qsim->TOSA patterns share -------------===//

#include "LoweringUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

#include <limits>

using namespace mlir;
using namespace qsim;
using namespace qsim::lowering;

//===----------------------------------------------------------------------===//
// Facts about qsim values and ops
//===----------------------------------------------------------------------===//

quant::UniformQuantizedType lowering::getInt8Quant(Value qsimValue) {
  return dyn_cast<quant::UniformQuantizedType>(
      getElementTypeOrSelf(qsimValue.getType()));
}

SmallVector<int64_t, 4> lowering::nhwcShape(Value qsimValue) {
  auto t = cast<ShapedType>(qsimValue.getType());
  return {t.getDimSize(0), t.getDimSize(2), t.getDimSize(3), t.getDimSize(1)};
}

/// Whether `op` is the one op of a layer function that names the layer: its
/// main op (not a fused batch norm, not a precision cast).
static bool isLayerHead(Operation &op) {
  auto bn = dyn_cast<BatchNormOp>(op);
  return isa<LayerOpInterface>(op) && !(bn && !bn.getStandalone());
}

/// "layer N (kind)" for an op of a layer function (--qsim-lower-to-tosa makes
/// one function per layer, `qsim.layer` = N): the kind of the layer's main
/// op, N as its provenance says (describeLayer), else the function's.
static std::string describeLayerOf(Operation *op) {
  auto fn = op->getParentOfType<func::FuncOp>();
  auto index = fn ? fn->getAttrOfType<IntegerAttr>("qsim.layer") : nullptr;
  if (!index)
    return describeLayer(op);
  Operation *head = op;
  for (Operation &o : fn.getBody().front())
    if (isLayerHead(o)) {
      head = &o;
      break;
    }
  if (getLayerIndexFromLoc(head->getLoc()) || !isa<LayerOpInterface>(head))
    return describeLayer(head);
  return "layer " + std::to_string(index.getInt()) + " (" +
         cast<LayerOpInterface>(head).getDarknetSection().str() + ")";
}

LogicalResult lowering::emitUnsupported(Operation *op, const Twine &message) {
  return op->emitError() << describeLayerOf(op) << ": " << message;
}

FailureOr<rt::Rounding> lowering::getRounding(Operation *op) {
  rt::Rounding rounding;
  std::string error;
  if (failed(
          getModuleRounding(op->getParentOfType<ModuleOp>(), rounding, error)))
    return emitUnsupported(op, error);
  return rounding;
}

LogicalResult lowering::checkFloatActivation(Operation *op, Activation a) {
  switch (a) {
  case Activation::linear:
  case Activation::relu:
  case Activation::relu6:
  case Activation::leaky:
  case Activation::logistic:
  case Activation::tanh:
  case Activation::swish:
  case Activation::mish:
  case Activation::elu:
  case Activation::hardtan:
  case Activation::relie:
    return success();
  default:
    return emitUnsupported(op, "activation '" + stringifyActivation(a) +
                                   "' is not supported by the code generator");
  }
}

LogicalResult lowering::checkFloatOperands(Operation *op) {
  for (Value v : op->getOperands())
    if (getInt8Quant(v))
      return emitUnsupported(
          op, "an int8 input to a float computation (missing cast)");
  return success();
}

LogicalResult lowering::checkRequantization(Operation *op, Activation act,
                                            bool hasNegativeScale) {
  if (!hasInt8Activation(act))
    return emitUnsupported(op, "int8 activation '" + stringifyActivation(act) +
                                   "' has no integer form");
  if (act == Activation::leaky && !hasNegativeScale)
    return emitUnsupported(op,
                           "leaky int8 layer without neg_multiplier/neg_shift");
  return success();
}

//===----------------------------------------------------------------------===//
// Scalar arithmetic in linalg.generic bodies
//===----------------------------------------------------------------------===//

Value lowering::constI32(OpBuilder &nb, Location nl, int64_t v) {
  return nb.create<arith::ConstantIntOp>(nl, v, 32);
}
Value lowering::constI64(OpBuilder &nb, Location nl, int64_t v) {
  return nb.create<arith::ConstantIntOp>(nl, v, 64);
}
Value lowering::constF32(OpBuilder &nb, Location nl, float v) {
  return nb.create<arith::ConstantFloatOp>(nl, APFloat(v), nb.getF32Type());
}

/// gemmlowp's SaturatingRoundingDoublingHighMul and RoundingDivideByPOT, as
/// TFLite rounds: x64, m64, s64 the i64 extensions.
static Value tfliteFixedPointMul(OpBuilder &nb, Location nl, Value x64,
                                 Value m64, Value s64) {
  using namespace arith;
  Type t64 = nb.getI64Type();
  auto c64 = [&](int64_t v) { return constI64(nb, nl, v); };
  // left = max(31 - shift, 0), right = max(shift - 31, 0)
  Value left =
      nb.create<MaxSIOp>(nl, nb.create<SubIOp>(nl, c64(31), s64), c64(0));
  Value right =
      nb.create<MaxSIOp>(nl, nb.create<SubIOp>(nl, s64, c64(31)), c64(0));
  Value shifted = nb.create<ShLIOp>(nl, x64, left);
  shifted = nb.create<MinSIOp>(
      nl, nb.create<MaxSIOp>(nl, shifted, c64(INT32_MIN)), c64(INT32_MAX));
  // SaturatingRoundingDoublingHighMul (m > 0: no saturating case).
  Value ab = nb.create<MulIOp>(nl, shifted, m64);
  Value nonneg = nb.create<CmpIOp>(nl, CmpIPredicate::sge, ab, c64(0));
  Value nudge =
      nb.create<SelectOp>(nl, nonneg, c64(1ll << 30), c64(1 - (1ll << 30)));
  Value v64 =
      nb.create<DivSIOp>(nl, nb.create<AddIOp>(nl, ab, nudge), c64(1ll << 31));
  // RoundingDivideByPOT(v, right), in i64 (v fits in i32).
  Value mask =
      nb.create<SubIOp>(nl, nb.create<ShLIOp>(nl, c64(1), right), c64(1));
  Value rem = nb.create<AndIOp>(nl, v64, mask);
  Value neg = nb.create<CmpIOp>(nl, CmpIPredicate::slt, v64, c64(0));
  Value thr = nb.create<AddIOp>(nl, nb.create<ShRSIOp>(nl, mask, c64(1)),
                                nb.create<ExtUIOp>(nl, t64, neg));
  Value up = nb.create<CmpIOp>(nl, CmpIPredicate::sgt, rem, thr);
  Value q = nb.create<AddIOp>(nl, nb.create<ShRSIOp>(nl, v64, right),
                              nb.create<ExtUIOp>(nl, t64, up));
  return nb.create<TruncIOp>(nl, nb.getI32Type(), q);
}

/// TOSA's apply_scale_32 with double rounding, saturated to int32: x64, m64,
/// s64 the i64 extensions.
static Value tosaDoubleFixedPointMul(OpBuilder &nb, Location nl, Value x64,
                                     Value m64, Value s64) {
  using namespace arith;
  auto c64 = [&](int64_t v) { return constI64(nb, nl, v); };
  Value round =
      nb.create<ShLIOp>(nl, c64(1), nb.create<SubIOp>(nl, s64, c64(1)));
  Value big = nb.create<CmpIOp>(nl, CmpIPredicate::sgt, s64, c64(31));
  Value nonneg = nb.create<CmpIOp>(nl, CmpIPredicate::sge, x64, c64(0));
  Value extra = nb.create<SelectOp>(
      nl, big,
      nb.create<SelectOp>(nl, nonneg, c64(1ll << 30), c64(-(1ll << 30))),
      c64(0));
  Value acc = nb.create<AddIOp>(nl, nb.create<MulIOp>(nl, x64, m64),
                                nb.create<AddIOp>(nl, round, extra));
  Value r = nb.create<ShRSIOp>(nl, acc, s64);
  r = nb.create<MinSIOp>(nl, nb.create<MaxSIOp>(nl, r, c64(INT32_MIN)),
                         c64(INT32_MAX));
  return nb.create<TruncIOp>(nl, nb.getI32Type(), r);
}

Value lowering::fixedPointMul(OpBuilder &nb, Location nl, Value x, Value m,
                              Value shift, rt::Rounding rounding) {
  using namespace arith;
  Type t64 = nb.getI64Type();
  Value zero32 = constI32(nb, nl, 0);
  Value x64 = nb.create<ExtSIOp>(nl, t64, x);
  Value m64 = nb.create<ExtSIOp>(nl, t64, m);
  Value s64 = nb.create<ExtSIOp>(nl, t64, shift);
  Value result = rounding == rt::Rounding::TFLite
                     ? tfliteFixedPointMul(nb, nl, x64, m64, s64)
                     : tosaDoubleFixedPointMul(nb, nl, x64, m64, s64);
  // A zero multiplier (M too small to represent) gives 0.
  Value isZero = nb.create<CmpIOp>(nl, CmpIPredicate::eq, m, zero32);
  return nb.create<SelectOp>(nl, isZero, zero32, result);
}

Value lowering::saturateToInt8(OpBuilder &nb, Location nl, Value y32) {
  Value y = nb.create<arith::MaxSIOp>(nl, y32, constI32(nb, nl, -128));
  y = nb.create<arith::MinSIOp>(nl, y, constI32(nb, nl, 127));
  return nb.create<arith::TruncIOp>(nl, nb.getI8Type(), y);
}

/// softplus with Darknet's threshold 20, then x * tanh(softplus).
static Value mish(OpBuilder &nb, Location nl, Value x) {
  using namespace arith;
  auto c = [&](float v) { return constF32(nb, nl, v); };
  Value big = nb.create<CmpFOp>(nl, CmpFPredicate::OGT, x, c(20.0f));
  Value small = nb.create<CmpFOp>(nl, CmpFPredicate::OLT, x, c(-20.0f));
  Value ex = nb.create<math::ExpOp>(nl, x);
  Value lg = nb.create<math::LogOp>(nl, nb.create<AddFOp>(nl, ex, c(1.0f)));
  Value sp =
      nb.create<SelectOp>(nl, big, x, nb.create<SelectOp>(nl, small, ex, lg));
  Value e2 = nb.create<math::ExpOp>(nl, nb.create<MulFOp>(nl, sp, c(2.0f)));
  Value th = nb.create<DivFOp>(nl, nb.create<SubFOp>(nl, e2, c(1.0f)),
                               nb.create<AddFOp>(nl, e2, c(1.0f)));
  return nb.create<MulFOp>(nl, x, th);
}

Value lowering::activate(OpBuilder &nb, Location nl, Value x, Activation a) {
  using namespace arith;
  auto c = [&](float v) { return constF32(nb, nl, v); };
  auto logistic = [&](Value v) {
    Value e = nb.create<math::ExpOp>(nl, nb.create<NegFOp>(nl, v));
    return nb.create<DivFOp>(nl, c(1.0f), nb.create<AddFOp>(nl, c(1.0f), e))
        .getResult();
  };
  auto gt0 = [&](Value v) {
    return nb.create<CmpFOp>(nl, CmpFPredicate::OGT, v, c(0.0f)).getResult();
  };
  switch (a) {
  case Activation::linear:
    return x;
  case Activation::relu:
    return nb.create<SelectOp>(nl, gt0(x), x, c(0.0f));
  case Activation::relu6:
    return nb.create<MinimumFOp>(nl, nb.create<MaximumFOp>(nl, x, c(0.0f)),
                                 c(6.0f));
  case Activation::leaky: {
    // (float)(0.1 * (double)x), as Darknet.
    Value d = nb.create<ExtFOp>(nl, nb.getF64Type(), x);
    Value p = nb.create<MulFOp>(
        nl, d, nb.create<ConstantFloatOp>(nl, APFloat(0.1), nb.getF64Type()));
    return nb.create<SelectOp>(nl, gt0(x), x,
                               nb.create<TruncFOp>(nl, nb.getF32Type(), p));
  }
  case Activation::logistic:
    return logistic(x);
  case Activation::tanh: {
    Value e = nb.create<math::ExpOp>(nl, nb.create<MulFOp>(nl, x, c(2.0f)));
    return nb.create<DivFOp>(nl, nb.create<SubFOp>(nl, e, c(1.0f)),
                             nb.create<AddFOp>(nl, e, c(1.0f)));
  }
  case Activation::swish:
    return nb.create<MulFOp>(nl, x, logistic(x));
  case Activation::mish:
    return mish(nb, nl, x);
  case Activation::elu: {
    Value em1 = nb.create<SubFOp>(nl, nb.create<math::ExpOp>(nl, x), c(1.0f));
    Value ge = nb.create<CmpFOp>(nl, CmpFPredicate::OGE, x, c(0.0f));
    return nb.create<SelectOp>(nl, ge, x, em1);
  }
  case Activation::hardtan:
    return nb.create<MinimumFOp>(nl, nb.create<MaximumFOp>(nl, x, c(-1.0f)),
                                 c(1.0f));
  case Activation::relie:
    return nb.create<SelectOp>(nl, gt0(x), x,
                               nb.create<MulFOp>(nl, x, c(0.01f)));
  default:
    llvm_unreachable("activation without a float form (checkFloatActivation)");
  }
}

//===----------------------------------------------------------------------===//
// TosaBuilder
//===----------------------------------------------------------------------===//

Value TosaBuilder::scalarTensor(Type el, Attribute value) {
  auto type = tensorType({}, el);
  return b.create<tosa::ConstOp>(loc, type,
                                 DenseElementsAttr::get(type, value));
}

Value TosaBuilder::splat4(float v) {
  auto type = tensorType({1, 1, 1, 1}, f32());
  return b.create<tosa::ConstOp>(loc, type, DenseElementsAttr::get(type, v));
}

Value TosaBuilder::elementwise(ArrayRef<Value> tensors,
                               ArrayRef<Value> perChannel, Type outEl,
                               const Body &body) {
  auto shape = cast<ShapedType>(tensors[0].getType()).getShape();
  Value init = b.create<tensor::EmptyOp>(loc, shape, outEl);
  SmallVector<Value> ins(tensors.begin(), tensors.end());
  ins.append(perChannel.begin(), perChannel.end());
  AffineMap id = b.getMultiDimIdentityMap(4);
  AffineMap ch = AffineMap::get(4, 0, b.getAffineDimExpr(3), b.getContext());
  SmallVector<AffineMap> maps(tensors.size(), id);
  maps.append(perChannel.size(), ch);
  maps.push_back(id);
  SmallVector<utils::IteratorType> iters(4, utils::IteratorType::parallel);
  auto g = b.create<linalg::GenericOp>(
      loc, TypeRange{init.getType()}, ins, ValueRange{init}, maps, iters,
      [&](OpBuilder &nb, Location nl, ValueRange args) {
        Value c = nb.create<linalg::IndexOp>(nl, 3);
        Value r = body(nb, nl, args.drop_back(), c);
        nb.create<linalg::YieldOp>(nl, r);
      });
  return g.getResult(0);
}

Value TosaBuilder::castTo(Value t, Type el) {
  auto tt = cast<RankedTensorType>(t.getType());
  if (tt.getElementType() == el)
    return t;
  return make<tosa::CastOp>(tensorType(tt.getShape(), el), t);
}

Value TosaBuilder::pad(Value t, int64_t top, int64_t bottom, int64_t left,
                       int64_t right, Attribute value) {
  if (!top && !bottom && !left && !right)
    return t;
  auto tt = cast<RankedTensorType>(t.getType());
  auto s = tt.getShape();
  SmallVector<int32_t> p = {
      0, 0, (int32_t)top, (int32_t)bottom, (int32_t)left, (int32_t)right, 0, 0};
  Value pads = constant<int32_t>({4, 2}, i32(), p);
  Value pc = scalarTensor(tt.getElementType(), value);
  return make<tosa::PadOp>(
      tensorType({s[0], s[1] + top + bottom, s[2] + left + right, s[3]},
                 tt.getElementType()),
      {t, pads, pc});
}

Value TosaBuilder::activateTensor(Value t, Activation a) {
  if (a == Activation::linear)
    return t;
  return elementwise({t}, {}, f32(),
                     [&](OpBuilder &nb, Location nl, ValueRange args, Value) {
                       return activate(nb, nl, args[0], a);
                     });
}

Value TosaBuilder::quantize(Value x, quant::UniformQuantizedType q) {
  float inv = 1.0f / (float)q.getScale();
  int32_t zp = q.getZeroPoint();
  return elementwise(
      {x}, {}, i8(), [&](OpBuilder &nb, Location nl, ValueRange a, Value) {
        using namespace arith;
        // q = clamp(zp + roundHalfAway(x * inv)) (the product in float).
        Value v = nb.create<MulFOp>(nl, a[0], constF32(nb, nl, inv));
        v = nb.create<MinimumFOp>(
            nl, nb.create<MaximumFOp>(nl, v, constF32(nb, nl, -1e9f)),
            constF32(nb, nl, 1e9f));
        Value ge = nb.create<CmpFOp>(nl, CmpFPredicate::OGE, v,
                                     constF32(nb, nl, 0.0f));
        Value half = nb.create<SelectOp>(nl, ge, constF32(nb, nl, 0.5f),
                                         constF32(nb, nl, -0.5f));
        Value r = nb.create<FPToSIOp>(nl, nb.getI32Type(),
                                      nb.create<AddFOp>(nl, v, half));
        return saturateToInt8(nb, nl,
                              nb.create<AddIOp>(nl, r, constI32(nb, nl, zp)));
      });
}

Value TosaBuilder::dequantize(Value x, quant::UniformQuantizedType q) {
  float s = (float)q.getScale();
  int32_t zp = q.getZeroPoint();
  return elementwise(
      {x}, {}, f32(), [&](OpBuilder &nb, Location nl, ValueRange a, Value) {
        using namespace arith;
        Value wide = nb.create<ExtSIOp>(nl, nb.getI32Type(), a[0]);
        Value d = nb.create<SIToFPOp>(
            nl, nb.getF32Type(),
            nb.create<SubIOp>(nl, wide, constI32(nb, nl, zp)));
        return nb.create<MulFOp>(nl, constF32(nb, nl, s), d);
      });
}

/// Whether tosa.rescale computes requantization `r` as the interpreter does:
/// the module rounds like TOSA, the activation is not leaky (whose two
/// branches need a select), and the constants are in rescale's ranges.
static bool fitsTosaRescale(const Requantization &r) {
  if (r.rounding != rt::Rounding::TosaDouble ||
      r.activation == Activation::leaky)
    return false;
  bool fits = true;
  for (int64_t b : r.bias)
    fits &= b >= INT32_MIN && b <= INT32_MAX;
  for (int32_t s : r.shift)
    fits &= s >= 2 && s <= 62;
  for (int32_t m : r.multiplier)
    fits &= m != 0;
  return fits;
}

Value TosaBuilder::rescaleWithTosa(Value acc, const Requantization &r) {
  int64_t f = r.bias.size();
  int32_t zo = r.output.getZeroPoint();
  float so = (float)r.output.getScale();
  int32_t q6 = rt::quantizeValue(6.0f, 1.0f / so, zo);
  auto at = cast<RankedTensorType>(acc.getType());
  SmallVector<int32_t> b32(r.bias.begin(), r.bias.end());
  Value biased =
      make<tosa::AddOp>(at, {acc, constant<int32_t>({1, 1, 1, f}, i32(), b32)});
  SmallVector<int8_t> sh(r.shift.begin(), r.shift.end());
  Value out = make<tosa::RescaleOp>(
      tensorType(at.getShape(), i8()), {biased},
      {attr("input_zp", b.getI32IntegerAttr(0)),
       attr("output_zp", b.getI32IntegerAttr(zo)),
       attr("multiplier", b.getDenseI32ArrayAttr(r.multiplier)),
       attr("shift", b.getDenseI8ArrayAttr(sh)),
       attr("scale32", b.getBoolAttr(true)),
       attr("double_round", b.getBoolAttr(true)),
       attr("per_channel", b.getBoolAttr(true))});
  if (r.activation != Activation::linear)
    out = make<tosa::ClampOp>(
        out.getType(), {out},
        {attr("min_int", b.getI64IntegerAttr(zo)),
         attr("max_int", b.getI64IntegerAttr(
                             r.activation == Activation::relu6 ? q6 : 127)),
         attr("min_fp", b.getF32FloatAttr(0)),
         attr("max_fp", b.getF32FloatAttr(0))});
  return out;
}

Value TosaBuilder::requantize(Value acc, const Requantization &r) {
  if (fitsTosaRescale(r))
    return rescaleWithTosa(acc, r);
  int64_t f = r.bias.size();
  int32_t zo = r.output.getZeroPoint();
  float so = (float)r.output.getScale();
  int32_t q6 = rt::quantizeValue(6.0f, 1.0f / so, zo);
  Activation act = r.activation;
  bool leaky = act == Activation::leaky;
  rt::Rounding rounding = r.rounding;
  SmallVector<Value> pc = {constant<int64_t>({f}, i64(), r.bias),
                           constant<int32_t>({f}, i32(), r.multiplier),
                           constant<int32_t>({f}, i32(), r.shift)};
  if (leaky) {
    pc.push_back(constant<int32_t>({f}, i32(), *r.negMultiplier));
    pc.push_back(constant<int32_t>({f}, i32(), *r.negShift));
  }
  return elementwise(
      {acc}, pc, i8(), [&](OpBuilder &nb, Location nl, ValueRange a, Value) {
        using namespace arith;
        // a = clamp(acc + bias) in int64, then M (the leaky branch for a < 0).
        Value s = nb.create<AddIOp>(
            nl, nb.create<ExtSIOp>(nl, nb.getI64Type(), a[0]), a[1]);
        s = nb.create<MinSIOp>(
            nl, nb.create<MaxSIOp>(nl, s, constI64(nb, nl, INT32_MIN)),
            constI64(nb, nl, INT32_MAX));
        Value a32 = nb.create<TruncIOp>(nl, nb.getI32Type(), s);
        Value m = a[2], sh = a[3];
        if (leaky) {
          Value neg = nb.create<CmpIOp>(nl, CmpIPredicate::slt, a32,
                                        constI32(nb, nl, 0));
          m = nb.create<SelectOp>(nl, neg, a[4], m);
          sh = nb.create<SelectOp>(nl, neg, a[5], sh);
        }
        Value y = fixedPointMul(nb, nl, a32, m, sh, rounding);
        y = nb.create<AddIOp>(nl, y, constI32(nb, nl, zo));
        if (act == Activation::relu || act == Activation::relu6)
          y = nb.create<MaxSIOp>(nl, y, constI32(nb, nl, zo));
        if (act == Activation::relu6)
          y = nb.create<MinSIOp>(nl, y, constI32(nb, nl, q6));
        return saturateToInt8(nb, nl, y);
      });
}
