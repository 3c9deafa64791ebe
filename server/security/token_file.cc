#include "server/security/token_file.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/logging/logging.h"

namespace attnd::server::security {
namespace {

using logging::F;

TokenFile::Digest Sha256(absl::string_view text) {
  TokenFile::Digest digest{};
  unsigned int length = 0;
  // EVP_Digest cannot fail for SHA-256 on a valid buffer; a zero digest would match nothing.
  EVP_Digest(text.data(), text.size(), digest.data(), &length, EVP_sha256(), nullptr);
  return digest;
}

std::string KeyAndPath(const std::string& path) {
  return absl::StrCat("server.auth_token_file = \"", path, "\"");
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ParseTokens(absl::string_view text) {
  std::vector<std::string> tokens;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    for (char c : line) {
      if (c < 0x21 || c > 0x7e) {
        return absl::InvalidArgumentError(absl::StrCat(
            "line ", line_number,
            ": a token must be visible ASCII without spaces (it travels in an HTTP/2 header)"));
      }
    }
    tokens.emplace_back(line);
  }
  if (tokens.empty()) {
    return absl::InvalidArgumentError(
        "no token in it (one per line; blank lines and '#' comments are skipped)");
  }
  return tokens;
}

absl::StatusOr<std::unique_ptr<TokenFile>> TokenFile::Open(const std::string& path,
                                                           absl::Duration reload_interval,
                                                           absl::Time now) {
  std::unique_ptr<TokenFile> file(new TokenFile(path, reload_interval));
  absl::StatusOr<std::vector<Digest>> digests = file->Read();
  if (!digests.ok()) return digests.status();
  absl::MutexLock lock(&file->mu_);
  file->digests_ = *std::move(digests);
  file->last_read_ = now;
  return file;
}

absl::StatusOr<std::vector<TokenFile::Digest>> TokenFile::Read() const {
  std::ifstream in(path_, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(KeyAndPath(path_), ": cannot read: ", std::strerror(errno)));
  }
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<std::vector<std::string>> tokens = ParseTokens(text.str());
  if (!tokens.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(KeyAndPath(path_), ": ", tokens.status().message()));
  }
  std::vector<Digest> digests;
  int short_tokens = 0;
  for (std::string& token : *tokens) {
    if (token.size() < 16) ++short_tokens;
    digests.push_back(Sha256(token));
    OPENSSL_cleanse(token.data(), token.size());
  }
  if (short_tokens > 0) {
    logging::Log(logging::Level::kWarning, "auth_tokens_short",
                 {F("path", path_), F("tokens_under_16_chars", short_tokens),
                  F("hint", "use long random tokens, e.g. openssl rand -hex 32")});
  }
  return digests;
}

void TokenFile::MaybeReload(absl::Time now) {
  if (reload_interval_ <= absl::ZeroDuration() || now - last_read_ < reload_interval_) return;
  last_read_ = now;
  absl::StatusOr<std::vector<Digest>> digests = Read();
  if (!digests.ok()) {
    if (!reload_failing_) {
      logging::Log(logging::Level::kWarning, "auth_token_file_reload_failed",
                   {F("error", std::string(digests.status().message())),
                    F("kept_tokens", static_cast<int64_t>(digests_.size()))});
    }
    reload_failing_ = true;
    return;
  }
  if (reload_failing_ || *digests != digests_) {
    logging::Log(logging::Level::kInfo, "auth_tokens_loaded",
                 {F("path", path_), F("tokens", static_cast<int64_t>(digests->size()))});
  }
  reload_failing_ = false;
  digests_ = *std::move(digests);
}

bool TokenFile::Accepts(absl::string_view token, absl::Time now) {
  const Digest presented = Sha256(token);
  absl::MutexLock lock(&mu_);
  MaybeReload(now);
  // Every digest is compared, whatever matched earlier: the time taken depends only on how many
  // tokens there are.
  int matches = 0;
  for (const Digest& digest : digests_) {
    matches |= CRYPTO_memcmp(digest.data(), presented.data(), digest.size()) == 0;
  }
  return matches != 0 && !token.empty();
}

int TokenFile::size() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(digests_.size());
}

}  // namespace attnd::server::security
