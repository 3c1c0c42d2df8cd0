//===- WeightsFile.h - Darknet .weights header ------------------*- C++ -*-===//

#ifndef QSIM_TARGET_DARKNET_WEIGHTSFILE_H
#define QSIM_TARGET_DARKNET_WEIGHTSFILE_H

#include "qsim/Dialect/QSim/IR/Layers.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <string>

namespace qsim::darknet {

/// The header of a .weights file (docs/darknet.md §R2.1).
struct WeightsHeader {
  int32_t major = 0, minor = 2, revision = 5; // what AlexeyAB writes
  uint64_t seen = 0;

  /// Whether `seen` is stored in 8 bytes (per flavour; they differ for
  /// major/minor > 1000).
  bool seenIs64(Flavor flavor) const;
  /// Header size in bytes (16 or 20).
  size_t size(Flavor flavor) const { return seenIs64(flavor) ? 20 : 16; }
  /// Connected weights stored [in][out] (major or minor > 1000).
  bool transposed() const { return major > 1000 || minor > 1000; }
};

/// Parses the header at the start of `data`; on failure sets `error`
/// (truncated header) and returns false.
bool readWeightsHeader(llvm::ArrayRef<char> data, Flavor flavor,
                       WeightsHeader &header, std::string &error);
void writeWeightsHeader(llvm::raw_ostream &os, const WeightsHeader &header,
                        Flavor flavor);

} // namespace qsim::darknet

#endif
