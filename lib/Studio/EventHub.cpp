//===- EventHub.cpp - per-user event streams ------------------------------===//

#include "qsim/Studio/EventHub.h"

namespace qsim::studio {

std::string Event::format() const {
  return "id: " + std::to_string(id) + "\nevent: " + type + "\ndata: " + data +
         "\n\n";
}

void EventHub::publish(int64_t userId, const std::string &type,
                       const std::string &data) {
  std::vector<Subscriber> targets;
  Event event;
  {
    std::lock_guard<std::mutex> lock(mutex);
    std::deque<Event> &queue = events[userId];
    event = Event{nextId++, type, data};
    queue.push_back(event);
    while (queue.size() > kMaxEvents)
      queue.pop_front();
    for (auto &[token, sub] : subscribers)
      if (sub.first == userId)
        targets.push_back(sub.second);
  }
  for (const Subscriber &fn : targets)
    fn(event);
}

std::vector<Event> EventHub::eventsAfter(int64_t userId, uint64_t after) {
  std::lock_guard<std::mutex> lock(mutex);
  std::vector<Event> out;
  auto it = events.find(userId);
  if (it != events.end())
    for (const Event &e : it->second)
      if (e.id > after)
        out.push_back(e);
  return out;
}

uint64_t EventHub::subscribe(int64_t userId, Subscriber fn) {
  std::lock_guard<std::mutex> lock(mutex);
  uint64_t token = nextToken++;
  subscribers[token] = {userId, std::move(fn)};
  return token;
}

void EventHub::unsubscribe(uint64_t token) {
  std::lock_guard<std::mutex> lock(mutex);
  subscribers.erase(token);
}

uint64_t EventHub::lastId() {
  std::lock_guard<std::mutex> lock(mutex);
  return nextId - 1;
}

} // namespace qsim::studio
