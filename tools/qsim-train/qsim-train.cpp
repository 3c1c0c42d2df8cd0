//===- qsim-train.cpp - fine-tune a qsim model from its original ---------===//
//
// qsim-train student.mlirbc --teacher original.mlirbc --images DIR
//     [--labels DIR] --steps N --batch B [--lr X] -o trained.mlirbc
//
// A thin tool over qsim::train::trainModule (lib/Train, libtorch); see
// docs/training.md.
//
//===----------------------------------------------------------------------===//

#include "qsim/Runtime/AtomicFile.h"
#include "qsim/Support/Diagnostics.h"
#include "qsim/Support/ThreadWaits.h"
#include "qsim/Target/ModelIO.h"
#include "qsim/Train/Train.h"

#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <CLI/CLI.hpp>

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <unistd.h>

using namespace mlir;

namespace {

std::atomic<int> signalsSeen{0};

void onSignal(int) {
  // First Ctrl-C / SIGTERM: finish the step and write what was trained.
  // Second: leave at once, writing nothing.
  if (signalsSeen.fetch_add(1) >= 1)
    _exit(130);
}

int fail(const std::string &msg) {
  fprintf(stderr, "qsim-train: error: %s\n", msg.c_str());
  return 1;
}

bool parseHint(const std::string &s, std::pair<int64_t, int64_t> &out) {
  size_t colon = s.find(':');
  if (colon == std::string::npos)
    return false;
  try {
    size_t a = 0, b = 0;
    out.first = std::stoll(s.substr(0, colon), &a);
    out.second = std::stoll(s.substr(colon + 1), &b);
    return a == colon && b == s.size() - colon - 1;
  } catch (...) {
    return false;
  }
}

std::string checkpointPath(const std::string &output, int64_t step) {
  llvm::StringRef ext = llvm::sys::path::extension(output);
  std::string stem = output.substr(0, output.size() - ext.size());
  return stem + "-step" + std::to_string(step) + ".mlirbc";
}

bool readFile(const std::string &path, std::string &out) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

struct Args {
  std::string student, teacher, output, resume, log;
  std::string optimizer = "sgd", schedule = "net";
  std::string qatWeights = "per-channel", qatActivations = "asymmetric",
              qatScale = "float";
  std::vector<std::string> hints;
  bool noAugment = false, quiet = false, progressJson = false;
};

/// A number for a JSON line: null when it is not finite.
std::string jsonNumber(double v) {
  if (!std::isfinite(v))
    return "null";
  char text[32];
  snprintf(text, sizeof text, "%.6g", v);
  return text;
}

/// One --progress-json line: what a program following the training (the
/// studio's training job) reads after every step.
void printProgressJson(const qsim::train::TrainProgress &p) {
  printf("{\"step\":%lld,\"steps\":%lld,\"loss\":%s,\"distill\":%s,"
         "\"yolo\":%s,\"hint\":%s,\"lr\":%s,\"seconds\":%s,\"map\":%s}\n",
         (long long)p.step, (long long)p.steps, jsonNumber(p.loss).c_str(),
         jsonNumber(p.distill).c_str(), jsonNumber(p.yolo).c_str(),
         jsonNumber(p.hint).c_str(), jsonNumber(p.lr).c_str(),
         jsonNumber(p.seconds).c_str(),
         p.map ? jsonNumber(*p.map).c_str() : "null");
  fflush(stdout);
}

void addOptions(CLI::App &app, Args &a, qsim::train::TrainOptions &o) {
  app.add_option("student", a.student,
                 "The model to train (.mlirbc/.mlir): lightened, pruned, "
                 "factorized, with a precision plan, or quantized")
      ->required();
  app.add_option("--teacher", a.teacher,
                 "The original float model whose outputs the student learns")
      ->required();
  app.add_option("--images", o.images,
                 "Training images: a folder or a file (repeatable); labels "
                 "are not needed")
      ->required();
  app.add_option("--labels", o.labels,
                 "YOLO label files (<image stem>.txt: class x y w h) for the "
                 "Darknet YOLO loss, e.g. the image folder itself");
  app.add_option("--steps", o.steps, "Training steps (batches)")->required();
  app.add_option("--batch", o.batch, "Images per step")->capture_default_str();
  app.add_option("-o,--output", a.output, "The trained model (.mlirbc/.mlir)")
      ->required();
  app.add_option("--lr", o.lr, "Learning rate (default: [net] learning_rate)");
  app.add_option("--optimizer", a.optimizer, "sgd (with momentum) or adam")
      ->check(CLI::IsMember({"sgd", "adam"}))
      ->capture_default_str();
  app.add_option("--momentum", o.momentum, "SGD momentum (default: [net])");
  app.add_option("--decay", o.decay, "Weight decay (default: [net] decay)");
  app.add_option("--burn-in", o.burnIn,
                 "Warm-up steps (default: [net] burn_in scaled to --steps)");
  app.add_option("--schedule", a.schedule,
                 "net ([net] policy, steps and scales scaled to --steps), "
                 "constant, steps (x0.1 at 80 % and 90 %) or cosine")
      ->check(CLI::IsMember({"net", "constant", "steps", "cosine"}))
      ->capture_default_str();
  app.add_option("--freeze", o.freeze,
                 "Layers whose weights stay: 7, 0-12 (comma separated)")
      ->delimiter(',');
  app.add_option("--hint", a.hints,
                 "Feature hint A:B: student layer A learns teacher layer B "
                 "(a 1x1 adapter when the channels differ); repeatable");
  app.add_option("--distill-weight", o.distillWeight,
                 "Weight of the distillation loss on the heads")
      ->capture_default_str();
  app.add_option("--yolo-weight", o.yoloWeight,
                 "Weight of the YOLO loss on labelled images")
      ->capture_default_str();
  app.add_option("--hint-weight", o.hintWeight, "Weight of the feature hints")
      ->capture_default_str();
}

void addMoreOptions(CLI::App &app, Args &a, qsim::train::TrainOptions &o) {
  app.add_flag("--qat", o.qat,
               "Quantization-aware training of a float model with a "
               "precision plan and calibrated ranges: int8 layers as fake "
               "quantization on the grids --qsim-quantize will use");
  app.add_flag("--lsq", o.lsq,
               "With --qat: also learn the activation ranges (LSQ), written "
               "to qsim.calib");
  app.add_option("--qat-weights", a.qatWeights,
                 "The --qsim-quantize weights= to train for")
      ->check(CLI::IsMember({"per-channel", "per-tensor"}))
      ->capture_default_str();
  app.add_option("--qat-activations", a.qatActivations,
                 "The --qsim-quantize activations= to train for")
      ->check(CLI::IsMember({"asymmetric", "symmetric"}))
      ->capture_default_str();
  app.add_option("--qat-scale", a.qatScale,
                 "The --qsim-quantize scale= to train for")
      ->check(CLI::IsMember({"float", "pow2"}))
      ->capture_default_str();
  app.add_flag("--no-augment", a.noAugment,
               "No jitter, flip or colour distortion");
  app.add_option("--threads", o.threads, "Compute threads (0: all cores)")
      ->capture_default_str();
  app.add_option("--loader-threads", o.loaderThreads, "Image loading threads")
      ->capture_default_str();
  app.add_option("--seed", o.seed, "Seed of the data order and augmentation")
      ->capture_default_str();
  app.add_option("--checkpoint-every", o.checkpointEvery,
                 "Write <output>-step<N>.mlirbc (and .optim) every N steps");
  app.add_option("--resume", a.resume,
                 "Continue from a checkpoint of this training");
  app.add_option("--eval-images", o.evalImages,
                 "Labelled images for mAP@0.5 during training");
  app.add_option("--eval-labels", o.evalLabels,
                 "Their label folder (default: beside the images)");
  app.add_option("--eval-every", o.evalEvery,
                 "mAP every N steps and at the end");
  app.add_option("--log", a.log, "Write step,loss,...,mAP as CSV here");
  app.add_flag("-q,--quiet", a.quiet, "No progress bar");
  app.add_flag("--progress-json", a.progressJson,
               "Instead of the progress bar, one JSON line per step on "
               "stdout: {\"step\",\"steps\",\"loss\",\"distill\",\"yolo\","
               "\"hint\",\"lr\",\"seconds\",\"map\"} (non-finite numbers "
               "and no mAP as null)");
}

/// The choices CLI11 parsed as strings; the checks it cannot do.
std::string finishOptions(Args &a, qsim::train::TrainOptions &o) {
  using Options = qsim::train::TrainOptions;
  o.optimizer = a.optimizer == "adam" ? Options::Optimizer::Adam
                                      : Options::Optimizer::SGD;
  o.schedule = a.schedule == "constant" ? Options::Schedule::Constant
               : a.schedule == "steps"  ? Options::Schedule::Steps
               : a.schedule == "cosine" ? Options::Schedule::Cosine
                                        : Options::Schedule::Net;
  o.perChannelWeights = a.qatWeights == "per-channel";
  o.symmetricActivations = a.qatActivations == "symmetric";
  o.pow2Scales = a.qatScale == "pow2";
  o.augment = !a.noAugment;
  o.progressBar = !a.quiet && !a.progressJson;
  if (o.lsq && !o.qat)
    return "--lsq learns the ranges of quantization-aware training: add --qat";
  for (const std::string &h : a.hints) {
    std::pair<int64_t, int64_t> p;
    if (!parseHint(h, p))
      return "--hint " + h + ": expected STUDENT_LAYER:TEACHER_LAYER";
    o.hints.push_back(p);
  }
  llvm::StringRef dir = llvm::sys::path::parent_path(a.output);
  if (!dir.empty() && !llvm::sys::fs::is_directory(dir))
    return "cannot write '" + a.output + "': no directory '" + dir.str() + "'";
  return "";
}

/// A checkpoint of `original`'s training, and its optimizer state.
std::string checkResume(const Args &a, ModuleOp original, ModuleOp checkpoint,
                        qsim::train::TrainOptions &o) {
  if (!qsim::train::checkpointStep(checkpoint))
    return "'" + a.resume + "' is not a qsim-train checkpoint";
  o.resume = true;
  auto n1 = qsim::getLayers(qsim::getMainFunc(original));
  auto n2 = qsim::getLayers(qsim::getMainFunc(checkpoint));
  if (failed(n1) || failed(n2) || n1->size() != n2->size())
    return "'" + a.resume + "' is not a checkpoint of '" + a.student +
           "' (other layers)";
  if (!readFile(a.resume + ".optim", o.optimizerState))
    fprintf(stderr,
            "qsim-train: warning: no '%s.optim': the optimizer's momentum "
            "restarts from zero\n",
            a.resume.c_str());
  return "";
}

void printSummary(const qsim::train::TrainSummary &summary,
                  const qsim::train::TrainOptions &o) {
  double seconds = 0;
  for (const auto &p : summary.history)
    seconds += p.seconds;
  size_t n = summary.history.size();
  printf("schedule: %s\n", summary.schedule.c_str());
  printf("trained steps %lld-%lld of %lld%s in %.1f s (%.3f steps/s)\n",
         (long long)summary.firstStep + 1, (long long)summary.lastStep,
         (long long)o.steps, summary.stopped ? " (stopped)" : "", seconds,
         seconds > 0 ? n / seconds : 0.0);
  if (n)
    printf("loss: first %.6g, last %.6g\n", summary.history.front().loss,
           summary.history.back().loss);
  if (summary.mapBefore && summary.mapAfter)
    printf("mAP@0.5: before %.2f %%, after %.2f %%\n", *summary.mapBefore,
           *summary.mapAfter);
}

} // namespace

int main(int argc, char **argv) {
  // Before anything else: the interpreter's OpenMP workers (calibration,
  // evaluation, search) must not spin against other processes (issue 17).
  qsim::preferPassiveThreadWaits(argv);
  Args a;
  qsim::train::TrainOptions o;
  CLI::App app{
      "qsim-train: fine-tune a lightened or quantized model from the "
      "original (libtorch).\n"
      "\n"
      "  qsim-train pruned.mlirbc --teacher original.mlirbc --images "
      "coco128/ --steps 2000 --batch 8 -o tuned.mlirbc\n"
      "  qsim-train planned.mlirbc --teacher original.mlirbc --images imgs/ "
      "--qat --steps 500 -o qat.mlirbc   # then --qsim-quantize\n"
      "\n"
      "The student learns the teacher's detection heads (distillation; no "
      "labels needed), optionally feature hints, and with --labels the "
      "Darknet YOLO loss. Defaults (learning rate, warm-up, schedule, "
      "momentum, decay, augmentation) come from the cfg's [net] keys. The "
      "weights are written back into the model, nothing else changes; "
      "nothing is written on failure. Ctrl-C stops after the current step "
      "and writes what was trained (twice: stop at once). docs/training.md "
      "explains it all.\n",
      "qsim-train"};
  addOptions(app, a, o);
  addMoreOptions(app, a, o);
  CLI11_PARSE(app, argc, argv);
  std::string problem = finishOptions(a, o);
  if (!problem.empty())
    return fail(problem);

  DialectRegistry registry;
  qsim::registerQSimDialects(registry);
  MLIRContext ctx(registry);
  ctx.printOpOnDiagnostic(false);
  qsim::ToolDiagnostics diags(&ctx);
  auto load = [&](const std::string &path) {
    qsim::ModelLoadOptions lo;
    lo.path = path;
    return qsim::loadModel(&ctx, lo);
  };
  OwningOpRef<ModuleOp> student = load(a.resume.empty() ? a.student : a.resume);
  if (!student)
    return 1;
  OwningOpRef<ModuleOp> teacher = load(a.teacher);
  if (!teacher)
    return 1;
  o.studentName = a.resume.empty() ? a.student : a.resume;
  o.teacherName = a.teacher;
  if (!a.resume.empty()) {
    OwningOpRef<ModuleOp> original = load(a.student);
    if (!original)
      return 1;
    problem = checkResume(a, *original, *student, o);
    if (!problem.empty())
      return fail(problem);
  }

  std::unique_ptr<FILE, int (*)(FILE *)> log(nullptr, fclose);
  if (!a.log.empty()) {
    log.reset(fopen(a.log.c_str(), "w"));
    if (!log)
      return fail("cannot write '" + a.log + "'");
    fprintf(log.get(), "step,loss,distill,yolo,hint,lr,seconds,data,teacher,"
                       "forward,backward,map\n");
  }
  qsim::train::TrainCallbacks callbacks;
  callbacks.progress = [&](const qsim::train::TrainProgress &p) {
    if (a.progressJson)
      printProgressJson(p);
    if (!log)
      return;
    fprintf(log.get(),
            "%lld,%.6g,%.6g,%.6g,%.6g,%.6g,%.4f,%.4f,%.4f,%.4f,%.4f,%s\n",
            (long long)p.step, p.loss, p.distill, p.yolo, p.hint, p.lr,
            p.seconds, p.dataSeconds, p.teacherSeconds, p.forwardSeconds,
            p.backwardSeconds, p.map ? std::to_string(*p.map).c_str() : "");
    fflush(log.get());
  };
  callbacks.stop = [] { return signalsSeen.load() > 0; };
  callbacks.checkpoint = [&](ModuleOp m, int64_t step,
                             const std::string &state) -> LogicalResult {
    std::string path = checkpointPath(a.output, step), error;
    if (failed(qsim::saveModel(m, path, true, error)) ||
        !qsim::rt::writeFileAtomically(path + ".optim", state.data(),
                                       state.size(), error))
      return m.emitError() << "qsim-train: " << error;
    fprintf(stderr, "qsim-train: checkpoint %s\n", path.c_str());
    return success();
  };
  struct sigaction sa = {};
  sa.sa_handler = onSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  qsim::train::TrainSummary summary;
  if (failed(
          qsim::train::trainModule(*student, *teacher, o, callbacks, &summary)))
    return 1;
  std::string error;
  bool bytecode = !llvm::StringRef(a.output).ends_with(".mlir");
  if (failed(qsim::saveModel(*student, a.output, bytecode, error)))
    return fail(error);
  printSummary(summary, o);
  printf("wrote %s\n", a.output.c_str());
  return 0;
}
