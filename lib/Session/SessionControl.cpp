//===- SessionControl.cpp - progress and control of a session command ----===//

#include "qsim/Session/Engine.h"

using namespace qsim::session;

void SessionControl::begin(const std::string &cmd, double seconds) {
  std::lock_guard<std::mutex> l(m);
  command = cmd;
  paused = stopRequested = timedOut = false;
  position = total = 0;
  started = std::chrono::steady_clock::now();
  hasDeadline = seconds > 0;
  if (hasDeadline)
    deadline = started + std::chrono::microseconds((int64_t)(seconds * 1e6));
  running = true;
}

void SessionControl::end() {
  std::lock_guard<std::mutex> l(m);
  running = false;
  paused = false;
  command.clear();
  cv.notify_all();
}

bool SessionControl::checkpoint(int64_t pos, int64_t tot) {
  std::unique_lock<std::mutex> l(m);
  position = pos;
  total = tot;
  while (paused && !stopRequested) {
    if (hasDeadline) {
      if (cv.wait_until(l, deadline) == std::cv_status::timeout) {
        timedOut = true;
        return false;
      }
    } else {
      cv.wait(l);
    }
  }
  if (stopRequested)
    return false;
  if (hasDeadline && std::chrono::steady_clock::now() >= deadline) {
    timedOut = true;
    return false;
  }
  return true;
}

void SessionControl::pause() {
  std::lock_guard<std::mutex> l(m);
  paused = true;
}
void SessionControl::resume() {
  std::lock_guard<std::mutex> l(m);
  paused = false;
  cv.notify_all();
}
void SessionControl::stop() {
  std::lock_guard<std::mutex> l(m);
  stopRequested = true;
  cv.notify_all();
}
std::string SessionControl::stopReason() const {
  std::lock_guard<std::mutex> l(m);
  return timedOut ? "time limit" : "stopped";
}

json SessionControl::status() const {
  std::lock_guard<std::mutex> l(m);
  json j = {{"running", (bool)running}};
  if (running) {
    j["command"] = command;
    j["paused"] = paused;
    j["position"] = position;
    j["total"] = total;
    j["seconds"] = std::chrono::duration<double>(
                       std::chrono::steady_clock::now() - started)
                       .count();
  }
  return j;
}
