//===- StudioServer.cpp - qsim-studio's HTTP API --------------------------===//
//
// Routes, authentication (cookie + CSRF header), the file API and static
// files. Jobs and step sessions are in StudioJobs.cpp.
//
//===----------------------------------------------------------------------===//

#include "StudioImpl.h"

#include "qsim/Runtime/AtomicFile.h"
#include "qsim/Studio/Accounts.h"
#include "qsim/Studio/Augment.h"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <fstream>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace qsim::studio {

namespace {

int64_t now() { return static_cast<int64_t>(std::time(nullptr)); }

const char *kCookie = "qsim_session";

void sendJson(httplib::Response &res, int status, const json &body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void sendError(httplib::Response &res, int status, const std::string &msg) {
  sendJson(res, status, json{{"error", msg}});
}

std::string cookieValue(const httplib::Request &req, const std::string &name) {
  std::string header = req.get_header_value("Cookie");
  size_t pos = 0;
  while (pos < header.size()) {
    size_t end = header.find(';', pos);
    if (end == std::string::npos)
      end = header.size();
    std::string part = header.substr(pos, end - pos);
    size_t start = part.find_first_not_of(' ');
    if (start != std::string::npos) {
      part = part.substr(start);
      if (part.compare(0, name.size() + 1, name + "=") == 0)
        return part.substr(name.size() + 1);
    }
    pos = end + 1;
  }
  return "";
}

/// The request's JSON object body; refuses other content types (a cross-site
/// form cannot send application/json without a CORS preflight) and
/// malformed JSON.
json jsonBody(const httplib::Request &req) {
  std::string type = req.get_header_value("Content-Type");
  if (type.compare(0, 16, "application/json") != 0)
    fail(415, "send the request body as application/json");
  json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded())
    fail(400, "malformed JSON in the request body");
  if (!body.is_object())
    fail(400, "the request body must be a JSON object");
  return body;
}

std::string stringField(const json &body, const char *key) {
  auto it = body.find(key);
  if (it == body.end() || !it->is_string())
    fail(400, std::string("'") + key + "' (a string) is required");
  return it->get<std::string>();
}

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

} // namespace

//===----------------------------------------------------------------------===//
// Shared state helpers
//===----------------------------------------------------------------------===//

int LoginThrottle::secondsToWait(const std::string &name) {
  std::lock_guard<std::mutex> lock(mutex);
  auto it = failures.find(name);
  if (it == failures.end())
    return 0;
  int64_t t = now();
  while (!it->second.empty() && it->second.front() <= t - kWindowSeconds)
    it->second.pop_front();
  if (it->second.size() < kMaxFailures) {
    if (it->second.empty())
      failures.erase(it);
    return 0;
  }
  return static_cast<int>(it->second.front() + kWindowSeconds - t);
}

void LoginThrottle::recordFailure(const std::string &name) {
  std::lock_guard<std::mutex> lock(mutex);
  if (failures.size() > 100000) // bounded whatever names are tried
    failures.clear();
  std::deque<int64_t> &times = failures[name];
  times.push_back(now());
  while (times.size() > kMaxFailures)
    times.pop_front();
}

Workspace StudioServer::Impl::workspaceOf(int64_t userId) {
  std::string dir = workspacesDir + "/" + std::to_string(userId);
  mkdir(dir.c_str(), 0750);
  return Workspace(dir);
}

int StudioServer::Impl::childrenOf(int64_t userId) {
  std::lock_guard<std::mutex> lock(liveMutex);
  int n = 0;
  for (auto &[id, s] : sessions)
    n += s->userId == userId && !s->ended;
  for (auto &[id, job] : runningJobs)
    n += job.userId == userId;
  return n;
}

void StudioServer::Impl::requireChildSlot(int64_t userId) {
  int n = childrenOf(userId);
  if (n >= config.maxChildrenPerUser)
    fail(429, "you have " + std::to_string(n) +
                  " jobs and sessions running (the limit is " +
                  std::to_string(config.maxChildrenPerUser) +
                  "): end one first");
}

JobRecord StudioServer::Impl::ownJob(const Caller &c, int64_t id) {
  auto job = db->findJob(id);
  if (!job || job->userId != c.userId)
    fail(404, "no such job");
  return *job;
}

std::vector<std::pair<std::string, std::string>>
StudioServer::Impl::childEnvironment() const {
  return {{"OMP_NUM_THREADS", std::to_string(config.childThreads)},
          {"OMP_WAIT_POLICY", "PASSIVE"}};
}

std::string StudioServer::Impl::logFileOf(int64_t jobId) {
  return logDir + "/job-" + std::to_string(jobId) + ".log";
}

std::string StudioServer::Impl::userVisibleLog(const std::string &logFile,
                                               int64_t userId) {
  std::string text = readFileTail(logFile, 4000);
  std::string root = workspaceOf(userId).directory() + "/";
  for (size_t p; (p = text.find(root)) != std::string::npos;)
    text.erase(p, root.size());
  return text;
}

void StudioServer::Impl::publishJob(int64_t jobId) {
  if (auto job = db->findJob(jobId))
    events.publish(job->userId, "job", jobToJson(*job).dump());
}

void StudioServer::Impl::runDetached(std::function<void()> fn) {
  ++activeThreads;
  auto self = shared_from_this();
  std::thread([self, fn = std::move(fn)] {
    fn();
    --self->activeThreads;
  }).detach();
}

json jobToJson(const JobRecord &job) {
  json j = {{"id", job.id},
            {"kind", job.kind},
            {"status", job.status},
            {"error", job.error},
            {"created", job.createdAt},
            {"finished", job.finishedAt}};
  j["args"] = json::parse(job.args, nullptr, false);
  j["result"] = job.result.empty() ? json(nullptr)
                                   : json::parse(job.result, nullptr, false);
  return j;
}

//===----------------------------------------------------------------------===//
// Server construction and routes
//===----------------------------------------------------------------------===//

StudioServer::~StudioServer() {
  if (impl) {
    stop();
    impl->stopAllChildren();
    // Detached job threads hold the state; let them see their children end.
    for (int i = 0; i < 100 && impl->activeThreads > 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (impl->ownRunDir)
      rmdir(impl->runDir.c_str());
  }
}

static bool makeDirectory(const std::string &dir, std::string &error) {
  if (mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST) {
    error = dir + ": " + strerror(errno);
    return false;
  }
  return true;
}

std::unique_ptr<StudioServer> StudioServer::create(const StudioConfig &config,
                                                   std::string &error) {
  if (!initCrypto()) {
    error = "libsodium cannot be initialized";
    return nullptr;
  }
  if (!initImageLibrary(error))
    return nullptr;
  if (!makeDirectory(config.dataDirectory, error))
    return nullptr;
  char *real = realpath(config.dataDirectory.c_str(), nullptr);
  if (!real) {
    error = config.dataDirectory + ": " + strerror(errno);
    return nullptr;
  }
  std::string data = real;
  free(real);
  for (const std::string *tool :
       {&config.qsimRun, &config.qsimOpt, &config.qsimTranslate})
    if (access(tool->c_str(), X_OK) != 0) {
      error = *tool + ": not an executable (build qsim's tools first)";
      return nullptr;
    }

  auto impl = std::make_shared<Impl>();
  impl->config = config;
  impl->workspacesDir = data + "/workspaces";
  impl->logDir = data + "/logs";
  impl->runDir = data + "/run";
  for (const std::string &d : {impl->workspacesDir, impl->logDir})
    if (!makeDirectory(d, error))
      return nullptr;
  // Unix socket paths are limited to 107 bytes.
  if (impl->runDir.size() > 80) {
    char tmpl[] = "/tmp/qsim-studio-XXXXXX";
    if (!mkdtemp(tmpl)) {
      error = std::string("mkdtemp: ") + strerror(errno);
      return nullptr;
    }
    impl->runDir = tmpl;
    impl->ownRunDir = true;
  } else if (!makeDirectory(impl->runDir, error)) {
    return nullptr;
  }
  impl->db = Database::open(data + "/studio.sqlite", error);
  if (!impl->db)
    return nullptr;
  if (int n = impl->db->markInterruptedJobs())
    fprintf(stderr,
            "qsim-studio: %d job(s) of the previous run marked "
            "interrupted\n",
            n);
  impl->db->deleteExpiredLoginSessions(now());

  Impl &s = *impl;
  httplib::Server &http = s.http;
  http.new_task_queue = [] { return new httplib::ThreadPool(64); };
  http.set_payload_max_length(
      static_cast<size_t>(config.maxUploadMiB * 1024 * 1024));
  http.set_read_timeout(60, 0);
  http.set_write_timeout(60, 0);
  if (!config.quiet)
    http.set_logger(
        [](const httplib::Request &req, const httplib::Response &res) {
          fprintf(stderr, "%s %s %d\n", req.method.c_str(), req.path.c_str(),
                  res.status);
        });
  http.set_post_routing_handler(
      [](const httplib::Request &req, httplib::Response &res) {
        res.set_header("X-Content-Type-Options", "nosniff");
        res.set_header("X-Frame-Options", "DENY");
        res.set_header("Referrer-Policy", "same-origin");
        res.set_header("Content-Security-Policy",
                       "default-src 'self'; img-src 'self' data: blob:; "
                       "style-src 'self' 'unsafe-inline'");
        if (req.path.compare(0, 5, "/api/") == 0)
          res.set_header("Cache-Control", "no-store");
      });
  double maxUpload = config.maxUploadMiB;
  http.set_error_handler([maxUpload](const httplib::Request &req,
                                     httplib::Response &res) {
    if (!res.body.empty())
      return;
    if (res.status == 413) {
      char b[96];
      snprintf(b, sizeof b, "the request is larger than the %g MiB limit",
               maxUpload);
      sendError(res, 413, b);
    } else if (res.status == 404) {
      sendError(res, 404, "no such page or API endpoint: " + req.path);
    } else {
      sendError(res, res.status,
                "request refused (HTTP " + std::to_string(res.status) + ")");
    }
  });

  // Authentication: the login cookie, and on state-changing requests the
  // CSRF token in X-CSRF-Token plus a same-origin check.
  auto authenticate = [&s](const httplib::Request &req,
                           bool stateChanging) -> Caller {
    std::string token = cookieValue(req, kCookie);
    if (token.empty())
      fail(401, "log in first");
    std::string digest = tokenDigest(token);
    auto login = s.db->findLoginSession(digest, now());
    if (!login)
      fail(401, "your login has expired: log in again");
    if (stateChanging) {
      if (!tokensEqual(req.get_header_value("X-CSRF-Token"), login->csrfToken))
        fail(403, "missing or wrong CSRF token (X-CSRF-Token)");
      std::string origin = req.get_header_value("Origin");
      if (!origin.empty() &&
          origin != "http://" + req.get_header_value("Host") &&
          origin != "https://" + req.get_header_value("Host"))
        fail(403, "cross-origin request refused");
    }
    return Caller{login->userId, login->userName, login->csrfToken, digest};
  };
  using Route = std::function<json(const httplib::Request &,
                                   httplib::Response &, const Caller &)>;
  auto guarded = [authenticate](bool stateChanging, Route route) {
    return [authenticate, stateChanging, route](const httplib::Request &req,
                                                httplib::Response &res) {
      try {
        Caller caller = authenticate(req, stateChanging);
        json reply = route(req, res, caller);
        if (!reply.is_null())
          sendJson(res, res.status == -1 ? 200 : res.status, reply);
      } catch (const ApiError &e) {
        sendError(res, e.status, e.message);
      } catch (const json::exception &e) {
        sendError(res, 400, std::string("bad request: ") + e.what());
      } catch (const std::exception &e) {
        sendError(res, 500, e.what());
      }
    };
  };
  auto open =
      [](std::function<json(const httplib::Request &, httplib::Response &)>
             route) {
        return [route](const httplib::Request &req, httplib::Response &res) {
          try {
            json reply = route(req, res);
            sendJson(res, res.status == -1 ? 200 : res.status, reply);
          } catch (const ApiError &e) {
            sendError(res, e.status, e.message);
          } catch (const std::exception &e) {
            sendError(res, 400, std::string("bad request: ") + e.what());
          }
        };
      };
  auto pathParam = [](const httplib::Request &req) {
    if (!req.has_param("path"))
      fail(400, "'path' is required");
    return req.get_param_value("path");
  };
  auto idParam = [](const httplib::Request &req) -> int64_t {
    try {
      return std::stoll(req.matches[1]);
    } catch (...) {
      fail(400, "not an id");
    }
  };

  //--- accounts ------------------------------------------------------------
  auto startLogin = [&s](httplib::Response &res, int64_t userId,
                         const std::string &name) {
    std::string token = newToken(), csrf = newToken();
    int64_t maxAge = static_cast<int64_t>(s.config.loginHours * 3600);
    s.db->createLoginSession(tokenDigest(token), userId, csrf, now() + maxAge);
    res.set_header("Set-Cookie",
                   std::string(kCookie) + "=" + token +
                       "; HttpOnly; SameSite=Strict; Path=/; "
                       "Max-Age=" +
                       std::to_string(maxAge) +
                       (s.config.secureCookies ? "; Secure" : ""));
    return json{{"name", name}, {"csrf", csrf}};
  };
  // Password hashing costs 64 MiB each: two at a time bounds the memory.
  auto hashSlots = std::make_shared<std::atomic<int>>(0);
  auto withHashSlot = [hashSlots](auto fn) {
    while (hashSlots->fetch_add(1) >= 2) {
      --*hashSlots;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    auto result = fn();
    --*hashSlots;
    return result;
  };
  http.Post("/api/register",
            open([&s, startLogin, withHashSlot](const httplib::Request &req,
                                                httplib::Response &res) {
              json body = jsonBody(req);
              std::string name = stringField(body, "name");
              std::string password = stringField(body, "password");
              std::string why = checkUserName(name);
              if (why.empty())
                why = checkPassword(password);
              if (!why.empty())
                fail(400, why);
              auto hash = withHashSlot([&] {
                return hashPassword(password, s.config.passwordMemoryKiB);
              });
              if (!hash)
                fail(503, "the server is out of memory for password hashing");
              std::string error;
              auto id = s.db->createUser(name, *hash, error);
              if (!id)
                fail(409, error);
              res.status = 201;
              return startLogin(res, *id, name);
            }));
  http.Post("/api/login",
            open([&s, startLogin, withHashSlot](const httplib::Request &req,
                                                httplib::Response &res) {
              json body = jsonBody(req);
              std::string name = stringField(body, "name");
              std::string password = stringField(body, "password");
              int wait = s.loginThrottle.secondsToWait(name);
              if (wait > 0)
                fail(429, "too many failed logins for '" + name +
                              "': try again in " + std::to_string(wait) + " s");
              auto user = s.db->findUser(name);
              bool ok = withHashSlot([&] {
                return user ? verifyPassword(user->passwordHash, password)
                            : false;
              });
              if (!ok) {
                s.loginThrottle.recordFailure(name);
                fail(401, "wrong user name or password");
              }
              return startLogin(res, user->id, user->name);
            }));
  http.Post("/api/logout",
            guarded(true, [&s](const httplib::Request &, httplib::Response &res,
                               const Caller &c) {
              s.db->deleteLoginSession(c.tokenDigest);
              res.set_header("Set-Cookie",
                             std::string(kCookie) +
                                 "=; HttpOnly; SameSite=Strict; Path=/; "
                                 "Max-Age=0");
              return json{{"logged_out", true}};
            }));
  http.Get("/api/me", guarded(false, [](const httplib::Request &,
                                        httplib::Response &, const Caller &c) {
             return json{{"name", c.name}, {"csrf", c.csrfToken}};
           }));

  //--- files ---------------------------------------------------------------
  http.Get("/api/files",
           guarded(false, [&s](const httplib::Request &, httplib::Response &,
                               const Caller &c) {
             json files = json::array();
             for (const WorkspaceEntry &e : s.workspaceOf(c.userId).list())
               files.push_back(
                   {{"path", e.path},
                    {"size", e.size},
                    {"modified", e.modifiedAt},
                    {"directory", e.directory},
                    {"kind", e.directory ? "directory" : fileKind(e.path)}});
             json models = json::array();
             for (auto &[path, source] : s.db->listModels(c.userId))
               models.push_back({{"path", path}, {"source", source}});
             return json{{"files", files}, {"models", models}};
           }));
  http.Get(
      "/api/files/content",
      guarded(false,
              [&s, pathParam](const httplib::Request &req,
                              httplib::Response &res, const Caller &c) -> json {
                std::string rel = pathParam(req);
                std::string path =
                    resolveOrFail(s.workspaceOf(c.userId), rel, true);
                int fd =
                    ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
                struct stat st;
                if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
                  if (fd >= 0)
                    close(fd);
                  fail(400, "'" + rel + "' is not a file");
                }
                if (req.has_param("download")) {
                  std::string base = rel.substr(rel.rfind('/') + 1);
                  res.set_header("Content-Disposition",
                                 "attachment; filename=\"" + base + "\"");
                }
                // Streamed in 64 KiB pieces: a large model never sits in
                // memory.
                auto shared = std::make_shared<int>(fd);
                res.set_content_provider(
                    static_cast<size_t>(st.st_size), contentTypeOf(rel),
                    [shared](size_t offset, size_t length,
                             httplib::DataSink &sink) {
                      char buffer[65536];
                      size_t n = std::min(length, sizeof buffer);
                      ssize_t got =
                          pread(*shared, buffer, n, static_cast<off_t>(offset));
                      if (got <= 0)
                        return false;
                      sink.write(buffer, static_cast<size_t>(got));
                      return true;
                    },
                    [shared](bool) { close(*shared); });
                return nullptr;
              }));
  http.Post("/api/files", [&s, authenticate,
                           maxUpload](const httplib::Request &req,
                                      httplib::Response &res,
                                      const httplib::ContentReader &reader) {
    std::string temporary;
    try {
      Caller c = authenticate(req, true);
      if (!req.has_param("path"))
        fail(400, "'path' is required");
      std::string rel = req.get_param_value("path"), error;
      Workspace ws = s.workspaceOf(c.userId);
      std::string path = resolveOrFail(ws, rel, false);
      struct stat st;
      bool exists = lstat(path.c_str(), &st) == 0;
      if (exists && S_ISDIR(st.st_mode))
        fail(409, "'" + rel + "' is a directory");
      if (exists && req.get_param_value("overwrite") != "1")
        fail(409, "'" + rel + "' exists (add overwrite=1 to replace it)");
      if (req.has_header("Content-Length") &&
          std::stod(req.get_header_value("Content-Length")) >
              maxUpload * 1024 * 1024)
        fail(413, "the upload is larger than the limit");
      if (!ws.makeParents(path, error))
        fail(409, error);
      size_t slash = path.rfind('/');
      temporary = path.substr(0, slash + 1) + ".upload-" + newToken();
      int fd =
          ::open(temporary.c_str(),
                 O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0640);
      if (fd < 0)
        fail(500, std::string("cannot store the upload: ") + strerror(errno));
      size_t total = 0;
      bool written = true;
      bool complete = reader([&](const char *data, size_t n) {
        total += n;
        written = written && ::write(fd, data, n) == static_cast<ssize_t>(n);
        return written;
      });
      bool synced = fsync(fd) == 0;
      close(fd);
      if (!complete || !written || !synced) {
        unlink(temporary.c_str());
        if (!written || !synced)
          fail(507, "the upload could not be stored (disk full?)");
        char b[96];
        snprintf(b, sizeof b, "the upload is larger than the %g MiB limit",
                 maxUpload);
        fail(413, b);
      }
      if (rename(temporary.c_str(), path.c_str()) != 0) {
        unlink(temporary.c_str());
        fail(500, "cannot store the upload");
      }
      if (fileKind(rel) == "model")
        s.db->recordModel(c.userId, rel, "upload");
      sendJson(res, 201, json{{"path", rel}, {"size", total}});
    } catch (const ApiError &e) {
      if (!temporary.empty())
        unlink(temporary.c_str());
      sendError(res, e.status, e.message);
    } catch (const std::exception &e) { // a malformed Content-Length
      if (!temporary.empty())
        unlink(temporary.c_str());
      sendError(res, 400, std::string("bad request: ") + e.what());
    }
  });
  http.Delete(
      "/api/files",
      guarded(true, [&s, pathParam](const httplib::Request &req,
                                    httplib::Response &, const Caller &c) {
        std::string rel = pathParam(req);
        std::string path = resolveOrFail(s.workspaceOf(c.userId), rel, true);
        struct stat st;
        lstat(path.c_str(), &st);
        if (S_ISDIR(st.st_mode) ? rmdir(path.c_str()) != 0
                                : unlink(path.c_str()) != 0)
          fail(409, "cannot delete '" + rel + "': " + strerror(errno));
        s.db->forgetModel(c.userId, rel);
        return json{{"deleted", rel}};
      }));
  http.Post("/api/files/augment",
            guarded(true, [&s](const httplib::Request &req,
                               httplib::Response &res, const Caller &c) {
              json body = jsonBody(req);
              std::string rel = stringField(body, "path"), error;
              Workspace ws = s.workspaceOf(c.userId);
              std::string path = resolveOrFail(ws, rel, true);
              if (fileKind(rel) != "image")
                fail(400, "'" + rel + "' is not an image");
              size_t dot = path.rfind('.');
              std::string ext = path.substr(dot + 1) == "png" ? "png" : "jpg";
              std::vector<std::string> written;
              if (!augmentImage(path, path.substr(0, dot), ext,
                                s.config.maxImageMegapixels, written, error))
                fail(422, rel + ": " + error);
              json files = json::array();
              for (const std::string &w : written)
                files.push_back(w.substr(ws.directory().size() + 1));
              res.status = 201;
              return json{{"files", files}};
            }));

  //--- models, jobs, sessions, events -------------------------------------
  http.Get(
      "/api/models/graph",
      guarded(false, [&s, pathParam](const httplib::Request &req,
                                     httplib::Response &, const Caller &c) {
        return s.modelGraph(c, pathParam(req));
      }));
  http.Post("/api/models/import",
            guarded(true, [&s](const httplib::Request &req,
                               httplib::Response &res, const Caller &c) {
              res.status = 202;
              return s.startImport(c, jsonBody(req));
            }));
  http.Post("/api/jobs/inference",
            guarded(true, [&s](const httplib::Request &req,
                               httplib::Response &res, const Caller &c) {
              res.status = 202;
              return s.startInference(c, jsonBody(req));
            }));
  http.Post("/api/jobs/quantize",
            guarded(true, [&s](const httplib::Request &req,
                               httplib::Response &res, const Caller &c) {
              res.status = 202;
              return s.startQuantize(c, jsonBody(req));
            }));
  http.Get(
      "/api/jobs", guarded(false, [&s](const httplib::Request &,
                                       httplib::Response &, const Caller &c) {
        // Results can be large: GET /api/jobs/N has them.
        json jobs = json::array();
        for (const JobRecord &j : s.db->listJobs(c.userId, 100)) {
          json summary = jobToJson(j);
          summary["result"] = j.result.empty() ? json(nullptr) : json(true);
          jobs.push_back(summary);
        }
        return json{{"jobs", jobs}};
      }));
  http.Get(R"(/api/jobs/(\d+))",
           guarded(false, [&s, idParam](const httplib::Request &req,
                                        httplib::Response &, const Caller &c) {
             return jobToJson(s.ownJob(c, idParam(req)));
           }));
  http.Get(R"(/api/jobs/(\d+)/log)",
           guarded(false, [&s, idParam](const httplib::Request &req,
                                        httplib::Response &, const Caller &c) {
             int64_t id = s.ownJob(c, idParam(req)).id;
             return json{{"log", s.userVisibleLog(s.logFileOf(id), c.userId)}};
           }));
  http.Post(R"(/api/jobs/(\d+)/(stop|pause|resume))",
            guarded(true, [&s, idParam](const httplib::Request &req,
                                        httplib::Response &, const Caller &c) {
              return s.controlJob(c, idParam(req), req.matches[2]);
            }));
  http.Post("/api/sessions",
            guarded(true, [&s](const httplib::Request &req,
                               httplib::Response &res, const Caller &c) {
              res.status = 201;
              return s.startSession(c, jsonBody(req));
            }));
  http.Get("/api/sessions",
           guarded(false, [&s](const httplib::Request &, httplib::Response &,
                               const Caller &c) { return s.listSessions(c); }));
  http.Post(R"(/api/sessions/(\d+)/command)",
            guarded(true, [&s, idParam](const httplib::Request &req,
                                        httplib::Response &, const Caller &c) {
              return s.sessionCommand(c, idParam(req), jsonBody(req));
            }));
  http.Delete(
      R"(/api/sessions/(\d+))",
      guarded(true, [&s, idParam](const httplib::Request &req,
                                  httplib::Response &, const Caller &c) {
        return s.endSession(c, idParam(req));
      }));
  // Server-sent events: the user's job and session events, resumable with
  // Last-Event-ID.
  http.Get(
      "/api/events",
      guarded(false,
              [&s](const httplib::Request &req, httplib::Response &res,
                   const Caller &c) -> json {
                uint64_t after = s.events.lastId();
                std::string last = req.get_header_value("Last-Event-ID");
                if (!last.empty())
                  after = std::strtoull(last.c_str(), nullptr, 10);
                auto cursor = std::make_shared<uint64_t>(after);
                int64_t user = c.userId;
                Impl *state = &s;
                res.set_chunked_content_provider(
                    "text/event-stream",
                    [state, user, cursor](size_t, httplib::DataSink &sink) {
                      if (state->events.stopped())
                        return false;
                      auto batch = state->events.waitAfter(
                          user, *cursor, std::chrono::seconds(15));
                      std::string text;
                      for (const Event &e : batch) {
                        text += "id: " + std::to_string(e.id) +
                                "\nevent: " + e.type + "\ndata: " + e.data +
                                "\n\n";
                        *cursor = e.id;
                      }
                      if (batch.empty())
                        text = ": keep-alive\n\n";
                      return sink.write(text.data(), text.size());
                    });
                return nullptr;
              }));

  if (!config.webDirectory.empty() &&
      !http.set_mount_point("/", config.webDirectory)) {
    error = config.webDirectory + ": no such directory (build the front end: "
                                  "scripts/build.sh)";
    return nullptr;
  }
  return std::unique_ptr<StudioServer>(new StudioServer(impl));
}

int StudioServer::bind(const std::string &host, int port) {
  if (port == 0)
    return impl->http.bind_to_any_port(host.c_str());
  return impl->http.bind_to_port(host.c_str(), port) ? port : -1;
}

bool StudioServer::serve() { return impl->http.listen_after_bind(); }

void StudioServer::stop() {
  impl->events.stop();
  impl->http.stop();
}

bool StudioServer::ensureUser(const std::string &name,
                              const std::string &password, std::string &error) {
  if (impl->db->findUser(name))
    return true;
  error = checkUserName(name);
  if (error.empty())
    error = checkPassword(password);
  if (!error.empty())
    return false;
  auto hash = hashPassword(password, impl->config.passwordMemoryKiB);
  return hash && impl->db->createUser(name, *hash, error).has_value();
}

bool StudioServer::addFile(const std::string &user, const std::string &source,
                           const std::string &relative, std::string &error) {
  auto u = impl->db->findUser(user);
  if (!u) {
    error = "no user " + user;
    return false;
  }
  Workspace ws = impl->workspaceOf(u->id);
  auto path = ws.resolve(relative, false, error);
  if (!path || !ws.makeParents(*path, error))
    return false;
  std::ifstream in(source, std::ios::binary);
  std::string data(std::istreambuf_iterator<char>(in), {});
  if (!in && !in.eof()) {
    error = source + ": cannot read";
    return false;
  }
  if (!rt::writeFileAtomically(*path, data.data(), data.size(), error))
    return false;
  if (fileKind(relative) == "model")
    impl->db->recordModel(u->id, relative, source);
  return true;
}

} // namespace qsim::studio
