//===- ImportJob.cpp - a Darknet model imported by qsim-translate ---------===//

#include "Jobs.h"

#include <thread>

namespace qsim::studio {

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
  requireQuota(c.userId);
  ChildSlot slot = slots.acquire(c.userId);
  json args = {{"cfg", cfg}, {"weights", weights}, {"output", output}};
  int64_t id = db->createJob(c.userId, "import", args.dump());
  PartialOutput out(ws.directory(), output);
  std::string error;
  ws.makeParents(ws.directory() + "/" + output, error);
  ProcessSpec spec;
  spec.argv = {config.qsimTranslate, "--import-darknet", cfg};
  if (weights.empty())
    spec.argv.insert(spec.argv.end(), {"--random-weights", "1"});
  else
    spec.argv.insert(spec.argv.end(), {"--weights", weights});
  spec.argv.insert(spec.argv.end(), {"-o", out.partial()});
  spec.workingDirectory = ws.directory();
  ChildProcess child = spawnJob(*this, id, c.userId, spec);
  int64_t user = c.userId;
  runDetached([this, id, user, child, args, out, slot] {
    ExitStatus exit = processes.wait(child.pid);
    json result = nullptr;
    std::string error;
    if (exit.success() && out.commit()) {
      db->recordModel(user, args["output"],
                      "import of " + args["cfg"].get<std::string>());
      result = {{"model", args["output"]}};
    } else {
      out.discard();
      if (exit.success())
        error = "the model could not be stored";
    }
    finishJob(*this, id, user, exit, config.jobLimits, result, error);
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

} // namespace qsim::studio
