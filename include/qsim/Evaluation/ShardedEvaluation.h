//===- ShardedEvaluation.h - a candidate's mAP by sharded qsim-run -*- C++ -*-//
//
// The hook through which the mixed-precision search and the guideline
// evaluate a candidate model's mAP outside their process: the candidate is
// written to the work directory under its content hash and evaluated by
// `qsim-run --shard K/N` tasks (Sweep.h: local processes or one Slurm job
// array), whose parts are merged into exactly the mAP that evaluateMap
// (ModelMeasures.h) gives in process. See docs/scale-out.md.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_EVALUATION_SHARDEDEVALUATION_H
#define QSIM_EVALUATION_SHARDEDEVALUATION_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"

#include <string>

namespace qsim::eval {

/// How candidates are evaluated: in process (shards == 0, the default) or by
/// `shards` qsim-run processes.
struct ShardedEvalOptions {
  int shards = 0;
  /// slurm: one `sbatch --array` per candidate (partition and account from
  /// Slurm's own SBATCH_PARTITION / SBATCH_ACCOUNT); else local processes,
  /// all shards at once, one thread each.
  bool slurm = false;
  /// Candidates' models, parts and logs (shared by the nodes for Slurm). A
  /// candidate already evaluated there (same model bytes) is not run again.
  std::string workDir;
  /// qsim-run; empty: the one beside the running executable, else PATH.
  std::string qsimRun;
  double pollSeconds = 1;
  int retries = 2;
  bool enabled() const { return shards > 0; }
};

/// Checks the options given as pass options (`eval-shards`, `eval-executor`,
/// `eval-workdir`) and fills `out`; `executor` is "local" or "slurm".
bool parseShardedEvalOptions(int shards, llvm::StringRef executor,
                             llvm::StringRef workDir, ShardedEvalOptions &out,
                             std::string &error);

/// mAP@0.5 in % of `module` on the first `maxImages` (0: all) images of
/// `images` with the YOLO labels of `labels`, by sharded qsim-run processes:
/// equal to evaluateMap on the same images. `log` tells what is submitted.
bool evaluateMapSharded(mlir::ModuleOp module, const ShardedEvalOptions &o,
                        const std::string &images, const std::string &labels,
                        int maxImages, double &map, llvm::raw_ostream &log,
                        std::string &error);

} // namespace qsim::eval

#endif
