//===- WeightsFuzzer.cpp - fuzz target: the .weights reader ---------------===//
//
// The input's first byte chooses one of the small cfgs below, the flavour
// (the header's layout) and how the file arrives (a regular file, mapped;
// or a pipe, streamed); the rest is the .weights file. Besides the import
// contract (FuzzContract.h), a model is only imported from a file of
// exactly the size its cfg needs.
//
// QSIM_FUZZ_WRITE_SEEDS=DIR writes one valid input per cfg, flavour and
// transport into DIR (the seed corpus; fuzz/run-fuzzers.sh uses it).
//
//===----------------------------------------------------------------------===//

#include "FuzzContract.h"

#include "qsim/Target/Darknet/DarknetExporter.h"
#include "qsim/Target/Darknet/DarknetImporter.h"
#include "qsim/Target/Darknet/WeightsFile.h"
#include "qsim/Target/ModelIO.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

#include <array>
#include <fcntl.h>
#include <unistd.h>

using namespace qsim;

namespace {

// Every kind of weighted layer and each way Darknet stores it: a
// convolution with and without batch norm, a grouped one, a connected
// layer (stored transposed for major/minor > 1000) and a lone batchnorm.
const std::array<const char *, 3> kCfgs = {
    R"([net]
width=8
height=8
channels=3
[convolutional]
batch_normalize=1
filters=4
size=3
pad=1
activation=leaky
[convolutional]
filters=4
size=1
groups=2
activation=linear
[connected]
output=5
activation=linear
)",
    R"([net]
width=4
height=4
channels=2
[convolutional]
filters=2
size=1
activation=linear
[batchnorm]
[connected]
batch_normalize=1
output=3
activation=relu
)",
    R"([net]
width=6
height=6
channels=1
[convolutional]
filters=3
size=3
stride=2
activation=mish
)"};

constexpr const char *kCfgName = "fuzz.cfg";
// A pipe holds 64 KiB on Linux: larger files are written to a regular file.
constexpr size_t kPipeBytes = 60000;

struct Choice {
  size_t cfg;
  Flavor flavor;
  bool pipe;
  static Choice of(uint8_t b) {
    return {(size_t)(b % 4) % kCfgs.size(),
            (b & 4) ? Flavor::PJReddie : Flavor::AlexeyAB, (b & 8) != 0};
  }
  uint8_t byte() const {
    return (uint8_t)(cfg | (flavor == Flavor::PJReddie ? 4 : 0) |
                     (pipe ? 8 : 0));
  }
};

std::string &regularFilePath() {
  static std::string path = [] {
    llvm::SmallString<128> p;
    if (llvm::sys::fs::createTemporaryFile("qsim-fuzz", "weights", p))
      fuzz::contractBroken("cannot create a temporary file");
    std::atexit([] { llvm::sys::fs::remove(regularFilePath()); });
    return std::string(p);
  }();
  return path;
}

/// Floats each cfg needs (from a random-weights import and its export).
size_t floatsOf(mlir::MLIRContext &ctx, size_t cfg, Flavor flavor,
                std::string *weightsOut = nullptr) {
  darknet::ImportOptions o;
  o.randomSeed = 5;
  o.flavor = flavor;
  auto module = darknet::importDarknetFromString(&ctx, kCfgs[cfg], kCfgName, o);
  std::string cfgText, weights;
  llvm::raw_string_ostream cfgOs(cfgText), wOs(weights);
  if (!module || mlir::failed(darknet::exportDarknet(*module, cfgOs, &wOs)))
    fuzz::contractBroken("the fuzz target's own cfg does not round-trip");
  wOs.flush();
  darknet::WeightsHeader h;
  std::string error;
  if (!darknet::readWeightsHeader(
          llvm::ArrayRef<char>(weights.data(), weights.size()), flavor, h,
          error))
    fuzz::contractBroken("the exported header does not read: " + error);
  if (weightsOut)
    *weightsOut = weights;
  return (weights.size() - h.size(flavor)) / sizeof(float);
}

void writeSeeds(const char *dir) {
  mlir::DialectRegistry registry;
  registerQSimDialects(registry);
  mlir::MLIRContext ctx(registry, mlir::MLIRContext::Threading::DISABLED);
  for (int b = 0; b < 16; ++b) {
    Choice c = Choice::of(b);
    if (c.byte() != b)
      continue;
    std::string weights;
    floatsOf(ctx, c.cfg, c.flavor, &weights);
    std::string path = std::string(dir) + "/seed-" + std::to_string(b);
    std::error_code ec;
    llvm::raw_fd_ostream os(path, ec);
    if (ec)
      fuzz::contractBroken("cannot write " + path + ": " + ec.message());
    os << (char)b << weights;
  }
}

/// Imports the cfg with `weights` arriving as `c` says; returns whether a
/// module was imported (the contract checked).
bool importWeights(mlir::MLIRContext &ctx, const Choice &c,
                   llvm::ArrayRef<char> weights) {
  darknet::ImportOptions o;
  o.flavor = c.flavor;
  o.maxMemoryMB = 32;
  int fds[2] = {-1, -1};
  if (c.pipe && weights.size() <= kPipeBytes) {
    if (pipe(fds) != 0)
      fuzz::contractBroken("pipe() failed");
    if (!weights.empty() && write(fds[1], weights.data(), weights.size()) !=
                                (ssize_t)weights.size())
      fuzz::contractBroken("writing the pipe failed");
    close(fds[1]);
    o.weightsPath = "/dev/fd/" + std::to_string(fds[0]);
  } else {
    std::error_code ec;
    llvm::raw_fd_ostream os(regularFilePath(), ec);
    if (ec)
      fuzz::contractBroken("cannot write the weights file: " + ec.message());
    os.write(weights.data(), weights.size());
    o.weightsPath = regularFilePath();
  }
  bool imported;
  {
    fuzz::DiagnosticTally tally(&ctx, kCfgName);
    auto module =
        darknet::importDarknetFromString(&ctx, kCfgs[c.cfg], kCfgName, o);
    tally.checkImport(module ? *module : mlir::ModuleOp());
    imported = (bool)module;
  }
  if (fds[0] >= 0)
    close(fds[0]);
  return imported;
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *argc, char ***argv) {
  if (const char *dir = getenv("QSIM_FUZZ_WRITE_SEEDS"))
    writeSeeds(dir);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  Choice c = Choice::of(data[0]);
  llvm::ArrayRef<char> weights(reinterpret_cast<const char *>(data + 1),
                               size - 1);
  mlir::DialectRegistry registry;
  registerQSimDialects(registry);
  mlir::MLIRContext ctx(registry, mlir::MLIRContext::Threading::DISABLED);
  ctx.printOpOnDiagnostic(false);
  if (!importWeights(ctx, c, weights))
    return 0;
  // Imported: the file must have had exactly the header and the floats.
  darknet::WeightsHeader h;
  std::string error;
  if (!darknet::readWeightsHeader(weights, c.flavor, h, error))
    fuzz::contractBroken("imported although the header does not read: " +
                         error);
  size_t expected = h.size(c.flavor) + floatsOf(ctx, c.cfg, c.flavor) * 4;
  if (weights.size() != expected)
    fuzz::contractBroken("imported from " + std::to_string(weights.size()) +
                         " bytes; the cfg needs " + std::to_string(expected));
  return 0;
}
