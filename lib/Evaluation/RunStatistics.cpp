//===- RunStatistics.cpp - statistics of tensors and timings -------------===//

#include "qsim/Evaluation/RunStatistics.h"

#include <algorithm>
#include <cmath>

using namespace qsim::eval;

TensorStats qsim::eval::computeTensorStats(llvm::ArrayRef<float> values) {
  TensorStats s;
  s.count = values.size();
  if (values.empty())
    return s;
  s.min = s.max = values[0];
  double sum = 0, sq = 0;
  for (float x : values) {
    s.min = std::min(s.min, x);
    s.max = std::max(s.max, x);
    sum += x;
    sq += (double)x * x;
    s.zeros += x == 0.0f;
  }
  s.mean = sum / values.size();
  s.std = std::sqrt(std::max(0.0, sq / values.size() - s.mean * s.mean));
  return s;
}

SeriesSummary qsim::eval::summarizeSeries(llvm::ArrayRef<double> values) {
  SeriesSummary s;
  if (values.empty())
    return s;
  s.max = s.min = values[0];
  for (double x : values) {
    s.mean += x;
    s.max = std::max(s.max, x);
    s.min = std::min(s.min, x);
  }
  s.mean /= values.size();
  return s;
}

double qsim::eval::medianOf(std::vector<double> values) {
  if (values.empty())
    return 0.0;
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}
