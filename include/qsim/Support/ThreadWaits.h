//===- ThreadWaits.h - passive waiting of the OpenMP workers ----*- C++ -*-===//
//
// libgomp (used by qsim's kernels and by oneDNN) lets idle workers spin for a
// long time before sleeping. Two processes sharing the cores then spin
// against each other and a 2-thread forward pass becomes several times
// slower than a 1-thread one (issue 17). libgomp reads its wait policy only
// when it is loaded, before main, so a tool that wants passive waiting by
// default re-executes itself once with OMP_WAIT_POLICY=passive.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_SUPPORT_THREADWAITS_H
#define QSIM_SUPPORT_THREADWAITS_H

namespace qsim {

/// Call first in main: unless the user chose a policy (OMP_WAIT_POLICY or
/// GOMP_SPINCOUNT set), sets OMP_WAIT_POLICY=passive and re-executes the
/// program with the same arguments. Returns (and the program continues with
/// libgomp's default) only when a policy was already set or the re-execution
/// failed.
void preferPassiveThreadWaits(char **argv);

} // namespace qsim

#endif
