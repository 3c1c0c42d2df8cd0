//===- ModelMeasures.cpp - a whole model's outputs, SQNR and mAP ---------===//
//
// The measurements quantization, lightening and the guideline compare
// models by: the function results on preprocessed images, their SQNR
// against a reference, and mAP@0.5 as Darknet's `detector map`.
//
//===----------------------------------------------------------------------===//

#include "qsim/Evaluation/ModelMeasures.h"
#include "qsim/Evaluation/Inference.h"
#include "qsim/Support/Diagnostics.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace qsim;

double qsim::eval::sqnr(const std::vector<float> &ref,
                                const std::vector<float> &test) {
  double sig = 0, err = 0;
  for (size_t i = 0; i < ref.size() && i < test.size(); ++i) {
    sig += (double)ref[i] * ref[i];
    double d = (double)ref[i] - test[i];
    err += d * d;
  }
  if (err == 0)
    return std::numeric_limits<double>::infinity();
  if (sig == 0)
    return -std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(sig / err);
}

std::unique_ptr<interp::Executor>
qsim::eval::createExecutor(ModuleOp module, std::string &error,
                           const interp::ExecutorOptions &options) {
  DiagnosticCapture diagnostics(module.getContext());
  auto ex = interp::Executor::create(module, options);
  if (!ex)
    error = diagnostics.take("the model cannot be planned");
  return ex;
}

bool qsim::eval::loadNetworkInputs(ModuleOp module,
                                   const std::vector<std::string> &files,
                                   std::vector<rt::Tensor> &inputs,
                                   std::string &error, int64_t maxPixels) {
  auto ex = createExecutor(module, error);
  if (!ex)
    return false;
  eval::ModelInfo info = eval::describeModel(module, *ex);
  rt::Preprocess pre = eval::choosePreprocess(info, std::nullopt);
  for (const std::string &f : files) {
    rt::Image im;
    if (!rt::loadImage(f, im, error, maxPixels))
      return false;
    inputs.push_back(rt::makeNetworkInput(im, info.netW, info.netH, pre));
  }
  return true;
}

LogicalResult qsim::eval::loadImageInputs(ModuleOp module,
                                          ArrayRef<std::string> paths,
                                          int maxImages, StringRef prefix,
                                          std::vector<rt::Tensor> &inputs) {
  std::string error;
  std::vector<std::string> files;
  for (const std::string &path : paths)
    if (!rt::listImageFiles(path, files, error))
      return module.emitError() << prefix << error;
  if (files.empty())
    return module.emitError() << prefix << "no images";
  if (maxImages > 0 && (size_t)maxImages < files.size())
    files.resize(maxImages);
  if (!loadNetworkInputs(module, files, inputs, error, 64ll << 20))
    return module.emitError() << prefix << error;
  return success();
}

bool qsim::eval::runOutputs(ModuleOp module,
                                    const std::vector<rt::Tensor> &inputs,
                                    std::vector<float> &out,
                                    std::string &error) {
  auto ex = createExecutor(module, error);
  if (!ex)
    return false;
  out.clear();
  for (const rt::Tensor &in : inputs) {
    ex->setInput(in);
    ex->run();
    for (const rt::Tensor &t : ex->outputs()) {
      std::vector<float> v = t.toFloat();
      out.insert(out.end(), v.begin(), v.end());
    }
  }
  return true;
}

bool qsim::eval::evaluateMap(
    ModuleOp module, const std::vector<rt::Image> &images,
    const std::vector<std::vector<rt::GroundTruth>> &truth, double &map,
    std::string &error) {
  auto ex = createExecutor(module, error);
  if (!ex)
    return false;
  eval::ModelInfo info = eval::describeModel(module, *ex);
  if (info.isClassifier()) {
    error = "mAP needs a detection model";
    return false;
  }
  rt::MapEvaluator evaluator(info.classes());
  eval::InferenceOptions io;
  io.thresh = 0.005f;
  for (size_t i = 0; i < images.size(); ++i) {
    auto r = eval::runImage(*ex, info, images[i], io);
    evaluator.addImage(r.detections, truth[i]);
  }
  map = evaluator.compute().map * 100;
  return true;
}
