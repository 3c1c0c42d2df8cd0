//===- RunCommand.h - what qsim-run does with its options -------*- C++ -*-===//
//
// qsim-run's command once its options are parsed: a step session
// (lib/Session), a merge of shard part files, or a run of a model over
// images: load (and quantize with --mode/--precision), compare, shard, run,
// report (lib/Evaluation's ModelRun and RunReport). The tool only declares
// the options (tools/qsim-run); every check and message is here, so other
// drivers get qsim-run's behaviour from the same typed options.
//
// A library of its own (QSimRunCommand) above the session: it links the
// session, the quantization pipeline and model loading.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_EVALUATION_RUNCOMMAND_H
#define QSIM_EVALUATION_RUNCOMMAND_H

#include "qsim/Evaluation/ImageBatch.h"
#include "qsim/Evaluation/ModelRun.h"
#include "qsim/Session/CommandLine.h"
#include "qsim/Transforms/QuantizePipeline.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace qsim::eval {

/// qsim-run's options (docs/qsim-run.md). The enum-like strings hold the
/// spellings the command line accepted (the tool checks them), which is
/// also how a shard's identity records them.
struct RunCommandOptions {
  std::string model, weights, image, names, flavor, saveModel, compare,
      kernels = "fast";
  std::optional<uint64_t> randomSeed;
  float hierThresh = 0.5f;
  int maxImages = 0;
  bool letterbox = false, noLetterbox = false, allowUnknownKeys = false;
  // Quantization before the run or session (also `quant`'s precision,
  // quantize and calibImages).
  std::string mode, calib, calibMethod = "minmax";
  QuantizeRequest quant;
  // What the run measures and prints; the session instead.
  RunOptions run;
  BatchOptions batch;
  session::SessionCommandLine session;
  // Sharded evaluation (docs/scale-out.md).
  std::string shard, partOut;
  std::vector<std::string> merge;
};

/// Runs what the options ask for: the session, the merge or the run,
/// after checking that the options go together. Prints results on stdout
/// and errors as "qsim-run: error: ..." (or with the file, line and layer
/// they are about) on stderr; returns the exit status.
int runCommand(RunCommandOptions &options);

} // namespace qsim::eval

#endif
