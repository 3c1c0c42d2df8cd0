//===- Sessions.cpp - step sessions: qsim-run --session children ----------===//
//
// A session is a `qsim-run --session --listen unix:RUN/<id>.sock` child of
// its user, holding one child slot for its lifetime. The browser's commands
// are forwarded over the socket (every file they name checked against the
// workspace first) on the I/O loop; the child's end is recorded from the
// process manager's callback. Nothing here waits on a thread.
//
//===----------------------------------------------------------------------===//

#include "Jobs.h"
#include "SessionChannel.h"

#include <boost/asio.hpp>
#include <unistd.h>

namespace qsim::studio {

void LiveSession::whenEnded(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(endMutex);
    if (!ended) {
      onEnd.push_back(std::move(fn));
      return;
    }
  }
  fn();
}

void LiveSession::markEnded() {
  std::vector<std::function<void()>> waiting;
  {
    std::lock_guard<std::mutex> lock(endMutex);
    ended = true;
    waiting.swap(onEnd);
  }
  for (auto &fn : waiting)
    fn();
}

namespace {

using Done = StudioServer::Impl::Done;

/// Runs fn after `ms` milliseconds on the I/O loop.
void after(boost::asio::io_context &io, int ms, std::function<void()> fn) {
  auto timer = std::make_shared<boost::asio::steady_timer>(io);
  timer->expires_after(std::chrono::milliseconds(ms));
  timer->async_wait([timer, fn](boost::system::error_code) { fn(); });
}

/// Records a session's end (asked for, crashed, over a limit, or the server
/// going down) and wakes whoever waits for it.
void sessionEnded(StudioServer::Impl &s, std::shared_ptr<LiveSession> session,
                  const ExitStatus &exit) {
  unlink(session->socketPath.c_str());
  int64_t user = session->userId;
  std::string log = s.userVisibleLog(s.logFileOf(session->id), user);
  std::string why = exit.describe(s.config.sessionLimits, log);
  std::string status = exit.stoppedByUser     ? "done"
                       : exit.stoppedByServer ? "interrupted"
                                              : "failed";
  std::string error = exit.stoppedByUser     ? ""
                      : exit.stoppedByServer ? "the server stopped while this "
                                               "session ran"
                                             : "the session process " + why;
  s.db->finishJob(session->id, status, "", s.redact(error, user));
  session->slot.reset();
  session->markEnded();
  s.events.publish(user, "session",
                   json{{"session", session->id},
                        {"ended", true},
                        {"reason", exit.stoppedByUser ? "ended" : why}}
                       .dump());
  s.publishJob(session->id);
}

/// Sends the load request until the child accepts connections (it may not
/// listen yet), then answers the start.
void loadWhenReady(StudioServer::Impl &s, std::shared_ptr<LiveSession> session,
                   json load, int attempt, Caller c, Done done) {
  boost::asio::io_context &io = s.http->ioContext();
  askSession(
      io, session->socketPath, load, s.config.commandTimeoutSeconds + 30,
      [&s, session, load, attempt, c, done](ChannelResult r) {
        if (!r.ok && r.noAnswer && !session->ended && attempt < 1200)
          return after(s.http->ioContext(), 25, [=, &s] {
            loadWhenReady(s, session, load, attempt + 1, c, done);
          });
        if (!r.ok) {
          s.processes.stop(session->pid, 0.2);
          int64_t id = session->id;
          return session->whenEnded([&s, id, r, done] {
            auto job = s.db->findJob(id);
            done(502,
                 json{{"error", "the session could not start: " +
                                    (job && !job->error.empty() ? job->error
                                                                : r.error)}});
          });
        }
        if (!r.reply.value("ok", false)) {
          s.endSession(c, session->id, [](int, json) {});
          return done(422,
                      json{{"error", r.reply.value("error", "the model could "
                                                            "not be loaded")}});
        }
        {
          std::lock_guard<std::mutex> lock(s.liveMutex);
          session->loadReply = r.reply;
        }
        s.events.publish(
            c.userId, "session",
            json{{"session", session->id}, {"cmd", "load"}, {"position", 0}}
                .dump());
        done(201, json{{"session", session->id}, {"load", r.reply}});
      });
}

std::shared_ptr<LiveSession> findSession(StudioServer::Impl &s, const Caller &c,
                                         int64_t id, bool remove) {
  std::lock_guard<std::mutex> lock(s.liveMutex);
  auto it = s.sessions.find(id);
  if (it == s.sessions.end() || it->second->userId != c.userId)
    fail(404, "no such session");
  auto session = it->second;
  if (remove)
    s.sessions.erase(it);
  return session;
}

} // namespace

void StudioServer::Impl::startSession(const Caller &c, const json &body,
                                      Done done) {
  Workspace ws = workspaceOf(c.userId);
  json load = loadRequest(*this, ws, body);
  ChildSlot slot = slots.acquire(c.userId);
  json args = load;
  args.erase("cmd");
  args["mode"] = body.value("mode", "float");
  int64_t id = db->createJob(c.userId, "session", args.dump());
  auto session = std::make_shared<LiveSession>();
  session->id = id;
  session->userId = c.userId;
  session->socketPath = runDir + "/" + std::to_string(id) + ".sock";
  session->loaded = args;
  session->slot = slot;
  unlink(session->socketPath.c_str());
  ProcessSpec spec;
  spec.argv = sessionArgv(*this, ws.directory());
  spec.argv.insert(spec.argv.end(),
                   {"--listen", "unix:" + session->socketPath});
  spec.workingDirectory = ws.directory();
  spec.logFile = logFileOf(id);
  spec.limits = config.sessionLimits;
  spec.environment = childEnvironment();
  std::string error;
  auto child = processes.spawn(spec, error);
  if (!child) {
    db->finishJob(id, "failed", "", redact(error, c.userId));
    fail(500, "cannot start the session: " + error);
  }
  session->pid = child->pid;
  db->setJobRunning(id, child->pid);
  {
    // Ended sessions stay (their commands answer 410 with the reason) until
    // the user starts a new one.
    std::lock_guard<std::mutex> lock(liveMutex);
    for (auto it = sessions.begin(); it != sessions.end();)
      it = it->second->userId == c.userId && it->second->ended
               ? sessions.erase(it)
               : std::next(it);
    sessions[id] = session;
  }
  processes.whenEnded(child->pid, [this, session](const ExitStatus &exit) {
    http->runOnWorker(
        [this, session, exit] { sessionEnded(*this, session, exit); });
  });
  publishJob(id);
  loadWhenReady(*this, session, load, 0, c, std::move(done));
}

void StudioServer::Impl::sessionCommand(const Caller &c, int64_t id,
                                        json request, Done done) {
  auto session = findSession(*this, c, id, false);
  if (session->ended) {
    auto job = db->findJob(id);
    fail(410, "the session has ended: " + (job ? job->error : ""));
  }
  std::string cmd = optionalString(request, "cmd");
  if (cmd.empty())
    fail(400, "'cmd' is required");
  // Every file a request names must be the user's (the child checks it too).
  Workspace ws = workspaceOf(c.userId);
  for (const char *key : {"model", "weights", "image", "calib"})
    if (request.contains(key))
      request[key] = workspacePath(ws, request, key, true);
  if (request.contains("file")) {
    bool writes = cmd == "dump" || cmd == "histogram" || cmd == "save";
    std::string rel = workspacePath(ws, request, "file", !writes);
    std::string error;
    auto path = ws.resolve(rel, false, error);
    if (writes && (!path || !ws.makeParents(*path, error)))
      fail(403, "file: " + error);
    if (writes)
      requireQuota(c.userId);
    request["file"] = rel;
  }
  int64_t user = c.userId;
  askSession(http->ioContext(), session->socketPath, request,
             config.commandTimeoutSeconds + 30,
             [this, session, id, cmd, user, done](ChannelResult r) {
               if (!r.ok) {
                 // Ended meanwhile (410) or not answering (502).
                 return after(http->ioContext(), 500, [=] {
                   auto job = db->findJob(id);
                   if (session->ended)
                     return done(410,
                                 json{{"error", "the session has ended: " +
                                                    (job ? job->error : "")}});
                   done(502, json{{"error", r.error}});
                 });
               }
               json event = {{"session", id}, {"cmd", cmd}};
               for (const char *key : {"position", "reason"})
                 if (r.reply.contains(key))
                   event[key] = r.reply[key];
               events.publish(user, "session", event.dump());
               done(200, r.reply);
             });
}

void StudioServer::Impl::endSession(const Caller &c, int64_t id, Done done) {
  auto session = findSession(*this, c, id, true);
  // Nothing of a session is lost by ending it at once: saving is explicit.
  processes.stop(session->pid, 0.2);
  json reply = {{"session", id}, {"ended", true}};
  session->whenEnded([done, reply] { done(200, reply); });
  after(http->ioContext(), 5000, [done, reply] { done(200, reply); });
}

json StudioServer::Impl::listSessions(const Caller &c) {
  json list = json::array();
  std::lock_guard<std::mutex> lock(liveMutex);
  for (auto &[id, s] : sessions)
    if (s->userId == c.userId && !s->ended)
      list.push_back({{"session", id},
                      {"args", s->loaded},
                      {"layers", s->loadReply.value("layers", json(nullptr))},
                      {"ready", !s->loadReply.is_null()}});
  return {{"sessions", list}};
}

} // namespace qsim::studio
