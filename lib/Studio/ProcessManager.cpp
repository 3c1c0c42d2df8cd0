//===- ProcessManager.cpp - limited, monitored child processes ------------===//

#include "qsim/Studio/ProcessManager.h"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

namespace qsim::studio {

static double monotonicSeconds() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string readFileTail(const std::string &path, size_t maxBytes) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in)
    return "";
  std::streamoff size = in.tellg();
  std::streamoff start =
      size > static_cast<std::streamoff>(maxBytes) ? size - maxBytes : 0;
  in.seekg(start);
  std::string text(static_cast<size_t>(size - start), '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  return text;
}

std::string ExitStatus::describe(const ProcessLimits &limits,
                                 const std::string &logTail) const {
  auto fmt = [](double v) {
    char b[32];
    snprintf(b, sizeof b, "%g", v);
    return std::string(b);
  };
  if (stoppedByUser)
    return "stopped";
  if (stoppedByServer)
    return "stopped because the server stopped";
  if (wallLimit)
    return "exceeded its wall-clock limit of " + fmt(limits.wallSeconds) + " s";
  if (exited)
    return code == 0 ? "finished"
                     : "exited with status " + std::to_string(code);
  if (signal == SIGXCPU ||
      (signal == SIGKILL && cpuSeconds + 0.5 >= limits.cpuSeconds))
    return "exceeded its CPU-time limit of " + fmt(limits.cpuSeconds) + " s";
  bool outOfMemory = logTail.find("bad_alloc") != std::string::npos ||
                     logTail.find("out of memory") != std::string::npos ||
                     logTail.find("Cannot allocate") != std::string::npos;
  if (outOfMemory)
    return "ran out of its memory limit of " + fmt(limits.memoryMiB) + " MiB";
  return "crashed (signal " + std::to_string(signal) + ", " +
         strsignal(signal) + ")";
}

ProcessManager::ProcessManager() {
  thread = std::thread([this] { loop(); });
}

ProcessManager::~ProcessManager() {
  {
    std::lock_guard<std::mutex> lock(mutex);
    stopping = true;
    for (auto &[pid, t] : children)
      kill(-pid, SIGKILL);
  }
  wake.notify_all();
  thread.join();
}

std::optional<ChildProcess> ProcessManager::spawn(const ProcessSpec &spec,
                                                  std::string &error) {
  SpawnRequest request{&spec, std::nullopt, "", false};
  std::unique_lock<std::mutex> lock(mutex);
  if (stopping) {
    error = "the server is stopping";
    return std::nullopt;
  }
  spawnQueue.push_back(&request);
  wake.notify_all();
  changed.wait(lock, [&] { return request.done; });
  if (!request.result)
    error = request.error;
  return request.result;
}

// Runs on the manager's thread (see the header: PR_SET_PDEATHSIG follows the
// thread that forked). Only async-signal-safe calls between fork and exec.
void ProcessManager::forkChild(SpawnRequest &request) {
  const ProcessSpec &spec = *request.spec;
  std::vector<char *> argv;
  for (const std::string &a : spec.argv)
    argv.push_back(const_cast<char *>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> envStrings;
  for (char **e = environ; *e; ++e) {
    std::string entry(*e);
    bool overridden = false;
    for (auto &[k, v] : spec.environment)
      overridden |= entry.compare(0, k.size() + 1, k + "=") == 0;
    if (!overridden)
      envStrings.push_back(entry);
  }
  for (auto &[k, v] : spec.environment)
    envStrings.push_back(k + "=" + v);
  std::vector<char *> envp;
  for (std::string &e : envStrings)
    envp.push_back(e.data());
  envp.push_back(nullptr);

  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
  auto closeAll = [&] {
    for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]})
      if (fd >= 0)
        close(fd);
  };
  if ((spec.pipeStdin && pipe2(in, O_CLOEXEC) != 0) ||
      (spec.pipeStdout && pipe2(out, O_CLOEXEC) != 0) ||
      (spec.pipeStderr && pipe2(err, O_CLOEXEC) != 0)) {
    request.error = std::string("pipe: ") + strerror(errno);
    closeAll();
    return;
  }
  int log = open(spec.logFile.empty() ? "/dev/null" : spec.logFile.c_str(),
                 O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  int devNull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (log < 0 || devNull < 0) {
    request.error = spec.logFile + ": " + strerror(errno);
    closeAll();
    if (log >= 0)
      close(log);
    if (devNull >= 0)
      close(devNull);
    return;
  }
  struct rlimit cpu, mem;
  cpu.rlim_cur = static_cast<rlim_t>(spec.limits.cpuSeconds);
  cpu.rlim_max = cpu.rlim_cur + 5;
  mem.rlim_cur = mem.rlim_max =
      static_cast<rlim_t>(spec.limits.memoryMiB * 1024 * 1024);
  pid_t parent = getpid();
  const char *cwd =
      spec.workingDirectory.empty() ? nullptr : spec.workingDirectory.c_str();

  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(126); // the server died between fork and prctl
    setrlimit(RLIMIT_CPU, &cpu);
    setrlimit(RLIMIT_AS, &mem);
    // qsim-studio blocks SIGINT/SIGTERM in its threads and ignores SIGPIPE;
    // both survive exec: a child must see a stop's SIGTERM (qsim-train ends
    // its step and writes what it trained) instead of the SIGKILL after it.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    dup2(spec.pipeStdin ? in[0] : devNull, 0);
    dup2(spec.pipeStdout ? out[1] : log, 1);
    dup2(spec.pipeStderr ? err[1] : log, 2);
    close_range(3, ~0U, 0);
    if (cwd && chdir(cwd) != 0)
      _exit(126);
    execve(argv[0], argv.data(), envp.data());
    static const char msg[] = "qsim-studio: cannot execute the child\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(127);
  }
  close(log);
  close(devNull);
  if (pid < 0) {
    request.error = std::string("fork: ") + strerror(errno);
    closeAll();
    return;
  }
  setpgid(pid, pid); // also from here: no race with an early signal
  ChildProcess child;
  child.pid = pid;
  if (spec.pipeStdin) {
    close(in[0]);
    child.stdinFd = in[1];
  }
  if (spec.pipeStdout) {
    close(out[1]);
    child.stdoutFd = out[0];
  }
  if (spec.pipeStderr) {
    close(err[1]);
    child.stderrFd = err[0];
  }
  Tracked t;
  t.limits = spec.limits;
  t.started = monotonicSeconds();
  children[pid] = t;
  request.result = child;
}

std::vector<std::function<void()>> ProcessManager::reapAndEnforce() {
  std::vector<std::function<void()>> callbacks;
  double now = monotonicSeconds();
  for (auto it = children.begin(); it != children.end();) {
    pid_t pid = it->first;
    Tracked &t = it->second;
    int status = 0;
    struct rusage usage;
    pid_t r = wait4(pid, &status, WNOHANG, &usage);
    if (r == pid) {
      ExitStatus e;
      e.exited = WIFEXITED(status);
      e.code = e.exited ? WEXITSTATUS(status) : 0;
      e.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
      e.cpuSeconds = usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
                     1e-6 * (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
      e.wallLimit = t.wallLimit;
      e.stoppedByUser = t.stoppedByUser;
      e.stoppedByServer = t.stoppedByServer;
      kill(-pid, SIGKILL); // grandchildren, if any
      if (t.onExit)
        callbacks.push_back([fn = std::move(t.onExit), e] { fn(e); });
      else
        ended[pid] = e;
      it = children.erase(it);
      changed.notify_all();
      continue;
    }
    if (!t.wallLimit && !t.stoppedByUser && !t.stoppedByServer &&
        now - t.started > t.limits.wallSeconds) {
      t.wallLimit = true;
      kill(-pid, SIGCONT);
      kill(-pid, SIGKILL);
    }
    if (t.killAt > 0 && now > t.killAt) {
      kill(-pid, SIGKILL);
      t.killAt = 0;
    }
    ++it;
  }
  return callbacks;
}

void ProcessManager::loop() {
  std::unique_lock<std::mutex> lock(mutex);
  while (!stopping || !children.empty()) {
    while (!spawnQueue.empty()) {
      SpawnRequest *request = spawnQueue.front();
      spawnQueue.pop_front();
      if (stopping)
        request->error = "the server is stopping";
      else
        forkChild(*request);
      request->done = true;
      changed.notify_all();
    }
    std::vector<std::function<void()>> callbacks = reapAndEnforce();
    if (!callbacks.empty()) {
      lock.unlock();
      for (auto &fn : callbacks)
        fn();
      lock.lock();
      continue;
    }
    wake.wait_for(lock, std::chrono::milliseconds(50));
  }
  for (SpawnRequest *request : spawnQueue) {
    request->error = "the server is stopping";
    request->done = true;
  }
  spawnQueue.clear();
  changed.notify_all();
}

ExitStatus ProcessManager::wait(pid_t pid) {
  std::unique_lock<std::mutex> lock(mutex);
  changed.wait(lock, [&] { return ended.count(pid) || !children.count(pid); });
  auto it = ended.find(pid);
  if (it == ended.end())
    return ExitStatus{};
  ExitStatus e = it->second;
  ended.erase(it);
  return e;
}

void ProcessManager::whenEnded(pid_t pid,
                               std::function<void(const ExitStatus &)> fn) {
  std::unique_lock<std::mutex> lock(mutex);
  auto it = children.find(pid);
  if (it != children.end()) {
    it->second.onExit = std::move(fn);
    return;
  }
  ExitStatus e;
  auto done = ended.find(pid);
  if (done != ended.end()) {
    e = done->second;
    ended.erase(done);
  }
  lock.unlock();
  fn(e);
}

void ProcessManager::stop(pid_t pid, double graceSeconds, bool serverShutdown) {
  std::lock_guard<std::mutex> lock(mutex);
  auto it = children.find(pid);
  if (it == children.end())
    return;
  (serverShutdown ? it->second.stoppedByServer : it->second.stoppedByUser) =
      true;
  it->second.killAt = monotonicSeconds() + graceSeconds;
  kill(-pid, SIGCONT);
  kill(-pid, SIGTERM);
}

void ProcessManager::pause(pid_t pid) {
  std::lock_guard<std::mutex> lock(mutex);
  if (children.count(pid))
    kill(-pid, SIGSTOP);
}

void ProcessManager::resume(pid_t pid) {
  std::lock_guard<std::mutex> lock(mutex);
  if (children.count(pid))
    kill(-pid, SIGCONT);
}

bool ProcessManager::running(pid_t pid) {
  std::lock_guard<std::mutex> lock(mutex);
  return children.count(pid) != 0;
}

size_t ProcessManager::count() {
  std::lock_guard<std::mutex> lock(mutex);
  return children.size();
}

} // namespace qsim::studio
