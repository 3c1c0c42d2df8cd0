//===- StudioServer.cpp - qsim-studio's server: state, setup, shutdown ----===//
//
// The state shared by the routes (StudioImpl.h) and the server's life:
// create() checks the tools and directories, opens the database and
// registers each resource's routes (*Routes.cpp) on the HTTP layer
// (HttpServer.h); the destructor stops every child as "interrupted".
//
//===----------------------------------------------------------------------===//

#include "Api.h"

#include "qsim/Runtime/AtomicFile.h"
#include "qsim/Studio/Accounts.h"
#include "qsim/Studio/Augment.h"

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace qsim::studio {

//===----------------------------------------------------------------------===//
// Shared state
//===----------------------------------------------------------------------===//

ChildSlot ChildSlots::acquire(int64_t userId) {
  std::lock_guard<std::mutex> lock(mutex);
  int &n = used[userId];
  if (n >= limit)
    fail(429, "you have " + std::to_string(n) +
                  " jobs, sessions and graph reads running (the limit is " +
                  std::to_string(limit) + "): end one first");
  ++n;
  return ChildSlot(nullptr, [this, userId](void *) {
    std::lock_guard<std::mutex> lock(mutex);
    if (--used[userId] == 0)
      used.erase(userId);
  });
}

int ChildSlots::count(int64_t userId) {
  std::lock_guard<std::mutex> lock(mutex);
  auto it = used.find(userId);
  return it == used.end() ? 0 : it->second;
}

StudioServer::Impl::Impl(const StudioConfig &config)
    : config(config), compute(std::make_unique<boost::asio::thread_pool>(2)),
      slots(config.maxChildrenPerUser),
      registrations(static_cast<size_t>(config.registrationsPerHour), 3600,
                    10000) {}

StudioServer::Impl::~Impl() {
  shuttingDown = true;
  if (http)
    http->stop();
  stopAllChildren(StopReason::Server);
  // Children end within their grace time; job threads then record them.
  for (int i = 0; i < 400 && (processes.count() > 0 || activeThreads > 0); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  compute->join();
  http.reset(); // joins the request workers
  if (ownRunDir)
    rmdir(runDir.c_str());
}

Workspace StudioServer::Impl::workspaceOf(int64_t userId) {
  std::string dir = workspacesDir + "/" + std::to_string(userId);
  mkdir(dir.c_str(), 0750);
  return Workspace(dir);
}

uint64_t StudioServer::Impl::workspaceBytes(int64_t userId) {
  return workspaceOf(userId).bytesUsed();
}

void StudioServer::Impl::requireQuota(int64_t userId) {
  double used = static_cast<double>(workspaceBytes(userId)) / 1048576;
  if (used >= config.quotaMiB) {
    char b[160];
    snprintf(b, sizeof b,
             "your workspace holds %.1f MiB, its quota is %g MiB: delete "
             "files first",
             used, config.quotaMiB);
    fail(507, b);
  }
}

static void replaceAll(std::string &text, const std::string &from,
                       const std::string &to) {
  if (from.empty())
    return;
  for (size_t p = 0; (p = text.find(from, p)) != std::string::npos;
       p += to.size())
    text.replace(p, from.size(), to);
}

std::string StudioServer::Impl::redact(std::string text, int64_t userId) {
  if (userId) {
    std::string root = workspacesDir + "/" + std::to_string(userId);
    replaceAll(text, root + "/", "");
    replaceAll(text, root, "(your workspace)");
  }
  replaceAll(text, runDir, "(studio)");
  replaceAll(text, dataDir, "(studio)");
  return text;
}

std::string StudioServer::Impl::userVisibleLog(const std::string &logFile,
                                               int64_t userId) {
  std::string text = readFileTail(logFile, 4000);
  // LLVM's crash report (stack dump, "PLEASE submit a bug report") says
  // nothing to the user and names the server's paths.
  for (const char *marker :
       {"PLEASE submit a bug report", "Stack dump:", " #0 0x"}) {
    size_t at = text.find(marker);
    if (at != std::string::npos)
      text.erase(at);
  }
  while (!text.empty() && isspace(static_cast<unsigned char>(text.back())))
    text.pop_back();
  return redact(text, userId);
}

std::string StudioServer::Impl::logFileOf(int64_t jobId) {
  return logDir + "/job-" + std::to_string(jobId) + ".log";
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

void StudioServer::Impl::publishJob(int64_t jobId) {
  if (auto job = db->findJob(jobId))
    events.publish(job->userId, "job", jobToJson(*job).dump());
}

void StudioServer::Impl::checkImageSize(const std::string &absolute,
                                        const std::string &rel) {
  std::string error;
  auto megapixels = imageMegapixels(absolute, error);
  if (!megapixels)
    fail(422, rel + ": " + error);
  if (*megapixels > config.maxImageMegapixels) {
    char b[160];
    snprintf(b, sizeof b,
             "%s has %.3g megapixels; the limit is %g (--max-image-mpixels)",
             rel.c_str(), *megapixels, config.maxImageMegapixels);
    fail(413, b);
  }
}

void StudioServer::Impl::runDetached(std::function<void()> fn) {
  ++activeThreads;
  std::thread([this, fn = std::move(fn)] {
    fn();
    --activeThreads;
  }).detach();
}

void StudioServer::Impl::runComputation(std::function<void()> fn) {
  if (computeQueued >= 32)
    fail(503, "the server is busy: try again in a moment");
  ++computeQueued;
  boost::asio::post(*compute, [this, fn = std::move(fn)] {
    fn();
    --computeQueued;
  });
}

//===----------------------------------------------------------------------===//
// Setup
//===----------------------------------------------------------------------===//

static bool makeDirectory(const std::string &dir, std::string &error) {
  if (mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST) {
    error = dir + ": " + strerror(errno);
    return false;
  }
  return true;
}

/// The data directory's real path, its subdirectories, and the tools.
static bool prepareDirectories(StudioServer::Impl &s, std::string &error) {
  const StudioConfig &config = s.config;
  if (!makeDirectory(config.dataDirectory, error))
    return false;
  char *real = realpath(config.dataDirectory.c_str(), nullptr);
  if (!real) {
    error = config.dataDirectory + ": " + strerror(errno);
    return false;
  }
  s.dataDir = real;
  free(real);
  for (const std::string *tool :
       {&config.qsimRun, &config.qsimOpt, &config.qsimTranslate})
    if (access(tool->c_str(), X_OK) != 0) {
      error = *tool + ": not an executable (build qsim's tools first)";
      return false;
    }
  s.workspacesDir = s.dataDir + "/workspaces";
  s.logDir = s.dataDir + "/logs";
  s.runDir = s.dataDir + "/run";
  for (const std::string &d : {s.workspacesDir, s.logDir})
    if (!makeDirectory(d, error))
      return false;
  // Unix socket paths are limited to 107 bytes.
  if (s.runDir.size() <= 80)
    return makeDirectory(s.runDir, error);
  char tmpl[] = "/tmp/qsim-studio-XXXXXX";
  if (!mkdtemp(tmpl)) {
    error = std::string("mkdtemp: ") + strerror(errno);
    return false;
  }
  s.runDir = tmpl;
  s.ownRunDir = true;
  return true;
}

/// The HTTP layer with its limits, security headers and request log.
static std::unique_ptr<http::Server> makeHttpServer(const StudioConfig &c) {
  http::Limits limits;
  limits.maxConnections = c.maxConnections;
  limits.maxAnonymousConnections = c.maxAnonymousConnections;
  limits.maxStreamsPerUser = c.maxStreamsPerUser;
  limits.headerSeconds = c.headerSeconds;
  limits.idleSeconds = c.idleSeconds;
  auto server = std::make_unique<http::Server>(limits);
  server->setCommonHeaders([](const http::Request &req, http::Response &res) {
    res.headers.emplace_back("X-Content-Type-Options", "nosniff");
    res.headers.emplace_back("X-Frame-Options", "DENY");
    res.headers.emplace_back("Referrer-Policy", "same-origin");
    res.headers.emplace_back("Content-Security-Policy",
                             "default-src 'self'; img-src 'self' data: blob:; "
                             "style-src 'self' 'unsafe-inline'");
    if (req.path.compare(0, 5, "/api/") == 0)
      res.headers.emplace_back("Cache-Control", "no-store");
  });
  if (!c.quiet)
    server->setLogger([](const http::Request &req, int status) {
      fprintf(stderr, "%s %s %d\n", req.method.c_str(), req.path.c_str(),
              status);
    });
  return server;
}

std::unique_ptr<StudioServer> StudioServer::create(const StudioConfig &config,
                                                   std::string &error) {
  if (!initCrypto()) {
    error = "libsodium cannot be initialized";
    return nullptr;
  }
  if (!initImageLibrary(error))
    return nullptr;
  // The server writes to pipes of children that may die at any moment (a
  // crashed qsim-run); a closed reader must be an error return, not SIGPIPE
  // ending the server (or the test process that embeds it).
  signal(SIGPIPE, SIG_IGN);
  auto impl = std::make_shared<Impl>(config);
  if (!prepareDirectories(*impl, error))
    return nullptr;
  if (!config.webDirectory.empty() &&
      access((config.webDirectory + "/index.html").c_str(), R_OK) != 0) {
    error = config.webDirectory + ": no index.html (build the front end: "
                                  "scripts/build.sh)";
    return nullptr;
  }
  impl->db = Database::open(impl->dataDir + "/studio.sqlite", error);
  if (!impl->db)
    return nullptr;
  if (int n = impl->db->markInterruptedJobs())
    fprintf(stderr,
            "qsim-studio: %d job(s) of the previous run marked "
            "interrupted\n",
            n);
  impl->db->deleteExpiredLoginSessions(unixNow());
  impl->http = makeHttpServer(config);
  for (auto add :
       {addAccountRoutes, addFileRoutes, addModelRoutes, addJobRoutes,
        addSessionRoutes, addEventRoutes, addStaticFiles})
    add(*impl);
  return std::unique_ptr<StudioServer>(new StudioServer(impl));
}

//===----------------------------------------------------------------------===//
// Serving
//===----------------------------------------------------------------------===//

StudioServer::~StudioServer() = default;

int StudioServer::bind(const std::string &host, int port) {
  return impl->http->bind(host, port);
}

bool StudioServer::serve() { return impl->http->serve(); }

void StudioServer::stop() { impl->http->stop(); }

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
