//===- Inference.h - image in, detections out -------------------*- C++ -*-===//
//
// What Darknet's `detector test`, `detector map` and `classifier predict`
// do around the forward pass, per flavour: preprocessing, decoding the
// heads, NMS with the last head's kind, top-k for classifiers.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_EVALUATION_INFERENCE_H
#define QSIM_EVALUATION_INFERENCE_H

#include "qsim/Interpreter/Executor.h"
#include "qsim/Runtime/Detection.h"
#include "qsim/Runtime/Image.h"

#include <optional>

namespace qsim::eval {

/// A detection head of the model, by step.
struct HeadDesc {
  size_t step = 0;
  bool isYolo = true;
  rt::YoloHead yolo;     // data pointer unset
  rt::RegionHead region; // data pointer unset
  bool isGaussianYolo = false, isDetectionV1 = false;
  rt::GaussianYoloHead gaussian; // data pointer unset
  rt::DetectionV1Head v1;        // data pointer unset
  rt::NmsKind nmsKind = rt::NmsKind::Default;
  float betaNms = 0.6f;
  int classes = 0;
};

struct ModelInfo {
  Flavor flavor = Flavor::AlexeyAB;
  int netW = 0, netH = 0, netC = 0;
  bool letterBoxCfg = false;
  std::vector<HeadDesc> heads;
  /// No detection heads: the last layer's output is a class distribution.
  bool isClassifier() const { return heads.empty(); }
  int classes() const { return heads.empty() ? 0 : heads.back().classes; }
};

ModelInfo describeModel(mlir::ModuleOp module, const interp::Executor &executor);

struct InferenceOptions {
  float thresh = 0.25f;
  float nms = 0.45f;
  /// Override the flavour's letterbox choice (AlexeyAB: cfg letter_box;
  /// pjreddie: always).
  std::optional<bool> letterbox;
  /// Classifier: how many classes to report.
  int topK = 5;
};

/// The preprocessing Darknet's tool applies for this model.
rt::Preprocess choosePreprocess(const ModelInfo &info,
                                std::optional<bool> letterbox);

struct InferenceResult {
  int imageW = 0, imageH = 0;
  /// Post-NMS detections, boxes as fractions of the image.
  std::vector<rt::Detection> detections;
  /// One entry per (box, class) above the threshold, as `detector test`.
  std::vector<rt::ReportedDetection> reported;
  /// Classifier: (class index, probability), best first.
  std::vector<std::pair<int, float>> top;
  size_t candidates = 0;
  double forwardMillis = 0;
  /// Set when the outputs hold NaN or infinities: the first layer that
  /// produced one and why ("layer 3 (convolutional) ...: its weights hold
  /// 12 NaN/Inf values").
  std::string nonFiniteHint;
};

/// Runs the model on a preprocessed input already set on the executor and
/// decodes its outputs for an image of imageW x imageH.
InferenceResult decodeOutputs(interp::Executor &executor, const ModelInfo &info,
                              int imageW, int imageH,
                              const InferenceOptions &options);
/// Preprocess, forward, decode.
InferenceResult runImage(interp::Executor &executor, const ModelInfo &info,
                         const rt::Image &image,
                         const InferenceOptions &options);

} // namespace qsim::eval

#endif
