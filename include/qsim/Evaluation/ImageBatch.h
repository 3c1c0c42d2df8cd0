//===- ImageBatch.h - a model run over a list of images ---------*- C++ -*-===//
//
// What qsim-run does with --image FILE|DIR: every image through a ModelRun,
// with each image's table, JSON entry and drawing as asked, a progress bar
// for a batch; then the run's reports.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_EVALUATION_IMAGEBATCH_H
#define QSIM_EVALUATION_IMAGEBATCH_H

#include "qsim/Evaluation/ModelRun.h"

#include "llvm/Support/raw_ostream.h"

#include <functional>
#include <nlohmann/json.hpp>

namespace qsim::eval {

struct BatchOptions {
  /// A directory or several images: an unreadable image is skipped (and
  /// counted) instead of failing, progress shows on stderr, drawings go to
  /// the `draw` directory.
  bool batch = false;
  /// No per-image tables (a batch with labels never prints them).
  bool quiet = false;
  /// Write each image with its boxes as PNG: this file, or a directory
  /// (created) of `<image stem>.png` for a batch. Detection models only.
  std::string draw;
  /// Write each image's result (and the mAP) as JSON to this file, naming
  /// the model `model`.
  std::string jsonPath, model;
  std::vector<std::string> names;
  /// Largest image decoded, in pixels.
  int64_t maxImagePixels = 64ll << 20;
  /// Told why an image of a batch is skipped.
  std::function<void(const std::string &error)> warnSkipped;
};

struct BatchResult {
  size_t images = 0, unreadable = 0, detections = 0;
  /// Forward milliseconds summed over the images run.
  double forwardMillis = 0;
  nlohmann::json imagesJson = nlohmann::json::array();
};

/// The images of `path` (the file, or a directory's images sorted), at most
/// `maxImages` of them when it is > 0; `batch` says whether it is a batch.
bool listRunImages(const std::string &path, int maxImages,
                   std::vector<std::string> &files, bool &batch,
                   std::string &error);

/// Runs `files` through `run`, printing each image's table on `os` (after
/// a note when a comparison can only compare outputs).
bool runImages(ModelRun &run, const std::vector<std::string> &files,
               const BatchOptions &options, llvm::raw_ostream &os,
               BatchResult &result, std::string &error);

/// "summary: N images (K unreadable), D detections, mean forward T ms".
void printBatchSummary(llvm::raw_ostream &os, const BatchResult &result);

/// After the images: the reports the run was asked for, in this order:
/// the batch's summary, mAP, the comparison, the overflow, the layers'
/// statistics, the timing of RunOptions::repeat passes, the layer times;
/// then the JSON file.
bool reportRun(ModelRun &run, const BatchOptions &options,
               const BatchResult &result, llvm::raw_ostream &os,
               std::string &error);

} // namespace qsim::eval

#endif
