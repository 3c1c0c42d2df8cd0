//===- Detection.h - Darknet's box decoding, NMS, top-k ---------*- C++ -*-===//
//
// get_network_boxes, do_nms_sort / diounms_sort and top_k exactly as
// docs/darknet.md §R5, §R6 and §R8 describe them, for both flavours.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_RUNTIME_DETECTION_H
#define QSIM_RUNTIME_DETECTION_H

#include <cstdint>
#include <string>
#include <vector>

namespace qsim::rt {

enum class Flavor { AlexeyAB, PJReddie };
/// The values are also qsim_yolo_head's nms_kind in generated device headers.
enum class NmsKind { Default = 0, Greedy = 1, DIoU = 2, Corners = 3 };

/// Centre x, y and size w, h (fractions of the network input or image).
struct Box {
  float x = 0, y = 0, w = 0, h = 0;
};

/// One Darknet `detection`: a box with a probability per class.
struct Detection {
  Box bbox;
  std::vector<float> prob;
  float objectness = 0;
  /// Which head (layer index) and cell/anchor produced it (for reports).
  int layer = -1;
};

/// A [yolo] layer's output as Darknet leaves it (after logistic and
/// scale_x_y), in CHW: n = mask.size() blocks of 5 + classes channels.
struct YoloHead {
  const float *data = nullptr;
  int w = 0, h = 0, classes = 0;
  std::vector<int> mask;
  std::vector<float> anchors; // all (w, h) pairs, network-input pixels
  bool newCoords = false;
  int layer = -1;
};

/// A [region] layer's output as the flavour leaves it (AlexeyAB: HWC with
/// raw box coordinates; pjreddie: CHW with logistic x, y, objectness).
struct RegionHead {
  const float *data = nullptr;
  int w = 0, h = 0, classes = 0, coords = 4, num = 1;
  std::vector<float> anchors; // grid-cell units
  bool softmax = false;
  int classfix = 0;
  int layer = -1;
};

/// A [Gaussian_yolo] layer's output (docs/darknet.md §R4.20): n = mask
/// blocks of 9 + classes channels.
struct GaussianYoloHead {
  const float *data = nullptr;
  int w = 0, h = 0, classes = 0;
  std::vector<int> mask;
  std::vector<float> anchors; // network-input pixels
  int layer = -1;
};

/// A YOLOv1 [detection] layer's output (docs/darknet.md §R4.17).
struct DetectionV1Head {
  const float *data = nullptr;
  int side = 7, classes = 0, num = 1, coords = 4;
  bool sqrt = false;
  int layer = -1;
};

struct DecodeOptions {
  int netW = 0, netH = 0;
  int imageW = 0, imageH = 0;
  float thresh = 0.25f;
  /// The input was letterboxed: boxes are corrected for it (pjreddie's
  /// tools always letterbox; AlexeyAB's when the cfg says letter_box=1).
  bool letterbox = false;
  /// Boxes as fractions of the image (true) or pixels (false).
  bool relative = true;
  Flavor flavor = Flavor::AlexeyAB;
};

/// Appends the candidates of one head in Darknet's order (§R5.1, §R5.2) and
/// corrects them to the original image (§R5.3).
void getYoloDetections(const YoloHead &head, const DecodeOptions &opts,
                       std::vector<Detection> &dets);
void getRegionDetections(const RegionHead &head, const DecodeOptions &opts,
                         std::vector<Detection> &dets);
/// get_gaussian_yolo_detections: candidates where objectness > thresh,
/// prob = obj * cls * (1 - mean uncertainty); corrected as [yolo] boxes.
void getGaussianYoloDetections(const GaussianYoloHead &head,
                               const DecodeOptions &opts,
                               std::vector<Detection> &dets);
/// get_detection_detections with w = h = 1 (boxes as fractions of the
/// network input, which a plain resize maps onto the image): every (cell,
/// box) is a candidate.
void getDetectionV1Detections(const DetectionV1Head &head,
                              const DecodeOptions &opts,
                              std::vector<Detection> &dets);

/// AlexeyAB box_iou (0 when the intersection or union is 0).
float boxIou(const Box &a, const Box &b);
/// IoU - (d^2/c^2)^beta (beta 0.6 for box_diou).
float boxDiou(const Box &a, const Box &b, float beta);

/// do_nms_sort (§R6.2), stable-sort semantics; `dets` is reordered as
/// Darknet leaves it.
void nmsSort(std::vector<Detection> &dets, int classes, float thresh);
/// diounms_sort (§R6.3) for the given kind.
void diouNmsSort(std::vector<Detection> &dets, int classes, float thresh,
                 NmsKind kind, float beta);

/// What `detector test` reports: one entry per (box, class) with
/// prob > thresh, sorted by class ascending then prob descending, with the
/// pixel box as Darknet draws it (docs/darknet.md §R5.4).
/// A detection head of a model, with its output (C x H x W floats) set.
struct HeadSpec {
  bool isYolo = true;
  YoloHead yolo;
  RegionHead region;
  /// Set for a [Gaussian_yolo] or [detection] head (isYolo false: Darknet's
  /// default sort NMS).
  bool isGaussianYolo = false, isDetectionV1 = false;
  GaussianYoloHead gaussian;
  DetectionV1Head v1;
  NmsKind nmsKind = NmsKind::Default;
  float betaNms = 0.6f;
  int classes = 0;
};

/// What Darknet's detector does after the forward pass: every head's
/// candidates, then NMS of the kind the last head asks for (sort-based IoU
/// NMS for default and region heads).
std::vector<Detection> decodeHeads(const std::vector<HeadSpec> &heads,
                                   const DecodeOptions &opts, float nms);

struct ReportedDetection {
  int classId = 0;
  float prob = 0, objectness = 0;
  Box rel;
  int left = 0, top = 0, right = 0, bottom = 0;
};
std::vector<ReportedDetection>
reportDetections(const std::vector<Detection> &dets, int imageW, int imageH,
                 float thresh);

/// Darknet's top_k: indices of the k largest values, ties to the lower index.
std::vector<int> topK(const float *values, int n, int k);

/// Reads a names file (one name per line, kept as is, trailing spaces too).
bool readNames(const std::string &path, std::vector<std::string> &names,
               std::string &error);

} // namespace qsim::rt

#endif
