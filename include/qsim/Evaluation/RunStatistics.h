//===- RunStatistics.h - statistics of tensors and timings ------*- C++ -*-===//
//
// The one computation of a tensor's summary (qsim-run --layer-stats, a step
// session's stats), of a per-image series (the overflow report) and of a
// median over repeated timings.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_EVALUATION_RUNSTATISTICS_H
#define QSIM_EVALUATION_RUNSTATISTICS_H

#include "llvm/ADT/ArrayRef.h"

#include <cstdint>
#include <vector>

namespace qsim::eval {

/// Summary of a tensor's values: min, max, mean, population standard
/// deviation and how many are exactly zero (all 0 for no values).
struct TensorStats {
  float min = 0, max = 0;
  double mean = 0, std = 0;
  int64_t zeros = 0, count = 0;
  double zeroPercent() const { return count ? 100.0 * zeros / count : 0.0; }
};
TensorStats computeTensorStats(llvm::ArrayRef<float> values);

/// Mean, largest and smallest value of a series (all 0 for none).
struct SeriesSummary {
  double mean = 0, max = 0, min = 0;
};
SeriesSummary summarizeSeries(llvm::ArrayRef<double> values);

/// The median of timings: the middle value after sorting, the upper of the
/// two middle ones for an even count; 0 for none.
double medianOf(std::vector<double> values);

} // namespace qsim::eval

#endif
