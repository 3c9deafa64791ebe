// What the subcommands share: the client and error lines.
#include "client/attnctl/commands.h"

namespace attnd::attnctl {

absl::StatusOr<std::unique_ptr<client::Client>> MakeClient(const GlobalFlags& global,
                                                           int channels) {
  client::ClientOptions options;
  options.default_timeout = global.timeout;
  options.max_message_bytes = global.max_message_bytes;
  options.load_balancing = global.load_balancing;
  options.channels = channels;
  return client::Client::Create(global.target, options);
}

void PrintError(std::ostream& err, absl::string_view what, const absl::Status& status) {
  err << "attnctl: " << what << ": " << absl::StatusCodeToString(status.code()) << ": "
      << status.message() << "\n";
}

}  // namespace attnd::attnctl
