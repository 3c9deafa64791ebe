#include "server/service/attention_service.h"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpc/grpc_security_constants.h"
#include "grpcpp/security/auth_context.h"
#include "server/logging/logging.h"
#include "server/security/bearer_auth.h"
#include "server/service/attend_stream.h"
#include "wire/request_codec.h"

namespace attnd::server::service {
namespace {

// Refusals are logged at most once a second, with how many were not, so that a client retrying
// with a bad token cannot flood the log.
void LogRefusal(std::string_view method, const grpc::CallbackServerContext& context,
                const absl::Status& status) {
  static absl::Mutex mu(absl::kConstInit);
  static absl::Time last_logged = absl::InfinitePast();  // guarded by mu
  static int64_t suppressed = 0;                         // guarded by mu
  const absl::Time now = absl::Now();
  int64_t suppressed_before = 0;
  {
    absl::MutexLock lock(&mu);
    if (now - last_logged < absl::Seconds(1)) {
      ++suppressed;
      return;
    }
    last_logged = now;
    suppressed_before = suppressed;
    suppressed = 0;
  }
  using logging::F;
  logging::Log(
      logging::Level::kWarning, "auth_refused",
      {F("method", method), F("peer", context.peer()), F("reason", std::string(status.message())),
       F("suppressed_since_last", suppressed_before)});
}

// Whether the call's connection is TLS (not the plaintext server.health_listen port).
bool OverTls(const grpc::CallbackServerContext& context) {
  const std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr) return false;
  for (const grpc::string_ref& type :
       auth->FindPropertyValues(GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME)) {
    if (type == GRPC_SSL_TRANSPORT_SECURITY_TYPE || type == GRPC_TLS_TRANSPORT_SECURITY_TYPE) {
      return true;
    }
  }
  return false;
}

// OK when the call may go on: over TLS when TLS is on (PERMISSION_DENIED on the health port),
// with an accepted token when tokens are on (UNAUTHENTICATED). A refusal is counted in
// attnd_requests_total by code and logged. Health and reflection are gRPC's own services and
// never come here: probes need no token.
absl::Status Authenticate(ServiceContext* service, const grpc::CallbackServerContext& context,
                          std::string_view method) {
  if (service->tokens == nullptr && !service->tls_only) return absl::OkStatus();
  const absl::Time start = absl::Now();
  absl::Status status;
  if (service->tls_only && !OverTls(context)) {
    status = absl::PermissionDeniedError(
        "attnd.v1 is served over TLS on server.listen; this plaintext port "
        "(server.health_listen) answers health probes only");
  } else if (service->tokens != nullptr) {
    std::vector<absl::string_view> values;
    const auto range = context.client_metadata().equal_range(security::kAuthorizationKey);
    for (auto it = range.first; it != range.second; ++it) {
      values.emplace_back(it->second.data(), it->second.size());
    }
    status = security::CheckBearer(values, service->tokens, start);
  }
  if (!status.ok()) {
    ReportAnswer(service, method, "", status, start);
    LogRefusal(method, context, status);
  }
  return status;
}

// An AttendStream refused before it started: finishes at once with `status`.
class RefusedStream final : public grpc::ServerBidiReactor<v1::AttendRequest, v1::AttendResponse> {
 public:
  explicit RefusedStream(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

grpc::ServerUnaryReactor* Refuse(grpc::CallbackServerContext* context, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// One unary Attend. gRPC owns the request and response until the call is finished, and only
// the scheduler's completion (called exactly once) finishes it, so the work item may point into
// the request without copying its tensors.
class AttendReactor final : public grpc::ServerUnaryReactor {
 public:
  AttendReactor(ServiceContext* service, const v1::AttendRequest* request,
                v1::AttendResponse* response)
      : service_(service),
        request_(request),
        response_(response),
        cancelled_(scheduler::MakeCancelFlag()) {}

  void Start(absl::Time rpc_deadline) {
    const v1::AttendRequest* request = request_;
    service_->metrics->AddBytesReceived(static_cast<int64_t>(request->ByteSizeLong()));
    std::shared_ptr<const v1::AttendRequest> borrowed(request, [](const v1::AttendRequest*) {});
    SubmitAttend(service_, std::move(borrowed), rpc_deadline, cancelled_,
                 [this](scheduler::AttendResult result) { Answer(std::move(result)); });
  }

  void OnCancel() override { cancelled_->store(true, std::memory_order_release); }
  void OnDone() override {
    service_->unary_calls.Exit();
    delete this;
  }

 private:
  void Answer(scheduler::AttendResult result) {
    const absl::Status status = result.status();
    if (status.ok()) {
      *response_ = *std::move(result);
      service_->metrics->AddBytesSent(static_cast<int64_t>(response_->ByteSizeLong()));
    }
    ReportAnswer(service_, "Attend", request_->request_id(), status, start_);
    Finish(ToGrpcStatus(status));  // the last use of this object
  }

  ServiceContext* const service_;
  const v1::AttendRequest* const request_;  // gRPC's, valid until Finish
  v1::AttendResponse* const response_;
  const scheduler::CancelFlag cancelled_;
  const absl::Time start_ = absl::Now();
};

}  // namespace

grpc::ServerUnaryReactor* AttentionService::Attend(grpc::CallbackServerContext* context,
                                                   const v1::AttendRequest* request,
                                                   v1::AttendResponse* response) {
  if (absl::Status status = Authenticate(service_, *context, "Attend"); !status.ok()) {
    return Refuse(context, status);
  }
  if (!service_->unary_calls.Enter()) {
    const absl::Status draining =
        absl::UnavailableError("the server is draining; send this request to another replica");
    ReportAnswer(service_, "Attend", request->request_id(), draining, absl::Now());
    return Refuse(context, draining);
  }
  auto* reactor = new AttendReactor(service_, request, response);
  reactor->Start(absl::FromChrono(context->deadline()));
  return reactor;
}

grpc::ServerBidiReactor<v1::AttendRequest, v1::AttendResponse>* AttentionService::AttendStream(
    grpc::CallbackServerContext* context) {
  if (absl::Status status = Authenticate(service_, *context, "AttendStream"); !status.ok()) {
    return new RefusedStream(ToGrpcStatus(status));
  }
  return new AttendStreamReactor(service_, context);
}

grpc::ServerUnaryReactor* AttentionService::GetServerInfo(grpc::CallbackServerContext* context,
                                                          const v1::GetServerInfoRequest*,
                                                          v1::ServerInfo* response) {
  if (absl::Status status = Authenticate(service_, *context, "GetServerInfo"); !status.ok()) {
    return Refuse(context, status);
  }
  const absl::Time start = absl::Now();
  *response = service_->server_info();
  service_->metrics->AddBytesSent(static_cast<int64_t>(response->ByteSizeLong()));
  ReportAnswer(service_, "GetServerInfo", "", absl::OkStatus(), start);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AttentionService::Echo(grpc::CallbackServerContext* context,
                                                 const v1::AttendRequest* request,
                                                 v1::AttendResponse* response) {
  const absl::Time start = absl::Now();
  service_->metrics->AddBytesReceived(static_cast<int64_t>(request->ByteSizeLong()));
  absl::Status status;
  absl::StatusOr<wire::DecodedRequest> decoded = wire::DecodeRequest(*request, service_->limits);
  if (!decoded.ok()) {
    status = decoded.status();
  } else {
    // Outputs of Attend's size: q's bytes as far as they go (one copy, as Attend's answer is
    // one copy out of its buffer), zeros after.
    const kernels::AttentionProblem& problem = decoded->problem;
    response->set_request_id(request->request_id());
    v1::Tensor* out = response->mutable_out();
    out->set_dtype(request->q().dtype());
    for (int64_t d : wire::OutShape(problem)) out->add_shape(d);
    const size_t out_bytes = static_cast<size_t>(decoded->out_bytes());
    const std::string& q = request->q().data();
    out->mutable_data()->assign(q, 0, std::min(out_bytes, q.size()));
    out->mutable_data()->resize(out_bytes);
    if (problem.return_lse) {
      v1::Tensor* lse = response->mutable_lse();
      lse->set_dtype(v1::DTYPE_F32);
      for (int64_t d : wire::LseShape(problem)) lse->add_shape(d);
      lse->mutable_data()->resize(static_cast<size_t>(decoded->lse_bytes()));
    }
    response->mutable_execution()->set_device("echo");
    service_->metrics->AddBytesSent(static_cast<int64_t>(response->ByteSizeLong()));
  }
  ReportAnswer(service_, "Echo", request->request_id(), status, start);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace attnd::server::service
