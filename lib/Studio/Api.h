//===- Api.h - how a studio route is declared -------------------*- C++ -*-===//
//
// Every route says who may call it (Access) and gets the authenticated
// Caller; errors thrown as ApiError become {"error": ...} with the status,
// their text redacted of server paths. Handlers run on the HTTP server's
// worker pool and must not wait long: a child's work is answered later
// through an async route's Done.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_LIB_STUDIO_API_H
#define QSIM_LIB_STUDIO_API_H

#include "StudioImpl.h"

namespace qsim::studio {

enum class Access {
  Open,  // anyone (login, register)
  Read,  // the login cookie
  Write, // the login cookie, the CSRF token and a same-origin request
};

/// One request to a route.
struct Call {
  http::Request &req;
  Caller caller;
  int status = 200; // of a JSON reply
  std::vector<std::pair<std::string, std::string>> headers;
  /// The request's JSON object body (415 for another type, 400 when
  /// malformed or not an object).
  json body() const;
  /// The query parameter `name`, 400 when absent.
  std::string param(const char *name) const;
  /// The route pattern's first number (job or session id).
  int64_t id() const;
};

using JsonHandler = std::function<json(Call &)>;
using AsyncHandler = std::function<void(Call &, StudioServer::Impl::Done)>;
using RawHandler = std::function<http::Response(Call &)>;
using AsyncRawHandler = std::function<void(Call &, http::Reply)>;
using UploadHandler = std::function<http::UploadTarget(Call &)>;

void jsonRoute(StudioServer::Impl &s, const char *method,
               const std::string &pattern, Access access, JsonHandler fn);
void asyncRoute(StudioServer::Impl &s, const char *method,
                const std::string &pattern, Access access, AsyncHandler fn);
void rawRoute(StudioServer::Impl &s, const char *method,
              const std::string &pattern, Access access, RawHandler fn);
void asyncRawRoute(StudioServer::Impl &s, const char *method,
                   const std::string &pattern, Access access,
                   AsyncRawHandler fn);
void uploadRoute(StudioServer::Impl &s, const std::string &pattern,
                 UploadHandler fn);

/// The value of a cookie of the request ("" when absent).
std::string cookieValue(const http::Request &req, const std::string &name);

// Fields of a JSON body, checked (400 with the field's name otherwise).
std::string stringField(const json &body, const char *key);
std::string optionalString(const json &body, const char *key);
int boundedInt(const json &body, const char *key, int def, int lo, int hi);

/// A workspace-relative path, checked (and its kind, when given); `key`
/// names it in errors.
std::string checkedPath(Workspace &ws, const std::string &rel, const char *key,
                        bool mustExist, const char *kind = nullptr);
/// The same for the body's field `key`.
std::string workspacePath(Workspace &ws, const json &body, const char *key,
                          bool mustExist, const char *kind = nullptr);

int64_t unixNow();

extern const char *const kLoginCookie;
extern const char *const kDeviceCookie;

} // namespace qsim::studio

#endif
