//===- ShardedEvaluation.cpp - a candidate's mAP by sharded qsim-run ------===//

#include "qsim/Evaluation/ShardedEvaluation.h"
#include "qsim/Evaluation/Sweep.h"
#include "qsim/Support/FileUtils.h"
#include "qsim/Support/StringUtils.h"

#include "mlir/Bytecode/BytecodeWriter.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/xxhash.h"

using namespace qsim;
using namespace qsim::eval;

namespace {

std::string absolutePath(llvm::StringRef path) {
  llvm::SmallString<256> p(path);
  llvm::sys::fs::make_absolute(p);
  return p.str().str();
}

/// qsim-run beside the running executable (qsim-opt, qsim-studio), else in
/// PATH.
bool findQsimRun(std::string &out, std::string &error) {
  static int anchor;
  std::string self = llvm::sys::fs::getMainExecutable(nullptr, &anchor);
  llvm::SmallString<256> beside(llvm::sys::path::parent_path(self));
  llvm::sys::path::append(beside, "qsim-run");
  if (!self.empty() && llvm::sys::fs::can_execute(beside)) {
    out = beside.str().str();
    return true;
  }
  auto found = llvm::sys::findProgramByName("qsim-run");
  if (!found) {
    error = "qsim-run not found beside " + self + " nor in PATH";
    return false;
  }
  out = *found;
  return true;
}

} // namespace

bool qsim::eval::parseShardedEvalOptions(int shards, llvm::StringRef executor,
                                         llvm::StringRef workDir,
                                         ShardedEvalOptions &out,
                                         std::string &error) {
  if (shards < 0) {
    error = "eval-shards must be >= 0 (0: evaluate in this process)";
    return false;
  }
  if (executor != "local" && executor != "slurm") {
    error =
        "eval-executor must be local or slurm, not '" + executor.str() + "'";
    return false;
  }
  if (shards > 0 && workDir.empty()) {
    error = "eval-shards needs eval-workdir=DIR (for Slurm: a directory "
            "every node sees)";
    return false;
  }
  out.shards = shards;
  out.slurm = executor == "slurm";
  out.workDir = workDir.empty() ? "" : absolutePath(workDir);
  return true;
}

bool qsim::eval::evaluateMapSharded(mlir::ModuleOp module,
                                    const ShardedEvalOptions &o,
                                    const std::string &images,
                                    const std::string &labels, int maxImages,
                                    double &map, llvm::raw_ostream &log,
                                    std::string &error) {
  std::string bytes;
  {
    llvm::raw_string_ostream os(bytes);
    if (failed(mlir::writeBytecodeToFile(module, os))) {
      error = "cannot serialize the candidate model";
      return false;
    }
  }
  // Named by content: a rerun finds the parts of the candidates it already
  // evaluated, and never takes another model's parts for this one's.
  std::string dir =
      strprintf("%s/cand-%016llx", o.workDir.c_str(),
                (unsigned long long)llvm::xxh3_64bits(llvm::StringRef(bytes)));
  if (auto ec = llvm::sys::fs::create_directories(dir)) {
    error = "cannot create '" + dir + "': " + ec.message();
    return false;
  }
  SweepOptions s;
  s.model = dir + "/candidate.mlirbc";
  if (!llvm::sys::fs::exists(s.model) && failed(writeFileAtomically(
                                             s.model,
                                             [&](llvm::raw_ostream &os) {
                                               os << bytes;
                                               return mlir::success();
                                             },
                                             error)))
    return false;
  s.images = absolutePath(images);
  s.labels = absolutePath(labels);
  s.maxImages = maxImages;
  s.configs = {SweepConfig()}; // the model as it is
  s.shards = o.shards;
  s.workDir = dir;
  s.qsimRun = o.qsimRun;
  if (s.qsimRun.empty() && !findQsimRun(s.qsimRun, error))
    return false;
  s.slurm = o.slurm;
  s.slurmOptions.pollSeconds = o.pollSeconds;
  s.slurmOptions.cpusPerTask = 1;
  s.jobs = o.shards;
  s.threads = 1;
  s.retries = o.retries;
  std::vector<SweepRow> rows;
  if (!runSweep(s, rows, log, error))
    return false;
  map = rows.front().map50 * 100;
  return true;
}
