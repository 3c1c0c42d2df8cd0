//===- TestEnv.h - locating real models for tests ---------------*- C++ -*-===//
//
// Tests on real models and Darknet's golden outputs read QSIM_MODELS_DIR,
// QSIM_DATA_DIR and QSIM_GOLDEN_DIR (default: QSIM_MODELS_DIR/../golden) and
// skip with a message when they are not set.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_UNITTESTS_TESTENV_H
#define QSIM_UNITTESTS_TESTENV_H

#include <cstdlib>
#include <string>
#include <sys/stat.h>

namespace qsim::testenv {

inline bool isDir(const std::string &p) {
  struct stat st;
  return !p.empty() && stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
inline bool isFile(const std::string &p) {
  struct stat st;
  return !p.empty() && stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}
inline std::string env(const char *name) {
  const char *v = std::getenv(name);
  return v ? v : "";
}
inline std::string modelsDir() { return env("QSIM_MODELS_DIR"); }
inline std::string dataDir() { return env("QSIM_DATA_DIR"); }
inline std::string goldenDir() {
  std::string g = env("QSIM_GOLDEN_DIR");
  if (!g.empty())
    return g;
  std::string m = modelsDir();
  return m.empty() ? "" : m + "/../golden";
}

} // namespace qsim::testenv

#define QSIM_REQUIRE_MODELS()                                                  \
  do {                                                                         \
    if (!::qsim::testenv::isDir(::qsim::testenv::modelsDir()))                 \
      GTEST_SKIP() << "QSIM_MODELS_DIR is not set: skipping a test on real "   \
                      "models";                                                \
  } while (0)
#define QSIM_REQUIRE_GOLDEN()                                                  \
  do {                                                                         \
    QSIM_REQUIRE_MODELS();                                                     \
    if (!::qsim::testenv::isDir(::qsim::testenv::goldenDir()))                 \
      GTEST_SKIP() << "no golden data (QSIM_GOLDEN_DIR or "                    \
                      "QSIM_MODELS_DIR/../golden): skipping";                  \
  } while (0)
#define QSIM_REQUIRE_DATA()                                                    \
  do {                                                                         \
    if (!::qsim::testenv::isDir(::qsim::testenv::dataDir()))                   \
      GTEST_SKIP() << "QSIM_DATA_DIR is not set: skipping a test on real "     \
                      "images";                                                \
  } while (0)

#endif
