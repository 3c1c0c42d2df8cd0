//===- Npy.cpp - NumPy .npy files for tensors ----------------------------===//
//
// The golden data of ../shared/golden are .npy files (version 1.0, '<f4',
// C order, shape (C, H, W), header padded to 64 bytes). We write exactly that
// layout so our dumps can be compared byte for byte with Darknet's, and read
// the float32 subset of the format back.
//
//===----------------------------------------------------------------------===//

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

/// Writes `size` bytes to `path` through a temporary file in the same
/// directory that is renamed over `path` only when everything was written, so
/// a reader (or a crash) never sees a half-written file. The temporary is
/// created with mode 0666 so that the umask applies as for a normal file.
bool writeFileAtomically(const std::string &path, const void *data, size_t size,
                         std::string &error) {
  static std::atomic<unsigned> counter{0};
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    tmp = path + ".tmp." + std::to_string(getpid()) + "." +
          std::to_string(counter++);
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST)
      break;
  }
  if (fd < 0) {
    error = "cannot create '" + tmp + "': " + errnoText();
    return false;
  }
  const char *p = static_cast<const char *>(data);
  size_t left = size;
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      error = "cannot write '" + path + "': " + errnoText();
      ::close(fd);
      ::unlink(tmp.c_str());
      return false;
    }
    p += n;
    left -= (size_t)n;
  }
  // close() can report a delayed write error (e.g. on NFS or a full disk).
  if (::close(fd) != 0) {
    error = "cannot write '" + path + "': " + errnoText();
    ::unlink(tmp.c_str());
    return false;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    error = "cannot rename '" + tmp + "' to '" + path + "': " + errnoText();
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

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

bool qsim::rt::writeNpy(const std::string &path, const Tensor &t,
                        std::string &error) {
  if (t.c() < 0 || t.h() < 0 || t.w() < 0 || (t.numel() > 0 && t.empty())) {
    error = "cannot write '" + path + "': tensor has no data";
    return false;
  }
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (" +
                     std::to_string(t.c()) + ", " + std::to_string(t.h()) +
                     ", " + std::to_string(t.w()) + "), }";
  // Magic (6) + version (2) + header length (2) + dict + padding + '\n' is a
  // multiple of 64, as NumPy >= 1.14 writes it, so that the data is aligned.
  size_t unpadded = kMagicLen + 2 + 2 + dict.size() + 1;
  size_t total = (unpadded + 63) / 64 * 64;
  size_t headerLen = total - kMagicLen - 4;
  if (headerLen > 0xFFFF) { // impossible for three dims, but keep v1.0 valid
    error = "cannot write '" + path + "': header too long";
    return false;
  }
  std::string header = dict;
  header.append(headerLen - dict.size() - 1, ' ');
  header.push_back('\n');

  std::vector<unsigned char> file(total + t.numel() * sizeof(float));
  std::memcpy(file.data(), kMagic, kMagicLen);
  file[6] = 1; // version 1.0
  file[7] = 0;
  file[8] = (unsigned char)(headerLen & 0xFF);
  file[9] = (unsigned char)(headerLen >> 8);
  std::memcpy(file.data() + 10, header.data(), header.size());

  unsigned char *payload = file.data() + total;
  if (t.numel() == 0) {
    // Nothing to copy (and t.raw() may be null).
  } else if (t.dtype() == DType::F32) {
    std::memcpy(payload, t.raw(), t.bytes());
  } else {
    std::vector<float> values = t.toFloat();
    std::memcpy(payload, values.data(), values.size() * sizeof(float));
  }
  if (!hostIsLittleEndian())
    byteSwap32(payload, t.numel() * sizeof(float));
  return writeFileAtomically(path, file.data(), file.size(), error);
}

bool qsim::rt::readNpy(const std::string &path, Tensor &out,
                       std::string &error) {
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
  std::vector<int64_t> dims;
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
  if (dims.empty() || dims.size() > 3)
    return fail("shape has " + std::to_string(dims.size()) +
                " dimensions (only 1 to 3 are supported)");

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

  Tensor t(DType::F32, c, h, w);
  if (numel && std::fread(t.raw(), 4, numel, f) != numel)
    return fail("cannot read data: " + errnoText());
  if (!hostIsLittleEndian())
    byteSwap32(static_cast<unsigned char *>(t.raw()), numel * 4);
  out = std::move(t);
  return true;
}
