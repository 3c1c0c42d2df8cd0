//===- Data.h - training images, labels and augmentation --------*- C++ -*-===//
//
// Image folders decoded by the project's image pipeline (lib/Runtime/Image),
// Darknet's detector-training augmentation (AlexeyAB load_data_detection
// without OpenCV: jitter crop, horizontal flip, HSV distortion), batches
// prepared ahead by worker threads. The batch of step s depends only on the
// seed and s, never on thread timing.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_LIB_TRAIN_DATA_H
#define QSIM_LIB_TRAIN_DATA_H

#include "qsim/Runtime/Evaluation.h"
#include "qsim/Runtime/Image.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace qsim::train {

/// Darknet's augmentation keys ([net] hue, saturation, exposure, flip;
/// the [yolo] layers' jitter).
struct Augmentation {
  bool enabled = true;
  float jitter = 0.0f;
  bool flip = true;
  float hue = 0.0f, saturation = 1.0f, exposure = 1.0f;
};

struct DataOptions {
  std::vector<std::string> images; // folders or files
  std::string labels;              // YOLO label folder; empty: none
  int classes = 0;                 // label class ids must be below
  int netW = 0, netH = 0;
  bool letterbox = false;
  int batch = 1;
  uint64_t seed = 0;
  int threads = 1;
  Augmentation augmentation;
  /// Decoded images kept in memory (8-bit), up to this many bytes.
  size_t cacheBytes = size_t(1) << 30;
};

struct Batch {
  int64_t step = 0;
  int n = 0, c = 3, h = 0, w = 0;
  std::vector<float> data; // N x 3 x H x W
  /// Per image: its boxes after augmentation, and whether it has labels.
  std::vector<std::vector<rt::GroundTruth>> truth;
  std::vector<char> labeled;
  std::vector<std::string> files;
};

/// Darknet's random_distort_image on a [0,1] RGB image.
void distortImage(rt::Image &im, float dhue, float dsat, float dexp);
/// Darknet's flip_image (left-right).
void flipImage(rt::Image &im);

class DataLoader {
public:
  /// Lists the images (an empty folder, an unreadable label file or a label
  /// outside the classes / the image is an error naming the file).
  static std::unique_ptr<DataLoader> create(const DataOptions &options,
                                            std::string &error);
  ~DataLoader();
  size_t size() const { return files.size(); }
  size_t labeledCount() const;
  /// The batch of `step`; the next ones are prepared meanwhile.
  bool get(int64_t step, Batch &out, std::string &error);

private:
  DataLoader() = default;
  void worker();
  bool build(int64_t step, Batch &out, std::string &error);
  struct Cached;
  /// Image `index`: its cached bytes (`bytes`, `out` left empty) or, when it
  /// was decoded just now or the cache is full, the float image (`out`).
  bool image(size_t index, rt::Image &out, const Cached *&bytes,
             std::string &error);
  void sampleOrder(int64_t epoch, std::vector<size_t> &order) const;

  DataOptions opts;
  std::vector<std::string> files;
  std::vector<std::vector<rt::GroundTruth>> labels;
  std::vector<char> hasLabels;
  // Decoded images (8-bit), filled lazily.
  struct Cached {
    std::once_flag once;
    int w = 0, h = 0;
    std::vector<uint8_t> pixels;
    std::string error;
    /// The float image the bytes stand for (u8 / 255, as rt::loadImage).
    rt::Image toImage() const;
  };
  std::vector<std::unique_ptr<Cached>> cache;
  std::atomic<size_t> cachedBytes{0};
  // Prefetch: workers build the batches of wanted steps.
  std::mutex mutex;
  std::condition_variable wake, ready;
  std::map<int64_t, Batch> done;
  std::map<int64_t, std::string> failed;
  // Nothing is built before the first get().
  int64_t nextToBuild = 0, wanted = -(int64_t(1) << 40);
  bool stopping = false;
  std::vector<std::thread> workers;
};

} // namespace qsim::train

#endif
