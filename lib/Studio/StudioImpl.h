//===- StudioImpl.h - qsim-studio's shared server state ---------*- C++ -*-===//
//
// Private to lib/Studio: the state behind the HTTP routes (StudioServer.cpp)
// and the jobs and step sessions they start (StudioJobs.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_LIB_STUDIO_STUDIOIMPL_H
#define QSIM_LIB_STUDIO_STUDIOIMPL_H

#include "qsim/Studio/Database.h"
#include "qsim/Studio/EventHub.h"
#include "qsim/Studio/ProcessManager.h"
#include "qsim/Studio/StudioServer.h"
#include "qsim/Studio/Workspace.h"

#include <atomic>
#include <deque>
#include <httplib.h>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

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
inline std::string resolveOrFail(const Workspace &ws, const std::string &rel,
                                 bool mustExist,
                                 const std::string &label = "") {
  std::string error;
  auto path = ws.resolve(rel, mustExist, error);
  if (!path)
    fail(error.find("does not exist") != std::string::npos ? 404 : 403,
         label.empty() ? error : label + ": " + error);
  return *path;
}

/// The authenticated user of a request.
struct Caller {
  int64_t userId = 0;
  std::string name;
  std::string csrfToken;
  std::string tokenDigest;
};

/// A running step session: a `qsim-run --session --listen unix:` child.
struct LiveSession {
  int64_t id = 0; // its job id
  int64_t userId = 0;
  pid_t pid = -1;
  std::string socketPath;
  json loaded; // model, image, mode of the load request
  std::atomic<bool> ended{false};
};

/// Slows password guessing: after kMaxFailures wrong passwords for a name
/// within kWindowSeconds, that name's logins are refused until the oldest
/// failure leaves the window.
class LoginThrottle {
public:
  static constexpr size_t kMaxFailures = 5;
  static constexpr int64_t kWindowSeconds = 300;
  int secondsToWait(const std::string &name);
  void recordFailure(const std::string &name);

private:
  std::mutex mutex;
  std::map<std::string, std::deque<int64_t>> failures;
};

struct StudioServer::Impl : std::enable_shared_from_this<StudioServer::Impl> {
  StudioConfig config;
  std::unique_ptr<Database> db;
  ProcessManager processes;
  EventHub events;
  httplib::Server http;
  std::string workspacesDir, logDir, runDir;

  std::mutex liveMutex;
  std::map<int64_t, std::shared_ptr<LiveSession>> sessions; // by job id
  struct RunningJob {
    pid_t pid;
    int64_t userId;
  };
  std::map<int64_t, RunningJob> runningJobs; // by job id
  std::atomic<int> activeThreads{0};
  LoginThrottle loginThrottle;
  bool ownRunDir = false; // a mkdtemp directory, removed at the end

  Workspace workspaceOf(int64_t userId);
  /// Children (jobs and sessions) the user has running now.
  int childrenOf(int64_t userId);
  void requireChildSlot(int64_t userId);
  /// A child's log tail with the server's paths taken out.
  std::string userVisibleLog(const std::string &logFile, int64_t userId);
  std::string logFileOf(int64_t jobId);
  /// The caller's job `id`, or 404 (another user's job is not revealed).
  JobRecord ownJob(const Caller &c, int64_t id);
  /// What every child process runs with: its thread count and a passive
  /// OpenMP wait policy (many children share few cores).
  std::vector<std::pair<std::string, std::string>> childEnvironment() const;
  void publishJob(int64_t jobId);

  // StudioJobs.cpp
  json startImport(const Caller &c, const json &body);
  json startInference(const Caller &c, const json &body);
  json startQuantize(const Caller &c, const json &body);
  json controlJob(const Caller &c, int64_t jobId, const std::string &action);
  json modelGraph(const Caller &c, const std::string &path);
  json startSession(const Caller &c, const json &body);
  json sessionCommand(const Caller &c, int64_t id, json request);
  json endSession(const Caller &c, int64_t id);
  json listSessions(const Caller &c);
  void stopAllChildren();
  /// Runs fn on a detached thread counted in activeThreads.
  void runDetached(std::function<void()> fn);
};

json jobToJson(const JobRecord &job);

} // namespace qsim::studio

#endif
