//===- ModelRoutes.cpp - /api/models: layer graph and import --------------===//
//
// The graph is read by a `qsim-translate --export-json` child, which takes
// one of the user's child slots like any job; the request waits for its exit
// without holding a worker.
//
//===----------------------------------------------------------------------===//

#include "Api.h"

#include "qsim/Studio/Accounts.h"

#include <fstream>
#include <unistd.h>

namespace qsim::studio {

namespace {

void modelGraph(StudioServer::Impl &s, Call &call,
                StudioServer::Impl::Done done) {
  const Caller &c = call.caller;
  Workspace ws = s.workspaceOf(c.userId);
  std::string rel = call.param("path");
  std::string model = checkedPath(ws, rel, "path", true, "model");
  ChildSlot slot = s.slots.acquire(c.userId);
  std::string tmp = s.logDir + "/graph-" + newToken() + ".json";
  ProcessSpec spec;
  spec.argv = {s.config.qsimTranslate, "--export-json", model, "-o", tmp};
  spec.workingDirectory = ws.directory();
  spec.limits = s.config.jobLimits;
  spec.logFile = tmp + ".log";
  spec.environment = s.childEnvironment();
  std::string error;
  auto child = s.processes.spawn(spec, error);
  if (!child)
    fail(500, error);
  int64_t user = c.userId;
  StudioServer::Impl *state = &s;
  ProcessLimits limits = spec.limits;
  s.processes.whenEnded(child->pid, [=](const ExitStatus &exit) {
    state->http->runOnWorker([=] {
      std::ifstream in(tmp);
      json graph = exit.success() ? json::parse(in, nullptr, false) : json();
      std::string log = state->userVisibleLog(tmp + ".log", user);
      unlink(tmp.c_str());
      unlink((tmp + ".log").c_str());
      (void)slot; // held until here
      if (!exit.success() || graph.is_discarded())
        return done(
            422, json{{"error", rel + ": the model cannot be read: " +
                                    exit.describe(limits, log) + "\n" + log}});
      for (json &layer : graph["layers"])
        if (layer.contains("location"))
          layer["location"].erase("file"); // a server path
      done(200, graph);
    });
  });
}

} // namespace

void addModelRoutes(StudioServer::Impl &s) {
  asyncRoute(s, "GET", "/api/models/graph", Access::Read,
             [&s](Call &call, StudioServer::Impl::Done done) {
               modelGraph(s, call, std::move(done));
             });
  jsonRoute(s, "POST", "/api/models/import", Access::Write, [&s](Call &call) {
    call.status = 202;
    return s.startImport(call.caller, call.body());
  });
}

} // namespace qsim::studio
