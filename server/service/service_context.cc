#include "server/service/service_context.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/logging/logging.h"
#include "server/service/attend_stream.h"
#include "wire/request_codec.h"

namespace attnd::server::service {

bool StreamRegistry::Add(AttendStreamReactor* stream) {
  absl::MutexLock lock(&mu_);
  streams_.insert(stream);
  return draining_;
}

void StreamRegistry::Remove(AttendStreamReactor* stream) {
  absl::MutexLock lock(&mu_);
  streams_.erase(stream);
}

void StreamRegistry::DrainAll() {
  std::vector<AttendStreamReactor*> idle;
  {
    absl::MutexLock lock(&mu_);
    draining_ = true;
    for (AttendStreamReactor* stream : streams_) {
      if (stream->BeginDrain()) idle.push_back(stream);
    }
  }
  // Each of these claimed its finish in BeginDrain, so none can be gone before this (and
  // Finish must not run under mu_: OnDone takes it).
  for (AttendStreamReactor* stream : idle) stream->FinishNow();
}

int StreamRegistry::size() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(streams_.size());
}

bool UnaryCallGate::Enter() {
  absl::MutexLock lock(&mu_);
  if (closed_) return false;
  ++open_;
  return true;
}

void UnaryCallGate::Exit() {
  absl::MutexLock lock(&mu_);
  --open_;
}

void UnaryCallGate::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

int UnaryCallGate::open() const {
  absl::MutexLock lock(&mu_);
  return open_;
}

void ReportAnswer(ServiceContext* service, std::string_view method, const std::string& request_id,
                  const absl::Status& status, absl::Time start) {
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  service->metrics->RecordRequest(method, status.code(), seconds);
  using logging::F;
  using logging::Level;
  switch (status.code()) {
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kUnimplemented:
      logging::Log(
          Level::kWarning, "request_failed",
          {F("method", method), F("request_id", request_id), F("code", CodeName(status.code())),
           F("message", std::string(status.message())), F("seconds", seconds)});
      return;
    default:
      break;
  }
  if (!logging::Enabled(Level::kDebug)) return;
  logging::Log(
      Level::kDebug, "request",
      {F("method", method), F("request_id", request_id), F("code", CodeName(status.code())),
       F("message", std::string(status.message())), F("seconds", seconds)});
}

void SubmitAttend(ServiceContext* service, std::shared_ptr<const v1::AttendRequest> request,
                  absl::Time rpc_deadline, scheduler::CancelFlag cancelled,
                  scheduler::Completion done) {
  absl::StatusOr<wire::DecodedRequest> decoded = wire::DecodeRequest(*request, service->limits);
  if (!decoded.ok()) {
    std::move(done)(decoded.status());
    return;
  }
  // The answer's tensors plus a little for the rest of the message.
  const int64_t response_bytes = decoded->out_bytes() + decoded->lse_bytes() + 4096;
  if (response_bytes > service->max_response_bytes) {
    std::move(done)(absl::ResourceExhaustedError(absl::StrCat(
        "the response would take ", response_bytes, " bytes, over server.max_message_bytes = ",
        service->max_response_bytes, "; split the problem (e.g. over heads or queries)")));
    return;
  }
  auto item = std::make_unique<scheduler::WorkItem>();
  item->request = std::move(request);
  item->priority = decoded->priority;
  item->decoded = *std::move(decoded);
  item->deadline = service->scheduler->DeadlineFor(rpc_deadline);
  item->cancelled = std::move(cancelled);
  item->done = std::move(done);
  service->scheduler->Submit(std::move(item));
}

}  // namespace attnd::server::service
