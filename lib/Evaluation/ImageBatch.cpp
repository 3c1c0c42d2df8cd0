//===- ImageBatch.cpp - a model run over a list of images ----------------===//

#include "qsim/Evaluation/ImageBatch.h"
#include "qsim/Evaluation/RunReport.h"
#include "qsim/Support/FileUtils.h"
#include "qsim/Support/Progress.h"
#include "qsim/Support/StringUtils.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

using namespace qsim;
using namespace qsim::eval;

bool qsim::eval::listRunImages(const std::string &path, int maxImages,
                               std::vector<std::string> &files, bool &batch,
                               std::string &error) {
  if (!rt::listImageFiles(path, files, error))
    return false;
  if (maxImages > 0 && (int)files.size() > maxImages)
    files.resize(maxImages);
  batch = files.size() > 1 || llvm::sys::fs::is_directory(path);
  return true;
}

/// The outputs of one image run: table, JSON entry, drawing.
static bool reportImage(const ModelRun &run, const std::string &path,
                        const rt::Image &image, const InferenceResult &r,
                        const BatchOptions &o, llvm::raw_ostream &os,
                        BatchResult &result, std::string &error) {
  if (!o.quiet && !(o.batch && run.hasLabels())) {
    if (o.batch)
      llvm::errs() << "\r\033[K"; // clear the progress bar's line
    printImageResult(os, path, r, o.names, run.preprocess());
  }
  if (!o.jsonPath.empty())
    result.imagesJson.push_back(imageResultJson(path, r, o.names));
  if (o.draw.empty() || run.info().isClassifier())
    return true;
  std::string png = o.draw;
  if (o.batch)
    png += "/" + llvm::sys::path::stem(path).str() + ".png";
  return drawDetections(image, r, o.names, run.info().classes(), png, error);
}

bool qsim::eval::runImages(ModelRun &run, const std::vector<std::string> &files,
                           const BatchOptions &o, llvm::raw_ostream &os,
                           BatchResult &result, std::string &error) {
  if (o.batch && !o.draw.empty())
    if (auto ec = llvm::sys::fs::create_directories(o.draw)) {
      error = "cannot create '" + o.draw + "': " + ec.message();
      return false;
    }
  if (run.comparesOutputsOnly())
    printOutputsOnlyNote(os, run.executor().steps().size(),
                         run.referenceLayers());
  result.images = files.size();
  ProgressBar progress("images", files.size(), o.batch);
  for (size_t n = 0; n < files.size(); ++n) {
    const std::string &path = files[n];
    rt::Image image;
    if (!rt::loadImage(path, image, error, o.maxImagePixels)) {
      if (!o.batch)
        return false;
      if (o.warnSkipped)
        o.warnSkipped(error);
      ++result.unreadable;
      continue;
    }
    InferenceResult r;
    if (!run.runImage(path, image, r, error))
      return false;
    result.detections += r.reported.size();
    result.forwardMillis += r.forwardMillis;
    if (!reportImage(run, path, image, r, o, os, result, error))
      return false;
    progress.update(n + 1);
  }
  progress.finish();
  return true;
}

void qsim::eval::printBatchSummary(llvm::raw_ostream &os,
                                   const BatchResult &r) {
  size_t run = r.images - r.unreadable;
  os << strprintf("summary: %zu images (%zu unreadable), %zu detections, "
                  "mean forward %.1f ms\n",
                  r.images, r.unreadable, r.detections,
                  run ? r.forwardMillis / run : 0.0);
}

bool qsim::eval::reportRun(ModelRun &run, const BatchOptions &o,
                           const BatchResult &result, llvm::raw_ostream &os,
                           std::string &error) {
  if (o.batch)
    printBatchSummary(os, result);
  std::optional<MapReport> map = run.evaluation();
  if (map)
    printEvaluation(os, *map);
  if (auto comparison = run.comparison())
    printComparison(os, *comparison);
  if (auto overflow = run.overflow())
    printOverflow(os, *overflow);
  if (run.options().layerStats)
    printLayerStats(os, run.layerStats());
  std::optional<ForwardTiming> timing;
  if (run.options().repeat > 0) {
    timing = run.timeForward(run.options().repeat);
    printForwardTiming(os, *timing);
  }
  if (run.options().timeLayers)
    printLayerTimes(os, run.layerTimes(timing ? &*timing : nullptr));
  if (o.jsonPath.empty())
    return true;
  nlohmann::json root = {{"model", o.model}, {"images", result.imagesJson}};
  if (map)
    root["evaluation"] = evaluationJson(*map, o.names);
  return succeeded(writeFileAtomically(
      o.jsonPath,
      [&](llvm::raw_ostream &out) {
        out << root.dump(1) << "\n";
        return mlir::success();
      },
      error));
}
