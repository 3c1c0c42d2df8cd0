//===- ScratchToArena.cpp - --qsim-scratch-to-arena ----------------------===//
//
// The device runtime gives the generated code all the memory it uses: the
// arena (input and layer outputs) and one scratch buffer for temporaries,
// sized at compile time. After bufferization, each layer function's
// allocations become views into a trailing scratch argument, so that the
// hot path never allocates.
//
//===----------------------------------------------------------------------===//

#include "qsim/Conversion/Passes.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/IR/Builders.h"

namespace qsim {
#define GEN_PASS_DEF_SCRATCHTOARENAPASS
#include "qsim/Conversion/Passes.h.inc"
} // namespace qsim

using namespace mlir;

namespace {

int64_t byteSize(MemRefType t) {
  int64_t bits = t.getElementTypeBitWidth();
  return t.getNumElements() * ((bits + 7) / 8);
}

struct ScratchToArenaPass
    : public qsim::impl::ScratchToArenaPassBase<ScratchToArenaPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    OpBuilder b(&getContext());
    // Copies between strided views would call MLIR's C runner library
    // (not on the device): make them loops.
    module.walk([&](memref::CopyOp copy) {
      auto src = cast<MemRefType>(copy.getSource().getType());
      auto dst = cast<MemRefType>(copy.getTarget().getType());
      if (src.getLayout().isIdentity() && dst.getLayout().isIdentity())
        return;
      b.setInsertionPoint(copy);
      b.create<linalg::CopyOp>(copy.getLoc(), copy.getSource(),
                               copy.getTarget());
      copy.erase();
    });
    for (auto fn : module.getOps<func::FuncOp>()) {
      if (!fn->hasAttr("qsim.layer"))
        continue;
      SmallVector<memref::AllocOp> allocs;
      bool ok = true;
      fn.walk([&](memref::AllocOp a) {
        MemRefType t = a.getType();
        if (!t.hasStaticShape() || !t.getLayout().isIdentity()) {
          a.emitError() << "a temporary buffer of dynamic shape or layout " << t
                        << " cannot be placed in the scratch arena";
          ok = false;
        }
        allocs.push_back(a);
      });
      if (!ok)
        return signalPassFailure();
      int64_t size = 0;
      SmallVector<int64_t> offsets;
      for (memref::AllocOp a : allocs) {
        offsets.push_back(size);
        size += (byteSize(a.getType()) + 63) / 64 * 64;
      }
      // The scratch argument, after the output.
      auto scratchType =
          MemRefType::get({std::max<int64_t>(size, 64)}, b.getI8Type());
      unsigned idx = fn.getNumArguments();
      fn.insertArgument(idx, scratchType, {}, fn.getLoc());
      Value scratch = fn.getArgument(idx);
      for (auto [a, off] : llvm::zip(allocs, offsets)) {
        b.setInsertionPoint(a);
        Value o = b.create<arith::ConstantIndexOp>(a.getLoc(), off);
        Value view = b.create<memref::ViewOp>(a.getLoc(), a.getType(), scratch,
                                              o, ValueRange{});
        // Deallocations of a view would free the caller's memory.
        for (Operation *user : llvm::make_early_inc_range(a->getUsers()))
          if (isa<memref::DeallocOp>(user))
            user->erase();
        a.replaceAllUsesWith(view);
        a.erase();
      }
      fn->setAttr("qsim.scratch_bytes",
                  b.getI64IntegerAttr(scratchType.getNumElements()));
    }
  }
};

} // namespace
