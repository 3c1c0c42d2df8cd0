//===- Train.h - fine-tune a module from a teacher (libtorch) ---*- C++ -*-===//
//
// trainModule() builds the torch view of a student module (float, or with
// int8 / fp16 layers as fake quantization), trains it towards a teacher
// module (distillation on the detection heads, optional feature hints, the
// Darknet YOLO loss on labelled images) and writes the weights, and the
// learned activation ranges, back into the same module. docs/training.md
// describes the losses, the data and the options. This header holds no
// torch types: callers (qsim-train, a pass, the studio's job) need neither
// libtorch headers nor RTTI.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_TRAIN_TRAIN_H
#define QSIM_TRAIN_TRAIN_H

#include "mlir/IR/BuiltinOps.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace qsim::train {

struct TrainOptions {
  /// Image folders or files; YOLO labels (<stem>.txt) in `labels` when set.
  std::vector<std::string> images;
  std::string labels;
  int64_t steps = 0;
  int batch = 8;
  /// Defaults from the student's [net] keys (learning_rate, burn_in,
  /// policy, steps, scales, momentum, decay); see docs/training.md.
  std::optional<double> lr, momentum, decay;
  std::optional<int64_t> burnIn;
  enum class Schedule { Net, Constant, Steps, Cosine } schedule = Schedule::Net;
  enum class Optimizer { SGD, Adam } optimizer = Optimizer::SGD;
  /// Layers whose weights stay (items as --qsim-assign-precision's lists:
  /// "7", "0-12").
  std::vector<std::string> freeze;
  /// Feature hints: (student layer, teacher layer).
  std::vector<std::pair<int64_t, int64_t>> hints;
  double distillWeight = 1, yoloWeight = 1, hintWeight = 1;
  /// Quantization-aware training of a float student with a precision plan
  /// and calibrated ranges, for --qsim-quantize with these options.
  bool qat = false;
  bool perChannelWeights = true, symmetricActivations = false,
       pow2Scales = false;
  /// Learn the activation ranges (LSQ); written to `qsim.calib`.
  bool lsq = false;
  /// Darknet's augmentation from the cfg (jitter, flip, hue, saturation,
  /// exposure); off: the images as the detector sees them.
  bool augment = true;
  /// torch's threads (0: all cores) and image loading threads.
  int threads = 0, loaderThreads = 1;
  uint64_t seed = 0;
  int64_t checkpointEvery = 0;
  /// mAP@0.5 every `evalEvery` steps (and at the end) on these labelled
  /// images, with the interpreter (the int8 model for --qat).
  int64_t evalEvery = 0;
  std::vector<std::string> evalImages;
  std::string evalLabels;
  /// Continue a run: the student is a checkpoint (its `qsim.training` says
  /// at which step it was written); `optimizerState` is the state saved
  /// with it (empty: the momentum restarts). Without `resume` a student
  /// trained before starts a new run at step 0.
  bool resume = false;
  std::string optimizerState;
  /// File names for messages.
  std::string studentName = "student", teacherName = "teacher";
  bool progressBar = true;
};

/// After every step.
struct TrainProgress {
  int64_t step = 0, steps = 0;
  double loss = 0, distill = 0, yolo = 0, hint = 0, lr = 0;
  double seconds = 0;
  /// The step's time: waiting for images, teacher forward, student forward
  /// and losses, backward and update.
  double dataSeconds = 0, teacherSeconds = 0, forwardSeconds = 0,
         backwardSeconds = 0;
  std::optional<double> map;
};

struct TrainCallbacks {
  std::function<void(const TrainProgress &)> progress;
  /// Polled between steps: true ends training early; the weights trained
  /// so far are written back and trainModule succeeds (summary.stopped).
  std::function<bool()> stop;
  /// Every checkpointEvery steps: `checkpoint` is a copy of the student
  /// holding the weights of `step`; `optimizerState` lets a later run
  /// resume exactly. Return failure to abort (with a diagnostic).
  std::function<mlir::LogicalResult(mlir::ModuleOp checkpoint, int64_t step,
                                    const std::string &optimizerState)>
      checkpoint;
};

struct TrainSummary {
  int64_t firstStep = 0, lastStep = 0;
  bool stopped = false;
  std::vector<TrainProgress> history;
  std::optional<double> mapBefore, mapAfter;
  std::string optimizerState;
  std::string schedule; // as followed, for the log
};

/// Trains `student` towards `teacher`; on success the student holds the
/// trained weights (and `qsim.training` = {step, steps, seed}). Errors are
/// diagnostics on the modules (the layer, the file names of the options)
/// and leave the student unchanged.
mlir::LogicalResult trainModule(mlir::ModuleOp student, mlir::ModuleOp teacher,
                                const TrainOptions &options,
                                const TrainCallbacks &callbacks = {},
                                TrainSummary *summary = nullptr);

/// The step a checkpoint was written at (its `qsim.training`), or 0.
int64_t checkpointStep(mlir::ModuleOp module);

} // namespace qsim::train

#endif
