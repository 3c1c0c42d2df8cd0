//===- ShardedRun.cpp - a model run split into shards, merged ------------===//

#include "qsim/Evaluation/ShardedRun.h"
#include "qsim/Evaluation/RunReport.h"
#include "qsim/Runtime/Evaluation.h"
#include "qsim/Support/FileUtils.h"
#include "qsim/Support/StringUtils.h"
#include "qsim/Support/VersionedJsonFile.h"

#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/xxhash.h"

#include <cstring>
#include <map>

using namespace qsim;
using namespace qsim::eval;
using json = nlohmann::json;

static constexpr qsim::VersionedJsonKind kPart{
    "part", "a qsim-run part file", "qsim-run-part", 1, "run its shard again"};

bool qsim::eval::parseShard(llvm::StringRef text, Shard &shard,
                            std::string &error) {
  auto [k, n] = text.split('/');
  if (k.getAsInteger(10, shard.index) || n.getAsInteger(10, shard.count) ||
      shard.count < 1 || shard.index < 0) {
    error = "shard '" + text.str() + "' is not K/N (e.g. 0/4)";
    return false;
  }
  if (shard.index >= shard.count) {
    error = "shard '" + text.str() + "': K must be below N (shards 0/" +
            std::to_string(shard.count) + " to " +
            std::to_string(shard.count - 1) + "/" +
            std::to_string(shard.count) + ")";
    return false;
  }
  return true;
}

std::vector<std::string>
qsim::eval::selectShard(const std::vector<std::string> &items, Shard shard) {
  std::vector<std::string> out;
  for (size_t i = shard.index; i < items.size(); i += shard.count)
    out.push_back(items[i]);
  return out;
}

bool qsim::eval::fingerprintFiles(const std::vector<std::string> &files,
                                  llvm::StringRef extra,
                                  std::string &fingerprint,
                                  std::string &error) {
  std::string hashes;
  for (const std::string &f : files) {
    auto buf = llvm::MemoryBuffer::getFile(f, /*IsText=*/false,
                                           /*RequiresNullTerminator=*/false);
    if (!buf) {
      error = "cannot read '" + f + "': " + buf.getError().message();
      return false;
    }
    hashes += strprintf(
        "%016llx", (unsigned long long)llvm::xxh3_64bits((*buf)->getBuffer()));
  }
  fingerprint = strprintf("%016llx", (unsigned long long)llvm::xxh3_64bits(
                                         hashes + "\n" + extra.str()));
  return true;
}

bool qsim::eval::describeRun(const ModelRun &run, const std::string &model,
                             const std::vector<std::string> &modelFiles,
                             const std::string &options,
                             const std::vector<std::string> &images, bool batch,
                             RunIdentity &identity, std::string &error) {
  // Image names, not paths: nodes may mount the data elsewhere.
  std::string names;
  for (const std::string &image : images)
    names += llvm::sys::path::filename(image).str() + "\n";
  identity.model = model;
  identity.options = options;
  identity.images = images.size();
  identity.batch = batch;
  identity.labels = run.hasLabels();
  identity.classes = run.info().classes();
  identity.thresh = run.options().inference.thresh;
  return fingerprintFiles(modelFiles, options + "\n" + names,
                          identity.fingerprint, error);
}

void qsim::eval::recordPartImage(RunPart &part, size_t positionInShard,
                                 const std::string &path,
                                 const InferenceResult *result,
                                 bool withCandidates) {
  PartImage im;
  im.index = part.shard.index + positionInShard * part.shard.count;
  im.path = path;
  im.unreadable = result == nullptr;
  if (result) {
    im.reported = result->reported.size();
    im.forwardMillis = result->forwardMillis;
    if (withCandidates)
      im.candidates = result->detections;
  }
  part.images.push_back(std::move(im));
}

//===----------------------------------------------------------------------===//
// Part files
//===----------------------------------------------------------------------===//

// Boxes and probabilities are stored as their IEEE bit patterns: the merged
// mAP is computed from exactly the floats the shard saw.
static uint32_t floatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
static float bitsFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

/// [x, y, w, h, class, p, class, p, ...] with the classes whose p > 0 (the
/// only ones the MapEvaluator records).
static json candidateJson(const rt::Detection &d, int classes) {
  json j = {floatBits(d.bbox.x), floatBits(d.bbox.y), floatBits(d.bbox.w),
            floatBits(d.bbox.h)};
  for (int c = 0; c < std::min(classes, (int)d.prob.size()); ++c)
    if (d.prob[c] > 0) {
      j.push_back(c);
      j.push_back(floatBits(d.prob[c]));
    }
  return j;
}

static bool candidateFromJson(const json &j, int classes, rt::Detection &d) {
  if (!j.is_array() || j.size() < 4 || j.size() % 2)
    return false;
  d.bbox = {bitsFloat(j[0].get<uint32_t>()), bitsFloat(j[1].get<uint32_t>()),
            bitsFloat(j[2].get<uint32_t>()), bitsFloat(j[3].get<uint32_t>())};
  d.prob.assign(classes, 0.0f);
  for (size_t i = 4; i < j.size(); i += 2) {
    int c = j[i].get<int>();
    if (c < 0 || c >= classes)
      return false;
    d.prob[c] = bitsFloat(j[i + 1].get<uint32_t>());
  }
  return true;
}

bool qsim::eval::writeRunPart(const std::string &path, const RunPart &part,
                              std::string &error) {
  const RunIdentity &id = part.identity;
  json results = json::array();
  for (const PartImage &im : part.images) {
    json candidates = json::array();
    for (const rt::Detection &d : im.candidates)
      candidates.push_back(candidateJson(d, id.classes));
    results.push_back({{"index", im.index},
                       {"path", im.path},
                       {"unreadable", im.unreadable},
                       {"reported", im.reported},
                       {"forward_ms", im.forwardMillis},
                       {"candidates", std::move(candidates)}});
  }
  json root = {{"model", id.model},
               {"fingerprint", id.fingerprint},
               {"options", id.options},
               {"images", id.images},
               {"batch", id.batch},
               {"labels", id.labels},
               {"classes", id.classes},
               {"thresh", floatBits(id.thresh)},
               {"shard", {part.shard.index, part.shard.count}},
               {"results", std::move(results)}};
  return writeVersionedJsonFile(path, kPart, std::move(root), error);
}

static void readPartJson(const json &root, RunPart &part) {
  RunIdentity &id = part.identity;
  id.model = root.at("model").get<std::string>();
  id.fingerprint = root.at("fingerprint").get<std::string>();
  id.options = root.at("options").get<std::string>();
  id.images = root.at("images").get<size_t>();
  id.batch = root.at("batch").get<bool>();
  id.labels = root.at("labels").get<bool>();
  id.classes = root.at("classes").get<int>();
  id.thresh = bitsFloat(root.at("thresh").get<uint32_t>());
  part.shard.index = root.at("shard").at(0).get<int>();
  part.shard.count = root.at("shard").at(1).get<int>();
  for (const json &r : root.at("results")) {
    PartImage im;
    im.index = r.at("index").get<size_t>();
    im.path = r.at("path").get<std::string>();
    im.unreadable = r.at("unreadable").get<bool>();
    im.reported = r.at("reported").get<size_t>();
    im.forwardMillis = r.at("forward_ms").get<double>();
    for (const json &c : r.at("candidates")) {
      rt::Detection d;
      if (!candidateFromJson(c, id.classes, d))
        throw std::runtime_error("malformed candidate of image " + im.path);
      im.candidates.push_back(std::move(d));
    }
    part.images.push_back(std::move(im));
  }
}

bool qsim::eval::readRunPart(const std::string &path, RunPart &part,
                             std::string &error) {
  json root;
  if (!readVersionedJsonFile(path, kPart, root, error))
    return false;
  try {
    readPartJson(root, part);
  } catch (const std::exception &e) {
    error = "part '" + path + "' is malformed: " + e.what();
    return false;
  }
  if (part.shard.count < 1 || part.shard.index < 0 ||
      part.shard.index >= part.shard.count) {
    error = "part '" + path + "' has an invalid shard";
    return false;
  }
  return true;
}

//===----------------------------------------------------------------------===//
// Merging
//===----------------------------------------------------------------------===//

/// Why `b` cannot be merged with `a` (same run?), or "".
static std::string differsFrom(const RunIdentity &a, const RunIdentity &b) {
  if (a.options != b.options)
    return "options '" + b.options + "' vs '" + a.options + "'";
  if (a.images != b.images)
    return std::to_string(b.images) + " images vs " + std::to_string(a.images);
  if (a.fingerprint != b.fingerprint)
    return "model files or image list differ (fingerprint " + b.fingerprint +
           " vs " + a.fingerprint + ")";
  return "";
}

/// The images shard `s` of `total` holds.
static size_t shardSize(size_t total, Shard s) {
  return total > (size_t)s.index ? (total - s.index + s.count - 1) / s.count
                                 : 0;
}

static bool checkPartImages(const std::string &path, const RunPart &p,
                            std::string &error) {
  size_t expected = shardSize(p.identity.images, p.shard);
  if (p.images.size() != expected) {
    error = strprintf("part '%s' holds %zu images, shard %d/%d has %zu",
                      path.c_str(), p.images.size(), p.shard.index,
                      p.shard.count, expected);
    return false;
  }
  for (size_t n = 0; n < p.images.size(); ++n)
    if (p.images[n].index != p.shard.index + n * p.shard.count) {
      error = "part '" + path + "': image " + p.images[n].path +
              " is not at its shard's place";
      return false;
    }
  return true;
}

bool qsim::eval::mergeRunParts(const std::vector<std::string> &paths,
                               MergedRun &merged, std::string &error) {
  if (paths.empty()) {
    error = "--merge needs part files";
    return false;
  }
  std::vector<RunPart> parts(paths.size());
  std::map<int, size_t> byShard; // shard index -> part
  for (size_t i = 0; i < paths.size(); ++i) {
    RunPart &p = parts[i];
    if (!readRunPart(paths[i], p, error) ||
        !checkPartImages(paths[i], p, error))
      return false;
    if (i > 0) {
      std::string why = differsFrom(parts[0].identity, p.identity);
      if (why.empty() && p.shard.count != parts[0].shard.count)
        why = strprintf("%d shards vs %d", p.shard.count, parts[0].shard.count);
      if (!why.empty()) {
        error = "part '" + paths[i] + "' is of a different run than '" +
                paths[0] + "': " + why;
        return false;
      }
    }
    auto [it, inserted] = byShard.emplace(p.shard.index, i);
    if (!inserted) {
      error = strprintf("parts '%s' and '%s' are both shard %d/%d",
                        paths[it->second].c_str(), paths[i].c_str(),
                        p.shard.index, p.shard.count);
      return false;
    }
  }
  const int count = parts[0].shard.count;
  std::string missing;
  for (int k = 0; k < count; ++k)
    if (!byShard.count(k))
      missing += (missing.empty() ? "" : ", ") + strprintf("%d/%d", k, count);
  if (!missing.empty()) {
    error = "missing shard(s) " + missing + " of the run of '" + paths[0] + "'";
    return false;
  }
  merged.identity = parts[0].identity;
  merged.images.assign(merged.identity.images, PartImage());
  for (RunPart &p : parts)
    for (PartImage &im : p.images)
      merged.images[im.index] = std::move(im);
  return true;
}

bool qsim::eval::evaluateMergedRun(const MergedRun &merged,
                                   const std::string &labelsDir,
                                   BatchResult &batch,
                                   std::optional<MapReport> &map,
                                   std::string &error) {
  const RunIdentity &id = merged.identity;
  if (id.labels && labelsDir.empty()) {
    error = "the parts hold mAP candidates: give --eval LABELS";
    return false;
  }
  if (!id.labels && !labelsDir.empty()) {
    error = "the parts were run without --eval: they hold no mAP candidates";
    return false;
  }
  // As runImages accumulates, in the images' order.
  batch = BatchResult();
  batch.images = merged.images.size();
  for (const PartImage &im : merged.images) {
    batch.unreadable += im.unreadable;
    batch.detections += im.reported;
    batch.forwardMillis += im.forwardMillis;
  }
  map.reset();
  if (!id.labels)
    return true;
  rt::MapEvaluator evaluator(id.classes);
  for (const PartImage &im : merged.images) {
    if (im.unreadable)
      continue;
    std::vector<rt::GroundTruth> truth;
    bool missing = false;
    if (!rt::readYoloLabels(rt::labelPathForImage(im.path, labelsDir), truth,
                            missing, error))
      return false;
    evaluator.addImage(im.candidates, truth);
  }
  map = makeMapReport(evaluator, id.thresh);
  return true;
}

bool qsim::eval::reportMergedRun(const MergedRun &merged,
                                 const std::string &labelsDir,
                                 const std::vector<std::string> &names,
                                 const std::string &jsonPath,
                                 llvm::raw_ostream &os, std::string &error) {
  BatchResult batch;
  std::optional<MapReport> map;
  if (!evaluateMergedRun(merged, labelsDir, batch, map, error))
    return false;
  if (merged.identity.batch)
    printBatchSummary(os, batch);
  if (!map)
    return true;
  printEvaluation(os, *map);
  if (jsonPath.empty())
    return true;
  json root = {{"model", merged.identity.model},
               {"evaluation", evaluationJson(*map, names)}};
  return succeeded(writeFileAtomically(
      jsonPath,
      [&](llvm::raw_ostream &out) {
        out << root.dump(1) << "\n";
        return mlir::success();
      },
      error));
}
