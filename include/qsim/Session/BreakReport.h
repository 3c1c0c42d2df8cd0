//===- BreakReport.h - a non-interactive stop at a layer --------*- C++ -*-===//
//
// `qsim-run --break N`: a session runs its image up to layer N and reports
// that layer (statistics of its input, output and weights; optionally their
// .npy and .png dumps), through the engine's own commands.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_SESSION_BREAKREPORT_H
#define QSIM_SESSION_BREAKREPORT_H

#include "qsim/Session/Engine.h"

#include "llvm/Support/raw_ostream.h"

namespace qsim::session {

/// Runs the loaded model to `layer` and prints the layer's statistics on
/// `os`; with `dumpDir` (created) writes NNN_input/output/weights as .npy
/// and .png and says so. Fails with the first failing request's error.
bool reportBreak(Engine &engine, int64_t layer, const std::string &dumpDir,
                 llvm::raw_ostream &os, std::string &error);

} // namespace qsim::session

#endif
