//===- WeightedLayerPatterns.cpp - conv2d and connected to TOSA -----------===//
//
// Weights are transposed to TOSA's layouts at compile time. int8 layers pad
// with the input zero point and fold -zp * sum(w) into the bias, so the TOSA
// convolution itself has zero points 0; the i32 accumulator is then
// requantized (TosaBuilder::requantize).
//
//===----------------------------------------------------------------------===//

#include "LoweringUtils.h"

using namespace mlir;
using namespace qsim;
using namespace qsim::lowering;

namespace {

/// A weighted layer's weights and biases as read from its attributes, one
/// kind filled: f32 for a float layer, int8 weights and int64 biases (the
/// input zero point folded in) for an int8 one.
struct LayerWeights {
  std::vector<float> floats, floatBias;
  std::vector<int8_t> ints;
  std::vector<int64_t> intBias;
};

/// What every weighted layer needs to have a generated form.
LogicalResult checkWeightedLayer(Operation *op, bool hasWeights,
                                 std::optional<int64_t> accumulatorBits) {
  if (!hasWeights)
    return emitUnsupported(
        op, "no weights (a shape-only model cannot be compiled)");
  if (accumulatorBits == 16)
    return emitUnsupported(
        op, "the 16-bit accumulator simulation has no generated form");
  return success();
}

template <typename T>
FailureOr<std::vector<T>> readInts(Operation *op, ElementsAttr a) {
  if (auto v = getInts<T>(a))
    return std::move(*v);
  return emitUnsupported(op,
                         "integer weights in a storage that cannot be read");
}

/// The weights of `outputs` filters of `taps` weights each; `inQ` the input
/// quantization of an int8 layer (null: float).
FailureOr<LayerWeights> readWeights(Operation *op, ElementsAttr weight,
                                    std::optional<ElementsAttr> bias,
                                    int64_t outputs, int64_t taps,
                                    quant::UniformQuantizedType inQ) {
  LayerWeights w;
  if (!inQ) {
    w.floats = getFloats(weight);
    w.floatBias.assign(outputs, 0.0f);
    if (bias)
      w.floatBias = getFloats(*bias);
    return w;
  }
  auto ints = readInts<int8_t>(op, weight);
  if (failed(ints))
    return failure();
  w.ints = std::move(*ints);
  w.intBias.assign(outputs, 0);
  if (bias) {
    auto bv = readInts<int32_t>(op, *bias);
    if (failed(bv))
      return failure();
    for (int64_t f = 0; f < outputs; ++f)
      w.intBias[f] = (*bv)[f];
  }
  for (int64_t f = 0; f < outputs; ++f) {
    int64_t sum = 0;
    for (int64_t t = 0; t < taps; ++t)
      sum += w.ints[f * taps + t];
    w.intBias[f] -= (int64_t)inQ.getZeroPoint() * sum;
  }
  return w;
}

/// The end of a weighted layer: a float accumulator through the activation
/// (stored as f16 for an f16 layer), an int8 one requantized.
template <typename OpTy>
Value finishWeightedLayer(TosaBuilder &tb, OpTy op, Value acc,
                          const LayerWeights &w, rt::Rounding rounding) {
  Type resultEl = getElementTypeOrSelf(op.getResult().getType());
  auto outQ = getInt8Quant(op.getResult());
  if (!outQ) {
    Value out = tb.activateTensor(acc, op.getActivation());
    return resultEl.isF16() ? tb.castTo(out, tb.b.getF16Type()) : out;
  }
  Requantization r{
      w.intBias,    *op.getMultiplier(), *op.getShift(), std::nullopt,
      std::nullopt, op.getActivation(),  outQ,           rounding};
  if (op.getNegMultiplier())
    r.negMultiplier = *op.getNegMultiplier(), r.negShift = *op.getNegShift();
  return tb.requantize(acc, r);
}

/// Fails (with the error) unless the activation `op` ends with has a form in
/// the layer's precision.
template <typename OpTy> LogicalResult checkActivation(OpTy op) {
  if (!getInt8Quant(op.getResult()))
    return checkFloatActivation(op, op.getActivation());
  return checkRequantization(op, op.getActivation(),
                             op.getNegMultiplier() && op.getNegShift());
}

//===----------------------------------------------------------------------===//
// conv2d
//===----------------------------------------------------------------------===//

/// A convolution in TOSA's terms.
struct ConvGeometry {
  int64_t filters, channels, groups, kh, kw, sy, sx, py, px, dilation;
  /// Darknet's padding less what TOSA would leave unused.
  int64_t padBottom, padRight;
  SmallVector<int64_t, 4> outShape;
  int64_t groupChannels() const { return channels / groups; }
  int64_t groupFilters() const { return filters / groups; }
  bool isDepthwise() const {
    return groups > 1 && groups == channels && filters % channels == 0;
  }
  /// Index of weight (f, c, y, x) in Darknet's [F][C/G][kh][kw] order.
  int64_t weightIndex(int64_t f, int64_t c, int64_t y, int64_t x) const {
    return ((f * groupChannels() + c) * kh + y) * kw + x;
  }
};

FailureOr<ConvGeometry> getConvGeometry(Conv2DOp op,
                                        ArrayRef<int64_t> inShape) {
  ConvGeometry g;
  g.filters = op.getFilters(), g.channels = op.getInputChannels();
  g.groups = op.getGroups();
  g.kh = op.getKernelH(), g.kw = op.getKernelW();
  g.sy = op.getStride()[0], g.sx = op.getStride()[1];
  g.py = op.getPadding()[0], g.px = op.getPadding()[1];
  g.dilation = op.getDilation();
  g.outShape = nhwcShape(op.getResult());
  int64_t H = inShape[1], W = inShape[2];
  // TOSA's output size includes the dilation; Darknet's (AlexeyAB) does not.
  int64_t ekh = (g.kh - 1) * g.dilation + 1, ekw = (g.kw - 1) * g.dilation + 1;
  if ((H + 2 * g.py - ekh) / g.sy + 1 != g.outShape[1] ||
      (W + 2 * g.px - ekw) / g.sx + 1 != g.outShape[2])
    return emitUnsupported(
        op, "dilation with Darknet's output size (which ignores it)");
  g.padBottom = g.py - TosaBuilder::unusedPad(H, g.py, g.py, ekh, g.sy);
  g.padRight = g.px - TosaBuilder::unusedPad(W, g.px, g.px, ekw, g.sx);
  return g;
}

/// Depthwise weights [kh][kw][C][M]: output channel c*M + m.
template <typename T>
std::vector<T> depthwiseLayout(const std::vector<T> &w, const ConvGeometry &g) {
  int64_t C = g.channels, M = g.filters / g.channels;
  std::vector<T> out(g.kh * g.kw * C * M);
  for (int64_t c = 0; c < C; ++c)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t y = 0; y < g.kh; ++y)
        for (int64_t x = 0; x < g.kw; ++x)
          out[((y * g.kw + x) * C + c) * M + m] =
              w[g.weightIndex(c * M + m, 0, y, x)];
  return out;
}

/// Group `group`'s weights [fg][kh][kw][cg].
template <typename T>
std::vector<T> groupLayout(const std::vector<T> &w, const ConvGeometry &g,
                           int64_t group) {
  int64_t fg = g.groupFilters(), cg = g.groupChannels();
  std::vector<T> out(fg * g.kh * g.kw * cg);
  for (int64_t f = 0; f < fg; ++f)
    for (int64_t y = 0; y < g.kh; ++y)
      for (int64_t x = 0; x < g.kw; ++x)
        for (int64_t c = 0; c < cg; ++c)
          out[((f * g.kh + y) * g.kw + x) * cg + c] =
              w[g.weightIndex(group * fg + f, c, y, x)];
  return out;
}

/// Builds a convolution's accumulator: one tosa.depthwise_conv2d, or one
/// tosa.conv2d per group on its channel slice, concatenated.
class ConvBuilder {
public:
  ConvBuilder(TosaBuilder &tb, const ConvGeometry &g, const LayerWeights &w,
              bool int8)
      : tb(tb), g(g), w(w), q(int8) {}

  Value build(Value in) {
    Type accEl = q ? tb.i32() : tb.f32();
    auto accType =
        tb.tensorType({1, g.outShape[1], g.outShape[2], g.filters}, accEl);
    if (g.isDepthwise())
      return depthwise(in, accType);
    SmallVector<Value> parts;
    for (int64_t group = 0; group < g.groups; ++group)
      parts.push_back(groupConv(in, group, accEl));
    return parts.size() == 1
               ? parts[0]
               : tb.make<tosa::ConcatOp>(
                     accType, parts,
                     {tb.attr("axis", tb.b.getI32IntegerAttr(3))});
  }

private:
  /// The int8 convolution runs on the input padded with its zero point and
  /// pads nothing itself.
  SmallVector<NamedAttribute> convAttrs() {
    int64_t tp = q ? 0 : g.py, bp = q ? 0 : g.padBottom, lp = q ? 0 : g.px,
            rp = q ? 0 : g.padRight;
    OpBuilder &b = tb.b;
    SmallVector<NamedAttribute> a = {
        tb.attr("pad", b.getDenseI64ArrayAttr({tp, bp, lp, rp})),
        tb.attr("stride", b.getDenseI64ArrayAttr({g.sy, g.sx})),
        tb.attr("dilation", b.getDenseI64ArrayAttr({g.dilation, g.dilation}))};
    if (q)
      a.push_back(
          tb.attr("quantization_info",
                  tosa::ConvOpQuantizationAttr::get(b.getContext(), 0, 0)));
    return a;
  }

  /// The int8 bias is added with the requantization (int32, after the
  /// zero-point folding).
  Value depthwise(Value in, RankedTensorType accType) {
    int64_t F = g.filters;
    Value dwBias =
        q ? tb.constant<int32_t>({F}, tb.i32(), std::vector<int32_t>(F, 0))
          : tb.constant<float>({F}, tb.f32(), w.floatBias);
    SmallVector<int64_t> shape = {g.kh, g.kw, g.channels, F / g.channels};
    if (q)
      return tb.make<tosa::DepthwiseConv2DOp>(
          accType,
          {in, tb.constant<int8_t>(shape, tb.i8(), depthwiseLayout(w.ints, g)),
           dwBias},
          convAttrs());
    return tb.make<tosa::DepthwiseConv2DOp>(
        accType,
        {in, tb.constant<float>(shape, tb.f32(), depthwiseLayout(w.floats, g)),
         dwBias},
        convAttrs());
  }

  Value groupConv(Value in, int64_t group, Type accEl) {
    int64_t fg = g.groupFilters(), cg = g.groupChannels();
    auto inT = cast<RankedTensorType>(in.getType());
    Value part = in;
    if (g.groups > 1)
      part = tb.make<tosa::SliceOp>(
          tb.tensorType({1, inT.getDimSize(1), inT.getDimSize(2), cg},
                        inT.getElementType()),
          {in},
          {tb.attr("start", tb.b.getDenseI64ArrayAttr({0, 0, 0, group * cg})),
           tb.attr("size",
                   tb.b.getDenseI64ArrayAttr(
                       {1, inT.getDimSize(1), inT.getDimSize(2), cg}))});
    SmallVector<int64_t> shape = {fg, g.kh, g.kw, cg};
    Value weights =
        q ? tb.constant<int8_t>(shape, tb.i8(), groupLayout(w.ints, g, group))
          : tb.constant<float>(shape, tb.f32(),
                               groupLayout(w.floats, g, group));
    Value bias =
        q ? tb.constant<int32_t>({fg}, tb.i32(), std::vector<int32_t>(fg, 0))
          : tb.constant<float>(
                {fg}, tb.f32(),
                ArrayRef<float>(w.floatBias).slice(group * fg, fg));
    return tb.make<tosa::Conv2DOp>(
        tb.tensorType({1, g.outShape[1], g.outShape[2], fg}, accEl),
        {part, weights, bias}, convAttrs());
  }

  TosaBuilder &tb;
  const ConvGeometry &g;
  const LayerWeights &w;
  bool q;
};

struct Conv2DLowering : OpConversionPattern<Conv2DOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(Conv2DOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    if (failed(checkWeightedLayer(op, op.getWeight().has_value(),
                                  op.getAccumulatorBits())))
      return failure();
    auto inShape = cast<RankedTensorType>(adaptor.getInput().getType());
    FailureOr<ConvGeometry> g = getConvGeometry(op, inShape.getShape());
    if (failed(g))
      return failure();
    auto inQ = getInt8Quant(op.getInput());
    if ((bool)inQ != (bool)getInt8Quant(op.getResult()))
      return emitUnsupported(op, "mixed int8/float convolution");
    FailureOr<rt::Rounding> rounding = getRounding(op);
    if (failed(rounding) || failed(checkActivation(op)))
      return failure();
    FailureOr<LayerWeights> w =
        readWeights(op, *op.getWeight(), op.getBias(), g->filters,
                    g->groupChannels() * g->kh * g->kw, inQ);
    if (failed(w))
      return failure();

    TosaBuilder tb(rewriter, op.getLoc());
    Value in = adaptor.getInput();
    if (inQ)
      in = tb.pad(in, g->py, g->padBottom, g->px, g->padRight,
                  rewriter.getI8IntegerAttr(inQ.getZeroPoint()));
    else
      in = tb.castTo(in, tb.f32());
    Value acc = ConvBuilder(tb, *g, *w, (bool)inQ).build(in);
    rewriter.replaceOp(op, finishWeightedLayer(tb, op, acc, *w, *rounding));
    return success();
  }
};

//===----------------------------------------------------------------------===//
// connected
//===----------------------------------------------------------------------===//

/// Darknet's [O][C*H*W] weights (input index c*H*W + y*W + x) as TOSA's
/// [O][N] over the NHWC input (index (y*W + x)*C + c).
template <typename T>
std::vector<T> nhwcWeights(const std::vector<T> &w, int64_t O,
                           ArrayRef<int64_t> inShape) {
  int64_t H = inShape[1], W = inShape[2], C = inShape[3], N = H * W * C;
  std::vector<T> out(O * N);
  for (int64_t o = 0; o < O; ++o)
    for (int64_t i = 0; i < N; ++i) {
      int64_t c = i / (H * W), r = i % (H * W);
      out[o * N + r * C + c] = w[o * N + i];
    }
  return out;
}

struct ConnectedLowering : OpConversionPattern<ConnectedOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(ConnectedOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    if (failed(checkWeightedLayer(op, op.getWeight().has_value(),
                                  op.getAccumulatorBits())))
      return failure();
    auto inShape =
        cast<RankedTensorType>(adaptor.getInput().getType()).getShape();
    int64_t N = inShape[1] * inShape[2] * inShape[3], O = op.getOutputSize();
    auto inQ = getInt8Quant(op.getInput());
    if ((bool)inQ != (bool)getInt8Quant(op.getResult()))
      return emitUnsupported(op, "mixed int8/float connected layer");
    FailureOr<rt::Rounding> rounding = getRounding(op);
    if (failed(rounding) || failed(checkActivation(op)))
      return failure();
    FailureOr<LayerWeights> w =
        readWeights(op, *op.getWeight(), op.getBias(), O, N, inQ);
    if (failed(w))
      return failure();

    TosaBuilder tb(rewriter, op.getLoc());
    Value in =
        inQ ? adaptor.getInput() : tb.castTo(adaptor.getInput(), tb.f32());
    Type el = inQ ? tb.i8() : tb.f32(), accEl = inQ ? tb.i32() : tb.f32();
    Value flat = tb.make<tosa::ReshapeOp>(
        tb.tensorType({1, N}, el), {in},
        {tb.attr("new_shape", rewriter.getDenseI64ArrayAttr({1, N}))});
    auto outT2 = tb.tensorType({1, O}, accEl);
    Value acc;
    if (inQ) {
      // The bias is added with the requantization.
      acc = tb.make<tosa::FullyConnectedOp>(
          outT2,
          {flat,
           tb.constant<int8_t>({O, N}, tb.i8(),
                               nhwcWeights(w->ints, O, inShape)),
           tb.constant<int32_t>({O}, tb.i32(), std::vector<int32_t>(O, 0))},
          {tb.attr("quantization_info", tosa::ConvOpQuantizationAttr::get(
                                            rewriter.getContext(), 0, 0))});
    } else {
      acc = tb.make<tosa::FullyConnectedOp>(
          outT2, {flat,
                  tb.constant<float>({O, N}, tb.f32(),
                                     nhwcWeights(w->floats, O, inShape)),
                  tb.constant<float>({O}, tb.f32(), w->floatBias)});
    }
    Value acc4 = tb.make<tosa::ReshapeOp>(
        tb.tensorType({1, 1, 1, O}, accEl), {acc},
        {tb.attr("new_shape", rewriter.getDenseI64ArrayAttr({1, 1, 1, O}))});
    rewriter.replaceOp(op, finishWeightedLayer(tb, op, acc4, *w, *rounding));
    return success();
  }
};

} // namespace

void lowering::populateWeightedLayerPatterns(TypeConverter &converter,
                                             RewritePatternSet &patterns) {
  patterns.add<Conv2DLowering, ConnectedLowering>(converter,
                                                  patterns.getContext());
}
