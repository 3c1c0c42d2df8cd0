//===- Schedule.h - the learning rate of every step -------------*- C++ -*-===//
//
// Darknet's get_current_rate (AlexeyAB): burn-in warm-up lr * (s/burn_in)^4,
// then a constant, step or cosine policy, from the cfg's [net] keys
// (learning_rate, burn_in, power, policy, steps, scales, max_batches).
// A fine-tune is much shorter than the training the cfg describes, so the
// cfg's burn_in and steps are rescaled by steps / max_batches.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_LIB_TRAIN_SCHEDULE_H
#define QSIM_LIB_TRAIN_SCHEDULE_H

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace qsim::train {

enum class Policy { Constant, Steps, Cosine, Poly };

struct Schedule {
  double lr = 0.001;
  int64_t burnIn = 0;
  double burnInPower = 4;
  Policy policy = Policy::Constant;
  std::vector<int64_t> steps; // the steps where lr is multiplied
  std::vector<double> scales; // by these
  int64_t total = 1;
  double polyPower = 4;
  /// The learning rate of step `s` (0-based).
  double rate(int64_t s) const;
  std::string describe() const;
};

/// What the user overrides; unset fields come from [net].
struct ScheduleRequest {
  std::optional<double> lr;
  std::optional<int64_t> burnIn;
  std::optional<Policy> policy; // nullopt: [net]'s policy
};

/// Builds the schedule of a `total`-step fine-tune from [net] keys. Fails
/// on malformed keys (steps without scales, unknown policy).
bool scheduleFromNet(const std::map<std::string, std::string> &net,
                     int64_t total, const ScheduleRequest &request,
                     Schedule &out, std::string &error);

} // namespace qsim::train

#endif
