//===- qsim-sweep.cpp - configurations x shards on a backend -------------===//
//
// qsim-sweep MODEL --image DIR --eval LABELS --work DIR --precision P...
// --calib-method M... --shards N [--backend local|slurm]: the grid through
// lib/Evaluation/Sweep.h, then the table and the Pareto front. See
// docs/scale-out.md.
//
//===----------------------------------------------------------------------===//

#include "qsim/Evaluation/Sweep.h"
#include "qsim/Support/ThreadWaits.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"

#include <CLI/CLI.hpp>

using namespace qsim;

namespace {

struct Options {
  eval::SweepOptions sweep;
  std::vector<std::string> precisions = {"float"}, methods = {"minmax"};
  std::string backend = "local";
  double thresh = -1;
};

int fail(const std::string &msg) {
  fprintf(stderr, "qsim-sweep: error: %s\n", msg.c_str());
  return 1;
}

void addOptions(CLI::App &app, Options &o) {
  eval::SweepOptions &s = o.sweep;
  eval::SlurmOptions &slurm = s.slurmOptions;
  app.add_option("model", s.model, "Model: .mlirbc, .mlir or Darknet .cfg")
      ->required();
  app.add_option("--weights", s.weights, "Darknet .weights for a .cfg model");
  app.add_option("--image", s.images, "Directory of evaluation images")
      ->required();
  app.add_option("--eval", s.labels, "YOLO labels of the images")->required();
  app.add_option("--work", s.workDir,
                 "Work directory: parts, task script, logs (on a filesystem "
                 "every node sees, for Slurm); a rerun resumes from it")
      ->required();
  app.add_option("--precision", o.precisions,
                 "Precision plans to compare (qsim-run --precision), "
                 "\"float\" for the float model; repeatable")
      ->capture_default_str();
  app.add_option("--calib-method", o.methods,
                 "Calibration methods to compare (with each plan)")
      ->delimiter(',')
      ->check(CLI::IsMember({"minmax", "percentile", "entropy", "mse", "log2"}))
      ->capture_default_str();
  app.add_option("--calib", s.calib, "Calibration images for the plans");
  app.add_option("--calib-images", s.calibImages, "Calibrate on at most N")
      ->capture_default_str();
  app.add_option("--max-images", s.maxImages, "Evaluate at most N images");
  app.add_option("--thresh", o.thresh, "Confidence threshold of the summary");
  app.add_option("--shards", s.shards, "Shards per configuration")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--backend", o.backend, "local (processes) or slurm")
      ->check(CLI::IsMember({"local", "slurm"}))
      ->capture_default_str();
  app.add_option("--jobs", s.jobs, "local: tasks at once")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--threads", s.threads, "Threads per task (0: all cores)");
  app.add_option("--retries", s.retries,
                 "Rounds of resubmission of failed tasks")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--partition", slurm.partition, "slurm: partition");
  app.add_option("--account", slurm.account, "slurm: account");
  app.add_option("--time", slurm.time, "slurm: time limit per task");
  app.add_option("--mem", slurm.mem, "slurm: memory per task");
  app.add_option("--cpus-per-task", slurm.cpusPerTask, "slurm: CPUs per task");
  app.add_option("--poll", slurm.pollSeconds, "slurm: seconds between polls")
      ->capture_default_str();
  app.add_option("--qsim-run", s.qsimRun,
                 "qsim-run for the tasks (default: the one beside qsim-sweep)");
}

/// Absolute paths: tasks run elsewhere (Slurm nodes, other directories).
void makeAbsolute(std::string &path) {
  if (path.empty())
    return;
  llvm::SmallString<256> p(path);
  llvm::sys::fs::make_absolute(p);
  path = p.str().str();
}

/// The grid: every plan with every method (the float model once), the
/// paths absolute and qsim-run found.
std::string prepare(Options &o, const char *argv0) {
  eval::SweepOptions &s = o.sweep;
  for (const std::string &p : o.precisions) {
    if (p == "float") {
      s.configs.push_back({"", ""});
      continue;
    }
    for (const std::string &m : o.methods)
      s.configs.push_back({p, m});
  }
  bool plans = s.configs.size() > (size_t)llvm::count(o.precisions, "float");
  if (plans && s.calib.empty())
    return "precision plans need --calib DIR (calibration images)";
  if (o.thresh >= 0)
    s.runArgs = {"--thresh", std::to_string(o.thresh)};
  s.slurm = o.backend == "slurm";
  for (std::string *p :
       {&s.model, &s.weights, &s.images, &s.labels, &s.calib, &s.workDir})
    makeAbsolute(*p);
  if (s.qsimRun.empty()) {
    std::string self = llvm::sys::fs::getMainExecutable(
        argv0, reinterpret_cast<void *>(&fail));
    llvm::SmallString<256> beside(llvm::sys::path::parent_path(self));
    llvm::sys::path::append(beside, "qsim-run");
    s.qsimRun = llvm::sys::fs::can_execute(beside) ? beside.str().str() : "";
    if (s.qsimRun.empty()) {
      auto found = llvm::sys::findProgramByName("qsim-run");
      if (!found)
        return "qsim-run not found beside qsim-sweep nor in PATH "
               "(--qsim-run PATH)";
      s.qsimRun = *found;
    }
  }
  return "";
}

} // namespace

int main(int argc, char **argv) {
  // Before anything else: the interpreter's OpenMP workers (calibration,
  // evaluation, search) must not spin against other processes (issue 17).
  qsim::preferPassiveThreadWaits(argv);
  Options o;
  CLI::App app{"qsim-sweep: evaluate a grid of configurations in shards, on "
               "this machine or a Slurm cluster.\n\n"
               "  qsim-sweep m.cfg --weights m.weights --image val/ --eval "
               "val/ --calib calib/ \\\n"
               "    --precision float --precision int8=all --calib-method "
               "minmax,entropy \\\n"
               "    --shards 8 --work /shared/sweep1 --backend slurm "
               "--partition gpu\n",
               "qsim-sweep"};
  addOptions(app, o);
  CLI11_PARSE(app, argc, argv);
  if (std::string error = prepare(o, argv[0]); !error.empty())
    return fail(error);
  std::vector<eval::SweepRow> rows;
  std::string error;
  if (!eval::runSweep(o.sweep, rows, llvm::errs(), error))
    return fail(error);
  eval::printSweepTable(llvm::outs(), rows);
  return 0;
}
