//===- Sweep.cpp - a grid of configurations x shards, on a backend -------===//

#include "qsim/Evaluation/Sweep.h"
#include "qsim/Evaluation/ShardedRun.h"
#include "qsim/Support/FileUtils.h"
#include "qsim/Support/StringUtils.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"

#include <cctype>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <set>
#include <spawn.h>
#include <sys/wait.h>
#include <thread>

extern char **environ;

using namespace qsim;
using namespace qsim::eval;

namespace {

/// Task t evaluates configuration t / shards on shard t % shards.
struct TaskPaths {
  std::string part, model;
};

std::string configDir(const SweepOptions &o, size_t config) {
  return o.workDir + "/c" + std::to_string(config);
}

TaskPaths taskPaths(const SweepOptions &o, size_t task) {
  size_t config = task / o.shards, shard = task % o.shards;
  std::string dir = configDir(o, config);
  return {dir + "/part-" + std::to_string(shard) + ".json",
          shard == 0 ? dir + "/model.mlirbc" : ""};
}

/// A task is done when its part reads back (and shard 0 saved the model).
bool taskDone(const SweepOptions &o, size_t task) {
  TaskPaths p = taskPaths(o, task);
  RunPart part;
  std::string error;
  return readRunPart(p.part, part, error) &&
         (p.model.empty() || llvm::sys::fs::exists(p.model));
}

std::string shellQuote(const std::string &s) {
  std::string q = "'";
  for (char c : s)
    q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::vector<std::string> taskCommand(const SweepOptions &o, size_t task) {
  const SweepConfig &c = o.configs[task / o.shards];
  TaskPaths p = taskPaths(o, task);
  std::vector<std::string> cmd = {o.qsimRun, o.model};
  if (!o.weights.empty())
    cmd.insert(cmd.end(), {"--weights", o.weights});
  cmd.insert(cmd.end(),
             {"--image", o.images, "--eval", o.labels, "-q", "--shard",
              strprintf("%zu/%d", task % o.shards, o.shards), "--part-out",
              p.part});
  if (o.maxImages > 0)
    cmd.insert(cmd.end(), {"--max-images", std::to_string(o.maxImages)});
  if (o.threads > 0)
    cmd.insert(cmd.end(), {"--threads", std::to_string(o.threads)});
  if (!c.precision.empty())
    cmd.insert(cmd.end(), {"--precision", c.precision, "--calib", o.calib,
                           "--calib-images", std::to_string(o.calibImages),
                           "--calib-method", c.calibMethod});
  if (!p.model.empty())
    cmd.insert(cmd.end(), {"--save-model", p.model});
  cmd.insert(cmd.end(), o.runArgs.begin(), o.runArgs.end());
  return cmd;
}

/// tasks.sh: runs task $SLURM_ARRAY_TASK_ID (Slurm sets it; the local
/// backend too), so both backends run the very same commands.
std::string taskScript(const SweepOptions &o) {
  std::string s = "#!/bin/sh\n# Written by qsim-sweep: one qsim-run per "
                  "(configuration, shard).\ncase \"$SLURM_ARRAY_TASK_ID\" in\n";
  for (size_t t = 0; t < o.configs.size() * o.shards; ++t) {
    s += std::to_string(t) + ") exec";
    for (const std::string &arg : taskCommand(o, t))
      s += " " + shellQuote(arg);
    s += " ;;\n";
  }
  return s + "esac\necho \"qsim-sweep: no task $SLURM_ARRAY_TASK_ID\" >&2\n"
             "exit 2\n";
}

bool writeText(const std::string &path, const std::string &text,
               std::string &error) {
  return succeeded(writeFileAtomically(
      path,
      [&](llvm::raw_ostream &os) {
        os << text;
        return mlir::success();
      },
      error));
}

/// The work directory with its task script; a directory of another sweep
/// (another script) is refused rather than mixed.
bool prepareWorkDir(const SweepOptions &o, std::string &script,
                    std::string &error) {
  for (size_t c = 0; c < o.configs.size(); ++c)
    if (auto ec = llvm::sys::fs::create_directories(configDir(o, c))) {
      error = "cannot create '" + configDir(o, c) + "': " + ec.message();
      return false;
    }
  if (auto ec = llvm::sys::fs::create_directories(o.workDir + "/logs")) {
    error = "cannot create '" + o.workDir + "/logs': " + ec.message();
    return false;
  }
  script = o.workDir + "/tasks.sh";
  std::string text = taskScript(o);
  if (auto old = llvm::MemoryBuffer::getFile(script, /*IsText=*/true)) {
    if ((*old)->getBuffer() != text) {
      error = "'" + o.workDir +
              "' holds another sweep (its tasks.sh differs): use another "
              "--work directory, or remove it";
      return false;
    }
    return true;
  }
  return writeText(script, text, error);
}

//===----------------------------------------------------------------------===//
// Local backend: the tasks as child processes, `jobs` at a time.
//===----------------------------------------------------------------------===//

pid_t spawnTask(const std::string &script, size_t task,
                const std::string &logPath, std::string &error) {
  std::vector<std::string> env;
  for (char **e = environ; *e; ++e)
    if (!llvm::StringRef(*e).starts_with("SLURM_ARRAY_TASK_ID="))
      env.push_back(*e);
  env.push_back("SLURM_ARRAY_TASK_ID=" + std::to_string(task));
  std::vector<char *> envp, argv;
  for (std::string &e : env)
    envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string sh = "/bin/sh", scriptArg = script;
  argv = {sh.data(), scriptArg.data(), nullptr};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, logPath.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, sh.c_str(), &actions, nullptr, argv.data(),
                       envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    error =
        "cannot start task " + std::to_string(task) + ": " + std::strerror(rc);
    return -1;
  }
  return pid;
}

bool runLocalRound(const SweepOptions &o, const std::string &script,
                   const std::vector<size_t> &tasks, llvm::raw_ostream &log,
                   std::string &error) {
  std::map<pid_t, size_t> running;
  size_t next = 0;
  while (next < tasks.size() || !running.empty()) {
    while (next < tasks.size() && (int)running.size() < std::max(1, o.jobs)) {
      size_t t = tasks[next++];
      std::string logPath =
          o.workDir + "/logs/task-" + std::to_string(t) + ".log";
      pid_t pid = spawnTask(script, t, logPath, error);
      if (pid < 0)
        return false;
      running[pid] = t;
    }
    int status = 0;
    pid_t pid = waitpid(-1, &status, 0); // passive: until a child ends
    if (pid < 0)
      break;
    auto it = running.find(pid);
    if (it == running.end())
      continue;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      log << strprintf("qsim-sweep: task %zu failed (see %s/logs/task-%zu."
                       "log)\n",
                       it->second, o.workDir.c_str(), it->second);
    running.erase(it);
  }
  return true;
}

//===----------------------------------------------------------------------===//
// Slurm backend: one job array per round.
//===----------------------------------------------------------------------===//

/// Runs a Slurm command and returns its stdout; fails with its stderr.
bool runCommand(const std::string &name, const std::vector<std::string> &args,
                std::string &out, std::string &error) {
  auto program = llvm::sys::findProgramByName(name);
  if (!program) {
    error = name + " not found in PATH (is Slurm installed on this node?)";
    return false;
  }
  llvm::SmallString<128> outFile, errFile;
  llvm::sys::fs::createTemporaryFile("qsim-sweep", "out", outFile);
  llvm::sys::fs::createTemporaryFile("qsim-sweep", "err", errFile);
  std::vector<llvm::StringRef> argv = {*program};
  argv.insert(argv.end(), args.begin(), args.end());
  std::optional<llvm::StringRef> redirects[] = {std::nullopt, outFile.str(),
                                                errFile.str()};
  std::string message;
  int rc = llvm::sys::ExecuteAndWait(*program, argv, std::nullopt, redirects, 0,
                                     0, &message);
  auto readAll = [](llvm::StringRef path) {
    auto buf = llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
    return buf ? (*buf)->getBuffer().str() : std::string();
  };
  out = readAll(outFile);
  std::string err = readAll(errFile);
  llvm::sys::fs::remove(outFile);
  llvm::sys::fs::remove(errFile);
  if (rc != 0) {
    error = name + " failed (exit " + std::to_string(rc) +
            "): " + (err.empty() ? message : llvm::StringRef(err).trim().str());
    return false;
  }
  return true;
}

std::string arrayList(const std::vector<size_t> &tasks) {
  std::string s;
  for (size_t t : tasks)
    s += (s.empty() ? "" : ",") + std::to_string(t);
  return s;
}

bool submitArray(const SweepOptions &o, const std::string &script,
                 const std::vector<size_t> &tasks, std::string &jobId,
                 std::string &error) {
  const SlurmOptions &s = o.slurmOptions;
  std::vector<std::string> args = {
      "--parsable", "--array=" + arrayList(tasks), "--job-name=qsim-sweep",
      "--output=" + o.workDir + "/logs/slurm-%A_%a.log"};
  for (auto [value, flag] : {std::pair{&s.partition, "--partition="},
                             {&s.account, "--account="},
                             {&s.time, "--time="},
                             {&s.mem, "--mem="}})
    if (!value->empty())
      args.push_back(flag + *value);
  if (s.cpusPerTask > 0)
    args.push_back("--cpus-per-task=" + std::to_string(s.cpusPerTask));
  args.push_back(script);
  std::string out;
  if (!runCommand("sbatch", args, out, error))
    return false;
  // --parsable: "JOBID" or "JOBID;CLUSTER".
  jobId = llvm::StringRef(out).trim().split(';').first.str();
  if (jobId.empty() ||
      !llvm::all_of(jobId, [](char c) { return std::isdigit(c); })) {
    error = "sbatch printed no job id: '" + out + "'";
    return false;
  }
  return true;
}

/// Until squeue no longer lists the array (passive waits between polls).
bool waitForArray(const SweepOptions &o, const std::string &jobId,
                  std::string &error) {
  for (;;) {
    std::string out;
    if (!runCommand("squeue", {"-h", "-j", jobId, "-o", "%i %T"}, out, error)) {
      // A job purged from the controller's memory (MinJobAge) has ended.
      if (llvm::StringRef(error).contains("Invalid job id"))
        return true;
      return false;
    }
    if (llvm::StringRef(out).trim().empty())
      return true;
    std::this_thread::sleep_for(std::chrono::duration<double>(
        std::max(0.01, o.slurmOptions.pollSeconds)));
  }
}

/// The states of the array's tasks that did not complete, from sacct.
void logFailedStates(const std::string &jobId, llvm::raw_ostream &log) {
  std::string out, error;
  if (!runCommand("sacct", {"-n", "-P", "-X", "-j", jobId, "-o", "JobID,State"},
                  out, error)) {
    log << "qsim-sweep: " << error << "\n";
    return;
  }
  llvm::SmallVector<llvm::StringRef> lines;
  llvm::StringRef(out).split(lines, '\n', -1, false);
  for (llvm::StringRef line : lines) {
    auto [id, state] = line.trim().split('|');
    if (!state.starts_with("COMPLETED") && !state.empty())
      log << "qsim-sweep: job " << id << " " << state << "\n";
  }
}

bool runSlurmRound(const SweepOptions &o, const std::string &script,
                   const std::vector<size_t> &tasks, llvm::raw_ostream &log,
                   std::string &error) {
  std::string jobId;
  if (!submitArray(o, script, tasks, jobId, error))
    return false;
  log << "qsim-sweep: submitted job array " << jobId << " (" << tasks.size()
      << " tasks)\n";
  if (!waitForArray(o, jobId, error))
    return false;
  logFailedStates(jobId, log);
  return true;
}

std::vector<size_t> pendingTasks(const SweepOptions &o) {
  std::vector<size_t> pending;
  for (size_t t = 0; t < o.configs.size() * o.shards; ++t)
    if (!taskDone(o, t))
      pending.push_back(t);
  return pending;
}

bool mergeConfig(const SweepOptions &o, size_t config, SweepRow &row,
                 std::string &error) {
  std::vector<std::string> parts;
  for (int s = 0; s < o.shards; ++s)
    parts.push_back(taskPaths(o, config * o.shards + s).part);
  MergedRun merged;
  BatchResult batch;
  std::optional<MapReport> map;
  if (!mergeRunParts(parts, merged, error) ||
      !evaluateMergedRun(merged, o.labels, batch, map, error))
    return false;
  if (!map) {
    error = "the parts of configuration c" + std::to_string(config) +
            " hold no mAP candidates";
    return false;
  }
  row.config = o.configs[config];
  row.images = batch.images - batch.unreadable;
  row.map50 = map->result.map;
  row.map50to95 = map->map50to95;
  row.millisPerImage = row.images ? batch.forwardMillis / row.images : 0;
  uint64_t size = 0;
  llvm::sys::fs::file_size(taskPaths(o, config * o.shards).model, size);
  row.modelBytes = (int64_t)size;
  return true;
}

} // namespace

bool qsim::eval::runSweep(const SweepOptions &o, std::vector<SweepRow> &rows,
                          llvm::raw_ostream &log, std::string &error) {
  std::string script;
  if (!prepareWorkDir(o, script, error))
    return false;
  const size_t total = o.configs.size() * o.shards;
  std::vector<size_t> pending = pendingTasks(o);
  if (pending.size() < total)
    log << strprintf("qsim-sweep: %zu of %zu tasks already done (resuming)\n",
                     total - pending.size(), total);
  for (int round = 0; !pending.empty(); ++round) {
    if (round > o.retries) {
      error = strprintf("%zu task(s) still failing after %d retries: %s "
                        "(logs in %s/logs)",
                        pending.size(), o.retries, arrayList(pending).c_str(),
                        o.workDir.c_str());
      return false;
    }
    if (round > 0)
      log << "qsim-sweep: retrying task(s) " << arrayList(pending) << "\n";
    if (!(o.slurm ? runSlurmRound(o, script, pending, log, error)
                  : runLocalRound(o, script, pending, log, error)))
      return false;
    pending = pendingTasks(o);
  }
  rows.assign(o.configs.size(), SweepRow());
  for (size_t c = 0; c < o.configs.size(); ++c)
    if (!mergeConfig(o, c, rows[c], error))
      return false;
  markParetoFront(rows);
  return true;
}

void qsim::eval::markParetoFront(std::vector<SweepRow> &rows) {
  for (SweepRow &r : rows) {
    r.pareto = true;
    for (const SweepRow &q : rows) {
      bool asGood = q.map50 >= r.map50 &&
                    q.millisPerImage <= r.millisPerImage &&
                    q.modelBytes <= r.modelBytes;
      bool better = q.map50 > r.map50 || q.millisPerImage < r.millisPerImage ||
                    q.modelBytes < r.modelBytes;
      if (asGood && better) {
        r.pareto = false;
        break;
      }
    }
  }
}

void qsim::eval::printSweepTable(llvm::raw_ostream &os,
                                 const std::vector<SweepRow> &rows) {
  os << strprintf("%-7s %-28s %-10s %8s %11s %10s %10s  %s\n", "config",
                  "precision", "calib", "mAP@0.5", "mAP@.5:.95", "ms/image",
                  "size MB", "pareto");
  for (size_t i = 0; i < rows.size(); ++i) {
    const SweepRow &r = rows[i];
    os << strprintf(
        "c%-6zu %-28s %-10s %8.4f %11.4f %10.2f %10.3f  %s\n", i,
        r.config.precision.empty() ? "float" : r.config.precision.c_str(),
        r.config.precision.empty() ? "-" : r.config.calibMethod.c_str(),
        r.map50, r.map50to95, r.millisPerImage, r.modelBytes / 1e6,
        r.pareto ? "*" : "");
  }
  os << "pareto front (mAP@0.5 vs ms/image vs size):";
  for (size_t i = 0; i < rows.size(); ++i)
    if (rows[i].pareto)
      os << " c" << i;
  os << "\n";
}
