// The standard probes a load balancer or an operator sends to attnd, for tests: grpc.health.v1
// Check and Watch, and the service list of grpc.reflection.v1alpha. They call the real method
// paths through gRPC's generic stub with the wire copies in probes.proto, so they work against an
// in-process Server (whose process already registers the real descriptors) and against a real
// attnd process alike.
#ifndef ATTND_TESTS_COMMON_PROBES_H_
#define ATTND_TESTS_COMMON_PROBES_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"

namespace attnd::testing {

// grpc.health.v1.HealthCheckResponse.ServingStatus, as the numbers the helpers return.
inline constexpr int kHealthUnknown = 0;
inline constexpr int kHealthServing = 1;
inline constexpr int kHealthNotServing = 2;
inline constexpr int kHealthServiceUnknown = 3;

// Health/Check for `service` ("" = the server as a whole): the ServingStatus number, or the
// call's failure with gRPC's code (UNKNOWN when it ended without an answer).
absl::StatusOr<int> HealthCheck(const std::shared_ptr<grpc::Channel>& channel,
                                const std::string& service, absl::Duration timeout);

// Health/Watch for `service`, open until destroyed (which cancels it).
class HealthWatch {
 public:
  HealthWatch(const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
              absl::Duration timeout);
  ~HealthWatch();
  HealthWatch(const HealthWatch&) = delete;
  HealthWatch& operator=(const HealthWatch&) = delete;

  // Blocks for the next ServingStatus the server sends: the current one first, then each
  // change. The call's failure once it ends.
  absl::StatusOr<int> Next();

 private:
  struct Call;
  std::unique_ptr<Call> call_;
};

// ServerReflectionInfo with list_services: the full names of the services the server offers
// ("attnd.v1.Attention", "grpc.health.v1.Health", ...).
absl::StatusOr<std::vector<std::string>> ListServices(const std::shared_ptr<grpc::Channel>& channel,
                                                      absl::Duration timeout);

}  // namespace attnd::testing

#endif  // ATTND_TESTS_COMMON_PROBES_H_
