#include "server/service/service_metrics.h"

#include "server/executor/request_runner.h"

namespace attnd::server::service {
namespace {

const std::vector<double>& DurationBuckets() {
  static const std::vector<double>* const buckets =
      new std::vector<double>(metrics::ExponentialBuckets(0.0001, 2.0, 22));  // 100us .. 210s
  return *buckets;
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

std::string CodeName(absl::StatusCode code) { return absl::StatusCodeToString(code); }

ServiceMetrics::ServiceMetrics(metrics::Registry* registry) : registry_(registry) {
  if (registry_ == nullptr) {
    own_registry_ = std::make_unique<metrics::Registry>();
    registry_ = own_registry_.get();
  }
  bytes_received_ =
      registry_->GetCounter("attnd_bytes_received_total", "Serialized request bytes received.");
  bytes_sent_ = registry_->GetCounter("attnd_bytes_sent_total", "Serialized response bytes sent.");
  parse_copy_bytes_ = registry_->GetCounter(
      executor::kHostCopyBytesName, executor::kHostCopyBytesHelp, {{"stage", "grpc_parse"}});
  serialize_copy_bytes_ = registry_->GetCounter(
      executor::kHostCopyBytesName, executor::kHostCopyBytesHelp, {{"stage", "grpc_serialize"}});
  // The series a dashboard expects exist from the start, at 0.
  for (const char* method : {"Attend", "AttendStream", "GetServerInfo", "Echo"}) {
    registry_->GetCounter("attnd_requests_total", "Requests answered, by method and status code.",
                          {{"method", method}, {"code", "OK"}});
    registry_->GetHistogram("attnd_request_duration_seconds",
                            "Time from receiving a request to answering it.", DurationBuckets(),
                            {{"method", method}});
  }
}

ServiceMetrics::~ServiceMetrics() = default;

void ServiceMetrics::RecordRequest(std::string_view method, absl::StatusCode code, double seconds) {
  registry_
      ->GetCounter("attnd_requests_total", "Requests answered, by method and status code.",
                   {{"method", std::string(method)}, {"code", CodeName(code)}})
      ->Increment();
  registry_
      ->GetHistogram("attnd_request_duration_seconds",
                     "Time from receiving a request to answering it.", DurationBuckets(),
                     {{"method", std::string(method)}})
      ->Observe(seconds);
}

void ServiceMetrics::AddBytesReceived(int64_t bytes) {
  bytes_received_->Increment(static_cast<double>(bytes));
  parse_copy_bytes_->Increment(static_cast<double>(bytes));
}

void ServiceMetrics::AddBytesSent(int64_t bytes) {
  bytes_sent_->Increment(static_cast<double>(bytes));
  serialize_copy_bytes_->Increment(static_cast<double>(bytes));
}

void ServiceMetrics::SetBuildInfo(const std::string& version, const std::string& backend,
                                  const std::string& cuda) {
  registry_
      ->GetGauge("attnd_build_info", "Build and serving configuration; always 1.",
                 {{"version", version}, {"backend", backend}, {"cuda", cuda}})
      ->Set(1);
}

}  // namespace attnd::server::service
