//===- Emit.cpp - object files and device headers ------------------------===//

#include "qsim/Codegen/Emit.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/IR/Verifier.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/TargetParser/Host.h"

#include <cctype>
#include <mutex>

using namespace mlir;

static void initializeTargets() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeAllTargetInfos();
    llvm::InitializeAllTargets();
    llvm::InitializeAllTargetMCs();
    llvm::InitializeAllAsmPrinters();
  });
}

std::unique_ptr<llvm::TargetMachine>
qsim::createTargetMachine(const CodegenTarget &t, int optLevel,
                          std::string &error) {
  initializeTargets();
  std::string triple = t.triple, cpu = t.cpu, features = t.features;
  if (cpu == "native") {
    triple = llvm::sys::getDefaultTargetTriple();
    cpu = llvm::sys::getHostCPUName().str();
    if (features.empty()) {
      llvm::StringMap<bool> host = llvm::sys::getHostCPUFeatures();
      for (auto &f : host)
        features += (features.empty() ? "" : ",") +
                    std::string(f.second ? "+" : "-") + f.first().str();
    }
  }
  // The generated code is tested on these two (ARM64 devices, the host).
  llvm::Triple parsed(triple);
  if (parsed.getArch() != llvm::Triple::aarch64 &&
      parsed.getArch() != llvm::Triple::x86_64) {
    error = "target '" + triple +
            "' is not supported (aarch64-linux-gnu, x86_64-linux-gnu or host)";
    return nullptr;
  }
  std::string lookupError;
  const llvm::Target *target =
      llvm::TargetRegistry::lookupTarget(triple, lookupError);
  if (!target) {
    error = "unknown target '" + triple + "': " + lookupError;
    return nullptr;
  }
  // Checked on a generic subtarget first: LLVM only warns about (and then
  // ignores) an unknown CPU or feature.
  std::unique_ptr<llvm::MCSubtargetInfo> sti(
      target->createMCSubtargetInfo(triple, "", ""));
  if (!sti->isCPUStringValid(cpu)) {
    error = "unknown CPU '" + cpu + "' for " + triple +
            " (e.g. cortex-a53, cortex-a72, cortex-a55 or native)";
    return nullptr;
  }
  // Unknown features would only be warned about by LLVM and then ignored.
  llvm::SmallVector<llvm::StringRef> list;
  llvm::StringRef(features).split(list, ',', -1, false);
  for (llvm::StringRef f : list) {
    llvm::StringRef name =
        f.drop_front(f.starts_with("+") || f.starts_with("-"));
    auto all = sti->getAllProcessorFeatures();
    if (llvm::none_of(all, [&](const llvm::SubtargetFeatureKV &kv) {
          return name == kv.Key;
        })) {
      error = "unknown target feature '" + f.str() + "' for " + triple +
              " (e.g. +neon, +dotprod, +fp16)";
      return nullptr;
    }
  }
  llvm::TargetOptions options;
  auto level = optLevel >= 3   ? llvm::CodeGenOptLevel::Aggressive
               : optLevel == 0 ? llvm::CodeGenOptLevel::None
                               : llvm::CodeGenOptLevel::Default;
  std::unique_ptr<llvm::TargetMachine> tm(target->createTargetMachine(
      triple, cpu, features, options, llvm::Reloc::PIC_, std::nullopt, level));
  if (!tm) {
    error = "cannot create a target machine for " + triple + " " + cpu;
    return nullptr;
  }
  return tm;
}

qsim::VectorRegisterFile qsim::vectorRegisters(const CodegenTarget &t) {
  if (!t.microKernels)
    return {};
  std::string error;
  std::unique_ptr<llvm::TargetMachine> tm = createTargetMachine(t, 2, error);
  if (!tm)
    return {};
  const llvm::MCSubtargetInfo *sti = tm->getMCSubtargetInfo();
  switch (tm->getTargetTriple().getArch()) {
  case llvm::Triple::x86_64:
    if (sti->checkFeatures("+avx512f"))
      return {16, 32};
    if (sti->checkFeatures("+avx2,+fma"))
      return {8, 16};
    return {4, 16};
  case llvm::Triple::aarch64:
    return {4, 32};
  default:
    return {};
  }
}

qsim::DotProductIsa qsim::dotProductIsa(const CodegenTarget &t) {
  if (!t.microKernels)
    return DotProductIsa::None;
  std::string error;
  std::unique_ptr<llvm::TargetMachine> tm = createTargetMachine(t, 2, error);
  if (!tm)
    return DotProductIsa::None;
  const llvm::MCSubtargetInfo *sti = tm->getMCSubtargetInfo();
  switch (tm->getTargetTriple().getArch()) {
  case llvm::Triple::x86_64:
    return sti->checkFeatures("+avx512vnni,+avx512bw")
               ? DotProductIsa::Avx512Vnni
               : DotProductIsa::None;
  case llvm::Triple::aarch64:
    return sti->checkFeatures("+dotprod") ? DotProductIsa::NeonDotprod
                                          : DotProductIsa::None;
  default:
    return DotProductIsa::None;
  }
}

LogicalResult qsim::emitCode(ModuleOp module, const EmitOptions &o,
                             llvm::SmallVectorImpl<char> &out,
                             std::string &error) {
  initializeTargets();
  DialectRegistry registry;
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  module->getContext()->appendDialectRegistry(registry);

  auto recorded = module->getAttrOfType<DictionaryAttr>("qsim.target");
  if (!recorded) {
    error = "the module records no target (compile it with "
            "--qsim-codegen-pipeline)";
    return failure();
  }
  auto field = [&](StringRef name) {
    auto s = recorded.getAs<StringAttr>(name);
    return s ? s.str() : std::string();
  };
  CodegenTarget target{field("triple"), field("cpu"), field("features")};
  std::unique_ptr<llvm::TargetMachine> tm =
      createTargetMachine(target, o.optLevel, error);
  if (!tm)
    return failure();

  llvm::LLVMContext llvmCtx;
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(module, llvmCtx, "qsim-model");
  if (!llvmModule) {
    error = "translation to LLVM IR failed";
    return failure();
  }
  std::string triple = tm->getTargetTriple().str();
  std::string cpu = tm->getTargetCPU().str();
  std::string features = tm->getTargetFeatureString().str();
  llvmModule->setTargetTriple(triple);
  llvmModule->setDataLayout(tm->createDataLayout());
  // Every function gets the target's CPU and features (the backend reads
  // them per function).
  for (llvm::Function &f : *llvmModule) {
    if (f.isDeclaration())
      continue;
    f.addFnAttr("target-cpu", cpu);
    if (!features.empty())
      f.addFnAttr("target-features", features);
  }
  if (llvm::verifyModule(*llvmModule, &llvm::errs())) {
    error = "the generated LLVM IR does not verify";
    return failure();
  }

  // LLVM's optimization pipeline.
  if (o.optLevel > 0) {
    llvm::LoopAnalysisManager lam;
    llvm::FunctionAnalysisManager fam;
    llvm::CGSCCAnalysisManager cgam;
    llvm::ModuleAnalysisManager mam;
    llvm::PassBuilder pb(tm.get());
    pb.registerModuleAnalyses(mam);
    pb.registerCGSCCAnalyses(cgam);
    pb.registerFunctionAnalyses(fam);
    pb.registerLoopAnalyses(lam);
    pb.crossRegisterProxies(lam, fam, cgam, mam);
    llvm::OptimizationLevel ol = o.optLevel >= 3 ? llvm::OptimizationLevel::O3
                                 : o.optLevel == 2
                                     ? llvm::OptimizationLevel::O2
                                     : llvm::OptimizationLevel::O1;
    llvm::ModulePassManager mpm = pb.buildPerModuleDefaultPipeline(ol);
    mpm.run(*llvmModule, mam);
  }

  llvm::raw_svector_ostream os(out);
  if (o.kind == EmitOptions::Kind::LLVMIR) {
    llvmModule->print(os, nullptr);
    return success();
  }
  llvm::legacy::PassManager cg;
  auto fileType = o.kind == EmitOptions::Kind::Object
                      ? llvm::CodeGenFileType::ObjectFile
                      : llvm::CodeGenFileType::AssemblyFile;
  if (tm->addPassesToEmitFile(cg, os, nullptr, fileType)) {
    error = "the target cannot emit this file type";
    return failure();
  }
  cg.run(*llvmModule);
  return success();
}

namespace {
// A float as a C literal that round-trips ("1.f", "0.600000024f", "1e-05f").
std::string cFloatLiteral(double v) {
  char buf[40];
  snprintf(buf, sizeof buf, "%.9g", v);
  std::string s = buf;
  if (s.find_first_of(".en") == std::string::npos)
    s += ".";
  return s + "f";
}
} // namespace

LogicalResult qsim::writeDeviceHeader(ModuleOp module, StringRef source,
                                      llvm::raw_ostream &os, std::string &error,
                                      int64_t threads) {
  auto table = module->getAttrOfType<ArrayAttr>("qsim.codegen");
  auto input = module->getAttrOfType<DictionaryAttr>("qsim.codegen.input");
  auto arena = module->getAttrOfType<IntegerAttr>("qsim.codegen.arena_bytes");
  auto scratch =
      module->getAttrOfType<IntegerAttr>("qsim.codegen.scratch_bytes");
  if (!table || !input || !arena || !scratch) {
    error = "the module was not compiled by --qsim-codegen-pipeline";
    return failure();
  }
  std::string prefix = input.getAs<StringAttr>("prefix").str();
  std::string guard = prefix;
  for (char &c : guard)
    c = std::toupper((unsigned char)c);
  auto in = input.getAs<DenseI64ArrayAttr>("shape").asArrayRef();
  os << "/* " << prefix << ": generated by qsim-compile from " << source
     << ". Do not edit.\n"
     << " * Layer shapes are NHWC; see runtime/qsim_runtime.h and "
        "docs/deploy.md. */\n"
     << "#ifndef QSIM_MODEL_" << guard << "_H\n#define QSIM_MODEL_" << guard
     << "_H\n\n#include \"qsim_runtime.h\"\n\n#ifdef __cplusplus\nextern "
        "\"C\" {\n#endif\n\n"
     << "void " << prefix
     << "_run_layer(uint8_t *arena, uint8_t *scratch, int32_t layer,\n"
     << "    int32_t part, int32_t parts);\n\n"
     << "#define " << guard << "_NUM_LAYERS " << table.size() << "\n"
     << "#define " << guard << "_ARENA_BYTES " << arena.getInt() << "\n"
     << "#define " << guard << "_SCRATCH_BYTES " << scratch.getInt() << "\n"
     << "/* Threads qsim_init starts (qsim-compile --threads); memory for n\n"
     << " * threads: " << guard << "_MEMORY_BYTES_FOR(n). */\n"
     << "#define " << guard << "_THREADS " << threads << "\n"
     << "#define " << guard << "_MEMORY_BYTES_FOR(n) QSIM_MEMORY_BYTES_FOR("
     << arena.getInt() << ", " << scratch.getInt() << ", n)\n"
     << "#define " << guard << "_MEMORY_BYTES ("
     << arena.getInt() + threads * scratch.getInt() << " + QSIM_MEMORY_SLACK + "
     << threads << " * QSIM_THREAD_BYTES)\n"
     << "#define " << guard << "_INPUT_C " << in[3] << "\n#define " << guard
     << "_INPUT_H " << in[1] << "\n#define " << guard << "_INPUT_W " << in[2]
     << "\n\n";
  for (Attribute a : table) {
    auto d = cast<DictionaryAttr>(a);
    os << "static const int32_t " << prefix << "_inputs_"
       << d.getAs<IntegerAttr>("index").getInt() << "[] = {";
    auto ins = d.getAs<DenseI64ArrayAttr>("inputs").asArrayRef();
    for (size_t i = 0; i < ins.size(); ++i)
      os << (i ? ", " : "") << ins[i];
    os << "};\n";
  }
  os << "\nstatic const qsim_layer_info " << prefix << "_layers[] = {\n";
  for (Attribute a : table) {
    auto d = cast<DictionaryAttr>(a);
    StringRef el = d.getAs<StringAttr>("elem").getValue();
    auto shape = d.getAs<DenseI64ArrayAttr>("shape").asArrayRef();
    int64_t idx = d.getAs<IntegerAttr>("index").getInt();
    float scale = d.getAs<FloatAttr>("scale").getValueAsDouble();
    auto parallel = d.getAs<BoolAttr>("parallel");
    os << "    {" << idx << ", \"" << d.getAs<StringAttr>("kind").getValue()
       << "\", "
       << (el == "i8"    ? "QSIM_I8"
           : el == "f16" ? "QSIM_F16"
                         : "QSIM_F32")
       << ", {" << shape[0] << ", " << shape[1] << ", " << shape[2] << ", "
       << shape[3] << "}, " << cFloatLiteral(scale) << ", "
       << d.getAs<IntegerAttr>("zero_point").getInt() << ", "
       << d.getAs<IntegerAttr>("offset").getInt() << ", "
       << d.getAs<IntegerAttr>("bytes").getInt() << ", "
       << d.getAs<DenseI64ArrayAttr>("inputs").size() << ", " << prefix
       << "_inputs_" << idx << ", "
       << d.getAs<IntegerAttr>("overwritten_by").getInt() << ", "
       << (parallel && parallel.getValue() ? 1 : 0) << "},\n";
  }
  os << "};\n\n";
  // Detection heads.
  int heads = 0;
  std::string headRows;
  for (auto [i, a] : llvm::enumerate(table)) {
    auto d = cast<DictionaryAttr>(a);
    if (!d.get("anchors"))
      continue;
    int64_t idx = d.getAs<IntegerAttr>("index").getInt();
    auto mask = d.getAs<DenseI64ArrayAttr>("mask").asArrayRef();
    auto anchors = d.getAs<DenseF32ArrayAttr>("anchors").asArrayRef();
    os << "static const int32_t " << prefix << "_mask_" << idx << "[] = {";
    for (size_t k = 0; k < mask.size(); ++k)
      os << (k ? ", " : "") << mask[k];
    os << "};\nstatic const float " << prefix << "_anchors_" << idx << "[] = {";
    for (size_t k = 0; k < anchors.size(); ++k) {
      os << (k ? ", " : "") << cFloatLiteral(anchors[k]);
    }
    os << "};\n";
    std::string beta =
        cFloatLiteral(d.getAs<FloatAttr>("beta_nms").getValueAsDouble());
    headRows += "    {" + std::to_string(i) + ", " +
                std::to_string(d.getAs<IntegerAttr>("classes").getInt()) +
                ", " + std::to_string(d.getAs<IntegerAttr>("num").getInt()) +
                ", " + std::to_string(mask.size()) + ", " + prefix + "_mask_" +
                std::to_string(idx) + ", " + prefix + "_anchors_" +
                std::to_string(idx) + ", " +
                (d.getAs<BoolAttr>("new_coords").getValue() ? "1" : "0") +
                ", " +
                std::to_string(d.getAs<IntegerAttr>("nms_kind").getInt()) +
                ", " + beta + "},\n";
    ++heads;
  }
  if (heads)
    os << "static const qsim_yolo_head " << prefix << "_heads[] = {\n"
       << headRows << "};\n\n";
  bool pj = input.getAs<StringAttr>("flavor").getValue() == "pjreddie";
  bool lb = input.getAs<BoolAttr>("letter_box").getValue();
  os << "static const qsim_model " << prefix << "_desc = {\n"
     << "    \"" << prefix << "\", " << table.size() << ", " << prefix
     << "_layers, " << arena.getInt() << ", " << scratch.getInt() << ",\n"
     << "    {" << in[0] << ", " << in[1] << ", " << in[2] << ", " << in[3]
     << "}, " << prefix << "_run_layer, " << heads << ", "
     << (heads ? prefix + "_heads" : std::string("0")) << ", " << (pj ? 1 : 0)
     << ", " << (lb ? 1 : 0) << ", " << threads
     << "};\n\n#ifdef __cplusplus\n}\n#endif\n\n#endif\n";
  return success();
}
