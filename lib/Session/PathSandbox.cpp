//===- PathSandbox.cpp - the files a session request may name ------------===//

#include "PathSandbox.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

using namespace qsim::session;
namespace fs = llvm::sys::fs;
namespace path = llvm::sys::path;

bool PathSandbox::resolve(const std::string &p, bool forWrite, std::string &out,
                          std::string &error) const {
  if (root.empty()) {
    out = p;
    return true;
  }
  llvm::SmallString<256> realRoot, full;
  if (fs::real_path(root, realRoot)) {
    error = "the session root '" + root + "' does not exist";
    return false;
  }
  if (path::is_absolute(p)) {
    full = p;
  } else {
    full = realRoot;
    path::append(full, p);
  }
  path::remove_dots(full, /*remove_dot_dot=*/true);
  llvm::SmallString<256> real;
  if (!forWrite) {
    if (fs::real_path(full, real)) {
      error = "no such file: '" + p + "'";
      return false;
    }
  } else {
    // The directory must be inside; the file itself must not be a link.
    llvm::SmallString<256> dir(full);
    path::remove_filename(dir);
    if (fs::real_path(dir, real)) {
      error = "no such directory for '" + p + "'";
      return false;
    }
    path::append(real, path::filename(full));
    fs::file_status st;
    if (!fs::status(full, st, /*follow=*/false) &&
        st.type() == fs::file_type::symlink_file) {
      error = "'" + p + "' is a symbolic link: refused";
      return false;
    }
  }
  llvm::StringRef r = real.str(), rootStr = realRoot.str();
  bool inside =
      r == rootStr || (r.starts_with(rootStr) && r.size() > rootStr.size() &&
                       path::is_separator(r[rootStr.size()]));
  if (!inside) {
    error = "'" + p + "' is outside the session's directory";
    return false;
  }
  out = std::string(r);
  return true;
}
