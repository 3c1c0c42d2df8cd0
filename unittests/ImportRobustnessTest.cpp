//===- ImportRobustnessTest.cpp - mutated cfg and weights files -----------===//
//
// Mutation fuzzing of the Darknet importer, bounded to a few seconds:
// truncated, garbled and numerically extreme cfgs, and truncated or
// garbled weights files. Every input must give either a verified module or
// at least one error located in the cfg (its name, and its line where there
// is one) - never a crash, never a silent null.
//
//===----------------------------------------------------------------------===//

#include "qsim/Target/Darknet/CfgParser.h"
#include "qsim/Target/Darknet/DarknetExporter.h"
#include "qsim/Target/Darknet/DarknetImporter.h"
#include "qsim/Target/ModelIO.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>
#include <random>

using namespace qsim;

namespace {

// Small, but with every kind the zoo relies on: conv (bn, groups), maxpool,
// route with groups, shortcut, upsample, crop, connected, yolo, cost.
const char *kSeedCfg = R"([net]
width=16
height=16
channels=3
[crop]
crop_height=14
crop_width=14
[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky
[maxpool]
size=2
stride=2
[convolutional]
filters=8
size=3
groups=2
pad=1
activation=mish
[route]
layers=-1
groups=2
group_id=1
[convolutional]
filters=8
size=1
activation=linear
[shortcut]
from=-3
activation=linear
[upsample]
stride=2
[convolutional]
filters=14
size=1
activation=linear
[yolo]
mask=0,1
anchors=10,14,23,27
classes=2
num=2
)";

struct Outcome {
  bool imported = false;
  unsigned errors = 0, locatedErrors = 0;
};

Outcome importText(mlir::MLIRContext &ctx, const std::string &text,
                   const darknet::ImportOptions &io) {
  Outcome o;
  mlir::ScopedDiagnosticHandler handler(&ctx, [&](mlir::Diagnostic &d) {
    if (d.getSeverity() != mlir::DiagnosticSeverity::Error)
      return mlir::success();
    ++o.errors;
    auto loc = mlir::dyn_cast<mlir::FileLineColLoc>(d.getLocation());
    // The file is named (line 0 for whole-file problems such as an empty
    // cfg or a weights-size mismatch).
    if (loc && loc.getFilename() == "fuzz.cfg")
      ++o.locatedErrors;
    return mlir::success();
  });
  auto module = darknet::importDarknetFromString(&ctx, text, "fuzz.cfg", io);
  if (module) {
    o.imported = true;
    EXPECT_TRUE(mlir::succeeded(mlir::verify(*module)));
  }
  return o;
}

std::string mutate(const std::string &seed, std::mt19937 &rng) {
  static const char *tokens[] = {"\n",
                                 "=",
                                 "[",
                                 "]",
                                 ",",
                                 "-",
                                 "#",
                                 "0",
                                 "-1",
                                 "4294967297",
                                 "2147483647",
                                 "-2147483648",
                                 "1e39",
                                 "nan",
                                 "inf",
                                 "\r",
                                 "\xEF\xBB\xBF",
                                 "\n[route]\nlayers=-1,\n",
                                 "\n[shortcut]\nfrom=-100\n",
                                 "\n[cost]\n",
                                 "\n[crop]\ncrop_height=99\n",
                                 "\n[maxpool]\nsize=65535\n",
                                 "\nfilters=100000\n",
                                 "\nsize=0\n",
                                 "\nstride=-2\n"};
  std::string s = seed;
  std::uniform_int_distribution<int> kind(0, 4);
  int edits = 1 + rng() % 4;
  for (int e = 0; e < edits && !s.empty(); ++e) {
    size_t pos = rng() % s.size();
    switch (kind(rng)) {
    case 0: // truncate
      s.resize(pos);
      break;
    case 1: // random byte
      s[pos] = (char)(rng() % 256);
      break;
    case 2: // insert a token
      s.insert(pos, tokens[rng() % (sizeof(tokens) / sizeof(*tokens))]);
      break;
    case 3: { // replace a number with an extreme one
      size_t d = s.find_first_of("0123456789", pos);
      if (d != std::string::npos)
        s.replace(d, 1, tokens[7 + rng() % 8]);
      break;
    }
    default: { // duplicate a line elsewhere
      size_t a = s.rfind('\n', pos), b = s.find('\n', pos);
      if (a != std::string::npos && b != std::string::npos)
        s.insert(rng() % s.size(), s.substr(a, b - a));
      break;
    }
    }
  }
  return s;
}

TEST(ImportRobustness, SeedImports) {
  mlir::DialectRegistry registry;
  registerQSimDialects(registry);
  mlir::MLIRContext ctx(registry);
  darknet::ImportOptions io;
  io.randomSeed = 1;
  Outcome o = importText(ctx, kSeedCfg, io);
  EXPECT_TRUE(o.imported);
  EXPECT_EQ(o.errors, 0u);
}

TEST(ImportRobustness, MutatedCfgsImportOrFailWithALocatedError) {
  mlir::DialectRegistry registry;
  registerQSimDialects(registry);
  mlir::MLIRContext ctx(registry);
  ctx.printOpOnDiagnostic(false);
  darknet::ImportOptions io;
  io.randomSeed = 1;
  io.maxMemoryMB = 64; // keeps every mutant's allocation small
  std::mt19937 rng(20);
  unsigned imported = 0, refused = 0;
  for (int i = 0; i < 1500; ++i) {
    std::string text = mutate(kSeedCfg, rng);
    Outcome o = importText(ctx, text, io);
    if (o.imported) {
      ++imported;
      continue;
    }
    ++refused;
    ASSERT_GT(o.errors, 0u) << "null module without an error for:\n" << text;
    ASSERT_GT(o.locatedErrors, 0u) << "no error names the file for:\n" << text;
    ASSERT_LE(o.errors, darknet::kMaxCfgErrors + 1) << text;
  }
  // Both outcomes occur: the mutations are neither all harmless nor all
  // fatal, so both paths were exercised.
  EXPECT_GT(imported, 50u);
  EXPECT_GT(refused, 500u);
}

TEST(ImportRobustness, TruncatedAndGarbledWeights) {
  mlir::DialectRegistry registry;
  registerQSimDialects(registry);
  mlir::MLIRContext ctx(registry);
  ctx.printOpOnDiagnostic(false);
  // A weights file that matches the seed cfg, from the exporter.
  darknet::ImportOptions io;
  io.randomSeed = 3;
  auto module = darknet::importDarknetFromString(&ctx, kSeedCfg, "w.cfg", io);
  ASSERT_TRUE(module);
  std::string cfgText, weights;
  llvm::raw_string_ostream cfgOs(cfgText), wOs(weights);
  ASSERT_TRUE(mlir::succeeded(darknet::exportDarknet(*module, cfgOs, &wOs)));
  wOs.flush();
  ASSERT_GT(weights.size(), 100u);

  llvm::SmallString<128> path;
  ASSERT_FALSE(llvm::sys::fs::createTemporaryFile("fuzz", "weights", path));
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) {
    std::string w = weights;
    bool sameSize = true;
    switch (i % 3) {
    case 0:
      w.resize(rng() % w.size());
      sameSize = false;
      break;
    case 1:
      w.append(1 + rng() % 9, (char)rng());
      sameSize = false;
      break;
    default: // garble bytes (the header included): values may be NaN
      for (int k = 0; k < 8; ++k)
        w[rng() % w.size()] = (char)rng();
    }
    {
      std::error_code ec;
      llvm::raw_fd_ostream os(path, ec);
      ASSERT_FALSE(ec);
      os << w;
    }
    darknet::ImportOptions wio;
    wio.weightsPath = std::string(path);
    Outcome o = importText(ctx, cfgText, wio); // named fuzz.cfg
    if (!sameSize) {
      EXPECT_FALSE(o.imported) << "size " << w.size();
    }
    if (!o.imported) {
      ASSERT_GT(o.errors, 0u);
      ASSERT_GT(o.locatedErrors, 0u);
    }
  }
  llvm::sys::fs::remove(path);
}

} // namespace
