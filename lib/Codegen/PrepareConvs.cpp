//===- PrepareConvs.cpp - --qsim-prepare-convs ---------------------------===//
//
// TOSA lowers convolutions to forms (filter-major conv_2d_nhwc_fhwc, 5-D
// depthwise with a channel multiplier, `_q` ops with zero points) that
// MLIR's convolution vectorizer does not handle. With constant filters
// (always the case here) and zero points 0 (qsim folds them into biases),
// they are rewritten to conv_2d_nhwc_hwcf / depthwise_conv_2d_nhwc_hwc /
// matmul, the filters permuted at compile time.
//
//===----------------------------------------------------------------------===//

#include "qsim/Conversion/Passes.h"

#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace qsim {
#define GEN_PASS_DEF_PREPARECONVSPASS
#include "qsim/Conversion/Passes.h.inc"
} // namespace qsim

using namespace mlir;

namespace {

bool isZero(Value v) { return matchPattern(v, m_Zero()); }

/// A constant of `resultType` whose element i is the source's element
/// `sourceOf(i)`, or zero where that is -1 (f32 and int8 filters).
template <typename T>
Attribute gatherElements(DenseElementsAttr attr, RankedTensorType resultType,
                         llvm::function_ref<int64_t(int64_t)> sourceOf) {
  auto values = llvm::to_vector(attr.getValues<T>());
  std::vector<T> out(resultType.getNumElements(), T(0));
  for (int64_t i = 0, e = (int64_t)out.size(); i < e; ++i)
    if (int64_t s = sourceOf(i); s >= 0)
      out[i] = values[s];
  return DenseElementsAttr::get(resultType, ArrayRef<T>(out));
}

FailureOr<Value>
rearrangedConstant(RewriterBase &rw, Location loc, DenseElementsAttr attr,
                   RankedTensorType resultType,
                   llvm::function_ref<int64_t(int64_t)> sourceOf) {
  Attribute result;
  if (attr.isSplat())
    result =
        DenseElementsAttr::get(resultType, attr.getSplatValue<Attribute>());
  else if (attr.getElementType().isF32())
    result = gatherElements<float>(attr, resultType, sourceOf);
  else if (attr.getElementType().isInteger(8))
    result = gatherElements<int8_t>(attr, resultType, sourceOf);
  else
    return failure();
  return rw.create<arith::ConstantOp>(loc, resultType, cast<TypedAttr>(result))
      .getResult();
}

/// Row-major strides of `shape`.
SmallVector<int64_t> stridesOf(ArrayRef<int64_t> shape) {
  SmallVector<int64_t> strides(shape.size(), 1);
  for (int64_t i = (int64_t)shape.size() - 2; i >= 0; --i)
    strides[i] = strides[i + 1] * shape[i + 1];
  return strides;
}

/// The filter constant permuted: result[...] = source[perm applied].
/// `perm[k]` is the source dimension of result dimension k.
FailureOr<Value> permutedConstant(RewriterBase &rw, Location loc, Value filter,
                                  ArrayRef<int64_t> perm,
                                  ArrayRef<int64_t> resultShape) {
  DenseElementsAttr attr;
  if (!matchPattern(filter, m_Constant(&attr)))
    return failure();
  auto type = cast<RankedTensorType>(attr.getType());
  SmallVector<int64_t> srcStrides = stridesOf(type.getShape());
  SmallVector<int64_t> dstStrides = stridesOf(resultShape);
  auto resultType = RankedTensorType::get(resultShape, type.getElementType());
  return rearrangedConstant(rw, loc, attr, resultType, [&](int64_t i) {
    int64_t off = 0;
    for (size_t k = 0; k < dstStrides.size(); ++k)
      off += (i / dstStrides[k] % resultShape[k]) * srcStrides[perm[k]];
    return off;
  });
}

/// A HWCF filter whose rows (one per input channel) are a multiple of 1 KiB
/// apart puts every row of a filter tile in the same few L1 sets (layer 12
/// of yolov3-tiny: 4 KiB apart, 4x slower). Storing the rows one cache line
/// further apart and reading the HWCF view of them avoids that.
Value spreadFilterRows(RewriterBase &rw, Location loc, Value filter) {
  DenseElementsAttr attr;
  if (!matchPattern(filter, m_Constant(&attr)) || attr.isSplat())
    return filter;
  auto type = cast<RankedTensorType>(attr.getType());
  auto shape = type.getShape();
  int64_t elemBytes = type.getElementTypeBitWidth() / 8;
  int64_t f = shape.back();
  if (elemBytes == 0 || (f * elemBytes) % 1024 != 0)
    return filter;
  int64_t row = f + 64 / elemBytes;
  SmallVector<int64_t> padded(shape);
  padded.back() = row;
  auto paddedType = RankedTensorType::get(padded, type.getElementType());
  auto c = rearrangedConstant(rw, loc, attr, paddedType, [&](int64_t i) {
    return i % row < f ? i / row * f + i % row : -1;
  });
  if (failed(c))
    return filter;
  SmallVector<OpFoldResult> offsets(shape.size(), rw.getIndexAttr(0));
  SmallVector<OpFoldResult> sizes, strides(shape.size(), rw.getIndexAttr(1));
  for (int64_t d : shape)
    sizes.push_back(rw.getIndexAttr(d));
  return rw.create<tensor::ExtractSliceOp>(loc, type, *c, offsets, sizes,
                                           strides);
}

/// conv_2d_nhwc_fhwc(_q with zero points 0) -> conv_2d_nhwc_hwcf.
template <typename ConvOp> struct ConvToHwcf : OpRewritePattern<ConvOp> {
  using OpRewritePattern<ConvOp>::OpRewritePattern;
  LogicalResult matchAndRewrite(ConvOp op, PatternRewriter &rw) const override {
    SmallVector<Value> ins = llvm::to_vector(op.getDpsInputs());
    if (ins.size() == 4 && (!isZero(ins[2]) || !isZero(ins[3])))
      return rw.notifyMatchFailure(op, "non-zero zero points");
    auto ft = cast<RankedTensorType>(ins[1].getType());
    auto s = ft.getShape(); // F, KH, KW, C
    auto filter = permutedConstant(rw, op.getLoc(), ins[1], {1, 2, 3, 0},
                                   {s[1], s[2], s[3], s[0]});
    if (failed(filter))
      return rw.notifyMatchFailure(op, "filter is not a constant");
    Value hwcf = spreadFilterRows(rw, op.getLoc(), *filter);
    auto conv = rw.create<linalg::Conv2DNhwcHwcfOp>(
        op.getLoc(), op.getResultTypes(), ValueRange{ins[0], hwcf},
        op.getDpsInits(), op.getStrides(), op.getDilations());
    rw.replaceOp(op, conv.getResults());
    return success();
  }
};

/// depthwise_conv_2d_nhwc_hwcm(_q, zero points 0) with multiplier 1,
/// collapsed to 4-D, -> depthwise_conv_2d_nhwc_hwc.
template <typename ConvOp>
struct DepthwiseToHwc : OpRewritePattern<tensor::CollapseShapeOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(tensor::CollapseShapeOp collapse,
                                PatternRewriter &rw) const override {
    auto op = collapse.getSrc().template getDefiningOp<ConvOp>();
    if (!op || !op->hasOneUse())
      return failure();
    SmallVector<Value> ins = llvm::to_vector(op.getDpsInputs());
    if (ins.size() == 4 && (!isZero(ins[2]) || !isZero(ins[3])))
      return rw.notifyMatchFailure(op, "non-zero zero points");
    auto ft = cast<RankedTensorType>(ins[1].getType());
    auto s = ft.getShape(); // KH, KW, C, M
    if (s[3] != 1)
      return rw.notifyMatchFailure(op, "channel multiplier");
    DenseElementsAttr attr;
    if (!matchPattern(ins[1], m_Constant(&attr)))
      return rw.notifyMatchFailure(op, "filter is not a constant");
    // Dropping M = 1 keeps the element order: a reshape, no copy.
    Value filter = rw.create<arith::ConstantOp>(
        op.getLoc(), attr.reshape(RankedTensorType::get({s[0], s[1], s[2]},
                                                        ft.getElementType())));
    // The 5-D init is a fill; the same fill in 4-D.
    auto fill = op.getDpsInits()[0].template getDefiningOp<linalg::FillOp>();
    if (!fill)
      return rw.notifyMatchFailure(op, "init is not a fill");
    auto outType = cast<RankedTensorType>(collapse.getType());
    Value empty = rw.create<tensor::EmptyOp>(op.getLoc(), outType.getShape(),
                                             outType.getElementType());
    Value init =
        rw.create<linalg::FillOp>(op.getLoc(), fill.getInputs()[0], empty)
            .getResult(0);
    auto conv = rw.create<linalg::DepthwiseConv2DNhwcHwcOp>(
        op.getLoc(), TypeRange{outType}, ValueRange{ins[0], filter},
        ValueRange{init}, op.getStrides(), op.getDilations());
    rw.replaceOp(collapse, conv.getResults());
    rw.eraseOp(op);
    return success();
  }
};

/// quantized_matmul with zero points 0 -> matmul (i8 x i8 -> i32).
struct QuantizedMatmulToMatmul : OpRewritePattern<linalg::QuantizedMatmulOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(linalg::QuantizedMatmulOp op,
                                PatternRewriter &rw) const override {
    SmallVector<Value> ins = llvm::to_vector(op.getDpsInputs());
    if (!isZero(ins[2]) || !isZero(ins[3]))
      return rw.notifyMatchFailure(op, "non-zero zero points");
    auto mm = rw.create<linalg::MatmulOp>(op.getLoc(), op.getResultTypes(),
                                          ValueRange{ins[0], ins[1]},
                                          op.getDpsInits());
    rw.replaceOp(op, mm.getResults());
    return success();
  }
};

struct PrepareConvsPass
    : public qsim::impl::PrepareConvsPassBase<PrepareConvsPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<ConvToHwcf<linalg::Conv2DNhwcFhwcOp>,
                 ConvToHwcf<linalg::Conv2DNhwcFhwcQOp>,
                 DepthwiseToHwc<linalg::DepthwiseConv2DNhwcHwcmOp>,
                 DepthwiseToHwc<linalg::DepthwiseConv2DNhwcHwcmQOp>,
                 QuantizedMatmulToMatmul>(&getContext());
    if (failed(
            applyPatternsAndFoldGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
    // Still correct, but the vectorizer's filter reads are strided: say so.
    getOperation().walk([](Operation *op) {
      if (isa<linalg::Conv2DNhwcFhwcOp, linalg::Conv2DNhwcFhwcQOp,
              linalg::DepthwiseConv2DNhwcHwcmOp,
              linalg::DepthwiseConv2DNhwcHwcmQOp>(op))
        op->emitWarning() << "convolution kept in its TOSA filter layout (the "
                             "filter is not a constant or a zero point is not "
                             "0): slower code";
    });
  }
};

} // namespace
