//===- SlurmExecutor.cpp - heavy studio jobs as Slurm batch jobs ----------===//

#include "qsim/Studio/SlurmExecutor.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

namespace qsim::studio {
namespace {

constexpr const char *kStatePrefix = "slurm: job ";

std::string shellQuote(const std::string &s) {
  std::string q = "'";
  for (char c : s)
    q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

volatile sig_atomic_t cancelRequested = 0;
void onCancel(int) { cancelRequested = 1; }

/// Runs a Slurm client command; its stdout in `out`, its stderr in `err`.
bool runSlurmCommand(const std::vector<std::string> &argv,
                     const std::string &scratch, std::string &out,
                     std::string &err) {
  std::string outPath = scratch + ".out", errPath = scratch + ".err";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, outPath.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, errPath.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char *> args;
  for (const std::string &a : argv)
    args.push_back(const_cast<char *>(a.c_str()));
  args.push_back(nullptr);
  // In a process group of its own: a stop signals the supervisor's group,
  // and an sbatch killed halfway would leave a job it cannot name.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  pid_t pid;
  int rc = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    err = argv[0] + ": " + std::strerror(rc) + " (is Slurm installed here?)";
    return false;
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  auto slurp = [](const std::string &p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  out = slurp(outPath);
  err = slurp(errPath);
  unlink(outPath.c_str());
  unlink(errPath.c_str());
  while (!err.empty() && (err.back() == '\n' || err.back() == ' '))
    err.pop_back();
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

std::string trimmed(std::string s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  size_t e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

/// Sleeps up to `seconds`; a stop request (SIGTERM) ends it early.
void waitSeconds(double seconds) {
  timespec ts{(time_t)seconds, (long)((seconds - std::floor(seconds)) * 1e9)};
  nanosleep(&ts, nullptr);
}

/// What the supervisor is asked: `--dir D --partition P ... -- ARGV...`.
struct SlurmJobRequest {
  std::string dir, chdir, partition, account;
  long minutes = 0, memMiB = 0, cpuSeconds = 0, addressKiB = 0;
  int cpus = 0;
  double poll = 2;
  /// Where the job's output and the state lines go: the stream the studio
  /// follows (stderr for quantization, stdout for training).
  bool toStdout = false;
  std::vector<std::string> argv;
};

bool parseRequest(const std::vector<std::string> &args, SlurmJobRequest &r) {
  size_t i = 0;
  for (; i + 1 < args.size() && args[i] != "--"; i += 2) {
    const std::string &k = args[i], &v = args[i + 1];
    if (k == "--dir")
      r.dir = v;
    else if (k == "--chdir")
      r.chdir = v;
    else if (k == "--partition")
      r.partition = v;
    else if (k == "--account")
      r.account = v;
    else if (k == "--minutes")
      r.minutes = std::atol(v.c_str());
    else if (k == "--mem-mb")
      r.memMiB = std::atol(v.c_str());
    else if (k == "--cpu-seconds")
      r.cpuSeconds = std::atol(v.c_str());
    else if (k == "--address-kb")
      r.addressKiB = std::atol(v.c_str());
    else if (k == "--cpus")
      r.cpus = std::atoi(v.c_str());
    else if (k == "--poll")
      r.poll = std::atof(v.c_str());
    else if (k == "--forward" && (v == "stdout" || v == "stderr"))
      r.toStdout = v == "stdout";
    else
      return false;
  }
  if (i >= args.size() || args[i] != "--" || r.dir.empty())
    return false;
  r.argv.assign(args.begin() + i + 1, args.end());
  return !r.argv.empty();
}

/// job.sh: the limits, the command, and its exit status in `exit-code`
/// (decided by the job, not by Slurm's accounting, which may be absent).
/// The shell survives a stop's SIGTERM (`scancel --signal=TERM --full`
/// signals it with the command): it waits for the command, which ends as
/// it does on a local stop (qsim-train after its step, with a clean model),
/// and still writes its status.
std::string jobScript(const SlurmJobRequest &r) {
  std::string s = "#!/bin/sh\n# Written by qsim-studio: one studio job.\n"
                  "trap : TERM\n";
  if (r.cpuSeconds > 0)
    s += "ulimit -t " + std::to_string(r.cpuSeconds) + "\n";
  if (r.addressKiB > 0)
    s += "ulimit -v " + std::to_string(r.addressKiB) + "\n";
  if (!r.chdir.empty())
    s += "cd " + shellQuote(r.chdir) + " || exit 125\n";
  for (const std::string &a : r.argv)
    s += shellQuote(a) + " ";
  std::string code = shellQuote(r.dir + "/exit-code");
  return s + "\nrc=$?\necho $rc > " + shellQuote(r.dir + "/exit-code.tmp") +
         " && mv " + shellQuote(r.dir + "/exit-code.tmp") + " " + code +
         "\nexit $rc\n";
}

bool submit(const SlurmJobRequest &r, std::string &jobId) {
  std::vector<std::string> argv = {
      "sbatch", "--parsable", "--job-name=qsim-studio",
      "--output=" + r.dir + "/output.log", "--open-mode=append"};
  if (!r.partition.empty())
    argv.push_back("--partition=" + r.partition);
  if (!r.account.empty())
    argv.push_back("--account=" + r.account);
  if (r.minutes > 0)
    argv.push_back("--time=" + std::to_string(r.minutes));
  if (r.memMiB > 0)
    argv.push_back("--mem=" + std::to_string(r.memMiB) + "M");
  if (r.cpus > 0)
    argv.push_back("--cpus-per-task=" + std::to_string(r.cpus));
  argv.push_back(r.dir + "/job.sh");
  std::string out, err;
  if (!runSlurmCommand(argv, r.dir + "/sbatch", out, err)) {
    fprintf(stderr, "slurm: sbatch failed: %s\n", err.c_str());
    return false;
  }
  jobId = trimmed(out.substr(0, out.find(';')));
  if (jobId.empty() ||
      jobId.find_first_not_of("0123456789") != std::string::npos) {
    fprintf(stderr, "slurm: sbatch printed no job id: '%s'\n", out.c_str());
    return false;
  }
  return true;
}

/// The job's state, or "" once squeue no longer lists it.
bool queryState(const SlurmJobRequest &r, const std::string &id,
                std::string &state) {
  std::string out, err;
  if (!runSlurmCommand({"squeue", "-h", "-j", id, "-o", "%T"},
                       r.dir + "/squeue", out, err)) {
    if (err.find("Invalid job id") != std::string::npos) {
      state.clear(); // purged from the controller: it has ended
      return true;
    }
    fprintf(stderr, "slurm: squeue failed: %s\n", err.c_str());
    return false;
  }
  state = trimmed(out);
  return true;
}

/// Copies the whole lines the job has written since `offset` to `to` (all
/// of it when `all`): a state line never cuts one of the job's lines.
void forwardOutput(const std::string &path, off_t &offset, FILE *to,
                   bool all = false) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0)
    return;
  std::string text;
  char buf[65536];
  ssize_t n;
  while ((n = pread(fd, buf, sizeof buf, offset + (off_t)text.size())) > 0)
    text.append(buf, (size_t)n);
  close(fd);
  size_t end = all ? text.size() : text.rfind('\n') + 1; // npos + 1 == 0
  fwrite(text.data(), 1, end, to);
  fflush(to);
  offset += (off_t)end;
}

double monotonicSeconds() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/// Follows job `id` until it leaves the queue, or until a stop has ended it.
/// A stop is a local stop's SIGTERM delivered on the node (the job ends as
/// it would locally, with its own status) once the job runs; a job still
/// queued, or one that outlives kSlurmJobStopSeconds, is cancelled.
int follow(const SlurmJobRequest &r, const std::string &id) {
  FILE *to = r.toStdout ? stdout : stderr;
  std::string last, output = r.dir + "/output.log";
  std::string exitCode = r.dir + "/exit-code";
  off_t forwarded = 0;
  double stopDeadline = 0, nextQuery = 0;
  for (;;) {
    forwardOutput(output, forwarded, to);
    if (cancelRequested && stopDeadline == 0 && last == "RUNNING") {
      std::string out, err;
      runSlurmCommand({"scancel", "--signal=TERM", "--full", id},
                      r.dir + "/scancel", out, err);
      fprintf(to, "%s%s signalled (SIGTERM): stopping\n", kStatePrefix,
              id.c_str());
      fflush(to);
      stopDeadline = monotonicSeconds() + kSlurmJobStopSeconds;
    }
    if (cancelRequested &&
        (stopDeadline == 0 || monotonicSeconds() > stopDeadline)) {
      std::string out, err;
      runSlurmCommand({"scancel", id}, r.dir + "/scancel", out, err);
      forwardOutput(output, forwarded, to, true);
      fprintf(to, "%s%s CANCELLED (stopped)\n", kStatePrefix, id.c_str());
      return 128 + SIGTERM;
    }
    // Stopping: done as soon as the job has written its status.
    if (stopDeadline != 0 && access(exitCode.c_str(), F_OK) == 0)
      break;
    if (monotonicSeconds() >= nextQuery) {
      std::string state;
      if (!queryState(r, id, state))
        return 1;
      if (state.empty())
        break;
      if (state != last)
        fprintf(to, "%s%s %s\n", kStatePrefix, id.c_str(), state.c_str());
      fflush(to);
      last = state;
      nextQuery = monotonicSeconds() + r.poll;
    }
    waitSeconds(stopDeadline != 0 ? std::min(r.poll, 0.1) : r.poll);
  }
  forwardOutput(output, forwarded, to, true);
  std::ifstream code(exitCode);
  int rc;
  if (code >> rc)
    return rc;
  // Ended without running to its end: killed, timed out, cancelled.
  std::string out, err;
  runSlurmCommand({"sacct", "-n", "-P", "-X", "-j", id, "-o", "State"},
                  r.dir + "/sacct", out, err);
  fprintf(to, "%s%s ended without an exit status (%s)\n", kStatePrefix,
          id.c_str(),
          trimmed(out).empty() ? "state unknown" : trimmed(out).c_str());
  return 1;
}

} // namespace

ProcessSpec slurmJobSpec(const SlurmExecutorConfig &config,
                         const ProcessSpec &job,
                         const std::string &jobDirectory, int threads) {
  ProcessSpec s = job;
  const ProcessLimits &l = job.limits;
  s.argv = {config.supervisor,
            "--slurm-job",
            "--dir",
            jobDirectory,
            "--chdir",
            job.workingDirectory,
            "--partition",
            config.partition,
            "--account",
            config.account,
            "--minutes",
            std::to_string((long)std::ceil(l.wallSeconds / 60)),
            "--mem-mb",
            std::to_string((long)std::ceil(l.memoryMiB)),
            "--cpu-seconds",
            std::to_string((long)std::ceil(l.cpuSeconds)),
            "--address-kb",
            std::to_string((long)std::ceil(l.memoryMiB * 1024)),
            "--cpus",
            std::to_string(threads),
            "--poll",
            std::to_string(config.pollSeconds),
            "--forward",
            job.pipeStdout ? "stdout" : "stderr",
            "--"};
  s.argv.insert(s.argv.end(), job.argv.begin(), job.argv.end());
  // The supervisor waits; the job's limits are Slurm's and the node's. Its
  // own wall clock allows for the time in the queue.
  s.limits.wallSeconds = l.wallSeconds * 4 + 600;
  return s;
}

int runSlurmJob(const std::vector<std::string> &args) {
  SlurmJobRequest r;
  if (!parseRequest(args, r)) {
    fprintf(stderr, "usage: qsim-studio --slurm-job --dir DIR [--chdir D] "
                    "[--partition P] [--account A] [--minutes N] [--mem-mb N] "
                    "[--cpu-seconds N] [--address-kb N] [--cpus N] [--poll S] "
                    "[--forward stdout|stderr] -- COMMAND...\n");
    return 2;
  }
  struct sigaction sa = {};
  sa.sa_handler = onCancel;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigprocmask(SIG_UNBLOCK, &stop, nullptr); // a studio blocks them
  mkdir(r.dir.c_str(), 0755);
  unlink((r.dir + "/exit-code").c_str());
  {
    std::ofstream script(r.dir + "/job.sh");
    script << jobScript(r);
    if (!script) {
      fprintf(stderr, "slurm: cannot write %s/job.sh\n", r.dir.c_str());
      return 1;
    }
  }
  std::string id;
  if (!submit(r, id))
    return 1;
  fprintf(r.toStdout ? stdout : stderr, "%s%s SUBMITTED\n", kStatePrefix,
          id.c_str());
  fflush(r.toStdout ? stdout : stderr);
  return follow(r, id);
}

std::optional<std::string> slurmStateOfLine(const std::string &line) {
  size_t n = std::strlen(kStatePrefix);
  if (line.compare(0, n, kStatePrefix) != 0)
    return std::nullopt;
  size_t space = line.find(' ', n);
  if (space == std::string::npos ||
      line.find_first_not_of("0123456789", n) != space)
    return std::nullopt;
  std::string state = line.substr(space + 1);
  if (state.empty() || state.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ_") !=
                           std::string::npos)
    return std::nullopt;
  return state;
}

} // namespace qsim::studio
