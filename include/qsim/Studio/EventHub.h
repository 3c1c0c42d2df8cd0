//===- EventHub.h - per-user event streams (server-sent events) -*- C++ -*-===//
//
// Job progress, job ends and session replies are published per user; each
// browser tab follows its user's stream from the last event it saw. A user
// keeps only the latest kMaxEvents, so memory stays bounded however long a
// tab stays away.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_STUDIO_EVENTHUB_H
#define QSIM_STUDIO_EVENTHUB_H

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace qsim::studio {

struct Event {
  uint64_t id = 0;
  std::string type; // job, progress, session
  std::string data; // JSON
};

class EventHub {
public:
  static constexpr size_t kMaxEvents = 256;
  void publish(int64_t userId, const std::string &type,
               const std::string &data);
  /// The user's events after `after`, waiting up to `timeout` for one.
  /// Empty on timeout or when the hub stops.
  std::vector<Event> waitAfter(int64_t userId, uint64_t after,
                               std::chrono::milliseconds timeout);
  uint64_t lastId();
  void stop();
  bool stopped();

private:
  std::mutex mutex;
  std::condition_variable cv;
  std::map<int64_t, std::deque<Event>> events;
  uint64_t nextId = 1;
  bool stopping = false;
};

} // namespace qsim::studio

#endif
