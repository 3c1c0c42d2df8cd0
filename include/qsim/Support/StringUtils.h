//===- StringUtils.h - printf-style formatting ------------------*- C++ -*-===//
#ifndef QSIM_SUPPORT_STRINGUTILS_H
#define QSIM_SUPPORT_STRINGUTILS_H
#include <string>
namespace qsim {
/// printf into a std::string (tables and reports).
std::string strprintf(const char *format, ...)
    __attribute__((format(printf, 1, 2)));
} // namespace qsim
#endif
