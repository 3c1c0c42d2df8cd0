//===- Emit.h - object files and device headers ----------------*- C++ -*-===//
//
// The last step of qsim-compile: an LLVM-dialect module (from
// --qsim-codegen-pipeline) through LLVM's optimizer and a target backend to
// an object file (or assembly, or LLVM IR), and the C header describing the
// compiled model for runtime/qsim_runtime.h.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_CODEGEN_EMIT_H
#define QSIM_CODEGEN_EMIT_H

#include "qsim/Conversion/Passes.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"

#include <memory>

#include <string>

namespace qsim {

struct EmitOptions {
  enum class Kind { Object, Assembly, LLVMIR };
  Kind kind = Kind::Object;
  int optLevel = 3;
};

/// The LLVM target machine for `target` (cpu "native", empty features: this
/// host). Fails with `error` for a target other than aarch64/x86-64, an
/// unknown CPU or an unknown feature, so that a tool can check before
/// compiling.
std::unique_ptr<llvm::TargetMachine>
createTargetMachine(const CodegenTarget &target, int optLevel,
                    std::string &error);

/// The packed 8-bit dot-product instructions `target` has, as the `isa` of
/// --qsim-dot-product-convs: AVX512-VNNI, Armv8.2 dotprod (from the CPU or
/// +dotprod) or none (also for a target that createTargetMachine refuses,
/// or when target.microKernels is off).
DotProductIsa dotProductIsa(const CodegenTarget &target);

/// The target's vector registers for --qsim-fma-convs: f32 lanes per
/// register and their number (AVX-512 16 x 32, AVX2 8 x 16, NEON 4 x 32);
/// lanes 0 (off) for a target createTargetMachine refuses, or when
/// target.microKernels is off.
struct VectorRegisterFile {
  int64_t f32Lanes = 0;
  int64_t count = 32;
};
VectorRegisterFile vectorRegisters(const CodegenTarget &target);

/// Translates, optimizes and emits `module` (LLVM dialect from
/// --qsim-codegen-pipeline) for the target it records (`qsim.target`).
/// Fails with `error` (no or unknown target, translation failure).
mlir::LogicalResult emitCode(mlir::ModuleOp module, const EmitOptions &options,
                             llvm::SmallVectorImpl<char> &out,
                             std::string &error);

/// The model's header: its layer table, memory sizes and step function, as
/// `const qsim_model <prefix>_desc` (see runtime/qsim_runtime.h);
/// `threads`: how many threads qsim_init starts (its memory macro counts a
/// scratch buffer per thread).
mlir::LogicalResult writeDeviceHeader(mlir::ModuleOp module,
                                      llvm::StringRef source,
                                      llvm::raw_ostream &os, std::string &error,
                                      int64_t threads = 1);

} // namespace qsim

#endif
