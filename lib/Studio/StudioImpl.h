//===- StudioImpl.h - qsim-studio's shared server state ---------*- C++ -*-===//
//
// Private to lib/Studio: the state behind the routes (*Routes.cpp, one file
// per resource), the jobs (Jobs.cpp and one file per job kind) and the step
// sessions (Sessions.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_LIB_STUDIO_STUDIOIMPL_H
#define QSIM_LIB_STUDIO_STUDIOIMPL_H

#include "HttpServer.h"

#include "qsim/Studio/Database.h"
#include "qsim/Studio/EventHub.h"
#include "qsim/Studio/LoginThrottle.h"
#include "qsim/Studio/ProcessManager.h"
#include "qsim/Studio/StudioServer.h"
#include "qsim/Studio/Workspace.h"

#include <atomic>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

namespace boost::asio {
class thread_pool;
}

namespace qsim::studio {

using json = nlohmann::json;

/// A refused request: HTTP status and the message shown to the user.
struct ApiError {
  int status;
  std::string message;
};
[[noreturn]] inline void fail(int status, std::string message) {
  throw ApiError{status, std::move(message)};
}

/// The absolute path of a workspace-relative one, or an ApiError: 404 when
/// it does not exist, 403 when it is refused. `label` prefixes the message.
std::string resolveOrFail(const Workspace &ws, const std::string &rel,
                          bool mustExist, const std::string &label = "");

/// The authenticated user of a request.
struct Caller {
  int64_t userId = 0;
  std::string name;
  std::string csrfToken;
  std::string tokenDigest;
};

/// One of a user's --max-children-per-user slots, held for as long as a
/// child (job, session, graph read) or an in-server computation
/// (augmentation) runs; released when the last copy goes.
using ChildSlot = std::shared_ptr<void>;

/// The per-user count of running children: taking a slot checks and counts
/// in one step, so parallel requests cannot all pass the check.
class ChildSlots {
public:
  explicit ChildSlots(int limit) : limit(limit) {}
  /// A slot, or an ApiError 429 naming the limit.
  ChildSlot acquire(int64_t userId);
  int count(int64_t userId);

private:
  std::mutex mutex;
  std::map<int64_t, int> used;
  int limit;
};

/// A running step session: a `qsim-run --session --listen unix:` child.
struct LiveSession {
  int64_t id = 0; // its job id
  int64_t userId = 0;
  pid_t pid = -1;
  std::string socketPath;
  json loaded;    // model, image, mode of the load request
  json loadReply; // what the child answered to the load
  ChildSlot slot; // released when the session ends
  std::atomic<bool> ended{false};
  std::mutex endMutex;
  std::vector<std::function<void()>> onEnd; // run once it has ended
  /// Runs fn when the session has ended (at once if it has).
  void whenEnded(std::function<void()> fn);
  void markEnded();
};

/// Why children are stopped: the user (status "stopped") or the server
/// going down (status "interrupted", as for a restart).
enum class StopReason { User, Server };

struct StudioServer::Impl : std::enable_shared_from_this<StudioServer::Impl> {
  explicit Impl(const StudioConfig &config);
  ~Impl();
  StudioConfig config;
  std::unique_ptr<Database> db;
  ProcessManager processes;
  EventHub events;
  std::unique_ptr<http::Server> http;
  /// In-server computations (password hashing, augmentation), apart from
  /// the request workers.
  std::unique_ptr<boost::asio::thread_pool> compute;
  std::atomic<int> computeQueued{0};
  std::string dataDir, workspacesDir, logDir, runDir;
  ChildSlots slots;
  LoginThrottle loginThrottle; // per name (unknown browsers) or browser
  LoginThrottle addressFailures{50, 300, 100000}; // per client address
  LoginThrottle registrations{10, 3600, 10000};   // per address and hour

  std::mutex liveMutex;
  std::map<int64_t, std::shared_ptr<LiveSession>> sessions; // by job id
  struct RunningJob {
    pid_t pid;
    int64_t userId;
    bool slurm = false; // a supervisor of a Slurm batch job
  };
  std::map<int64_t, RunningJob> runningJobs; // by job id
  std::atomic<bool> shuttingDown{false};
  std::atomic<int> activeThreads{0};
  bool ownRunDir = false; // a mkdtemp directory, removed at the end

  Workspace workspaceOf(int64_t userId);
  /// Bytes the user's workspace holds.
  uint64_t workspaceBytes(int64_t userId);
  /// 507 when the user's workspace is at its quota.
  void requireQuota(int64_t userId);
  /// A message with the server's paths (data directory, the user's
  /// workspace, the socket directory) taken out.
  std::string redact(std::string text, int64_t userId);
  /// A child's log tail, redacted, without LLVM's crash report.
  std::string userVisibleLog(const std::string &logFile, int64_t userId);
  std::string logFileOf(int64_t jobId);
  /// The caller's job `id`, or 404 (another user's job is not revealed).
  JobRecord ownJob(const Caller &c, int64_t id);
  /// What every child process runs with: its thread count and a passive
  /// OpenMP wait policy (many children share few cores).
  std::vector<std::pair<std::string, std::string>> childEnvironment() const;
  void publishJob(int64_t jobId);
  /// Refuses an image over --max-image-mpixels before a child decodes it.
  void checkImageSize(const std::string &absolute, const std::string &rel);
  /// Runs fn on a detached thread counted in activeThreads.
  void runDetached(std::function<void()> fn);
  /// Runs fn on the compute pool; 503 when too much work is queued.
  void runComputation(std::function<void()> fn);

  // Jobs.cpp and one file per kind
  json startImport(const Caller &c, const json &body);
  json startInference(const Caller &c, const json &body);
  json startQuantize(const Caller &c, const json &body);
  json startTrain(const Caller &c, const json &body);
  json controlJob(const Caller &c, int64_t jobId, const std::string &action);
  void stopAllChildren(StopReason why);

  // Sessions.cpp (answers through `done`: a session's child may take long)
  using Done = std::function<void(int status, json reply)>;
  void startSession(const Caller &c, const json &body, Done done);
  void sessionCommand(const Caller &c, int64_t id, json request, Done done);
  void endSession(const Caller &c, int64_t id, Done done);
  json listSessions(const Caller &c);
};

json jobToJson(const JobRecord &job);

/// Registers each resource's routes (one file each).
void addAccountRoutes(StudioServer::Impl &s);
void addFileRoutes(StudioServer::Impl &s);
void addModelRoutes(StudioServer::Impl &s);
void addJobRoutes(StudioServer::Impl &s);
void addSessionRoutes(StudioServer::Impl &s);
void addEventRoutes(StudioServer::Impl &s);
void addStaticFiles(StudioServer::Impl &s);

} // namespace qsim::studio

#endif
