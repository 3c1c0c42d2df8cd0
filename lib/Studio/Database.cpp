//===- Database.cpp - qsim-studio's SQLite store --------------------------===//

#include "qsim/Studio/Database.h"

#include <ctime>
#include <memory>
#include <sqlite3.h>

namespace qsim::studio {
namespace {

/// A prepared statement with positional text/integer bindings.
class Statement {
public:
  Statement(sqlite3 *db, const char *sql) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) != SQLITE_OK)
      stmt = nullptr;
  }
  ~Statement() { sqlite3_finalize(stmt); }
  explicit operator bool() const { return stmt != nullptr; }
  Statement &bind(int i, const std::string &s) {
    sqlite3_bind_text(stmt, i, s.data(), static_cast<int>(s.size()),
                      SQLITE_TRANSIENT);
    return *this;
  }
  Statement &bind(int i, int64_t v) {
    sqlite3_bind_int64(stmt, i, v);
    return *this;
  }
  /// SQLITE_ROW, SQLITE_DONE or an error code.
  int step() { return stmt ? sqlite3_step(stmt) : SQLITE_ERROR; }
  int64_t integer(int col) { return sqlite3_column_int64(stmt, col); }
  std::string text(int col) {
    const unsigned char *t = sqlite3_column_text(stmt, col);
    return t ? std::string(reinterpret_cast<const char *>(t),
                           sqlite3_column_bytes(stmt, col))
             : std::string();
  }

private:
  sqlite3_stmt *stmt = nullptr;
};

const char *kSchema = R"sql(
PRAGMA journal_mode=WAL;
PRAGMA synchronous=NORMAL;
PRAGMA foreign_keys=ON;
CREATE TABLE IF NOT EXISTS users (
  id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL,
  password_hash TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS login_sessions (
  token_digest TEXT PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id),
  csrf_token TEXT NOT NULL, expires_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
  id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id),
  kind TEXT NOT NULL, status TEXT NOT NULL, args TEXT NOT NULL,
  result TEXT NOT NULL DEFAULT '', error TEXT NOT NULL DEFAULT '',
  pid INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL,
  finished_at INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS jobs_by_user ON jobs(user_id, id);
CREATE TABLE IF NOT EXISTS devices (
  token_digest TEXT PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id),
  expires_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS models (
  user_id INTEGER NOT NULL REFERENCES users(id), path TEXT NOT NULL,
  source TEXT NOT NULL, created_at INTEGER NOT NULL,
  PRIMARY KEY (user_id, path));
)sql";

int64_t now() { return static_cast<int64_t>(std::time(nullptr)); }

JobRecord readJob(Statement &s) {
  JobRecord j;
  j.id = s.integer(0);
  j.userId = s.integer(1);
  j.kind = s.text(2);
  j.status = s.text(3);
  j.args = s.text(4);
  j.result = s.text(5);
  j.error = s.text(6);
  j.pid = s.integer(7);
  j.createdAt = s.integer(8);
  j.finishedAt = s.integer(9);
  return j;
}

const char *kJobColumns = "SELECT id, user_id, kind, status, args, result, "
                          "error, pid, created_at, finished_at FROM jobs ";

} // namespace

Database::~Database() { sqlite3_close(db); }

std::unique_ptr<Database> Database::open(const std::string &path,
                                         std::string &error) {
  sqlite3 *handle = nullptr;
  if (sqlite3_open_v2(path.c_str(), &handle,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                          SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    error = path + ": " + (handle ? sqlite3_errmsg(handle) : "cannot open");
    sqlite3_close(handle);
    return nullptr;
  }
  sqlite3_busy_timeout(handle, 5000);
  std::unique_ptr<Database> database(new Database(handle));
  if (!database->exec(kSchema, error)) {
    error = path + ": " + error;
    return nullptr;
  }
  return database;
}

bool Database::exec(const std::string &sql, std::string &error) {
  char *message = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
    error = message ? message : "SQLite error";
    sqlite3_free(message);
    return false;
  }
  return true;
}

std::optional<int64_t> Database::createUser(const std::string &name,
                                            const std::string &passwordHash,
                                            std::string &error) {
  std::lock_guard<std::mutex> lock(mutex);
  Statement s(db, "INSERT INTO users(name, password_hash, created_at) "
                  "VALUES(?, ?, ?)");
  s.bind(1, name).bind(2, passwordHash).bind(3, now());
  int rc = s.step();
  if (rc == SQLITE_CONSTRAINT) {
    error = "the name '" + name + "' is taken";
    return std::nullopt;
  }
  if (rc != SQLITE_DONE) {
    error = sqlite3_errmsg(db);
    return std::nullopt;
  }
  return sqlite3_last_insert_rowid(db);
}

std::optional<User> Database::findUser(const std::string &name) {
  std::lock_guard<std::mutex> lock(mutex);
  Statement s(db, "SELECT id, name, password_hash FROM users WHERE name = ?");
  s.bind(1, name);
  if (s.step() != SQLITE_ROW)
    return std::nullopt;
  return User{s.integer(0), s.text(1), s.text(2)};
}

int64_t Database::countUsers() {
  std::lock_guard<std::mutex> lock(mutex);
  Statement s(db, "SELECT COUNT(*) FROM users");
  return s.step() == SQLITE_ROW ? s.integer(0) : 0;
}

void Database::trustDevice(const std::string &tokenDigest, int64_t userId,
                           int64_t expiresAt) {
  std::lock_guard<std::mutex> lock(mutex);
  Statement s(db, "INSERT OR REPLACE INTO devices(token_digest, user_id, "
                  "expires_at) VALUES(?, ?, ?)");
  s.bind(1, tokenDigest).bind(2, userId).bind(3, expiresAt);
  s.step();
}

bool Database::isTrustedDevice(const std::string &tokenDigest, int64_t userId,
                               int64_t nowTime) {
  std::lock_guard<std::mutex> lock(mutex);
  Statement s(db, "SELECT 1 FROM devices WHERE token_digest = ? AND "
                  "user_id = ? AND expires_at > ?");
  s.bind(1, tokenDigest).bind(2, userId).bind(3, nowTime);
  return s.step() == SQLITE_ROW;
}

void Database::createLoginSession(const std::string &tokenDigest,
                                  int64_t userId, const std::string &csrfToken,
                                  int64_t expiresAt) {
  std::lock_guard<std::mutex> lock(mutex);
  Statement s(db, "INSERT INTO login_sessions(token_digest, user_id, "
                  "csrf_token, expires_at) VALUES(?, ?, ?, ?)");
  s.bind(1, tokenDigest).bind(2, userId).bind(3, csrfToken).bind(4, expiresAt);
  s.step();
}

std::optional<LoginSession>
Database::findLoginSession(const std::string &tokenDigest, int64_t nowTime) {
  std::lock_guard<std::mutex> lock(mutex);
  Statement s(db, "SELECT l.user_id, u.name, l.csrf_token, l.expires_at "
                  "FROM login_sessions l JOIN users u ON u.id = l.user_id "
                  "WHERE l.token_digest = ? AND l.expires_at > ?");
  s.bind(1, tokenDigest).bind(2, nowTime);
  if (s.step() != SQLITE_ROW)
    return std::nullopt;
  return LoginSession{s.integer(0), s.text(1), s.text(2), s.integer(3)};
}

void Database::deleteLoginSession(const std::string &tokenDigest) {
  std::lock_guard<std::mutex> lock(mutex);
  Statement s(db, "DELETE FROM login_sessions WHERE token_digest = ?");
  s.bind(1, tokenDigest);
  s.step();
}

void Database::deleteExpiredLoginSessions(int64_t nowTime) {
  std::lock_guard<std::mutex> lock(mutex);
  Statement s(db, "DELETE FROM login_sessions WHERE expires_at <= ?");
  s.bind(1, nowTime);
  s.step();
}

int64_t Database::createJob(int64_t userId, const std::string &kind,
                            const std::string &args) {
  std::lock_guard<std::mutex> lock(mutex);
  Statement s(db, "INSERT INTO jobs(user_id, kind, status, args, created_at) "
                  "VALUES(?, ?, 'queued', ?, ?)");
  s.bind(1, userId).bind(2, kind).bind(3, args).bind(4, now());
  s.step();
  return sqlite3_last_insert_rowid(db);
}

void Database::setJobRunning(int64_t id, int64_t pid) {
  std::lock_guard<std::mutex> lock(mutex);
  Statement s(db, "UPDATE jobs SET status = 'running', pid = ? WHERE id = ?");
  s.bind(1, pid).bind(2, id);
  s.step();
}

void Database::finishJob(int64_t id, const std::string &status,
                         const std::string &result, const std::string &error) {
  std::lock_guard<std::mutex> lock(mutex);
  Statement s(db, "UPDATE jobs SET status = ?, result = ?, error = ?, "
                  "finished_at = ? WHERE id = ?");
  s.bind(1, status).bind(2, result).bind(3, error).bind(4, now()).bind(5, id);
  s.step();
}

std::optional<JobRecord> Database::findJob(int64_t id) {
  std::lock_guard<std::mutex> lock(mutex);
  Statement s(db, (std::string(kJobColumns) + "WHERE id = ?").c_str());
  s.bind(1, id);
  if (s.step() != SQLITE_ROW)
    return std::nullopt;
  return readJob(s);
}

std::vector<JobRecord> Database::listJobs(int64_t userId, size_t limit) {
  std::lock_guard<std::mutex> lock(mutex);
  Statement s(db, (std::string(kJobColumns) +
                   "WHERE user_id = ? ORDER BY id DESC LIMIT ?")
                      .c_str());
  s.bind(1, userId).bind(2, static_cast<int64_t>(limit));
  std::vector<JobRecord> jobs;
  while (s.step() == SQLITE_ROW)
    jobs.push_back(readJob(s));
  return jobs;
}

int Database::markInterruptedJobs() {
  std::lock_guard<std::mutex> lock(mutex);
  Statement s(db, "UPDATE jobs SET status = 'interrupted', error = "
                  "'the server stopped while this job ran', finished_at = ? "
                  "WHERE status IN ('queued', 'running')");
  s.bind(1, now());
  s.step();
  return sqlite3_changes(db);
}

void Database::recordModel(int64_t userId, const std::string &path,
                           const std::string &source) {
  std::lock_guard<std::mutex> lock(mutex);
  Statement s(db, "INSERT OR REPLACE INTO models(user_id, path, source, "
                  "created_at) VALUES(?, ?, ?, ?)");
  s.bind(1, userId).bind(2, path).bind(3, source).bind(4, now());
  s.step();
}

std::vector<std::pair<std::string, std::string>>
Database::listModels(int64_t userId) {
  std::lock_guard<std::mutex> lock(mutex);
  Statement s(db, "SELECT path, source FROM models WHERE user_id = ? "
                  "ORDER BY path");
  s.bind(1, userId);
  std::vector<std::pair<std::string, std::string>> models;
  while (s.step() == SQLITE_ROW)
    models.emplace_back(s.text(0), s.text(1));
  return models;
}

void Database::forgetModel(int64_t userId, const std::string &path) {
  std::lock_guard<std::mutex> lock(mutex);
  Statement s(db, "DELETE FROM models WHERE user_id = ? AND path = ?");
  s.bind(1, userId).bind(2, path);
  s.step();
}

} // namespace qsim::studio
