// What the gRPC handlers share: config, the scheduler, metrics, the open streams (for drain),
// and the one request path every Attend and AttendStream request takes:
//   decode + validate (INVALID_ARGUMENT, nothing allocated) → scheduler → completion.
#ifndef ATTND_SERVER_SERVICE_SERVICE_CONTEXT_H_
#define ATTND_SERVER_SERVICE_SERVICE_CONTEXT_H_

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "attnd/v1/attention.pb.h"
#include "kernels/problem.h"
#include "server/scheduler/scheduler.h"
#include "server/security/token_file.h"
#include "server/service/service_metrics.h"

namespace attnd::server::service {

class AttendStreamReactor;

// The AttendStream calls that are open, so that a drain can tell them to wind down.
class StreamRegistry {
 public:
  // Returns whether a drain has begun (the new stream must start draining at once).
  bool Add(AttendStreamReactor* stream);
  void Remove(AttendStreamReactor* stream);
  // Every open stream stops taking new requests (answering them UNAVAILABLE in-stream) and
  // finishes once its answers are written; idle streams finish now.
  void DrainAll();
  int size() const;

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_set<AttendStreamReactor*> streams_ ABSL_GUARDED_BY(mu_);
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
};

// The unary Attend calls that are open. A drain closes the gate (later calls are refused
// UNAVAILABLE) and waits for the open ones to be answered while their connections are still up.
class UnaryCallGate {
 public:
  // False once the gate is closed: the caller refuses the call instead of starting it.
  bool Enter();
  void Exit();  // once per successful Enter, when the call is done (its reactor's OnDone)
  void Close();
  int open() const;

 private:
  mutable absl::Mutex mu_;
  int open_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

struct ServiceContext {
  kernels::ProblemLimits limits;
  // A request whose answer would not fit in one gRPC message is refused before it is queued.
  int64_t max_response_bytes = int64_t{256} << 20;
  // Requests one AttendStream may have unanswered before the server stops reading from it
  // (HTTP/2 flow control then holds the client back) rather than refusing them.
  int max_stream_outstanding = 256;
  scheduler::Scheduler* scheduler = nullptr;
  ServiceMetrics* metrics = nullptr;
  std::function<v1::ServerInfo()> server_info;  // built live (memory budgets)
  // The bearer tokens every attnd.v1 call must carry; null when server.auth_token_file is unset.
  security::TokenFile* tokens = nullptr;
  // TLS is on: attnd.v1 calls must arrive over TLS, i.e. not on the plaintext
  // server.health_listen port.
  bool tls_only = false;
  StreamRegistry streams;
  UnaryCallGate unary_calls;
};

// Decodes and validates `request`, then hands it to the scheduler. `done` is called exactly
// once, maybe before this returns: INVALID_ARGUMENT with the codec's message,
// RESOURCE_EXHAUSTED when the answer would exceed max_response_bytes, a scheduler refusal, or the
// device's result. `request` stays alive (the item holds it) until `done` ran.
void SubmitAttend(ServiceContext* service, std::shared_ptr<const v1::AttendRequest> request,
                  absl::Time rpc_deadline, scheduler::CancelFlag cancelled,
                  scheduler::Completion done);

// Accounts for one answered request: attnd_requests_total / _duration_seconds, and a log line
// (debug for ordinary outcomes, warning for INTERNAL, UNKNOWN and the like).
void ReportAnswer(ServiceContext* service, std::string_view method, const std::string& request_id,
                  const absl::Status& status, absl::Time start);

}  // namespace attnd::server::service

#endif  // ATTND_SERVER_SERVICE_SERVICE_CONTEXT_H_
