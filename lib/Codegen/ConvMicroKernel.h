//===- ConvMicroKernel.h - register-tiled convolution kernels ---*- C++ -*-===//
//
// The loop nest shared by --qsim-dot-product-convs (int8) and
// --qsim-fma-convs (f32): a convolution (NHWC input, constant FHWC filter)
// as tiles of `pixels` output columns x `vectors` filter vectors whose
// accumulators stay in registers over every tap and input channel. Per
// channel group, the tile loads `vectors` weight vectors and broadcasts one
// input value (int8: 4 channels in a 32-bit word) per pixel, then does
// pixels x vectors multiply-adds. The filter is packed at compile time to
// [filter block][kh][kw][channel group][block x group] so a block's weights
// stream contiguously while the block is in use.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_LIB_CODEGEN_CONVMICROKERNEL_H
#define QSIM_LIB_CODEGEN_CONVMICROKERNEL_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/PatternMatch.h"

#include <functional>
#include <optional>

namespace qsim {

/// How one multiply-add instruction works.
enum class MultiplyAdd {
  FloatFma,    // f32 x f32 + f32 (vector.fma)
  X86Vpdpbusd, // u8 x s8, 4 per i32 lane (AVX512-VNNI)
  ArmSdot,     // s8 x s8, 4 per i32 lane (Armv8.2 dotprod)
};

struct MicroKernelTarget {
  MultiplyAdd multiplyAdd;
  /// Accumulator lanes per vector register.
  int64_t lanes;
  /// Vector registers available to a tile.
  int64_t registers;
  /// Input channels per lane and multiply-add (4 for the dot products).
  int64_t group() const { return multiplyAdd == MultiplyAdd::FloatFma ? 1 : 4; }
};

/// The shape of one convolution, from its operands.
struct ConvGeometry {
  int64_t n, oh, ow, f, kh, kw, c;
  int64_t strideH, strideW;
};

/// The geometry of `conv_2d_nhwc_fhwc(_q)` with static shapes, unit
/// dilation and (for `_q`) zero points 0; failure (with a reason given to
/// `rw`) otherwise.
mlir::FailureOr<ConvGeometry> matchConvGeometry(mlir::linalg::LinalgOp op,
                                                mlir::PatternRewriter &rw);

/// Register tile: `pixels` divides OW, `vectors` x lanes divides the
/// (padded) filters.
struct KernelTile {
  int64_t pixels = 1;
  int64_t vectors = 1;
};

KernelTile chooseKernelTile(int64_t ow, int64_t filters, int64_t lanes,
                            int64_t registers);

/// Replaces `conv` by its micro-kernel loop nest. `input` is the NHWC
/// input (channels already padded to a multiple of the group, int8 already
/// shifted for vpdpbusd), `packed` the packed filter
/// [blocks][kh][kw][groups][block x group] (filters padded to whole vectors;
/// padded filters' lanes are never stored), `correction` an optional
/// per-(padded-)filter vector added to the accumulators first.
/// Fused where the IR allows: accumulators start from the per-channel bias
/// the output was initialised with (no broadcast tensor), and an
/// elementwise consumer (activation, requantization) is applied to the
/// registers before the one store, so the wide accumulator tensor is never
/// written.
void rewriteConvWithMicroKernel(mlir::PatternRewriter &rw,
                                mlir::linalg::LinalgOp conv,
                                const MicroKernelTarget &target,
                                const ConvGeometry &g, const KernelTile &tile,
                                mlir::Value input, mlir::Value packed,
                                mlir::Value correction);

/// The filter (FHWC constant `weights`) packed for the kernel as a new
/// constant: filters zero-padded to whole vectors, channels to `cPad`, the
/// register tile chosen for the padded filters.
struct PackedFilter {
  KernelTile tile;
  int64_t paddedFilters;
  mlir::Value constant;
};

template <typename T>
PackedFilter packFilterConstant(mlir::OpBuilder &b, mlir::Location loc,
                                mlir::DenseElementsAttr weights,
                                const ConvGeometry &g,
                                const MicroKernelTarget &target, int64_t cPad) {
  int64_t lanes = target.lanes, group = target.group();
  int64_t fPad = (g.f + lanes - 1) / lanes * lanes;
  KernelTile tile = chooseKernelTile(g.ow, fPad, lanes, target.registers);
  int64_t block = tile.vectors * lanes, groups = cPad / group;
  auto fhwc = llvm::to_vector(weights.getValues<T>());
  std::vector<T> packed(fPad * g.kh * g.kw * cPad, T(0));
  for (int64_t fi = 0; fi < g.f; ++fi)
    for (int64_t y = 0; y < g.kh; ++y)
      for (int64_t x = 0; x < g.kw; ++x)
        for (int64_t ci = 0; ci < g.c; ++ci) {
          int64_t bi = fi / block, fl = fi % block;
          int64_t gi = ci / group, k = ci % group;
          packed[(((bi * g.kh + y) * g.kw + x) * groups + gi) * block * group +
                 fl * group + k] =
              fhwc[((fi * g.kh + y) * g.kw + x) * g.c + ci];
        }
  auto type = mlir::RankedTensorType::get(
      {fPad / block, g.kh, g.kw, groups, block * group},
      weights.getElementType());
  mlir::Value constant = b.create<mlir::arith::ConstantOp>(
      loc, mlir::DenseElementsAttr::get(type, llvm::ArrayRef<T>(packed)));
  return {tile, fPad, constant};
}

} // namespace qsim

#endif
