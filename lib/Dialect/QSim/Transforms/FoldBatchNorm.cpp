//===- FoldBatchNorm.cpp - --qsim-fold-batchnorm -------------------------===//

#include "qsim/Dialect/QSim/Transforms/Passes.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <cmath>

namespace qsim {
#define GEN_PASS_DEF_FOLDBATCHNORMPASS
#include "qsim/Dialect/QSim/Transforms/Passes.h.inc"
} // namespace qsim

using namespace mlir;
using namespace qsim;

namespace {

/// conv2d/connected (no bias, linear) + batchnorm -> conv2d/connected with
/// scaled weights, a bias and the batch norm's activation.
struct FoldIntoProducer : public OpRewritePattern<BatchNormOp> {
  FoldIntoProducer(MLIRContext *ctx, Flavor flavor, int64_t &count)
      : OpRewritePattern(ctx), flavor(flavor), count(count) {}

  LogicalResult matchAndRewrite(BatchNormOp bn,
                                PatternRewriter &rewriter) const override {
    if (bn.getStandalone())
      return failure();
    Operation *producer = bn.getInput().getDefiningOp();
    if (!producer || !isa<Conv2DOp, ConnectedOp>(producer))
      return failure();
    auto weightAttr = producer->getAttrOfType<ElementsAttr>("weight");
    if (!weightAttr || !bn.getScale() || !bn.getMean() || !bn.getVariance() ||
        !bn.getBias())
      return rewriter.notifyMatchFailure(bn, "no parameters to fold");
    std::vector<float> w = getFloats(weightAttr);
    std::vector<float> scale = getFloats(*bn.getScale());
    std::vector<float> mean = getFloats(*bn.getMean());
    std::vector<float> var = getFloats(*bn.getVariance());
    std::vector<float> bias = getFloats(*bn.getBias());
    int64_t channels = scale.size();
    if ((int64_t)w.size() % channels != 0)
      return failure();
    int64_t per = w.size() / channels;
    // The batch norm's output is N(beta, gamma^2) per channel on the data
    // it was trained on: analytic bias correction needs that after the
    // batch norm itself is gone.
    BatchNormStats stats{bias, scale};
    for (float &g : stats.std)
      g = std::fabs(g);
    for (int64_t c = 0; c < channels; ++c) {
      double sd = flavor == Flavor::AlexeyAB
                      ? std::sqrt((double)(var[c] + .00001f))
                      : std::sqrt((double)var[c]) + .000001f;
      double factor = (double)scale[c] / sd;
      for (int64_t i = 0; i < per; ++i)
        w[c * per + i] = (float)(w[c * per + i] * factor);
      bias[c] = (float)((double)bias[c] - factor * (double)mean[c]);
    }
    std::string base =
        "layer" +
        std::to_string(getLayerIndexFromLoc(producer->getLoc()).value_or(0)) +
        "_folded";
    auto wType = cast<ShapedType>(weightAttr.getType());
    Location loc = rewriter.getFusedLoc({producer->getLoc(), bn.getLoc()});
    rewriter.modifyOpInPlace(producer, [&] {
      producer->setAttr("weight", makeFloatAttr(getContext(), wType.getShape(),
                                                base + "_weight", w));
      producer->setAttr("bias", makeFloatAttr(getContext(), {channels},
                                              base + "_bias", bias));
      producer->setAttr("activation", bn.getActivationAttr());
      setBatchNormStats(producer, stats);
      // A range calibrated on the layer output stays with it.
      if (Attribute calib = bn->getAttr("qsim.calib"))
        producer->setAttr("qsim.calib", calib);
      producer->setLoc(loc);
    });
    rewriter.replaceOp(bn, producer->getResult(0));
    ++count;
    return success();
  }

  Flavor flavor;
  int64_t &count;
};

struct FoldBatchNormPass
    : public qsim::impl::FoldBatchNormPassBase<FoldBatchNormPass> {
  void runOnOperation() override {
    int64_t count = 0;
    if (failed(foldBatchNorms(getOperation(), &count)))
      return signalPassFailure();
    numFolded = count;
  }
};

} // namespace

LogicalResult qsim::foldBatchNorms(ModuleOp module, int64_t *folded) {
  // Shape-only models have nothing to fold: say so instead of silently
  // leaving batch norms that quantization would then refuse.
  WalkResult missing = module.walk([&](BatchNormOp bn) {
    if (!bn.getStandalone() && !bn.getScale()) {
      bn.emitError() << describeLayer(bn)
                     << ": the batch norm has no parameters to fold (a "
                        "shape-only model: import it with weights)";
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  if (missing.wasInterrupted())
    return failure();
  int64_t count = 0;
  MLIRContext *ctx = module.getContext();
  RewritePatternSet patterns(ctx);
  patterns.add<FoldIntoProducer>(ctx, getFlavor(module), count);
  if (failed(applyPatternsAndFoldGreedily(module, std::move(patterns))))
    return failure();
  if (folded)
    *folded = count;
  return success();
}
