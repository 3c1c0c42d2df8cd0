//===- PrecisionCastPatterns.cpp - quant and float casts between layers ---===//
//
// The casts --qsim-quantize and --qsim-lighten insert at precision
// boundaries: quant.qcast (f32 to int8 with Darknet's rounding), quant.dcast
// (int8 to f32), quant.scast (the i8 storage is the lowered value already)
// and arith.truncf/extf on tensors (tosa.cast).
//
//===----------------------------------------------------------------------===//

#include "LoweringUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Quant/QuantOps.h"

using namespace mlir;
using namespace qsim;
using namespace qsim::lowering;

namespace {

struct QuantizeCastLowering : OpConversionPattern<quant::QuantizeCastOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(quant::QuantizeCastOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto q = getInt8Quant(op.getResult());
    if (!q)
      return emitUnsupported(op, "per-axis activation quantization");
    if (failed(checkFloatOperands(op)))
      return failure();
    TosaBuilder tb(rewriter, op.getLoc());
    rewriter.replaceOp(op,
                       tb.quantize(tb.castTo(adaptor.getArg(), tb.f32()), q));
    return success();
  }
};

struct DequantizeCastLowering : OpConversionPattern<quant::DequantizeCastOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(quant::DequantizeCastOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto q = getInt8Quant(op.getArg());
    if (!q)
      return emitUnsupported(op, "per-axis activation quantization");
    TosaBuilder tb(rewriter, op.getLoc());
    rewriter.replaceOp(op, tb.dequantize(adaptor.getArg(), q));
    return success();
  }
};

/// Between a quantized type and its storage type: the lowered value is the
/// storage already.
struct StorageCastLowering : OpConversionPattern<quant::StorageCastOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(quant::StorageCastOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    rewriter.replaceOp(op, adaptor.getArg());
    return success();
  }
};

/// f32 <-> f16 between a float and an f16 layer.
template <typename CastOp>
struct FloatCastLowering : OpConversionPattern<CastOp> {
  using OpConversionPattern<CastOp>::OpConversionPattern;

  LogicalResult
  matchAndRewrite(CastOp op, typename CastOp::Adaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    if (!isa<RankedTensorType>(op.getType()))
      return rewriter.notifyMatchFailure(op, "a scalar cast, not a layer's");
    TosaBuilder tb(rewriter, op.getLoc());
    rewriter.replaceOp(
        op, tb.castTo(adaptor.getIn(), getElementTypeOrSelf(op.getType())));
    return success();
  }
};

} // namespace

void lowering::populatePrecisionCastPatterns(TypeConverter &converter,
                                             RewritePatternSet &patterns) {
  patterns.add<QuantizeCastLowering, DequantizeCastLowering,
               StorageCastLowering, FloatCastLowering<arith::TruncFOp>,
               FloatCastLowering<arith::ExtFOp>>(converter,
                                                 patterns.getContext());
}
