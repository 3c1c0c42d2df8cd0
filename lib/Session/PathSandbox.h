//===- PathSandbox.h - the files a session request may name -----*- C++ -*-===//

#ifndef QSIM_LIB_SESSION_PATHSANDBOX_H
#define QSIM_LIB_SESSION_PATHSANDBOX_H

#include <string>

namespace qsim::session {

/// With a root directory, every file a request names is resolved inside it
/// (relative paths are relative to it); anything that leads outside,
/// through ".." or a symbolic link, is refused. Without one, paths are
/// taken as they are.
class PathSandbox {
public:
  explicit PathSandbox(std::string root) : root(std::move(root)) {}

  /// The real path of `path` (a file to read, or for `forWrite` a file to
  /// write in an existing directory, which must not be a symbolic link);
  /// false with `error` naming `path` when it is refused.
  bool resolve(const std::string &path, bool forWrite, std::string &out,
               std::string &error) const;

private:
  std::string root;
};

} // namespace qsim::session

#endif
