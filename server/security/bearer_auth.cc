#include "server/security/bearer_auth.h"

#include "absl/strings/match.h"
#include "absl/strings/strip.h"

namespace attnd::server::security {

std::optional<absl::string_view> BearerToken(absl::string_view value) {
  constexpr absl::string_view kScheme = "bearer";
  if (value.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme) ||
      value[kScheme.size()] != ' ') {
    return std::nullopt;
  }
  value.remove_prefix(kScheme.size());
  while (absl::ConsumePrefix(&value, " ")) {
  }
  // gRPC trims trailing whitespace from metadata values already; a token has no inner spaces.
  if (value.empty() || value.find(' ') != absl::string_view::npos) return std::nullopt;
  return value;
}

absl::Status CheckBearer(absl::Span<const absl::string_view> values, TokenFile* tokens,
                         absl::Time now) {
  if (values.empty()) {
    return absl::UnauthenticatedError(
        "missing authorization metadata; send \"authorization: Bearer <token>\"");
  }
  std::optional<absl::string_view> token;
  if (values.size() == 1) token = BearerToken(values[0]);
  if (!token.has_value()) {
    return absl::UnauthenticatedError(
        "malformed authorization metadata; want exactly one \"authorization: Bearer <token>\"");
  }
  if (!tokens->Accepts(*token, now)) return absl::UnauthenticatedError("invalid bearer token");
  return absl::OkStatus();
}

}  // namespace attnd::server::security
