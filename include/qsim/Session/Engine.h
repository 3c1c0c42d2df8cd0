//===- Engine.h - the step and cross inference session ----------*- C++ -*-===//
//
// The engine behind `qsim-run --session` and qsim-studio: a model, an input,
// a position in the run (the layers before it have run and their inputs and
// outputs are kept), breakpoints, a float shadow for comparisons, and
// commands to step, inspect, edit weights, re-run, cross precisions and
// save. Requests and replies are JSON objects (docs/step-debugging.md).
//
// One request is handled at a time (the transport guarantees it); the
// control commands (status, pause, resume, stop) are the exception: they
// only touch `SessionControl`, which is thread-safe, and may arrive from
// another connection while a long command runs.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_SESSION_ENGINE_H
#define QSIM_SESSION_ENGINE_H

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

namespace qsim::session {

using json = nlohmann::json;

struct SessionLimits {
  /// Largest model (and weights) file accepted by `load`.
  int64_t maxModelBytes = 1ll << 30;
  /// Largest decoded image accepted (pixels).
  int64_t maxImagePixels = 64ll << 20;
  /// Wall-clock limit of one command, seconds (0: none). Runs stop at the
  /// next layer boundary; a load or calibration is not interrupted.
  double commandSeconds = 0;
  /// Longest request line, bytes.
  size_t maxRequestBytes = 1 << 20;
};

/// Progress and control of the command in flight; thread-safe.
class SessionControl {
public:
  /// Called by the engine between layers: blocks while paused; returns
  /// false when the command must stop (stop request or time limit).
  bool checkpoint(int64_t position, int64_t total);
  void begin(const std::string &command, double seconds);
  void end();
  json status() const;
  /// Control requests (from any connection).
  void pause();
  void resume();
  void stop();
  bool busy() const { return running; }
  /// Why the last checkpoint said stop: "stopped" or "time limit".
  std::string stopReason() const;

private:
  mutable std::mutex m;
  std::condition_variable cv;
  std::atomic<bool> running{false};
  bool paused = false, stopRequested = false, timedOut = false;
  std::string command;
  int64_t position = 0, total = 0;
  std::chrono::steady_clock::time_point started, deadline;
  bool hasDeadline = false;
};

class Engine {
public:
  struct Options {
    SessionLimits limits;
    int threads = 0;
    /// Kernels for the session's model (the shadow always uses fast ones).
    bool referenceKernels = false;
    /// When set, every file a request names is resolved inside this
    /// directory (relative paths are relative to it); anything that leads
    /// outside, through ".." or a symbolic link, is refused.
    std::string rootDir;
  };
  explicit Engine(const Options &options);
  ~Engine();

  /// Handles one request object; never throws. Control commands are
  /// answered by `handleControl` instead (see isControlCommand).
  json handle(const json &request, SessionControl &control);
  /// Parses and handles one line (malformed JSON gives an error reply).
  std::string handleLine(const std::string &line, SessionControl &control);

  static bool isControlCommand(const std::string &cmd);
  static json handleControl(const json &request, SessionControl &control);
  /// Commands that may take long (a run, a load with calibration): the
  /// socket transport runs them on a worker thread.
  static bool isLongCommand(const std::string &cmd);

  const Options &options() const;

  struct State; // the session (Engine.cpp)

private:
  std::unique_ptr<State> s;
};

} // namespace qsim::session

#endif
