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
} // namespace

int main(int argc, char **argv) {
  std::string model, weights, output, header, emit = "obj", prefix = "model";
  bool reuseBuffers = false;
  bool genericKernels = false;
  std::string triple = "aarch64-linux-gnu", cpu = "cortex-a72",
              features = "+neon";
  std::optional<uint64_t> seed;
  int opt = 3;
  bool timing = false;
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
      "The object exports <prefix>_run_layer(arena, scratch, layer); the "
      "header "
      "describes the layers for runtime/qsim_runtime.c (docs/deploy.md).\n",
      "qsim-compile"};
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
  CLI::Option *featuresOption = app.add_option(
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
  app.add_option("-O", opt, "LLVM optimization level (0-3)")
      ->check(CLI::Range(0, 3))
      ->capture_default_str();
  app.add_flag("--timing", timing, "Print the time of each pass");
  CLI11_PARSE(app, argc, argv);
  if (triple == "host")
    cpu = "native";
  if (!featuresOption->count() &&
      (cpu == "native" || llvm::StringRef(triple).starts_with("x86_64")))
    features.clear(); // the host's own features / the CPU's

  qsim::EmitOptions eo;
  eo.kind = emit == "asm"    ? qsim::EmitOptions::Kind::Assembly
            : emit == "llvm" ? qsim::EmitOptions::Kind::LLVMIR
                             : qsim::EmitOptions::Kind::Object;
  eo.optLevel = opt;
  qsim::CodegenTarget target{triple, cpu,          features,
                             prefix, reuseBuffers, !genericKernels};
  // Before the (long) compilation: can the outputs be written at all?
  for (const std::string &path : {output, header}) {
    if (path.empty() || path == "-")
      continue;
    llvm::StringRef dir = llvm::sys::path::parent_path(path);
    if (!dir.empty() && !llvm::sys::fs::is_directory(dir))
      return fail("cannot write '" + path + "': no directory '" + dir.str() +
                  "'");
  }
  {
    // Before the (long) compilation: is the target one we can emit for?
    std::string error;
    if (!qsim::createTargetMachine(target, opt, error))
      return fail(error);
  }

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
  lo.path = model;
  lo.weightsPath = weights;
  lo.randomSeed = seed;
  auto module = qsim::loadModel(&ctx, lo);
  if (!module)
    return 1;

  std::string kernels = "generic vector kernels";
  if (int64_t lanes = qsim::vectorRegisters(target).f32Lanes) {
    qsim::DotProductIsa isa = qsim::dotProductIsa(target);
    kernels = "f32 FMA micro-kernels (" + std::to_string(lanes) +
              " lanes), int8 " +
              (isa == qsim::DotProductIsa::None
                   ? std::string("generic vector kernels")
                   : qsim::stringifyDotProductIsa(isa).str() +
                         " dot-product micro-kernels");
  }
  PassManager pm(&ctx);
  if (timing)
    pm.enableTiming();
  qsim::buildCodegenPipeline(pm, target);
  if (failed(pm.run(*module)))
    return 1; // diagnostics name the layer

  std::string error;
  std::string eoTriple = cpu == "native" ? "this host" : triple;
  llvm::SmallVector<char, 0> out;
  if (emit == "mlir") {
    llvm::raw_svector_ostream os(out);
    module->print(os);
  } else {
    if (failed(qsim::emitCode(*module, eo, out, error)))
      return fail(error);
  }
  // Both files only once the code exists (no header without its object).
  if (!header.empty() && failed(qsim::writeFileAtomically(
                             header,
                             [&](llvm::raw_ostream &os) {
                               return qsim::writeDeviceHeader(
                                   *module, llvm::sys::path::filename(model),
                                   os, error);
                             },
                             error)))
    return fail(error);

  if (output == "-") {
    fwrite(out.data(), 1, out.size(), stdout);
    return 0;
  }
  if (failed(qsim::writeFileAtomically(
          output,
          [&](llvm::raw_ostream &os) {
            os.write(out.data(), out.size());
            return success();
          },
          error)))
    return fail(error);
  auto bytesOf = [&](llvm::StringRef name) -> int64_t {
    auto a = (*module)->getAttrOfType<IntegerAttr>(name);
    return a ? a.getInt() : 0;
  };
  auto table = (*module)->getAttrOfType<ArrayAttr>("qsim.codegen");
  fprintf(stderr,
          "qsim-compile: wrote %s%s%s: %zu layers for %s (%s), arena %.1f "
          "MiB + scratch %.1f MiB; convolutions: %s\n",
          output.c_str(), header.empty() ? "" : " and ", header.c_str(),
          table ? table.size() : (size_t)0, eoTriple.c_str(), cpu.c_str(),
          bytesOf("qsim.codegen.arena_bytes") / 1048576.0,
          bytesOf("qsim.codegen.scratch_bytes") / 1048576.0, kernels.c_str());
  return 0;
}
