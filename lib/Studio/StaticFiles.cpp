//===- StaticFiles.cpp - the built front end (studio/web/dist) ------------===//
//
// Every request no API route takes: a file of the front end's directory,
// by a path of plain names (no '..', no hidden names), or 404.
//
//===----------------------------------------------------------------------===//

#include "Api.h"

#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace qsim::studio {

namespace {

std::string typeOf(const std::string &path) {
  static const std::pair<const char *, const char *> types[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".json", "application/json"},
      {".ico", "image/x-icon"},
      {".woff2", "font/woff2"}};
  for (auto &[ext, type] : types) {
    size_t n = strlen(ext);
    if (path.size() >= n && path.compare(path.size() - n, n, ext) == 0)
      return type;
  }
  return "application/octet-stream";
}

bool plainPath(const std::string &path) {
  if (path.empty() || path.size() > 256 || path.front() != '/')
    return false;
  for (size_t i = 0; i < path.size(); ++i) {
    char c = path[i];
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '.' ||
          c == '_' || c == '-'))
      return false;
    if (c == '.' && path[i - 1] == '/')
      return false; // '..' and hidden names
  }
  return true;
}

http::Response staticFile(const std::string &root, const http::Request &req) {
  std::string path = req.path == "/" ? "/index.html" : req.path;
  if (req.method != "GET" || root.empty() || path.compare(0, 5, "/api/") == 0 ||
      !plainPath(path))
    return http::Response::error(404,
                                 "no such page or API endpoint: " + req.path);
  int fd = ::open((root + path).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    if (fd >= 0)
      close(fd);
    return http::Response::error(404,
                                 "no such page or API endpoint: " + req.path);
  }
  http::Response r;
  r.contentType = typeOf(path);
  r.fileFd = fd;
  r.fileSize = static_cast<uint64_t>(st.st_size);
  return r;
}

} // namespace

void addStaticFiles(StudioServer::Impl &s) {
  std::string root = s.config.webDirectory;
  s.http->setFallback([root](http::Request &req, http::Reply reply) {
    reply(staticFile(root, req));
  });
}

} // namespace qsim::studio
