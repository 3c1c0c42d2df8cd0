//===- Jobs.cpp - what every job kind shares ------------------------------===//

#include "Jobs.h"

#include "qsim/Studio/Accounts.h"

#include <cerrno>
#include <cstdio>
#include <unistd.h>

namespace qsim::studio {

ChildProcess spawnJob(StudioServer::Impl &s, int64_t id, int64_t userId,
                      ProcessSpec spec) {
  spec.logFile = s.logFileOf(id);
  spec.limits = s.config.jobLimits;
  spec.environment = s.childEnvironment();
  // --executor slurm: a batch job whose stderr (quantization) or stdout
  // (training) the studio follows (progress, and the supervisor's states on
  // that stream: queued until Slurm runs it, see slurmJobStateLine) becomes
  // a Slurm batch job. Interactive children (stdin) and the short imports
  // (neither) stay local.
  bool slurm = s.config.slurm.enabled && !spec.pipeStdin &&
               spec.pipeStderr != spec.pipeStdout;
  if (slurm)
    spec = slurmJobSpec(s.config.slurm, spec, s.logFileOf(id) + ".slurm",
                        s.config.childThreads);
  std::string error;
  auto child = s.processes.spawn(spec, error);
  if (!child) {
    s.db->finishJob(id, "failed", "", s.redact(error, userId));
    fail(500, "cannot start the job: " + error);
  }
  if (!slurm)
    s.db->setJobRunning(id, child->pid);
  {
    std::lock_guard<std::mutex> lock(s.liveMutex);
    s.runningJobs[id] = {child->pid, userId, slurm};
  }
  s.publishJob(id);
  return *child;
}

void finishJob(StudioServer::Impl &s, int64_t id, int64_t userId,
               const ExitStatus &exit, const ProcessLimits &limits,
               const json &result, std::string error) {
  {
    std::lock_guard<std::mutex> lock(s.liveMutex);
    s.runningJobs.erase(id);
  }
  std::string status = "done";
  if (exit.stoppedByServer) {
    status = "interrupted";
    error = "the server stopped while this job ran";
  } else if (exit.stoppedByUser) {
    status = "stopped";
    error = "stopped by the user";
  } else if (!exit.success() || !error.empty()) {
    status = "failed";
    std::string log = s.userVisibleLog(s.logFileOf(id), userId);
    if (!exit.success())
      error = "the process " + exit.describe(limits, log) +
              (error.empty() ? "" : ": " + error);
    if (!log.empty())
      error += "\n" + log.substr(log.size() > 1500 ? log.size() - 1500 : 0);
  }
  s.db->finishJob(id, status, result.is_null() ? "" : result.dump(),
                  s.redact(error, userId));
  s.publishJob(id);
}

bool slurmJobStateLine(StudioServer::Impl &s, int64_t id,
                       const std::string &line) {
  auto state = slurmStateOfLine(line);
  if (!state)
    return false;
  if (*state == "RUNNING") {
    pid_t pid = 0;
    {
      std::lock_guard<std::mutex> lock(s.liveMutex);
      auto it = s.runningJobs.find(id);
      if (it == s.runningJobs.end())
        return true;
      pid = it->second.pid;
    }
    s.db->setJobRunning(id, pid);
    s.publishJob(id);
  }
  return true;
}

PartialOutput::PartialOutput(const std::string &root, const std::string &rel)
    : root(root), rel(rel) {
  size_t slash = rel.rfind('/');
  std::string dir = slash == std::string::npos ? "" : rel.substr(0, slash + 1);
  std::string base = rel.substr(slash == std::string::npos ? 0 : slash + 1);
  partialRel = dir + ".partial-" + newToken().substr(0, 16) + "-" + base;
}

bool PartialOutput::commit() const {
  std::string from = root + "/" + partialRel, to = root + "/" + rel;
  if (rename(from.c_str(), to.c_str()) == 0)
    return true;
  unlink(from.c_str());
  return false;
}

void PartialOutput::discard() const {
  unlink((root + "/" + partialRel).c_str());
}

std::string precisionPlan(const json &plan) {
  static const char *const precisions[] = {"fp32", "fp16", "int8"};
  if (!plan.is_object())
    fail(400, "'plan' must be an object such as {\"default\":\"int8\","
              "\"fp32\":[0,15]}");
  std::string out;
  for (const char *p : precisions) {
    auto it = plan.find(p);
    if (it == plan.end() || it->empty())
      continue;
    if (!it->is_array())
      fail(400, std::string("plan.") + p + " must be a list of layer indices");
    std::string list;
    for (const json &layer : *it) {
      if (!layer.is_number_integer() || layer.get<int64_t>() < 0)
        fail(400,
             std::string("plan.") + p + " must be a list of layer indices");
      list += (list.empty() ? "" : ",") + std::to_string(layer.get<int64_t>());
    }
    out += std::string(p) + "=" + list + " ";
  }
  std::string def = plan.value("default", "int8");
  if (def != "fp32" && def != "fp16" && def != "int8")
    fail(400, "plan.default must be fp32, fp16 or int8");
  return out + "default=" + def;
}

bool LineReader::next(std::string &line, size_t maxBytes) {
  for (;;) {
    size_t nl = buffer.find('\n');
    if (nl != std::string::npos) {
      line = buffer.substr(0, nl);
      buffer.erase(0, nl + 1);
      return true;
    }
    if (buffer.size() > maxBytes)
      return false;
    char chunk[65536];
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    buffer.append(chunk, static_cast<size_t>(n));
  }
}

bool writeAll(int fd, const std::string &text) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

json jobToJson(const JobRecord &job) {
  json j = {{"id", job.id},
            {"kind", job.kind},
            {"status", job.status},
            {"error", job.error},
            {"created", job.createdAt},
            {"finished", job.finishedAt}};
  j["args"] = json::parse(job.args, nullptr, false);
  j["result"] = job.result.empty() ? json(nullptr)
                                   : json::parse(job.result, nullptr, false);
  return j;
}

json StudioServer::Impl::controlJob(const Caller &c, int64_t jobId,
                                    const std::string &action) {
  JobRecord job = ownJob(c, jobId);
  if (job.kind == "session")
    fail(400, "a step session is controlled through /api/sessions");
  pid_t pid;
  bool slurm;
  {
    std::lock_guard<std::mutex> lock(liveMutex);
    auto it = runningJobs.find(jobId);
    if (it == runningJobs.end())
      fail(409, "job " + std::to_string(jobId) + " is not running (" +
                    job.status + ")");
    pid = it->second.pid;
    slurm = it->second.slurm;
    if (slurm && action != "stop")
      fail(409, "job " + std::to_string(jobId) +
                    " runs on Slurm: it can be stopped, not paused");
  }
  if (action == "stop")
    processes.stop(pid, slurm ? kSlurmStopGraceSeconds : 2);
  else if (action == "pause")
    processes.pause(pid);
  else
    processes.resume(pid);
  events.publish(
      c.userId, "job",
      json{{"id", jobId}, {"status", job.status}, {"action", action}}.dump());
  return {{"job", jobId}, {"action", action}};
}

void StudioServer::Impl::stopAllChildren(StopReason why) {
  std::vector<pid_t> pids;
  {
    std::lock_guard<std::mutex> lock(liveMutex);
    for (auto &[id, s] : sessions)
      pids.push_back(s->pid);
    for (auto &[id, job] : runningJobs)
      pids.push_back(job.pid);
  }
  for (pid_t pid : pids)
    processes.stop(pid, 2, why == StopReason::Server);
}

} // namespace qsim::studio
