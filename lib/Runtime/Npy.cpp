//===- Npy.cpp - NumPy .npy files for tensors ----------------------------===//
//
// The golden data of ../shared/golden are .npy files (version 1.0, '<f4',
// C order, shape (C, H, W), header padded to 64 bytes). We write exactly that
// layout so our dumps can be compared byte for byte with Darknet's, and read
// the float32 subset of the format back.
//
//===----------------------------------------------------------------------===//

#include "qsim/Runtime/AtomicFile.h"
#include "qsim/Runtime/Tensor.h"

#include <atomic>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>

using namespace qsim::rt;

namespace {

const char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;

bool hostIsLittleEndian() {
  const uint32_t one = 1;
  unsigned char b;
  std::memcpy(&b, &one, 1);
  return b == 1;
}

void byteSwap32(unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i += 4) {
    std::swap(p[i], p[i + 3]);
    std::swap(p[i + 1], p[i + 2]);
  }
}

std::string errnoText() { return std::strerror(errno); }

/// A cursor over the Python literal dict of a .npy header, e.g.
///   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 224, 224), }
/// Only the value kinds the format uses are understood: strings, True/False
/// and tuples of non-negative integers.
class HeaderParser {
public:
  explicit HeaderParser(const std::string &text) : s(text) {}

  void skipSpace() {
    while (pos < s.size() && std::isspace((unsigned char)s[pos]))
      ++pos;
  }
  bool consume(char c) {
    skipSpace();
    if (pos < s.size() && s[pos] == c) {
      ++pos;
      return true;
    }
    return false;
  }
  bool peek(char c) {
    skipSpace();
    return pos < s.size() && s[pos] == c;
  }
  bool parseString(std::string &out) {
    skipSpace();
    if (pos >= s.size() || (s[pos] != '\'' && s[pos] != '"'))
      return false;
    char quote = s[pos++];
    size_t end = s.find(quote, pos);
    if (end == std::string::npos)
      return false;
    out = s.substr(pos, end - pos);
    pos = end + 1;
    return true;
  }
  bool parseBool(bool &out) {
    skipSpace();
    if (s.compare(pos, 4, "True") == 0) {
      out = true;
      pos += 4;
      return true;
    }
    if (s.compare(pos, 5, "False") == 0) {
      out = false;
      pos += 5;
      return true;
    }
    return false;
  }
  bool parseShape(std::vector<int64_t> &dims) {
    if (!consume('('))
      return false;
    while (!consume(')')) {
      skipSpace();
      if (pos >= s.size() || !std::isdigit((unsigned char)s[pos]))
        return false;
      int64_t v = 0;
      while (pos < s.size() && std::isdigit((unsigned char)s[pos])) {
        if (v > (INT64_MAX - 9) / 10)
          return false;
        v = v * 10 + (s[pos++] - '0');
      }
      // Python long literals of old NumPy versions ("3L").
      if (pos < s.size() && (s[pos] == 'L' || s[pos] == 'l'))
        ++pos;
      dims.push_back(v);
      if (!consume(',') && !peek(')'))
        return false;
    }
    return true;
  }
  bool atEnd() {
    skipSpace();
    return pos == s.size();
  }

private:
  const std::string &s;
  size_t pos = 0;
};

std::string shapeText(const std::vector<int64_t> &dims) {
  std::string s = "(";
  for (size_t i = 0; i < dims.size(); ++i)
    s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + (dims.size() == 1 ? ",)" : ")");
}

/// The header dict without its padding, for error messages.
std::string trimmed(const std::string &s) {
  size_t end = s.find_last_not_of(" \t\r\n");
  return end == std::string::npos ? "" : s.substr(0, end + 1);
}

} // namespace

bool qsim::rt::writeNpyArray(const std::string &path,
                             const std::vector<int64_t> &dims,
                             const float *data, std::string &error) {
  uint64_t numel = 1;
  for (int64_t d : dims) {
    if (d < 0) {
      error = "cannot write '" + path + "': negative dimension";
      return false;
    }
    numel *= (uint64_t)d;
  }
  if (numel > 0 && !data) {
    error = "cannot write '" + path + "': tensor has no data";
    return false;
  }
  std::string dict =
      "{'descr': '<f4', 'fortran_order': False, 'shape': " + shapeText(dims) +
      ", }";
  // Magic (6) + version (2) + header length (2) + dict + padding + '\n' is a
  // multiple of 64, as NumPy >= 1.14 writes it, so that the data is aligned.
  size_t unpadded = kMagicLen + 2 + 2 + dict.size() + 1;
  size_t total = (unpadded + 63) / 64 * 64;
  size_t headerLen = total - kMagicLen - 4;
  if (headerLen > 0xFFFF) {
    error = "cannot write '" + path + "': header too long";
    return false;
  }
  std::string header = dict;
  header.append(headerLen - dict.size() - 1, ' ');
  header.push_back('\n');

  std::vector<unsigned char> file(total + numel * sizeof(float));
  std::memcpy(file.data(), kMagic, kMagicLen);
  file[6] = 1; // version 1.0
  file[7] = 0;
  file[8] = (unsigned char)(headerLen & 0xFF);
  file[9] = (unsigned char)(headerLen >> 8);
  std::memcpy(file.data() + 10, header.data(), header.size());
  unsigned char *payload = file.data() + total;
  if (numel)
    std::memcpy(payload, data, numel * sizeof(float));
  if (!hostIsLittleEndian())
    byteSwap32(payload, numel * sizeof(float));
  return writeFileAtomically(path, file.data(), file.size(), error);
}

bool qsim::rt::writeNpy(const std::string &path, const Tensor &t,
                        std::string &error) {
  if (t.c() < 0 || t.h() < 0 || t.w() < 0 || (t.numel() > 0 && t.empty())) {
    error = "cannot write '" + path + "': tensor has no data";
    return false;
  }
  std::vector<int64_t> dims = {t.c(), t.h(), t.w()};
  if (t.numel() == 0 || t.dtype() == DType::F32)
    return writeNpyArray(path, dims, t.f32(), error);
  std::vector<float> values = t.toFloat();
  return writeNpyArray(path, dims, values.data(), error);
}

bool qsim::rt::readNpyArray(const std::string &path, std::vector<int64_t> &dims,
                            std::vector<float> &data, std::string &error) {
  auto fail = [&](const std::string &why) {
    error = "'" + path + "': " + why;
    return false;
  };
  FILE *f = std::fopen(path.c_str(), "rb");
  if (!f)
    return fail("cannot open: " + errnoText());
  // Closes the file on every return path.
  std::unique_ptr<FILE, int (*)(FILE *)> closer(f, std::fclose);

  struct stat st;
  if (fstat(fileno(f), &st) != 0)
    return fail("cannot stat: " + errnoText());
  if (!S_ISREG(st.st_mode))
    return fail("not a regular file");
  const uint64_t fileSize = (uint64_t)st.st_size;

  unsigned char pre[12];
  if (fileSize < 10 || std::fread(pre, 1, 8, f) != 8 ||
      std::memcmp(pre, kMagic, kMagicLen) != 0)
    return fail("not a NumPy .npy file (bad magic)");
  int major = pre[6], minor = pre[7];
  uint64_t headerLen;
  size_t prefix;
  if (major == 1) {
    if (std::fread(pre + 8, 1, 2, f) != 2)
      return fail("truncated header");
    headerLen = pre[8] | (uint64_t)pre[9] << 8;
    prefix = 10;
  } else if (major == 2) {
    if (std::fread(pre + 8, 1, 4, f) != 4)
      return fail("truncated header");
    headerLen = pre[8] | (uint64_t)pre[9] << 8 | (uint64_t)pre[10] << 16 |
                (uint64_t)pre[11] << 24;
    prefix = 12;
  } else {
    return fail("unsupported .npy format version " + std::to_string(major) +
                "." + std::to_string(minor) + " (only 1.0 and 2.0)");
  }
  if (minor != 0)
    return fail("unsupported .npy format version " + std::to_string(major) +
                "." + std::to_string(minor) + " (only 1.0 and 2.0)");
  if (prefix + headerLen > fileSize)
    return fail("truncated header (" + std::to_string(headerLen) +
                " bytes announced, file has " + std::to_string(fileSize) + ")");
  std::string header(headerLen, '\0');
  if (headerLen && std::fread(&header[0], 1, headerLen, f) != headerLen)
    return fail("cannot read header: " + errnoText());

  HeaderParser p(header);
  std::string descr;
  bool fortranOrder = false;
  bool haveDescr = false, haveOrder = false, haveShape = false;
  dims.clear();
  if (!p.consume('{'))
    return fail("malformed header: " + trimmed(header));
  while (!p.consume('}')) {
    std::string key;
    if (!p.parseString(key) || !p.consume(':'))
      return fail("malformed header: " + trimmed(header));
    bool ok;
    if (key == "descr") {
      ok = p.parseString(descr);
      haveDescr = true;
    } else if (key == "fortran_order") {
      ok = p.parseBool(fortranOrder);
      haveOrder = true;
    } else if (key == "shape") {
      ok = p.parseShape(dims);
      haveShape = true;
    } else {
      return fail("unexpected key '" + key + "' in header");
    }
    if (!ok)
      return fail("malformed value of '" + key +
                  "' in header: " + trimmed(header));
    if (!p.consume(',') && !p.peek('}'))
      return fail("malformed header: " + trimmed(header));
  }
  if (!p.atEnd())
    return fail("malformed header: " + trimmed(header));
  if (!haveDescr || !haveOrder || !haveShape)
    return fail("header lacks 'descr', 'fortran_order' or 'shape'");
  if (descr != "<f4")
    return fail("dtype '" + descr +
                "' is not supported (only little-endian float32 '<f4')");
  if (fortranOrder)
    return fail("Fortran-order arrays are not supported (only C order)");
  if (dims.empty() || dims.size() > 8)
    return fail("shape has " + std::to_string(dims.size()) +
                " dimensions (1 to 8 are supported)");
  // Multiply the dims out with an overflow check: a corrupt header must
  // give an error, not a huge allocation.
  const uint64_t dataBytes = fileSize - prefix - headerLen;
  uint64_t numel = 1;
  for (int64_t d : dims) {
    if (d != 0 && numel > (uint64_t)INT64_MAX / 4 / (uint64_t)d)
      return fail("shape " + shapeText(dims) + " is too large");
    numel *= (uint64_t)d;
  }
  if (numel * 4 > dataBytes)
    return fail("truncated data: shape " + shapeText(dims) + " needs " +
                std::to_string(numel * 4) + " bytes, the file has " +
                std::to_string(dataBytes));
  if (numel * 4 != dataBytes)
    return fail(std::to_string(dataBytes - numel * 4) +
                " unexpected bytes after the data of shape " + shapeText(dims));

  data.assign(numel, 0.0f);
  if (numel && std::fread(data.data(), 4, numel, f) != numel)
    return fail("cannot read data: " + errnoText());
  if (!hostIsLittleEndian())
    byteSwap32(reinterpret_cast<unsigned char *>(data.data()), numel * 4);
  return true;
}

bool qsim::rt::readNpy(const std::string &path, Tensor &out,
                       std::string &error) {
  std::vector<int64_t> dims;
  std::vector<float> data;
  if (!readNpyArray(path, dims, data, error))
    return false;
  if (dims.size() > 3) {
    error = "'" + path + "': shape has " + std::to_string(dims.size()) +
            " dimensions (only 1 to 3 are supported)";
    return false;
  }
  int64_t c = 1, h = 1, w = 1;
  if (dims.size() == 1) {
    c = dims[0];
  } else if (dims.size() == 2) {
    h = dims[0];
    w = dims[1];
  } else {
    c = dims[0];
    h = dims[1];
    w = dims[2];
  }
  Tensor t(DType::F32, c, h, w);
  if (!data.empty())
    std::memcpy(t.raw(), data.data(), data.size() * sizeof(float));
  out = std::move(t);
  return true;
}
