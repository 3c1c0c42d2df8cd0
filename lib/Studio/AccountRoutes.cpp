//===- AccountRoutes.cpp - /api/register, /api/login, /api/logout, /api/me ===//
//
// Password hashing (argon2id, 64 MiB) runs on the compute pool, two at a
// time, so that a burst of logins neither holds request workers nor the
// server's memory. Failed logins are throttled per name for unknown
// browsers, per browser for trusted ones (the device cookie a successful
// login leaves) and per client address: guessing a name's password from
// elsewhere does not lock its owner out.
//
//===----------------------------------------------------------------------===//

#include "Api.h"

#include "qsim/Studio/Accounts.h"

namespace qsim::studio {

namespace {

constexpr int64_t kDeviceDays = 90;

/// The login cookie (and the device cookie) for a user, and the reply.
http::Response startLogin(StudioServer::Impl &s, const http::Request &req,
                          int status, int64_t userId, const std::string &name) {
  std::string token = newToken(), csrf = newToken();
  int64_t maxAge = static_cast<int64_t>(s.config.loginHours * 3600);
  s.db->createLoginSession(tokenDigest(token), userId, csrf,
                           unixNow() + maxAge);
  std::string secure = s.config.secureCookies ? "; Secure" : "";
  http::Response r =
      http::Response::json(status, json{{"name", name}, {"csrf", csrf}}.dump());
  r.headers.emplace_back("Set-Cookie",
                         std::string(kLoginCookie) + "=" + token +
                             "; HttpOnly; SameSite=Strict; Path=/; Max-Age=" +
                             std::to_string(maxAge) + secure);
  std::string device = cookieValue(req, kDeviceCookie);
  if (device.size() != 64 ||
      !s.db->isTrustedDevice(tokenDigest(device), userId, unixNow())) {
    device = newToken();
    int64_t age = kDeviceDays * 86400;
    s.db->trustDevice(tokenDigest(device), userId, unixNow() + age);
    r.headers.emplace_back("Set-Cookie",
                           std::string(kDeviceCookie) + "=" + device +
                               "; HttpOnly; SameSite=Strict; Path=/api; "
                               "Max-Age=" +
                               std::to_string(age) + secure);
  }
  r.userId = userId;
  return r;
}

void registerAccount(StudioServer::Impl &s, Call &call, http::Reply reply) {
  json body = call.body();
  std::string name = stringField(body, "name");
  std::string password = stringField(body, "password");
  std::string why = checkUserName(name);
  if (why.empty())
    why = checkPassword(password);
  if (!why.empty())
    fail(400, why);
  std::string address = "address:" + call.req.remoteAddress;
  if (int wait = s.registrations.secondsToWait(address, unixNow()))
    fail(429, "too many new accounts from your address: try again in " +
                  std::to_string(wait) + " s");
  if (s.db->countUsers() >= s.config.maxUsers)
    fail(503, "the server accepts no more accounts");
  auto req = std::make_shared<http::Request>(call.req);
  s.runComputation([&s, req, name, password, address, reply] {
    auto hash = hashPassword(password, s.config.passwordMemoryKiB);
    if (!hash)
      return reply(http::Response::error(
          503, "the server is out of memory for password hashing"));
    std::string error;
    auto id = s.db->createUser(name, *hash, error);
    if (!id)
      return reply(http::Response::error(409, error));
    s.registrations.recordFailure(address, unixNow()); // counts accounts
    reply(startLogin(s, *req, 201, *id, name));
  });
}

void login(StudioServer::Impl &s, Call &call, http::Reply reply) {
  json body = call.body();
  std::string name = stringField(body, "name");
  std::string password = stringField(body, "password");
  auto user = s.db->findUser(name);
  std::string device = cookieValue(call.req, kDeviceCookie);
  bool trusted =
      user && device.size() == 64 &&
      s.db->isTrustedDevice(tokenDigest(device), user->id, unixNow());
  // A trusted browser answers for its own failures only.
  std::string key = trusted ? "device:" + tokenDigest(device) : "name:" + name;
  std::string address = "address:" + call.req.remoteAddress;
  int wait = s.loginThrottle.secondsToWait(key, unixNow());
  if (!trusted)
    wait = std::max(wait, s.addressFailures.secondsToWait(address, unixNow()));
  if (wait > 0)
    fail(429, "too many failed logins for '" + name + "': try again in " +
                  std::to_string(wait) + " s");
  auto req = std::make_shared<http::Request>(call.req);
  s.runComputation([&s, req, user, password, key, address, reply] {
    if (!user || !verifyPassword(user->passwordHash, password)) {
      s.loginThrottle.recordFailure(key, unixNow());
      s.addressFailures.recordFailure(address, unixNow());
      return reply(http::Response::error(401, "wrong user name or password"));
    }
    reply(startLogin(s, *req, 200, user->id, user->name));
  });
}

} // namespace

void addAccountRoutes(StudioServer::Impl &s) {
  asyncRawRoute(s, "POST", "/api/register", Access::Open,
                [&s](Call &call, http::Reply reply) {
                  registerAccount(s, call, std::move(reply));
                });
  asyncRawRoute(s, "POST", "/api/login", Access::Open,
                [&s](Call &call, http::Reply reply) {
                  login(s, call, std::move(reply));
                });
  jsonRoute(s, "POST", "/api/logout", Access::Write, [&s](Call &call) {
    s.db->deleteLoginSession(call.caller.tokenDigest);
    call.headers.emplace_back("Set-Cookie",
                              std::string(kLoginCookie) +
                                  "=; HttpOnly; SameSite=Strict; Path=/; "
                                  "Max-Age=0");
    return json{{"logged_out", true}};
  });
  jsonRoute(s, "GET", "/api/me", Access::Read, [](Call &call) {
    return json{{"name", call.caller.name}, {"csrf", call.caller.csrfToken}};
  });
}

} // namespace qsim::studio
