//===- ReplayMain.cpp - run a fuzz target on saved inputs -----------------===//
//
// The fuzz targets without libFuzzer (any compiler): every file named on
// the command line, or found in a directory named there, is passed to
// LLVMFuzzerTestOneInput once. The inputs the fuzzers found (test/fuzz/)
// run this way in every build as regression tests; a broken contract
// aborts.
//
//===----------------------------------------------------------------------===//

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
extern "C" int LLVMFuzzerInitialize(int *argc, char ***argv)
    __attribute__((weak));

static bool collect(const std::string &path, std::vector<std::string> &files) {
  if (!llvm::sys::fs::is_directory(path)) {
    files.push_back(path);
    return true;
  }
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(path, ec), end; it != end && !ec;
       it.increment(ec))
    if (!llvm::sys::fs::is_directory(it->path()))
      files.push_back(it->path());
  if (ec)
    fprintf(stderr, "cannot list %s: %s\n", path.c_str(), ec.message().c_str());
  return !ec;
}

int main(int argc, char **argv) {
  if (LLVMFuzzerInitialize)
    LLVMFuzzerInitialize(&argc, &argv);
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i)
    if (!collect(argv[i], files))
      return 1;
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    fprintf(stderr, "usage: %s FILE|DIR...: no inputs given\n", argv[0]);
    return 1;
  }
  for (const std::string &f : files) {
    auto buf = llvm::MemoryBuffer::getFile(f, /*IsText=*/false,
                                           /*RequiresNullTerminator=*/false);
    if (!buf) {
      fprintf(stderr, "cannot read %s: %s\n", f.c_str(),
              buf.getError().message().c_str());
      return 1;
    }
    fprintf(stderr, "%s\n", f.c_str());
    // A copy, so that a read past the input is past a heap block.
    std::vector<uint8_t> bytes((*buf)->getBufferStart(),
                               (*buf)->getBufferEnd());
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
  }
  printf("%zu inputs ran\n", files.size());
  return 0;
}
