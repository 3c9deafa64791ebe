#include "server/service/service_context.h"

#include <utility>

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

void SubmitAttend(ServiceContext* service, std::shared_ptr<const v1::AttendRequest> request,
                  absl::Time rpc_deadline, scheduler::CancelFlag cancelled,
                  scheduler::Completion done) {
  absl::StatusOr<wire::DecodedRequest> decoded = wire::DecodeRequest(*request, service->limits);
  if (!decoded.ok()) {
    std::move(done)(decoded.status());
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
