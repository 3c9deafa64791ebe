// attnctl health [--service NAME]: grpc.health.v1 Check, for container health checks and
// operators. Exit 0 only on SERVING, so `HEALTHCHECK CMD attnctl health` needs no shell.
#include "client/attnctl/commands.h"

namespace attnd::attnctl {

int RunHealth(const CommandLine& command_line, std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::unique_ptr<client::Client>> client = MakeClient(command_line.global);
  if (!client.ok()) {
    PrintError(err, "client", client.status());
    return kExitError;
  }
  absl::StatusOr<client::HealthStatus> health =
      (*client)->CheckHealth(command_line.health_service, command_line.global.timeout);
  if (!health.ok()) {
    PrintError(err, "Health/Check", health.status());
    return kExitError;
  }
  out << client::HealthStatusName(*health) << "\n";
  return *health == client::HealthStatus::kServing ? kExitOk : kExitError;
}

}  // namespace attnd::attnctl
