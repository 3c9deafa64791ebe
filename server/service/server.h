// The attnd gRPC server: devices, scheduler, the Attention service, health and reflection,
// started from a Config and drained on request.
//
//   auto server = Server::Start(config, &registry);   // listening; port 0 → (*server)->port()
//   ...
//   bool clean = (*server)->Drain(absl::Seconds(30));  // NOT_SERVING, finish in-flight, stop
#ifndef ATTND_SERVER_SERVICE_SERVER_H_
#define ATTND_SERVER_SERVICE_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "server/config/config.h"
#include "server/executor/devices.h"
#include "server/executor/request_runner.h"
#include "server/metrics/metrics.h"
#include "server/scheduler/scheduler.h"
#include "server/security/tls.h"
#include "server/security/token_file.h"
#include "server/service/attention_service.h"
#include "server/service/service_context.h"
#include "server/service/service_metrics.h"

namespace attnd::server::service {

class Server {
 public:
  // Selects the devices (backend.kind), starts the scheduler's workers and listens on
  // config.server.listen, with TLS and bearer tokens when the server section asks for them.
  // `registry` may be null and must outlive the server otherwise. Errors name the config key:
  // backend.kind (no such device), server.tls_* (a bad certificate or key file),
  // server.auth_token_file (unreadable, no token), server.listen (cannot bind).
  static absl::StatusOr<std::unique_ptr<Server>> Start(const Config& config,
                                                       metrics::Registry* registry);
  // Drains with no grace if Drain was not called.
  ~Server();

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const { return port_; }  // the bound port (config port 0 → the one chosen)
  int health_port() const { return health_port_; }         // server.health_listen's; 0 without one
  const std::string& backend() const { return backend_; }  // "cpu" or "cuda"
  const std::string& backend_reason() const { return backend_reason_; }
  const security::TlsSummary& tls() const { return tls_; }  // mode "off", "tls" or "mutual"
  int auth_tokens() const { return tokens_ ? tokens_->size() : 0; }  // 0: tokens are off

  // Health goes NOT_SERVING; new Attend calls are refused UNAVAILABLE ("draining") and open
  // streams stop taking new requests; in-flight and queued requests finish and their answers
  // are written while the connections are still up; clients get a moment to read them; then
  // gRPC shuts down. Calls still open at now + timeout are cancelled. True when everything
  // finished within `timeout`. Idempotent.
  bool Drain(absl::Duration timeout);

  // After a fatal device error (executor/fatal_device_error.h): health NOT_SERVING at once.
  // Thread-safe and quick, for the fatal-error handler on a worker thread.
  void SetNotServing();
  // Then, from another thread: health NOT_SERVING, open streams stop taking requests, queued
  // requests are answered UNAVAILABLE without running, running ones finish (on the failed
  // device they fail UNAVAILABLE at once), and gRPC stops, cancelling calls still open after
  // `grace`. Idempotent with Drain (whichever comes first does the work).
  void FailFast(absl::Duration grace);

 private:
  Server() = default;

  Config config_;
  std::string backend_;
  std::string backend_reason_;
  std::unique_ptr<ServiceMetrics> metrics_;
  std::vector<std::unique_ptr<executor::Executor>> executors_;
  std::vector<std::unique_ptr<executor::RequestRunner>> runners_;
  std::unique_ptr<scheduler::Scheduler> scheduler_;
  security::TlsSummary tls_;
  std::unique_ptr<security::TokenFile> tokens_;  // null: server.auth_token_file unset
  std::unique_ptr<ServiceContext> context_;
  std::unique_ptr<AttentionService> service_;
  int port_ = 0;
  int health_port_ = 0;
  std::unique_ptr<grpc::Server> grpc_server_;  // declared last: destroyed first

  absl::Mutex drain_mu_;
  bool drained_ ABSL_GUARDED_BY(drain_mu_) = false;
  bool drain_clean_ ABSL_GUARDED_BY(drain_mu_) = false;
};

}  // namespace attnd::server::service

#endif  // ATTND_SERVER_SERVICE_SERVER_H_
