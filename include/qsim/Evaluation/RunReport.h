//===- RunReport.h - printing a model run's results -------------*- C++ -*-===//
//
// qsim-run's tables, JSON and drawings of the results ModelRun.h computes:
// one function per report, so that every client prints them the same way.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_EVALUATION_RUNREPORT_H
#define QSIM_EVALUATION_RUNREPORT_H

#include "qsim/Evaluation/ModelRun.h"

#include "llvm/Support/raw_ostream.h"

#include <nlohmann/json.hpp>

namespace qsim::eval {

/// "name" from the class names, else "class N".
std::string className(const std::vector<std::string> &names, int id);
/// "resize", "letterbox", "resize_min + centre crop".
const char *preprocessName(rt::Preprocess p);

/// One image's detections (or top classes) as a table.
void printImageResult(llvm::raw_ostream &os, const std::string &path,
                      const InferenceResult &result,
                      const std::vector<std::string> &names,
                      rt::Preprocess preprocess);
/// One image's result for --json: size, forward time, detections or top.
nlohmann::json imageResultJson(const std::string &path,
                               const InferenceResult &result,
                               const std::vector<std::string> &names);
/// The image with one box per detection, labelled with every class above
/// the threshold (as Darknet's draw_detections), written as PNG.
bool drawDetections(const rt::Image &image, const InferenceResult &result,
                    const std::vector<std::string> &names, int classes,
                    const std::string &pngPath, std::string &error);

void printEvaluation(llvm::raw_ostream &os, const MapReport &map);
nlohmann::json evaluationJson(const MapReport &map,
                              const std::vector<std::string> &names);

/// Said before the run when the models' layers do not correspond.
void printOutputsOnlyNote(llvm::raw_ostream &os, size_t layers,
                          size_t referenceLayers);
void printComparison(llvm::raw_ostream &os, const ComparisonReport &report);
void printOverflow(llvm::raw_ostream &os, const OverflowReport &report);
void printLayerStats(llvm::raw_ostream &os,
                     const std::vector<LayerStatsRow> &rows);
void printForwardTiming(llvm::raw_ostream &os, const ForwardTiming &timing);
/// Each layer's time, its share of the total and a bar.
void printLayerTimes(llvm::raw_ostream &os,
                     const std::vector<LayerTimeRow> &rows);

} // namespace qsim::eval

#endif
