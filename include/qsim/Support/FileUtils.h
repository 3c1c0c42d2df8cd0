//===- FileUtils.h - never leave a half-written output ---------*- C++ -*-===//

#ifndef QSIM_SUPPORT_FILEUTILS_H
#define QSIM_SUPPORT_FILEUTILS_H

#include "mlir/Support/LogicalResult.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/Support/raw_ostream.h"

#include <string>

namespace qsim {

/// Writes `path` through a temporary file in the same directory that is
/// renamed over `path` only when `writer` succeeds (and removed otherwise,
/// also on a signal). "-" writes to stdout. Sets `error` on I/O failure.
mlir::LogicalResult
writeFileAtomically(llvm::StringRef path,
                    llvm::function_ref<mlir::LogicalResult(llvm::raw_ostream &)> writer,
                    std::string &error);

} // namespace qsim

#endif
