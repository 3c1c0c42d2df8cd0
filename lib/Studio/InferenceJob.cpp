//===- InferenceJob.cpp - a model run on an image, layer by layer ---------===//
//
// The job drives a `qsim-run --session` child over stdin/stdout: load, then
// one step per layer (a progress event each) and, when the model runs
// against its float twin, the layer's SQNR. The result (per-layer
// precision, time and SQNR, the detections) is stored with the job.
//
//===----------------------------------------------------------------------===//

#include "Jobs.h"

#include <algorithm>
#include <sstream>
#include <unistd.h>

namespace qsim::studio {

namespace {

constexpr size_t kMaxDetections = 200;

std::string fmt(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

/// One request/reply exchange with the child; a refusal's message is kept.
struct SessionPipe {
  ChildProcess child;
  LineReader replies;
  std::string error;
  explicit SessionPipe(const ChildProcess &child)
      : child(child), replies(child.stdoutFd) {}
  bool ask(const json &request, json &reply) {
    std::string line;
    if (!writeAll(child.stdinFd, request.dump() + "\n") || !replies.next(line))
      return false; // the child ended: its exit says why
    reply = json::parse(line, nullptr, false);
    if (reply.is_discarded() || !reply.value("ok", false)) {
      error = reply.is_discarded() ? "malformed reply"
                                   : reply.value("error", "failed");
      return false;
    }
    return true;
  }
};

/// The best detections of the last step (an untrained model can report
/// thousands of boxes).
json bestDetections(json detections) {
  if (detections.size() > kMaxDetections) {
    std::sort(detections.begin(), detections.end(),
              [](const json &a, const json &b) {
                return a.value("prob", 0.0) > b.value("prob", 0.0);
              });
    detections.erase(detections.begin() + kMaxDetections, detections.end());
  }
  return detections;
}

/// Steps through every layer; the result, or null when the child failed.
json runLayers(StudioServer::Impl &s, int64_t id, int64_t user,
               SessionPipe &pipe, const json &load, const json &args) {
  json loaded, info;
  if (!pipe.ask(load, loaded) || !pipe.ask({{"cmd", "info"}}, info))
    return nullptr;
  bool shadow = loaded.value("float_shadow", false);
  json layers = json::array(), last;
  double ms = 0;
  size_t total = info["layers"].size();
  for (size_t i = 0; i < total; ++i) {
    if (!pipe.ask({{"cmd", "step"}}, last))
      return nullptr;
    const json &layer = info["layers"][i];
    json entry = {{"layer", i},
                  {"kind", layer["kind"]},
                  {"precision", layer["precision"]},
                  {"output", layer["output"]},
                  {"macs", layer.value("macs", json(nullptr))},
                  {"ms", last.value("ms", 0.0)}};
    ms += last.value("ms", 0.0);
    json cmp;
    if (shadow) {
      if (!pipe.ask({{"cmd", "compare"}, {"layer", i}}, cmp))
        return nullptr;
      entry["sqnr_db"] = cmp["sqnr_db"];
      entry["cosine"] = cmp["cosine"];
    }
    layers.push_back(entry);
    s.events.publish(
        user, "progress",
        json{{"job", id}, {"done", i + 1}, {"total", total}, {"what", "layers"}}
            .dump());
  }
  json detections = last.value("detections", json::array());
  json result = {{"model", args["model"]},
                 {"image", args["image"]},
                 {"mode", args["mode"]},
                 {"image_size", loaded["image"]},
                 {"float_shadow", shadow},
                 {"layers", layers},
                 {"detections", bestDetections(detections)},
                 {"detection_count", detections.size()},
                 {"ms", ms}};
  if (last.contains("top"))
    result["top"] = last["top"];
  return result;
}

} // namespace

std::vector<std::string> sessionArgv(StudioServer::Impl &s,
                                     const std::string &root) {
  return {s.config.qsimRun,      "--session",
          "--session-root",      root,
          "--command-timeout",   fmt(s.config.commandTimeoutSeconds),
          "--max-model-mb",      fmt(std::min(1024.0, s.config.maxUploadMiB)),
          "--max-image-mpixels", fmt(s.config.maxImageMegapixels),
          "--threads",           std::to_string(s.config.childThreads)};
}

json loadRequest(StudioServer::Impl &s, Workspace &ws, const json &body) {
  static const char *const modes[] = {"float", "hybrid", "int8", "fp16",
                                      "mixed"};
  json load = {{"cmd", "load"},
               {"model", workspacePath(ws, body, "model", true, "model")}};
  if (!optionalString(body, "image").empty()) {
    std::string image = workspacePath(ws, body, "image", true, "image");
    s.checkImageSize(ws.directory() + "/" + image, image);
    load["image"] = image;
  }
  std::string mode = body.value("mode", "float");
  if (std::find(std::begin(modes), std::end(modes), mode) == std::end(modes))
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
  json load = loadRequest(*this, ws, body);
  if (!load.contains("image"))
    fail(400, "'image' is required");
  ChildSlot slot = slots.acquire(c.userId);
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
  runDetached([this, id, user, child, load, args, slot] {
    SessionPipe pipe(child);
    json result = runLayers(*this, id, user, pipe, load, args);
    close(child.stdinFd);
    close(child.stdoutFd);
    ExitStatus exit = processes.wait(child.pid);
    if (!exit.success() || !pipe.error.empty())
      result = nullptr;
    finishJob(*this, id, user, exit, config.jobLimits, result, pipe.error);
  });
  return {{"job", id}};
}

} // namespace qsim::studio
