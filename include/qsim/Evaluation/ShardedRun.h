//===- ShardedRun.h - a model run split into shards, merged -----*- C++ -*-===//
//
// `qsim-run ... --shard K/N --part-out F` runs every N-th image from K and
// writes a part file: each image's mAP candidates (the post-NMS detections
// `detector map` collects, floats stored bit for bit), its detection count
// and forward time, and what the run was (model fingerprint, options, image
// list). `qsim-run --merge PARTS... --eval LABELS` replays the images in
// their original order into the same MapEvaluator and prints the summary
// lines of the unsharded run, bit-identical (forward times are measured, so
// only they differ from one run to another). See docs/scale-out.md.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_EVALUATION_SHARDEDRUN_H
#define QSIM_EVALUATION_SHARDEDRUN_H

#include "qsim/Evaluation/ImageBatch.h"
#include "qsim/Runtime/Detection.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/raw_ostream.h"

#include <string>
#include <vector>

namespace qsim::eval {

/// Shard `index` of `count`: the items whose position i in the full list
/// has i % count == index.
struct Shard {
  int index = 0, count = 1;
};
/// "K/N" with 0 <= K < N.
bool parseShard(llvm::StringRef text, Shard &shard, std::string &error);
/// The items of `shard`, in order.
std::vector<std::string> selectShard(const std::vector<std::string> &items,
                                     Shard shard);
/// The hex xxh3 hash of the files' contents and `extra`; the error names
/// an unreadable file.
bool fingerprintFiles(const std::vector<std::string> &files,
                      llvm::StringRef extra, std::string &fingerprint,
                      std::string &error);

/// What every part of one run shares; parts that differ are not merged.
struct RunIdentity {
  std::string model;       // as given, for messages
  std::string fingerprint; // of the model's files, the options, the images
  std::string options;     // the options that decide the results, readable
  size_t images = 0;       // of the whole run
  bool batch = false, labels = false;
  int classes = 0;
  float thresh = 0; // reporting threshold (the mAP summary line's)
};

/// The identity of a run of `run` over `images` (the whole list): the
/// fingerprint hashes `modelFiles`' contents, `options` and the images'
/// names.
bool describeRun(const ModelRun &run, const std::string &model,
                 const std::vector<std::string> &modelFiles,
                 const std::string &options,
                 const std::vector<std::string> &images, bool batch,
                 RunIdentity &identity, std::string &error);

/// One image of a part.
struct PartImage {
  size_t index = 0; // in the whole run's image list
  std::string path;
  bool unreadable = false;
  /// Post-NMS candidates as the MapEvaluator receives them (with labels).
  std::vector<rt::Detection> candidates;
  size_t reported = 0; // detections at the reporting threshold
  double forwardMillis = 0;
};

struct RunPart {
  RunIdentity identity;
  Shard shard;
  std::vector<PartImage> images;
};

/// Records one image of a shard run (BatchOptions::recordImage).
void recordPartImage(RunPart &part, size_t positionInShard,
                     const std::string &path, const InferenceResult *result,
                     bool withCandidates);

/// Written atomically (a reader never sees a partial part).
bool writeRunPart(const std::string &path, const RunPart &part,
                  std::string &error);
/// Fails naming `path` when it is unreadable, truncated or not a part.
bool readRunPart(const std::string &path, RunPart &part, std::string &error);

/// The parts of one run, checked (same run, every shard once, every image
/// once), with the images in their original order.
struct MergedRun {
  RunIdentity identity;
  std::vector<PartImage> images;
};
bool mergeRunParts(const std::vector<std::string> &paths, MergedRun &merged,
                   std::string &error);

/// The batch totals of the merged images (as runImages accumulates them)
/// and, with `labelsDir`, the mAP.
bool evaluateMergedRun(const MergedRun &merged, const std::string &labelsDir,
                       BatchResult &batch, std::optional<MapReport> &map,
                       std::string &error);

/// What the unsharded run prints after its images: the batch summary and,
/// with `labelsDir`, the mAP lines; with `jsonPath`, the model and the
/// evaluation as --json writes them.
bool reportMergedRun(const MergedRun &merged, const std::string &labelsDir,
                     const std::vector<std::string> &names,
                     const std::string &jsonPath, llvm::raw_ostream &os,
                     std::string &error);

} // namespace qsim::eval

#endif
