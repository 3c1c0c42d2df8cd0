//===- DataMovementPatterns.cpp - pooling, upsample, route, shortcut ------===//
//
// The layers that run in int8 or float: max pooling and upsampling keep
// their input's quantization; route and shortcut requantize each input to
// their own (exact integer arithmetic, as the interpreter).
//
//===----------------------------------------------------------------------===//

#include "LoweringUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

using namespace mlir;
using namespace qsim;
using namespace qsim::lowering;

namespace {

/// A float layer computes in f32 and stores its result in its own type.
Value storeAs(TosaBuilder &tb, Value f32Result, Value qsimResult) {
  if (getElementTypeOrSelf(qsimResult.getType()).isF16())
    return tb.castTo(f32Result, tb.b.getF16Type());
  return f32Result;
}

/// An input as the layer computes on it: int8 as it is, float in f32.
Value computeInput(TosaBuilder &tb, Value qsimInput, Value lowered) {
  return getInt8Quant(qsimInput) ? lowered : tb.castTo(lowered, tb.f32());
}

struct MaxPoolLowering : OpConversionPattern<MaxPoolOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(MaxPoolOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto s = cast<RankedTensorType>(adaptor.getInput().getType()).getShape();
    int64_t k = op.getSize(), sy = op.getStride()[0], sx = op.getStride()[1];
    int64_t p = op.getPadding(), before = p / 2, after = p - before;
    int64_t afterY = after - TosaBuilder::unusedPad(s[1], before, after, k, sy);
    int64_t afterX = after - TosaBuilder::unusedPad(s[2], before, after, k, sx);
    if (before >= k || afterY >= k || afterX >= k || afterY < 0 || afterX < 0)
      return emitUnsupported(op, "padding as large as the window");
    TosaBuilder tb(rewriter, op.getLoc());
    Value in = computeInput(tb, op.getInput(), adaptor.getInput());
    Type el = cast<RankedTensorType>(in.getType()).getElementType();
    Value out = tb.make<tosa::MaxPool2dOp>(
        tb.tensorType(nhwcShape(op.getResult()), el), {in},
        {tb.attr("kernel", rewriter.getDenseI64ArrayAttr({k, k})),
         tb.attr("stride", rewriter.getDenseI64ArrayAttr({sy, sx})),
         tb.attr("pad", rewriter.getDenseI64ArrayAttr(
                            {before, afterY, before, afterX}))});
    if (!getInt8Quant(op.getInput()))
      out = storeAs(tb, out, op.getResult());
    rewriter.replaceOp(op, out);
    return success();
  }
};

struct UpsampleLowering : OpConversionPattern<UpsampleOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(UpsampleOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    int64_t st = op.getStride();
    if (st < 1)
      return emitUnsupported(op, "downsampling upsample (negative stride)");
    bool int8 = (bool)getInt8Quant(op.getInput());
    float scale = op.getScale().convertToFloat();
    if (int8 && scale != 1.0f)
      return emitUnsupported(op, "int8 upsample with scale");
    TosaBuilder tb(rewriter, op.getLoc());
    auto s = cast<RankedTensorType>(adaptor.getInput().getType()).getShape();
    Value in = computeInput(tb, op.getInput(), adaptor.getInput());
    Type el = cast<RankedTensorType>(in.getType()).getElementType();
    // Nearest neighbour: [1,H,1,W,1,C] tiled by [1,1,s,1,s,1].
    Value r = tb.make<tosa::ReshapeOp>(
        tb.tensorType({1, s[1], 1, s[2], 1, s[3]}, el), {in},
        {tb.attr("new_shape",
                 rewriter.getDenseI64ArrayAttr({1, s[1], 1, s[2], 1, s[3]}))});
    r = tb.make<tosa::TileOp>(
        tb.tensorType({1, s[1], st, s[2], st, s[3]}, el), {r},
        {tb.attr("multiples",
                 rewriter.getDenseI64ArrayAttr({1, 1, st, 1, st, 1}))});
    r = tb.make<tosa::ReshapeOp>(
        tb.tensorType({1, s[1] * st, s[2] * st, s[3]}, el), {r},
        {tb.attr("new_shape", rewriter.getDenseI64ArrayAttr(
                                  {1, s[1] * st, s[2] * st, s[3]}))});
    if (!int8) {
      if (scale != 1.0f)
        r = tb.make<tosa::MulOp>(
            r.getType(), {r, tb.splat4(scale)},
            {tb.attr("shift", rewriter.getI8IntegerAttr(0))});
      r = storeAs(tb, r, op.getResult());
    }
    rewriter.replaceOp(op, r);
    return success();
  }
};

/// Dropout does nothing at inference.
struct DropoutLowering : OpConversionPattern<DropoutOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(DropoutOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    rewriter.replaceOp(op, adaptor.getInput());
    return success();
  }
};

//===----------------------------------------------------------------------===//
// route
//===----------------------------------------------------------------------===//

/// int8 `v` from quantization `in` to `out`: (v - zi) * M + zo, saturated.
Value requantizeInput(TosaBuilder &tb, Value v, quant::UniformQuantizedType in,
                      quant::UniformQuantizedType out, int32_t m, int32_t sh,
                      rt::Rounding rounding) {
  int32_t zi = in.getZeroPoint(), zo = out.getZeroPoint();
  return tb.elementwise(
      {v}, {}, tb.i8(), [&](OpBuilder &nb, Location nl, ValueRange a, Value) {
        using namespace arith;
        Value x =
            nb.create<SubIOp>(nl, nb.create<ExtSIOp>(nl, nb.getI32Type(), a[0]),
                              constI32(nb, nl, zi));
        Value y = fixedPointMul(nb, nl, x, constI32(nb, nl, m),
                                constI32(nb, nl, sh), rounding);
        return saturateToInt8(nb, nl,
                              nb.create<AddIOp>(nl, y, constI32(nb, nl, zo)));
      });
}

struct RouteLowering : OpConversionPattern<RouteOp> {
  using OpConversionPattern::OpConversionPattern;

  /// Whether input `i` of an int8 route needs requantizing to its output's
  /// scale and zero point.
  static bool needsRequantization(RouteOp op, unsigned i) {
    auto in = getInt8Quant(op->getOperand(i)),
         out = getInt8Quant(op.getResult());
    return out && !((float)in.getScale() == (float)out.getScale() &&
                    in.getZeroPoint() == out.getZeroPoint());
  }

  LogicalResult
  matchAndRewrite(RouteOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    for (unsigned i = 0; i < op->getNumOperands(); ++i)
      if (needsRequantization(op, i) && !op.getInputMultiplier())
        return emitUnsupported(op, "int8 route without input multipliers");
    FailureOr<rt::Rounding> rounding = getRounding(op);
    if (failed(rounding))
      return failure();
    int64_t G = op.getGroups(), gid = op.getGroupId();
    auto q = getInt8Quant(op.getResult());
    TosaBuilder tb(rewriter, op.getLoc());
    SmallVector<Value> parts;
    for (auto [i, lowered] : llvm::enumerate(adaptor.getOperands())) {
      Value v = computeInput(tb, op->getOperand(i), lowered);
      auto t = cast<RankedTensorType>(v.getType());
      int64_t c = t.getDimSize(3) / G;
      if (G > 1)
        v = tb.make<tosa::SliceOp>(
            tb.tensorType({1, t.getDimSize(1), t.getDimSize(2), c},
                          t.getElementType()),
            {v},
            {tb.attr("start",
                     rewriter.getDenseI64ArrayAttr({0, 0, 0, gid * c})),
             tb.attr("size", rewriter.getDenseI64ArrayAttr(
                                 {1, t.getDimSize(1), t.getDimSize(2), c}))});
      if (needsRequantization(op, i))
        v = requantizeInput(tb, v, getInt8Quant(op->getOperand(i)), q,
                            (*op.getInputMultiplier())[i],
                            (*op.getInputShift())[i], *rounding);
      parts.push_back(v);
    }
    Type el = q ? tb.i8() : tb.f32();
    Value out = parts.size() == 1
                    ? parts[0]
                    : tb.make<tosa::ConcatOp>(
                          tb.tensorType(nhwcShape(op.getResult()), el), parts,
                          {tb.attr("axis", rewriter.getI32IntegerAttr(3))});
    if (!q)
      out = storeAs(tb, out, op.getResult());
    rewriter.replaceOp(op, out);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// shortcut
//===----------------------------------------------------------------------===//

/// The int8 sum of the (requantized) inputs, through the activation, then
/// RoundingDivideByPOT(sum, 16): the interpreter's gemmlowp step for every
/// rounding.
Value int8Shortcut(TosaBuilder &tb, ShortcutOp op, ArrayRef<Value> inputs,
                   rt::Rounding rounding) {
  Activation act = op.getActivation();
  auto mult = *op.getInputMultiplier(), shift = *op.getInputShift();
  SmallVector<int32_t> zps;
  for (Value in : op->getOperands())
    zps.push_back(getInt8Quant(in).getZeroPoint());
  int32_t negM = op.getNegMultiplier() ? (*op.getNegMultiplier())[0] : 0;
  int32_t negS = op.getNegShift() ? (*op.getNegShift())[0] : 0;
  int32_t zo = getInt8Quant(op.getResult()).getZeroPoint();
  return tb.elementwise(
      inputs, {}, tb.i8(),
      [&](OpBuilder &nb, Location nl, ValueRange a, Value) {
        using namespace arith;
        auto c32 = [&](int64_t v) { return constI32(nb, nl, v); };
        Value sum = c32(0);
        for (size_t k = 0; k < a.size(); ++k) {
          Value x = nb.create<SubIOp>(
              nl, nb.create<ExtSIOp>(nl, nb.getI32Type(), a[k]), c32(zps[k]));
          sum = nb.create<AddIOp>(
              nl, sum,
              fixedPointMul(nb, nl, x, c32(mult[k]), c32(shift[k]), rounding));
        }
        if (act == Activation::relu)
          sum = nb.create<MaxSIOp>(nl, sum, c32(0));
        if (act == Activation::leaky) {
          Value neg = nb.create<CmpIOp>(nl, CmpIPredicate::slt, sum, c32(0));
          Value scaled =
              fixedPointMul(nb, nl, sum, c32(negM), c32(negS), rounding);
          sum = nb.create<SelectOp>(nl, neg, scaled, sum);
        }
        Value mask = c32((1 << 16) - 1);
        Value rem = nb.create<AndIOp>(nl, sum, mask);
        Value neg = nb.create<CmpIOp>(nl, CmpIPredicate::slt, sum, c32(0));
        Value thr =
            nb.create<AddIOp>(nl, c32((1 << 15) - 1),
                              nb.create<ExtUIOp>(nl, nb.getI32Type(), neg));
        Value upv = nb.create<CmpIOp>(nl, CmpIPredicate::sgt, rem, thr);
        Value r =
            nb.create<AddIOp>(nl, nb.create<ShRSIOp>(nl, sum, c32(16)),
                              nb.create<ExtUIOp>(nl, nb.getI32Type(), upv));
        return saturateToInt8(nb, nl, nb.create<AddIOp>(nl, r, c32(zo)));
      });
}

struct ShortcutLowering : OpConversionPattern<ShortcutOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult check(ShortcutOp op) const {
    auto os = nhwcShape(op.getResult());
    for (Value in : op->getOperands()) {
      auto s = nhwcShape(in);
      if (s[1] != os[1] || s[2] != os[2])
        return emitUnsupported(op, "shortcut between different spatial sizes");
    }
    Activation act = op.getActivation();
    if (!getInt8Quant(op.getResult()))
      return checkFloatActivation(op, act);
    if (!hasInt8Activation(act, /*onShortcut=*/true))
      return emitUnsupported(op, "int8 shortcut activation '" +
                                     stringifyActivation(act) + "'");
    return success();
  }

  /// Every input to the output's channel count: wider ones sliced, narrower
  /// ones padded with their zero (contributes nothing).
  static Value matchChannels(TosaBuilder &tb, Value qsimInput, Value v,
                             ArrayRef<int64_t> os) {
    auto t = cast<RankedTensorType>(v.getType());
    int64_t c = t.getDimSize(3), C = os[3];
    OpBuilder &b = tb.b;
    if (c > C)
      return tb.make<tosa::SliceOp>(
          tb.tensorType(os, t.getElementType()), {v},
          {tb.attr("start", b.getDenseI64ArrayAttr({0, 0, 0, 0})),
           tb.attr("size", b.getDenseI64ArrayAttr(os))});
    if (c == C)
      return v;
    SmallVector<int32_t> p = {0, 0, 0, 0, 0, 0, 0, (int32_t)(C - c)};
    auto q = getInt8Quant(qsimInput);
    Value padc =
        q ? tb.scalarTensor(tb.i8(), b.getI8IntegerAttr(q.getZeroPoint()))
          : tb.scalarTensor(tb.f32(), b.getF32FloatAttr(0.0f));
    return tb.make<tosa::PadOp>(
        tb.tensorType(os, t.getElementType()),
        {v, tb.constant<int32_t>({4, 2}, tb.i32(), p), padc});
  }

  LogicalResult
  matchAndRewrite(ShortcutOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    FailureOr<rt::Rounding> rounding = getRounding(op);
    if (failed(check(op)) || failed(rounding))
      return failure();
    auto os = nhwcShape(op.getResult());
    TosaBuilder tb(rewriter, op.getLoc());
    SmallVector<Value> vs;
    for (auto [qsimInput, lowered] :
         llvm::zip_equal(op->getOperands(), adaptor.getOperands()))
      vs.push_back(matchChannels(tb, qsimInput,
                                 computeInput(tb, qsimInput, lowered), os));
    Value out;
    if (getInt8Quant(op.getResult())) {
      out = int8Shortcut(tb, op, vs, *rounding);
    } else {
      Value sum = vs[0];
      for (size_t i = 1; i < vs.size(); ++i)
        sum = tb.make<tosa::AddOp>(sum.getType(), {sum, vs[i]});
      out = storeAs(tb, tb.activateTensor(sum, op.getActivation()),
                    op.getResult());
    }
    rewriter.replaceOp(op, out);
    return success();
  }
};

} // namespace

void lowering::populateDataMovementPatterns(TypeConverter &converter,
                                            RewritePatternSet &patterns) {
  patterns.add<MaxPoolLowering, UpsampleLowering, DropoutLowering,
               RouteLowering, ShortcutLowering>(converter,
                                                patterns.getContext());
}
