//===- Passes.h - lowering and code generation passes -----------*- C++ -*-===//

#ifndef QSIM_CONVERSION_PASSES_H
#define QSIM_CONVERSION_PASSES_H

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Tosa/IR/TosaOps.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Transforms/DialectConversion.h"
#include "qsim/Support/EnumOption.h"

#include <string>

namespace qsim {
/// The packed 8-bit dot-product instructions --qsim-dot-product-convs
/// targets: none, x86 AVX512-VNNI vpdpbusd, Armv8.2 sdot.
enum class DotProductIsa { None, Avx512Vnni, NeonDotprod };
/// Its option value: "none", "avx512-vnni", "neon-dotprod".
llvm::StringRef stringifyDotProductIsa(DotProductIsa isa);
} // namespace qsim
QSIM_ENUM_OPTION_PARSER(qsim::DotProductIsa)

namespace qsim {

#define GEN_PASS_DECL
#include "qsim/Conversion/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "qsim/Conversion/Passes.h.inc"

/// The types of qsim values in the lowered layer functions: a 1xCxHxW tensor
/// of f32, f16 or !quant.uniform<i8:f32, s:zp> becomes 1xHxWxC of f32, f16
/// or i8 (the storage; the patterns read the scale and zero point from the
/// qsim op's own operand and result types). Other types stay.
class QSimToTosaTypeConverter : public mlir::TypeConverter {
public:
  QSimToTosaTypeConverter();
};

/// One conversion pattern per qsim op (and per precision cast: quant.qcast,
/// dcast, scast, arith.truncf/extf on tensors) to TOSA, linalg, tensor,
/// arith and math, as --qsim-lower-to-tosa uses them: the int8 arithmetic
/// bit for bit as the interpreter, the rounding and flavour read from the
/// module. A pattern that cannot lower its op reports why at the op
/// ("layer N (kind): ...") and fails.
void populateQSimToTosaConversionPatterns(mlir::TypeConverter &converter,
                                          mlir::RewritePatternSet &patterns);

/// Where and for what the code is generated.
struct CodegenTarget {
  std::string triple = "aarch64-linux-gnu";
  std::string cpu = "cortex-a72";
  std::string features = "+neon";
  std::string prefix = "model";
  /// Run-only memory: outputs share the arena once no later layer reads them
  /// (qsim-build-step-function's reuse-buffers).
  bool reuseBuffers = false;
  /// Convolutions on register-tiled micro-kernels: f32 broadcast-FMA
  /// (qsim-fma-convs), int8 on the target's packed 8-bit dot products where
  /// it has them (qsim-dot-product-convs); off: the generic vector kernels
  /// of qsim-tile-and-vectorize for all.
  bool microKernels = true;
};

/// The passes of --qsim-codegen-pipeline, from a qsim module to the LLVM
/// dialect; the target is recorded on the module as `qsim.target`, where
/// the object emitter (qsim::emitCode) takes it from.
void buildCodegenPipeline(mlir::OpPassManager &pm, const CodegenTarget &t);

/// Registers --qsim-codegen-pipeline.
void registerCodegenPipeline();

} // namespace qsim

#endif
