//===- AtomicFile.cpp - files that appear only when complete ------------===//

#include "qsim/Runtime/AtomicFile.h"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

/// Writes `size` bytes to `path` through a temporary file in the same
/// directory that is renamed over `path` only when everything was written, so
/// a reader (or a crash) never sees a half-written file. The temporary is
/// created with mode 0666 so that the umask applies as for a normal file.
bool qsim::rt::writeFileAtomically(const std::string &path, const void *data,
                                   size_t size, std::string &error) {
  static std::atomic<unsigned> counter{0};
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    tmp = path + ".tmp." + std::to_string(getpid()) + "." +
          std::to_string(counter++);
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST)
      break;
  }
  if (fd < 0) {
    error =
        "cannot create '" + path + "': " + std::string(std::strerror(errno));
    return false;
  }
  const char *p = static_cast<const char *>(data);
  size_t left = size;
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      error =
          "cannot write '" + path + "': " + std::string(std::strerror(errno));
      ::close(fd);
      ::unlink(tmp.c_str());
      return false;
    }
    p += n;
    left -= (size_t)n;
  }
  // close() can report a delayed write error (e.g. on NFS or a full disk).
  if (::close(fd) != 0) {
    error = "cannot write '" + path + "': " + std::string(std::strerror(errno));
    ::unlink(tmp.c_str());
    return false;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    error = "cannot rename '" + tmp + "' to '" + path +
            "': " + std::string(std::strerror(errno));
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}
