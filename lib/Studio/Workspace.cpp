//===- Workspace.cpp - a user's confined directory ------------------------===//

#include "qsim/Studio/Workspace.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <sys/stat.h>

namespace qsim::studio {

static std::vector<std::string> splitPath(const std::string &path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos)
      end = path.size();
    if (end > start)
      parts.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

std::optional<std::string> Workspace::resolve(const std::string &relative,
                                              bool mustExist,
                                              std::string &error) const {
  if (relative.empty()) {
    error = "no path given";
    return std::nullopt;
  }
  if (relative.size() > 1024 || relative.find('\0') != std::string::npos ||
      relative.find('\\') != std::string::npos) {
    error = "'" + relative.substr(0, 64) + "' is not an acceptable path";
    return std::nullopt;
  }
  for (char ch : relative)
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' ||
          ch == '_' || ch == '-' || ch == '+' || ch == '/')) {
      error = "'" + relative +
              "': names use letters, digits, '.', '_', '-', '+' and '/'";
      return std::nullopt;
    }
  if (relative.front() == '/') {
    error = "'" + relative + "': paths are relative to your workspace";
    return std::nullopt;
  }
  std::vector<std::string> parts = splitPath(relative);
  if (parts.size() > kMaxDepth) {
    error = "'" + relative.substr(0, 64) + "...' is more than " +
            std::to_string(kMaxDepth) + " folders deep";
    return std::nullopt;
  }
  for (const std::string &part : parts)
    if (part.front() == '.') {
      error = "'" + relative + "' leaves your workspace or names a hidden file";
      return std::nullopt;
    }
  std::string absolute = root;
  for (const std::string &part : parts) {
    absolute += "/" + part;
    struct stat st;
    if (lstat(absolute.c_str(), &st) != 0) {
      if (errno == ENOENT && !mustExist)
        continue; // the rest is created by the request
      error = "'" + relative + "' does not exist";
      return std::nullopt;
    }
    if (S_ISLNK(st.st_mode)) {
      error = "'" + relative + "' goes through a symbolic link";
      return std::nullopt;
    }
  }
  if (absolute == root) {
    error = "'" + relative + "' is your workspace itself";
    return std::nullopt;
  }
  return absolute;
}

bool Workspace::makeParents(const std::string &absolute,
                            std::string &error) const {
  size_t pos = root.size();
  while ((pos = absolute.find('/', pos + 1)) != std::string::npos) {
    std::string dir = absolute.substr(0, pos);
    if (mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST) {
      error = "cannot create a directory: " + std::string(strerror(errno));
      return false;
    }
    struct stat st;
    if (lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      error = "a file is in the way of the directory";
      return false;
    }
  }
  return true;
}

/// Calls fn(full path, name, stat, depth) for every entry below dir that is
/// not a symbolic link, to kMaxDepth components; hidden names only when
/// asked.
template <typename Fn>
static void walk(const std::string &dir, size_t depth, bool hidden, Fn &fn) {
  if (depth >= Workspace::kMaxDepth)
    return;
  DIR *d = opendir(dir.c_str());
  if (!d)
    return;
  while (struct dirent *e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == ".." || (!hidden && name[0] == '.'))
      continue;
    std::string full = dir + "/" + name;
    struct stat st;
    if (lstat(full.c_str(), &st) != 0 || S_ISLNK(st.st_mode))
      continue;
    if (fn(full, name, st, depth) && S_ISDIR(st.st_mode))
      walk(full, depth + 1, hidden, fn);
  }
  closedir(d);
}

std::vector<WorkspaceEntry> Workspace::list() const {
  std::vector<WorkspaceEntry> entries;
  auto add = [&](const std::string &full, const std::string &,
                 const struct stat &st, size_t) {
    WorkspaceEntry entry;
    entry.path = full.substr(root.size() + 1);
    entry.size = static_cast<uint64_t>(st.st_size);
    entry.modifiedAt = static_cast<int64_t>(st.st_mtime);
    entry.directory = S_ISDIR(st.st_mode);
    entries.push_back(entry);
    return true;
  };
  walk(root, 0, false, add);
  std::sort(entries.begin(), entries.end(),
            [](const WorkspaceEntry &a, const WorkspaceEntry &b) {
              return a.path < b.path;
            });
  return entries;
}

uint64_t Workspace::bytesUsed() const {
  uint64_t bytes = 0;
  auto add = [&](const std::string &, const std::string &,
                 const struct stat &st, size_t) {
    if (S_ISREG(st.st_mode))
      bytes += static_cast<uint64_t>(st.st_size);
    return true;
  };
  walk(root, 0, true, add);
  return bytes;
}

std::string fileKind(const std::string &path) {
  size_t dot = path.rfind('.');
  std::string ext = dot == std::string::npos ? "" : path.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  if (ext == "mlirbc" || ext == "mlir")
    return "model";
  if (ext == "cfg")
    return "cfg";
  if (ext == "weights")
    return "weights";
  if (ext == "jpg" || ext == "jpeg" || ext == "png" || ext == "bmp" ||
      ext == "ppm")
    return "image";
  if (ext == "names")
    return "names";
  if (ext == "txt")
    return "text";
  if (ext == "npy")
    return "tensor";
  if (ext == "json")
    return "json";
  return "file";
}

} // namespace qsim::studio
