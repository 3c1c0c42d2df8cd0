//===- ThreadWaits.cpp - passive waiting of the OpenMP workers ------------===//

#include "qsim/Support/ThreadWaits.h"

#include <cstdlib>
#include <unistd.h>

void qsim::preferPassiveThreadWaits(char **argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT"))
    return;
  if (setenv("OMP_WAIT_POLICY", "passive", 0) != 0)
    return;
  execv("/proc/self/exe", argv);
  // Not re-executed (no /proc): keep running with libgomp's default policy;
  // the variable still reaches our child processes.
}
