//===- RunCommand.cpp - what qsim-run does with its options ---------------===//
//
// See RunCommand.h. The messages are qsim-run's (docs/qsim-run.md; the lit
// tests under test/Interpreter check them).
//
//===----------------------------------------------------------------------===//

#include "qsim/Evaluation/RunCommand.h"

#include "qsim/Evaluation/RunReport.h"
#include "qsim/Evaluation/ShardedRun.h"
#include "qsim/Support/Diagnostics.h"
#include "qsim/Support/StringUtils.h"
#include "qsim/Target/ModelIO.h"
#include "qsim/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/FileSystem.h"

#include <cstdio>

using namespace qsim;
using namespace qsim::eval;

namespace {

int fail(const std::string &msg) {
  fprintf(stderr, "qsim-run: error: %s\n", msg.c_str());
  return 1;
}

/// --mode / --precision: the same passes qsim-opt runs (fold batch norms,
/// calibrate, assign precisions, quantize), on the loaded float model.
/// Returns what went wrong, in qsim-run's words where it can tell.
std::string quantizeForRun(mlir::ModuleOp module, const RunCommandOptions &o) {
  QuantizeRequest r = o.quant;
  r.preset = *parseRunMode(o.mode); // CLI11 checked --mode
  if (!o.calib.empty())
    r.calib = {o.calib};
  quantization::parseCalibrationMethod(o.calibMethod, r.calibMethod);
  if (r.empty())
    return ""; // --mode float: run the model as it is
  if (module->hasAttr("qsim.quantization"))
    return "the model is already quantized; --mode/--precision apply to "
           "float models";
  std::string error;
  FailureOr<bool> int8 = assignPrecisionPlansInt8(r.precision, r.preset, error);
  if (succeeded(int8) && *int8 && r.calib.empty())
    return "int8 layers need calibration images: --calib DIR (images other "
           "than the ones you evaluate on)";
  if (failed(prepareQuantization(module, r, error)) ||
      failed(applyQuantization(module, r, error)))
    return error;
  return "";
}

/// --session and --break: the step session engine (lib/Session), with the
/// model and its quantization loaded first.
int runSession(const RunCommandOptions &o) {
  nlohmann::json load; // null: no model to load first
  if (!o.model.empty()) {
    load = {{"cmd", "load"}};
    for (auto [key, value] : {std::pair{"model", &o.model},
                              {"weights", &o.weights},
                              {"mode", &o.mode},
                              {"precision", &o.quant.precision},
                              {"quantize", &o.quant.quantize},
                              {"image", &o.image}})
      if (!value->empty())
        load[key] = *value;
    if (o.randomSeed)
      load["random_weights"] = *o.randomSeed;
    if (!o.calib.empty())
      load.update({{"calib", o.calib},
                   {"calib_images", o.quant.calibImages},
                   {"calib_method", o.calibMethod}});
  }
  std::string error;
  int rc = o.session.run(
      o.run.executor.threads, o.kernels == "reference", load, o.run.dumpDir,
      llvm::outs(),
      [](const std::string &endpoint) {
        fprintf(stderr, "qsim-run: session listening on %s\n",
                endpoint.c_str());
      },
      error);
  return rc != 0 && !error.empty() ? fail(error) : rc;
}

/// The model: loaded with --weights or --random-weights, quantized by
/// --mode/--precision, saved by --save-model. With `reference`, --compare's
/// model: a .cfg with the weights beside it, else the model's.
mlir::OwningOpRef<mlir::ModuleOp>
loadRunModel(mlir::MLIRContext *ctx, const RunCommandOptions &o, bool reference) {
  ModelLoadOptions lo;
  lo.path = reference ? o.compare : o.model;
  lo.allowUnknownKeys = o.allowUnknownKeys;
  if (!o.flavor.empty())
    lo.flavor = parseFlavor(o.flavor);
  if (reference) {
    std::string w = lo.path.substr(0, lo.path.size() - 4) + ".weights";
    if (isDarknetCfgPath(lo.path))
      lo.weightsPath = llvm::sys::fs::exists(w) ? w : o.weights;
    return loadModel(ctx, lo);
  }
  lo.weightsPath = o.weights;
  lo.randomSeed = o.randomSeed;
  auto module = loadModel(ctx, lo);
  if (!module)
    return nullptr;
  // A module whose only function is not @main is not a model qsim wrote.
  mlir::func::FuncOp mainFunc = getMainFunc(*module);
  if (mainFunc.getName() != "main") {
    fail("'" + lo.path + "' is not a qsim model: its function is @" +
         mainFunc.getName().str() + ", not @main");
    return nullptr;
  }
  std::string error = quantizeForRun(*module, o);
  if (error.empty() && !o.saveModel.empty())
    (void)saveModel(*module, o.saveModel, /*bytecode=*/true, error);
  if (error.empty())
    return module;
  fail(error);
  return nullptr;
}

/// The options that decide a run's results (a part's identity).
std::string runOptionsText(const RunCommandOptions &o) {
  const InferenceOptions &io = o.run.inference;
  return strprintf(
      "thresh=%a nms=%a letterbox=%d/%d kernels=%s flavor=%s "
      "random-weights=%s mode=%s precision=%s quantize=%s calib=%s "
      "calib-images=%d calib-method=%s",
      io.thresh, io.nms, o.letterbox, o.noLetterbox, o.kernels.c_str(),
      o.flavor.c_str(),
      o.randomSeed ? std::to_string(*o.randomSeed).c_str() : "-",
      o.mode.c_str(), o.quant.precision.c_str(), o.quant.quantize.c_str(),
      o.calib.c_str(), o.quant.calibImages, o.calibMethod.c_str());
}

/// --shard K/N: keeps the shard's images and records each into `part`.
bool prepareShard(RunCommandOptions &o, const ModelRun &run,
                  std::vector<std::string> &images, RunPart &part,
                  std::string &error) {
  if (!parseShard(o.shard, part.shard, error))
    return false;
  std::vector<std::string> modelFiles = {o.model};
  if (!o.weights.empty())
    modelFiles.push_back(o.weights);
  if (!describeRun(run, o.model, modelFiles, runOptionsText(o), images,
                         o.batch.batch, part.identity, error))
    return false;
  images = selectShard(images, part.shard);
  bool candidates = run.hasLabels();
  o.batch.recordImage = [&part, candidates](size_t n, const std::string &path,
                                            const InferenceResult *r) {
    recordPartImage(part, n, path, r, candidates);
  };
  return true;
}

/// --merge PARTS: the summary lines of the unsharded run.
int mergeParts(const RunCommandOptions &o) {
  std::string error;
  MergedRun merged;
  std::vector<std::string> names;
  if ((!o.names.empty() && !rt::readNames(o.names, names, error)) ||
      !mergeRunParts(o.merge, merged, error) ||
      !reportMergedRun(merged, o.run.labelsDir, names, o.batch.jsonPath,
                             llvm::outs(), error))
    return fail(error);
  return 0;
}

/// Runs the model over the images with what the options ask of the run.
int runModel(RunCommandOptions &o) {
  mlir::DialectRegistry registry;
  registerQSimDialects(registry);
  mlir::MLIRContext ctx(registry);
  ctx.loadAllAvailableDialects();
  // Errors name the file, line and layer; the op's IR would be noise here.
  ctx.printOpOnDiagnostic(false);
  ToolDiagnostics diags(&ctx, "qsim-run");
  auto module = loadRunModel(&ctx, o, /*reference=*/false);
  if (!module)
    return 1;
  o.batch.maxImagePixels = (int64_t)(o.session.maxImageMpixels * 1e6);
  o.run.executor.kernels = o.kernels == "reference"
                               ? interp::KernelSet::Reference
                               : interp::KernelSet::Fast;
  o.run.executor.timeSteps = !o.compare.empty(); // its ms columns
  if (o.letterbox || o.noLetterbox)
    o.run.inference.letterbox = o.letterbox;
  auto run = ModelRun::create(*module, o.run);
  if (!run)
    return 1;
  std::string error;
  if (!o.names.empty() && !rt::readNames(o.names, o.batch.names, error))
    return fail(error);
  mlir::OwningOpRef<mlir::ModuleOp> reference;
  if (!o.compare.empty()) {
    if (!(reference = loadRunModel(&ctx, o, /*reference=*/true)))
      return 1;
    DiagnosticPrefix prefix(&ctx, "--compare: ");
    if (failed(run->compareWith(*reference, o.compare)))
      return 1;
  }
  if (o.run.overflowReport && !run->hasInt8Convolutions())
    return fail("--overflow-report: the model has no int8 convolutions "
                "(quantize it, or use --mode int8)");
  std::vector<std::string> images;
  if (!o.image.empty() &&
      !listRunImages(o.image, o.maxImages, images, o.batch.batch, error))
    return fail(error);
  if (!o.run.labelsDir.empty() && run->info().isClassifier())
    return fail("--eval needs a detection model");
  RunPart part;
  if (!o.shard.empty() && !prepareShard(o, *run, images, part, error))
    return fail(error);
  o.batch.model = o.model;
  o.batch.warnSkipped = [](const std::string &why) {
    fprintf(stderr, "\nqsim-run: warning: skipping %s\n", why.c_str());
  };
  BatchResult batch;
  if (!runImages(*run, images, o.batch, llvm::outs(), batch, error) ||
      !reportRun(*run, o.batch, batch, llvm::outs(), error) ||
      (!o.partOut.empty() && !writeRunPart(o.partOut, part, error)))
    return fail(error);
  return 0;
}

/// What a shard run cannot do: reports that are not merged across shards.
std::string checkShardOptions(const RunCommandOptions &o) {
  if (o.shard.empty() != o.partOut.empty())
    return "--shard and --part-out go together";
  if (o.shard.empty())
    return "";
  if (o.image.empty())
    return "--shard needs --image DIR";
  for (auto [given, name] : {std::pair{!o.compare.empty(), "--compare"},
                             {o.run.overflowReport, "--overflow-report"},
                             {o.run.layerStats, "--layer-stats"},
                             {o.run.timeLayers, "--time-layers"},
                             {o.run.repeat > 0, "--repeat"}})
    if (given)
      return std::string(name) + " is not merged across shards: run it "
                                 "without --shard";
  return "";
}


/// The checks of options that do not go together, before anything runs.
std::string checkRunCommand(const RunCommandOptions &o) {
  if (!o.merge.empty())
    return !o.model.empty() || !o.image.empty() || !o.shard.empty()
               ? "--merge takes part files only (no model, --image or "
                 "--shard)"
               : "";
  if (std::string error = checkShardOptions(o); !error.empty())
    return error;
  if (o.model.empty())
    return "a model is required (see --help)";
  if (o.letterbox && o.noLetterbox)
    return "--letterbox and --no-letterbox exclude each other";
  if (o.image.empty() && o.run.repeat == 0)
    return "nothing to do: give --image (or --repeat N to time the "
           "forward pass on a constant input)";
  return "";
}

} // namespace

int eval::runCommand(RunCommandOptions &o) {
  if (o.session.requested())
    return runSession(o);
  if (std::string error = checkRunCommand(o); !error.empty())
    return fail(error);
  if (!o.merge.empty())
    return mergeParts(o);
  return runModel(o);
}
