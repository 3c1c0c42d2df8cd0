//===- ModelIO.cpp - load and save qsim models ---------------------------===//

#include "qsim/Target/ModelIO.h"
#include "qsim/Support/FileUtils.h"
#include "qsim/Target/Darknet/DarknetImporter.h"

#include "mlir/Bytecode/BytecodeWriter.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Tosa/IR/TosaOps.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"

using namespace mlir;

void qsim::registerQSimDialects(DialectRegistry &registry) {
  registry
      .insert<QSimDialect, func::FuncDialect, quant::QuantizationDialect,
              tosa::TosaDialect, arith::ArithDialect, tensor::TensorDialect>();
}

bool qsim::isDarknetCfgPath(StringRef path) { return path.ends_with(".cfg"); }

OwningOpRef<ModuleOp> qsim::loadModel(MLIRContext *ctx,
                                      const ModelLoadOptions &opts) {
  if (isDarknetCfgPath(opts.path)) {
    darknet::ImportOptions io;
    io.weightsPath = opts.weightsPath;
    io.randomSeed = opts.randomSeed;
    io.flavor = opts.flavor.value_or(Flavor::AlexeyAB);
    io.allowUnknownKeys = opts.allowUnknownKeys;
    io.maxMemoryMB = opts.maxMemoryMB;
    return darknet::importDarknet(ctx, opts.path, io);
  }
  if (!opts.weightsPath.empty()) {
    emitError(FileLineColLoc::get(ctx, opts.path, 0, 0))
        << "--weights only applies to a Darknet .cfg model, not '" << opts.path
        << "'";
    return nullptr;
  }
  auto buf =
      llvm::MemoryBuffer::getFileOrSTDIN(opts.path, /*IsText=*/false,
                                         /*RequiresNullTerminator=*/true);
  if (!buf) {
    emitError(FileLineColLoc::get(ctx, opts.path, 0, 0))
        << "cannot open model '" << opts.path
        << "': " << buf.getError().message();
    return nullptr;
  }
  auto sourceMgr = std::make_shared<llvm::SourceMgr>();
  sourceMgr->AddNewSourceBuffer(std::move(*buf), SMLoc());
  ParserConfig config(ctx);
  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(sourceMgr, config);
  if (!module)
    return nullptr;
  if (!getMainFunc(*module)) {
    emitError(module->getLoc())
        << "'" << opts.path << "' has no main function: not a qsim model";
    return nullptr;
  }
  if (opts.flavor)
    setFlavor(*module, *opts.flavor);
  return module;
}

LogicalResult qsim::saveModel(ModuleOp module, StringRef path, bool bytecode,
                              std::string &error) {
  return writeFileAtomically(
      path,
      [&](raw_ostream &os) -> LogicalResult {
        if (bytecode) {
          if (failed(writeBytecodeToFile(module, os))) {
            error = "cannot serialize the module as bytecode";
            return failure();
          }
          return success();
        }
        OpPrintingFlags flags;
        module->print(os, flags);
        return success();
      },
      error);
}

OwningOpRef<ModuleOp> qsim::loadDonorNetwork(MLIRContext *ctx, StringRef path,
                                             StringRef weightsPath,
                                             uint64_t seed, Flavor flavor) {
  ModelLoadOptions lo;
  lo.path = path.str();
  lo.weightsPath = weightsPath.str();
  if (weightsPath.empty())
    lo.randomSeed = seed;
  lo.flavor = flavor;
  return loadModel(ctx, lo);
}
