//===- Database.h - qsim-studio's SQLite store ------------------*- C++ -*-===//
//
// Users, login sessions, models and jobs in one SQLite file. One connection
// guarded by a mutex: the studio's queries are tiny, and a single writer
// keeps the file consistent across a crash (WAL journal).
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_STUDIO_DATABASE_H
#define QSIM_STUDIO_DATABASE_H

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;

namespace qsim::studio {

struct User {
  int64_t id = 0;
  std::string name;
  std::string passwordHash;
};

struct LoginSession {
  int64_t userId = 0;
  std::string userName;
  std::string csrfToken;
  int64_t expiresAt = 0;
};

struct JobRecord {
  int64_t id = 0;
  int64_t userId = 0;
  std::string kind;   // import, inference, quantize, session (JobKinds.h)
  std::string status; // queued, running, done, failed, stopped, interrupted
  std::string args;   // JSON
  std::string result; // JSON ("" until done)
  std::string error;
  int64_t pid = 0;
  int64_t createdAt = 0;
  int64_t finishedAt = 0;
};

class Database {
public:
  ~Database();
  /// Opens (creating when absent) the database file and its schema.
  static std::unique_ptr<Database> open(const std::string &path,
                                        std::string &error);

  std::optional<int64_t> createUser(const std::string &name,
                                    const std::string &passwordHash,
                                    std::string &error);
  std::optional<User> findUser(const std::string &name);
  int64_t countUsers();

  /// Browsers that logged in as a user before (device cookies, by digest):
  /// failed logins of others do not lock them out.
  void trustDevice(const std::string &tokenDigest, int64_t userId,
                   int64_t expiresAt);
  bool isTrustedDevice(const std::string &tokenDigest, int64_t userId,
                       int64_t now);

  void createLoginSession(const std::string &tokenDigest, int64_t userId,
                          const std::string &csrfToken, int64_t expiresAt);
  std::optional<LoginSession> findLoginSession(const std::string &tokenDigest,
                                               int64_t now);
  void deleteLoginSession(const std::string &tokenDigest);
  void deleteExpiredLoginSessions(int64_t now);

  int64_t createJob(int64_t userId, const std::string &kind,
                    const std::string &args);
  void setJobRunning(int64_t id, int64_t pid);
  void finishJob(int64_t id, const std::string &status,
                 const std::string &result, const std::string &error);
  std::optional<JobRecord> findJob(int64_t id);
  std::vector<JobRecord> listJobs(int64_t userId, size_t limit);
  /// Jobs a previous server process left queued or running: marks them
  /// interrupted and returns how many there were.
  int markInterruptedJobs();

  void recordModel(int64_t userId, const std::string &path,
                   const std::string &source);
  std::vector<std::pair<std::string, std::string>> listModels(int64_t userId);
  void forgetModel(int64_t userId, const std::string &path);

private:
  explicit Database(sqlite3 *db) : db(db) {}
  bool exec(const std::string &sql, std::string &error);
  sqlite3 *db;
  std::mutex mutex;
};

} // namespace qsim::studio

#endif
