//===- Workspace.h - a user's confined directory ----------------*- C++ -*-===//
//
// Every path a request names is relative to the user's workspace and must
// stay inside it: no absolute paths, no '..', no hidden components (the
// studio keeps its own files under dot-directories), and no symbolic link
// anywhere on the way (the check is on the real file system, so a link
// planted by any means cannot lead out).
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_STUDIO_WORKSPACE_H
#define QSIM_STUDIO_WORKSPACE_H

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace qsim::studio {

struct WorkspaceEntry {
  std::string path; // relative to the workspace, '/'-separated
  uint64_t size = 0;
  int64_t modifiedAt = 0;
  bool directory = false;
};

class Workspace {
public:
  /// Paths have at most this many components: deeper folders are refused
  /// when created, so every folder that exists is listed.
  static constexpr size_t kMaxDepth = 16;

  /// root must be an absolute, existing directory without symbolic links.
  explicit Workspace(std::string root) : root(std::move(root)) {}
  const std::string &directory() const { return root; }

  /// The absolute path of `relative` inside the workspace, or nullopt with
  /// the reason. With mustExist the file or directory must exist.
  std::optional<std::string> resolve(const std::string &relative,
                                     bool mustExist, std::string &error) const;

  /// Every file and directory below the root (hidden ones excluded).
  std::vector<WorkspaceEntry> list() const;
  /// The bytes of every file below the root, hidden ones included.
  uint64_t bytesUsed() const;

  /// Creates the parent directories of a resolved path inside the root.
  bool makeParents(const std::string &absolute, std::string &error) const;

private:
  std::string root;
};

/// A path's kind from its extension: model, cfg, weights, image, names,
/// labels, report or file.
std::string fileKind(const std::string &path);

} // namespace qsim::studio

#endif
