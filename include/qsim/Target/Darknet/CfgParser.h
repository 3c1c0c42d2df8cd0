//===- CfgParser.h - Darknet .cfg lexer and typed accessors -----*- C++ -*-===//
//
// Lexes a cfg exactly as Darknet does (docs/darknet.md §R1.1: all whitespace
// removed, '#'/';' comment lines, first '=' splits key and value) but is
// strict where Darknet is silent: empty values, lines without '=', options
// before the first section, malformed numbers and unknown keys are errors
// naming the file and line.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_TARGET_DARKNET_CFGPARSER_H
#define QSIM_TARGET_DARKNET_CFGPARSER_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace qsim::darknet {

struct CfgOption {
  std::string key;
  std::string value;
  unsigned line = 0;
  bool used = false;
};

struct CfgSection {
  std::string type; // without brackets, aliases not yet resolved
  unsigned line = 0;
  std::vector<CfgOption> options;
};

/// Receives one diagnostic: line (0 = whole file) and message.
using CfgDiagFn =
    std::function<void(unsigned line, bool isError, const std::string &msg)>;

/// At most this many errors are reported per file; then "too many errors".
constexpr unsigned kMaxCfgErrors = 20;
/// Darknet's sections have fewer than 100 keys and its largest cfgs about
/// 1000 sections: a file beyond these is refused as garbage before it costs
/// time and memory.
constexpr size_t kMaxCfgSectionKeys = 4096;
constexpr size_t kMaxCfgSections = 100000;

/// Splits `text` into sections. Returns false after reporting the problems
/// (at most `maxErrors`, then a final "too many errors").
bool lexCfg(llvm::StringRef text, std::vector<CfgSection> &sections,
            const CfgDiagFn &diag, unsigned maxErrors = kMaxCfgErrors);

/// Typed, checked access to one section's options. Every getter marks the
/// option used and reports malformed values through `diag` with the option's
/// line; `ok()` tells whether any getter failed.
class SectionReader {
public:
  SectionReader(CfgSection &section, std::string layerLabel, CfgDiagFn diag)
      : section(section), label(std::move(layerLabel)), diag(std::move(diag)) {}

  bool has(llvm::StringRef key) const;
  int64_t getInt(llvm::StringRef key, int64_t def);
  float getFloat(llvm::StringRef key, float def);
  std::string getString(llvm::StringRef key, llvm::StringRef def);
  /// Comma-separated list; `std::nullopt` when absent.
  std::optional<std::vector<int64_t>> getIntList(llvm::StringRef key);
  std::optional<std::vector<float>> getFloatList(llvm::StringRef key);
  /// Line of `key` (or of the section header when absent).
  unsigned lineOf(llvm::StringRef key) const;

  /// Reports an error on `key`'s line, prefixed with the layer label.
  void error(llvm::StringRef key, const std::string &msg);
  void error(const std::string &msg) { error("", msg); }
  void warning(llvm::StringRef key, const std::string &msg);
  bool ok() const { return !failed; }
  CfgSection &getSection() { return section; }
  const std::string &getLabel() const { return label; }

private:
  const CfgOption *find(llvm::StringRef key);
  CfgSection &section;
  std::string label;
  CfgDiagFn diag;
  bool failed = false;
};

/// Keys Darknet reads for a section type (inference and training keys, both
/// flavours and yolo2_light); empty for unknown section types.
llvm::ArrayRef<llvm::StringRef> getKnownKeys(llvm::StringRef sectionType);

/// Whether `key` is one of the few keys that cfgs of Darknet's own zoo write
/// in a `sectionType` section although Darknet does not read them (Darknet
/// prints "Unused field" and ignores them).
bool isKeyDarknetIgnores(llvm::StringRef sectionType, llvm::StringRef key);

/// The closest known key to `key` (for "did you mean"), or "".
std::string suggestKey(llvm::StringRef sectionType, llvm::StringRef key);

} // namespace qsim::darknet

#endif // QSIM_TARGET_DARKNET_CFGPARSER_H
