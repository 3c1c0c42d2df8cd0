//===- WeightsFile.cpp - Darknet .weights header --------------------------===//

#include "qsim/Target/Darknet/WeightsFile.h"

#include "llvm/Support/Endian.h"

using namespace qsim;
using namespace qsim::darknet;
namespace endian = llvm::support::endian;

bool WeightsHeader::seenIs64(Flavor flavor) const {
  // In 64 bits: a garbled header must not overflow (Darknet's int would).
  bool v2 = (int64_t)major * 10 + minor >= 2;
  if (flavor == Flavor::PJReddie)
    return v2 && major < 1000 && minor < 1000;
  return v2;
}

bool qsim::darknet::readWeightsHeader(llvm::ArrayRef<char> data, Flavor flavor,
                                      WeightsHeader &h, std::string &error) {
  if (data.size() < 12) {
    error = "header truncated: expected at least 16 bytes, file has " +
            std::to_string(data.size()) + " bytes";
    return false;
  }
  h.major = endian::read32le(data.data());
  h.minor = endian::read32le(data.data() + 4);
  h.revision = endian::read32le(data.data() + 8);
  size_t need = h.size(flavor);
  if (data.size() < need) {
    error = "header truncated: version " + std::to_string(h.major) + "." +
            std::to_string(h.minor) + " needs a " + std::to_string(need) +
            "-byte header, file has " + std::to_string(data.size()) + " bytes";
    return false;
  }
  h.seen = need == 20 ? endian::read64le(data.data() + 12)
                      : endian::read32le(data.data() + 12);
  return true;
}

void qsim::darknet::writeWeightsHeader(llvm::raw_ostream &os,
                                       const WeightsHeader &h, Flavor flavor) {
  char buf[20];
  endian::write32le(buf, h.major);
  endian::write32le(buf + 4, h.minor);
  endian::write32le(buf + 8, h.revision);
  if (h.seenIs64(flavor)) {
    endian::write64le(buf + 12, h.seen);
    os.write(buf, 20);
  } else {
    endian::write32le(buf + 12, (uint32_t)h.seen);
    os.write(buf, 16);
  }
}
