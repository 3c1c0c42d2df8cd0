//===- qsim-compile.cpp - a model to an object file and a header ---------===//
//
// qsim-compile model.mlirbc --target aarch64-linux-gnu --cpu cortex-a72
//     --features +neon,+dotprod -o model.o --header model.h
//
// Runs --qsim-codegen-pipeline, LLVM's optimizer and the target backend;
// writes the object (or assembly / LLVM IR / the LLVM-dialect module) and
// the header the device runtime (runtime/qsim_runtime.c) needs.
//
//===----------------------------------------------------------------------===//

#include "qsim/Codegen/Emit.h"
#include "qsim/Conversion/Passes.h"
#include "qsim/Dialect/QSim/Transforms/Passes.h"
#include "qsim/Support/Diagnostics.h"
#include "qsim/Support/FileUtils.h"
#include "qsim/Target/ModelIO.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <CLI/CLI.hpp>

#include <cstdio>

using namespace mlir;

namespace {
int fail(const std::string &msg) {
  fprintf(stderr, "qsim-compile: error: %s\n", msg.c_str());
  return 1;
}

/// What the command line asks for.
struct CompileRequest {
  std::string model, weights, output, header, emit = "obj", prefix = "model";
  bool reuseBuffers = false;
  bool genericKernels = false;
  std::string triple = "aarch64-linux-gnu", cpu = "cortex-a72",
              features = "+neon";
  std::optional<uint64_t> seed;
  int opt = 3;
  int threads = 1;
  bool timing = false;
  CLI::Option *featuresOption = nullptr;

  void addOptions(CLI::App &app);
  /// Resolves the defaults that depend on other options ('host', features).
  void resolveTarget();
  qsim::CodegenTarget target() const {
    return {triple, cpu, features, prefix, reuseBuffers, !genericKernels};
  }
  qsim::EmitOptions emitOptions() const;
};

void CompileRequest::addOptions(CLI::App &app) {
  app.add_option("model", model, "Model: .mlirbc, .mlir or Darknet .cfg")
      ->required();
  app.add_option("--weights", weights, "Darknet .weights for a .cfg model");
  app.add_option("--random-weights", seed,
                 "Synthetic weights from this seed for a .cfg model");
  app.add_option("-o,--output", output, "Output file ('-' = stdout)")
      ->required();
  app.add_option("--header", header, "Write the model's C header here");
  app.add_option("--emit", emit,
                 "obj, asm, llvm (LLVM IR) or mlir (LLVM dialect)")
      ->check(CLI::IsMember({"obj", "asm", "llvm", "mlir"}))
      ->capture_default_str();
  app.add_option("--target", triple,
                 "Target triple ('host': this machine, with --cpu native)")
      ->capture_default_str();
  app.add_option("--cpu", cpu, "Target CPU ('native': this host)")
      ->capture_default_str();
  featuresOption = app.add_option(
      "--features", features,
      "Target features, e.g. +neon,+dotprod (default: +neon for aarch64, "
      "none for x86_64, the host's own for host)");
  app.add_option("--prefix", prefix,
                 "Prefix of the generated symbols (several models in one "
                 "program need different prefixes)")
      ->capture_default_str();
  app.add_flag("--reuse-buffers", reuseBuffers,
               "Run-only memory: a layer's output reuses the memory of "
               "outputs no later layer reads (stepping still works, but an "
               "overwritten output is gone: qsim_layer_output gives NULL "
               "data)");
  app.add_flag("--generic-kernels", genericKernels,
               "Convolutions with the generic vector kernels instead of the "
               "register-tiled micro-kernels (f32 FMA; int8 on packed 8-bit "
               "dot products where the target has avx512vnni or dotprod); "
               "for comparison");
  app.add_option("--threads", threads,
                 "Threads the runtime's qsim_init starts by default (each "
                 "layer's work split between them; the header's memory size "
                 "counts a scratch buffer per thread); qsim_init_threads "
                 "chooses at run time")
      ->capture_default_str();
  app.add_option("-O", opt, "LLVM optimization level (0-3)")
      ->check(CLI::Range(0, 3))
      ->capture_default_str();
  app.add_flag("--timing", timing, "Print the time of each pass");
}

void CompileRequest::resolveTarget() {
  if (triple == "host")
    cpu = "native";
  if (!featuresOption->count() &&
      (cpu == "native" || llvm::StringRef(triple).starts_with("x86_64")))
    features.clear(); // the host's own features / the CPU's
}

qsim::EmitOptions CompileRequest::emitOptions() const {
  qsim::EmitOptions eo;
  eo.kind = emit == "asm"    ? qsim::EmitOptions::Kind::Assembly
            : emit == "llvm" ? qsim::EmitOptions::Kind::LLVMIR
                             : qsim::EmitOptions::Kind::Object;
  eo.optLevel = opt;
  return eo;
}

/// Before the (long) compilation: can the outputs be written at all, and is
/// the target one we can emit for?
bool checkBeforeCompiling(const CompileRequest &r) {
  for (const std::string &path : {r.output, r.header}) {
    if (path.empty() || path == "-")
      continue;
    llvm::StringRef dir = llvm::sys::path::parent_path(path);
    if (!dir.empty() && !llvm::sys::fs::is_directory(dir)) {
      fail("cannot write '" + path + "': no directory '" + dir.str() + "'");
      return false;
    }
  }
  std::string error;
  if (!qsim::createTargetMachine(r.target(), r.opt, error)) {
    fail(error);
    return false;
  }
  return true;
}

/// The convolution kernels the target gets, for the summary line.
std::string describeKernels(const qsim::CodegenTarget &target) {
  int64_t lanes = qsim::vectorRegisters(target).f32Lanes;
  if (!lanes)
    return "generic vector kernels";
  qsim::DotProductIsa isa = qsim::dotProductIsa(target);
  return "f32 FMA micro-kernels (" + std::to_string(lanes) + " lanes), int8 " +
         (isa == qsim::DotProductIsa::None
              ? std::string("generic vector kernels")
              : qsim::stringifyDotProductIsa(isa).str() +
                    " dot-product micro-kernels");
}

/// The header, then the code: both files only once the code exists (no
/// header without its object).
int writeOutputs(const CompileRequest &r, ModuleOp module,
                 llvm::ArrayRef<char> code) {
  std::string error;
  if (!r.header.empty() && failed(qsim::writeFileAtomically(
                               r.header,
                               [&](llvm::raw_ostream &os) {
                                 return qsim::writeDeviceHeader(
                                     module, llvm::sys::path::filename(r.model),
                                     os, error, r.threads);
                               },
                               error)))
    return fail(error);
  if (r.output == "-") {
    fwrite(code.data(), 1, code.size(), stdout);
    return 0;
  }
  if (failed(qsim::writeFileAtomically(
          r.output,
          [&](llvm::raw_ostream &os) {
            os.write(code.data(), code.size());
            return success();
          },
          error)))
    return fail(error);
  auto bytesOf = [&](llvm::StringRef name) -> int64_t {
    auto a = module->getAttrOfType<IntegerAttr>(name);
    return a ? a.getInt() : 0;
  };
  auto table = module->getAttrOfType<ArrayAttr>("qsim.codegen");
  std::string where = r.cpu == "native" ? "this host" : r.triple;
  size_t parallel = 0;
  if (table)
    for (Attribute a : table)
      if (auto p = cast<DictionaryAttr>(a).getAs<BoolAttr>("parallel"))
        parallel += p.getValue();
  fprintf(stderr,
          "qsim-compile: wrote %s%s%s: %zu layers for %s (%s), arena %.1f "
          "MiB + scratch %.1f MiB; convolutions: %s; %zu layers split "
          "between threads (default %d)\n",
          r.output.c_str(), r.header.empty() ? "" : " and ", r.header.c_str(),
          table ? table.size() : (size_t)0, where.c_str(), r.cpu.c_str(),
          bytesOf("qsim.codegen.arena_bytes") / 1048576.0,
          bytesOf("qsim.codegen.scratch_bytes") / 1048576.0,
          describeKernels(r.target()).c_str(), parallel, r.threads);
  return 0;
}
} // namespace

int main(int argc, char **argv) {
  CompileRequest r;
  CLI::App app{
      "qsim-compile: compile a qsim model (float or quantized) for a device.\n"
      "\n"
      "  qsim-compile m.mlirbc -o model.o --header model.h   # aarch64 "
      "(cortex-a72, NEON)\n"
      "  qsim-compile m.mlirbc --target aarch64-linux-gnu --cpu cortex-a55 "
      "--features +neon,+dotprod -o model.o --header model.h\n"
      "  qsim-compile m.mlirbc --cpu native -o model.o --header model.h   "
      "# this host\n"
      "\n"
      "The object exports <prefix>_run_layer(arena, scratch, layer, part, "
      "parts); the header describes the layers for runtime/qsim_runtime.c "
      "(docs/deploy.md).\n",
      "qsim-compile"};
  r.addOptions(app);
  CLI11_PARSE(app, argc, argv);
  r.resolveTarget();
  if (r.threads < 1 || r.threads > 64)
    return fail("--threads must be between 1 and 64 (got " +
                std::to_string(r.threads) + ")");
  if (!checkBeforeCompiling(r))
    return 1;

  DialectRegistry registry;
  qsim::registerQSimDialects(registry);
  registerAllDialects(registry);
  registerAllExtensions(registry);
  registerAllPasses();
  qsim::registerQSimDialectPasses();
  qsim::registerQSimConversionPasses();
  MLIRContext ctx(registry);
  ctx.printOpOnDiagnostic(false);
  qsim::ToolDiagnostics diags(&ctx);

  qsim::ModelLoadOptions lo;
  lo.path = r.model;
  lo.weightsPath = r.weights;
  lo.randomSeed = r.seed;
  auto module = qsim::loadModel(&ctx, lo);
  if (!module)
    return 1;

  PassManager pm(&ctx);
  if (r.timing)
    pm.enableTiming();
  qsim::buildCodegenPipeline(pm, r.target());
  if (failed(pm.run(*module)))
    return 1; // diagnostics name the layer

  llvm::SmallVector<char, 0> code;
  if (r.emit == "mlir") {
    llvm::raw_svector_ostream os(code);
    module->print(os);
  } else {
    std::string error;
    if (failed(qsim::emitCode(*module, r.emitOptions(), code, error)))
      return fail(error);
  }
  return writeOutputs(r, *module, code);
}
