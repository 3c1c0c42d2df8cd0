//===- FloatLayerPatterns.cpp - the layers without an int8 form -----------===//
//
// batchnorm, activation, avgpool, scale_channels, softmax and yolo compute
// in f32 (an f16 layer's input is extended, its result truncated); the
// elementwise functions TOSA lacks are linalg.generics.
//
//===----------------------------------------------------------------------===//

#include "LoweringUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

#include <cmath>

using namespace mlir;
using namespace qsim;
using namespace qsim::lowering;

namespace {

/// Lowers a float layer: checks that its inputs are float, builds its f32
/// result and stores it in the layer's own type.
template <typename OpTy> struct FloatLayerLowering : OpConversionPattern<OpTy> {
  using OpConversionPattern<OpTy>::OpConversionPattern;
  using OpAdaptor = typename OpTy::Adaptor;

  /// Fails (with the error) if `op` has no generated form.
  virtual LogicalResult check(OpTy op) const { return success(); }
  /// The f32 result from the lowered inputs (f32 or f16: each build casts
  /// them where it reads them).
  virtual Value build(TosaBuilder &tb, OpTy op, ValueRange ins) const = 0;

  LogicalResult
  matchAndRewrite(OpTy op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    if (failed(checkFloatOperands(op)) || failed(check(op)))
      return failure();
    TosaBuilder tb(rewriter, op.getLoc());
    Value out = build(tb, op, adaptor.getOperands());
    if (getElementTypeOrSelf(op->getResult(0).getType()).isF16())
      out = tb.castTo(out, rewriter.getF16Type());
    rewriter.replaceOp(op, out);
    return success();
  }
};

/// (x - mean) / sd * scale + bias, then the activation; sd as the flavour
/// computes it.
struct BatchNormLowering : FloatLayerLowering<BatchNormOp> {
  using FloatLayerLowering::FloatLayerLowering;

  LogicalResult check(BatchNormOp op) const override {
    if (!op.getScale())
      return emitUnsupported(op, "no parameters (shape-only model)");
    return checkFloatActivation(op, op.getActivation());
  }

  Value build(TosaBuilder &tb, BatchNormOp op, ValueRange ins) const override {
    auto scale = getFloats(*op.getScale()), mean = getFloats(*op.getMean()),
         var = getFloats(*op.getVariance()), bias = getFloats(*op.getBias());
    int64_t C = scale.size();
    bool ab = getFlavor(op) == Flavor::AlexeyAB;
    std::vector<float> sd(C);
    for (int64_t c = 0; c < C; ++c)
      sd[c] = ab ? std::sqrt(var[c] + .00001f) : std::sqrt(var[c]) + .000001f;
    SmallVector<Value> pc = {tb.constant<float>({C}, tb.f32(), mean),
                             tb.constant<float>({C}, tb.f32(), sd),
                             tb.constant<float>({C}, tb.f32(), scale),
                             tb.constant<float>({C}, tb.f32(), bias)};
    Activation act = op.getActivation();
    return tb.elementwise(
        {tb.castTo(ins[0], tb.f32())}, pc, tb.f32(),
        [&](OpBuilder &nb, Location nl, ValueRange a, Value) {
          using namespace arith;
          Value x =
              nb.create<DivFOp>(nl, nb.create<SubFOp>(nl, a[0], a[1]), a[2]);
          x = nb.create<AddFOp>(nl, nb.create<MulFOp>(nl, x, a[3]), a[4]);
          return activate(nb, nl, x, act);
        });
  }
};

struct ActivationLowering : FloatLayerLowering<ActivationOp> {
  using FloatLayerLowering::FloatLayerLowering;

  LogicalResult check(ActivationOp op) const override {
    return checkFloatActivation(op, op.getActivation());
  }
  Value build(TosaBuilder &tb, ActivationOp op, ValueRange ins) const override {
    return tb.activateTensor(tb.castTo(ins[0], tb.f32()), op.getActivation());
  }
};

/// The mean over H and W.
struct AvgPoolLowering : FloatLayerLowering<AvgPoolOp> {
  using FloatLayerLowering::FloatLayerLowering;

  Value build(TosaBuilder &tb, AvgPoolOp, ValueRange ins) const override {
    OpBuilder &b = tb.b;
    Value in = tb.castTo(ins[0], tb.f32());
    auto s = cast<RankedTensorType>(in.getType()).getShape();
    Value sum = tb.make<tosa::ReduceSumOp>(
        tb.tensorType({1, 1, s[2], s[3]}, tb.f32()), {in},
        {tb.attr("axis", b.getI32IntegerAttr(1))});
    sum = tb.make<tosa::ReduceSumOp>(tb.tensorType({1, 1, 1, s[3]}, tb.f32()),
                                     {sum},
                                     {tb.attr("axis", b.getI32IntegerAttr(2))});
    return tb.make<tosa::MulOp>(sum.getType(),
                                {sum, tb.splat4(1.0f / (float)(s[1] * s[2]))},
                                {tb.attr("shift", b.getI8IntegerAttr(0))});
  }
};

/// Features (input 1) times per-channel scales (input 0).
struct ScaleChannelsLowering : FloatLayerLowering<ScaleChannelsOp> {
  using FloatLayerLowering::FloatLayerLowering;

  LogicalResult check(ScaleChannelsOp op) const override {
    if (op.getScaleWh())
      return emitUnsupported(op, "scale_channels with scale_wh");
    return checkFloatActivation(op, op.getActivation());
  }
  Value build(TosaBuilder &tb, ScaleChannelsOp op,
              ValueRange ins) const override {
    Value scales = tb.castTo(ins[0], tb.f32()),
          feats = tb.castTo(ins[1], tb.f32());
    Value out =
        tb.make<tosa::MulOp>(feats.getType(), {feats, scales},
                             {tb.attr("shift", tb.b.getI8IntegerAttr(0))});
    return tb.activateTensor(out, op.getActivation());
  }
};

/// Over the channels, with the temperature.
struct SoftmaxLowering : FloatLayerLowering<SoftmaxOp> {
  using FloatLayerLowering::FloatLayerLowering;

  LogicalResult check(SoftmaxOp op) const override {
    if (op.getGroups() != 1)
      return emitUnsupported(op, "softmax with groups");
    return success();
  }
  Value build(TosaBuilder &tb, SoftmaxOp op, ValueRange ins) const override {
    OpBuilder &b = tb.b;
    Value in = tb.castTo(ins[0], tb.f32());
    auto t = cast<RankedTensorType>(in.getType());
    float temp = op.getTemperature().convertToFloat();
    auto noShift = tb.attr("shift", b.getI8IntegerAttr(0));
    if (temp != 1.0f)
      in = tb.make<tosa::MulOp>(t, {in, tb.splat4(1.0f / temp)}, {noShift});
    auto red =
        tb.tensorType({1, t.getDimSize(1), t.getDimSize(2), 1}, tb.f32());
    Value mx = tb.make<tosa::ReduceMaxOp>(
        red, {in}, {tb.attr("axis", b.getI32IntegerAttr(3))});
    Value e = tb.make<tosa::ExpOp>(t, {tb.make<tosa::SubOp>(t, {in, mx})});
    Value sum = tb.make<tosa::ReduceSumOp>(
        red, {e}, {tb.attr("axis", b.getI32IntegerAttr(3))});
    return tb.make<tosa::MulOp>(t, {e, tb.make<tosa::ReciprocalOp>(red, {sum})},
                                {noShift});
  }
};

/// The yolo head's per-channel logistic and x/y scaling, as the flavour
/// decodes.
struct YoloLowering : FloatLayerLowering<YoloOp> {
  using FloatLayerLowering::FloatLayerLowering;

  Value build(TosaBuilder &tb, YoloOp op, ValueRange ins) const override {
    int64_t entries = op.getClasses() + 5;
    float alpha = op.getScaleXY().convertToFloat();
    float beta = (float)(-0.5 * (double)(alpha - 1.0f));
    bool pj = getFlavor(op) == Flavor::PJReddie, nc = op.getNewCoords();
    return tb.elementwise(
        {tb.castTo(ins[0], tb.f32())}, {}, tb.f32(),
        [&](OpBuilder &nb, Location nl, ValueRange a, Value ch) {
          using namespace arith;
          Value x = a[0];
          Value c64 = nb.create<IndexCastOp>(nl, nb.getI64Type(), ch);
          Value e = nb.create<RemSIOp>(nl, c64, constI64(nb, nl, entries));
          Value isWH = nb.create<OrIOp>(
              nl,
              nb.create<CmpIOp>(nl, CmpIPredicate::eq, e, constI64(nb, nl, 2)),
              nb.create<CmpIOp>(nl, CmpIPredicate::eq, e, constI64(nb, nl, 3)));
          Value lg = activate(nb, nl, x, Activation::logistic);
          Value v =
              nc && !pj ? x : nb.create<SelectOp>(nl, isWH, x, lg).getResult();
          if (!pj) {
            Value xy = nb.create<CmpIOp>(nl, CmpIPredicate::slt, e,
                                         constI64(nb, nl, 2));
            Value sc = nb.create<AddFOp>(
                nl, nb.create<MulFOp>(nl, v, constF32(nb, nl, alpha)),
                constF32(nb, nl, beta));
            v = nb.create<SelectOp>(nl, xy, sc, v);
          }
          return v;
        });
  }
};

} // namespace

void lowering::populateFloatLayerPatterns(TypeConverter &converter,
                                          RewritePatternSet &patterns) {
  patterns.add<BatchNormLowering, ActivationLowering, AvgPoolLowering,
               ScaleChannelsLowering, SoftmaxLowering, YoloLowering>(
      converter, patterns.getContext());
}
