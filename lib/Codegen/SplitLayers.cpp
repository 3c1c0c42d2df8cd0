//===- SplitLayers.cpp - --qsim-split-layers -----------------------------===//
//
// The device runtime can run a layer on several threads: part p of `parts`
// computes one contiguous share of the layer's output. After bufferization
// a layer function computes its result into a scratch buffer B and ends
// with `memref.copy B -> output`; before that copy come whole-buffer
// preparations (padded input copies, bias fills) and the loop nests of the
// layer's work. The trailing loops are split when each iteration provably
// owns a block of one dimension of every buffer they write (iteration iv:
// indices iv * k + c, 0 <= c < k): running a contiguous range of iterations
// then yields exactly those blocks of B, computed by the same code in the
// same order as with one part (bit-exact), and only those blocks are
// copied to the output. Preparations run whole in every part, on the
// part's own scratch (the runtime gives each part a separate one), so no
// two parts ever write the same memory. Anything else runs in part 0 only.
//
//===----------------------------------------------------------------------===//

#include "qsim/Conversion/Passes.h"

#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

#include <optional>

namespace qsim {
#define GEN_PASS_DEF_SPLITLAYERSPASS
#include "qsim/Conversion/Passes.h.inc"
} // namespace qsim

using namespace mlir;

namespace {

/// The buffer a memref value is a view of. Views of the scratch argument
/// (`memref.view`, one per temporary, disjoint by construction in
/// qsim-scratch-to-arena) are buffers of their own.
Value rootOf(Value v) {
  while (Operation *def = v.getDefiningOp()) {
    if (isa<memref::ViewOp>(def))
      return v;
    auto view = dyn_cast<ViewLikeOpInterface>(def);
    if (!view)
      return v;
    v = view.getViewSource();
  }
  return v;
}

/// An index of the form iv * k + c.
struct IndexBlock {
  int64_t k, c;
};

std::optional<IndexBlock> matchBlock(Value v, Value iv) {
  if (v == iv)
    return IndexBlock{1, 0};
  auto constant = [](Value x) { return getConstantIntValue(x); };
  if (auto mul = v.getDefiningOp<arith::MulIOp>()) {
    Value a = mul.getLhs(), b = mul.getRhs();
    if (a != iv)
      std::swap(a, b);
    std::optional<int64_t> k = constant(b);
    if (a == iv && k && *k > 0)
      return IndexBlock{*k, 0};
    return std::nullopt;
  }
  if (auto add = v.getDefiningOp<arith::AddIOp>()) {
    Value a = add.getLhs(), b = add.getRhs();
    if (!constant(b))
      std::swap(a, b);
    std::optional<int64_t> c = constant(b);
    if (!c)
      return std::nullopt;
    if (std::optional<IndexBlock> inner = matchBlock(a, iv))
      return IndexBlock{inner->k, inner->c + *c};
  }
  return std::nullopt;
}

/// A direct element or vector access: the memref, its indices and the
/// extent of the access along each memref dimension.
struct Access {
  Value memref;
  ValueRange indices;
  SmallVector<int64_t> extent;
};

std::optional<Access> accessOf(Operation *op) {
  auto transfer = [](VectorTransferOpInterface t) {
    Access a{t.getSource(), t.getIndices(), {}};
    int64_t rank = cast<MemRefType>(t.getSource().getType()).getRank();
    a.extent.assign(rank, 1);
    for (auto [i, e] : llvm::enumerate(t.getPermutationMap().getResults()))
      if (auto d = dyn_cast<AffineDimExpr>(e))
        a.extent[d.getPosition()] = t.getVectorType().getDimSize(i);
    return a;
  };
  auto vectorMemory = [](Value base, ValueRange indices, VectorType vt) {
    Access a{base, indices, {}};
    int64_t rank = cast<MemRefType>(base.getType()).getRank();
    a.extent.assign(rank, 1);
    int64_t lead = rank - vt.getRank();
    for (int64_t i = 0; i < vt.getRank(); ++i)
      if (lead + i >= 0)
        a.extent[lead + i] = vt.getDimSize(i);
    return a;
  };
  if (auto t = dyn_cast<VectorTransferOpInterface>(op);
      t && isa<MemRefType>(t.getSource().getType()))
    return transfer(t);
  if (auto l = dyn_cast<vector::LoadOp>(op))
    return vectorMemory(l.getBase(), l.getIndices(), l.getVectorType());
  if (auto s = dyn_cast<vector::StoreOp>(op))
    return vectorMemory(s.getBase(), s.getIndices(), s.getVectorType());
  auto scalar = [](Value m, ValueRange indices) {
    Access a{m, indices, {}};
    a.extent.assign(cast<MemRefType>(m.getType()).getRank(), 1);
    return a;
  };
  if (auto l = dyn_cast<memref::LoadOp>(op))
    return scalar(l.getMemRef(), l.getIndices());
  if (auto s = dyn_cast<memref::StoreOp>(op))
    return scalar(s.getMemRef(), s.getIndices());
  return std::nullopt;
}

/// Adds the buffers `op` writes to `written`; false if its effects are not
/// known (then nothing can be split around it).
bool collectWrites(Operation *op, llvm::SmallPtrSetImpl<Value> &written) {
  if (op->hasTrait<OpTrait::HasRecursiveMemoryEffects>())
    return true; // its nested ops are visited by the caller's walk
  auto iface = dyn_cast<MemoryEffectOpInterface>(op);
  if (!iface)
    return false;
  SmallVector<MemoryEffects::EffectInstance> effects;
  iface.getEffects(effects);
  for (const MemoryEffects::EffectInstance &e : effects) {
    if (!isa<MemoryEffects::Write, MemoryEffects::Free>(e.getEffect()))
      continue;
    if (!e.getValue())
      return false;
    written.insert(rootOf(e.getValue()));
  }
  return true;
}

/// How the trailing loops of a layer are split.
struct Split {
  SmallVector<scf::ForOp> loops;
  int64_t trips = 0;
  unsigned dim = 0;
  int64_t block = 0;
  memref::CopyOp copy;
};

/// Whether `loops` (consecutive top-level loops, then the final `copy`)
/// can be split; fills `split` if so.
bool analyzeLoops(ArrayRef<scf::ForOp> loops, memref::CopyOp copy,
                  Value scratch, Split &split) {
  Value result = copy.getSource();
  auto resultType = cast<MemRefType>(result.getType());
  int64_t trips = -1;
  for (scf::ForOp loop : loops) {
    std::optional<int64_t> lb = getConstantIntValue(loop.getLowerBound()),
                           ub = getConstantIntValue(loop.getUpperBound()),
                           step = getConstantIntValue(loop.getStep());
    if (loop.getNumResults() || !lb || !ub || !step || *lb != 0 || *step != 1 ||
        *ub < 2 || (trips >= 0 && *ub != trips))
      return false;
    trips = *ub;
  }
  llvm::SmallPtrSet<Value, 8> written;
  bool known = true;
  for (scf::ForOp loop : loops)
    loop.getBody()->walk(
        [&](Operation *op) { known = known && collectWrites(op, written); });
  if (!known || !written.contains(result))
    return false;
  // Only the scratch views this layer's ops write (never the arena).
  for (Value w : written) {
    auto view = w.getDefiningOp<memref::ViewOp>();
    if (!view || view.getSource() != scratch)
      return false;
  }
  std::optional<unsigned> dim;
  int64_t block = 0;
  bool ok = true;
  for (scf::ForOp loop : loops) {
    Value iv = loop.getInductionVar();
    loop.getBody()->walk([&](Operation *op) {
      for (Value operand : op->getOperands()) {
        if (!ok || !isa<MemRefType>(operand.getType()) ||
            !written.contains(rootOf(operand)))
          continue;
        // A written buffer: only direct accesses at this iteration's block.
        std::optional<Access> a = accessOf(op);
        if (!a || a->memref != operand || operand != rootOf(operand)) {
          ok = false;
          return;
        }
        if (!dim) {
          for (auto [d, index] : llvm::enumerate(a->indices))
            if (std::optional<IndexBlock> b = matchBlock(index, iv)) {
              if (dim) { // the iteration moves along two dimensions
                ok = false;
                return;
              }
              dim = d;
              block = b->k;
            }
          if (!dim) {
            ok = false;
            return;
          }
        }
        if (*dim >= a->indices.size()) {
          ok = false;
          return;
        }
        std::optional<IndexBlock> b = matchBlock(a->indices[*dim], iv);
        if (!b || b->k != block || b->c < 0 || b->c + a->extent[*dim] > block) {
          ok = false;
          return;
        }
      }
    });
  }
  if (!ok || !dim || *dim >= resultType.getRank())
    return false;
  // The blocks cover the result's dimension (the last one may be partial:
  // filters padded to whole vectors).
  int64_t size = resultType.getDimSize(*dim);
  if (ShapedType::isDynamic(size) || (trips - 1) * block >= size ||
      size > trips * block)
    return false;
  split.loops.assign(loops.begin(), loops.end());
  split.trips = trips;
  split.dim = *dim;
  split.block = block;
  split.copy = copy;
  return true;
}

/// The split of `fn` (a layer function, after qsim-scratch-to-arena), if
/// its structure allows one.
std::optional<Split> analyzeLayer(func::FuncOp fn) {
  Block &body = fn.getBody().front();
  unsigned n = fn.getNumArguments();
  if (n < 2 || !llvm::hasSingleElement(fn.getBody()))
    return std::nullopt;
  Value output = fn.getArgument(n - 2), scratch = fn.getArgument(n - 1);
  auto ret = dyn_cast<func::ReturnOp>(body.getTerminator());
  if (!ret || ret->getPrevNode() == nullptr)
    return std::nullopt;
  auto copy = dyn_cast<memref::CopyOp>(ret->getPrevNode());
  if (!copy || copy.getTarget() != output)
    return std::nullopt;
  Value result = copy.getSource();
  auto view = result.getDefiningOp<memref::ViewOp>();
  if (!view || view.getSource() != scratch ||
      result.getType() != output.getType())
    return std::nullopt;
  // Nothing but the final copy may write the output (or any other arena
  // buffer).
  bool arenaSafe = true;
  for (Operation &op : body.without_terminator()) {
    if (&op == copy.getOperation())
      break;
    op.walk([&](Operation *inner) {
      llvm::SmallPtrSet<Value, 4> w;
      if (!collectWrites(inner, w)) {
        arenaSafe = false;
        return;
      }
      for (Value v : w)
        if (isa<BlockArgument>(v) && v != scratch)
          arenaSafe = false;
    });
  }
  if (!arenaSafe)
    return std::nullopt;
  // The trailing loops (effect-free ops between them), longest first.
  SmallVector<scf::ForOp> trailing;
  for (Operation *op = copy->getPrevNode(); op; op = op->getPrevNode()) {
    if (auto loop = dyn_cast<scf::ForOp>(op))
      trailing.insert(trailing.begin(), loop);
    else if (!isMemoryEffectFree(op))
      break;
  }
  for (size_t first = 0; first < trailing.size(); ++first) {
    Split split;
    if (analyzeLoops(ArrayRef<scf::ForOp>(trailing).drop_front(first), copy,
                     scratch, split))
      return split;
  }
  return std::nullopt;
}

/// Moves the body of `fn` (but the return and the ops before `from`) under
/// `if (cond)`.
void guardBody(OpBuilder &b, func::FuncOp fn, Value cond, Operation *from) {
  Block &body = fn.getBody().front();
  Operation *ret = body.getTerminator();
  b.setInsertionPoint(ret);
  auto guard = b.create<scf::IfOp>(fn.getLoc(), cond, /*withElse=*/false);
  Block *then = guard.thenBlock();
  then->getOperations().splice(then->begin(), body.getOperations(),
                               from->getIterator(), guard->getIterator());
}

struct SplitLayersPass
    : public qsim::impl::SplitLayersPassBase<SplitLayersPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    OpBuilder b(&getContext());
    for (auto fn : module.getOps<func::FuncOp>()) {
      if (!fn->hasAttr("qsim.layer") || fn.isExternal())
        continue;
      std::optional<Split> split = analyzeLayer(fn);
      Location loc = fn.getLoc();
      Block &body = fn.getBody().front();
      Operation *first = &body.front();
      unsigned n = fn.getNumArguments();
      fn.insertArgument(n, b.getIndexType(), {}, loc);
      fn.insertArgument(n + 1, b.getIndexType(), {}, loc);
      Value part = fn.getArgument(n), parts = fn.getArgument(n + 1);
      b.setInsertionPointToStart(&body);
      if (!split) {
        Value zero = b.create<arith::ConstantIndexOp>(loc, 0);
        Value isFirst =
            b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::eq, part, zero);
        guardBody(b, fn, isFirst, first);
        fn->setAttr("qsim.parallel", b.getBoolAttr(false));
        continue;
      }
      // Part p: iterations [T*p/parts, T*(p+1)/parts).
      Value trips = b.create<arith::ConstantIndexOp>(loc, split->trips);
      Value one = b.create<arith::ConstantIndexOp>(loc, 1);
      Value lo = b.create<arith::DivUIOp>(
          loc, b.create<arith::MulIOp>(loc, trips, part), parts);
      Value hi = b.create<arith::DivUIOp>(
          loc,
          b.create<arith::MulIOp>(loc, trips,
                                  b.create<arith::AddIOp>(loc, part, one)),
          parts);
      Value any =
          b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::ult, lo, hi);
      for (scf::ForOp loop : split->loops) {
        loop.setLowerBound(lo);
        loop.setUpperBound(hi);
      }
      // Only this part's blocks of the result go to the output.
      memref::CopyOp copy = split->copy;
      b.setInsertionPoint(copy);
      Value block = b.create<arith::ConstantIndexOp>(loc, split->block);
      auto type = cast<MemRefType>(copy.getSource().getType());
      Value size =
          b.create<arith::ConstantIndexOp>(loc, type.getDimSize(split->dim));
      Value begin = b.create<arith::MulIOp>(loc, lo, block);
      Value end = b.create<arith::MinUIOp>(
          loc, b.create<arith::MulIOp>(loc, hi, block), size);
      Value count = b.create<arith::SubIOp>(loc, end, begin);
      Value from = copy.getSource(), to = copy.getTarget();
      ArrayRef<int64_t> shape = type.getShape();
      if (llvm::all_of(shape.take_front(split->dim),
                       [](int64_t d) { return d == 1; })) {
        // The blocks are one contiguous range (output rows): a 1-D copy,
        // which LLVM turns into a memcpy-like loop.
        int64_t inner = 1;
        for (int64_t d : shape.drop_front(split->dim + 1))
          inner *= d;
        Value stride = b.create<arith::ConstantIndexOp>(loc, inner);
        SmallVector<ReassociationIndices> all(1);
        for (int64_t d = 0; d < type.getRank(); ++d)
          all[0].push_back(d);
        Value offset = b.create<arith::MulIOp>(loc, begin, stride);
        Value length = b.create<arith::MulIOp>(loc, count, stride);
        auto flat = [&](Value v) -> Value {
          Value c = b.create<memref::CollapseShapeOp>(loc, v, all);
          return b.create<memref::SubViewOp>(loc, c, OpFoldResult(offset),
                                             OpFoldResult(length),
                                             OpFoldResult(b.getIndexAttr(1)));
        };
        from = flat(from);
        to = flat(to);
      } else {
        SmallVector<OpFoldResult> offsets(type.getRank(), b.getIndexAttr(0)),
            sizes, strides(type.getRank(), b.getIndexAttr(1));
        for (int64_t d : shape)
          sizes.push_back(b.getIndexAttr(d));
        offsets[split->dim] = begin;
        sizes[split->dim] = count;
        from = b.create<memref::SubViewOp>(loc, from, offsets, sizes, strides);
        to = b.create<memref::SubViewOp>(loc, to, offsets, sizes, strides);
      }
      // Views at dynamic offsets: a loop nest (memref.copy would call the
      // MLIR C runner library, not on the device).
      b.create<linalg::CopyOp>(loc, from, to);
      copy.erase();
      guardBody(b, fn, any, first);
      fn->setAttr("qsim.parallel", b.getBoolAttr(true));
      fn->setAttr("qsim.split",
                  b.getDenseI64ArrayAttr(
                      {split->trips, int64_t(split->dim), split->block}));
    }
  }
};

} // namespace
