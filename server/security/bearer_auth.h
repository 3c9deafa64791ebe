// Bearer-token authentication of one call: the values of its "authorization" metadata (gRPC
// lower-cases keys) checked against the TokenFile. Pure logic, no gRPC types, so every way to be
// refused is unit-tested; the service calls it first thing in each attnd.v1 method.
#ifndef ATTND_SERVER_SECURITY_BEARER_AUTH_H_
#define ATTND_SERVER_SECURITY_BEARER_AUTH_H_

#include <optional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "server/security/token_file.h"

namespace attnd::server::security {

inline constexpr char kAuthorizationKey[] = "authorization";

// The token of "Bearer <token>" (RFC 6750: the scheme in any case, then one or more spaces);
// nullopt for any other form, an empty token included.
std::optional<absl::string_view> BearerToken(absl::string_view header_value);

// OK when exactly one authorization value carries a token `tokens` accepts; else
// UNAUTHENTICATED saying which of these it was (never echoing what was sent):
//   none:        "missing authorization metadata; send \"authorization: Bearer <token>\""
//   several, or not "Bearer <token>": "malformed authorization metadata; ..."
//   unknown token: "invalid bearer token"
absl::Status CheckBearer(absl::Span<const absl::string_view> authorization_values,
                         TokenFile* tokens, absl::Time now);

}  // namespace attnd::server::security

#endif  // ATTND_SERVER_SECURITY_BEARER_AUTH_H_
