//===- FileRoutes.cpp - /api/files: list, read, upload, delete, augment ---===//
//
// Uploads are streamed by the HTTP layer into a hidden temporary file next
// to their destination, at most min(--max-upload-mb, what is left of the
// user's quota), then synced and renamed into place: never half-written.
// Downloads are streamed from an open descriptor.
//
//===----------------------------------------------------------------------===//

#include "Api.h"

#include "qsim/Studio/Accounts.h"
#include "qsim/Studio/Augment.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace qsim::studio {

namespace {

std::string contentTypeOf(const std::string &path) {
  std::string kind = fileKind(path);
  auto ends = [&](const char *e) {
    size_t n = strlen(e);
    return path.size() >= n && path.compare(path.size() - n, n, e) == 0;
  };
  if (ends(".png"))
    return "image/png";
  if (ends(".jpg") || ends(".jpeg"))
    return "image/jpeg";
  if (ends(".bmp"))
    return "image/bmp";
  if (kind == "json")
    return "application/json";
  if (kind == "text" || kind == "cfg" || kind == "names" || ends(".mlir"))
    return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

std::string mib(double bytes) {
  char b[32];
  snprintf(b, sizeof b, "%g MiB", bytes / 1048576.0);
  return b;
}

json listFiles(StudioServer::Impl &s, const Caller &c) {
  json files = json::array();
  for (const WorkspaceEntry &e : s.workspaceOf(c.userId).list())
    files.push_back({{"path", e.path},
                     {"size", e.size},
                     {"modified", e.modifiedAt},
                     {"directory", e.directory},
                     {"kind", e.directory ? "directory" : fileKind(e.path)}});
  json models = json::array();
  for (auto &[path, source] : s.db->listModels(c.userId))
    models.push_back({{"path", path}, {"source", source}});
  uint64_t used = s.workspaceBytes(c.userId);
  return json{
      {"files", files},
      {"models", models},
      {"quota",
       {{"used", used},
        {"limit", static_cast<uint64_t>(s.config.quotaMiB * 1048576)}}}};
}

http::Response fileContent(StudioServer::Impl &s, Call &call) {
  std::string rel = call.param("path");
  std::string path =
      resolveOrFail(s.workspaceOf(call.caller.userId), rel, true);
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    if (fd >= 0)
      close(fd);
    fail(400, "'" + rel + "' is not a file");
  }
  http::Response r;
  r.contentType = contentTypeOf(rel);
  r.fileFd = fd;
  r.fileSize = static_cast<uint64_t>(st.st_size);
  if (call.req.hasParam("download"))
    r.headers.emplace_back("Content-Disposition",
                           "attachment; filename=\"" +
                               rel.substr(rel.rfind('/') + 1) + "\"");
  return r;
}

http::UploadTarget startUpload(StudioServer::Impl &s, Call &call) {
  const Caller &c = call.caller;
  std::string rel = call.param("path"), error;
  Workspace ws = s.workspaceOf(c.userId);
  std::string path = resolveOrFail(ws, rel, false);
  struct stat st;
  bool exists = lstat(path.c_str(), &st) == 0;
  if (exists && S_ISDIR(st.st_mode))
    fail(409, "'" + rel + "' is a directory");
  if (exists && call.req.param("overwrite") != "1")
    fail(409, "'" + rel + "' exists (add overwrite=1 to replace it)");
  uint64_t quota = static_cast<uint64_t>(s.config.quotaMiB * 1048576);
  uint64_t used = s.workspaceBytes(c.userId) - (exists ? st.st_size : 0);
  uint64_t maxUpload = static_cast<uint64_t>(s.config.maxUploadMiB * 1048576);
  http::UploadTarget target;
  target.limit = maxUpload;
  target.tooLarge = "the upload is larger than the " +
                    mib(s.config.maxUploadMiB * 1048576) + " limit";
  if (used >= quota || quota - used < maxUpload) {
    target.limit = used >= quota ? 0 : quota - used;
    target.tooLarge = "the upload does not fit in your quota (" +
                      mib(double(used)) + " of " + mib(double(quota)) +
                      " used)";
  }
  if (!ws.makeParents(path, error))
    fail(409, error);
  std::string temporary =
      path.substr(0, path.rfind('/') + 1) + ".upload-" + newToken();
  target.fd =
      ::open(temporary.c_str(),
             O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0640);
  if (target.fd < 0)
    fail(500, std::string("cannot store the upload: ") + strerror(errno));
  int fd = target.fd;
  target.abort = [fd, temporary] {
    close(fd);
    unlink(temporary.c_str());
  };
  int64_t user = c.userId;
  StudioServer::Impl *state = &s;
  target.finish = [state, fd, temporary, path, rel, user](uint64_t bytes) {
    bool synced = fsync(fd) == 0;
    close(fd);
    if (!synced || rename(temporary.c_str(), path.c_str()) != 0) {
      unlink(temporary.c_str());
      return http::Response::error(507, "the upload could not be stored");
    }
    if (fileKind(rel) == "model")
      state->db->recordModel(user, rel, "upload");
    http::Response r =
        http::Response::json(201, json{{"path", rel}, {"size", bytes}}.dump());
    r.userId = user;
    return r;
  };
  return target;
}

json deleteFile(StudioServer::Impl &s, Call &call) {
  std::string rel = call.param("path");
  std::string path =
      resolveOrFail(s.workspaceOf(call.caller.userId), rel, true);
  struct stat st;
  lstat(path.c_str(), &st);
  if (S_ISDIR(st.st_mode) ? rmdir(path.c_str()) != 0
                          : unlink(path.c_str()) != 0)
    fail(409, "cannot delete '" + rel + "': " + strerror(errno));
  s.db->forgetModel(call.caller.userId, rel);
  return json{{"deleted", rel}};
}

/// Augmentation decodes and encodes images in the server: it takes one of
/// the user's child slots and runs on the compute pool.
void augment(StudioServer::Impl &s, Call &call, StudioServer::Impl::Done done) {
  json body = call.body();
  std::string rel = stringField(body, "path");
  Workspace ws = s.workspaceOf(call.caller.userId);
  std::string path = resolveOrFail(ws, rel, true);
  if (fileKind(rel) != "image")
    fail(400, "'" + rel + "' is not an image");
  s.requireQuota(call.caller.userId);
  ChildSlot slot = s.slots.acquire(call.caller.userId);
  std::string root = ws.directory();
  double maxMegapixels = s.config.maxImageMegapixels;
  s.runComputation([slot, path, rel, root, maxMegapixels, done] {
    size_t dot = path.rfind('.');
    std::string ext = path.substr(dot + 1) == "png" ? "png" : "jpg";
    std::vector<std::string> written;
    std::string error;
    if (!augmentImage(path, path.substr(0, dot), ext, maxMegapixels, written,
                      error))
      return done(422, json{{"error", rel + ": " + error}});
    json files = json::array();
    for (const std::string &w : written)
      files.push_back(w.substr(root.size() + 1));
    done(201, json{{"files", files}});
  });
}

} // namespace

void addFileRoutes(StudioServer::Impl &s) {
  jsonRoute(s, "GET", "/api/files", Access::Read,
            [&s](Call &call) { return listFiles(s, call.caller); });
  rawRoute(s, "GET", "/api/files/content", Access::Read,
           [&s](Call &call) { return fileContent(s, call); });
  uploadRoute(s, "/api/files",
              [&s](Call &call) { return startUpload(s, call); });
  jsonRoute(s, "DELETE", "/api/files", Access::Write,
            [&s](Call &call) { return deleteFile(s, call); });
  asyncRoute(s, "POST", "/api/files/augment", Access::Write,
             [&s](Call &call, StudioServer::Impl::Done done) {
               augment(s, call, std::move(done));
             });
}

} // namespace qsim::studio
