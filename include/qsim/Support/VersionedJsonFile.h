//===- VersionedJsonFile.h - qsim's mergeable JSON files -------*- C++ -*-===//
//
// qsim-run's part files and the calibration statistics are JSON objects
// with a "format" name and a "version", written atomically by one shard and
// read back by the merge. Reading them fails in the same ways (unreadable,
// cut short by an interrupted copy, another file, another version), so one
// function reads and checks them and words the errors alike.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_SUPPORT_VERSIONEDJSONFILE_H
#define QSIM_SUPPORT_VERSIONEDJSONFILE_H

#include <nlohmann/json.hpp>

#include <string>

namespace qsim {

/// What a versioned file is, for reading it and for the messages.
struct VersionedJsonKind {
  /// What the file is called in messages: "part", "statistics".
  const char *noun;
  /// What a file of another format is not: "a qsim-run part file".
  const char *description;
  /// The "format" value the file must have.
  const char *format;
  /// The "version" this build reads.
  int version;
  /// How to get a good file again, after a truncated one: "run its shard
  /// again".
  const char *remedy;
};

/// Reads `path` into `root` and checks its format and version. On failure
/// sets `error` (naming the file) and returns false.
bool readVersionedJsonFile(const std::string &path,
                           const VersionedJsonKind &kind, nlohmann::json &root,
                           std::string &error);

/// Writes `root` (an object) with the kind's format and version to `path`
/// atomically (never a half-written file). On failure sets `error`.
bool writeVersionedJsonFile(const std::string &path,
                            const VersionedJsonKind &kind, nlohmann::json root,
                            std::string &error);

} // namespace qsim

#endif
