// attnctl's subcommands. Each returns the process exit code (flags.h: kExit*) and writes its
// results to `out`, diagnostics and progress to `err`.
#ifndef ATTND_CLIENT_ATTNCTL_COMMANDS_H_
#define ATTND_CLIENT_ATTNCTL_COMMANDS_H_

#include <cstdint>
#include <memory>
#include <ostream>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/attnctl/flags.h"
#include "client/client.h"

namespace attnd::attnctl {

int RunInfo(const CommandLine& command_line, std::ostream& out, std::ostream& err);
// Prints the health status; exit 0 only when the server answers SERVING.
int RunHealth(const CommandLine& command_line, std::ostream& out, std::ostream& err);
int RunAttend(const CommandLine& command_line, std::ostream& out, std::ostream& err);
int RunLoad(const CommandLine& command_line, std::ostream& out, std::ostream& err);

// load --mixed-lengths: `count` lengths spread evenly over [min_len, max_len] (both ends
// included), in an order shuffled by `seed`.
std::vector<int64_t> MixedLengths(int64_t min_len, int64_t max_len, int count, uint64_t seed);

// A client for the global flags' target.
absl::StatusOr<std::unique_ptr<client::Client>> MakeClient(const GlobalFlags& global,
                                                           int channels = 1);

// "attnctl: <what>: <CODE>: <message>", e.g. "attnctl: Attend: UNAVAILABLE: failed to connect".
void PrintError(std::ostream& err, absl::string_view what, const absl::Status& status);

}  // namespace attnd::attnctl

#endif  // ATTND_CLIENT_ATTNCTL_COMMANDS_H_
