//===- qsim-studio.cpp - the multi-user web studio ------------------------===//
//
// Serves the browser UI and its JSON API (lib/Studio) on loopback by
// default. `--demo` creates the demo account with a real model imported
// (from $QSIM_MODELS_DIR) and sample images (from $QSIM_DATA_DIR), or a
// generated model and images when those are absent. docs/studio.md.
//
//===----------------------------------------------------------------------===//

#include "qsim/Studio/StudioServer.h"

#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <dirent.h>
#include <fstream>
#include <pthread.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

using namespace qsim::studio;

static std::string executableDirectory() {
  char buffer[4096];
  ssize_t n = readlink("/proc/self/exe", buffer, sizeof buffer - 1);
  if (n <= 0)
    return ".";
  std::string path(buffer, static_cast<size_t>(n));
  return path.substr(0, path.rfind('/'));
}

static bool isFile(const std::string &p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

static std::vector<std::string> imagesIn(const std::string &dir, size_t max) {
  std::vector<std::string> names;
  if (DIR *d = opendir(dir.c_str())) {
    while (struct dirent *e = readdir(d)) {
      std::string n = e->d_name;
      if (n.size() > 4 && (n.substr(n.size() - 4) == ".jpg" ||
                           n.substr(n.size() - 4) == ".png"))
        names.push_back(n);
    }
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  if (names.size() > max)
    names.resize(max);
  return names;
}

/// A smooth synthetic picture (binary PPM) for the model-less demo.
static bool writeSyntheticImage(const std::string &path, int w, int h,
                                int seed) {
  std::ofstream out(path, std::ios::binary);
  out << "P6\n" << w << " " << h << "\n255\n";
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      unsigned char px[3] = {
          static_cast<unsigned char>((x * 255 / w + seed * 37) & 255),
          static_cast<unsigned char>((y * 255 / h + seed * 11) & 255),
          static_cast<unsigned char>(((x + y) * 128 / (w + h) + seed * 53) &
                                     255)};
      out.write(reinterpret_cast<char *>(px), 3);
    }
  return static_cast<bool>(out);
}

/// The demo account: a model and images in its workspace (once).
static bool prepareDemo(StudioServer &server, const std::string &user,
                        const std::string &password, const std::string &tmp) {
  std::string error;
  if (!server.ensureUser(user, password, error)) {
    fprintf(stderr, "qsim-studio: demo account: %s\n", error.c_str());
    return false;
  }
  const char *modelsEnv = getenv("QSIM_MODELS_DIR");
  const char *dataEnv = getenv("QSIM_DATA_DIR");
  std::string models = modelsEnv ? modelsEnv : "../shared/models";
  std::string data = dataEnv ? dataEnv : "../shared/data";
  std::string name = "yolov3-tiny-aix2022";
  std::string cfg = models + "/darknet/" + name + ".cfg";
  std::string weights = models + "/weights/" + name + ".weights";
  bool real = isFile(cfg) && isFile(weights);
  bool ok = true;
  auto add = [&](const std::string &src, const std::string &rel) {
    if (!server.addFile(user, src, rel, error)) {
      fprintf(stderr, "qsim-studio: demo: %s: %s\n", rel.c_str(),
              error.c_str());
      ok = false;
    }
  };
  if (real) {
    fprintf(stderr, "qsim-studio: demo model: %s with its trained weights\n",
            cfg.c_str());
    add(cfg, "models/" + name + ".cfg");
    add(weights, "models/" + name + ".weights");
  } else {
    name = "synthetic-yolov3-tiny";
    cfg = std::string(QSIM_SOURCE_DIR) + "/examples/models/" + name + ".cfg";
    fprintf(stderr,
            "qsim-studio: no real model in %s (set QSIM_MODELS_DIR): the demo "
            "uses %s with synthetic weights\n",
            models.c_str(), cfg.c_str());
    add(cfg, "models/" + name + ".cfg");
  }
  if (!ok)
    return false;
  if (!server.importModel(user, "models/" + name + ".cfg",
                          real ? "models/" + name + ".weights" : "",
                          "models/" + name + ".mlirbc", error)) {
    fprintf(stderr, "qsim-studio: demo import failed: %s\n", error.c_str());
    return false;
  }
  std::string capp = data + "/capp-aix-subset";
  std::string coco = data + "/coco128/images/train2017";
  std::vector<std::string> cappImages = imagesIn(capp, 4);
  std::vector<std::string> cocoImages = imagesIn(coco, 16);
  if (!cappImages.empty() && !cocoImages.empty()) {
    for (const std::string &n : cappImages)
      add(capp + "/" + n, "images/" + n);
    for (const std::string &n : cocoImages)
      add(coco + "/" + n, "calib/" + n);
  } else {
    fprintf(stderr,
            "qsim-studio: no images in %s (set QSIM_DATA_DIR): the "
            "demo uses generated pictures\n",
            data.c_str());
    for (int i = 0; i < 6; ++i) {
      std::string p = tmp + "/demo-" + std::to_string(i) + ".ppm";
      writeSyntheticImage(p, 320 + 16 * i, 240 + 8 * i, i);
      add(p, (i < 2 ? "images/" : "calib/") + std::string("synthetic-") +
                 std::to_string(i) + ".ppm");
      unlink(p.c_str());
    }
  }
  return ok;
}

/// What the command line sets.
struct Options {
  StudioConfig config;
  std::string listen = "127.0.0.1:8080", toolsDir = executableDirectory();
  std::string portFile, demoUser = "demo", demoPassword = "qsim-demo";
  bool demo = false;
  std::string executor = "local";
};

static void addOptions(CLI::App &app, Options &o) {
  app.add_option("--listen", o.listen,
                 "HOST:PORT to serve on (port 0: any free port)")
      ->capture_default_str();
  app.add_option("--data", o.config.dataDirectory,
                 "Directory of the database, workspaces and logs (created)")
      ->capture_default_str();
  app.add_option("--web", o.config.webDirectory,
                 "The built front end (\"\" for the API alone)")
      ->capture_default_str();
  app.add_option("--tools", o.toolsDir,
                 "Directory of qsim-run, qsim-opt and qsim-translate")
      ->capture_default_str();
  app.add_option("--port-file", o.portFile,
                 "Write the port served on to this file once listening");
  app.add_option("--max-upload-mb", o.config.maxUploadMiB, "Largest upload")
      ->capture_default_str();
  app.add_option("--max-image-mpixels", o.config.maxImageMegapixels,
                 "Largest image a job or augmentation may decode")
      ->capture_default_str();
  app.add_option("--job-cpu-seconds", o.config.jobLimits.cpuSeconds,
                 "CPU time of one job (inference, quantization, import)")
      ->capture_default_str();
  app.add_option("--job-memory-mb", o.config.jobLimits.memoryMiB,
                 "Address space of one job")
      ->capture_default_str();
  app.add_option("--job-wall-seconds", o.config.jobLimits.wallSeconds,
                 "Wall-clock time of one job")
      ->capture_default_str();
  app.add_option("--session-cpu-seconds", o.config.sessionLimits.cpuSeconds,
                 "CPU time of one step session")
      ->capture_default_str();
  app.add_option("--session-memory-mb", o.config.sessionLimits.memoryMiB,
                 "Address space of one step session")
      ->capture_default_str();
  app.add_option("--session-wall-seconds", o.config.sessionLimits.wallSeconds,
                 "Lifetime of one step session")
      ->capture_default_str();
  app.add_option("--command-timeout", o.config.commandTimeoutSeconds,
                 "Seconds one step-session command may run")
      ->capture_default_str();
  app.add_option("--child-threads", o.config.childThreads,
                 "Threads of each child process")
      ->capture_default_str();
  app.add_option("--max-children-per-user", o.config.maxChildrenPerUser,
                 "Jobs and sessions one user may run at once")
      ->capture_default_str();
  app.add_option("--quota-mb", o.config.quotaMiB,
                 "Disk quota of each user's workspace")
      ->capture_default_str();
  app.add_option("--max-users", o.config.maxUsers,
                 "Accounts the server accepts")
      ->capture_default_str();
  app.add_option("--registrations-per-hour", o.config.registrationsPerHour,
                 "New accounts per client address and hour")
      ->capture_default_str();
  app.add_option("--max-connections", o.config.maxConnections,
                 "Open connections at once")
      ->capture_default_str();
  app.add_option("--max-anonymous-connections",
                 o.config.maxAnonymousConnections,
                 "Connections without a login at once (the oldest idle one "
                 "makes room)")
      ->capture_default_str();
  app.add_option("--max-streams-per-user", o.config.maxStreamsPerUser,
                 "Event streams (browser tabs) per user (the oldest closes)")
      ->capture_default_str();
  app.add_option("--header-seconds", o.config.headerSeconds,
                 "Time a client has to send a request header")
      ->capture_default_str();
  app.add_option("--idle-seconds", o.config.idleSeconds,
                 "Keep-alive wait, and the longest pause within a body or a "
                 "response")
      ->capture_default_str();
  app.add_option("--login-hours", o.config.loginHours, "Lifetime of a login")
      ->capture_default_str();
  app.add_option("--password-memory-kb", o.config.passwordMemoryKiB,
                 "argon2id memory per password hash (default: OWASP's "
                 "19 MiB; 0: libsodium's interactive 64 MiB)")
      ->capture_default_str();
  app.add_flag("--secure-cookies", o.config.secureCookies,
               "Mark cookies Secure (when served behind HTTPS)");
  app.add_flag("--demo", o.demo,
               "Create the demo account with a model and images");
  app.add_option("--demo-user", o.demoUser, "Demo account name")
      ->capture_default_str();
  app.add_option("--demo-password", o.demoPassword, "Demo account password")
      ->capture_default_str();
  app.add_flag("-q,--quiet", o.config.quiet, "No request log");
  app.add_option("--executor", o.executor,
                 "Where heavy jobs (quantization, ...) run: local children, "
                 "or Slurm batch jobs (step sessions stay local)")
      ->check(CLI::IsMember({"local", "slurm"}))
      ->capture_default_str();
  app.add_option("--slurm-partition", o.config.slurm.partition,
                 "slurm: partition of the jobs");
  app.add_option("--slurm-account", o.config.slurm.account,
                 "slurm: account of the jobs");
  app.add_option("--slurm-poll", o.config.slurm.pollSeconds,
                 "slurm: seconds between two squeue polls of a job")
      ->capture_default_str();
}

int main(int argc, char **argv) {
  // The supervisor of one Slurm job (SlurmExecutor.h), started by a studio.
  if (argc > 1 && std::string(argv[1]) == "--slurm-job")
    return runSlurmJob(std::vector<std::string>(argv + 2, argv + argc));
  CLI::App app{"qsim-studio: the multi-user web studio over qsim's tools "
               "(docs/studio.md).\n\n"
               "  qsim-studio --data ~/studio-data --listen 127.0.0.1:8080\n"
               "  qsim-studio --data /tmp/studio --demo   # demo account with "
               "a model\n"};
  Options o;
  o.config.dataDirectory = "studio-data";
  o.config.webDirectory = QSIM_STUDIO_WEB_DIR;
  addOptions(app, o);
  CLI11_PARSE(app, argc, argv);
  StudioConfig &config = o.config;
  const std::string &listen = o.listen;

  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    fprintf(stderr, "qsim-studio: --listen takes HOST:PORT, not '%s'\n",
            listen.c_str());
    return 1;
  }
  std::string host = listen.substr(0, colon);
  int port = std::atoi(listen.c_str() + colon + 1);
  config.qsimRun = o.toolsDir + "/qsim-run";
  config.qsimOpt = o.toolsDir + "/qsim-opt";
  config.qsimTranslate = o.toolsDir + "/qsim-translate";
  config.slurm.enabled = o.executor == "slurm";
  config.slurm.supervisor = executableDirectory() + "/qsim-studio";
  // Absent from a build without libtorch: training jobs are then refused.
  config.qsimTrain = o.toolsDir + "/qsim-train";
  if (!config.webDirectory.empty() &&
      !isFile(config.webDirectory + "/index.html")) {
    fprintf(stderr,
            "qsim-studio: %s has no index.html: build the front end "
            "(scripts/build.sh runs npm) or pass --web \"\" for the API "
            "alone\n",
            config.webDirectory.c_str());
    return 1;
  }

  // SIGINT/SIGTERM end the server cleanly (children stopped); blocked here so
  // that every thread inherits the mask and one thread waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::string error;
  auto server = StudioServer::create(config, error);
  if (!server) {
    fprintf(stderr, "qsim-studio: %s\n", error.c_str());
    return 1;
  }
  int bound = server->bind(host, port);
  if (bound < 0) {
    fprintf(stderr, "qsim-studio: cannot listen on %s\n", listen.c_str());
    return 1;
  }
  std::thread([&server, signals] {
    int sig = 0;
    sigwait(&signals, &sig);
    fprintf(stderr, "qsim-studio: stopping\n");
    server->stop();
  }).detach();
  if (o.demo &&
      !prepareDemo(*server, o.demoUser, o.demoPassword, config.dataDirectory))
    return 1;
  if (!o.portFile.empty()) {
    std::string tmp = o.portFile + ".tmp";
    std::ofstream(tmp) << bound << "\n";
    rename(tmp.c_str(), o.portFile.c_str());
  }
  fprintf(stderr, "qsim-studio: serving http://%s:%d/%s\n", host.c_str(), bound,
          o.demo
              ? (" (demo account: " + o.demoUser + " / " + o.demoPassword + ")")
                    .c_str()
              : "");
  bool ok = server->serve();
  server.reset();
  return ok ? 0 : 1;
}
