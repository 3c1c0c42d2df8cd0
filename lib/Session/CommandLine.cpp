//===- CommandLine.cpp - starting a step session from qsim-run -----------===//

#include "qsim/Session/CommandLine.h"
#include "qsim/Session/BreakReport.h"
#include "qsim/Session/Server.h"

#include <cmath>
#include <cstdlib>

using namespace qsim;
using namespace qsim::session;

void SessionCommandLine::addOptions(CLI::App &app) {
  app.add_flag("--session", session,
               "Serve a step session: newline-delimited JSON requests on "
               "stdin, replies on stdout (docs/step-debugging.md); MODEL "
               "(and --image, --mode, ...) are loaded first when given");
  app.add_option("--listen", listen,
                 "With --session: serve on unix:PATH or tcp:127.0.0.1:PORT "
                 "instead of stdin/stdout (several clients; a second one can "
                 "pause/resume/stop a run)");
  app.add_option("--session-root", root,
                 "With --session: every file a request names must lie in "
                 "this directory (relative paths are relative to it)");
  app.add_option("--max-model-mb", maxModelMb,
                 "With --session: largest model/weights file a request may "
                 "load")
      ->capture_default_str();
  app.add_option("--max-image-mpixels", maxImageMpixels,
                 "Largest image (megapixels) --image or a --session request "
                 "may load")
      ->check(CLI::Validator(
          [](std::string &text) -> std::string {
            char *end = nullptr;
            double v = std::strtod(text.c_str(), &end);
            if (text.empty() || *end || !std::isfinite(v) || v <= 0)
              return "expected a positive number, got '" + text + "'";
            return "";
          },
          "POSITIVE"))
      ->capture_default_str();
  app.add_option("--max-request-kb", maxRequestKb,
                 "With --session: longest request line")
      ->capture_default_str();
  app.add_option("--command-timeout", commandTimeout,
                 "With --session: seconds one command may run (0: no limit; "
                 "runs stop at a layer boundary)")
      ->capture_default_str();
  app.add_option("--break", breakAt,
                 "Run --image up to layer N, print the statistics of its "
                 "input, output and weights, and with --dump-layers DIR write "
                 "them as .npy and .png (non-interactive session)");
}

int SessionCommandLine::run(
    int threads, bool referenceKernels, const json &load,
    const std::string &dumpDir, llvm::raw_ostream &out,
    const std::function<void(const std::string &)> &onListening,
    std::string &error) const {
  Engine::Options eo;
  eo.threads = threads;
  eo.referenceKernels = referenceKernels;
  eo.rootDir = root;
  eo.limits.maxModelBytes = (int64_t)(maxModelMb * 1024 * 1024);
  eo.limits.maxImagePixels = (int64_t)(maxImageMpixels * 1e6);
  eo.limits.commandSeconds = commandTimeout;
  eo.limits.maxRequestBytes = (size_t)(maxRequestKb * 1024);
  Engine engine(eo);
  if (!load.is_null()) {
    SessionControl control;
    json reply = engine.handle(load, control);
    if (!reply.value("ok", false)) {
      error = reply.value("error", std::string("request failed"));
      return 1;
    }
  }
  if (breakAt) {
    if (load.is_null() || !load.contains("image")) {
      error = "--break needs a model and --image";
      return 1;
    }
    return reportBreak(engine, *breakAt, dumpDir, out, error) ? 0 : 1;
  }
  Server server(engine);
  server.installSignalHandlers();
  if (listen.empty())
    return server.serveStdio();
  error.clear();
  return server.serveSocket(listen, error, onListening);
}
