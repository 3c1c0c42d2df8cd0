//===- DotProductConvs.cpp - --qsim-dot-product-convs --------------------===//
//
// int8 convolutions as micro-kernels built on the target's packed 8-bit dot
// products (AVX512-VNNI `vpdpbusd`, Armv8.2 `sdot`): one instruction does 4
// multiply-adds per 32-bit lane, where the generic vectorized form
// (`--qsim-tile-and-vectorize`) widens every byte to 32 bits and does one.
// MLIR 19's X86Vector/ArmNeon dialects have no such contraction lowering for
// convolutions, so the loop nest is qsim's (ConvMicroKernel.h): tiles of
// output columns x filter vectors kept in registers over taps and groups of
// 4 input channels; the dot products are `llvm.call_intrinsic`.
//
//===----------------------------------------------------------------------===//

#include "ConvMicroKernel.h"
#include "qsim/Conversion/Passes.h"

#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace qsim {
#define GEN_PASS_DEF_DOTPRODUCTCONVSPASS
#include "qsim/Conversion/Passes.h.inc"
} // namespace qsim

using namespace mlir;

namespace {

qsim::MicroKernelTarget microKernelTarget(qsim::DotProductIsa isa) {
  // Both have 32 vector registers (zmm0-31 / v0-31).
  if (isa == qsim::DotProductIsa::Avx512Vnni)
    return qsim::MicroKernelTarget{qsim::MultiplyAdd::X86Vpdpbusd, 16, 32};
  return qsim::MicroKernelTarget{qsim::MultiplyAdd::ArmSdot, 4, 32};
}

template <typename ConvOp> struct ConvToDotProducts : OpRewritePattern<ConvOp> {
  ConvToDotProducts(MLIRContext *ctx, qsim::MicroKernelTarget target)
      : OpRewritePattern<ConvOp>(ctx), target(target) {}

  LogicalResult matchAndRewrite(ConvOp op, PatternRewriter &rw) const override {
    FailureOr<qsim::ConvGeometry> g = qsim::matchConvGeometry(op, rw);
    if (failed(g))
      return failure();
    Value input = op.getDpsInputs()[0], filter = op.getDpsInputs()[1];
    Value init = op.getDpsInits()[0];
    auto elemOf = [](Value v) {
      return cast<RankedTensorType>(v.getType()).getElementType();
    };
    if (!elemOf(input).isInteger(8) || !elemOf(filter).isInteger(8) ||
        !elemOf(init).isInteger(32))
      return rw.notifyMatchFailure(op, "not i8 x i8 -> i32");
    DenseElementsAttr filterAttr;
    if (!matchPattern(filter, m_Constant(&filterAttr)))
      return rw.notifyMatchFailure(op, "filter is not a constant");

    // Channels and filters are padded with zero weights to whole groups of
    // 4 and whole vectors (the first layer's 3 channels, a head's 255
    // filters); the padded filters' lanes are never stored.
    int64_t cPad = (g->c + 3) / 4 * 4;
    Location loc = op.getLoc();
    qsim::PackedFilter packed =
        qsim::packFilterConstant<int8_t>(rw, loc, filterAttr, *g, target, cPad);

    Type i32 = rw.getI32Type();
    if (cPad != g->c)
      input = paddedChannels(rw, loc, input, cPad);
    Value correction;
    if (target.multiplyAdd == qsim::MultiplyAdd::X86Vpdpbusd) {
      // vpdpbusd multiplies unsigned bytes: the input shifted by +128 (xor
      // 0x80), each filter's accumulator 128 x its weight sum lower.
      std::vector<int32_t> sums(packed.paddedFilters, 0);
      int64_t perFilter = g->kh * g->kw * g->c, i = 0;
      for (int8_t w : filterAttr.getValues<int8_t>())
        sums[i++ / perFilter] -= 128 * int32_t(w);
      correction = rw.create<arith::ConstantOp>(
          loc, DenseElementsAttr::get(
                   RankedTensorType::get({packed.paddedFilters}, i32),
                   ArrayRef<int32_t>(sums)));
      input = shiftedToUnsigned(rw, loc, input);
    }
    qsim::rewriteConvWithMicroKernel(rw, op, target, *g, packed.tile, input,
                                     packed.constant, correction);
    return success();
  }

  /// The input with zero channels appended up to `channels`.
  static Value paddedChannels(PatternRewriter &rw, Location loc, Value input,
                              int64_t channels) {
    auto type = cast<RankedTensorType>(input.getType());
    SmallVector<int64_t> shape(type.getShape());
    SmallVector<OpFoldResult> low(shape.size(), rw.getIndexAttr(0));
    SmallVector<OpFoldResult> high(low);
    high.back() = rw.getIndexAttr(channels - shape.back());
    shape.back() = channels;
    Value zero = rw.create<arith::ConstantIntOp>(loc, 0, 8);
    return rw.create<tensor::PadOp>(
        loc, RankedTensorType::get(shape, type.getElementType()), input, low,
        high, zero);
  }

  /// The input with every byte xor 0x80 (signed -> unsigned, minus 128).
  static Value shiftedToUnsigned(PatternRewriter &rw, Location loc,
                                 Value input) {
    auto type = cast<RankedTensorType>(input.getType());
    Value empty =
        rw.create<tensor::EmptyOp>(loc, type.getShape(), type.getElementType());
    Value bit = rw.create<arith::ConstantIntOp>(loc, -128, 8);
    auto map = rw.getMultiDimIdentityMap(type.getRank());
    SmallVector<utils::IteratorType> iters(type.getRank(),
                                           utils::IteratorType::parallel);
    return rw
        .create<linalg::GenericOp>(
            loc, TypeRange{type}, ValueRange{input}, ValueRange{empty},
            ArrayRef<AffineMap>{map, map}, iters,
            [&](OpBuilder &b, Location loc, ValueRange args) {
              b.create<linalg::YieldOp>(
                  loc, ValueRange{b.create<arith::XOrIOp>(loc, args[0], bit)});
            })
        .getResult(0);
  }

  qsim::MicroKernelTarget target;
};

struct DotProductConvsPass
    : public qsim::impl::DotProductConvsPassBase<DotProductConvsPass> {
  using DotProductConvsPassBase::DotProductConvsPassBase;

  void runOnOperation() override {
    if (isa == qsim::DotProductIsa::None)
      return;
    qsim::MicroKernelTarget target = microKernelTarget(isa);
    RewritePatternSet patterns(&getContext());
    patterns.add<ConvToDotProducts<linalg::Conv2DNhwcFhwcOp>,
                 ConvToDotProducts<linalg::Conv2DNhwcFhwcQOp>>(&getContext(),
                                                               target);
    if (failed(
            applyPatternsAndFoldGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace
