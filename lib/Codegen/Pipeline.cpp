//===- Pipeline.cpp - --qsim-codegen-pipeline ----------------------------===//
//
// From a qsim module to the LLVM dialect, with upstream MLIR passes between
// qsim's own: TOSA to linalg, qsim's convolution preparation, tiling and
// vectorization, one-shot bufferization, the scratch arena and step entry,
// then the standard lowering to LLVM. Functions use the bare-pointer calling
// convention (plain pointers from C).
//
//===----------------------------------------------------------------------===//

#include "qsim/Codegen/Emit.h"
#include "qsim/Conversion/Passes.h"
#include "qsim/Transforms/Passes.h"

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;

/// The passes of the module's pass manager, as text (what
/// `qsim-opt --dump-pass-pipeline` shows).
static std::string pipelineText(const qsim::CodegenTarget &t) {
  qsim::VectorRegisterFile regs = qsim::vectorRegisters(t);
  return "qsim-fold-batchnorm,"
         "qsim-lower-to-tosa{prefix=" +
         t.prefix +
         "},"
         "func.func(tosa-to-linalg-named,tosa-to-linalg,"
         "tosa-to-arith{include-apply-rescale=true use-32-bit=false},"
         "tosa-to-tensor,canonicalize,qsim-dot-product-convs{isa=" +
         qsim::dotProductIsa(t) +
         "},qsim-fma-convs{lanes=" + std::to_string(regs.f32Lanes) +
         " registers=" + std::to_string(regs.count) +
         "},qsim-prepare-convs,canonicalize,"
         "qsim-tile-and-vectorize,"
         "canonicalize,cse),"
         "one-shot-bufferize{bufferize-function-boundaries "
         "function-boundary-type-conversion=identity-layout-map "
         "unknown-type-conversion=identity-layout-map},"
         "buffer-results-to-out-params,canonicalize,"
         "qsim-scratch-to-arena,qsim-build-step-function{reuse-buffers=" +
         (t.reuseBuffers ? "true" : "false") +
         "},"
         "func.func(convert-linalg-to-loops),"
         "convert-vector-to-scf{full-unroll=true target-rank=1},"
         "lower-affine,convert-scf-to-cf,canonicalize,expand-strided-metadata,"
         "convert-vector-to-llvm,convert-math-to-llvm,"
         "finalize-memref-to-llvm,convert-arith-to-llvm,convert-index-to-llvm,"
         "convert-func-to-llvm{use-bare-ptr-memref-call-conv=1},"
         "convert-cf-to-llvm,reconcile-unrealized-casts";
}

namespace {
/// Records the target on the module for the object emitter (emitCode).
struct SetTarget : public PassWrapper<SetTarget, OperationPass<ModuleOp>> {
  SetTarget(qsim::CodegenTarget t) : t(std::move(t)) {}
  StringRef getArgument() const override { return "qsim-set-target"; }
  void runOnOperation() override {
    Builder b(&getContext());
    getOperation()->setAttr(
        "qsim.target",
        b.getDictionaryAttr(
            {b.getNamedAttr("triple", b.getStringAttr(t.triple)),
             b.getNamedAttr("cpu", b.getStringAttr(t.cpu)),
             b.getNamedAttr("features", b.getStringAttr(t.features))}));
  }
  qsim::CodegenTarget t;
};
} // namespace

void qsim::buildCodegenPipeline(OpPassManager &pm, const CodegenTarget &t) {
  std::string errors;
  llvm::raw_string_ostream es(errors);
  if (failed(parsePassPipeline(pipelineText(t), pm, es)))
    llvm::report_fatal_error(llvm::Twine("qsim-codegen-pipeline: ") + es.str());
  pm.addPass(std::make_unique<SetTarget>(t));
}

namespace {
struct CodegenPipelineOptions
    : public PassPipelineOptions<CodegenPipelineOptions> {
  Option<std::string> target{*this, "target", llvm::cl::desc("Target triple"),
                             llvm::cl::init("aarch64-linux-gnu")};
  Option<std::string> cpu{*this, "cpu", llvm::cl::desc("Target CPU"),
                          llvm::cl::init("cortex-a72")};
  Option<std::string> features{*this, "features",
                               llvm::cl::desc("Target features (+neon,...)"),
                               llvm::cl::init("+neon")};
  Option<std::string> prefix{*this, "prefix",
                             llvm::cl::desc("Prefix of the generated symbols"),
                             llvm::cl::init("model")};
  Option<bool> reuseBuffers{
      *this, "reuse-buffers",
      llvm::cl::desc("Run-only memory: outputs share the arena once no "
                     "later layer reads them"),
      llvm::cl::init(false)};
  Option<bool> microKernels{
      *this, "micro-kernels",
      llvm::cl::desc("Convolutions on register-tiled micro-kernels (f32 "
                     "FMA; int8 on packed 8-bit dot products where the "
                     "target has them); false: generic vector kernels"),
      llvm::cl::init(true)};
};

} // namespace

void qsim::registerCodegenPipeline() {
  PassPipelineRegistration<CodegenPipelineOptions>(
      "qsim-codegen-pipeline",
      "qsim model -> LLVM dialect for the device (docs/deploy.md): TOSA, "
      "linalg, tiling and vectorization, bufferization, scratch arena, step "
      "entry, LLVM; `target`, `cpu`, `features` are recorded as qsim.target "
      "for the object emitter",
      [](OpPassManager &pm, const CodegenPipelineOptions &o) {
        buildCodegenPipeline(pm, {o.target, o.cpu, o.features, o.prefix,
                                  o.reuseBuffers, o.microKernels});
      });
}
