//===- Accounts.h - passwords and tokens for qsim-studio --------*- C++ -*-===//
//
// Passwords are stored as libsodium argon2id strings (parameters and salt
// inside). Login and CSRF tokens are 256-bit random values; the database
// keeps only a digest of the login token, so a leaked database file does not
// log anyone in.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_STUDIO_ACCOUNTS_H
#define QSIM_STUDIO_ACCOUNTS_H

#include <cstddef>
#include <optional>
#include <string>

namespace qsim::studio {

/// Initializes libsodium; false when it cannot be (no entropy source).
bool initCrypto();

/// argon2id with libsodium's interactive limits. memoryKiB lowers the memory
/// cost (tests); 0 keeps the library's interactive default (64 MiB).
std::optional<std::string> hashPassword(const std::string &password,
                                        size_t memoryKiB = 0);
bool verifyPassword(const std::string &hash, const std::string &password);

/// A fresh random token (64 hex digits).
std::string newToken();
/// The digest under which a login token is stored (64 hex digits).
std::string tokenDigest(const std::string &token);
/// Constant-time comparison of two tokens.
bool tokensEqual(const std::string &a, const std::string &b);

/// Why a user name or password is unacceptable ("" when acceptable).
std::string checkUserName(const std::string &name);
std::string checkPassword(const std::string &password);

} // namespace qsim::studio

#endif
