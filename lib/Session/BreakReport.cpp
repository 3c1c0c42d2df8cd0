//===- BreakReport.cpp - a non-interactive stop at a layer ---------------===//

#include "qsim/Session/BreakReport.h"
#include "qsim/Support/StringUtils.h"

#include "llvm/Support/FileSystem.h"

using namespace qsim;
using namespace qsim::session;

namespace {

/// One request; false with the reply's error when it fails.
bool call(Engine &engine, const json &request, json &reply,
          std::string &error) {
  SessionControl control;
  reply = engine.handle(request, control);
  if (reply.value("ok", false))
    return true;
  error = reply.value("error", std::string("request failed"));
  return false;
}

/// The statistics row of one tensor of the layer; false when the layer has
/// no such tensor (no weights).
bool printStats(Engine &engine, int64_t layer, const char *what,
                llvm::raw_ostream &os) {
  json st, ignored;
  std::string error;
  if (!call(engine, {{"cmd", "stats"}, {"layer", layer}, {"what", what}}, st,
            error))
    return false;
  std::string shape;
  for (auto &d : st["shape"])
    shape += (shape.empty() ? "" : "x") + std::to_string(d.get<int64_t>());
  os << strprintf("%-8s %-14s %12.5g %12.5g %12.5g %12.5g %7.2f%%\n", what,
                  shape.c_str(), st["min"].get<double>(),
                  st["max"].get<double>(), st["mean"].get<double>(),
                  st["std"].get<double>(),
                  100.0 * st["zeros"].get<double>() /
                      std::max<double>(1, st["count"].get<double>()));
  if (st.contains("quant") && st["quant"].contains("scale"))
    os << strprintf("         int8 scale %.6g zero point %d, %.2f%% at the "
                    "int8 limits\n",
                    st["quant"]["scale"].get<double>(),
                    st["quant"]["zero_point"].get<int>(),
                    st["quant"]["clipped_percent"].get<double>());
  return true;
}

bool dumpLayer(Engine &engine, int64_t layer, bool hasWeights,
               const std::string &dir, llvm::raw_ostream &os,
               std::string &error) {
  if (auto ec = llvm::sys::fs::create_directories(dir)) {
    error = "cannot create '" + dir + "': " + ec.message();
    return false;
  }
  std::string prefix = strprintf("/%03lld_", (long long)layer);
  for (const char *what : {"input", "output", "weights"}) {
    if (std::string(what) == "weights" && !hasWeights)
      continue;
    for (const char *ext : {".npy", ".png"}) {
      std::string file = dir + prefix + what + ext;
      json reply;
      if (!call(engine,
                {{"cmd", "dump"},
                 {"layer", layer},
                 {"what", what},
                 {"file", file}},
                reply, error))
        return false;
      os << "wrote " << file << "\n";
    }
  }
  return true;
}

} // namespace

bool qsim::session::reportBreak(Engine &engine, int64_t layer,
                                const std::string &dumpDir,
                                llvm::raw_ostream &os, std::string &error) {
  json reply, info;
  if (!call(engine, {{"cmd", "run-to"}, {"layer", layer}}, reply, error) ||
      !call(engine, {{"cmd", "info"}}, info, error))
    return false;
  const json &l = info["layers"][layer];
  os << strprintf("stopped after layer %lld (%s, %s), output %s\n",
                  (long long)layer, l["kind"].get<std::string>().c_str(),
                  l["precision"].get<std::string>().c_str(),
                  l["output"].dump().c_str());
  os << strprintf("%-8s %-14s %12s %12s %12s %12s %8s\n", "tensor", "shape",
                  "min", "max", "mean", "std", "zeros");
  printStats(engine, layer, "input", os);
  printStats(engine, layer, "output", os);
  bool hasWeights = printStats(engine, layer, "weights", os);
  return dumpDir.empty() ||
         dumpLayer(engine, layer, hasWeights, dumpDir, os, error);
}
