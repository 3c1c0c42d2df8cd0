//===- CommandLine.h - starting a step session from qsim-run ----*- C++ -*-===//
//
// `qsim-run --session` and `--break N`: the options that make qsim-run a
// step session instead of a run (declared here, beside the session they
// configure), and the start: the first `load`, then --break's report or
// serving requests on stdin/stdout or a socket.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_SESSION_COMMANDLINE_H
#define QSIM_SESSION_COMMANDLINE_H

#include "qsim/Session/Engine.h"

#include "llvm/Support/raw_ostream.h"

#include <CLI/CLI.hpp>

#include <functional>
#include <optional>

namespace qsim::session {

struct SessionCommandLine {
  bool session = false;
  /// unix:PATH or tcp:HOST:PORT; stdin/stdout when empty.
  std::string listen;
  std::string root;
  std::optional<int64_t> breakAt;
  /// Limits in command-line units (MB, Mpixels, KB, seconds).
  double maxModelMb = 1024, maxImageMpixels = 64, maxRequestKb = 1024,
         commandTimeout = 0;

  /// Declares --session, --listen, --session-root, --max-model-mb,
  /// --max-image-mpixels, --max-request-kb, --command-timeout and --break.
  void addOptions(CLI::App &app);
  /// Whether the command line asks for a session.
  bool requested() const { return session || breakAt.has_value(); }

  /// Starts the session (`threads`, and reference kernels for its model
  /// when asked): sends `load` first unless it is null, then with
  /// --break runs to the layer and reports it on `out` (dumps in
  /// `dumpDir`), else serves until the clients are done. `onListening` is
  /// told the socket's endpoint. Returns the exit status; when it is not 0
  /// `error` says why, unless the transport already did.
  int run(int threads, bool referenceKernels, const json &load,
          const std::string &dumpDir, llvm::raw_ostream &out,
          const std::function<void(const std::string &)> &onListening,
          std::string &error) const;
};

} // namespace qsim::session

#endif
