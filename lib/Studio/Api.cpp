//===- Api.cpp - authentication and error mapping of studio routes --------===//

#include "Api.h"

#include "qsim/Studio/Accounts.h"

#include <ctime>

namespace qsim::studio {

const char *const kLoginCookie = "qsim_session";
const char *const kDeviceCookie = "qsim_device";

int64_t unixNow() { return static_cast<int64_t>(std::time(nullptr)); }

std::string cookieValue(const http::Request &req, const std::string &name) {
  std::string header = req.header("Cookie");
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

json Call::body() const {
  std::string type = req.header("Content-Type");
  if (type.compare(0, 16, "application/json") != 0)
    fail(415, "send the request body as application/json");
  json parsed = json::parse(req.body, nullptr, false);
  if (parsed.is_discarded())
    fail(400, "malformed JSON in the request body");
  if (!parsed.is_object())
    fail(400, "the request body must be a JSON object");
  return parsed;
}

std::string Call::param(const char *name) const {
  if (!req.hasParam(name))
    fail(400, std::string("'") + name + "' is required");
  return req.param(name);
}

int64_t Call::id() const {
  try {
    return std::stoll(req.matches.at(1));
  } catch (...) {
    fail(400, "not an id");
  }
}

std::string stringField(const json &body, const char *key) {
  auto it = body.find(key);
  if (it == body.end() || !it->is_string())
    fail(400, std::string("'") + key + "' (a string) is required");
  return it->get<std::string>();
}

std::string optionalString(const json &body, const char *key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null())
    return "";
  if (!it->is_string())
    fail(400, std::string("'") + key + "' must be a string");
  return it->get<std::string>();
}

int boundedInt(const json &body, const char *key, int def, int lo, int hi) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null())
    return def;
  if (!it->is_number_integer() || it->get<int64_t>() < lo ||
      it->get<int64_t>() > hi)
    fail(400, std::string("'") + key + "' must be an integer in [" +
                  std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return it->get<int>();
}

std::string resolveOrFail(const Workspace &ws, const std::string &rel,
                          bool mustExist, const std::string &label) {
  std::string error;
  auto path = ws.resolve(rel, mustExist, error);
  if (!path)
    fail(error.find("does not exist") != std::string::npos ? 404 : 403,
         label.empty() ? error : label + ": " + error);
  return *path;
}

std::string checkedPath(Workspace &ws, const std::string &rel, const char *key,
                        bool mustExist, const char *kind) {
  if (rel.empty())
    fail(400, std::string("'") + key + "' is required");
  resolveOrFail(ws, rel, mustExist, key);
  if (kind && fileKind(rel) != kind)
    fail(400, std::string(key) + ": '" + rel + "' is not a " + kind + " file");
  return rel;
}

std::string workspacePath(Workspace &ws, const json &body, const char *key,
                          bool mustExist, const char *kind) {
  return checkedPath(ws, optionalString(body, key), key, mustExist, kind);
}

//===----------------------------------------------------------------------===//
// Authentication and dispatch
//===----------------------------------------------------------------------===//

namespace {

/// The caller of a request: the login cookie, and on state-changing
/// requests the CSRF token in X-CSRF-Token plus a same-origin check.
Caller authenticate(StudioServer::Impl &s, const http::Request &req,
                    Access access) {
  if (access == Access::Open)
    return Caller{};
  std::string token = cookieValue(req, kLoginCookie);
  if (token.empty())
    fail(401, "log in first");
  std::string digest = tokenDigest(token);
  auto login = s.db->findLoginSession(digest, unixNow());
  if (!login)
    fail(401, "your login has expired: log in again");
  if (access == Access::Write) {
    if (!tokensEqual(req.header("X-CSRF-Token"), login->csrfToken))
      fail(403, "missing or wrong CSRF token (X-CSRF-Token)");
    std::string origin = req.header("Origin");
    if (!origin.empty() && origin != "http://" + req.header("Host") &&
        origin != "https://" + req.header("Host"))
      fail(403, "cross-origin request refused");
  }
  return Caller{login->userId, login->userName, login->csrfToken, digest};
}

http::Response jsonResponse(const Call &call, int status, const json &body) {
  http::Response r = http::Response::json(status, body.dump());
  r.headers = call.headers;
  r.userId = call.caller.userId;
  return r;
}

/// Runs fn with the request's caller; an exception becomes the reply.
void guarded(StudioServer::Impl &s, http::Request &req, Access access,
             const http::Reply &reply, const std::function<void(Call &)> &fn) {
  Call call{req, Caller{}};
  try {
    call.caller = authenticate(s, req, access);
    fn(call);
  } catch (const ApiError &e) {
    http::Response r = http::Response::error(
        e.status, s.redact(e.message, call.caller.userId));
    r.headers = call.headers;
    r.userId = call.caller.userId;
    reply(std::move(r));
  } catch (const json::exception &e) {
    reply(http::Response::error(400, std::string("bad request: ") + e.what()));
  } catch (const std::exception &e) {
    reply(http::Response::error(500, s.redact(e.what(), call.caller.userId)));
  }
}

http::BodyKind bodyOf(const char *method) {
  std::string m = method;
  return m == "POST" || m == "PUT" ? http::BodyKind::Json
                                   : http::BodyKind::None;
}

} // namespace

void rawRoute(StudioServer::Impl &s, const char *method,
              const std::string &pattern, Access access, RawHandler fn) {
  http::Route route;
  route.method = method;
  route.pattern = std::regex(pattern);
  route.body = bodyOf(method);
  route.handle = [&s, access, fn](http::Request &req, http::Reply reply) {
    guarded(s, req, access, reply, [&](Call &call) {
      http::Response r = fn(call);
      r.userId = call.caller.userId;
      reply(std::move(r));
    });
  };
  s.http->addRoute(std::move(route));
}

void jsonRoute(StudioServer::Impl &s, const char *method,
               const std::string &pattern, Access access, JsonHandler fn) {
  rawRoute(s, method, pattern, access, [fn](Call &call) {
    json body = fn(call);
    return jsonResponse(call, call.status, body);
  });
}

void asyncRawRoute(StudioServer::Impl &s, const char *method,
                   const std::string &pattern, Access access,
                   AsyncRawHandler fn) {
  http::Route route;
  route.method = method;
  route.pattern = std::regex(pattern);
  route.body = bodyOf(method);
  route.handle = [&s, access, fn](http::Request &req, http::Reply reply) {
    guarded(s, req, access, reply, [&](Call &call) { fn(call, reply); });
  };
  s.http->addRoute(std::move(route));
}

void asyncRoute(StudioServer::Impl &s, const char *method,
                const std::string &pattern, Access access, AsyncHandler fn) {
  StudioServer::Impl *state = &s;
  asyncRawRoute(
      s, method, pattern, access, [fn, state](Call &call, http::Reply reply) {
        int64_t user = call.caller.userId;
        fn(call, [reply, user, state](int status, json body) {
          if (status >= 400 && body.contains("error") &&
              body["error"].is_string())
            body["error"] = state->redact(body["error"], user);
          http::Response r = http::Response::json(status, body.dump());
          r.userId = user;
          reply(std::move(r));
        });
      });
}

void uploadRoute(StudioServer::Impl &s, const std::string &pattern,
                 UploadHandler fn) {
  http::Route route;
  route.method = "POST";
  route.pattern = std::regex(pattern);
  route.body = http::BodyKind::Upload;
  route.startUpload = [&s, fn](http::Request &req,
                               std::function<void(http::UploadTarget)> accept,
                               http::Reply reply) {
    guarded(s, req, Access::Write, reply,
            [&](Call &call) { accept(fn(call)); });
  };
  s.http->addRoute(std::move(route));
}

} // namespace qsim::studio
