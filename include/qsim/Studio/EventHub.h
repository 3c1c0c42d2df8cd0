//===- EventHub.h - per-user event streams (server-sent events) -*- C++ -*-===//
//
// Job progress, job ends and session replies are published per user; each
// browser tab follows its user's stream from the last event it saw. A user
// keeps only the latest kMaxEvents, so memory stays bounded however long a
// tab stays away. Subscribers are called on the publishing thread and must
// not block (the HTTP layer posts the event to its I/O loop).
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_STUDIO_EVENTHUB_H
#define QSIM_STUDIO_EVENTHUB_H

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace qsim::studio {

struct Event {
  uint64_t id = 0;
  std::string type; // job, progress, session
  std::string data; // JSON
  /// The event in the text/event-stream format.
  std::string format() const;
};

class EventHub {
public:
  static constexpr size_t kMaxEvents = 256;
  using Subscriber = std::function<void(const Event &)>;
  void publish(int64_t userId, const std::string &type,
               const std::string &data);
  /// The user's kept events after `after`.
  std::vector<Event> eventsAfter(int64_t userId, uint64_t after);
  /// Calls fn for each new event of the user; returns a token for
  /// unsubscribe.
  uint64_t subscribe(int64_t userId, Subscriber fn);
  void unsubscribe(uint64_t token);
  uint64_t lastId();

private:
  std::mutex mutex;
  std::map<int64_t, std::deque<Event>> events;
  std::map<uint64_t, std::pair<int64_t, Subscriber>> subscribers;
  uint64_t nextId = 1, nextToken = 1;
};

} // namespace qsim::studio

#endif
