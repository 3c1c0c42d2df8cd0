//===- CalibrationStats.cpp - mergeable calibration statistics -----------===//

#include "qsim/Quant/CalibrationStats.h"
#include "qsim/Support/FileUtils.h"
#include "qsim/Support/StringUtils.h"
#include "qsim/Support/VersionedJsonFile.h"

#include "mlir/Bytecode/BytecodeWriter.h"
#include "llvm/Support/MD5.h"
#include "llvm/Support/Path.h"

#include <cstring>
#include <map>
#include <nlohmann/json.hpp>

using namespace qsim;
using namespace qsim::quantization;
using json = nlohmann::json;

static constexpr qsim::VersionedJsonKind kStats{
    "statistics", "a calibration statistics file", "qsim-calibration-stats", 1,
    "run the shard again"};

namespace {
/// Hashes what is written to it (the model's bytecode) without keeping it.
class HashStream : public llvm::raw_ostream {
public:
  HashStream() { SetUnbuffered(); }
  std::string digest() {
    flush();
    llvm::MD5::MD5Result r;
    md5.final(r);
    return r.digest().str().str();
  }

private:
  void write_impl(const char *p, size_t n) override {
    md5.update(llvm::StringRef(p, n));
    pos += n;
  }
  uint64_t current_pos() const override { return pos; }
  llvm::MD5 md5;
  uint64_t pos = 0;
};

uint32_t floatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
float bitsFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

/// Non-zero bins as [bin, count] pairs.
json sparse(const std::vector<uint64_t> &h) {
  json j = json::array();
  for (size_t b = 0; b < h.size(); ++b)
    if (h[b])
      j.push_back({b, h[b]});
  return j;
}
std::vector<uint64_t> dense(const json &j) {
  std::vector<uint64_t> h(CalibrationObserver::kBins, 0);
  for (const json &e : j) {
    size_t b = e.at(0).get<size_t>();
    if (b >= h.size())
      throw std::runtime_error("histogram bin out of range");
    h[b] = e.at(1).get<uint64_t>();
  }
  return h;
}
} // namespace

namespace qsim::quantization {
/// The observer's state to and from JSON (floats as bit patterns).
struct CalibrationObserverIO {
  static json toJson(const CalibrationObserver &o, bool histograms) {
    json j = {{"seen", o.seen},
              {"min", floatBits(o.minV)},
              {"max", floatBits(o.maxV)},
              {"min_at", o.minAt},
              {"max_at", o.maxAt}};
    if (histograms)
      j.update({{"total", o.total},
                {"hist", sparse(o.hist)},
                {"abs_hist", sparse(o.absHist)}});
    return j;
  }
  static void fromJson(const json &j, bool histograms, CalibrationObserver &o) {
    o.seen = j.at("seen").get<bool>();
    o.minV = bitsFloat(j.at("min").get<uint32_t>());
    o.maxV = bitsFloat(j.at("max").get<uint32_t>());
    o.minAt = j.at("min_at").get<int64_t>();
    o.maxAt = j.at("max_at").get<int64_t>();
    if (!histograms)
      return;
    o.total = j.at("total").get<uint64_t>();
    o.hist = dense(j.at("hist"));
    o.absHist = dense(j.at("abs_hist"));
  }
};
} // namespace qsim::quantization

std::string qsim::quantization::calibrationFingerprint(
    mlir::ModuleOp module, const CalibrationOptions &options,
    const std::vector<std::string> &images) {
  HashStream hash;
  (void)mlir::writeBytecodeToFile(module, hash);
  hash << "\nkernels=" << (int)options.kernels << " letterbox="
       << (options.letterbox ? (*options.letterbox ? "1" : "0") : "-") << "\n";
  // Names, not paths: nodes may mount the images elsewhere.
  for (const std::string &image : images)
    hash << llvm::sys::path::filename(image) << "\n";
  return hash.digest();
}

bool qsim::quantization::writeCalibrationStats(const std::string &path,
                                               const CalibrationStats &stats,
                                               std::string &error) {
  bool histograms = stats.stage == CalibrationStats::Stage::Histograms;
  json observers = json::array();
  for (const CalibrationObserver &o : stats.observers)
    observers.push_back(CalibrationObserverIO::toJson(o, histograms));
  json root = {{"stage", histograms ? "histograms" : "ranges"},
               {"fingerprint", stats.fingerprint},
               {"images", stats.images},
               {"shard", {stats.shardIndex, stats.shardCount}},
               {"tensors", std::move(observers)}};
  return writeVersionedJsonFile(path, kStats, std::move(root), error);
}

bool qsim::quantization::readCalibrationStats(const std::string &path,
                                              CalibrationStats &stats,
                                              std::string &error) {
  json root;
  if (!readVersionedJsonFile(path, kStats, root, error))
    return false;
  try {
    std::string stage = root.at("stage").get<std::string>();
    if (stage != "ranges" && stage != "histograms")
      throw std::runtime_error("unknown stage '" + stage + "'");
    stats.stage = stage == "ranges" ? CalibrationStats::Stage::Ranges
                                    : CalibrationStats::Stage::Histograms;
    stats.fingerprint = root.at("fingerprint").get<std::string>();
    stats.images = root.at("images").get<size_t>();
    stats.shardIndex = root.at("shard").at(0).get<int>();
    stats.shardCount = root.at("shard").at(1).get<int>();
    stats.observers.clear();
    for (const json &t : root.at("tensors")) {
      stats.observers.emplace_back();
      CalibrationObserverIO::fromJson(
          t, stats.stage == CalibrationStats::Stage::Histograms,
          stats.observers.back());
    }
  } catch (const std::exception &e) {
    error = "statistics '" + path + "' are malformed: " + e.what();
    return false;
  }
  if (stats.shardCount < 1 || stats.shardIndex < 0 ||
      stats.shardIndex >= stats.shardCount) {
    error = "statistics '" + path + "' have an invalid shard";
    return false;
  }
  return true;
}

/// Why `b` is not a shard of the calibration of `a`, or "".
static std::string differsFrom(const CalibrationStats &a,
                               const CalibrationStats &b) {
  if (a.stage != b.stage)
    return "a ranges and a histograms stage";
  if (a.fingerprint != b.fingerprint || a.images != b.images)
    return "another model, image list, kernels or preprocessing";
  if (a.shardCount != b.shardCount)
    return strprintf("%d shards vs %d", b.shardCount, a.shardCount);
  if (a.observers.size() != b.observers.size())
    return "a different number of tensors";
  return "";
}

bool qsim::quantization::mergeCalibrationStats(
    const std::vector<std::string> &paths, CalibrationStats &merged,
    std::string &error) {
  std::map<int, size_t> byShard;
  for (size_t i = 0; i < paths.size(); ++i) {
    CalibrationStats s;
    if (!readCalibrationStats(paths[i], s, error))
      return false;
    if (i == 0) {
      merged = s;
    } else if (std::string why = differsFrom(merged, s); !why.empty()) {
      error = "statistics '" + paths[i] + "' are not of the calibration of '" +
              paths[0] + "': " + why;
      return false;
    }
    auto [it, inserted] = byShard.emplace(s.shardIndex, i);
    if (!inserted) {
      error = strprintf("statistics '%s' and '%s' are both shard %d/%d",
                        paths[it->second].c_str(), paths[i].c_str(),
                        s.shardIndex, s.shardCount);
      return false;
    }
    if (i == 0)
      continue;
    for (size_t t = 0; t < s.observers.size(); ++t) {
      if (s.stage == CalibrationStats::Stage::Ranges) {
        merged.observers[t].mergeRange(s.observers[t]);
      } else if (!merged.observers[t].mergeHistograms(s.observers[t])) {
        error = "statistics '" + paths[i] +
                "' were histogrammed on other ranges than '" + paths[0] +
                "' (give every histogram shard the same stats-in)";
        return false;
      }
    }
  }
  std::string missing;
  for (int k = 0; k < merged.shardCount; ++k)
    if (!byShard.count(k))
      missing += (missing.empty() ? "" : ", ") +
                 strprintf("%d/%d", k, merged.shardCount);
  if (!missing.empty()) {
    error = "missing calibration shard(s) " + missing +
            " (stats-in=" + paths[0] + ",...)";
    return false;
  }
  merged.shardIndex = 0;
  merged.shardCount = 1;
  return true;
}
