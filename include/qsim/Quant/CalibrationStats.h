//===- CalibrationStats.h - mergeable calibration statistics ----*- C++ -*-===//
//
// Sharded calibration writes each shard's observations to a file and
// merges them into exactly what one run over all images observes.
//
// Binning: a histogram method calibrates in two stages, as a single run
// does in two passes. Stage 1 (ranges): each shard observes min/max; the
// merge is their min and max (between equal values, the one of the lowest
// image index, as a single run keeps the first). Stage 2 (histograms):
// every shard reads the merged ranges and fills, per tensor, 2048 bins over
// [min, max] and 2048 bins of |x| over [0, max(|min|, |max|)], the very
// bins of a single run's second pass, so the merged counts (sums of
// integers) are the single run's and the chosen ranges are bit-identical.
// A fixed binning chosen in advance (say, over the float exponents) would
// need no first stage but would change the single run's results.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_QUANT_CALIBRATIONSTATS_H
#define QSIM_QUANT_CALIBRATIONSTATS_H

#include "qsim/Quant/Calibration.h"

#include "mlir/IR/BuiltinOps.h"

#include <string>
#include <vector>

namespace qsim::quantization {

struct CalibrationStats {
  enum class Stage { Ranges, Histograms };
  Stage stage = Stage::Ranges;
  /// Of the model, the image names, the kernels and the preprocessing.
  std::string fingerprint;
  size_t images = 0; // of the whole calibration list
  int shardIndex = 0, shardCount = 1;
  /// [0] the network input, then one per layer.
  std::vector<CalibrationObserver> observers;
};

/// What a stats file must match to be used for `module` on `images`.
std::string calibrationFingerprint(mlir::ModuleOp module,
                                   const CalibrationOptions &options,
                                   const std::vector<std::string> &images);

/// Written atomically.
bool writeCalibrationStats(const std::string &path,
                           const CalibrationStats &stats, std::string &error);
/// Fails naming `path` when unreadable, truncated or not a stats file.
bool readCalibrationStats(const std::string &path, CalibrationStats &stats,
                          std::string &error);
/// Every shard of one stage of one calibration, each once: their merge.
bool mergeCalibrationStats(const std::vector<std::string> &paths,
                           CalibrationStats &merged, std::string &error);

} // namespace qsim::quantization

#endif
