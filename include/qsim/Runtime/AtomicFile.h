//===- AtomicFile.h - files that appear only when complete ------*- C++ -*-===//

#ifndef QSIM_RUNTIME_ATOMICFILE_H
#define QSIM_RUNTIME_ATOMICFILE_H

#include <cstddef>
#include <string>

namespace qsim::rt {

/// Writes `size` bytes to `path` through a temporary file in the same
/// directory that is renamed over `path` only when everything was written,
/// so a reader (or a crash) never sees a half-written file.
bool writeFileAtomically(const std::string &path, const void *data, size_t size,
                         std::string &error);

} // namespace qsim::rt

#endif
