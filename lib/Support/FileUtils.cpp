//===- FileUtils.cpp - never leave a half-written output -----------------===//

#include "qsim/Support/FileUtils.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

using namespace mlir;

LogicalResult qsim::writeFileAtomically(
    llvm::StringRef path,
    llvm::function_ref<LogicalResult(llvm::raw_ostream &)> writer,
    std::string &error) {
  // A write error on a stream left set would end the tool in "LLVM ERROR:
  // IO failure" at exit: report it and clear it.
  auto checkStream = [&](llvm::raw_fd_ostream &os, LogicalResult r) {
    os.flush();
    if (os.has_error()) {
      error = "cannot write '" + path.str() + "': " + os.error().message();
      os.clear_error();
      return failure();
    }
    return r;
  };
  if (path == "-")
    return checkStream(llvm::outs(), writer(llvm::outs()));
  // A device or pipe (/dev/null, /dev/stdout, a FIFO) is written in place:
  // renaming a temporary file over it would replace the device.
  llvm::sys::fs::file_status status;
  if (!llvm::sys::fs::status(path, status) && llvm::sys::fs::exists(status) &&
      status.type() != llvm::sys::fs::file_type::regular_file &&
      status.type() != llvm::sys::fs::file_type::directory_file) {
    std::error_code ec;
    llvm::raw_fd_ostream os(path, ec);
    if (ec) {
      error = "cannot open '" + path.str() + "': " + ec.message();
      return failure();
    }
    return checkStream(os, writer(os));
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
