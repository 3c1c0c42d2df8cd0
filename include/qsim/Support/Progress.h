//===- Progress.h - progress bars on stderr ---------------------*- C++ -*-===//

#ifndef QSIM_SUPPORT_PROGRESS_H
#define QSIM_SUPPORT_PROGRESS_H

#include "mlir/Support/LogicalResult.h"

#include <chrono>
#include <string>
#include <vector>

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

/// Applies `fn` (returning FailureOr<Row>) to each item in order under a
/// progress bar: the rows, or failure at the first item that fails (its
/// diagnostic is `fn`'s).
template <typename Row, typename Item, typename Fn>
mlir::FailureOr<std::vector<Row>> mapWithProgress(std::string label,
                                                  const std::vector<Item> &items,
                                                  bool enabled, Fn &&fn) {
  std::vector<Row> rows;
  ProgressBar bar(std::move(label), items.size(), enabled);
  for (const Item &item : items) {
    mlir::FailureOr<Row> row = fn(item);
    if (mlir::failed(row))
      return mlir::failure();
    rows.push_back(std::move(*row));
    bar.update(rows.size());
  }
  return rows;
}

} // namespace qsim

#endif
