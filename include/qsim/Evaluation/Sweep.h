//===- Sweep.h - a grid of configurations x shards, on a backend -*- C++
//-*-===//
//
// qsim-sweep: every configuration (a precision plan, a calibration method)
// is evaluated in shards by `qsim-run --shard K/N` tasks, run as processes
// on this machine (`local`) or as one Slurm job array (`slurm`: sbatch
// --array, waited for with squeue, task states from sacct, failed tasks
// resubmitted); the parts are merged (ShardedRun.h) into each
// configuration's mAP, forward time and size, and the Pareto front of the
// three. A task whose part is already written is not run again, so an
// interrupted sweep resumes. See docs/scale-out.md.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_EVALUATION_SWEEP_H
#define QSIM_EVALUATION_SWEEP_H

#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <string>
#include <vector>

namespace qsim::eval {

struct SweepConfig {
  std::string precision;   // qsim-run --precision, "" for the float model
  std::string calibMethod; // with a precision plan
};

struct SlurmOptions {
  std::string partition, account, time, mem;
  int cpusPerTask = 0;
  /// Seconds between two squeue polls.
  double pollSeconds = 10;
};

struct SweepOptions {
  std::string model, weights, images, labels, calib;
  int calibImages = 100, maxImages = 0;
  /// Passed to every qsim-run task (e.g. --thresh 0.25).
  std::vector<std::string> runArgs;
  std::vector<SweepConfig> configs;
  int shards = 1;
  /// Parts, task script and logs (a shared filesystem for Slurm).
  std::string workDir;
  /// The qsim-run the tasks execute.
  std::string qsimRun;
  bool slurm = false;
  SlurmOptions slurmOptions;
  /// Local backend: tasks at once; threads per task (0: qsim-run's default).
  int jobs = 1, threads = 0;
  /// Rounds of resubmission of failed tasks.
  int retries = 2;
};

struct SweepRow {
  SweepConfig config;
  size_t images = 0;
  double map50 = 0, map50to95 = 0;
  double millisPerImage = 0;
  int64_t modelBytes = 0;
  bool pareto = false;
};

/// Runs the sweep's missing tasks and merges every configuration. `log`
/// tells what is submitted, retried and resumed.
bool runSweep(const SweepOptions &options, std::vector<SweepRow> &rows,
              llvm::raw_ostream &log, std::string &error);

/// Marks the rows no other row beats on mAP@0.5, time per image and model
/// size at once (at least as good on all three, better on one).
void markParetoFront(std::vector<SweepRow> &rows);

/// The table, one row per configuration, the Pareto front starred.
void printSweepTable(llvm::raw_ostream &os, const std::vector<SweepRow> &rows);

} // namespace qsim::eval

#endif
