//===- EventHub.cpp - per-user event streams ------------------------------===//

#include "qsim/Studio/EventHub.h"

namespace qsim::studio {

void EventHub::publish(int64_t userId, const std::string &type,
                       const std::string &data) {
  {
    std::lock_guard<std::mutex> lock(mutex);
    std::deque<Event> &queue = events[userId];
    queue.push_back(Event{nextId++, type, data});
    while (queue.size() > kMaxEvents)
      queue.pop_front();
  }
  cv.notify_all();
}

std::vector<Event> EventHub::waitAfter(int64_t userId, uint64_t after,
                                       std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex);
  auto newer = [&] {
    auto it = events.find(userId);
    return it != events.end() && !it->second.empty() &&
           it->second.back().id > after;
  };
  cv.wait_for(lock, timeout, [&] { return stopping || newer(); });
  std::vector<Event> out;
  if (stopping || !newer())
    return out;
  for (const Event &e : events[userId])
    if (e.id > after)
      out.push_back(e);
  return out;
}

uint64_t EventHub::lastId() {
  std::lock_guard<std::mutex> lock(mutex);
  return nextId - 1;
}

void EventHub::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex);
    stopping = true;
  }
  cv.notify_all();
}

bool EventHub::stopped() {
  std::lock_guard<std::mutex> lock(mutex);
  return stopping;
}

} // namespace qsim::studio
