//===- Server.cpp - newline-delimited JSON transport for a session -------===//

#include "qsim/Session/Server.h"

#include <arpa/inet.h>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <list>
#include <memory>
#include <mutex>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>

using namespace qsim::session;

namespace {

struct Connection {
  int in = -1, out = -1;
  bool socket = true;
  std::string rbuf, wbuf;
  bool discarding = false; // inside an over-long line
  bool closed = false;
  bool inputDone = false; // stdio: end of input seen
  uint64_t id = 0;
};

void setNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL, 0);
  if (flags >= 0)
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

std::atomic<Server *> signalTarget{nullptr};
void onSignal(int) {
  if (Server *s = signalTarget.load())
    s->requestShutdown();
}

} // namespace

struct Server::Impl {
  Engine &engine;
  SessionControl control;
  int wake[2] = {-1, -1}; // self-pipe: a reply is ready, or shutdown
  std::atomic<bool> shutdown{false};
  std::list<Connection> conns;
  uint64_t nextId = 1;

  // Requests run one at a time, in arrival order, on the worker thread (the
  // engine is not thread-safe); control requests are answered at once.
  struct Job {
    uint64_t conn;
    nlohmann::json request;
    std::string reply; // set: answer this without running (keeps the order)
  };
  std::thread worker;
  std::mutex m;
  std::condition_variable cv;
  std::list<Job> queue;
  std::list<std::pair<uint64_t, std::string>> outbox;
  uint64_t runningConn = 0;
  bool working = false, quit = false;

  explicit Impl(Engine &e) : engine(e) {
    if (pipe(wake) == 0) {
      setNonBlocking(wake[0]);
      setNonBlocking(wake[1]);
    }
    worker = std::thread([this] { work(); });
  }
  ~Impl() {
    stopWorker();
    for (int fd : wake)
      if (fd >= 0)
        ::close(fd);
  }

  void poke() {
    char c = 1;
    (void)!write(wake[1], &c, 1);
  }

  void work() {
    std::unique_lock<std::mutex> l(m);
    for (;;) {
      cv.wait(l, [&] { return quit || !queue.empty(); });
      if (quit)
        return;
      Job job = std::move(queue.front());
      queue.pop_front();
      runningConn = job.conn;
      working = true;
      l.unlock();
      std::string r = !job.reply.empty()
                          ? job.reply
                          : engine.handle(job.request, control).dump();
      l.lock();
      working = false;
      runningConn = 0;
      outbox.push_back({job.conn, std::move(r)});
      poke();
    }
  }

  void stopWorker() {
    {
      std::lock_guard<std::mutex> l(m);
      quit = true;
      queue.clear();
    }
    control.stop();
    control.resume();
    cv.notify_all();
    if (worker.joinable())
      worker.join();
  }

  bool idle() {
    std::lock_guard<std::mutex> l(m);
    return queue.empty() && !working && outbox.empty();
  }

  Connection *find(uint64_t id) {
    for (auto &c : conns)
      if (c.id == id && !c.closed)
        return &c;
    return nullptr;
  }

  void reply(Connection &c, const std::string &line) {
    if (c.closed)
      return;
    c.wbuf += line;
    c.wbuf += '\n';
  }

  void handleLine(Connection &c, const std::string &line) {
    if (line.find_first_not_of(" \t\r") == std::string::npos)
      return; // blank lines are ignored
    nlohmann::json req;
    try {
      req = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception &e) {
      answerInOrder(c,
                    nlohmann::json(
                        {{"ok", false},
                         {"error", std::string("malformed JSON: ") + e.what()}})
                        .dump());
      return;
    }
    std::string cmd =
        req.is_object() && req.contains("cmd") && req["cmd"].is_string()
            ? req["cmd"].get<std::string>()
            : "";
    if (Engine::isControlCommand(cmd)) {
      nlohmann::json r = Engine::handleControl(req, control);
      r["cmd"] = cmd;
      {
        std::lock_guard<std::mutex> l(m);
        r["status"]["queued"] = queue.size();
      }
      if (req.contains("id"))
        r["id"] = req["id"];
      reply(c, r.dump());
      return;
    }
    std::lock_guard<std::mutex> l(m);
    queue.push_back({c.id, std::move(req)});
    cv.notify_all();
  }

  /// An error reply that still waits its turn behind the queued requests.
  void answerInOrder(Connection &c, std::string reply) {
    std::lock_guard<std::mutex> l(m);
    queue.push_back({c.id, nullptr, std::move(reply)});
    cv.notify_all();
  }

  void collectReplies() {
    std::list<std::pair<uint64_t, std::string>> ready;
    {
      std::lock_guard<std::mutex> l(m);
      ready.swap(outbox);
    }
    for (auto &[id, r] : ready)
      if (Connection *c = find(id))
        reply(*c, r);
  }

  void readFrom(Connection &c, size_t maxLine) {
    char buf[65536];
    for (;;) {
      ssize_t n = c.socket ? recv(c.in, buf, sizeof buf, 0)
                           : read(c.in, buf, sizeof buf);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
      if (n <= 0) {
        if (!c.rbuf.empty() && !c.discarding)
          handleLine(c, c.rbuf); // a last line without its newline
        c.rbuf.clear();
        if (c.socket)
          close(c);
        else
          c.inputDone = true; // stdio: finish the queued work first
        return;
      }
      for (ssize_t i = 0; i < n; ++i) {
        char ch = buf[i];
        if (ch == '\n') {
          if (!c.discarding)
            handleLine(c, c.rbuf);
          c.rbuf.clear();
          c.discarding = false;
          continue;
        }
        if (c.discarding)
          continue;
        c.rbuf.push_back(ch);
        if (c.rbuf.size() > maxLine) {
          answerInOrder(c,
                        nlohmann::json({{"ok", false},
                                        {"error", "request longer than " +
                                                      std::to_string(maxLine) +
                                                      " bytes: ignored"}})
                            .dump());
          c.rbuf.clear();
          c.discarding = true;
        }
      }
      if ((size_t)n < sizeof buf)
        return;
    }
  }

  void writeTo(Connection &c) {
    while (!c.wbuf.empty()) {
      ssize_t n = c.socket
                      ? send(c.out, c.wbuf.data(), c.wbuf.size(), MSG_NOSIGNAL)
                      : write(c.out, c.wbuf.data(), c.wbuf.size());
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
      if (n <= 0) {
        close(c);
        return;
      }
      c.wbuf.erase(0, n);
    }
  }

  void close(Connection &c) {
    if (c.closed)
      return;
    c.closed = true;
    // Its queued requests are dropped; the one running stops at the next
    // layer boundary, leaving the session consistent (its position is the
    // last finished layer).
    {
      std::lock_guard<std::mutex> l(m);
      queue.remove_if([&](const Job &j) { return j.conn == c.id; });
      if (working && runningConn == c.id)
        control.stop();
    }
    if (c.socket)
      ::close(c.in);
    c.in = c.out = -1;
  }

  /// The event loop over the connections and, when listening, new clients.
  int loop(int listenFd, size_t maxLine, int maxClients) {
    for (;;) {
      if (shutdown)
        break;
      std::vector<pollfd> fds;
      std::vector<Connection *> owners;
      fds.push_back({wake[0], POLLIN, 0});
      owners.push_back(nullptr);
      if (listenFd >= 0) {
        fds.push_back({listenFd, POLLIN, 0});
        owners.push_back(nullptr);
      }
      for (auto &c : conns) {
        if (c.closed)
          continue;
        if (c.in == c.out) {
          fds.push_back(
              {c.in, (short)(POLLIN | (c.wbuf.empty() ? 0 : POLLOUT)), 0});
          owners.push_back(&c);
          continue;
        }
        if (!c.inputDone) {
          fds.push_back({c.in, POLLIN, 0});
          owners.push_back(&c);
        }
        if (!c.wbuf.empty()) {
          fds.push_back({c.out, POLLOUT, 0});
          owners.push_back(&c);
        }
      }
      int rc = poll(fds.data(), fds.size(), -1);
      if (rc < 0 && errno == EINTR)
        continue;
      if (rc < 0)
        return 1;
      if (fds[0].revents) {
        char buf[64];
        while (read(wake[0], buf, sizeof buf) > 0) {
        }
        collectReplies();
      }
      if (listenFd >= 0 && (fds[1].revents & POLLIN)) {
        int fd = accept(listenFd, nullptr, nullptr);
        if (fd >= 0) {
          setNonBlocking(fd);
          size_t open = 0;
          for (auto &c : conns)
            open += !c.closed;
          Connection c;
          c.in = c.out = fd;
          c.id = nextId++;
          conns.push_back(c);
          if ((int)open >= maxClients) {
            Connection &nc = conns.back();
            reply(nc,
                  nlohmann::json({{"ok", false}, {"error", "too many clients"}})
                      .dump());
            writeTo(nc);
            close(nc);
          }
        }
      }
      for (size_t i = listenFd >= 0 ? 2 : 1; i < fds.size(); ++i) {
        Connection *c = owners[i];
        if (!c || c->closed || !fds[i].revents)
          continue;
        bool outFd = c->in != c->out && fds[i].fd == c->out;
        if (outFd) {
          writeTo(*c);
          continue;
        }
        if (fds[i].revents & (POLLIN | POLLHUP | POLLERR))
          readFrom(*c, maxLine);
        if (!c->closed && (fds[i].revents & POLLOUT))
          writeTo(*c);
      }
      // Flush what can be written now.
      for (auto &c : conns)
        if (!c.closed && !c.wbuf.empty())
          writeTo(c);
      // A stdio session ends once its input ended and everything it asked
      // for was answered.
      for (auto &c : conns)
        if (!c.closed && c.inputDone && c.wbuf.empty() && idle())
          c.closed = true;
      conns.remove_if([](const Connection &c) { return c.closed; });
      if (listenFd < 0 && conns.empty())
        break;
    }
    return 0;
  }
};

Server::Server(Engine &engine) : impl(new Impl(engine)) {}
Server::~Server() {
  if (signalTarget.load() == this)
    signalTarget = nullptr;
  delete impl;
}

void Server::requestShutdown() {
  impl->shutdown = true;
  impl->poke();
}

void Server::installSignalHandlers() {
  signalTarget = this;
  struct sigaction sa = {};
  sa.sa_handler = onSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

int Server::serveStdio() {
  Connection c;
  c.in = 0;
  c.out = 1;
  c.socket = false;
  c.id = impl->nextId++;
  // Non-blocking for the loop; the descriptors' flags are restored after
  // (a terminal shared with the shell must not stay non-blocking).
  int inFlags = fcntl(0, F_GETFL, 0), outFlags = fcntl(1, F_GETFL, 0);
  setNonBlocking(0);
  setNonBlocking(1);
  impl->conns.push_back(c);
  int rc =
      impl->loop(-1, impl->engine.options().limits.maxRequestBytes, maxClients);
  if (inFlags >= 0)
    fcntl(0, F_SETFL, inFlags);
  if (outFlags >= 0)
    fcntl(1, F_SETFL, outFlags);
  return rc;
}

int Server::serveSocket(const std::string &endpoint, std::string &error,
                        std::function<void(const std::string &)> onListening) {
  int fd = -1;
  std::string unixPath, bound;
  if (endpoint.rfind("unix:", 0) == 0) {
    unixPath = endpoint.substr(5);
    sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    if (unixPath.empty() || unixPath.size() >= sizeof addr.sun_path) {
      error = "bad unix socket path '" + unixPath + "'";
      return 2;
    }
    std::strcpy(addr.sun_path, unixPath.c_str());
    // A stale socket file (from a crash) is replaced; a live one is not.
    struct stat st;
    if (lstat(unixPath.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode)) {
        error = "'" + unixPath + "' exists and is not a socket";
        return 2;
      }
      int probe = socket(AF_UNIX, SOCK_STREAM, 0);
      bool live =
          probe >= 0 && connect(probe, (sockaddr *)&addr, sizeof addr) == 0;
      if (probe >= 0)
        ::close(probe);
      if (live) {
        error = "'" + unixPath + "' is in use by another session";
        return 2;
      }
      unlink(unixPath.c_str());
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    // Only the owner may connect.
    mode_t old = umask(0077);
    int b = fd < 0 ? -1 : bind(fd, (sockaddr *)&addr, sizeof addr);
    umask(old);
    if (b != 0) {
      error = "cannot bind '" + unixPath + "': " + std::strerror(errno);
      if (fd >= 0)
        ::close(fd);
      return 2;
    }
    bound = "unix:" + unixPath;
  } else if (endpoint.rfind("tcp:", 0) == 0) {
    std::string rest = endpoint.substr(4);
    size_t colon = rest.rfind(':');
    if (colon == std::string::npos) {
      error = "tcp endpoint must be tcp:HOST:PORT";
      return 2;
    }
    std::string host = rest.substr(0, colon), port = rest.substr(colon + 1);
    addrinfo hints = {}, *res = nullptr;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if (int g = getaddrinfo(host.c_str(), port.c_str(), &hints, &res)) {
      error = "cannot resolve '" + rest + "': " + gai_strerror(g);
      return 2;
    }
    for (addrinfo *a = res; a && fd < 0; a = a->ai_next) {
      fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (fd < 0)
        continue;
      int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (bind(fd, a->ai_addr, a->ai_addrlen) != 0) {
        error = "cannot bind '" + rest + "': " + std::strerror(errno);
        ::close(fd);
        fd = -1;
      }
    }
    freeaddrinfo(res);
    if (fd < 0)
      return 2;
    sockaddr_storage ss;
    socklen_t len = sizeof ss;
    getsockname(fd, (sockaddr *)&ss, &len);
    int p = ss.ss_family == AF_INET ? ntohs(((sockaddr_in *)&ss)->sin_port)
                                    : ntohs(((sockaddr_in6 *)&ss)->sin6_port);
    bound = "tcp:" + host + ":" + std::to_string(p);
  } else {
    error =
        "endpoint must be unix:PATH or tcp:HOST:PORT, not '" + endpoint + "'";
    return 2;
  }
  if (listen(fd, 16) != 0) {
    error = std::string("cannot listen: ") + std::strerror(errno);
    ::close(fd);
    return 2;
  }
  setNonBlocking(fd);
  if (onListening)
    onListening(bound);
  int rc =
      impl->loop(fd, impl->engine.options().limits.maxRequestBytes, maxClients);
  for (auto &c : impl->conns)
    impl->close(c);
  impl->conns.clear();
  ::close(fd);
  if (!unixPath.empty())
    unlink(unixPath.c_str());
  return rc;
}
