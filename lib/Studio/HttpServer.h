//===- HttpServer.h - qsim-studio's HTTP/1.1 server (Boost.Beast) -*- C++
//-*-===//
//
// One I/O thread runs every connection as a state machine on Boost.Asio: a
// connection that waits for bytes (a slow client, an idle keep-alive, an
// event stream) holds no thread, only its socket and a timer. Handlers run
// on a small worker pool and answer through a Reply that may be called
// later from any thread (a child's exit, a session's reply).
//
// What hostile traffic meets here (docs/studio.md, "The HTTP layer"):
//  - every body, chunked or not, is counted by the parser against the
//    route's limit before a byte of it is kept;
//  - a request header must arrive whole within headerSeconds, a body must
//    keep moving (idleSeconds between reads, minBodyBytesPerSecond on
//    average), a response must be read within idleSeconds per piece;
//  - connections are limited in total; connections that never showed a
//    valid login are limited apart, and the oldest idle one makes room for
//    a newcomer; event streams are limited per user (the oldest closes);
//  - a response sent before its request's body was read closes the
//    connection after a short drain: the unread body can never be taken
//    for the next request.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_LIB_STUDIO_HTTPSERVER_H
#define QSIM_LIB_STUDIO_HTTPSERVER_H

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <utility>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace qsim::studio::http {

struct Limits {
  size_t maxConnections = 4096;
  size_t maxAnonymousConnections = 256;
  size_t maxStreamsPerUser = 4;
  size_t maxHeaderBytes = 16 << 10;
  size_t maxJsonBytes = 1 << 20;
  double headerSeconds = 10;
  double idleSeconds = 30;
  double minBodyBytesPerSecond = 32 << 10;
  int workerThreads = 4;
};

struct Request {
  std::string method, target, path, query, remoteAddress;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::vector<std::string> matches; // the route pattern's groups
  /// The header's value ("" when absent); names are case-insensitive.
  std::string header(const std::string &name) const;
  bool hasParam(const std::string &name) const;
  /// The decoded query parameter ("" when absent).
  std::string param(const std::string &name) const;
};

struct Response {
  int status = 200;
  std::string contentType = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  /// A file body (owned; closed after sending) instead of `body`.
  int fileFd = -1;
  uint64_t fileSize = 0;
  /// The caller's user id once the request showed a valid login: the
  /// connection is no longer anonymous.
  int64_t userId = 0;
  /// Turns the connection into the user's event stream from event `after`.
  bool eventStream = false;
  uint64_t streamAfter = 0;

  static Response json(int status, const std::string &jsonText);
  static Response error(int status, const std::string &message);
};

using Reply = std::function<void(Response)>;

/// Where an upload's body goes: written to `fd` as it arrives, at most
/// `limit` bytes, then `finish` (on a worker) answers; on a broken or
/// oversized body `abort` cleans up and the connection closes.
struct UploadTarget {
  int fd = -1;
  uint64_t limit = 0;
  std::string tooLarge; // the 413 message past the limit
  std::function<Response(uint64_t bytes)> finish;
  std::function<void()> abort;
};

enum class BodyKind { None, Json, Upload };

struct Route {
  std::string method;
  std::regex pattern;
  BodyKind body = BodyKind::None;
  /// None and Json: the complete request, on a worker.
  std::function<void(Request &, Reply)> handle;
  /// Upload: the target of the body, or the refusal, on a worker.
  std::function<void(Request &, std::function<void(UploadTarget)>, Reply)>
      startUpload;
};

/// Event streams: the server asks for the user's events after an id and
/// subscribes to new ones (EventHub provides both).
struct EventSource {
  /// The user's kept events after `after`: (id, text) in order.
  std::function<std::vector<std::pair<uint64_t, std::string>>(int64_t user,
                                                              uint64_t after)>
      backlog;
  /// Calls fn(id, text) for each new event; returns a token.
  std::function<uint64_t(int64_t user,
                         std::function<void(uint64_t, std::string)> fn)>
      subscribe;
  std::function<void(uint64_t token)> unsubscribe;
};

class Server {
public:
  explicit Server(Limits limits);
  ~Server();
  void addRoute(Route route);
  /// Requests no route takes (static files); nullptr: 404.
  void setFallback(std::function<void(Request &, Reply)> fallback);
  /// Headers added to every response.
  void
  setCommonHeaders(std::function<void(const Request &, Response &)> decorate);
  void setEventSource(EventSource source);
  void setLogger(std::function<void(const Request &, int)> logger);

  /// Binds and listens; port 0 picks a free port. Returns it, or -1.
  int bind(const std::string &host, int port);
  /// Runs the I/O loop until stop() (blocking).
  bool serve();
  void stop();
  /// Runs fn on a worker thread.
  void runOnWorker(std::function<void()> fn);
  boost::asio::io_context &ioContext();

  struct State;

private:
  std::shared_ptr<State> state;
};

/// %XX and '+' decoding of a query component.
std::string percentDecode(const std::string &text);

} // namespace qsim::studio::http

#endif
