//===- SlurmExecutor.h - heavy studio jobs as Slurm batch jobs --*- C++ -*-===//
//
// With `qsim-studio --executor slurm`, a heavy job (every job kind whose
// child reads no stdin and whose stderr or stdout the studio follows:
// quantization, training) is not run as a local child: the local child is
// a supervisor (`qsim-studio --slurm-job ...`) that submits the job's
// command with sbatch, reports its Slurm state (PENDING: the browser shows
// it queued; RUNNING), forwards its output as it is written, whole lines,
// to the stream the studio follows (`--forward stderr|stdout`; Slurm puts
// both of the job's streams in one file, and a training's stderr lines
// reach its log through the studio's stdout reader as they would through
// the log file), and exits with its exit status. A stop is a local stop
// delivered on the node: `scancel --signal=TERM --full` once the job runs
// (qsim-train ends its step and writes a clean model; the job script traps
// TERM to outlive it and record the status), `scancel` while it is queued
// or when it outlives kSlurmJobStopSeconds. The job's limits travel with
// it: --time and --mem for Slurm, and the CPU-time and address-space limits
// applied on the node (ulimit) before the command runs. Step sessions and
// interactive children stay local. docs/scale-out.md.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_STUDIO_SLURMEXECUTOR_H
#define QSIM_STUDIO_SLURMEXECUTOR_H

#include "qsim/Studio/ProcessManager.h"

#include <optional>
#include <string>
#include <vector>

namespace qsim::studio {

/// How long a stopped job may take to end after its SIGTERM (a training
/// step, the poll) before the supervisor cancels it.
constexpr double kSlurmJobStopSeconds = 20;
/// The grace the studio gives a stopped supervisor before SIGKILL (which
/// would leave the job to Slurm): the job's time and a margin for scancel.
constexpr double kSlurmStopGraceSeconds = kSlurmJobStopSeconds + 10;

struct SlurmExecutorConfig {
  bool enabled = false;
  std::string partition, account;
  /// Seconds between two squeue polls of the supervisor.
  double pollSeconds = 2;
  /// The supervisor executable (qsim-studio itself).
  std::string supervisor;
};

/// The spec of the supervisor that runs `job` (its argv, working directory,
/// environment and limits) as a Slurm batch job whose script and output go
/// to `jobDirectory` (on a filesystem the nodes share). `threads`: CPUs per
/// task.
ProcessSpec slurmJobSpec(const SlurmExecutorConfig &config,
                         const ProcessSpec &job,
                         const std::string &jobDirectory, int threads);

/// The supervisor: `args` are what follows `--slurm-job` on its command
/// line. Returns its exit status (the job's).
int runSlurmJob(const std::vector<std::string> &args);

/// The Slurm state a supervisor's stderr line reports ("PENDING",
/// "RUNNING", ...), if it is such a line.
std::optional<std::string> slurmStateOfLine(const std::string &line);

} // namespace qsim::studio

#endif
