//===- Engine.cpp - the step and cross inference session -----------------===//
//
// Requests in, replies out: the dispatch to the command handlers (grouped
// by concern, see EngineState.h), errors as replies, the control commands.
//
//===----------------------------------------------------------------------===//

#include "EngineState.h"

using namespace qsim;
using namespace qsim::session;
using namespace qsim::session::handlers;

Engine::Engine(const Options &o) : s(std::make_unique<State>(o)) {}
Engine::~Engine() = default;
const Engine::Options &Engine::options() const { return s->opts; }

bool Engine::isControlCommand(const std::string &cmd) {
  return cmd == "status" || cmd == "pause" || cmd == "resume" || cmd == "stop";
}

bool Engine::isLongCommand(const std::string &cmd) {
  return cmd == "load" || cmd == "continue" || cmd == "run-to" ||
         cmd == "step" || cmd == "rerun" || cmd == "set-precision" ||
         cmd == "compare" || cmd == "cross";
}

json Engine::handleControl(const json &req, SessionControl &control) {
  std::string cmd = req.value("cmd", "");
  if (cmd == "pause")
    control.pause();
  else if (cmd == "resume")
    control.resume();
  else if (cmd == "stop")
    control.stop();
  json r = {{"ok", true}, {"status", control.status()}};
  return r;
}

std::string Engine::handleLine(const std::string &line,
                               SessionControl &control) {
  json req;
  try {
    req = json::parse(line);
  } catch (const json::exception &e) {
    return json({{"ok", false},
                 {"error", std::string("malformed JSON: ") + e.what()}})
        .dump();
  }
  if (isControlCommand(req.is_object() ? req.value("cmd", "") : "")) {
    json r = handleControl(req, control);
    if (req.contains("id"))
      r["id"] = req["id"];
    return r.dump();
  }
  return handle(req, control).dump();
}

json Engine::handle(const json &req, SessionControl &control) {
  json reply;
  std::string cmd;
  try {
    if (!req.is_object())
      reject("a request is a JSON object with a \"cmd\"");
    if (!req.contains("cmd") || !req["cmd"].is_string())
      reject("the request has no \"cmd\" string");
    cmd = req["cmd"].get<std::string>();
    if (isControlCommand(cmd))
      return handleControl(req, control);
    static const std::map<std::string, Handler> handlers = {
        {"load", cmdLoad},           {"info", cmdInfo},
        {"break", cmdBreak},         {"step", cmdStep},
        {"continue", cmdContinue},   {"run-to", cmdRunTo},
        {"restart", cmdRestart},     {"stats", cmdStats},
        {"compare", cmdCompare},     {"dump", cmdDump},
        {"histogram", cmdHistogram}, {"set-weights", cmdSetWeights},
        {"rerun", cmdRerun},         {"save", cmdSave},
        {"cross", cmdCross},         {"set-precision", cmdSetPrecision},
    };
    auto it = handlers.find(cmd);
    if (it == handlers.end())
      reject("unknown command '" + cmd +
             "' (load, info, break, step, continue, run-to, restart, stats, "
             "compare, dump, histogram, set-weights, rerun, save, cross, "
             "set-precision, status, pause, resume, stop)");
    control.begin(cmd, s->opts.limits.commandSeconds);
    try {
      reply = it->second(*s, req, control);
    } catch (...) {
      control.end();
      throw;
    }
    control.end();
    reply["ok"] = true;
  } catch (const RequestError &e) {
    s->diagnostics->take();
    reply = {{"ok", false}, {"error", e.message}};
  } catch (const std::exception &e) {
    s->diagnostics->take();
    reply = {{"ok", false},
             {"error", std::string("internal error: ") + e.what()}};
  }
  if (!cmd.empty())
    reply["cmd"] = cmd;
  if (req.is_object() && req.contains("id"))
    reply["id"] = req["id"];
  return reply;
}
