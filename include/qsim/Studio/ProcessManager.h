//===- ProcessManager.h - limited, monitored child processes ----*- C++ -*-===//
//
// Every inference, quantization and step session of qsim-studio is a child
// process (qsim-run, qsim-opt, qsim-translate) with CPU-time and address-
// space limits (setrlimit) and a wall-clock deadline enforced here. Children
// are forked by one long-lived thread with PR_SET_PDEATHSIG, so that when the
// server dies, however it dies, its children die with it: a restart finds no
// orphans. Each child leads its own process group; stop/pause/resume signal
// the group.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_STUDIO_PROCESSMANAGER_H
#define QSIM_STUDIO_PROCESSMANAGER_H

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <sys/types.h>
#include <thread>
#include <vector>

namespace qsim::studio {

struct ProcessLimits {
  double cpuSeconds = 600;  // RLIMIT_CPU (SIGXCPU, then SIGKILL)
  double memoryMiB = 4096;  // RLIMIT_AS
  double wallSeconds = 900; // killed by the manager
};

struct ProcessSpec {
  std::vector<std::string> argv; // argv[0] is the executable's path
  std::string workingDirectory;
  std::vector<std::pair<std::string, std::string>> environment; // additions
  ProcessLimits limits;
  bool pipeStdin = false;
  bool pipeStdout = false; // else appended to logFile
  bool pipeStderr = false; // else appended to logFile
  std::string logFile;     // "" : /dev/null
};

struct ChildProcess {
  pid_t pid = -1;
  int stdinFd = -1, stdoutFd = -1, stderrFd = -1; // owned by the caller
};

struct ExitStatus {
  bool exited = false; // normal exit (else a signal)
  int code = 0;
  int signal = 0;
  double cpuSeconds = 0;
  bool wallLimit = false; // killed by the manager at its deadline
  bool stoppedByUser = false;
  bool stoppedByServer = false; // the server stopped it while going down
  bool stopped() const { return stoppedByUser || stoppedByServer; }
  bool success() const { return exited && code == 0 && !stopped(); }
  /// "finished", "exited with status 1", "exceeded its CPU-time limit of 10
  /// s", "crashed (signal 11, Segmentation fault)", ...
  std::string describe(const ProcessLimits &limits,
                       const std::string &logTail = "") const;
};

class ProcessManager {
public:
  ProcessManager();
  /// Kills every child still running.
  ~ProcessManager();

  std::optional<ChildProcess> spawn(const ProcessSpec &spec,
                                    std::string &error);
  /// Blocks until the child has ended and been reaped.
  ExitStatus wait(pid_t pid);
  /// Calls fn (on the manager's thread: it must not block) once the child
  /// has ended, in place of wait().
  void whenEnded(pid_t pid, std::function<void(const ExitStatus &)> fn);
  /// Stop asked for by the user, or by the server going down:
  /// SIGTERM, SIGKILL `graceSeconds` later.
  void stop(pid_t pid, double graceSeconds = 2, bool serverShutdown = false);
  void pause(pid_t pid);
  void resume(pid_t pid);
  bool running(pid_t pid);
  size_t count();

private:
  struct Tracked {
    ProcessLimits limits;
    double started = 0;
    double killAt = 0; // forced SIGKILL after a stop
    bool wallLimit = false, stoppedByUser = false, stoppedByServer = false;
    std::function<void(const ExitStatus &)> onExit;
  };
  struct SpawnRequest {
    const ProcessSpec *spec;
    std::optional<ChildProcess> result;
    std::string error;
    bool done = false;
  };
  void loop();
  void forkChild(SpawnRequest &request);
  /// Reaps ended children; returns the whenEnded callbacks to call.
  std::vector<std::function<void()>> reapAndEnforce();

  std::mutex mutex;
  std::condition_variable wake, changed;
  std::deque<SpawnRequest *> spawnQueue;
  std::map<pid_t, Tracked> children;
  std::map<pid_t, ExitStatus> ended;
  bool stopping = false;
  std::thread thread;
};

/// The last `maxBytes` of a file (log tails for error messages).
std::string readFileTail(const std::string &path, size_t maxBytes);

} // namespace qsim::studio

#endif
