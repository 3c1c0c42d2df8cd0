//===- Calibration.cpp - activation ranges from sample images ------------===//

#include "qsim/Quant/Calibration.h"
#include "qsim/Evaluation/Inference.h"
#include "qsim/Quant/CalibrationStats.h"
#include "qsim/Support/Progress.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "qsim/Support/StringUtils.h"

#include <algorithm>
#include <cmath>
#include <cstring>

using namespace mlir;
using namespace qsim;
using namespace qsim::quantization;

bool qsim::quantization::parseCalibrationMethod(StringRef s,
                                                CalibrationMethod &out) {
  if (s == "minmax")
    out = CalibrationMethod::MinMax;
  else if (s == "percentile")
    out = CalibrationMethod::Percentile;
  else if (s == "entropy")
    out = CalibrationMethod::Entropy;
  else if (s == "mse")
    out = CalibrationMethod::MSE;
  else if (s == "log2")
    out = CalibrationMethod::Log2;
  else
    return false;
  return true;
}

StringRef qsim::quantization::stringifyCalibrationMethod(CalibrationMethod m) {
  switch (m) {
  case CalibrationMethod::MinMax:
    return "minmax";
  case CalibrationMethod::Percentile:
    return "percentile";
  case CalibrationMethod::Entropy:
    return "entropy";
  case CalibrationMethod::MSE:
    return "mse";
  case CalibrationMethod::Log2:
    return "log2";
  }
  return "?";
}

//===----------------------------------------------------------------------===//
// CalibrationObserver
//===----------------------------------------------------------------------===//

void CalibrationObserver::observeRange(const float *x, int64_t n,
                                       int64_t image) {
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i]))
      continue;
    if (!seen) {
      minV = maxV = x[i];
      minAt = maxAt = image;
      seen = true;
    }
    // Strictly smaller/larger, as std::min/std::max keep the first of
    // equal values.
    if (x[i] < minV) {
      minV = x[i];
      minAt = image;
    }
    if (x[i] > maxV) {
      maxV = x[i];
      maxAt = image;
    }
  }
}

void CalibrationObserver::mergeRange(const CalibrationObserver &o) {
  if (!o.seen)
    return;
  if (!seen) {
    *this = o;
    return;
  }
  // A single run keeps the first image's value among equal ones.
  if (o.minV < minV || (o.minV == minV && o.minAt < minAt)) {
    minV = o.minV;
    minAt = o.minAt;
  }
  if (o.maxV > maxV || (o.maxV == maxV && o.maxAt < maxAt)) {
    maxV = o.maxV;
    maxAt = o.maxAt;
  }
}

void CalibrationObserver::setRange(const CalibrationObserver &range) {
  minV = range.minV;
  maxV = range.maxV;
  minAt = range.minAt;
  maxAt = range.maxAt;
  seen = range.seen;
}

static bool sameBits(float a, float b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

bool CalibrationObserver::mergeHistograms(const CalibrationObserver &o) {
  if (!sameBits(minV, o.minV) || !sameBits(maxV, o.maxV) ||
      o.hist.size() != hist.size() || o.absHist.size() != absHist.size())
    return false;
  for (size_t b = 0; b < hist.size(); ++b) {
    hist[b] += o.hist[b];
    absHist[b] += o.absHist[b];
  }
  total += o.total;
  return true;
}

void CalibrationObserver::startHistograms() {
  hist.assign(kBins, 0);
  absHist.assign(kBins, 0);
  total = 0;
}

void CalibrationObserver::observeHistogram(const float *x, int64_t n) {
  const float lo = minV, width = maxV - minV;
  const float absMax = std::max(std::fabs(minV), std::fabs(maxV));
  for (int64_t i = 0; i < n; ++i) {
    float v = x[i];
    if (!std::isfinite(v))
      continue;
    int b = width > 0 ? (int)((v - lo) / width * kBins) : 0;
    hist[std::max(0, std::min(kBins - 1, b))]++;
    int a = absMax > 0 ? (int)(std::fabs(v) / absMax * kBins) : 0;
    absHist[std::max(0, std::min(kBins - 1, a))]++;
  }
  total += n;
}

std::pair<float, float> CalibrationObserver::percentileRange(double p) const {
  // Values below the (100-p)th and above the pth percentile are clipped.
  if (hist.empty() || total == 0)
    return {minV, maxV};
  double tail = total * (100.0 - p) / 100.0;
  const float width = (maxV - minV) / kBins;
  int loBin = 0, hiBin = kBins - 1;
  double acc = 0;
  for (int b = 0; b < kBins; ++b) {
    acc += hist[b];
    if (acc > tail) {
      loBin = b;
      break;
    }
  }
  acc = 0;
  for (int b = kBins - 1; b >= 0; --b) {
    acc += hist[b];
    if (acc > tail) {
      hiBin = b;
      break;
    }
  }
  return {minV + loBin * width, minV + (hiBin + 1) * width};
}

float CalibrationObserver::entropyThreshold() const {
  // TensorRT's KL-divergence calibration on the |x| histogram: for each
  // candidate threshold, P = the histogram up to it (outliers folded into
  // the last bin), Q = P quantized to 128 levels and expanded back; pick
  // the threshold with the smallest KL(P || Q).
  const int levels = 128;
  const float absMax = std::max(std::fabs(minV), std::fabs(maxV));
  if (absHist.empty() || total == 0 || absMax == 0)
    return absMax;
  double bestKL = std::numeric_limits<double>::infinity();
  int bestI = kBins;
  std::vector<double> p, q;
  for (int i = levels; i <= kBins; i += 8) {
    p.assign(absHist.begin(), absHist.begin() + i);
    double outliers = 0;
    for (int b = i; b < kBins; ++b)
      outliers += absHist[b];
    p[i - 1] += outliers;
    q.assign(i, 0.0);
    double binsPerLevel = (double)i / levels;
    for (int l = 0; l < levels; ++l) {
      int start = (int)std::floor(l * binsPerLevel);
      int end = std::max(start + 1, (int)std::floor((l + 1) * binsPerLevel));
      end = std::min(end, i);
      double sum = 0;
      int nonzero = 0;
      for (int b = start; b < end; ++b) {
        sum += absHist[b];
        nonzero += absHist[b] != 0;
      }
      for (int b = start; b < end; ++b)
        if (absHist[b] != 0)
          q[b] = sum / nonzero;
    }
    double ps = 0, qs = 0;
    for (int b = 0; b < i; ++b) {
      ps += p[b];
      qs += q[b];
    }
    if (ps == 0 || qs == 0)
      continue;
    double kl = 0;
    for (int b = 0; b < i; ++b) {
      if (p[b] == 0)
        continue;
      double pp = p[b] / ps, qq = q[b] / qs;
      kl += qq > 0 ? pp * std::log(pp / qq) : pp * 30.0; // empty Q bin
    }
    if (kl < bestKL) {
      bestKL = kl;
      bestI = i;
    }
  }
  return (bestI + 0.5f) * absMax / kBins;
}

std::pair<float, float> CalibrationObserver::mseRange() const {
  // Shrink [min, max] by a factor a and keep the a with the smallest
  // expected squared error: clipping error outside, uniform rounding error
  // (step^2 / 12) inside, over the signed histogram.
  if (hist.empty() || total == 0 || maxV <= minV)
    return {minV, maxV};
  const float lo0 = std::min(minV, 0.0f), hi0 = std::max(maxV, 0.0f);
  const float width = (maxV - minV) / kBins;
  double bestErr = std::numeric_limits<double>::infinity();
  float best = 1.0f;
  for (int k = 0; k <= 90; ++k) {
    float a = 1.0f - 0.01f * k;
    float lo = lo0 * a, hi = hi0 * a;
    double step = (hi - lo) / 255.0;
    double err = 0;
    for (int b = 0; b < kBins; ++b) {
      if (!hist[b])
        continue;
      double c = minV + (b + 0.5) * width;
      double clipped = std::min<double>(std::max<double>(c, lo), hi);
      double e = c - clipped;
      err += hist[b] * (e * e + step * step / 12.0);
    }
    if (err < bestErr) {
      bestErr = err;
      best = a;
    }
  }
  return {std::max(minV, lo0 * best), std::min(maxV, hi0 * best)};
}

std::pair<float, float> CalibrationObserver::choose(CalibrationMethod m,
                                                    double percentile) const {
  switch (m) {
  case CalibrationMethod::MinMax:
  case CalibrationMethod::Log2: // power-of-two scales come at quantization
    return {minV, maxV};
  case CalibrationMethod::Percentile:
    return percentileRange(percentile);
  case CalibrationMethod::Entropy: {
    float t = entropyThreshold();
    return {std::max(minV, -t), std::min(maxV, t)};
  }
  case CalibrationMethod::MSE:
    return mseRange();
  }
  return {minV, maxV};
}

//===----------------------------------------------------------------------===//
// Driver
//===----------------------------------------------------------------------===//

std::optional<std::pair<float, float>>
qsim::quantization::getCalibratedRange(Value v) {
  DictionaryAttr d;
  if (auto arg = dyn_cast<BlockArgument>(v)) {
    if (auto f = dyn_cast<func::FuncOp>(arg.getOwner()->getParentOp()))
      d = f.getArgAttrOfType<DictionaryAttr>(arg.getArgNumber(), "qsim.calib");
  } else if (Operation *def = v.getDefiningOp()) {
    d = def->getAttrOfType<DictionaryAttr>("qsim.calib");
  }
  if (!d)
    return std::nullopt;
  auto lo = d.getAs<FloatAttr>("lo"), hi = d.getAs<FloatAttr>("hi");
  if (!lo || !hi)
    return std::nullopt;
  return std::make_pair((float)lo.getValueAsDouble(),
                        (float)hi.getValueAsDouble());
}

namespace {
/// The float model run over calibration images, feeding observers ([0] the
/// input, then one per layer).
struct CalibrationRun {
  std::unique_ptr<interp::Executor> ex;
  eval::ModelInfo info;
  rt::Preprocess pre;
  std::vector<CalibrationObserver> obs;

  /// Pass 0 observes ranges, pass 1 histograms, over the images at
  /// `indices` of `images`.
  bool observe(int pass, const std::vector<std::string> &images,
               const std::vector<size_t> &indices, const char *title,
               bool progress, std::string &error) {
    ProgressBar bar(title, indices.size(), progress);
    int64_t image = 0;
    ex->setStepHook([&](size_t i) {
      rt::Tensor t = ex->stepOutput(i);
      if (pass == 0)
        obs[i + 1].observeRange(t.f32(), t.numel(), image);
      else
        obs[i + 1].observeHistogram(t.f32(), t.numel());
    });
    for (size_t n = 0; n < indices.size(); ++n) {
      // Decoded again in each pass rather than kept: memory stays flat
      // however many calibration images there are.
      image = (int64_t)indices[n];
      rt::Image im;
      if (!rt::loadImage(images[image], im, error, 64ll << 20))
        return false;
      rt::Tensor in = rt::makeNetworkInput(im, info.netW, info.netH, pre);
      if (pass == 0)
        obs[0].observeRange(in.f32(), in.numel(), image);
      else
        obs[0].observeHistogram(in.f32(), in.numel());
      ex->setInput(in);
      ex->run();
      bar.update(n + 1);
    }
    return true;
  }
};

bool needsHistograms(CalibrationMethod m) {
  return m != CalibrationMethod::MinMax && m != CalibrationMethod::Log2;
}

/// A shard's stage (stats-out): ranges, or histograms on the merged ranges
/// of `in`; writes the statistics and leaves the model as it is.
bool observeShard(CalibrationRun &run, const CalibrationOptions &o,
                  const std::vector<std::string> &images,
                  const CalibrationStats *in, const std::string &fingerprint,
                  std::string &error) {
  std::vector<size_t> indices;
  for (size_t i = o.shardIndex; i < images.size(); i += o.shardCount)
    indices.push_back(i);
  CalibrationStats out;
  out.fingerprint = fingerprint;
  out.images = images.size();
  out.shardIndex = o.shardIndex;
  out.shardCount = o.shardCount;
  if (in && in->stage == CalibrationStats::Stage::Histograms) {
    error = "stats-in are histograms, the last stage: record the ranges "
            "with stats-in and no stats-out";
    return false;
  }
  if (in && !needsHistograms(o.method)) {
    error = "method=" + stringifyCalibrationMethod(o.method).str() +
            " needs only ranges: record them with stats-in and no stats-out";
    return false;
  }
  if (in) {
    for (size_t i = 0; i < run.obs.size(); ++i) {
      run.obs[i].setRange(in->observers[i]);
      run.obs[i].startHistograms();
    }
    out.stage = CalibrationStats::Stage::Histograms;
  }
  int pass = in ? 1 : 0;
  if (!run.observe(pass, images, indices,
                   in ? "calibrating (histograms)" : "calibrating (ranges)",
                   o.progress, error))
    return false;
  out.observers = run.obs;
  return writeCalibrationStats(o.statsOut, out, error);
}

/// The merged statistics of stats-in, checked against this calibration.
bool readStatsIn(const CalibrationOptions &o, size_t images, size_t tensors,
                 const std::string &fingerprint, CalibrationStats &in,
                 std::string &error) {
  if (!mergeCalibrationStats(o.statsIn, in, error))
    return false;
  if (in.fingerprint != fingerprint || in.images != images ||
      in.observers.size() != tensors) {
    error = "stats-in '" + o.statsIn[0] +
            "' are of another model, image list (max-images), kernels or "
            "preprocessing";
    return false;
  }
  if (o.statsOut.empty() && needsHistograms(o.method) &&
      in.stage == CalibrationStats::Stage::Ranges) {
    error = "method=" + stringifyCalibrationMethod(o.method).str() +
            " needs histograms: run the shards again with stats-in=<these "
            "ranges> stats-out=<histograms>, then merge those";
    return false;
  }
  return true;
}
} // namespace

/// The chosen ranges as `qsim.calib` on the IR (and on `log`).
static void recordRanges(func::FuncOp func,
                         const std::vector<CalibrationObserver> &obs,
                         const CalibrationOptions &options, size_t images,
                         const std::vector<interp::StepInfo> &steps,
                         llvm::raw_ostream *log) {
  auto layers = getLayers(func);
  Builder b(func.getContext());
  auto record = [&](const CalibrationObserver &o) {
    auto [lo, hi] = o.choose(options.method, options.percentile);
    SmallVector<NamedAttribute> a = {
        b.getNamedAttr("method", b.getStringAttr(stringifyCalibrationMethod(
                                     options.method))),
        b.getNamedAttr("min", b.getF32FloatAttr(o.min())),
        b.getNamedAttr("max", b.getF32FloatAttr(o.max())),
        b.getNamedAttr("lo", b.getF32FloatAttr(lo)),
        b.getNamedAttr("hi", b.getF32FloatAttr(hi)),
        b.getNamedAttr("images", b.getI64IntegerAttr(images))};
    if (options.method == CalibrationMethod::Percentile)
      a.push_back(
          b.getNamedAttr("percentile", b.getF64FloatAttr(options.percentile)));
    return b.getDictionaryAttr(a);
  };
  func.setArgAttr(0, "qsim.calib", record(obs[0]));
  for (size_t i = 0; i < layers->size(); ++i) {
    Value out = (*layers)[i].output();
    Operation *def = out.getDefiningOp();
    def->setAttr("qsim.calib", record(obs[i + 1]));
    if (log) {
      auto [lo, hi] = obs[i + 1].choose(options.method, options.percentile);
      *log << strprintf("  %-24s min %10.4g max %10.4g -> [%10.4g, %10.4g]\n",
                        steps[i].label.c_str(), obs[i + 1].min(),
                        obs[i + 1].max(), lo, hi);
    }
  }
}

LogicalResult
qsim::quantization::calibrateModule(ModuleOp module,
                                    const CalibrationOptions &options,
                                    llvm::raw_ostream *log) {
  func::FuncOp func = getMainFunc(module);
  if (!func)
    return module.emitError() << "no main function";
  bool quantized = false;
  func.walk([&](Operation *op) {
    for (Type t : op->getResultTypes())
      if (!isFloatElement(getElementTypeOrSelf(t)))
        quantized = true;
  });
  if (quantized)
    return module.emitError()
           << "the model is already quantized: calibrate the float model";
  std::vector<std::string> images = options.images;
  if (images.empty())
    return module.emitError() << "no calibration images";
  if (options.maxImages > 0 && (int)images.size() > options.maxImages)
    images.resize(options.maxImages);
  if (options.shardCount > 1 && options.statsOut.empty())
    return module.emitError()
           << "shard= needs stats-out=FILE (the shard's statistics)";
  bool sharded = !options.statsOut.empty() || !options.statsIn.empty();
  // Before the executor: planning adds nothing to the IR, but the
  // fingerprint should not depend on it.
  std::string fingerprint =
      sharded ? calibrationFingerprint(module, options, images) : "";

  CalibrationRun run;
  interp::ExecutorOptions eo;
  eo.kernels = options.kernels;
  eo.threads = options.threads;
  run.ex = interp::Executor::create(module, eo);
  if (!run.ex)
    return failure(); // the diagnostic names the layer
  // Images, statistics files: errors without an op, reported at the module.
  std::string error;
  run.info = eval::describeModel(module, *run.ex);
  run.pre = eval::choosePreprocess(run.info, options.letterbox);
  const auto &steps = run.ex->steps();
  run.obs.resize(steps.size() + 1);

  CalibrationStats in;
  if (!options.statsIn.empty() &&
      !readStatsIn(options, images.size(), run.obs.size(), fingerprint, in,
                   error))
    return module.emitError() << error;
  if (!options.statsOut.empty()) {
    if (!observeShard(run, options, images,
                      options.statsIn.empty() ? nullptr : &in, fingerprint,
                      error))
      return module.emitError() << error;
    return success();
  }
  if (!options.statsIn.empty()) {
    run.obs = in.observers;
  } else {
    std::vector<size_t> all(images.size());
    for (size_t i = 0; i < all.size(); ++i)
      all[i] = i;
    bool histograms = needsHistograms(options.method);
    if (!run.observe(0, images, all,
                     histograms ? "calibrating (ranges)" : "calibrating",
                     options.progress, error))
      return module.emitError() << error;
    if (histograms) {
      for (auto &o : run.obs)
        o.startHistograms();
      if (!run.observe(1, images, all, "calibrating (histograms)",
                       options.progress, error))
        return module.emitError() << error;
    }
  }
  recordRanges(func, run.obs, options, images.size(), steps, log);
  return success();
}
