//===- ConvMicroKernel.cpp - register-tiled convolution kernels ----------===//

#include "ConvMicroKernel.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Matchers.h"

using namespace mlir;

namespace {
bool isZero(Value v) { return matchPattern(v, m_Zero()); }
} // namespace

FailureOr<qsim::ConvGeometry> qsim::matchConvGeometry(linalg::LinalgOp op,
                                                      PatternRewriter &rw) {
  auto conv = dyn_cast<linalg::ConvolutionOpInterface>(op.getOperation());
  if (!conv || !isa<linalg::Conv2DNhwcFhwcOp, linalg::Conv2DNhwcFhwcQOp>(op))
    return rw.notifyMatchFailure(op, "not a 2-D NHWC/FHWC convolution");
  SmallVector<Value> ins = llvm::to_vector(op.getDpsInputs());
  if (ins.size() == 4 && (!isZero(ins[2]) || !isZero(ins[3])))
    return rw.notifyMatchFailure(op, "non-zero zero points");
  auto inType = cast<RankedTensorType>(ins[0].getType());
  auto filterType = cast<RankedTensorType>(ins[1].getType());
  auto outType = cast<RankedTensorType>(op.getDpsInits()[0].getType());
  if (!inType.hasStaticShape() || !filterType.hasStaticShape() ||
      !outType.hasStaticShape())
    return rw.notifyMatchFailure(op, "dynamic shape");
  auto attrOf = [&](StringRef name) {
    return op->getAttrOfType<DenseIntElementsAttr>(name);
  };
  DenseIntElementsAttr strides = attrOf("strides"),
                       dilations = attrOf("dilations");
  SmallVector<int64_t> s = {1, 1};
  if (strides)
    s = llvm::to_vector(strides.getValues<int64_t>());
  if (dilations && llvm::any_of(dilations.getValues<int64_t>(),
                                [](int64_t d) { return d != 1; }))
    return rw.notifyMatchFailure(op, "dilation");
  auto fs = filterType.getShape(); // F, KH, KW, C
  auto os = outType.getShape();    // N, OH, OW, F
  return ConvGeometry{os[0], os[1], os[2], fs[0], fs[1],
                      fs[2], fs[3], s[0],  s[1]};
}

qsim::KernelTile qsim::chooseKernelTile(int64_t ow, int64_t filters,
                                        int64_t lanes, int64_t registers) {
  // Accumulators + weight vectors + the broadcast input must fit; the best
  // tile does the most multiply-adds per load (pixels x vectors of them
  // for pixels + vectors loads per channel group).
  KernelTile best;
  double bestRatio = 0;
  for (int64_t v = 1; v <= 4; ++v) {
    if (filters % (v * lanes) != 0)
      continue;
    for (int64_t p = std::min<int64_t>(ow, 28); p >= 1; --p) {
      if (ow % p != 0 || p * v + v + 1 > registers - 1)
        continue;
      double ratio = double(p * v) / double(p + v);
      if (ratio > bestRatio) {
        bestRatio = ratio;
        best = {p, v};
      }
      break; // the largest p for this v is its best
    }
  }
  return best;
}

namespace {

/// Where the accumulators can start from instead of the initialised output:
/// the rank-1 per-channel bias (or the scalar) the output tensor was filled
/// with by a broadcast generic (or linalg.fill); null otherwise.
Value biasSourceOf(Value init, int64_t filters) {
  if (auto fill = init.getDefiningOp<linalg::FillOp>())
    return fill.getInputs()[0];
  auto g = init.getDefiningOp<linalg::GenericOp>();
  if (!g || g.getNumDpsInputs() != 1 || g.getNumDpsInits() != 1 ||
      g.getNumReductionLoops() != 0 || g.getNumLoops() != 4)
    return {};
  OpOperand *in = g.getDpsInputOperand(0);
  auto type = dyn_cast<RankedTensorType>(in->get().getType());
  auto yield = cast<linalg::YieldOp>(g.getBody()->getTerminator());
  if (!type || type.getRank() != 1 || type.getDimSize(0) != filters ||
      g.getMatchingIndexingMap(in) !=
          AffineMap::get(4, 0, getAffineDimExpr(3, g.getContext())) ||
      yield.getValues().size() != 1 ||
      yield.getValues()[0] != g.getMatchingBlockArgument(in))
    return {};
  return in->get();
}

/// The convolution's elementwise consumer that can be applied to the
/// accumulator registers: its only user, a 4-D parallel generic reading it
/// with the identity map and otherwise only per-channel vectors (map d3),
/// whose body is elementwise scalar ops (activations, requantization).
linalg::GenericOp fusableEpilogue(linalg::LinalgOp conv, int64_t filters) {
  Value result = conv->getResult(0);
  if (!result.hasOneUse())
    return {};
  auto g = dyn_cast<linalg::GenericOp>(*result.getUsers().begin());
  if (!g || g.getNumDpsInits() != 1 || g.getNumLoops() != 4 ||
      g.getNumReductionLoops() != 0 || g->getNumResults() != 1)
    return {};
  OpOperand *out = g.getDpsInitOperand(0);
  auto outType = dyn_cast<RankedTensorType>(out->get().getType());
  if (!outType ||
      outType.getShape() !=
          cast<RankedTensorType>(result.getType()).getShape() ||
      !g.getMatchingIndexingMap(out).isIdentity() ||
      !g.getMatchingBlockArgument(out).use_empty())
    return {};
  AffineMap channel = AffineMap::get(4, 0, getAffineDimExpr(3, g.getContext()));
  for (OpOperand *in : g.getDpsInputOperands()) {
    if (in->get() == result) {
      if (!g.getMatchingIndexingMap(in).isIdentity())
        return {};
      continue;
    }
    auto type = dyn_cast<RankedTensorType>(in->get().getType());
    if (!type || type.getRank() != 1 || type.getDimSize(0) != filters ||
        g.getMatchingIndexingMap(in) != channel)
      return {};
  }
  Block *body = g.getBody();
  for (Operation &op : body->without_terminator()) {
    if (op.getNumRegions() != 0 || op.getNumResults() != 1 ||
        !op.getResult(0).getType().isIntOrIndexOrFloat() ||
        !(op.hasTrait<OpTrait::Elementwise>() ||
          op.hasTrait<OpTrait::ConstantLike>()))
      return {};
    for (Value v : op.getOperands())
      if (v.getParentBlock() != body && !v.getType().isIntOrFloat())
        return {};
  }
  return g;
}

/// `epilogue`'s body on one accumulator vector (filters from `f`): per-
/// channel operands read as vectors, captured scalars broadcast, every op
/// cloned with vector types.
Value applyEpilogue(OpBuilder &b, Location loc, linalg::GenericOp epilogue,
                    Value conv, Value acc, Value f, int64_t lanes,
                    ArrayRef<bool> bounds) {
  Block *body = epilogue.getBody();
  IRMapping map;
  for (OpOperand *in : epilogue.getDpsInputOperands()) {
    BlockArgument arg = epilogue.getMatchingBlockArgument(in);
    if (in->get() == conv) {
      map.map(arg, acc);
      continue;
    }
    Type t = arg.getType();
    Value pad = b.create<arith::ConstantOp>(loc, b.getZeroAttr(t));
    map.map(arg, b.create<vector::TransferReadOp>(
                     loc, VectorType::get({lanes}, t), in->get(), ValueRange{f},
                     pad, bounds));
  }
  for (Operation &op : body->without_terminator()) {
    for (Value v : op.getOperands())
      if (!map.contains(v))
        map.map(v, b.create<vector::BroadcastOp>(
                       loc, VectorType::get({lanes}, v.getType()), v));
    Operation *copy = b.clone(op, map);
    if (op.hasTrait<OpTrait::ConstantLike>()) {
      // Keep the scalar constant; its users get a splat of it.
      map.map(op.getResult(0),
              b.create<vector::BroadcastOp>(
                  loc, VectorType::get({lanes}, copy->getResult(0).getType()),
                  copy->getResult(0)));
      continue;
    }
    Value r = copy->getResult(0);
    r.setType(VectorType::get({lanes}, r.getType()));
    map.map(op.getResult(0), r);
  }
  auto yield = cast<linalg::YieldOp>(body->getTerminator());
  return map.lookup(yield.getValues()[0]);
}

/// Builds the register-tiled loop nest of one convolution: per tile of
/// `tile.pixels` output pixels x `tile.vectors` filter vectors, the
/// accumulators stay in registers over every tap and channel group.
class ConvMicroKernelBuilder {
public:
  ConvMicroKernelBuilder(Location loc, const qsim::MicroKernelTarget &target,
                         const qsim::ConvGeometry &g,
                         const qsim::KernelTile &tile, Value input, Value init,
                         Value bias, Value conv, linalg::GenericOp epilogue,
                         Value packed, Value correction)
      : loc(loc), target(target), g(g), tile(tile), input(input), init(init),
        bias(bias), conv(conv), epilogue(epilogue), packed(packed),
        correction(correction) {
    auto packedType = cast<RankedTensorType>(packed.getType());
    elem = packedType.getElementType();
    accElem = cast<RankedTensorType>(init.getType()).getElementType();
    lanes = target.lanes;
    group = target.group();
    block = tile.vectors * lanes;
    blocks = packedType.getDimSize(0);
    groups = packedType.getDimSize(3);
    outInBounds = blocks * block == g.f; // else the last vector is partial
    accType = VectorType::get({lanes}, accElem);
    weightType = VectorType::get({lanes * group}, elem);
    inputType = VectorType::get({group}, elem);
  }

  Value build(OpBuilder &rw);

private:
  Value cst(OpBuilder &b, int64_t v) {
    return b.create<arith::ConstantIndexOp>(loc, v);
  }
  Value add(OpBuilder &b, Value x, int64_t v) {
    return v == 0 ? x : b.create<arith::AddIOp>(loc, x, cst(b, v));
  }
  Value mul(OpBuilder &b, Value x, int64_t v) {
    return v == 1 ? x : b.create<arith::MulIOp>(loc, x, cst(b, v));
  }
  Value multiplyAdd(OpBuilder &b, Value acc, Value splat, Value w);
  Value asOperand(OpBuilder &b, Value v);
  SmallVector<Value> initialAccumulators(OpBuilder &b, Value ni, Value f0,
                                         Value yi, Value x0, Value out);
  SmallVector<Value> channelGroup(OpBuilder &b, Value bi, Value yi, Value x0,
                                  Value ni, Value ky, Value kx, Value gi,
                                  ValueRange accIn);
  ValueRange loopOver(OpBuilder &b, int64_t count, ValueRange carried,
                      llvm::function_ref<SmallVector<Value>(
                          OpBuilder &, Value, ValueRange)>
                          body);
  Value tileBody(OpBuilder &b, Value ni, Value bi, Value yi, Value x0,
                 Value out);

  Location loc;
  const qsim::MicroKernelTarget &target;
  const qsim::ConvGeometry &g;
  const qsim::KernelTile &tile;
  Value input, init, bias, conv;
  linalg::GenericOp epilogue;
  Value packed, correction;
  Type elem, accElem;
  int64_t lanes, group, block, blocks, groups;
  bool outInBounds;
  VectorType accType, weightType, inputType;
  Value accPad, elemPad;
};

/// The target's multiply-add of a broadcast input and a weight vector.
Value ConvMicroKernelBuilder::multiplyAdd(OpBuilder &b, Value acc, Value splat,
                                          Value w) {
  using qsim::MultiplyAdd;
  switch (target.multiplyAdd) {
  case MultiplyAdd::FloatFma:
    return b.create<vector::FMAOp>(loc, splat, w, acc);
  case MultiplyAdd::X86Vpdpbusd:
    return b
        .create<LLVM::CallIntrinsicOp>(loc, TypeRange{accType},
                                       "llvm.x86.avx512.vpdpbusd.512",
                                       ValueRange{acc, splat, w})
        .getResult(0);
  case MultiplyAdd::ArmSdot:
    return b
        .create<LLVM::CallIntrinsicOp>(loc, TypeRange{accType},
                                       "llvm.aarch64.neon.sdot",
                                       ValueRange{acc, splat, w})
        .getResult(0);
  }
  llvm_unreachable("multiply-add kind");
}

/// vpdpbusd takes its bytes as i32 lanes; sdot as bytes.
Value ConvMicroKernelBuilder::asOperand(OpBuilder &b, Value v) {
  Type want = target.multiplyAdd == qsim::MultiplyAdd::ArmSdot
                  ? Type(weightType)
                  : Type(accType);
  return v.getType() == want ? v : b.create<vector::BitCastOp>(loc, want, v);
}

/// The tile's accumulators before the first tap: the bias (per filter or
/// one scalar) or the initialised output, plus the int8 zero-point
/// correction.
SmallVector<Value> ConvMicroKernelBuilder::initialAccumulators(
    OpBuilder &b, Value ni, Value f0, Value yi, Value x0, Value out) {
  SmallVector<bool> inBounds = {true}, outBounds = {outInBounds};
  SmallVector<Value> accs;
  for (int64_t p = 0; p < tile.pixels; ++p)
    for (int64_t v = 0; v < tile.vectors; ++v) {
      Value fv = add(b, f0, v * lanes);
      Value acc;
      if (bias && isa<RankedTensorType>(bias.getType()))
        acc = b.create<vector::TransferReadOp>(
            loc, accType, bias, ValueRange{fv}, accPad, outBounds);
      else if (bias)
        acc = b.create<vector::BroadcastOp>(loc, accType, bias);
      else // the initialised output (carried, unless fused)
        acc = b.create<vector::TransferReadOp>(
            loc, accType, epilogue ? init : out,
            ValueRange{ni, yi, add(b, x0, p), fv}, accPad, outBounds);
      if (correction)
        acc = b.create<arith::AddIOp>(
            loc, acc,
            b.create<vector::TransferReadOp>(
                loc, accType, correction, ValueRange{fv}, accPad, inBounds));
      accs.push_back(acc);
    }
  return accs;
}

/// One channel group of one tap: weights, then per pixel a broadcast input
/// and its multiply-adds.
SmallVector<Value> ConvMicroKernelBuilder::channelGroup(
    OpBuilder &b, Value bi, Value yi, Value x0, Value ni, Value ky, Value kx,
    Value gi, ValueRange accIn) {
  SmallVector<bool> inBounds = {true};
  SmallVector<Value> w;
  for (int64_t v = 0; v < tile.vectors; ++v)
    w.push_back(asOperand(
        b, b.create<vector::TransferReadOp>(
               loc, weightType, packed,
               ValueRange{bi, ky, kx, gi, cst(b, v * lanes * group)}, elemPad,
               inBounds)));
  Value iy = b.create<arith::AddIOp>(loc, mul(b, yi, g.strideH), ky);
  Value ch = mul(b, gi, group);
  SmallVector<Value> accOut(accIn);
  for (int64_t p = 0; p < tile.pixels; ++p) {
    Value ix =
        b.create<arith::AddIOp>(loc, mul(b, add(b, x0, p), g.strideW), kx);
    Value in = b.create<vector::TransferReadOp>(
        loc, inputType, input, ValueRange{ni, iy, ix, ch}, elemPad, inBounds);
    // int8: the group's 4 bytes as one 32-bit word.
    if (group > 1)
      in = b.create<vector::BitCastOp>(
          loc, VectorType::get({1}, b.getI32Type()), in);
    Value scalar = b.create<vector::ExtractOp>(loc, in, int64_t(0));
    Value splat = asOperand(
        b, b.create<vector::BroadcastOp>(
               loc, VectorType::get({lanes}, scalar.getType()), scalar));
    for (int64_t v = 0; v < tile.vectors; ++v) {
      Value &acc = accOut[p * tile.vectors + v];
      acc = multiplyAdd(b, acc, splat, w[v]);
    }
  }
  return accOut;
}

/// A loop over [0, count) carrying the accumulators.
ValueRange ConvMicroKernelBuilder::loopOver(
    OpBuilder &b, int64_t count, ValueRange carried,
    llvm::function_ref<SmallVector<Value>(OpBuilder &, Value, ValueRange)>
        body) {
  return b
      .create<scf::ForOp>(loc, cst(b, 0), cst(b, count), cst(b, 1), carried,
                          [&](OpBuilder &b, Location, Value i,
                              ValueRange args) {
                            b.create<scf::YieldOp>(loc, body(b, i, args));
                          })
      .getResults();
}

/// One output tile: accumulate over taps and channel groups, then the
/// epilogue and the stores.
Value ConvMicroKernelBuilder::tileBody(OpBuilder &b, Value ni, Value bi,
                                       Value yi, Value x0, Value out) {
  SmallVector<bool> outBounds = {outInBounds};
  Value f0 = mul(b, bi, block);
  SmallVector<Value> accs = initialAccumulators(b, ni, f0, yi, x0, out);
  ValueRange sums =
      loopOver(b, g.kh, accs, [&](OpBuilder &b, Value ky, ValueRange a1) {
        return SmallVector<Value>(
            loopOver(b, g.kw, a1, [&](OpBuilder &b, Value kx, ValueRange a2) {
              return SmallVector<Value>(loopOver(
                  b, groups, a2, [&](OpBuilder &b, Value gi, ValueRange a3) {
                    return channelGroup(b, bi, yi, x0, ni, ky, kx, gi, a3);
                  }));
            }));
      });
  Value result = out;
  for (int64_t p = 0; p < tile.pixels; ++p)
    for (int64_t v = 0; v < tile.vectors; ++v) {
      Value fv = add(b, f0, v * lanes);
      Value value = sums[p * tile.vectors + v];
      if (epilogue)
        value =
            applyEpilogue(b, loc, epilogue, conv, value, fv, lanes, outBounds);
      result = b.create<vector::TransferWriteOp>(
                    loc, value, result, ValueRange{ni, yi, add(b, x0, p), fv},
                    outBounds)
                   .getResult();
    }
  return result;
}

Value ConvMicroKernelBuilder::build(OpBuilder &rw) {
  accPad = rw.create<arith::ConstantOp>(loc, rw.getZeroAttr(accElem));
  elemPad = rw.create<arith::ConstantOp>(loc, rw.getZeroAttr(elem));
  // Filter blocks outermost (a block's packed weights stay in cache while
  // every output pixel uses them), then rows, then column tiles.
  auto loop = [&](OpBuilder &b, int64_t count, int64_t step, Value carried,
                  llvm::function_ref<Value(OpBuilder &, Value, Value)> body) {
    return b
        .create<scf::ForOp>(
            loc, cst(b, 0), cst(b, count), cst(b, step), ValueRange{carried},
            [&](OpBuilder &b, Location, Value i, ValueRange args) {
              b.create<scf::YieldOp>(loc, body(b, i, args[0]));
            })
        .getResult(0);
  };
  Value carried = epilogue ? epilogue.getDpsInits()[0] : init;
  return loop(rw, g.n, 1, carried, [&](OpBuilder &b, Value ni, Value o0) {
    return loop(b, blocks, 1, o0, [&](OpBuilder &b, Value bi, Value o1) {
      return loop(b, g.oh, 1, o1, [&](OpBuilder &b, Value yi, Value o2) {
        return loop(b, g.ow, tile.pixels, o2,
                    [&](OpBuilder &b, Value x0, Value o3) {
                      return tileBody(b, ni, bi, yi, x0, o3);
                    });
      });
    });
  });
}

Value buildConvMicroKernel(OpBuilder &rw, Location loc,
                           const qsim::MicroKernelTarget &target,
                           const qsim::ConvGeometry &g,
                           const qsim::KernelTile &tile, Value input,
                           Value init, Value bias, Value conv,
                           linalg::GenericOp epilogue, Value packed,
                           Value correction) {
  return ConvMicroKernelBuilder(loc, target, g, tile, input, init, bias, conv,
                                epilogue, packed, correction)
      .build(rw);
}

} // namespace

void qsim::rewriteConvWithMicroKernel(PatternRewriter &rw,
                                      linalg::LinalgOp conv,
                                      const MicroKernelTarget &target,
                                      const ConvGeometry &g,
                                      const KernelTile &tile, Value input,
                                      Value packed, Value correction) {
  Value init = conv.getDpsInits()[0];
  Value bias = biasSourceOf(init, g.f);
  linalg::GenericOp epilogue = fusableEpilogue(conv, g.f);
  if (!epilogue) {
    rw.replaceOp(conv, buildConvMicroKernel(rw, conv.getLoc(), target, g, tile,
                                            input, init, bias, Value(), {},
                                            packed, correction));
    return;
  }
  // The loop nest writes the consumer's output: built where the consumer
  // is (its output tensor is defined after the convolution).
  OpBuilder::InsertionGuard guard(rw);
  rw.setInsertionPoint(epilogue);
  Value result = buildConvMicroKernel(rw, conv.getLoc(), target, g, tile, input,
                                      init, bias, conv->getResult(0), epilogue,
                                      packed, correction);
  rw.replaceOp(epilogue, result);
  rw.eraseOp(conv);
}
