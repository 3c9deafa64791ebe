#include "tests/common/probes.h"

#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/client_context.h"
#include "grpcpp/completion_queue.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/impl/codegen/proto_utils.h"  // SerializationTraits for protobuf messages
#include "grpcpp/support/async_stream.h"
#include "probes.pb.h"

namespace attnd::testing {
namespace {

constexpr char kHealthCheck[] = "/grpc.health.v1.Health/Check";
constexpr char kHealthWatch[] = "/grpc.health.v1.Health/Watch";
constexpr char kReflection[] = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

// One call by method path, as a stream driven step by step on its own completion queue (a
// unary method is a stream of one message each way). Each step blocks until gRPC reports it and
// returns gRPC's ok.
template <typename Request, typename Response>
class BlockingStream {
 public:
  BlockingStream(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                 absl::Duration timeout)
      : stub_(channel) {
    context_.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    call_ = stub_.PrepareCall(&context_, method, &cq_);
    call_->StartCall(Tag());
    started_ = Await();
  }
  ~BlockingStream() {
    if (!finished_) {
      context_.TryCancel();
      grpc::Status ignored;
      call_->Finish(&ignored, Tag());
      Await();
    }
    cq_.Shutdown();
    void* tag;
    bool ok;
    while (cq_.Next(&tag, &ok)) {
    }
  }

  bool started() const { return started_; }
  bool Write(const Request& request) {
    call_->Write(request, Tag());
    return Await();
  }
  bool WritesDone() {
    call_->WritesDone(Tag());
    return Await();
  }
  bool Read(Response* response) {
    call_->Read(response, Tag());
    return Await();
  }
  grpc::Status Finish() {
    grpc::Status status;
    call_->Finish(&status, Tag());
    Await();
    finished_ = true;
    return status;
  }

 private:
  void* Tag() { return reinterpret_cast<void*>(++next_tag_); }
  // One operation is outstanding at a time, so the tag that comes back must be the last one.
  bool Await() {
    void* tag = nullptr;
    bool ok = false;
    if (!cq_.Next(&tag, &ok)) return false;
    return ok && tag == reinterpret_cast<void*>(next_tag_);
  }

  grpc::TemplatedGenericStub<Request, Response> stub_;
  grpc::ClientContext context_;
  grpc::CompletionQueue cq_;
  std::unique_ptr<grpc::ClientAsyncReaderWriter<Request, Response>> call_;
  intptr_t next_tag_ = 0;
  bool started_ = false;
  bool finished_ = false;
};

using HealthStream = BlockingStream<probes::HealthCheckRequest, probes::HealthCheckResponse>;
using ReflectionStream =
    BlockingStream<probes::ServerReflectionRequest, probes::ServerReflectionResponse>;

absl::Status FromGrpc(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

// The status of a call that stopped before its answer: gRPC's, or UNKNOWN when gRPC says OK.
template <typename Stream>
absl::Status Ended(Stream& call, const char* method) {
  const absl::Status status = FromGrpc(call.Finish());
  if (!status.ok()) return status;
  return absl::UnknownError(absl::StrCat(method, " ended without an answer"));
}

bool Open(HealthStream& call, const std::string& service) {
  probes::HealthCheckRequest request;
  request.set_service(service);
  return call.started() && call.Write(request) && call.WritesDone();
}

}  // namespace

absl::StatusOr<int> HealthCheck(const std::shared_ptr<grpc::Channel>& channel,
                                const std::string& service, absl::Duration timeout) {
  HealthStream call(channel, kHealthCheck, timeout);
  probes::HealthCheckResponse response;
  if (!Open(call, service) || !call.Read(&response)) return Ended(call, kHealthCheck);
  if (absl::Status status = FromGrpc(call.Finish()); !status.ok()) return status;
  return static_cast<int>(response.status());
}

struct HealthWatch::Call {
  Call(const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
       absl::Duration timeout)
      : stream(channel, kHealthWatch, timeout) {
    if (!Open(stream, service)) End();
  }
  void End() {
    open = false;
    end = Ended(stream, kHealthWatch);
  }

  HealthStream stream;
  bool open = true;
  absl::Status end;  // once !open: how the call ended
};

HealthWatch::HealthWatch(const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
                         absl::Duration timeout)
    : call_(std::make_unique<Call>(channel, service, timeout)) {}

HealthWatch::~HealthWatch() = default;

absl::StatusOr<int> HealthWatch::Next() {
  if (call_->open) {
    probes::HealthCheckResponse response;
    if (call_->stream.Read(&response)) return static_cast<int>(response.status());
    call_->End();
  }
  return call_->end;
}

absl::StatusOr<std::vector<std::string>> ListServices(const std::shared_ptr<grpc::Channel>& channel,
                                                      absl::Duration timeout) {
  ReflectionStream call(channel, kReflection, timeout);
  probes::ServerReflectionRequest request;
  request.set_list_services("*");
  probes::ServerReflectionResponse response;
  if (!call.started() || !call.Write(request) || !call.WritesDone() || !call.Read(&response)) {
    return Ended(call, kReflection);
  }
  probes::ServerReflectionResponse extra;
  while (call.Read(&extra)) {
  }
  if (absl::Status status = FromGrpc(call.Finish()); !status.ok()) return status;
  if (response.has_error_response()) {
    return absl::Status(static_cast<absl::StatusCode>(response.error_response().error_code()),
                        response.error_response().error_message());
  }
  if (!response.has_list_services_response()) {
    return absl::UnknownError("the reflection answer has no list_services_response");
  }
  std::vector<std::string> names;
  for (const probes::ServiceResponse& service : response.list_services_response().service()) {
    names.push_back(service.name());
  }
  return names;
}

}  // namespace attnd::testing
