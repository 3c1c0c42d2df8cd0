//===- ModelRun.h - a model run over images, measured -----------*- C++ -*-===//
//
// The run library behind qsim-run: a model runs over images as Darknet's
// tools run it (Inference.h) while the run collects what was asked of it:
// every layer's output statistics and .npy dumps, mAP against YOLO labels,
// a layer-by-layer comparison against a reference (float) model, the
// overflow of int8 convolutions, and forward-pass timing. Results are typed
// reports; RunReport.h prints them.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_EVALUATION_MODELRUN_H
#define QSIM_EVALUATION_MODELRUN_H

#include "qsim/Evaluation/Inference.h"
#include "qsim/Evaluation/LayerAnalysis.h"
#include "qsim/Evaluation/RunStatistics.h"
#include "qsim/Runtime/Evaluation.h"

#include "mlir/IR/BuiltinOps.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace qsim::eval {

struct RunOptions {
  /// Kernels and threads. `timeSteps` fills the per-layer times of a
  /// comparison; it is on whenever `timeLayers` is.
  interp::ExecutorOptions executor;
  /// Threshold (of the reported detections), NMS, letterbox, top-k.
  InferenceOptions inference;
  /// mAP against YOLO labels in this directory (`<image stem>.txt`), as
  /// `detector map` computes it (candidates at 0.005).
  std::string labelsDir;
  /// Every layer's output of each image as `NNN_<kind>.npy`, and the
  /// network input as `input.npy`, in this directory.
  std::string dumpDir;
  /// Statistics of every layer's output (of the last image).
  bool layerStats = false;
  /// Per-layer wall times.
  bool timeLayers = false;
  /// Overflow of the int8 convolutions, per image.
  bool overflowReport = false;
  /// Forward passes to time after the images (timeForward), 0 for none.
  int repeat = 0;
};

/// A layer's name in the reports.
struct LayerRef {
  int64_t layer = 0;
  std::string kind, output, precision;
};

/// The comparison against the reference model over the images run.
struct ComparisonRow {
  LayerRef layer; // kind "output K" when only the outputs are compared
  LayerComparison error;
  /// Mean milliseconds per image of the model and of the reference; when
  /// only the outputs are compared, the whole forward pass on the first row.
  std::optional<double> millis, referenceMillis;
};
struct ComparisonReport {
  std::string against;
  size_t images = 0;
  /// The models' layers do not correspond (a factorized, pruned or
  /// re-based model): only their outputs are compared.
  bool outputsOnly = false;
  std::vector<ComparisonRow> rows;
  /// Detections at `thresh`: each reference detection matched by one of
  /// the model of the same class with IoU >= 0.5, one to one.
  float thresh = 0;
  size_t referenceDetections = 0, matchedDetections = 0, detections = 0;
  /// mAP@0.5 of both (fractions), with labels.
  std::optional<double> map, referenceMap;
  /// Weight bytes of both, when both models' statistics are known.
  std::optional<int64_t> weightBytes, referenceWeightBytes;
  /// Sum of the layers' times, mean per image.
  double forwardMillis = 0, referenceForwardMillis = 0;
};

/// The overflow of each int8 convolution over the images run.
struct OverflowRow {
  LayerRef layer;
  /// Per image: % of int8 x int8 products outside int8, % of accumulations
  /// leaving int16.
  SeriesSummary products, accumulators;
  int worstCaseBits = 0;
};
struct OverflowReport {
  size_t images = 0;
  std::vector<OverflowRow> rows;
};

struct LayerStatsRow {
  LayerRef layer;
  TensorStats stats;
};

/// `repeat` forward passes after a warm-up.
struct ForwardTiming {
  int runs = 0, threads = 0;
  std::string kernels;
  double median = 0, min = 0, max = 0;
  /// Per layer: the median over the runs (with timeLayers).
  std::vector<double> layerMedians;
};

struct LayerTimeRow {
  LayerRef layer;
  double millis = 0;
};

/// mAP and the summary at the reporting threshold.
struct MapReport {
  rt::MapResult result; // at IoU 0.5, all-point
  double map50to95 = 0;
  float thresh = 0;
};
/// The mAP of the images added to `evaluator`, summarized at `thresh`.
MapReport makeMapReport(const rt::MapEvaluator &evaluator, float thresh);

/// Of two reported detection lists, how many of `reference` are matched one
/// to one by a detection of `test` of the same class with IoU >= 0.5.
size_t
countMatchedDetections(const std::vector<rt::ReportedDetection> &reference,
                       const std::vector<rt::ReportedDetection> &test);

class ModelRun {
public:
  /// Plans `model` (which must outlive the run) and creates the dump
  /// directory; null on failure, after an error diagnostic (at the layer
  /// that cannot be planned, unlocated for the dump directory).
  static std::unique_ptr<ModelRun> create(mlir::ModuleOp model,
                                          const RunOptions &options);
  ~ModelRun();

  /// Runs `reference` (named `name` in reports) on the same images and
  /// compares layer by layer, or output by output when the layers do not
  /// correspond. Fails with an error diagnostic when the reference cannot
  /// be planned (at its layer) or the inputs or outputs differ (unlocated).
  mlir::LogicalResult compareWith(mlir::ModuleOp reference,
                                  const std::string &name);
  bool comparesOutputsOnly() const;
  size_t referenceLayers() const;

  const RunOptions &options() const { return opts; }
  const interp::Executor &executor() const { return *ex; }
  const ModelInfo &info() const { return modelInfo; }
  rt::Preprocess preprocess() const;
  bool hasInt8Convolutions() const;

  /// Runs one image: the forward pass, the per-layer hooks, the
  /// comparison and mAP. `result` holds the detections at the options'
  /// threshold. Fails on a kernel error, an unwritable dump or unreadable
  /// labels.
  bool runImage(const std::string &path, const rt::Image &image,
                InferenceResult &result, std::string &error);
  size_t imagesRun() const { return images; }
  /// Whether the run computes mAP (RunOptions::labelsDir).
  bool hasLabels() const { return evaluator != nullptr; }

  /// `repeat` forward passes on the last image's input (a constant 0.5
  /// input when no image ran) after a warm-up, without the per-layer hooks
  /// (dumps, statistics and comparisons are of images only).
  ForwardTiming timeForward(int repeat);

  std::optional<ComparisonReport> comparison() const;
  std::optional<OverflowReport> overflow() const;
  std::vector<LayerStatsRow> layerStats() const;
  std::optional<MapReport> evaluation() const;
  /// The last run's layer times, or the medians of `timing` when it has them.
  std::vector<LayerTimeRow> layerTimes(const ForwardTiming *timing) const;

private:
  ModelRun() = default;
  struct Reference;
  void afterStep(size_t step);
  void installHook();
  bool compareImage(const rt::Image &image, const InferenceOptions &options,
                    const InferenceResult &result, const std::string &path,
                    std::string &error);
  bool evaluateImage(const std::string &path, InferenceResult &result,
                     std::string &error);
  LayerRef layerRef(size_t step) const;
  std::string diagnoseNonFinite();

  mlir::ModuleOp model;
  RunOptions opts;
  std::unique_ptr<interp::Executor> ex;
  ModelInfo modelInfo;
  size_t images = 0;
  /// Whether afterStep runs after every layer.
  bool hooked = false;
  std::vector<TensorStats> stats;
  std::string dumpError;
  std::vector<std::vector<double>> overflowProducts, overflowAccumulators;
  std::unique_ptr<rt::MapEvaluator> evaluator;
  std::unique_ptr<Reference> reference;
  /// diagnoseNonFinite's finding (the forward pass is repeated once).
  std::optional<std::string> nonFiniteHint;
};

} // namespace qsim::eval

#endif
