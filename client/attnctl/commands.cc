// What the subcommands share: the client and error lines.
#include "client/attnctl/commands.h"

#include <string>
#include <utility>

namespace attnd::attnctl {

absl::StatusOr<std::unique_ptr<client::Client>> MakeClient(const GlobalFlags& global,
                                                           int channels) {
  client::ClientOptions options;
  options.default_timeout = global.timeout;
  options.max_message_bytes = global.max_message_bytes;
  options.load_balancing = global.load_balancing;
  options.channels = channels;
  options.use_tls = global.tls;
  options.tls_server_name = global.tls_server_name;
  // Each file, when given, is read into its option; the error names the flag and the path.
  const std::pair<const char*, std::pair<const std::string*, std::string*>> files[] = {
      {"--tls-ca", {&global.tls_ca, &options.tls_root_certs_pem}},
      {"--tls-cert", {&global.tls_cert, &options.tls_cert_chain_pem}},
      {"--tls-key", {&global.tls_key, &options.tls_private_key_pem}},
  };
  for (const auto& [flag, paths] : files) {
    if (paths.first->empty()) continue;
    absl::StatusOr<std::string> text = client::ReadCredentialFile(flag, *paths.first);
    if (!text.ok()) return text.status();
    *paths.second = *std::move(text);
  }
  if (!global.token_file.empty()) {
    absl::StatusOr<std::string> token = client::ReadTokenFile(global.token_file);
    if (!token.ok()) return token.status();
    options.bearer_token = *std::move(token);
  }
  return client::Client::Create(global.target, options);
}

void PrintError(std::ostream& err, absl::string_view what, const absl::Status& status) {
  err << "attnctl: " << what << ": " << absl::StatusCodeToString(status.code()) << ": "
      << status.message() << "\n";
}

}  // namespace attnd::attnctl
