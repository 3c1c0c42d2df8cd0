//===- Calibration.h - activation ranges from sample images -----*- C++ -*-===//
//
// Runs the float model over sample images, observes every layer's output
// (and the network input) and records the chosen range on the IR as
// `qsim.calib = {method, min, max, lo, hi, images}` on the op producing the
// value (`qsim.calib` argument attribute for the input).
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_QUANT_CALIBRATION_H
#define QSIM_QUANT_CALIBRATION_H

#include "qsim/Interpreter/Executor.h"

#include "llvm/Support/raw_ostream.h"

#include <optional>
#include <string>
#include <vector>

namespace qsim::quantization {

enum class CalibrationMethod { MinMax, Percentile, Entropy, MSE, Log2 };
bool parseCalibrationMethod(llvm::StringRef s, CalibrationMethod &out);
llvm::StringRef stringifyCalibrationMethod(CalibrationMethod m);

/// Observes one tensor over many images: min/max in a first pass, then a
/// signed histogram over [min, max] and a histogram of |x| over [0, absmax]
/// (2048 bins each) in a second pass.
class CalibrationObserver {
public:
  static constexpr int kBins = 2048;
  /// `image` is the image's index in the whole calibration list: where the
  /// min and max were reached decides, between equal values of different
  /// shards (-0 and +0), which one a single run would have kept.
  void observeRange(const float *x, int64_t n, int64_t image = 0);
  void startHistograms();
  void observeHistogram(const float *x, int64_t n);
  float min() const { return minV; }
  float max() const { return maxV; }
  /// The range [lo, hi] the method chooses (always within [min, max]).
  std::pair<float, float> choose(CalibrationMethod m, double percentile) const;

  /// Merging shards (CalibrationStats.h): the range of both, as one run
  /// over both shards' images would have observed it.
  void mergeRange(const CalibrationObserver &other);
  /// Adds the histograms of `other`, observed on the same range; false when
  /// the ranges (hence the bins) differ.
  bool mergeHistograms(const CalibrationObserver &other);
  /// Sets the range (of a merged ranges stage) before histograms.
  void setRange(const CalibrationObserver &range);
  friend struct CalibrationObserverIO;

private:
  std::pair<float, float> percentileRange(double p) const;
  float entropyThreshold() const;
  std::pair<float, float> mseRange() const;
  float minV = 0, maxV = 0;
  bool seen = false;
  int64_t minAt = 0, maxAt = 0; // image where min/max were reached
  std::vector<uint64_t> hist, absHist;
  uint64_t total = 0;
};

struct CalibrationOptions {
  std::vector<std::string> images; // files
  int maxImages = 100;
  CalibrationMethod method = CalibrationMethod::MinMax;
  double percentile = 99.99;
  interp::KernelSet kernels = interp::KernelSet::Fast;
  int threads = 0;
  bool progress = true;
  std::optional<bool> letterbox;
  /// Sharded calibration (docs/scale-out.md): observe only shard
  /// `shardIndex` of `shardCount` of the images and write the statistics
  /// to `statsOut` instead of recording ranges; `statsIn` are the merged
  /// statistics of a previous stage (ranges before histograms) or, without
  /// `statsOut`, of the last stage, whose ranges are then recorded.
  int shardIndex = 0, shardCount = 1;
  std::string statsOut;
  std::vector<std::string> statsIn;
};

/// Calibrates `module` in place. Fails with an error diagnostic: at the
/// layer that cannot run (a shape-only model, ...), else at the module (no
/// images, unreadable image, quantized model, ...).
mlir::LogicalResult calibrateModule(mlir::ModuleOp module,
                                    const CalibrationOptions &options,
                                    llvm::raw_ostream *log = nullptr);

/// The recorded range of a value, if calibrated: (lo, hi).
std::optional<std::pair<float, float>> getCalibratedRange(mlir::Value v);

} // namespace qsim::quantization

#endif
