#include "server/service/server.h"

#include <algorithm>
#include <climits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "server/logging/logging.h"
#include "server/service/server_info.h"

namespace attnd::server::service {

using logging::F;

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const Config& config,
                                                      metrics::Registry* registry) {
  std::unique_ptr<Server> server(new Server());
  server->config_ = config;
  server->metrics_ = std::make_unique<ServiceMetrics>(registry);
  metrics::Registry* metrics_registry = server->metrics_->registry();

  absl::StatusOr<executor::DeviceSelection> devices = executor::CreateExecutors(config);
  if (!devices.ok()) return devices.status();
  server->backend_ = devices->backend;
  server->backend_reason_ = devices->reason;
  server->executors_ = std::move(devices->executors);

  std::vector<executor::Executor*> executors;
  for (const auto& device : server->executors_) {
    executors.push_back(device.get());
    server->runners_.push_back(
        std::make_unique<executor::RequestRunner>(device.get(), config.planner, metrics_registry));
  }
  if (server->runners_.empty()) {
    return absl::FailedPreconditionError("backend.kind: no device to serve on");
  }
  // The batcher's memory cost of a request, from the first device (one host's GPUs are alike).
  executor::RequestRunner* first = server->runners_.front().get();
  const scheduler::Clock* clock = scheduler::RealClock();
  server->scheduler_ = std::make_unique<scheduler::Scheduler>(
      scheduler::SchedulerOptions::FromConfig(config.scheduler), clock, metrics_registry,
      [first](const scheduler::WorkItem& item) { return first->MemoryCost(item.decoded); });
  for (const auto& runner : server->runners_) {
    executor::RequestRunner* run = runner.get();
    executor::Executor* device = run->executor();
    server->scheduler_->AddDevice(
        device->name(),
        [run, clock](absl::Span<scheduler::WorkItem* const> batch, const scheduler::BatchInfo& info,
                     const scheduler::ItemDone& done) {
          std::vector<executor::RunRequest> requests(batch.size());
          for (size_t i = 0; i < batch.size(); ++i) {
            requests[i].decoded = &batch[i]->decoded;
            requests[i].request_id = batch[i]->request->request_id();
            requests[i].context.batch_size = info.batch_size;
            requests[i].context.queue_seconds =
                absl::ToDoubleSeconds(scheduler::QueueTime(*batch[i], info));
          }
          // Each request is checked again right before it launches: one whose deadline passed
          // or whose client left while earlier ones ran is never computed.
          run->RunBatch(
              requests,
              [&batch, clock](size_t i) {
                return scheduler::ExpiryStatus(*batch[i], clock->Now());
              },
              [&done](size_t i, absl::StatusOr<v1::AttendResponse> result) {
                done(i, std::move(result));
              });
        },
        [device] { return device->MemoryBudgetBytes(); });
  }

  server->context_ = std::make_unique<ServiceContext>();
  ServiceContext* context = server->context_.get();
  context->limits = config.limits;
  context->max_response_bytes = config.server.max_message_bytes;
  context->max_stream_outstanding =
      static_cast<int>(std::clamp<int64_t>(config.scheduler.max_queue_requests, 1, 1 << 20));
  context->scheduler = server->scheduler_.get();
  context->metrics = server->metrics_.get();
  const Config* config_ptr = &server->config_;
  const std::string backend = server->backend_;
  context->server_info = [config_ptr, backend, executors] {
    return BuildServerInfo(*config_ptr, backend, executors);
  };
  server->service_ = std::make_unique<AttentionService>(context);
  server->metrics_->SetBuildInfo(Version(), server->backend_, CudaBuildVersion());

  // Both are process-wide switches read when a builder is made.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  const std::string& listen = config.server.listen;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &server->port_);
  const int max_message =
      static_cast<int>(std::min<int64_t>(config.server.max_message_bytes, INT_MAX));
  builder.SetMaxReceiveMessageSize(max_message);
  builder.SetMaxSendMessageSize(max_message);
  builder.AddChannelArgument(
      GRPC_ARG_MAX_CONCURRENT_STREAMS,
      static_cast<int>(std::min<int64_t>(config.server.max_concurrent_streams, INT_MAX)));
  // Without this a second attnd could bind the same port (SO_REUSEPORT) and split the traffic.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.RegisterService(server->service_.get());
  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr || server->port_ == 0) {
    server->grpc_server_.reset();
    return absl::UnavailableError(
        absl::StrCat("server.listen = \"", listen,
                     "\": cannot listen there (address already in use, not a local address, or not "
                     "host:port)"));
  }
  grpc::HealthCheckServiceInterface* health = server->grpc_server_->GetHealthCheckService();
  if (health != nullptr) {
    health->SetServingStatus(true);
    health->SetServingStatus(v1::Attention::service_full_name(), true);
  }
  return server;
}

Server::~Server() { Drain(absl::ZeroDuration()); }

void Server::SetNotServing() {
  if (grpc_server_ == nullptr) return;
  if (grpc::HealthCheckServiceInterface* health = grpc_server_->GetHealthCheckService()) {
    health->SetServingStatus(false);
  }
}

void Server::FailFast(absl::Duration grace) {
  absl::MutexLock lock(&drain_mu_);
  if (drained_) return;
  drained_ = true;
  drain_clean_ = false;
  if (grpc_server_ == nullptr) {
    if (scheduler_ != nullptr) scheduler_->Shutdown();
    return;
  }
  logging::Log(
      logging::Level::kWarning, "failing_fast",
      {F("grace_seconds", absl::ToDoubleSeconds(grace)), F("queued", scheduler_->queue_depth()),
       F("inflight", scheduler_->inflight()), F("streams", context_->streams.size())});
  SetNotServing();
  context_->streams.DrainAll();
  // Queued requests are answered UNAVAILABLE; running ones end (UNAVAILABLE on a broken device).
  scheduler_->Shutdown();
  grpc_server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  grpc_server_->Wait();
  logging::Log(logging::Level::kWarning, "failed_fast", {});
}

bool Server::Drain(absl::Duration timeout) {
  absl::MutexLock lock(&drain_mu_);
  if (drained_) return drain_clean_;
  drained_ = true;
  if (grpc_server_ == nullptr) {  // never started (a start-up error)
    if (scheduler_ != nullptr) scheduler_->Shutdown();
    drain_clean_ = true;
    return true;
  }
  const absl::Time deadline = absl::Now() + timeout;
  logging::Log(
      logging::Level::kInfo, "draining",
      {F("timeout_seconds", absl::ToDoubleSeconds(timeout)), F("queued", scheduler_->queue_depth()),
       F("inflight", scheduler_->inflight()), F("streams", context_->streams.size())});
  if (grpc::HealthCheckServiceInterface* health = grpc_server_->GetHealthCheckService()) {
    health->SetServingStatus(false);
  }
  const bool idle_at_start = scheduler_->queue_depth() == 0 && scheduler_->inflight() == 0 &&
                             context_->streams.size() == 0;
  context_->streams.DrainAll();
  // Refuses new calls at once, waits for the open ones, cancels what is left at the deadline.
  grpc_server_->Shutdown(absl::ToChronoTime(deadline));
  drain_clean_ = idle_at_start || absl::Now() < deadline;
  scheduler_->Shutdown();
  grpc_server_->Wait();
  logging::Log(logging::Level::kInfo, "drained", {F("clean", drain_clean_)});
  return drain_clean_;
}

}  // namespace attnd::server::service
