//===- Trainer.h - the training loop, without MLIR or torch types -*- C++
//-*-===//
//
// The loop runs on NetSpecs (torch side); the MLIR side (Train.cpp) turns
// modules into NetSpecs, implements the hooks (checkpoints as .mlirbc, mAP
// with the interpreter) and writes the result back.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_LIB_TRAIN_TRAINER_H
#define QSIM_LIB_TRAIN_TRAINER_H

#include "Data.h"
#include "Schedule.h"
#include "qsim/Train/NetSpec.h"
#include "qsim/Train/View.h"

#include <functional>
#include <string>
#include <vector>

namespace qsim::train {

enum class OptimizerKind { SGD, Adam };

/// A feature hint: the student node's output should match the teacher
/// layer's (through a trained 1x1 adapter when the channels differ).
struct HintPair {
  int studentNode = 0;
  int64_t teacherLayer = 0;
  std::string label;
};

struct TrainerConfig {
  int64_t steps = 0, startStep = 0;
  Schedule schedule;
  OptimizerKind optimizer = OptimizerKind::SGD;
  double momentum = 0.9, decay = 0.0005;
  /// Per student node: its weights stay as they are.
  std::vector<bool> frozen;
  std::vector<HintPair> hints;
  double distillWeight = 1, yoloWeight = 1, hintWeight = 1;
  ViewOptions view;
  int threads = 0;
  uint64_t seed = 0;
  int64_t checkpointEvery = 0, evalEvery = 0;
  /// Optimizer state of a resumed run (torch archive bytes), or empty.
  std::string optimizerState;
};

struct StepReport {
  int64_t step = 0, steps = 0;
  double loss = 0, distill = 0, yolo = 0, hint = 0, lr = 0;
  double seconds = 0; // this step
  /// Where the step's time went: waiting for the batch, the teacher's
  /// forward, the student's forward and loss, backward and update.
  double dataSeconds = 0, teacherSeconds = 0, forwardSeconds = 0,
         backwardSeconds = 0;
  bool evaluated = false;
  double map = 0;
};

struct TrainerHooks {
  /// The teacher's outputs of `layers` on `batch` (N x C x H x W each);
  /// the teacher runs in the interpreter, which is much faster than a
  /// torch forward and is the specification.
  std::function<bool(const Batch &batch, const std::vector<int64_t> &layers,
                     std::vector<std::vector<float>> &outputs,
                     std::string &error)>
      teacher;
  std::function<void(const StepReport &)> report;
  /// Polled after every step: true ends the run early (not a failure).
  std::function<bool()> stop;
  std::function<bool(const NetSpec &trained, int64_t step,
                     const std::string &optimizerState, std::string &error)>
      checkpoint;
  std::function<bool(const NetSpec &trained, double &map, std::string &error)>
      evaluate;
};

struct TrainerResult {
  int64_t endStep = 0; // steps done, counting a resumed run's
  bool stopped = false;
  std::vector<StepReport> history;
  std::string optimizerState;
};

/// Trains `student` (weights updated in place on success) towards
/// `teacher` on `data`. Fails with `error` (diverged loss, unreadable
/// image, a hook's error).
bool runTrainer(NetSpec &student, const NetSpec &teacher, DataLoader &data,
                const TrainerConfig &config, const TrainerHooks &hooks,
                TrainerResult &result, std::string &error);

} // namespace qsim::train

#endif
