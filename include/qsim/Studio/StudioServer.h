//===- StudioServer.h - qsim-studio, the multi-user web service -*- C++ -*-===//
//
// An HTTP server (Boost.Beast, lib/Studio/HttpServer.h) with a JSON API and
// server-sent events over
// qsim's tools: accounts (argon2id, HttpOnly SameSite cookies, CSRF tokens),
// per-user workspaces, and every model operation as a limited child process
// (ProcessManager). docs/studio.md lists the API.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_STUDIO_STUDIOSERVER_H
#define QSIM_STUDIO_STUDIOSERVER_H

#include "qsim/Studio/ProcessManager.h"
#include "qsim/Studio/SlurmExecutor.h"

#include <memory>
#include <string>

namespace qsim::studio {

struct StudioConfig {
  std::string dataDirectory; // database, workspaces, logs, sockets
  std::string webDirectory;  // the built front end ("" : API only)
  std::string qsimRun, qsimOpt, qsimTranslate; // tool paths
  std::string qsimTrain; // "" or absent: training jobs are refused (501)
  double maxUploadMiB = 512;
  double maxImageMegapixels = 64;
  ProcessLimits jobLimits{600, 4096, 900};
  ProcessLimits sessionLimits{3600, 4096, 4 * 3600};
  double commandTimeoutSeconds = 300;
  int childThreads = 1; // threads per child (OMP_NUM_THREADS)
  int maxChildrenPerUser = 4;
  double quotaMiB = 10240;       // a workspace's disk quota
  int maxUsers = 1000;           // accounts the server accepts
  int registrationsPerHour = 10; // new accounts per client address
  double loginHours = 12;
  // argon2id memory per hash: OWASP's 19 MiB (t=2) keeps a login under
  // 200 ms on a shared 2-core host under attack (bench/studio/README.md).
  size_t passwordMemoryKiB = 19456;
  bool secureCookies = false;   // add Secure (behind an HTTPS proxy)
  bool quiet = false;           // no request log on stderr
  // The HTTP layer's limits (docs/studio.md, "The HTTP layer").
  size_t maxConnections = 4096;
  size_t maxAnonymousConnections = 256;
  size_t maxStreamsPerUser = 4;
  double headerSeconds = 10;
  double idleSeconds = 30;
  // --executor slurm: heavy jobs as Slurm batch jobs (SlurmExecutor.h).
  SlurmExecutorConfig slurm;
};

class StudioServer {
public:
  ~StudioServer();
  static std::unique_ptr<StudioServer> create(const StudioConfig &config,
                                              std::string &error);
  /// Binds; port 0 picks a free one. Returns the port or -1.
  int bind(const std::string &host, int port);
  /// Serves until stop() (blocking).
  bool serve();
  void stop();

  /// Creates an account unless it exists (the demo account); false with the
  /// reason if the name or password is refused.
  bool ensureUser(const std::string &name, const std::string &password,
                  std::string &error);
  /// Copies a file into a user's workspace (demo content).
  bool addFile(const std::string &user, const std::string &source,
               const std::string &relative, std::string &error);
  /// Imports a Darknet model into a user's workspace, waiting for the job.
  bool importModel(const std::string &user, const std::string &cfg,
                   const std::string &weights, const std::string &output,
                   std::string &error);

  struct Impl;

private:
  explicit StudioServer(std::shared_ptr<Impl> impl) : impl(std::move(impl)) {}
  std::shared_ptr<Impl> impl;
};

} // namespace qsim::studio

#endif
