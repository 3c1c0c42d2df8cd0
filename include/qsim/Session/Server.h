//===- Server.h - newline-delimited JSON transport for a session -*- C++
//-*-===//
//
// One request per line, one reply per line, on stdin/stdout or on a Unix or
// TCP socket with any number of clients (up to a limit). Long commands run
// on a worker thread so that status/pause/resume/stop from any connection
// are answered while they run; other commands get a "busy" error reply
// meanwhile. A client that disconnects stops the command it started.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_SESSION_SERVER_H
#define QSIM_SESSION_SERVER_H

#include "qsim/Session/Engine.h"

#include <atomic>
#include <functional>
#include <string>

namespace qsim::session {

class Server {
public:
  explicit Server(Engine &engine);
  ~Server();

  /// Serves stdin/stdout until end of input. Returns the exit code.
  int serveStdio();
  /// Listens on "unix:PATH" or "tcp:HOST:PORT" (port 0: any free port) until
  /// requestShutdown() or SIGINT/SIGTERM (when installSignalHandlers).
  /// `onListening` is told the bound endpoint ("tcp:127.0.0.1:43211").
  int serveSocket(const std::string &endpoint, std::string &error,
                  std::function<void(const std::string &)> onListening = {});
  /// Thread-safe; makes serveSocket/serveStdio return.
  void requestShutdown();
  /// Route SIGINT/SIGTERM to requestShutdown() of this server.
  void installSignalHandlers();

  int maxClients = 16;

private:
  struct Impl;
  Impl *impl;
};

} // namespace qsim::session

#endif
