//===- TrainRecovery.cpp - recover=train of --qsim-lighten ----------------===//
//
// Registered by qsim-opt when qsim is built with training (QSIM_ENABLE_TRAIN
// found libtorch): the guideline's recovery hook fine-tunes a kept step
// with lib/Train by running the qsim-train built beside qsim-opt on
// temporary copies of the student and the original. qsim-opt itself does
// not link libtorch: linked in, it made every qsim-opt start take 0.76 s
// and 235 MB instead of 0.11 s and 81 MB, for every pass and test.
//
//===----------------------------------------------------------------------===//

#include "qsim/Lighten/Guideline.h"
#include "qsim/Target/ModelIO.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"

#include <cstdio>

using namespace mlir;

namespace qsim {

namespace {

/// "loss A -> B" from qsim-train's --log (step,loss,... per line).
std::string lossNote(const std::string &logPath) {
  auto buffer = llvm::MemoryBuffer::getFile(logPath);
  if (!buffer)
    return "";
  llvm::SmallVector<llvm::StringRef> lines;
  (*buffer)->getBuffer().trim().split(lines, '\n');
  if (lines.size() < 2)
    return "";
  auto loss = [](llvm::StringRef line) {
    return line.split(',').second.split(',').first.str();
  };
  return "loss " + loss(lines[1]) + " -> " + loss(lines.back());
}

/// The end of qsim-train's messages, for the diagnostic.
std::string tail(const std::string &path) {
  auto buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer)
    return "";
  llvm::StringRef text = (*buffer)->getBuffer().trim();
  return text.substr(text.size() > 1500 ? text.size() - 1500 : 0).str();
}

LogicalResult trainWithTool(const std::string &tool, ModuleOp student,
                            ModuleOp teacher, const lighten::RecoveryOptions &r,
                            std::string &note) {
  llvm::SmallString<128> dir;
  if (llvm::sys::fs::createUniqueDirectory("qsim-lighten-train", dir))
    return student.emitError() << "recover=train: no temporary directory";
  auto path = [&](const char *name) { return (dir + "/" + name).str(); };
  std::string error;
  LogicalResult result = success();
  if (failed(saveModel(student, path("student.mlirbc"), true, error)) ||
      failed(saveModel(teacher, path("original.mlirbc"), true, error))) {
    result = student.emitError() << "recover=train: " << error;
  } else {
    std::vector<std::string> args = {tool,
                                     path("student.mlirbc"),
                                     "--teacher",
                                     path("original.mlirbc"),
                                     "--images",
                                     r.images,
                                     "--steps",
                                     std::to_string(r.steps),
                                     "--batch",
                                     std::to_string(r.batch),
                                     "--threads",
                                     std::to_string(r.threads),
                                     "-q",
                                     "--log",
                                     path("log.csv"),
                                     "-o",
                                     path("trained.mlirbc")};
    std::vector<llvm::StringRef> argv(args.begin(), args.end());
    std::string messages = path("messages.txt");
    std::optional<llvm::StringRef> redirects[] = {std::nullopt, messages,
                                                  messages};
    int code = llvm::sys::ExecuteAndWait(tool, argv, std::nullopt, redirects);
    ModelLoadOptions lo;
    lo.path = path("trained.mlirbc");
    OwningOpRef<ModuleOp> trained =
        code == 0 ? loadModel(student.getContext(), lo) : nullptr;
    if (!trained) {
      result = student.emitError()
               << "recover=train: qsim-train failed (exit " << code << "):\n"
               << tail(messages);
    } else {
      // The trained weights (and qsim.training) replace the student's.
      student.getBodyRegion().takeBody(trained->getBodyRegion());
      student->setAttrs(trained->getOperation()->getAttrDictionary());
      note = lossNote(path("log.csv"));
    }
  }
  llvm::sys::fs::remove_directories(dir);
  return result;
}

} // namespace

void registerTrainRecovery(const char *argv0) {
  std::string self = llvm::sys::fs::getMainExecutable(
      argv0, reinterpret_cast<void *>(&registerTrainRecovery));
  std::string tool = (llvm::sys::path::parent_path(self) + "/qsim-train").str();
  lighten::setRecoveryHook([tool](ModuleOp student, ModuleOp teacher,
                                  const lighten::RecoveryOptions &r,
                                  std::string &note) -> LogicalResult {
    if (!llvm::sys::fs::can_execute(tool))
      return student.emitError()
             << "recover=train: no qsim-train beside qsim-opt ('" << tool
             << "')";
    return trainWithTool(tool, student, teacher, r, note);
  });
}

} // namespace qsim
