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
#include "qsim/Dialect/QSim/Transforms/Passes.h"

#include "mlir/Conversion/AffineToStandard/AffineToStandard.h"
#include "mlir/Conversion/Passes.h"
#include "mlir/Conversion/ReconcileUnrealizedCasts/ReconcileUnrealizedCasts.h"
#include "mlir/Conversion/SCFToControlFlow/SCFToControlFlow.h"
#include "mlir/Conversion/TosaToArith/TosaToArith.h"
#include "mlir/Conversion/TosaToLinalg/TosaToLinalg.h"
#include "mlir/Conversion/TosaToTensor/TosaToTensor.h"
#include "mlir/Conversion/VectorToSCF/VectorToSCF.h"
#include "mlir/Dialect/Bufferization/IR/BufferizableOpInterface.h"
#include "mlir/Dialect/Bufferization/Transforms/OneShotAnalysis.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;
using namespace qsim;

llvm::StringRef qsim::stringifyDotProductIsa(DotProductIsa isa) {
  switch (isa) {
  case DotProductIsa::None:
    return "none";
  case DotProductIsa::Avx512Vnni:
    return "avx512-vnni";
  case DotProductIsa::NeonDotprod:
    return "neon-dotprod";
  }
  llvm_unreachable("isa");
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

/// One-Shot Bufferize across function boundaries with identity layouts
/// (plain pointers at the C boundary).
static bufferization::OneShotBufferizationOptions bufferizationOptions() {
  bufferization::OneShotBufferizationOptions o;
  o.bufferizeFunctionBoundaries = true;
  o.setFunctionBoundaryTypeConversion(
      bufferization::LayoutMapOption::IdentityLayoutMap);
  o.unknownTypeConverterFn = [](Value value, Attribute memorySpace,
                                const bufferization::BufferizationOptions &) {
    return bufferization::getMemRefTypeWithStaticIdentityLayout(
        cast<TensorType>(value.getType()), memorySpace);
  };
  return o;
}

void qsim::buildCodegenPipeline(OpPassManager &pm, const CodegenTarget &t) {
  VectorRegisterFile regs = vectorRegisters(t);
  pm.addPass(createFoldBatchNormPass());
  LowerToTosaPassOptions toTosa;
  toTosa.prefix = t.prefix;
  pm.addPass(createLowerToTosaPass(toTosa));

  OpPassManager &fn = pm.nest<func::FuncOp>();
  fn.addPass(tosa::createTosaToLinalgNamed());
  fn.addPass(tosa::createTosaToLinalg());
  fn.addPass(tosa::createTosaToArith(/*includeApplyRescale=*/true,
                                     /*use32BitApplyRescale=*/false));
  fn.addPass(tosa::createTosaToTensor());
  fn.addPass(createCanonicalizerPass());
  DotProductConvsPassOptions dot;
  dot.isa = dotProductIsa(t);
  fn.addPass(createDotProductConvsPass(dot));
  FmaConvsPassOptions fma;
  fma.lanes = regs.f32Lanes;
  fma.registers = regs.count;
  fn.addPass(createFmaConvsPass(fma));
  fn.addPass(createPrepareConvsPass());
  fn.addPass(createCanonicalizerPass());
  fn.addPass(createTileAndVectorizePass());
  fn.addPass(createCanonicalizerPass());
  fn.addPass(createCSEPass());

  pm.addPass(bufferization::createOneShotBufferizePass(bufferizationOptions()));
  pm.addPass(bufferization::createBufferResultsToOutParamsPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createScratchToArenaPass());
  pm.addPass(createSplitLayersPass());
  BuildStepFunctionPassOptions step;
  step.reuseBuffers = t.reuseBuffers;
  pm.addPass(createBuildStepFunctionPass(step));
  pm.addNestedPass<func::FuncOp>(createConvertLinalgToLoopsPass());
  pm.addPass(createConvertVectorToSCFPass(
      VectorTransferToSCFOptions().enableFullUnroll(true).setTargetRank(1)));
  pm.addPass(createLowerAffinePass());
  pm.addPass(createConvertSCFToCFPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  // Views at dynamic offsets (a part's share of the output) leave affine
  // index arithmetic.
  pm.addPass(createLowerAffinePass());
  pm.addPass(createConvertVectorToLLVMPass());
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  ConvertFuncToLLVMPassOptions toLLVM;
  toLLVM.useBarePtrCallConv = true;
  pm.addPass(createConvertFuncToLLVMPass(toLLVM));
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
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
