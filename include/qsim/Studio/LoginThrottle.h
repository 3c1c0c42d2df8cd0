//===- LoginThrottle.h - slows password guessing without lock-outs -*- C++
//-*-===//
//
// Failed logins are counted per key within a sliding window; a key with
// kMaxFailures failures in the window waits until the oldest leaves it. The
// studio counts three keys: the name tried from an unknown browser, the
// trusted browser (device cookie) that tried it, and the client address.
// A stranger's guesses thus lock the name for unknown browsers only: its
// owner, on a browser that logged in before, is not locked out.
//
// The table is bounded: past its capacity the least recently failed key
// that is not locked goes first, a locked one only when all are locked. A
// flood of invented names (one failure each) cannot clear the entries of
// the names under attack.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_STUDIO_LOGINTHROTTLE_H
#define QSIM_STUDIO_LOGINTHROTTLE_H

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <tuple>

namespace qsim::studio {

class LoginThrottle {
public:
  explicit LoginThrottle(size_t maxFailures = 5, int64_t windowSeconds = 300,
                         size_t capacity = 100000)
      : maxFailures(maxFailures), window(windowSeconds), capacity(capacity) {}
  /// Seconds until `key` may try again (0: now). `now` is in seconds.
  int secondsToWait(const std::string &key, int64_t now);
  void recordFailure(const std::string &key, int64_t now);
  size_t size();

private:
  void evict();
  /// (locked, last failure, key): unlocked keys first, oldest first.
  using Order = std::tuple<bool, int64_t, std::string>;
  Order orderOf(const std::string &key, const std::deque<int64_t> &times,
                int64_t now) const;
  struct Entry {
    std::deque<int64_t> times;
    Order order;
  };
  const size_t maxFailures;
  const int64_t window;
  const size_t capacity;
  std::mutex mutex;
  std::map<std::string, Entry> entries;
  std::set<Order> evictionOrder;
};

} // namespace qsim::studio

#endif
