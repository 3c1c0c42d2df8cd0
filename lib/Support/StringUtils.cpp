//===- StringUtils.cpp - printf-style formatting -------------------------===//
#include "qsim/Support/StringUtils.h"
#include <cstdarg>
#include <cstdio>
#include <vector>

std::string qsim::strprintf(const char *format, ...) {
  va_list ap;
  va_start(ap, format);
  va_list copy;
  va_copy(copy, ap);
  int n = vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  std::string out;
  if (n > 0) {
    std::vector<char> buf(n + 1);
    vsnprintf(buf.data(), buf.size(), format, ap);
    out.assign(buf.data(), n);
  }
  va_end(ap);
  return out;
}
