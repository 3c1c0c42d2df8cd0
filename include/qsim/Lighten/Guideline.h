//===- Guideline.h - the lightening guideline as one pipeline ---*- C++ -*-===//
//
// G1 backbone -> G2 factorization -> G5 pruning -> G3 int8 -> G4 fp16, each
// step tried on a clone, measured (SQNR against the reference outputs, mAP,
// MACs, parameters, weight bytes, latency), kept when it respects the
// fidelity bounds, and the pipeline stops once every target is met.
// --qsim-lighten is its pass (docs/lightening.md).
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_LIGHTEN_GUIDELINE_H
#define QSIM_LIGHTEN_GUIDELINE_H

#include "qsim/Evaluation/ShardedEvaluation.h"
#include "qsim/Lighten/Backbone.h"
#include "qsim/Lighten/Factorization.h"
#include "qsim/Quant/Calibration.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"

#include <functional>
#include <optional>
#include <string>

namespace qsim::lighten {

/// A target for a count or a size: an absolute amount, or a percentage of
/// the original model's.
struct GuidelineTarget {
  double amount = 0;
  bool percentOfOriginal = false;
  /// The amount for a model whose original value is `original`.
  double resolve(double original) const;
};

/// Parses "300M", "1.5G", "2e6", "900K", "2MiB" or "50%". Unset for an empty
/// text; unset with `error` set when the text is malformed.
std::optional<GuidelineTarget> parseGuidelineTarget(llvm::StringRef text,
                                                    std::string &error);

/// recover=train: how a kept step (G1, G2, G5) is fine-tuned before it is
/// measured.
struct RecoveryOptions {
  int64_t steps = 200;
  int batch = 8;
  std::string images; // a folder of training images (no labels needed)
  int threads = 0;    // 0: all cores
};

/// Fine-tunes `student` towards `teacher` (the original model) as `options`
/// say; `note` gets a short account for the table ("loss 0.52 -> 0.11").
/// Fails with a diagnostic. The training library (lib/Train, libtorch) is
/// not linked here: a tool of a build with training registers the hook
/// (qsim-opt, which runs qsim-train); without one, recover=train is refused.
using RecoveryHook = std::function<mlir::LogicalResult(
    mlir::ModuleOp student, mlir::ModuleOp teacher,
    const RecoveryOptions &options, std::string &note)>;
void setRecoveryHook(RecoveryHook hook);
bool hasRecoveryHook();

struct GuidelineOptions {
  /// Targets; unset: none. Without any target every step runs.
  std::optional<GuidelineTarget> targetMacs, targetParams, targetBytes;
  std::optional<double> targetLatencyMs;

  /// Fidelity bounds; unset: none. A step that breaks one is rolled back.
  std::optional<double> minSqnr;     // dB, outputs against the original's
  std::optional<double> maxSqnrDrop; // dB below the original's fp16 SQNR
  std::optional<double> maxMapDrop;  // mAP points (needs evalDir)

  /// Calibration images (G3, G4); the first `fidelityImages` of them also
  /// give the output SQNR and the latency input.
  std::string calibDir;
  int calibImages = 100;
  int fidelityImages = 8;
  /// Images with YOLO labels beside them, for mAP (at most `evalImages`,
  /// 0: all).
  std::string evalDir;
  int evalImages = 0;
  /// Where the mAP measurements run: in process by default, or by sharded
  /// qsim-run processes.
  eval::ShardedEvalOptions evaluation;

  /// G1: the backbone to take from the donor network; unset: G1 is skipped.
  std::optional<BackboneOptions> backbone;
  /// G2: the method, how many of the heaviest convolutions, the starting
  /// energy (raised towards 1 while a fidelity bound is broken).
  FactorizeMethod factorizeMethod = FactorizeMethod::Tucker2;
  int factorizeTop = 3;
  double energy = 0.9;
  /// G5: the largest pruning ratio tried, the channel multiple.
  double maxPruneRatio = 0.5;
  int roundTo = 8;
  /// G2/G5: the first N calibration images refit what the step changed by
  /// least squares (Reconstruction.h); 0 or no calibDir: no refit.
  int refitImages = 16;
  /// G3: how activation ranges are chosen.
  quantization::CalibrationMethod calibMethod =
      quantization::CalibrationMethod::MinMax;

  /// recover=train: G1, G2 and G5 fine-tune what they keep before it is
  /// measured (the table shows both); unset: no training.
  std::optional<RecoveryOptions> recover;

  /// Forward passes per latency measurement (median), and their threads
  /// (0: all cores).
  int latencyRuns = 10;
  int threads = 0;
};

/// Runs the guideline on the float model `module`, which becomes the last
/// kept model. `donor` is the network G1 takes its backbone from, imported
/// by the caller (`loadDonorNetwork` in qsim/Target/ModelIO.h); null when
/// `options.backbone` is unset. Prints the targets, the fidelity bounds and
/// the measured table of every step to `report`. Fails with a diagnostic on
/// `module`.
mlir::LogicalResult applyGuideline(mlir::ModuleOp module,
                                   const GuidelineOptions &options,
                                   mlir::ModuleOp donor,
                                   llvm::raw_ostream &report);

} // namespace qsim::lighten

#endif
