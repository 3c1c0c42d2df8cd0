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

bool isZero(Value v) {
  APInt i;
  return matchPattern(v, m_ConstantInt(&i)) && i.isZero();
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
  auto src = type.getShape();
  SmallVector<int64_t> srcStrides(src.size(), 1);
  for (int64_t i = (int64_t)src.size() - 2; i >= 0; --i)
    srcStrides[i] = srcStrides[i + 1] * src[i + 1];
  int64_t n = type.getNumElements();
  auto resultType = RankedTensorType::get(resultShape, type.getElementType());
  SmallVector<int64_t> idx(resultShape.size(), 0);
  auto sourceOffset = [&]() {
    int64_t off = 0;
    for (size_t k = 0; k < idx.size(); ++k)
      off += idx[k] * srcStrides[perm[k]];
    return off;
  };
  auto advance = [&]() {
    for (int64_t k = (int64_t)idx.size() - 1; k >= 0; --k) {
      if (++idx[k] < resultShape[k])
        return;
      idx[k] = 0;
    }
  };
  Attribute result;
  if (attr.isSplat()) {
    result =
        DenseElementsAttr::get(resultType, attr.getSplatValue<Attribute>());
  } else if (type.getElementType().isF32()) {
    auto values = llvm::to_vector(attr.getValues<float>());
    std::vector<float> out(n);
    for (int64_t i = 0; i < n; ++i, advance())
      out[i] = values[sourceOffset()];
    result = DenseElementsAttr::get(resultType, ArrayRef<float>(out));
  } else if (type.getElementType().isInteger(8)) {
    auto values = llvm::to_vector(attr.getValues<int8_t>());
    std::vector<int8_t> out(n);
    for (int64_t i = 0; i < n; ++i, advance())
      out[i] = values[sourceOffset()];
    result = DenseElementsAttr::get(resultType, ArrayRef<int8_t>(out));
  } else {
    return failure();
  }
  return rw.create<arith::ConstantOp>(loc, resultType, cast<TypedAttr>(result))
      .getResult();
}

/// A HWCF filter whose rows (one per input channel) are a multiple of 1 KiB
/// apart puts every row of a filter tile in the same few L1 sets (layer 12
/// of yolov3-tiny: 4 KiB apart, 4x slower). Storing the rows `vectorWidth`
/// elements further apart and reading the HWCF view of it avoids that.
Value spreadFilterRows(RewriterBase &rw, Location loc, Value filter) {
  DenseElementsAttr attr;
  if (!matchPattern(filter, m_Constant(&attr)) || attr.isSplat())
    return filter;
  auto type = cast<RankedTensorType>(attr.getType());
  auto shape = type.getShape();
  int64_t f = shape.back();
  int64_t bytes = f * type.getElementTypeBitWidth() / 8;
  if (bytes % 1024 != 0)
    return filter;
  int64_t pad = 64 / (type.getElementTypeBitWidth() / 8); // one cache line
  int64_t rows = type.getNumElements() / f;
  SmallVector<int64_t> padded(shape);
  padded.back() = f + pad;
  auto paddedType = RankedTensorType::get(padded, type.getElementType());
  Attribute result;
  if (type.getElementType().isF32()) {
    auto v = llvm::to_vector(attr.getValues<float>());
    std::vector<float> out(rows * (f + pad), 0.0f);
    for (int64_t r = 0; r < rows; ++r)
      std::copy(v.begin() + r * f, v.begin() + (r + 1) * f,
                out.begin() + r * (f + pad));
    result = DenseElementsAttr::get(paddedType, ArrayRef<float>(out));
  } else if (type.getElementType().isInteger(8)) {
    auto v = llvm::to_vector(attr.getValues<int8_t>());
    std::vector<int8_t> out(rows * (f + pad), 0);
    for (int64_t r = 0; r < rows; ++r)
      std::copy(v.begin() + r * f, v.begin() + (r + 1) * f,
                out.begin() + r * (f + pad));
    result = DenseElementsAttr::get(paddedType, ArrayRef<int8_t>(out));
  } else {
    return filter;
  }
  Value c = rw.create<arith::ConstantOp>(loc, paddedType,
                                         cast<TypedAttr>(result));
  SmallVector<OpFoldResult> offsets(shape.size(), rw.getIndexAttr(0));
  SmallVector<OpFoldResult> sizes, strides(shape.size(), rw.getIndexAttr(1));
  for (int64_t d : shape)
    sizes.push_back(rw.getIndexAttr(d));
  return rw.create<tensor::ExtractSliceOp>(loc, type, c, offsets, sizes,
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
    auto filter = permutedConstant(rw, op.getLoc(), ins[1], {0, 1, 2},
                                   {s[0], s[1], s[2]});
    if (failed(filter))
      return rw.notifyMatchFailure(op, "filter is not a constant");
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
        op.getLoc(), TypeRange{outType}, ValueRange{ins[0], *filter},
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
