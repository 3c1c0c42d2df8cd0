//===- FileUtils.cpp - never leave a half-written output -----------------===//

#include "qsim/Support/FileUtils.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

using namespace mlir;

LogicalResult qsim::writeFileAtomically(
    llvm::StringRef path,
    llvm::function_ref<LogicalResult(llvm::raw_ostream &)> writer,
    std::string &error) {
  if (path == "-") {
    LogicalResult r = writer(llvm::outs());
    llvm::outs().flush();
    return r;
  }
  auto temp = llvm::sys::fs::TempFile::create(path + ".tmp-%%%%%%");
  if (!temp) {
    error = "cannot create '" + path.str() +
            "': " + llvm::toString(temp.takeError());
    return failure();
  }
  LogicalResult result = success();
  {
    llvm::raw_fd_ostream os(temp->FD, /*shouldClose=*/false);
    result = writer(os);
    os.flush();
    if (os.has_error()) {
      error = "cannot write '" + path.str() + "': " + os.error().message();
      os.clear_error();
      result = failure();
    }
  }
  if (failed(result)) {
    llvm::consumeError(temp->discard());
    return failure();
  }
  if (llvm::Error e = temp->keep(path)) {
    error =
        "cannot write '" + path.str() + "': " + llvm::toString(std::move(e));
    return failure();
  }
  return success();
}
