//===- BuildStepFunction.cpp - --qsim-build-step-function ----------------===//
//
// The one entry point the device runtime calls: `<prefix>_run_layer(arena,
// scratch, layer, part, parts)` runs part `part` of `parts` of one layer
// (qsim-split-layers; a layer that is not split runs whole in part 0) with
// its inputs and output at fixed offsets of the arena. The arena holds the
// network input (NHWC f32) and then every layer's output, each 64-byte aligned,
// so that after a step any layer's output can still be read (stepping on the
// device); with reuse-buffers, outputs share memory once no later layer reads
// them.
//
//===----------------------------------------------------------------------===//

#include "qsim/Conversion/Passes.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/Builders.h"

#include <limits>

namespace qsim {
#define GEN_PASS_DEF_BUILDSTEPFUNCTIONPASS
#include "qsim/Conversion/Passes.h.inc"
} // namespace qsim

using namespace mlir;

namespace {

int64_t elemBytes(StringRef el) { return el == "i8" ? 1 : el == "f16" ? 2 : 4; }

int64_t align64(int64_t x) { return (x + 63) / 64 * 64; }

/// Where each layer's output goes: one after the other, or (reuse) at the
/// lowest 64-byte aligned place not held by an output still to be read.
/// Returns the offsets, the arena size, and for each layer the first later
/// layer whose output overlaps it (-1: none).
struct ArenaLayout {
  SmallVector<int64_t> offsets, overwrittenBy;
  int64_t bytes = 0;
};

ArenaLayout layoutArena(int64_t start, ArrayRef<int64_t> sizes,
                        ArrayRef<int64_t> lastUse, bool reuse) {
  ArenaLayout l;
  l.bytes = start;
  struct Held {
    int64_t begin, end, lastUse;
  };
  SmallVector<Held> held;
  for (size_t i = 0; i < sizes.size(); ++i) {
    int64_t at = l.bytes;
    if (reuse) {
      // Outputs read for the last time before layer i are free; layer i's
      // inputs are still held (their last use is i or later).
      llvm::erase_if(held, [&](const Held &h) {
        return h.lastUse < static_cast<int64_t>(i);
      });
      llvm::sort(
          held, [](const Held &a, const Held &b) { return a.begin < b.begin; });
      at = start;
      for (const Held &h : held) {
        if (at + sizes[i] <= h.begin)
          break;
        at = std::max(at, align64(h.end));
      }
      held.push_back({at, at + sizes[i], lastUse[i]});
    }
    l.offsets.push_back(at);
    l.bytes = std::max(l.bytes, align64(at + sizes[i]));
  }
  for (size_t j = 0; j < sizes.size(); ++j) {
    int64_t by = -1;
    for (size_t k = j + 1; k < sizes.size() && by < 0; ++k)
      if (l.offsets[k] < l.offsets[j] + sizes[j] &&
          l.offsets[j] < l.offsets[k] + sizes[k])
        by = k;
    l.overwrittenBy.push_back(by);
  }
  return l;
}

struct BuildStepFunctionPass
    : public qsim::impl::BuildStepFunctionPassBase<BuildStepFunctionPass> {
  using BuildStepFunctionPassBase::BuildStepFunctionPassBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    OpBuilder b(ctx);
    auto table = module->getAttrOfType<ArrayAttr>("qsim.codegen");
    auto input = module->getAttrOfType<DictionaryAttr>("qsim.codegen.input");
    if (!table || !input) {
      module.emitError() << "no qsim.codegen table (run --qsim-lower-to-tosa)";
      return signalPassFailure();
    }
    std::string prefix = input.getAs<StringAttr>("prefix").str();
    auto inShape = input.getAs<DenseI64ArrayAttr>("shape").asArrayRef();

    // Arena layout.
    int64_t inBytes = 4;
    for (int64_t d : inShape)
      inBytes *= d;
    // Each output's size and the last layer that reads it; the network's
    // outputs (read by nobody, detection heads, the last layer) are read
    // "at the end".
    SmallVector<int64_t> sizes, lastUse(table.size(), -1);
    for (auto [i, a] : llvm::enumerate(table)) {
      auto d = cast<DictionaryAttr>(a);
      int64_t bytes = elemBytes(d.getAs<StringAttr>("elem").getValue());
      for (int64_t s : d.getAs<DenseI64ArrayAttr>("shape").asArrayRef())
        bytes *= s;
      sizes.push_back(bytes);
      for (int64_t src : d.getAs<DenseI64ArrayAttr>("inputs").asArrayRef())
        if (src >= 0 && src < static_cast<int64_t>(i))
          lastUse[src] = std::max<int64_t>(lastUse[src], i);
    }
    for (auto [i, a] : llvm::enumerate(table))
      if (lastUse[i] < 0 || cast<DictionaryAttr>(a).get("anchors") ||
          i + 1 == table.size())
        lastUse[i] = std::numeric_limits<int64_t>::max();
    ArenaLayout layout =
        layoutArena(align64(inBytes), sizes, lastUse, reuseBuffers);
    const SmallVector<int64_t> &offsets = layout.offsets;

    SmallVector<func::FuncOp> fns;
    SmallVector<Attribute> newTable;
    int64_t scratchBytes = 64;
    for (auto [i, a] : llvm::enumerate(table)) {
      auto d = cast<DictionaryAttr>(a);
      NamedAttrList l(d);
      l.set("offset", b.getI64IntegerAttr(offsets[i]));
      l.set("bytes", b.getI64IntegerAttr(sizes[i]));
      l.set("overwritten_by", b.getI64IntegerAttr(layout.overwrittenBy[i]));
      auto fn = module.lookupSymbol<func::FuncOp>(
          d.getAs<StringAttr>("func").getValue());
      if (!fn) {
        module.emitError() << "missing layer function "
                           << d.getAs<StringAttr>("func");
        return signalPassFailure();
      }
      auto parallel = fn->getAttrOfType<BoolAttr>("qsim.parallel");
      l.set("parallel", b.getBoolAttr(parallel && parallel.getValue()));
      newTable.push_back(l.getDictionary(ctx));
      fns.push_back(fn);
      if (auto s = fn->getAttrOfType<IntegerAttr>("qsim.scratch_bytes"))
        scratchBytes = std::max(scratchBytes, s.getInt());
    }
    int64_t arenaBytes = layout.bytes;
    module->setAttr("qsim.codegen", b.getArrayAttr(newTable));
    module->setAttr("qsim.codegen.arena_bytes",
                    b.getI64IntegerAttr(arenaBytes));
    module->setAttr("qsim.codegen.scratch_bytes",
                    b.getI64IntegerAttr(scratchBytes));

    // The step function.
    b.setInsertionPointToEnd(module.getBody());
    Location loc = module.getLoc();
    auto arenaT = MemRefType::get({arenaBytes}, b.getI8Type());
    auto scratchT = MemRefType::get({scratchBytes}, b.getI8Type());
    auto step = b.create<func::FuncOp>(
        loc, prefix + "_run_layer",
        b.getFunctionType(
            {arenaT, scratchT, b.getI32Type(), b.getI32Type(), b.getI32Type()},
            {}));
    Block *body = step.addEntryBlock();
    b.setInsertionPointToEnd(body);
    Value arena = body->getArgument(0), scratch = body->getArgument(1);
    auto toIndex = [&](Value v) -> Value {
      return b.create<arith::IndexCastOp>(loc, b.getIndexType(), v);
    };
    Value layer = toIndex(body->getArgument(2));
    Value part = toIndex(body->getArgument(3));
    Value parts = toIndex(body->getArgument(4));
    SmallVector<int64_t> cases;
    for (size_t i = 0; i < table.size(); ++i)
      cases.push_back(i);
    auto sw = b.create<scf::IndexSwitchOp>(loc, TypeRange{}, layer, cases,
                                           cases.size());
    sw.getDefaultRegion().emplaceBlock();
    b.setInsertionPointToEnd(&sw.getDefaultRegion().front());
    b.create<scf::YieldOp>(loc);
    for (size_t i = 0; i < table.size(); ++i) {
      auto d = cast<DictionaryAttr>(table[i]);
      func::FuncOp fn = fns[i];
      Block &blk = sw.getCaseRegions()[i].emplaceBlock();
      b.setInsertionPointToEnd(&blk);
      auto inputs = d.getAs<DenseI64ArrayAttr>("inputs").asArrayRef();
      auto argTypes = fn.getArgumentTypes();
      // (inputs, output, scratch[, part, parts]).
      bool splitArgs = argTypes.size() == inputs.size() + 4;
      if (argTypes.size() != inputs.size() + 2 && !splitArgs) {
        fn.emitError() << "unexpected signature " << fn.getFunctionType();
        return signalPassFailure();
      }
      unsigned scratchArg = inputs.size() + 1;
      SmallVector<Value> args;
      auto viewAt = [&](Value base, int64_t off, Type t) -> Value {
        Value o = b.create<arith::ConstantIndexOp>(loc, off);
        return b.create<memref::ViewOp>(loc, t, base, o, ValueRange{});
      };
      for (size_t k = 0; k < inputs.size(); ++k) {
        int64_t src = inputs[k];
        int64_t off = src < 0 ? 0 : offsets[src];
        args.push_back(viewAt(arena, off, argTypes[k]));
      }
      args.push_back(viewAt(arena, offsets[i], argTypes[inputs.size()]));
      args.push_back(viewAt(scratch, 0, argTypes[scratchArg]));
      if (splitArgs) {
        args.push_back(part);
        args.push_back(parts);
        b.create<func::CallOp>(loc, fn, args);
      } else {
        // Not split (qsim-split-layers did not run): the whole layer in
        // part 0.
        Value zero = b.create<arith::ConstantIndexOp>(loc, 0);
        Value first =
            b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::eq, part, zero);
        auto guard = b.create<scf::IfOp>(loc, first, /*withElse=*/false);
        b.setInsertionPointToStart(guard.thenBlock());
        b.create<func::CallOp>(loc, fn, args);
        b.setInsertionPointAfter(guard);
      }
      // Only the step function is the object's interface (internal linkage
      // also keeps several models' layer functions apart).
      fn.setPrivate();
      fn->setAttr("llvm.linkage",
                  LLVM::LinkageAttr::get(ctx, LLVM::Linkage::Internal));
      b.create<scf::YieldOp>(loc);
    }
    b.setInsertionPointAfter(sw);
    b.create<func::ReturnOp>(loc);
  }
};

} // namespace
