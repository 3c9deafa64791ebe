// The bearer tokens attnd accepts, read from a file (one token per line, as a mounted Kubernetes
// Secret gives it) and re-read while serving, so tokens rotate without a restart. Only SHA-256
// digests of the tokens are kept, and a presented token is compared with every digest in
// constant time, so neither the tokens nor their lengths leak through timing.
//
//   auto tokens = TokenFile::Open("/etc/attnd/tokens", absl::Seconds(10));
//   if (!tokens.ok()) ...                  // names server.auth_token_file and the path
//   bool ok = (*tokens)->Accepts(token, absl::Now());
#ifndef ATTND_SERVER_SECURITY_TOKEN_FILE_H_
#define ATTND_SERVER_SECURITY_TOKEN_FILE_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace attnd::server::security {

// The text of a token file as tokens: one per line; blank lines and lines whose first non-blank
// character is '#' are skipped; surrounding whitespace (and a final newline) is dropped. A token
// is visible ASCII (0x21..0x7e) since it travels in an HTTP/2 header. Errors name the line, never
// the token. A text with no token is an error too: it would refuse every call.
absl::StatusOr<std::vector<std::string>> ParseTokens(absl::string_view text);

class TokenFile {
 public:
  using Digest = std::array<uint8_t, 32>;  // SHA-256

  // Reads `path` now. Errors (INVALID_ARGUMENT) begin with `server.auth_token_file = "PATH"`:
  // unreadable, or ParseTokens' complaint. `reload_interval` zero: never re-read.
  static absl::StatusOr<std::unique_ptr<TokenFile>> Open(const std::string& path,
                                                         absl::Duration reload_interval,
                                                         absl::Time now = absl::Now());

  TokenFile(const TokenFile&) = delete;
  TokenFile& operator=(const TokenFile&) = delete;

  // Whether `token` is one of the file's tokens. When `reload_interval` has passed since the
  // last read, re-reads the file first; a re-read that fails (file missing mid-rotation, no
  // token left) keeps the previous tokens and logs a warning once until a read succeeds again.
  bool Accepts(absl::string_view token, absl::Time now);

  // The number of tokens held now.
  int size() const;
  const std::string& path() const { return path_; }

 private:
  TokenFile(std::string path, absl::Duration reload_interval)
      : path_(std::move(path)), reload_interval_(reload_interval) {}

  // Reads and parses the file into digests; the error names the key and the path.
  absl::StatusOr<std::vector<Digest>> Read() const;
  void MaybeReload(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const std::string path_;
  const absl::Duration reload_interval_;

  mutable absl::Mutex mu_;
  std::vector<Digest> digests_ ABSL_GUARDED_BY(mu_);
  absl::Time last_read_ ABSL_GUARDED_BY(mu_);
  bool reload_failing_ ABSL_GUARDED_BY(mu_) = false;  // a failure was logged, no success since
};

}  // namespace attnd::server::security

#endif  // ATTND_SERVER_SECURITY_TOKEN_FILE_H_
