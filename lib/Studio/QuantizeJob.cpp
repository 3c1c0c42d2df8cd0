//===- QuantizeJob.cpp - qsim-opt's calibration and quantization ----------===//
//
// `qsim-opt --qsim-fold-batchnorm --qsim-calibrate --qsim-assign-precision
// --qsim-quantize` writes the model under a hidden name (PartialOutput);
// its "calibrating: 3/50" lines become progress events; once it succeeded,
// the per-layer report (--qsim-print-stats) is written next to the model and
// both are put into place.
//
//===----------------------------------------------------------------------===//

#include "Jobs.h"

#include <fstream>
#include <unistd.h>

namespace qsim::studio {

namespace {

/// The quantization plan of the request: "default=int8", a preset, or a
/// mixed plan.
std::string planOf(const json &body, std::string &mode) {
  mode = body.value("mode", "int8");
  if (mode == "int8")
    return "default=int8";
  if (mode == "hybrid")
    return "preset=hybrid";
  if (mode == "fp16")
    return "preset=fp16";
  if (mode == "mixed")
    return precisionPlan(body.value("plan", json::object()));
  fail(400, "'mode' must be int8, hybrid, fp16 or mixed");
}

/// Follows the child's stderr: the log, and progress events.
void followProgress(StudioServer::Impl &s, int64_t id, int64_t user, int fd) {
  std::ofstream log(s.logFileOf(id), std::ios::app);
  LineReader lines(fd);
  std::string line;
  while (lines.next(line, 1 << 20)) {
    log << line << "\n";
    log.flush();
    if (slurmJobStateLine(s, id, line))
      continue;
    size_t colon = line.find(": "), slash = line.find('/');
    if (colon == std::string::npos || slash == std::string::npos ||
        slash < colon)
      continue;
    long done = std::strtol(line.c_str() + colon + 2, nullptr, 10);
    long total = std::strtol(line.c_str() + slash + 1, nullptr, 10);
    if (total > 0)
      s.events.publish(user, "progress",
                       json{{"job", id},
                            {"done", done},
                            {"total", total},
                            {"what", line.substr(0, colon)}}
                           .dump());
  }
  close(fd);
}

/// The report of the quantized (partial) model; true when written.
bool writeReport(StudioServer::Impl &s, const std::string &root,
                 const std::string &model, const std::string &reportRel) {
  ProcessSpec spec;
  std::string reportPath = root + "/" + reportRel;
  std::string tmp = root + "/" + PartialOutput(root, reportRel).partial();
  spec.argv = {s.config.qsimOpt, model, "--qsim-print-stats", "-o",
               "/dev/null"};
  spec.workingDirectory = root;
  spec.limits = s.config.jobLimits;
  spec.logFile = tmp;
  spec.environment = s.childEnvironment();
  unlink(tmp.c_str());
  std::string error;
  auto child = s.processes.spawn(spec, error);
  if (child && s.processes.wait(child->pid).success() &&
      rename(tmp.c_str(), reportPath.c_str()) == 0)
    return true;
  unlink(tmp.c_str());
  return false;
}

} // namespace

json StudioServer::Impl::startQuantize(const Caller &c, const json &body) {
  Workspace ws = workspaceOf(c.userId);
  std::string model = workspacePath(ws, body, "model", true, "model");
  std::string calib = workspacePath(ws, body, "calib", true);
  std::string output = optionalString(body, "output");
  if (output.empty())
    output = model.substr(0, model.rfind('.')) + "-quantized.mlirbc";
  checkedPath(ws, output, "output", false, "model");
  std::string method = body.value("method", "minmax");
  if (method != "minmax" && method != "percentile" && method != "entropy" &&
      method != "mse" && method != "log2")
    fail(400, "'method' must be minmax, percentile, entropy, mse or log2");
  int images = boundedInt(body, "calib_images", 50, 1, 1000);
  std::string mode, plan = planOf(body, mode);
  requireQuota(c.userId);
  ChildSlot slot = slots.acquire(c.userId);
  std::string report = output.substr(0, output.rfind('.')) + "-report.txt";
  json args = {{"model", model},         {"calib", calib},  {"output", output},
               {"method", method},       {"mode", mode},    {"plan", plan},
               {"calib_images", images}, {"report", report}};
  int64_t id = db->createJob(c.userId, "quantize", args.dump());
  PartialOutput out(ws.directory(), output);
  std::string error;
  ws.makeParents(ws.directory() + "/" + output, error);
  ProcessSpec spec;
  spec.argv = {config.qsimOpt,
               model,
               "--qsim-fold-batchnorm",
               "--qsim-calibrate=images=" + calib + " max-images=" +
                   std::to_string(images) + " method=" + method +
                   " progress threads=" + std::to_string(config.childThreads),
               "--qsim-assign-precision=" + plan,
               "--qsim-quantize",
               "-o",
               out.partial()};
  spec.workingDirectory = ws.directory();
  spec.pipeStderr = true;
  ChildProcess child = spawnJob(*this, id, c.userId, spec);
  int64_t user = c.userId;
  std::string root = ws.directory();
  runDetached([this, id, user, child, args, root, out, report, slot] {
    followProgress(*this, id, user, child.stderrFd);
    ExitStatus exit = processes.wait(child.pid);
    json result = nullptr;
    std::string error;
    if (exit.success()) {
      if (writeReport(*this, root, out.partial(), report) && out.commit()) {
        db->recordModel(user, args["output"],
                        "quantized from " + args["model"].get<std::string>());
        result = {{"model", args["output"]}, {"report", report}};
      } else {
        error = "the report could not be written";
      }
    }
    if (result.is_null())
      out.discard();
    finishJob(*this, id, user, exit, config.jobLimits, result, error);
  });
  return {{"job", id}};
}

} // namespace qsim::studio
