//===- LoginThrottle.cpp - slows password guessing without lock-outs ------===//

#include "qsim/Studio/LoginThrottle.h"

namespace qsim::studio {

LoginThrottle::Order LoginThrottle::orderOf(const std::string &key,
                                            const std::deque<int64_t> &times,
                                            int64_t now) const {
  bool locked = times.size() >= maxFailures && times.front() > now - window;
  return {locked, times.empty() ? 0 : times.back(), key};
}

int LoginThrottle::secondsToWait(const std::string &key, int64_t now) {
  std::lock_guard<std::mutex> lock(mutex);
  auto it = entries.find(key);
  if (it == entries.end())
    return 0;
  const std::deque<int64_t> &times = it->second.times;
  size_t recent = 0;
  for (int64_t t : times)
    recent += t > now - window;
  if (recent < maxFailures)
    return 0;
  return static_cast<int>(times.front() + window - now);
}

void LoginThrottle::recordFailure(const std::string &key, int64_t now) {
  std::lock_guard<std::mutex> lock(mutex);
  auto it = entries.find(key);
  if (it == entries.end()) {
    if (entries.size() >= capacity)
      evict();
    it = entries.emplace(key, Entry{}).first;
  } else {
    evictionOrder.erase(it->second.order);
  }
  std::deque<int64_t> &times = it->second.times;
  times.push_back(now);
  while (times.size() > maxFailures)
    times.pop_front();
  it->second.order = orderOf(key, times, now);
  evictionOrder.insert(it->second.order);
}

// The first in eviction order: the least recently failed unlocked key, or,
// when every key is locked, the least recently failed one.
void LoginThrottle::evict() {
  if (evictionOrder.empty())
    return;
  entries.erase(std::get<2>(*evictionOrder.begin()));
  evictionOrder.erase(evictionOrder.begin());
}

size_t LoginThrottle::size() {
  std::lock_guard<std::mutex> lock(mutex);
  return entries.size();
}

} // namespace qsim::studio
