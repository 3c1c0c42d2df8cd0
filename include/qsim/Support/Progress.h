//===- Progress.h - progress bars on stderr ---------------------*- C++ -*-===//

#ifndef QSIM_SUPPORT_PROGRESS_H
#define QSIM_SUPPORT_PROGRESS_H

#include <chrono>
#include <string>

namespace qsim {

/// "label [#####.....] 12/100 3.2 s" redrawn in place on a terminal; on a
/// pipe or file a line at every 10 % so logs stay short. Silent if disabled.
class ProgressBar {
public:
  ProgressBar(std::string label, size_t total, bool enabled = true);
  ~ProgressBar();
  void update(size_t done, const std::string &note = "");
  void finish();

private:
  std::string label;
  size_t total, lastDecile = 0;
  bool enabled, tty, finished = false;
  std::chrono::steady_clock::time_point start;
};

} // namespace qsim

#endif
