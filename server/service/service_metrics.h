// Per-RPC metrics of the service edge, and the status conversion they are labelled with.
#ifndef ATTND_SERVER_SERVICE_SERVICE_METRICS_H_
#define ATTND_SERVER_SERVICE_SERVICE_METRICS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"
#include "server/metrics/metrics.h"

namespace attnd::server::service {

// absl → gRPC at the edge (the numeric codes are the same).
grpc::Status ToGrpcStatus(const absl::Status& status);
// "OK", "INVALID_ARGUMENT", ...: the `code` label.
std::string CodeName(absl::StatusCode code);

class ServiceMetrics {
 public:
  // `registry` may be null (metrics kept privately, e.g. in tests).
  explicit ServiceMetrics(metrics::Registry* registry);
  ~ServiceMetrics();

  // One answered request: attnd_requests_total{method,code} and
  // attnd_request_duration_seconds{method}. On AttendStream each request counts.
  void RecordRequest(std::string_view method, absl::StatusCode code, double seconds);
  // A message received or sent: attnd_bytes_{received,sent}_total, and the copy gRPC's protobuf
  // parse (serialization) makes of its bytes, attnd_host_copy_bytes_total{stage="grpc_parse"}
  // ({stage="grpc_serialize"}).
  void AddBytesReceived(int64_t bytes);
  void AddBytesSent(int64_t bytes);
  // attnd_build_info{version,backend,cuda} 1.
  void SetBuildInfo(const std::string& version, const std::string& backend,
                    const std::string& cuda);

  metrics::Registry* registry() const { return registry_; }

 private:
  std::unique_ptr<metrics::Registry> own_registry_;
  metrics::Registry* registry_;
  metrics::Counter* bytes_received_;
  metrics::Counter* bytes_sent_;
  metrics::Counter* parse_copy_bytes_;
  metrics::Counter* serialize_copy_bytes_;
};

}  // namespace attnd::server::service

#endif  // ATTND_SERVER_SERVICE_SERVICE_METRICS_H_
