//===- HttpServer.cpp - qsim-studio's HTTP/1.1 server (Boost.Beast) -------===//
//
// Every member of Connection runs on the I/O thread; handlers run on the
// worker pool and come back through a Reply, which posts to the I/O thread.
// The connection registry owns the connections: closing one removes it, and
// a reply for a closed connection (or for an earlier request) is dropped.
//
//===----------------------------------------------------------------------===//

#include "HttpServer.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/optional.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <list>
#include <map>
#include <sys/resource.h>
#include <unistd.h>

namespace qsim::studio::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

static std::chrono::milliseconds seconds(double s) {
  return std::chrono::milliseconds(static_cast<int64_t>(s * 1000));
}

//===----------------------------------------------------------------------===//
// Requests and responses
//===----------------------------------------------------------------------===//

static bool equalsIgnoringCase(const std::string &a, const std::string &b) {
  if (a.size() != b.size())
    return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (tolower(static_cast<unsigned char>(a[i])) !=
        tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

std::string Request::header(const std::string &name) const {
  for (const auto &[k, v] : headers)
    if (equalsIgnoringCase(k, name))
      return v;
  return "";
}

std::string percentDecode(const std::string &text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      out += ' ';
    } else if (text[i] == '%' && i + 2 < text.size() &&
               isxdigit(static_cast<unsigned char>(text[i + 1])) &&
               isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      out += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

/// Calls fn(name, value) for each decoded query parameter until it says stop.
template <typename Fn> static void eachParam(const std::string &query, Fn fn) {
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t end = query.find('&', pos);
    if (end == std::string::npos)
      end = query.size();
    std::string part = query.substr(pos, end - pos);
    size_t eq = part.find('=');
    if (!part.empty() &&
        fn(percentDecode(part.substr(0, eq)),
           eq == std::string::npos ? "" : percentDecode(part.substr(eq + 1))))
      return;
    pos = end + 1;
  }
}

bool Request::hasParam(const std::string &name) const {
  bool found = false;
  eachParam(query, [&](const std::string &k, const std::string &) {
    return found = k == name;
  });
  return found;
}

std::string Request::param(const std::string &name) const {
  std::string value;
  eachParam(query, [&](const std::string &k, const std::string &v) {
    if (k != name)
      return false;
    value = v;
    return true;
  });
  return value;
}

Response Response::json(int status, const std::string &jsonText) {
  Response r;
  r.status = status;
  r.body = jsonText;
  return r;
}

Response Response::error(int status, const std::string &message) {
  return json(status, nlohmann::json{{"error", message}}.dump());
}

//===----------------------------------------------------------------------===//
// Server state and connections
//===----------------------------------------------------------------------===//

class Connection;

struct Server::State : std::enable_shared_from_this<Server::State> {
  explicit State(Limits limits)
      : limits(limits), workers(static_cast<size_t>(limits.workerThreads)) {}
  Limits limits;
  asio::io_context io{1};
  std::optional<tcp::acceptor> acceptor;
  asio::thread_pool workers;
  std::vector<Route> routes;
  std::function<void(Request &, Reply)> fallback;
  std::function<void(const Request &, Response &)> decorate;
  std::function<void(const Request &, int)> logger;
  EventSource events;
  // I/O thread only: every open connection, oldest first, and the event
  // streams of each user, oldest first.
  std::list<std::shared_ptr<Connection>> connections;
  size_t anonymous = 0;
  std::map<int64_t, std::list<Connection *>> streams;
  bool stopping = false;

  void accept();
  void admit(tcp::socket socket);
  /// Closes the oldest anonymous connection that has waited for a request
  /// for at least minIdle (a fresh one may still be sending it).
  bool evictIdleAnonymous(const Connection *spare,
                          std::chrono::milliseconds minIdle);
};

/// A Reply that answers once; dropped unanswered, it answers 500 so that a
/// handler's bug cannot leave a connection waiting forever.
struct ReplyState {
  std::function<void(Response)> deliver;
  std::atomic<bool> done{false};
  void send(Response r) {
    if (!done.exchange(true))
      deliver(std::move(r));
  }
  ~ReplyState() {
    if (!done)
      deliver(Response::error(500, "the request was not answered"));
  }
};

class Connection : public std::enable_shared_from_this<Connection> {
public:
  enum class Phase { Header, Body, Handling, Writing, Streaming, Closed };
  Connection(Server::State &s, tcp::socket socket)
      : s(s), owner(s.weak_from_this()), stream(std::move(socket)),
        keepAliveTimer(s.io) {}
  void start() { readHeader(); }
  void close();
  /// Waiting for a request (nothing of it parsed) since before t.
  bool idleSince(Clock::time_point t) const {
    return phase == Phase::Header && waitingSince <= t;
  }
  int64_t user() const { return userId; }
  /// Queues an event (id 0: a comment) on the stream.
  void queueEvent(const std::string &text, uint64_t id = 0);

  std::list<std::shared_ptr<Connection>>::iterator registered;

private:
  void readHeader();
  void onHeader(beast::error_code ec);
  const Route *findRoute(bool &methodMismatch);
  void readBody(size_t limit, std::function<void()> then);
  void dispatch(const std::function<void(Request &, Reply)> &handle);
  void beginUpload();
  void acceptUpload(UploadTarget target, Reply reply);
  void readUploadPiece();
  void onUploadPiece(beast::error_code ec);
  Reply makeReply();
  void send(Response r);
  void sendString(Response &r);
  void sendFile(Response &r);
  void writeFilePiece();
  void afterResponse();
  void drainAndClose();
  void startStream(const Response &r);
  void subscribe(uint64_t after);
  void writeStream();
  void authenticated(int64_t id);
  void refuse(int status, const std::string &message) {
    bodyUnread = true;
    send(Response::error(status, message));
  }

  Server::State &s;
  std::weak_ptr<Server::State> owner; // for replies that outlive the server
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  Phase phase = Phase::Header;
  uint64_t sequence = 0; // of the request being served
  Clock::time_point waitingSince = Clock::now();
  int64_t userId = 0;
  bool bodyUnread = false, keepAlive = true;
  std::shared_ptr<Request> request;
  const Route *route = nullptr;
  std::optional<bhttp::request_parser<bhttp::empty_body>> head;
  std::optional<bhttp::request_parser<bhttp::string_body>> textBody;
  std::optional<bhttp::request_parser<bhttp::buffer_body>> uploadBody;
  UploadTarget upload;
  Reply uploadReply; // the request's reply, kept while its body arrives
  uint64_t uploaded = 0;
  Clock::time_point bodyStart;
  std::vector<char> chunk;
  std::shared_ptr<void> outgoing; // the message being written
  std::optional<bhttp::response<bhttp::file_body>> fileResponse;
  std::optional<bhttp::response_serializer<bhttp::file_body>> fileWriter;
  // Event stream
  asio::steady_timer keepAliveTimer;
  std::deque<std::string> pending;
  size_t pendingBytes = 0;
  bool writing = false;
  uint64_t subscription = 0, lastEvent = 0;
  char scratch[512];
};

void Connection::close() {
  if (phase == Phase::Closed)
    return;
  auto keep = shared_from_this();
  phase = Phase::Closed;
  beast::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  stream.close();
  keepAliveTimer.cancel();
  if (upload.abort) {
    upload.abort();
    upload = {};
  }
  uploadReply = nullptr;
  if (subscription) {
    s.events.unsubscribe(subscription);
    subscription = 0;
    auto &list = s.streams[userId];
    list.remove(this);
    if (list.empty())
      s.streams.erase(userId);
  }
  if (userId == 0)
    --s.anonymous;
  s.connections.erase(registered);
}

void Connection::authenticated(int64_t id) {
  if (id == 0 || userId != 0)
    return;
  userId = id;
  --s.anonymous;
}

//===--- reading requests ------------------------------------------------===//

void Connection::readHeader() {
  phase = Phase::Header;
  ++sequence;
  waitingSince = Clock::now();
  bodyUnread = false;
  request.reset();
  route = nullptr;
  head.emplace();
  head->header_limit(static_cast<uint32_t>(s.limits.maxHeaderBytes));
  // The route decides the body's limit; a Content-Length is checked
  // against it before the body is read, a chunked body as it arrives.
  head->body_limit(boost::none);
  // An anonymous connection must send its header soon; a logged-in one
  // may also wait between requests (keep-alive).
  stream.expires_after(
      seconds(userId ? s.limits.idleSeconds : s.limits.headerSeconds));
  bhttp::async_read_header(
      stream, buffer, *head,
      [self = shared_from_this()](beast::error_code ec, size_t) {
        self->onHeader(ec);
      });
}

const Route *Connection::findRoute(bool &methodMismatch) {
  methodMismatch = false;
  for (const Route &r : s.routes) {
    std::smatch m;
    if (!std::regex_match(request->path, m, r.pattern))
      continue;
    if (r.method != request->method) {
      methodMismatch = true;
      continue;
    }
    request->matches.assign(m.begin(), m.end());
    return &r;
  }
  return nullptr;
}

void Connection::onHeader(beast::error_code ec) {
  if (phase == Phase::Closed)
    return;
  if (ec == bhttp::error::header_limit)
    return refuse(431, "the request header is too large");
  if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout ||
      ec == asio::error::operation_aborted || ec == asio::error::eof ||
      ec == asio::error::connection_reset)
    return close();
  if (ec)
    return refuse(400, "malformed HTTP request");
  const auto &msg = head->get();
  request = std::make_shared<Request>();
  request->method = std::string(msg.method_string());
  request->target = std::string(msg.target());
  size_t q = request->target.find('?');
  request->path = request->target.substr(0, q);
  request->query = q == std::string::npos ? "" : request->target.substr(q + 1);
  for (const auto &f : msg)
    request->headers.emplace_back(std::string(f.name_string()),
                                  std::string(f.value()));
  beast::error_code addrError;
  auto endpoint = stream.socket().remote_endpoint(addrError);
  request->remoteAddress = addrError ? "" : endpoint.address().to_string();
  keepAlive = msg.keep_alive();
  bodyUnread = !head->is_done();
  bool methodMismatch = false;
  route = findRoute(methodMismatch);
  if (!route && methodMismatch)
    return refuse(405, "method not allowed on " + request->path);
  if (!route && !s.fallback)
    return refuse(404, "no such page or API endpoint: " + request->path);
  if (route && route->body == BodyKind::Upload)
    return beginUpload();
  size_t limit =
      route && route->body == BodyKind::Json ? s.limits.maxJsonBytes : 0;
  const auto &handle = route ? route->handle : s.fallback;
  readBody(limit, [this, &handle] { dispatch(handle); });
}

void Connection::readBody(size_t limit, std::function<void()> then) {
  if (!bodyUnread)
    return then();
  if (head->content_length() && *head->content_length() > limit)
    return refuse(413, "the request body is larger than the limit for this "
                       "request");
  phase = Phase::Body;
  textBody.emplace(std::move(*head));
  textBody->body_limit(limit);
  // A body of at most `limit` bytes: the idle time and the minimum rate.
  stream.expires_after(
      seconds(s.limits.idleSeconds + limit / s.limits.minBodyBytesPerSecond));
  bhttp::async_read(
      stream, buffer, *textBody,
      [self = shared_from_this(), then](beast::error_code ec, size_t) {
        if (self->phase == Phase::Closed)
          return;
        if (ec == bhttp::error::body_limit)
          return self->refuse(413, "the request body is larger than the "
                                   "limit for this request");
        if (ec)
          return self->close();
        self->bodyUnread = false;
        self->request->body = self->textBody->release().body();
        self->textBody.reset();
        then();
      });
}

Reply Connection::makeReply() {
  std::weak_ptr<Connection> weak = shared_from_this();
  std::weak_ptr<Server::State> server = owner;
  uint64_t seq = sequence;
  auto state = std::make_shared<ReplyState>();
  state->deliver = [weak, server, seq](Response r) {
    auto st = server.lock();
    if (!st) {
      if (r.fileFd >= 0)
        ::close(r.fileFd);
      return;
    }
    asio::post(st->io, [weak, seq, r = std::move(r)]() mutable {
      auto self = weak.lock();
      // Only to the request it was made for, never to a later one.
      if (self && self->phase == Phase::Handling && self->sequence == seq)
        return self->send(std::move(r));
      if (r.fileFd >= 0)
        ::close(r.fileFd);
    });
  };
  return [state](Response r) { state->send(std::move(r)); };
}

void Connection::dispatch(const std::function<void(Request &, Reply)> &handle) {
  phase = Phase::Handling;
  auto req = request;
  Reply reply = makeReply();
  asio::post(s.workers, [&handle, req, reply] {
    try {
      handle(*req, reply);
    } catch (const std::exception &e) {
      reply(Response::error(500, e.what()));
    }
  });
}

//===--- uploads ---------------------------------------------------------===//

void Connection::beginUpload() {
  phase = Phase::Handling;
  std::weak_ptr<Connection> weak = shared_from_this();
  std::weak_ptr<Server::State> server = owner;
  auto req = request;
  Reply reply = makeReply();
  const Route *r = route;
  asio::post(s.workers, [r, req, reply, weak, server] {
    auto accepted = [weak, server, reply](UploadTarget target) {
      auto st = server.lock();
      if (!st) {
        if (target.abort)
          target.abort();
        return;
      }
      asio::post(st->io, [weak, reply, target = std::move(target)]() mutable {
        auto self = weak.lock();
        if (self && self->phase == Phase::Handling)
          return self->acceptUpload(std::move(target), reply);
        if (target.abort)
          target.abort();
      });
    };
    try {
      r->startUpload(*req, accepted, reply);
    } catch (const std::exception &e) {
      reply(Response::error(500, e.what()));
    }
  });
}

void Connection::acceptUpload(UploadTarget target, Reply reply) {
  upload = std::move(target);
  uploadReply = std::move(reply);
  auto length = head->content_length();
  if (length && *length > upload.limit)
    return refuse(413, upload.tooLarge);
  uploadBody.emplace(std::move(*head));
  uploadBody->body_limit(upload.limit);
  uploaded = 0;
  bodyStart = Clock::now();
  chunk.resize(64 << 10);
  phase = Phase::Body;
  readUploadPiece();
}

void Connection::readUploadPiece() {
  if (uploadBody->is_done()) {
    bodyUnread = false;
    phase = Phase::Handling;
    UploadTarget target = std::move(upload);
    upload = {};
    uploadBody.reset();
    Reply reply = std::move(uploadReply);
    uploadReply = nullptr;
    uint64_t bytes = uploaded;
    asio::post(s.workers, [target, reply, bytes] {
      try {
        reply(target.finish(bytes));
      } catch (const std::exception &e) {
        if (target.abort)
          target.abort();
        reply(Response::error(500, e.what()));
      }
    });
    return;
  }
  auto &body = uploadBody->get().body();
  body.data = chunk.data();
  body.size = chunk.size();
  stream.expires_after(seconds(s.limits.idleSeconds));
  bhttp::async_read_some(
      stream, buffer, *uploadBody,
      [self = shared_from_this()](beast::error_code ec, size_t) {
        self->onUploadPiece(ec);
      });
}

void Connection::onUploadPiece(beast::error_code ec) {
  if (phase == Phase::Closed)
    return;
  if (ec == bhttp::error::need_buffer)
    ec = {};
  size_t got = chunk.size() - uploadBody->get().body().size;
  if (!ec && got > 0 &&
      ::write(upload.fd, chunk.data(), got) != static_cast<ssize_t>(got))
    return refuse(507, "the upload could not be stored (disk full?)");
  uploaded += got;
  double elapsed =
      std::chrono::duration<double>(Clock::now() - bodyStart).count();
  bool tooSlow = elapsed > s.limits.idleSeconds &&
                 uploaded / elapsed < s.limits.minBodyBytesPerSecond;
  if (ec == bhttp::error::body_limit)
    return refuse(413, upload.tooLarge);
  if (ec || tooSlow)
    return close(); // close() aborts the upload
  readUploadPiece();
}

//===--- responses -------------------------------------------------------===//

void Connection::send(Response r) {
  if (phase == Phase::Closed) {
    if (r.fileFd >= 0)
      ::close(r.fileFd);
    return;
  }
  if (upload.abort) { // refused while the body was being stored
    upload.abort();
    upload = {};
  }
  uploadReply = nullptr;
  authenticated(r.userId);
  Request none;
  const Request &req = request ? *request : none;
  if (s.decorate)
    s.decorate(req, r);
  if (s.logger)
    s.logger(req, r.status);
  if (r.eventStream && r.status == 200 && userId)
    return startStream(r);
  phase = Phase::Writing;
  if (r.fileFd >= 0)
    return sendFile(r);
  sendString(r);
}

template <typename Message>
static void setCommon(Message &m, const Response &r, bool keepAlive) {
  m.set(bhttp::field::content_type, r.contentType);
  for (const auto &[k, v] : r.headers)
    m.insert(k, v);
  m.keep_alive(keepAlive);
}

void Connection::sendString(Response &r) {
  auto message = std::make_shared<bhttp::response<bhttp::string_body>>(
      static_cast<bhttp::status>(r.status), 11);
  setCommon(*message, r, keepAlive && !bodyUnread);
  message->body() = std::move(r.body);
  message->prepare_payload();
  outgoing = message;
  stream.expires_after(
      seconds(s.limits.idleSeconds +
              message->body().size() / s.limits.minBodyBytesPerSecond));
  bhttp::async_write(stream, *message,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       self->outgoing.reset();
                       if (ec)
                         return self->close();
                       self->afterResponse();
                     });
}

void Connection::sendFile(Response &r) {
  fileResponse.emplace(static_cast<bhttp::status>(r.status), 11);
  setCommon(*fileResponse, r, keepAlive && !bodyUnread);
  beast::error_code ec;
  beast::file_posix file;
  file.native_handle(r.fileFd);
  fileResponse->body().reset(std::move(file), ec);
  if (ec) {
    fileResponse.reset();
    return close();
  }
  fileResponse->content_length(r.fileSize);
  fileWriter.emplace(*fileResponse);
  writeFilePiece();
}

void Connection::writeFilePiece() {
  if (fileWriter->is_done()) {
    fileWriter.reset();
    fileResponse.reset();
    return afterResponse();
  }
  // Each piece must be taken within the idle time: a reader that stops
  // does not hold the connection for the whole file.
  stream.expires_after(seconds(s.limits.idleSeconds));
  bhttp::async_write_some(
      stream, *fileWriter,
      [self = shared_from_this()](beast::error_code ec, size_t) {
        if (ec)
          return self->close();
        self->writeFilePiece();
      });
}

void Connection::afterResponse() {
  if (phase == Phase::Closed)
    return;
  if (bodyUnread || !keepAlive)
    return drainAndClose();
  readHeader();
}

// The request's unread body (a refused upload) must not be read as the next
// request: stop sending, read and discard for a moment so that the client
// sees the answer rather than a reset, then close.
void Connection::drainAndClose() {
  beast::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream.expires_after(std::chrono::seconds(2));
  auto drained = std::make_shared<size_t>(0);
  auto step =
      std::make_shared<std::function<void(beast::error_code, size_t)>>();
  *step = [self = shared_from_this(), drained, step](beast::error_code ec,
                                                     size_t n) {
    *drained += n;
    if (ec || *drained > (4u << 20) || self->phase == Phase::Closed) {
      self->close();
      *step = nullptr; // breaks the cycle
      return;
    }
    self->stream.async_read_some(asio::buffer(self->scratch), *step);
  };
  phase = Phase::Writing;
  stream.async_read_some(asio::buffer(scratch), *step);
}

//===--- event streams ---------------------------------------------------===//

static std::string chunked(const std::string &text) {
  char size[32];
  snprintf(size, sizeof size, "%zx\r\n", text.size());
  return size + text + "\r\n";
}

void Connection::startStream(const Response &r) {
  phase = Phase::Streaming;
  std::string headerText =
      "HTTP/1.1 200 OK\r\nContent-Type: "
      "text/event-stream\r\nTransfer-Encoding: chunked\r\n";
  for (const auto &[k, v] : r.headers)
    headerText += k + ": " + v + "\r\n";
  pending.push_back(headerText + "\r\n");
  pendingBytes = pending.back().size();
  // At most maxStreamsPerUser streams per user: the oldest makes room.
  auto &mine = s.streams[userId];
  mine.push_back(this);
  while (mine.size() > s.limits.maxStreamsPerUser)
    mine.front()->close();
  subscribe(r.streamAfter);
  // A client never sends on an event stream: any byte or the end closes it.
  stream.expires_never();
  stream.async_read_some(asio::buffer(scratch),
                         [self = shared_from_this()](
                             beast::error_code, size_t) { self->close(); });
  std::weak_ptr<Connection> weak = shared_from_this();
  auto beat = std::make_shared<std::function<void(beast::error_code)>>();
  *beat = [weak, beat](beast::error_code ec) {
    auto self = weak.lock();
    if (ec || !self || self->phase != Phase::Streaming) {
      *beat = nullptr;
      return;
    }
    self->queueEvent(": keep-alive\n\n");
    self->keepAliveTimer.expires_after(std::chrono::seconds(15));
    self->keepAliveTimer.async_wait(*beat);
  };
  keepAliveTimer.expires_after(std::chrono::seconds(15));
  keepAliveTimer.async_wait(*beat);
  writeStream();
}

// Subscribed before the backlog is read, so that nothing falls between; an
// event both in the backlog and posted is sent once (by id).
void Connection::subscribe(uint64_t after) {
  std::weak_ptr<Connection> weak = shared_from_this();
  std::weak_ptr<Server::State> server = owner;
  subscription =
      s.events.subscribe(userId, [weak, server](uint64_t id, std::string text) {
        if (auto st = server.lock())
          asio::post(st->io, [weak, id, text = std::move(text)] {
            if (auto self = weak.lock())
              self->queueEvent(text, id);
          });
      });
  lastEvent = after;
  for (auto &[id, text] : s.events.backlog(userId, after))
    queueEvent(text, id);
}

void Connection::queueEvent(const std::string &text, uint64_t id) {
  if (phase != Phase::Streaming || (id && id <= lastEvent))
    return;
  if (id)
    lastEvent = id;
  pending.push_back(chunked(text));
  pendingBytes += pending.back().size();
  // A reader that does not keep up loses its stream (and resumes with
  // Last-Event-ID) rather than the server's memory.
  if (pendingBytes > (1u << 20))
    return close();
  writeStream();
}

void Connection::writeStream() {
  if (writing || pending.empty() || phase != Phase::Streaming)
    return;
  writing = true;
  stream.expires_after(seconds(s.limits.idleSeconds));
  asio::async_write(stream, asio::buffer(pending.front()),
                    [self = shared_from_this()](beast::error_code ec, size_t) {
                      self->writing = false;
                      if (ec || self->phase != Phase::Streaming)
                        return self->close();
                      self->pendingBytes -= self->pending.front().size();
                      self->pending.pop_front();
                      self->writeStream();
                    });
}

//===----------------------------------------------------------------------===//
// Accepting
//===----------------------------------------------------------------------===//

bool Server::State::evictIdleAnonymous(const Connection *spare,
                                       std::chrono::milliseconds minIdle) {
  Clock::time_point before = Clock::now() - minIdle;
  for (auto &c : connections)
    if (c.get() != spare && c->user() == 0 && c->idleSince(before)) {
      c->close();
      return true;
    }
  return false;
}

void Server::State::admit(tcp::socket socket) {
  auto c = std::make_shared<Connection>(*this, std::move(socket));
  connections.push_back(c);
  c->registered = std::prev(connections.end());
  ++anonymous;
  // Past the anonymous limit, a connection that has sent nothing for a
  // second makes room (a burst of fresh ones is not cut off); past the
  // total, any idle anonymous one, else the newcomer is refused.
  if (anonymous > limits.maxAnonymousConnections)
    evictIdleAnonymous(c.get(), std::chrono::seconds(1));
  if (connections.size() > limits.maxConnections &&
      !evictIdleAnonymous(c.get(), std::chrono::milliseconds(0)))
    return c->close();
  c->start();
}

void Server::State::accept() {
  acceptor->async_accept(io, [this](beast::error_code ec, tcp::socket socket) {
    if (stopping)
      return;
    if (!ec) {
      socket.set_option(tcp::no_delay(true), ec);
      admit(std::move(socket));
      return accept();
    }
    // Out of descriptors: wait a little rather than spin.
    auto timer = std::make_shared<asio::steady_timer>(io);
    timer->expires_after(std::chrono::milliseconds(50));
    timer->async_wait([this, timer](beast::error_code) {
      if (!stopping)
        accept();
    });
  });
}

Server::Server(Limits limits) : state(std::make_shared<State>(limits)) {
  // Connections are descriptors: take what the system allows.
  struct rlimit files;
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 &&
      files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur > 512)
    state->limits.maxConnections =
        std::min<size_t>(state->limits.maxConnections, files.rlim_cur - 256);
}

Server::~Server() {
  stop();
  state->workers.join();
}

void Server::addRoute(Route route) {
  state->routes.push_back(std::move(route));
}
void Server::setFallback(std::function<void(Request &, Reply)> fallback) {
  state->fallback = std::move(fallback);
}
void Server::setCommonHeaders(
    std::function<void(const Request &, Response &)> decorate) {
  state->decorate = std::move(decorate);
}
void Server::setEventSource(EventSource source) {
  state->events = std::move(source);
}
void Server::setLogger(std::function<void(const Request &, int)> logger) {
  state->logger = std::move(logger);
}
void Server::runOnWorker(std::function<void()> fn) {
  asio::post(state->workers, std::move(fn));
}
asio::io_context &Server::ioContext() { return state->io; }

int Server::bind(const std::string &host, int port) {
  beast::error_code ec;
  auto address =
      asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec)
    return -1;
  tcp::endpoint endpoint(address, static_cast<uint16_t>(port));
  state->acceptor.emplace(state->io);
  state->acceptor->open(endpoint.protocol(), ec);
  if (!ec)
    state->acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec)
    state->acceptor->bind(endpoint, ec);
  if (!ec)
    state->acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    state->acceptor.reset();
    return -1;
  }
  return state->acceptor->local_endpoint().port();
}

bool Server::serve() {
  if (!state->acceptor)
    return false;
  state->accept();
  state->io.run();
  return true;
}

void Server::stop() {
  // A weak reference: a handler left in a stopped loop must not keep the
  // state (and with it the loop) alive.
  std::weak_ptr<State> weak = state;
  asio::post(state->io, [weak] {
    auto st = weak.lock();
    if (!st || st->stopping)
      return;
    st->stopping = true;
    beast::error_code ec;
    if (st->acceptor)
      st->acceptor->close(ec);
    while (!st->connections.empty())
      st->connections.front()->close();
    st->io.stop();
  });
}

} // namespace qsim::studio::http
