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

namespace {

// How often a drain checks whether the open calls are answered.
constexpr absl::Duration kOpenCallPoll = absl::Milliseconds(5);
// How long a drain leaves connections up after the last answer is written, for clients to read
// it: 256 MiB (server.max_message_bytes' default) crosses 10 Gb/s in 0.2 s.
constexpr absl::Duration kResponseLinger = absl::Milliseconds(250);

int Milliseconds(double seconds) {
  return static_cast<int>(std::clamp(seconds * 1000.0, 0.0, static_cast<double>(INT_MAX)));
}

// The handshake deadline and keepalive enforcement of server.* (config.h says what each does).
void AddConnectionLimits(const ServerSection& server, grpc::ServerBuilder* builder) {
  // Covers the TLS handshake and, after it, the client's HTTP/2 preface and SETTINGS: a
  // connection that sends nothing is closed at this deadline, TLS or not.
  builder->AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
                              Milliseconds(server.handshake_timeout_seconds));
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                              Milliseconds(server.keepalive_min_ping_interval_seconds));
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS,
                              server.keepalive_permit_without_calls ? 1 : 0);
  // gRPC's default, stated: the third ping too soon closes the connection (GOAWAY
  // ENHANCE_YOUR_CALM, "too_many_pings").
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const Config& config,
                                                      metrics::Registry* registry) {
  std::unique_ptr<Server> server(new Server());
  server->config_ = config;
  server->metrics_ = std::make_unique<ServiceMetrics>(registry);
  metrics::Registry* metrics_registry = server->metrics_->registry();

  // Security first: a bad certificate, key or token file stops start-up before devices are
  // opened or anything listens.
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      security::MakeServerCredentials(config.server, &server->tls_);
  if (!credentials.ok()) return credentials.status();
  if (!config.server.auth_token_file.empty()) {
    absl::StatusOr<std::unique_ptr<security::TokenFile>> tokens = security::TokenFile::Open(
        config.server.auth_token_file, absl::Seconds(config.server.auth_token_reload_seconds));
    if (!tokens.ok()) return tokens.status();
    server->tokens_ = *std::move(tokens);
  }

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
  context->tokens = server->tokens_.get();
  context->tls_only = server->tls_.mode != "off";
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
  builder.AddListeningPort(listen, *credentials, &server->port_);
  const std::string& health_listen = config.server.health_listen;
  if (!health_listen.empty()) {
    // Plaintext, for probes that cannot speak TLS; the service refuses attnd.v1 calls on it.
    builder.AddListeningPort(health_listen, grpc::InsecureServerCredentials(),
                             &server->health_port_);
  }
  const int max_message =
      static_cast<int>(std::min<int64_t>(config.server.max_message_bytes, INT_MAX));
  builder.SetMaxReceiveMessageSize(max_message);
  builder.SetMaxSendMessageSize(max_message);
  builder.AddChannelArgument(
      GRPC_ARG_MAX_CONCURRENT_STREAMS,
      static_cast<int>(std::min<int64_t>(config.server.max_concurrent_streams, INT_MAX)));
  AddConnectionLimits(config.server, &builder);
  // Without this a second attnd could bind the same port (SO_REUSEPORT) and split the traffic.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.RegisterService(server->service_.get());
  server->grpc_server_ = builder.BuildAndStart();
  const bool health_failed = !health_listen.empty() && server->health_port_ == 0;
  if (server->grpc_server_ == nullptr || server->port_ == 0 || health_failed) {
    server->grpc_server_.reset();
    const bool main_failed = server->port_ == 0;
    return absl::UnavailableError(
        absl::StrCat(main_failed ? "server.listen" : "server.health_listen", " = \"",
                     main_failed ? listen : health_listen,
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
  context_->unary_calls.Close();
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
                             context_->streams.size() == 0 && context_->unary_calls.open() == 0;
  // New calls are refused UNAVAILABLE from here on; open streams take no new requests.
  context_->unary_calls.Close();
  context_->streams.DrainAll();
  // Open calls are answered while gRPC still serves their connections. gRPC's Shutdown closes a
  // connection as soon as its last call is written, and closing a socket that has unread input
  // (the client's flow-control updates) resets it and discards what the kernel had not yet sent:
  // a large answer written just before the close could be lost. So the calls finish first, then
  // their clients get kResponseLinger to read the answers, then gRPC shuts down.
  while ((context_->unary_calls.open() > 0 || context_->streams.size() > 0) &&
         absl::Now() < deadline) {
    absl::SleepFor(kOpenCallPoll);
  }
  if (!idle_at_start) absl::SleepFor(std::min(kResponseLinger, deadline - absl::Now()));
  // Refuses new connections and calls, cancels whatever is still open at the deadline.
  grpc_server_->Shutdown(absl::ToChronoTime(deadline));
  drain_clean_ = idle_at_start || absl::Now() < deadline;
  scheduler_->Shutdown();
  grpc_server_->Wait();
  logging::Log(logging::Level::kInfo, "drained", {F("clean", drain_clean_)});
  return drain_clean_;
}

}  // namespace attnd::server::service
