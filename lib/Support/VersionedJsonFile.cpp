//===- VersionedJsonFile.cpp - qsim's mergeable JSON files ----------------===//

#include "qsim/Support/VersionedJsonFile.h"
#include "qsim/Support/FileUtils.h"

#include "llvm/Support/MemoryBuffer.h"

using namespace qsim;
using nlohmann::json;

bool qsim::readVersionedJsonFile(const std::string &path,
                                 const VersionedJsonKind &kind, json &root,
                                 std::string &error) {
  auto buf = llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buf) {
    error = std::string("cannot read ") + kind.noun + " '" + path +
            "': " + buf.getError().message();
    return false;
  }
  root = json::parse((*buf)->getBuffer().begin(), (*buf)->getBuffer().end(),
                     nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) {
    error = std::string(kind.noun) + " '" + path +
            "' is truncated or not JSON (an interrupted copy? " + kind.remedy +
            ")";
    return false;
  }
  if (!root.is_object() || root.value("format", "") != kind.format) {
    error = "'" + path + "' is not " + kind.description;
    return false;
  }
  int version = root.value("version", 0);
  if (version != kind.version) {
    error = std::string(kind.noun) + " '" + path + "' has format version " +
            std::to_string(version) + ", this build reads " +
            std::to_string(kind.version);
    return false;
  }
  return true;
}

bool qsim::writeVersionedJsonFile(const std::string &path,
                                  const VersionedJsonKind &kind, json root,
                                  std::string &error) {
  root["format"] = kind.format;
  root["version"] = kind.version;
  return mlir::succeeded(writeFileAtomically(
      path,
      [&](llvm::raw_ostream &os) {
        os << root.dump() << "\n";
        return mlir::success();
      },
      error));
}
