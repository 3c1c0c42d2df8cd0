//===- Accounts.cpp - passwords and tokens for qsim-studio ----------------===//

#include "qsim/Studio/Accounts.h"

#include <cctype>
#include <sodium.h>

namespace qsim::studio {

bool initCrypto() { return sodium_init() >= 0; }

std::optional<std::string> hashPassword(const std::string &password,
                                        size_t memoryKiB) {
  char hash[crypto_pwhash_STRBYTES];
  // OPSLIMIT_INTERACTIVE is t = 2; the memory comes from the server's
  // configuration (0: libsodium's interactive 64 MiB).
  size_t memory =
      memoryKiB ? memoryKiB * 1024 : crypto_pwhash_MEMLIMIT_INTERACTIVE;
  if (crypto_pwhash_str_alg(hash, password.data(), password.size(),
                            crypto_pwhash_OPSLIMIT_INTERACTIVE, memory,
                            crypto_pwhash_ALG_ARGON2ID13) != 0)
    return std::nullopt; // out of memory
  return std::string(hash);
}

bool verifyPassword(const std::string &hash, const std::string &password) {
  return crypto_pwhash_str_verify(hash.c_str(), password.data(),
                                  password.size()) == 0;
}

static std::string toHex(const unsigned char *bytes, size_t n) {
  std::string hex(2 * n + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), bytes, n);
  hex.pop_back();
  return hex;
}

std::string newToken() {
  unsigned char bytes[32];
  randombytes_buf(bytes, sizeof bytes);
  return toHex(bytes, sizeof bytes);
}

std::string tokenDigest(const std::string &token) {
  unsigned char digest[32];
  crypto_generichash(digest, sizeof digest,
                     reinterpret_cast<const unsigned char *>(token.data()),
                     token.size(), nullptr, 0);
  return toHex(digest, sizeof digest);
}

bool tokensEqual(const std::string &a, const std::string &b) {
  return a.size() == b.size() && !a.empty() &&
         sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string checkUserName(const std::string &name) {
  if (name.size() < 3 || name.size() > 32)
    return "a user name has 3 to 32 characters";
  for (char c : name)
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)) || c == '_' || c == '-'))
      return "a user name has only lower-case letters, digits, '_' and '-'";
  return "";
}

std::string checkPassword(const std::string &password) {
  if (password.size() < 8)
    return "a password has at least 8 characters";
  if (password.size() > 256)
    return "a password has at most 256 characters";
  return "";
}

} // namespace qsim::studio
