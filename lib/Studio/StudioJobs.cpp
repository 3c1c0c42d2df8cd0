//===- StudioJobs.cpp - qsim-studio's jobs and step sessions --------------===//
//
// Each job is a child process under the ProcessManager's limits, driven by
// one detached thread that records its end in the database and publishes
// events. Inference runs a stdin/stdout step session layer by layer (for
// progress and per-layer SQNR); quantization runs qsim-opt; step sessions
// are `qsim-run --session --listen unix:` children the browser talks to
// through the server.
//
//===----------------------------------------------------------------------===//

#include "StudioImpl.h"

#include "qsim/Studio/Accounts.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <poll.h>
#include <sstream>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>

namespace qsim::studio {

namespace {

/// Reads newline-terminated lines from a pipe or socket.
class LineReader {
public:
  explicit LineReader(int fd) : fd(fd) {}
  /// False at end of input, on error, or past maxBytes.
  bool next(std::string &line, size_t maxBytes = 64u << 20) {
    for (;;) {
      size_t nl = buffer.find('\n');
      if (nl != std::string::npos) {
        line = buffer.substr(0, nl);
        buffer.erase(0, nl + 1);
        return true;
      }
      if (buffer.size() > maxBytes)
        return false;
      char chunk[65536];
      ssize_t n = read(fd, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return false;
      buffer.append(chunk, static_cast<size_t>(n));
    }
  }

private:
  int fd;
  std::string buffer;
};

bool writeAll(int fd, const std::string &text) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

const char *const kNoAnswer = "the session does not accept connections";

/// One request/reply on a session's Unix socket; on a failed connection the
/// error is kNoAnswer and nothing was sent.
bool socketRequest(const std::string &socketPath, const json &request,
                   double timeoutSeconds, json &reply, std::string &error) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, socketPath.c_str(), sizeof addr.sun_path - 1);
  if (fd < 0 ||
      connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0) {
    error = kNoAnswer;
    if (fd >= 0)
      close(fd);
    return false;
  }
  timeval tv{static_cast<time_t>(timeoutSeconds), 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string line;
  LineReader reader(fd);
  bool ok = writeAll(fd, request.dump() + "\n") && reader.next(line);
  close(fd);
  if (!ok) {
    error = "the session ended or did not answer in time";
    return false;
  }
  reply = json::parse(line, nullptr, false);
  if (reply.is_discarded()) {
    error = "the session sent a malformed reply";
    return false;
  }
  return true;
}

std::string optionalString(const json &body, const char *key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null())
    return "";
  if (!it->is_string())
    fail(400, std::string("'") + key + "' must be a string");
  return it->get<std::string>();
}

/// A workspace-relative path, checked (and its kind, when given); `key`
/// names it in errors.
std::string checkedPath(Workspace &ws, const std::string &rel, const char *key,
                        bool mustExist, const char *kind = nullptr) {
  if (rel.empty())
    fail(400, std::string("'") + key + "' is required");
  resolveOrFail(ws, rel, mustExist, key);
  if (kind && fileKind(rel) != kind)
    fail(400, std::string(key) + ": '" + rel + "' is not a " + kind + " file");
  return rel;
}

/// The same for the body's field `key`.
std::string workspacePath(Workspace &ws, const json &body, const char *key,
                          bool mustExist, const char *kind = nullptr) {
  return checkedPath(ws, optionalString(body, key), key, mustExist, kind);
}

constexpr size_t kMaxDetections = 200;

const std::vector<std::string> kModes = {"float", "hybrid", "int8", "fp16",
                                         "mixed"};
const std::vector<std::string> kPrecisions = {"fp32", "fp16", "int8"};

/// {"default":"int8","fp32":[0,15],"fp16":[3]} as --qsim-assign-precision's
/// options "fp32=0,15 fp16=3 default=int8"; only numbers and known names
/// reach the command line.
std::string precisionPlan(const json &plan) {
  if (!plan.is_object())
    fail(400, "'plan' must be an object such as {\"default\":\"int8\","
              "\"fp32\":[0,15]}");
  std::string out;
  for (const std::string &p : kPrecisions) {
    auto it = plan.find(p);
    if (it == plan.end() || it->empty())
      continue;
    if (!it->is_array())
      fail(400, "plan." + p + " must be a list of layer indices");
    std::string list;
    for (const json &layer : *it) {
      if (!layer.is_number_integer() || layer.get<int64_t>() < 0)
        fail(400, "plan." + p + " must be a list of layer indices");
      list += (list.empty() ? "" : ",") + std::to_string(layer.get<int64_t>());
    }
    out += p + "=" + list + " ";
  }
  std::string def = plan.value("default", "int8");
  if (std::find(kPrecisions.begin(), kPrecisions.end(), def) ==
      kPrecisions.end())
    fail(400, "plan.default must be fp32, fp16 or int8");
  return out + "default=" + def;
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

std::string fmt(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

} // namespace

//===----------------------------------------------------------------------===//
// Jobs
//===----------------------------------------------------------------------===//

/// The common end of a job: its exit, recorded and published.
static void finishJob(StudioServer::Impl &s, int64_t id, int64_t userId,
                      const ExitStatus &exit, const ProcessLimits &limits,
                      const json &result, std::string error) {
  {
    std::lock_guard<std::mutex> lock(s.liveMutex);
    s.runningJobs.erase(id);
  }
  std::string status = "done";
  if (exit.stoppedByUser) {
    status = "stopped";
    error = "stopped by the user";
  } else if (!exit.success() || !error.empty()) {
    status = "failed";
    std::string log = s.userVisibleLog(s.logFileOf(id), userId);
    if (!exit.success())
      error = "the process " + exit.describe(limits, log) +
              (error.empty() ? "" : ": " + error);
    if (!log.empty())
      error += "\n" + log.substr(log.size() > 1500 ? log.size() - 1500 : 0);
  }
  s.db->finishJob(id, status, result.is_null() ? "" : result.dump(), error);
  s.publishJob(id);
}

/// Spawns a job's child and records it running.
static ChildProcess spawnJob(StudioServer::Impl &s, int64_t id, int64_t userId,
                             ProcessSpec spec) {
  spec.logFile = s.logFileOf(id);
  spec.limits = s.config.jobLimits;
  spec.environment = s.childEnvironment();
  std::string error;
  auto child = s.processes.spawn(spec, error);
  if (!child) {
    s.db->finishJob(id, "failed", "", error);
    fail(500, "cannot start the job: " + error);
  }
  s.db->setJobRunning(id, child->pid);
  {
    std::lock_guard<std::mutex> lock(s.liveMutex);
    s.runningJobs[id] = {child->pid, userId};
  }
  s.publishJob(id);
  return *child;
}

json StudioServer::Impl::startImport(const Caller &c, const json &body) {
  Workspace ws = workspaceOf(c.userId);
  std::string cfg = workspacePath(ws, body, "cfg", true, "cfg");
  std::string weights = optionalString(body, "weights");
  if (!weights.empty())
    weights = workspacePath(ws, body, "weights", true, "weights");
  std::string output = optionalString(body, "output");
  if (output.empty())
    output = cfg.substr(0, cfg.size() - 4) + ".mlirbc";
  checkedPath(ws, output, "output", false, "model");
  requireChildSlot(c.userId);
  json args = {{"cfg", cfg}, {"weights", weights}, {"output", output}};
  int64_t id = db->createJob(c.userId, "import", args.dump());
  ProcessSpec spec;
  spec.argv = {config.qsimTranslate, "--import-darknet", cfg};
  if (weights.empty())
    spec.argv.insert(spec.argv.end(), {"--random-weights", "1"});
  else
    spec.argv.insert(spec.argv.end(), {"--weights", weights});
  spec.argv.insert(spec.argv.end(), {"-o", output});
  spec.workingDirectory = ws.directory();
  ChildProcess child = spawnJob(*this, id, c.userId, spec);
  int64_t user = c.userId;
  runDetached([this, id, user, child, args] {
    ExitStatus exit = processes.wait(child.pid);
    json result = nullptr;
    if (exit.success()) {
      db->recordModel(user, args["output"],
                      "import of " + args["cfg"].get<std::string>());
      result = {{"model", args["output"]}};
    }
    finishJob(*this, id, user, exit, config.jobLimits, result, "");
  });
  return {{"job", id}};
}

bool StudioServer::importModel(const std::string &user, const std::string &cfg,
                               const std::string &weights,
                               const std::string &output, std::string &error) {
  auto u = impl->db->findUser(user);
  if (!u) {
    error = "no user " + user;
    return false;
  }
  try {
    Caller c{u->id, u->name, "", ""};
    json started = impl->startImport(
        c, {{"cfg", cfg}, {"weights", weights}, {"output", output}});
    int64_t id = started["job"];
    for (;;) {
      auto job = impl->db->findJob(id);
      if (job && job->status != "running" && job->status != "queued") {
        error = job->error;
        return job->status == "done";
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  } catch (const ApiError &e) {
    error = e.message;
    return false;
  }
}

/// The arguments of a step session child (also used by inference).
static std::vector<std::string> sessionArgv(StudioServer::Impl &s,
                                            const std::string &root) {
  return {s.config.qsimRun,      "--session",
          "--session-root",      root,
          "--command-timeout",   fmt(s.config.commandTimeoutSeconds),
          "--max-model-mb",      fmt(std::min(1024.0, s.config.maxUploadMiB)),
          "--max-image-mpixels", fmt(s.config.maxImageMegapixels),
          "--threads",           std::to_string(s.config.childThreads)};
}

/// The `load` request of an inference or a step session from the body.
static json loadRequest(Workspace &ws, const json &body) {
  json load = {{"cmd", "load"},
               {"model", workspacePath(ws, body, "model", true, "model")}};
  if (!optionalString(body, "image").empty())
    load["image"] = workspacePath(ws, body, "image", true, "image");
  std::string mode = body.value("mode", "float");
  if (std::find(kModes.begin(), kModes.end(), mode) == kModes.end())
    fail(400, "'mode' must be float, hybrid, int8, fp16 or mixed");
  if (mode == "mixed")
    load["precision"] = precisionPlan(body.value("plan", json::object()));
  else if (mode != "float")
    load["mode"] = mode;
  if (!optionalString(body, "calib").empty()) {
    load["calib"] = workspacePath(ws, body, "calib", true);
    load["calib_images"] = boundedInt(body, "calib_images", 20, 1, 1000);
  }
  return load;
}

json StudioServer::Impl::startInference(const Caller &c, const json &body) {
  Workspace ws = workspaceOf(c.userId);
  json load = loadRequest(ws, body);
  if (!load.contains("image"))
    fail(400, "'image' is required");
  requireChildSlot(c.userId);
  json args = load;
  args.erase("cmd");
  args["mode"] = body.value("mode", "float");
  int64_t id = db->createJob(c.userId, "inference", args.dump());
  ProcessSpec spec;
  spec.argv = sessionArgv(*this, ws.directory());
  spec.workingDirectory = ws.directory();
  spec.pipeStdin = spec.pipeStdout = true;
  ChildProcess child = spawnJob(*this, id, c.userId, spec);
  int64_t user = c.userId;
  runDetached([this, id, user, child, load, args] {
    LineReader replies(child.stdoutFd);
    std::string error;
    auto ask = [&](const json &request, json &reply) {
      std::string line;
      if (!writeAll(child.stdinFd, request.dump() + "\n") ||
          !replies.next(line))
        return false; // the child ended: its exit says why
      reply = json::parse(line, nullptr, false);
      if (reply.is_discarded() || !reply.value("ok", false)) {
        error = reply.is_discarded() ? "malformed reply"
                                     : reply.value("error", "failed");
        return false;
      }
      return true;
    };
    json loaded, info, result = nullptr;
    if (ask(load, loaded) && ask({{"cmd", "info"}}, info)) {
      bool shadow = loaded.value("float_shadow", false);
      json layers = json::array(), last;
      double ms = 0;
      size_t total = info["layers"].size();
      bool ok = true;
      for (size_t i = 0; ok && i < total; ++i) {
        json cmp;
        ok = ask({{"cmd", "step"}}, last);
        if (!ok)
          break;
        const json &layer = info["layers"][i];
        json entry = {{"layer", i},
                      {"kind", layer["kind"]},
                      {"precision", layer["precision"]},
                      {"output", layer["output"]},
                      {"ms", last.value("ms", 0.0)}};
        ms += last.value("ms", 0.0);
        if (shadow) {
          ok = ask({{"cmd", "compare"}, {"layer", i}}, cmp);
          if (ok) {
            entry["sqnr_db"] = cmp["sqnr_db"];
            entry["cosine"] = cmp["cosine"];
          }
        }
        layers.push_back(entry);
        events.publish(user, "progress",
                       json{{"job", id},
                            {"done", i + 1},
                            {"total", total},
                            {"what", "layers"}}
                           .dump());
      }
      if (ok) {
        // The last step's reply has what the model detected. An untrained
        // model can report thousands of boxes: keep the best.
        json detections = last.value("detections", json::array());
        size_t count = detections.size();
        if (count > kMaxDetections) {
          std::sort(detections.begin(), detections.end(),
                    [](const json &a, const json &b) {
                      return a.value("prob", 0.0) > b.value("prob", 0.0);
                    });
          detections.erase(detections.begin() + kMaxDetections,
                           detections.end());
        }
        result = {{"model", args["model"]},
                  {"image", args["image"]},
                  {"mode", args["mode"]},
                  {"image_size", loaded["image"]},
                  {"float_shadow", shadow},
                  {"layers", layers},
                  {"detections", detections},
                  {"detection_count", count},
                  {"ms", ms}};
        if (last.contains("top"))
          result["top"] = last["top"];
      }
    }
    close(child.stdinFd);
    close(child.stdoutFd);
    ExitStatus exit = processes.wait(child.pid);
    if (!exit.success() || !error.empty())
      result = nullptr;
    finishJob(*this, id, user, exit, config.jobLimits, result, error);
  });
  return {{"job", id}};
}

json StudioServer::Impl::startQuantize(const Caller &c, const json &body) {
  Workspace ws = workspaceOf(c.userId);
  std::string model = workspacePath(ws, body, "model", true, "model");
  std::string calib = workspacePath(ws, body, "calib", true);
  std::string output = optionalString(body, "output");
  if (output.empty())
    output = model.substr(0, model.rfind('.')) + "-quantized.mlirbc";
  checkedPath(ws, output, "output", false, "model");
  std::string method = body.value("method", "minmax");
  if (method != "minmax" && method != "percentile" && method != "entropy" &&
      method != "mse" && method != "log2")
    fail(400, "'method' must be minmax, percentile, entropy, mse or log2");
  int images = boundedInt(body, "calib_images", 50, 1, 1000);
  std::string mode = body.value("mode", "int8"), plan;
  if (mode == "int8")
    plan = "default=int8";
  else if (mode == "hybrid")
    plan = "preset=hybrid";
  else if (mode == "fp16")
    plan = "preset=fp16";
  else if (mode == "mixed")
    plan = precisionPlan(body.value("plan", json::object()));
  else
    fail(400, "'mode' must be int8, hybrid, fp16 or mixed");
  requireChildSlot(c.userId);
  std::string report = output.substr(0, output.rfind('.')) + "-report.txt";
  json args = {{"model", model},         {"calib", calib},  {"output", output},
               {"method", method},       {"mode", mode},    {"plan", plan},
               {"calib_images", images}, {"report", report}};
  int64_t id = db->createJob(c.userId, "quantize", args.dump());
  ProcessSpec spec;
  spec.argv = {config.qsimOpt,
               model,
               "--qsim-fold-batchnorm",
               "--qsim-calibrate=images=" + calib + " max-images=" +
                   std::to_string(images) + " method=" + method +
                   " progress threads=" + std::to_string(config.childThreads),
               "--qsim-assign-precision=" + plan,
               "--qsim-quantize",
               "-o",
               output};
  spec.workingDirectory = ws.directory();
  spec.pipeStderr = true;
  ChildProcess child = spawnJob(*this, id, c.userId, spec);
  int64_t user = c.userId;
  std::string root = ws.directory();
  runDetached([this, id, user, child, args, root] {
    // Progress lines "calibrating: 3/50 (6%) ..." become events; everything
    // goes to the job's log.
    LineReader lines(child.stderrFd);
    std::ofstream log(logFileOf(id), std::ios::app);
    std::string line;
    while (lines.next(line, 1 << 20)) {
      log << line << "\n";
      log.flush();
      size_t colon = line.find(": "), slash = line.find('/');
      if (colon != std::string::npos && slash != std::string::npos &&
          slash > colon) {
        long done = std::strtol(line.c_str() + colon + 2, nullptr, 10);
        long total = std::strtol(line.c_str() + slash + 1, nullptr, 10);
        if (total > 0)
          events.publish(user, "progress",
                         json{{"job", id},
                              {"done", done},
                              {"total", total},
                              {"what", line.substr(0, colon)}}
                             .dump());
      }
    }
    close(child.stderrFd);
    ExitStatus exit = processes.wait(child.pid);
    json result = nullptr;
    std::string error;
    if (exit.success()) {
      // The per-layer report of the quantized model, next to it.
      ProcessSpec reportSpec;
      std::string reportPath = root + "/" + args["report"].get<std::string>();
      std::string tmp = reportPath + ".tmp";
      reportSpec.argv = {config.qsimOpt, args["output"].get<std::string>(),
                         "--qsim-print-stats", "-o", "/dev/null"};
      reportSpec.workingDirectory = root;
      reportSpec.limits = config.jobLimits;
      reportSpec.logFile = tmp;
      unlink(tmp.c_str());
      auto rc = processes.spawn(reportSpec, error);
      if (rc && processes.wait(rc->pid).success() &&
          rename(tmp.c_str(), reportPath.c_str()) == 0) {
        db->recordModel(user, args["output"],
                        "quantized from " + args["model"].get<std::string>());
        result = {{"model", args["output"]}, {"report", args["report"]}};
      } else {
        unlink(tmp.c_str());
        error = "the report could not be written";
      }
    }
    finishJob(*this, id, user, exit, config.jobLimits, result, error);
  });
  return {{"job", id}};
}

json StudioServer::Impl::controlJob(const Caller &c, int64_t jobId,
                                    const std::string &action) {
  JobRecord job = ownJob(c, jobId);
  if (job.kind == "session")
    fail(400, "a step session is controlled through /api/sessions");
  pid_t pid;
  {
    std::lock_guard<std::mutex> lock(liveMutex);
    auto it = runningJobs.find(jobId);
    if (it == runningJobs.end())
      fail(409, "job " + std::to_string(jobId) + " is not running (" +
                    job.status + ")");
    pid = it->second.pid;
  }
  if (action == "stop")
    processes.stop(pid);
  else if (action == "pause")
    processes.pause(pid);
  else
    processes.resume(pid);
  events.publish(
      c.userId, "job",
      json{{"id", jobId}, {"status", job.status}, {"action", action}}.dump());
  return {{"job", jobId}, {"action", action}};
}

json StudioServer::Impl::modelGraph(const Caller &c, const std::string &rel) {
  Workspace ws = workspaceOf(c.userId);
  std::string model = checkedPath(ws, rel, "path", true, "model");
  std::string tmp = logDir + "/graph-" + newToken() + ".json";
  ProcessSpec spec;
  spec.argv = {config.qsimTranslate, "--export-json", model, "-o", tmp};
  spec.workingDirectory = ws.directory();
  spec.limits = config.jobLimits;
  std::string logFile = tmp + ".log";
  spec.logFile = logFile;
  std::string error;
  auto child = processes.spawn(spec, error);
  if (!child)
    fail(500, error);
  ExitStatus exit = processes.wait(child->pid);
  std::ifstream in(tmp);
  json graph = exit.success() ? json::parse(in, nullptr, false) : json();
  std::string log = userVisibleLog(logFile, c.userId);
  unlink(tmp.c_str());
  unlink(logFile.c_str());
  if (!exit.success() || graph.is_discarded())
    fail(422, rel + ": the model cannot be read: " +
                  exit.describe(spec.limits, log) + "\n" + log);
  for (json &layer : graph["layers"])
    if (layer.contains("location"))
      layer["location"].erase("file"); // a server path
  return graph;
}

//===----------------------------------------------------------------------===//
// Step sessions
//===----------------------------------------------------------------------===//

json StudioServer::Impl::startSession(const Caller &c, const json &body) {
  Workspace ws = workspaceOf(c.userId);
  json load = loadRequest(ws, body);
  requireChildSlot(c.userId);
  json args = load;
  args.erase("cmd");
  args["mode"] = body.value("mode", "float");
  int64_t id = db->createJob(c.userId, "session", args.dump());
  auto session = std::make_shared<LiveSession>();
  session->id = id;
  session->userId = c.userId;
  session->socketPath = runDir + "/" + std::to_string(id) + ".sock";
  session->loaded = args;
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
    db->finishJob(id, "failed", "", error);
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
  int64_t user = c.userId;
  ProcessLimits limits = config.sessionLimits;
  // The session's end (asked for, crashed, over a limit) is recorded here.
  runDetached([this, session, user, limits] {
    ExitStatus exit = processes.wait(session->pid);
    session->ended = true;
    unlink(session->socketPath.c_str());
    std::string log = userVisibleLog(logFileOf(session->id), user);
    std::string why = exit.describe(limits, log);
    bool asked = exit.stoppedByUser;
    db->finishJob(session->id, asked ? "done" : "failed", "",
                  asked ? "" : "the session process " + why);
    events.publish(user, "session",
                   json{{"session", session->id},
                        {"ended", true},
                        {"reason", asked ? "ended" : why}}
                       .dump());
    publishJob(session->id);
  });
  // Ready when its socket accepts a connection: retry only while connecting
  // fails (nothing was sent), until it answers, dies or 30 s pass.
  json reply;
  bool answered = false;
  for (int i = 0; i < 1200 && !session->ended; ++i) {
    answered = socketRequest(session->socketPath, load,
                             config.commandTimeoutSeconds + 30, reply, error);
    if (answered || error != kNoAnswer)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  if (!answered) {
    processes.stop(session->pid, 0.2);
    // The thread above records the end; wait for it to say why.
    for (int i = 0; i < 500 && !session->ended; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    auto job = db->findJob(id);
    fail(502, "the session could not start: " +
                  (job && !job->error.empty() ? job->error : error));
  }
  if (!reply.value("ok", false)) {
    endSession(c, id);
    fail(422, reply.value("error", "the model could not be loaded"));
  }
  events.publish(
      user, "session",
      json{{"session", id}, {"cmd", "load"}, {"position", 0}}.dump());
  return {{"session", id}, {"load", reply}};
}

json StudioServer::Impl::sessionCommand(const Caller &c, int64_t id,
                                        json request) {
  std::shared_ptr<LiveSession> session;
  {
    std::lock_guard<std::mutex> lock(liveMutex);
    auto it = sessions.find(id);
    if (it != sessions.end() && it->second->userId == c.userId)
      session = it->second;
  }
  if (!session)
    fail(404, "no such session");
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
    request["file"] = rel;
  }
  json reply;
  std::string error;
  if (!socketRequest(session->socketPath, request,
                     config.commandTimeoutSeconds + 30, reply, error)) {
    for (int i = 0; i < 40 && !session->ended; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    auto job = db->findJob(id);
    fail(session->ended ? 410 : 502,
         session->ended ? "the session has ended: " + (job ? job->error : "")
                        : error);
  }
  json event = {{"session", id}, {"cmd", cmd}};
  if (reply.contains("position"))
    event["position"] = reply["position"];
  if (reply.contains("reason"))
    event["reason"] = reply["reason"];
  events.publish(c.userId, "session", event.dump());
  return reply;
}

json StudioServer::Impl::endSession(const Caller &c, int64_t id) {
  std::shared_ptr<LiveSession> session;
  {
    std::lock_guard<std::mutex> lock(liveMutex);
    auto it = sessions.find(id);
    if (it != sessions.end() && it->second->userId == c.userId)
      session = it->second;
    if (session)
      sessions.erase(it);
  }
  if (!session)
    fail(404, "no such session");
  // Nothing of a session is lost by ending it at once: saving is explicit.
  processes.stop(session->pid, 0.2);
  for (int i = 0; i < 200 && !session->ended; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  return {{"session", id}, {"ended", true}};
}

json StudioServer::Impl::listSessions(const Caller &c) {
  json list = json::array();
  std::lock_guard<std::mutex> lock(liveMutex);
  for (auto &[id, s] : sessions)
    if (s->userId == c.userId && !s->ended)
      list.push_back({{"session", id}, {"args", s->loaded}});
  return {{"sessions", list}};
}

void StudioServer::Impl::stopAllChildren() {
  std::vector<pid_t> pids;
  {
    std::lock_guard<std::mutex> lock(liveMutex);
    for (auto &[id, s] : sessions)
      pids.push_back(s->pid);
    for (auto &[id, job] : runningJobs)
      pids.push_back(job.pid);
  }
  for (pid_t pid : pids)
    processes.stop(pid);
}

} // namespace qsim::studio
