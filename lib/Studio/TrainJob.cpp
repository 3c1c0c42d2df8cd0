//===- TrainJob.cpp - qsim-train: fine-tune a student from a teacher ------===//
//
// `qsim-train student --teacher T --images DIR --steps N --batch B
// --progress-json` writes the model under a hidden name (PartialOutput) and
// one JSON line per step on stdout; those become progress events (step,
// loss, learning rate, ETA; at most a few per second) and a line of the
// job's log, and the loss curve is stored with the job's result.
//
// Stop: qsim-train ends the step it is in on SIGTERM and writes the weights
// trained so far, a clean model (a step boundary, `qsim.training` says
// which); that model is kept and listed (the job "stopped", with its
// result). A step that does not end within the stop's grace time is killed
// and nothing is kept, as for a failure.
//
// With --executor slurm, the same child runs as a Slurm batch job
// (SlurmExecutor.h): its supervisor forwards the job's output to stdout,
// where the progress lines come as locally, with the supervisor's state
// lines and the child's stderr among them (both logged), and a stop reaches
// qsim-train on its node as the same SIGTERM.
//
//===----------------------------------------------------------------------===//

#include "Jobs.h"

#include <chrono>
#include <cmath>
#include <dirent.h>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

namespace qsim::studio {

namespace {

/// Points of the loss curve kept with a job's result.
constexpr size_t kMaxCurvePoints = 1000;
/// Progress events at most this often (a step of a small model takes
/// milliseconds; the browser needs a few updates a second).
constexpr double kEventSeconds = 0.25;

/// What the child reported while it trained.
struct TrainFollow {
  std::vector<std::pair<int64_t, double>> losses; // (step, loss)
  int64_t steps = 0;
  double lastLr = 0;
  double seconds = 0; // of the steps, as the child timed them
};

/// The request's learning rate: absent (the cfg's [net] learning_rate) or
/// a number in (0, 10].
std::string learningRate(const json &body) {
  auto it = body.find("lr");
  if (it == body.end() || it->is_null())
    return "";
  if (!it->is_number() || !(it->get<double>() > 0) || it->get<double>() > 10)
    fail(400, "'lr' must be a number above 0 and at most 10");
  std::ostringstream os;
  os.precision(9);
  os << it->get<double>();
  return os.str();
}

/// 400 unless `rel` is a folder of the workspace with at least one image.
void checkImageFolder(Workspace &ws, const std::string &rel) {
  std::string absolute = resolveOrFail(ws, rel, true, "images");
  struct stat st;
  if (stat(absolute.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    fail(400, "images: '" + rel + "' is not a folder");
  DIR *dir = opendir(absolute.c_str());
  bool found = false;
  while (dir && !found)
    if (struct dirent *e = readdir(dir))
      found = e->d_name[0] != '.' && fileKind(e->d_name) == "image";
    else
      break;
  if (dir)
    closedir(dir);
  if (!found)
    fail(400, "images: '" + rel + "' holds no image");
}

/// "12 s", "3 min 4 s".
std::string shortDuration(double seconds) {
  long s = std::lround(seconds);
  return s < 60
             ? std::to_string(s) + " s"
             : std::to_string(s / 60) + " min " + std::to_string(s % 60) + " s";
}

/// Follows the child's stdout: progress events, the log, the loss curve.
void followTraining(StudioServer::Impl &s, int64_t id, int64_t user, int fd,
                    TrainFollow &follow) {
  std::ofstream log(s.logFileOf(id), std::ios::app);
  LineReader lines(fd);
  std::string line;
  using Clock = std::chrono::steady_clock;
  Clock::time_point start = Clock::now(), lastEvent;
  while (lines.next(line, 1 << 20)) {
    if (slurmJobStateLine(s, id, line)) {
      // The ETA counts from the start of the run, not of the queue.
      if (slurmStateOfLine(line) == std::optional<std::string>("RUNNING"))
        start = Clock::now();
      log << line << "\n";
      log.flush();
      continue;
    }
    json p = json::parse(line, nullptr, false);
    if (p.is_discarded() || !p.is_object() || !p.contains("step")) {
      log << line << "\n"; // the summary qsim-train prints at the end
      log.flush();
      continue;
    }
    int64_t step = p.value("step", int64_t(0));
    follow.steps = p.value("steps", int64_t(0));
    double loss = p["loss"].is_number() ? p["loss"].get<double>() : NAN;
    follow.lastLr = p["lr"].is_number() ? p["lr"].get<double>() : 0;
    follow.seconds += p["seconds"].is_number() ? p["seconds"].get<double>() : 0;
    follow.losses.emplace_back(step, loss);
    double elapsed =
        std::chrono::duration<double>(Clock::now() - start).count();
    double eta = step > 0 ? elapsed / step * (follow.steps - step) : 0;
    log << "step " << step << "/" << follow.steps << ": loss " << loss
        << ", lr " << follow.lastLr << ", ETA " << shortDuration(eta) << "\n";
    log.flush();
    Clock::time_point now = Clock::now();
    if (step != 1 && step != follow.steps &&
        std::chrono::duration<double>(now - lastEvent).count() < kEventSeconds)
      continue;
    lastEvent = now;
    s.events.publish(user, "progress",
                     json{{"job", id},
                          {"what", "training"},
                          {"done", step},
                          {"total", follow.steps},
                          {"loss", std::isfinite(loss) ? json(loss) : json()},
                          {"lr", follow.lastLr},
                          {"eta_seconds", eta}}
                         .dump());
  }
  close(fd);
}

/// The job's result: the model and the loss curve (thinned to at most
/// kMaxCurvePoints, the last step always kept).
json trainResult(const json &args, const TrainFollow &follow, bool stopped) {
  json curve = json::array();
  size_t n = follow.losses.size();
  // Past kMaxCurvePoints: every stride-th step and the last one, at most
  // kMaxCurvePoints in all.
  size_t stride = n <= kMaxCurvePoints
                      ? 1
                      : (n + kMaxCurvePoints - 2) / (kMaxCurvePoints - 1);
  for (size_t i = 0; i < n; ++i)
    if (i % std::max<size_t>(stride, 1) == 0 || i + 1 == n) {
      double loss = follow.losses[i].second;
      curve.push_back(json::array(
          {follow.losses[i].first, std::isfinite(loss) ? json(loss) : json()}));
    }
  auto loss = [](double v) { return std::isfinite(v) ? json(v) : json(); };
  return {{"model", args["output"]},
          {"steps_done", n ? follow.losses.back().first : 0},
          {"steps", args["steps"]},
          {"stopped", stopped},
          {"loss_first", n ? loss(follow.losses.front().second) : json()},
          {"loss_last", n ? loss(follow.losses.back().second) : json()},
          {"seconds", follow.seconds},
          {"curve", curve}};
}

/// The checked arguments of a request, as stored with the job.
json trainArgs(Workspace &ws, const json &body) {
  std::string student = workspacePath(ws, body, "student", true, "model");
  std::string teacher = workspacePath(ws, body, "teacher", true, "model");
  std::string images = optionalString(body, "images");
  if (images.empty())
    fail(400, "'images' is required");
  checkImageFolder(ws, images);
  int steps = boundedInt(body, "steps", 100, 1, 1000000);
  int batch = boundedInt(body, "batch", 8, 1, 256);
  std::string lr = learningRate(body);
  std::string output = optionalString(body, "output");
  if (output.empty())
    output = student.substr(0, student.rfind('.')) + "-trained.mlirbc";
  checkedPath(ws, output, "output", false, "model");
  if (output == student || output == teacher)
    fail(400, "output: '" + output +
                  "' would overwrite the student or the "
                  "teacher");
  return {{"student", student}, {"teacher", teacher}, {"images", images},
          {"steps", steps},     {"batch", batch},     {"lr", lr},
          {"output", output}};
}

} // namespace

json StudioServer::Impl::startTrain(const Caller &c, const json &body) {
  if (config.qsimTrain.empty() || access(config.qsimTrain.c_str(), X_OK) != 0)
    fail(501, "this studio has no qsim-train (qsim was built without "
              "libtorch: QSIM_ENABLE_TRAIN)");
  Workspace ws = workspaceOf(c.userId);
  json args = trainArgs(ws, body);
  requireQuota(c.userId);
  ChildSlot slot = slots.acquire(c.userId);
  int64_t id = db->createJob(c.userId, "train", args.dump());
  std::string output = args["output"];
  PartialOutput out(ws.directory(), output);
  std::string error;
  ws.makeParents(ws.directory() + "/" + output, error);
  ProcessSpec spec;
  spec.argv = {config.qsimTrain,  args["student"],
               "--teacher",       args["teacher"],
               "--images",        args["images"],
               "--steps",         std::to_string(args["steps"].get<int>()),
               "--batch",         std::to_string(args["batch"].get<int>()),
               "--threads",       std::to_string(config.childThreads),
               "--progress-json", "-o",
               out.partial()};
  if (!args["lr"].get<std::string>().empty())
    spec.argv.insert(spec.argv.end() - 2,
                     {"--lr", args["lr"].get<std::string>()});
  spec.workingDirectory = ws.directory();
  spec.pipeStdout = true;
  ChildProcess child = spawnJob(*this, id, c.userId, spec);
  int64_t user = c.userId;
  runDetached([this, id, user, child, args, out, slot] {
    TrainFollow follow;
    followTraining(*this, id, user, child.stdoutFd, follow);
    ExitStatus exit = processes.wait(child.pid);
    // A stop the child honoured (it exited 0 after a whole step) leaves a
    // clean model of the steps trained so far.
    bool clean = exit.exited && exit.code == 0 && !exit.stoppedByServer;
    json result = nullptr;
    std::string error;
    if (clean && !follow.losses.empty() && !out.commit())
      error = "the trained model could not be put in place";
    else if (clean && !follow.losses.empty()) {
      result = trainResult(args, follow, exit.stoppedByUser);
      std::string what = "trained from " + args["student"].get<std::string>() +
                         " (teacher " + args["teacher"].get<std::string>() +
                         ", " + std::to_string(follow.losses.back().first) +
                         " of " + std::to_string(follow.steps) + " steps)";
      db->recordModel(user, args["output"], what);
    } else {
      out.discard();
      if (clean && follow.losses.empty() && !exit.stoppedByUser)
        error = "qsim-train reported no step";
    }
    finishJob(*this, id, user, exit, config.jobLimits, result, error);
  });
  return {{"job", id}};
}

} // namespace qsim::studio
