//===- Jobs.h - what every job kind shares ----------------------*- C++ -*-===//
//
// A job is a row in the database and a child process under the job limits,
// holding one of its user's child slots; a detached thread follows the
// child and records its end (finishJob). The kinds started through
// POST /api/jobs/<kind> are listed in kJobKinds: a new kind is one more
// entry and one more file like InferenceJob.cpp or TrainJob.cpp.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_LIB_STUDIO_JOBS_H
#define QSIM_LIB_STUDIO_JOBS_H

#include "Api.h"

#include "qsim/Studio/SlurmExecutor.h"

namespace qsim::studio {

struct JobKind {
  const char *name;
  json (StudioServer::Impl::*start)(const Caller &, const json &body);
};

inline const JobKind kJobKinds[] = {
    {"inference", &StudioServer::Impl::startInference},
    {"quantize", &StudioServer::Impl::startQuantize},
    {"train", &StudioServer::Impl::startTrain},
};

/// Spawns a job's child, records it running and publishes it; 500 (and the
/// job failed) when it cannot start.
ChildProcess spawnJob(StudioServer::Impl &s, int64_t id, int64_t userId,
                      ProcessSpec spec);

/// A line of a Slurm job's supervisor (SlurmExecutor.h) on the stream the
/// studio follows (stderr, stdout for training): the job becomes running
/// (it was queued) when Slurm runs it.
/// False when the line is not the supervisor's.
bool slurmJobStateLine(StudioServer::Impl &s, int64_t id,
                       const std::string &line);

/// The common end of a job: its exit (stopped by the user, interrupted by
/// the server going down, failed with the reason, or done), recorded and
/// published.
void finishJob(StudioServer::Impl &s, int64_t id, int64_t userId,
               const ExitStatus &exit, const ProcessLimits &limits,
               const json &result, std::string error);

/// A model a child writes: first under a hidden name next to its
/// destination, renamed into place only when the job succeeded, so that a
/// stopped or failed job leaves no partial model behind.
class PartialOutput {
public:
  PartialOutput(const std::string &root, const std::string &rel);
  const std::string &partial() const { return partialRel; }
  /// Renames into place; false (and removed) when it cannot.
  bool commit() const;
  void discard() const;

private:
  std::string root, rel, partialRel;
};

/// {"default":"int8","fp32":[0,15],"fp16":[3]} as --qsim-assign-precision's
/// options "fp32=0,15 fp16=3 default=int8"; only numbers and known names
/// reach the command line.
std::string precisionPlan(const json &plan);

/// The arguments of a `qsim-run --session` child (inference jobs and step
/// sessions) confined to the workspace `root`.
std::vector<std::string> sessionArgv(StudioServer::Impl &s,
                                     const std::string &root);
/// The session's `load` request from a request body (model, image, mode,
/// plan, calibration), every path checked and the image's size too.
json loadRequest(StudioServer::Impl &s, Workspace &ws, const json &body);

/// Reads newline-terminated lines from a child's pipe.
class LineReader {
public:
  explicit LineReader(int fd) : fd(fd) {}
  /// False at end of input, on error, or past maxBytes without a newline.
  bool next(std::string &line, size_t maxBytes = 64u << 20);

private:
  int fd;
  std::string buffer;
};

/// Writes all of text to a pipe; false when the reader has gone.
bool writeAll(int fd, const std::string &text);

} // namespace qsim::studio

#endif
