//===- TileAndVectorize.cpp - --qsim-tile-and-vectorize ------------------===//
//
// The heavy loops as register-blocked vector code, from upstream pieces:
// scf tiling with static tile sizes that divide every (static) dimension,
// decomposition of 2-D convolutions with a 1x1 tap tile into 1-D ones, the
// linalg vectorizer (which turns 1-D convolutions into broadcast x vector
// multiply-accumulates over `pixel-tile` outputs and a `vector-width`
// filter block), then contraction lowering to outer products (FMA / MLA).
//
//===----------------------------------------------------------------------===//

#include "qsim/Conversion/Passes.h"

#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/SCF/Transforms/TileUsingInterface.h"
#include "mlir/Dialect/Tensor/Transforms/Transforms.h"
#include "mlir/Dialect/Vector/Transforms/LoweringPatterns.h"
#include "mlir/Dialect/Vector/Transforms/VectorRewritePatterns.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace qsim {
#define GEN_PASS_DEF_TILEANDVECTORIZEPASS
#include "qsim/Conversion/Passes.h.inc"
} // namespace qsim

using namespace mlir;

namespace {

/// The largest divisor of `n` not above `limit` (1 at least).
int64_t divisorUpTo(int64_t n, int64_t limit) {
  for (int64_t d = std::min(n, limit); d > 1; --d)
    if (n % d == 0)
      return d;
  return 1;
}

struct TileAndVectorizePass
    : public qsim::impl::TileAndVectorizePassBase<TileAndVectorizePass> {
  using TileAndVectorizePassBase::TileAndVectorizePassBase;

  /// Output pixels per register tile: a divisor of the row (tiles stay
  /// static), `pixel-tile` at most, but a whole short row (13, 26 = 2 x 13
  /// in YOLO heads) rather than tiles of one or two pixels, which would
  /// reload the filter vector for every multiply-add.
  int64_t pixelTileFor(int64_t width) const {
    int64_t t = divisorUpTo(width, pixelTile);
    if (t * 2 >= pixelTile)
      return t;
    int64_t wide = divisorUpTo(width, 2 * pixelTile);
    return wide > t ? wide : t;
  }

  /// Static tile sizes for `op` (empty: leave it alone).
  SmallVector<int64_t> tileSizes(linalg::LinalgOp op) const {
    SmallVector<int64_t> ranges = op.getStaticLoopRanges();
    for (int64_t r : ranges)
      if (ShapedType::isDynamic(r))
        return {};
    int64_t pw = pixelTile, vw = vectorWidth;
    if (isa<linalg::Conv2DNhwcHwcfOp>(op)) {
      // n, oh, ow, f, kh, kw, c. Two vectors of filters per tile where they
      // divide (each broadcast input value feeds two multiply-adds), but not
      // with whole-row tiles longer than pixel-tile (registers).
      int64_t px = pixelTileFor(ranges[2]);
      int64_t f = px <= pw && ranges[3] % (2 * vw) == 0
                      ? 2 * vw
                      : divisorUpTo(ranges[3], vw);
      return {1, 1, px, f, 1, 1, divisorUpTo(ranges[6], 32)};
    }
    if (isa<linalg::DepthwiseConv2DNhwcHwcOp, linalg::PoolingNhwcMaxOp,
            linalg::PoolingNhwcSumOp>(op)) {
      // n, oh, ow, c, kh, kw
      return {1, 1, divisorUpTo(ranges[2], pw), divisorUpTo(ranges[3], vw),
              1, 1};
    }
    if (isa<linalg::MatmulOp>(op)) {
      // m, n, k
      return {divisorUpTo(ranges[0], 8), divisorUpTo(ranges[1], vw),
              divisorUpTo(ranges[2], 32)};
    }
    if (auto g = dyn_cast<linalg::GenericOp>(op.getOperation())) {
      if (g.getNumReductionLoops() != 0)
        return {};
      // Elementwise: a row of pixels by a vector of channels.
      SmallVector<int64_t> sizes(ranges.size(), 1);
      int64_t n = ranges.size();
      if (n >= 1)
        sizes[n - 1] = divisorUpTo(ranges[n - 1], vw);
      if (n >= 2)
        sizes[n - 2] = divisorUpTo(ranges[n - 2], pw);
      return sizes;
    }
    return {};
  }

  void runOnOperation() override {
    func::FuncOp f = getOperation();
    MLIRContext *ctx = &getContext();
    IRRewriter rewriter(ctx);
    if (vectorWidth <= 0 || pixelTile <= 0) {
      f.emitError() << "qsim-tile-and-vectorize: vector-width and pixel-tile "
                       "must be positive (got "
                    << vectorWidth << " and " << pixelTile << ")";
      return signalPassFailure();
    }

    // 1. Tile.
    SmallVector<std::pair<linalg::LinalgOp, SmallVector<int64_t>>> targets;
    f.walk([&](linalg::LinalgOp op) {
      if (SmallVector<int64_t> sizes = tileSizes(op); !sizes.empty())
        targets.emplace_back(op, std::move(sizes));
    });
    for (auto &[op, sizes] : targets) {
      scf::SCFTilingOptions options;
      options.setTileSizes(getAsIndexOpFoldResult(ctx, sizes));
      // Filters outermost: one block of filters (k x k x C x vector-width)
      // stays in cache while every output pixel uses it, instead of the
      // whole weight tensor being streamed once per output row.
      if (isa<linalg::Conv2DNhwcHwcfOp>(op))
        options.setInterchange({0, 3, 1, 2, 4, 5, 6});
      rewriter.setInsertionPoint(op);
      auto tiled =
          scf::tileUsingSCF(rewriter, cast<TilingInterface>(*op), options);
      if (failed(tiled))
        continue; // stays a loop nest; still correct
      rewriter.replaceOp(op, tiled->replacements);
    }

    // 2. 2-D convolutions with a 1x1 tap tile -> 1-D convolutions.
    {
      RewritePatternSet patterns(ctx);
      linalg::populateDecomposeConvolutionPatterns(patterns);
      scf::ForOp::getCanonicalizationPatterns(patterns, ctx);
      tensor::ExtractSliceOp::getCanonicalizationPatterns(patterns, ctx);
      if (failed(applyPatternsAndFoldGreedily(f, std::move(patterns))))
        return signalPassFailure();
    }

    // 3. Vectorize the (now small, static) structured ops.
    SmallVector<Operation *> toVectorize;
    f.walk([&](linalg::LinalgOp op) {
      SmallVector<int64_t> ranges = op.getStaticLoopRanges();
      int64_t elems = 1;
      for (int64_t r : ranges) {
        if (ShapedType::isDynamic(r))
          return;
        elems *= r;
      }
      // Untiled large ops (copies, fills of big buffers) stay loops.
      if (elems > (1 << 16))
        return;
      toVectorize.push_back(op);
    });
    for (Operation *op : toVectorize) {
      rewriter.setInsertionPoint(op);
      (void)linalg::vectorize(rewriter, op);
    }

    // 4. Clean up and lower contractions to outer products (FMA/MLA).
    {
      RewritePatternSet patterns(ctx);
      vector::populateVectorTransferPermutationMapLoweringPatterns(patterns);
      vector::populateVectorReductionToContractPatterns(patterns);
      vector::populateSinkVectorBroadcastPatterns(patterns);
      vector::TransferReadOp::getCanonicalizationPatterns(patterns, ctx);
      vector::TransferWriteOp::getCanonicalizationPatterns(patterns, ctx);
      tensor::populateFoldTensorSubsetIntoVectorTransferPatterns(patterns);
      if (failed(applyPatternsAndFoldGreedily(f, std::move(patterns))))
        return signalPassFailure();
    }
    {
      RewritePatternSet patterns(ctx);
      vector::populateVectorContractLoweringPatterns(
          patterns,
          vector::VectorTransformsOptions().setVectorTransformsOptions(
              vector::VectorContractLowering::OuterProduct));
      vector::populateVectorOuterProductLoweringPatterns(patterns);
      vector::populateVectorMultiReductionLoweringPatterns(
          patterns, vector::VectorMultiReductionLowering::InnerParallel);
      vector::populateVectorTransposeLoweringPatterns(
          patterns, vector::VectorTransformsOptions());
      vector::populateVectorBroadcastLoweringPatterns(patterns);
      vector::populateVectorShapeCastLoweringPatterns(patterns);
      if (failed(applyPatternsAndFoldGreedily(f, std::move(patterns))))
        return signalPassFailure();
    }
  }
};

} // namespace
