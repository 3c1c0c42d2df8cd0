//===- FmaConvs.cpp - --qsim-fma-convs -----------------------------------===//
//
// f32 convolutions as register-tiled broadcast-FMA micro-kernels
// (ConvMicroKernel.h). The generic path (`--qsim-tile-and-vectorize`: 1-D
// convolutions per tap and channel tile) reads and writes the accumulators
// once per tap and 32 channels; here they stay in registers over the whole
// reduction, and the filter is packed so a block streams contiguously.
//
//===----------------------------------------------------------------------===//

#include "ConvMicroKernel.h"
#include "qsim/Conversion/Passes.h"

#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace qsim {
#define GEN_PASS_DEF_FMACONVSPASS
#include "qsim/Conversion/Passes.h.inc"
} // namespace qsim

using namespace mlir;

namespace {

struct ConvToFmas : OpRewritePattern<linalg::Conv2DNhwcFhwcOp> {
  ConvToFmas(MLIRContext *ctx, qsim::MicroKernelTarget target)
      : OpRewritePattern(ctx), target(target) {}

  LogicalResult matchAndRewrite(linalg::Conv2DNhwcFhwcOp op,
                                PatternRewriter &rw) const override {
    FailureOr<qsim::ConvGeometry> g = qsim::matchConvGeometry(op, rw);
    if (failed(g))
      return failure();
    Value input = op.getDpsInputs()[0], filter = op.getDpsInputs()[1];
    Value init = op.getDpsInits()[0];
    for (Value v : {input, filter, init})
      if (!cast<RankedTensorType>(v.getType()).getElementType().isF32())
        return rw.notifyMatchFailure(op, "not f32");
    DenseElementsAttr filterAttr;
    if (!matchPattern(filter, m_Constant(&filterAttr)))
      return rw.notifyMatchFailure(op, "filter is not a constant");

    qsim::PackedFilter packed = qsim::packFilterConstant<float>(
        rw, op.getLoc(), filterAttr, *g, target, g->c);
    qsim::rewriteConvWithMicroKernel(rw, op, target, *g, packed.tile, input,
                                     packed.constant, Value());
    return success();
  }

  qsim::MicroKernelTarget target;
};

struct FmaConvsPass : public qsim::impl::FmaConvsPassBase<FmaConvsPass> {
  using FmaConvsPassBase::FmaConvsPassBase;

  void runOnOperation() override {
    if (lanes == 0)
      return;
    if (lanes < 0 || registers < 4) {
      getOperation().emitError()
          << "qsim-fma-convs: lanes must be positive (or 0: off) and "
             "registers at least 4 (got "
          << lanes << " and " << registers << ")";
      return signalPassFailure();
    }
    RewritePatternSet patterns(&getContext());
    patterns.add<ConvToFmas>(
        &getContext(),
        qsim::MicroKernelTarget{qsim::MultiplyAdd::FloatFma, lanes, registers});
    if (failed(
            applyPatternsAndFoldGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace
