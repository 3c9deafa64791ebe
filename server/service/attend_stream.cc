#include "server/service/attend_stream.h"

#include <utility>

#include "absl/status/status.h"

namespace attnd::server::service {

AttendStreamReactor::AttendStreamReactor(ServiceContext* service,
                                         grpc::CallbackServerContext* context)
    : service_(service),
      rpc_deadline_(absl::FromChrono(context->deadline())),
      cancelled_(scheduler::MakeCancelFlag()) {
  const bool draining = service_->streams.Add(this);
  {
    absl::MutexLock lock(&mu_);
    draining_ = draining;
  }
  StartNextRead();
}

void AttendStreamReactor::StartNextRead() {
  reading_ = std::make_shared<v1::AttendRequest>();
  StartRead(reading_.get());
}

bool AttendStreamReactor::ClaimFinishLocked() {
  if (finished_ || writing_ || outstanding_ > 0) return false;
  if (!reads_done_ && !draining_) return false;
  finished_ = true;
  return true;
}

bool AttendStreamReactor::ClaimResumeLocked() {
  // After a failed write the read is resumed too: it fails at once and ends the read side.
  if (!read_paused_ || draining_ || finished_) return false;
  if (outstanding_ >= service_->max_stream_outstanding) return false;
  read_paused_ = false;
  return true;
}

bool AttendStreamReactor::BeginDrain() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
  return ClaimFinishLocked();
}

void AttendStreamReactor::FinishNow() { Finish(grpc::Status::OK); }

void AttendStreamReactor::OnReadDone(bool ok) {
  if (!ok) {  // the client is done sending, or the call is gone
    bool finish;
    {
      absl::MutexLock lock(&mu_);
      reads_done_ = true;
      finish = ClaimFinishLocked();
    }
    if (finish) Finish(grpc::Status::OK);
    return;
  }
  std::shared_ptr<const v1::AttendRequest> request = std::move(reading_);
  bool draining;
  bool pause;
  {
    absl::MutexLock lock(&mu_);
    if (finished_) {  // drained while this message arrived: nothing may be written any more
      reads_done_ = true;
      return;
    }
    ++outstanding_;  // keeps the call (and this object) alive until the answer is written
    draining = draining_;
    pause = outstanding_ >= service_->max_stream_outstanding;
    read_paused_ = pause;
  }
  if (!pause) StartNextRead();

  service_->metrics->AddBytesReceived(static_cast<int64_t>(request->ByteSizeLong()));
  const absl::Time start = absl::Now();
  std::string request_id = request->request_id();
  if (draining) {
    Answer(request_id, start,
           absl::UnavailableError("the server is draining; send this request to another replica"));
    return;
  }
  SubmitAttend(service_, std::move(request), rpc_deadline_, cancelled_,
               [this, request_id, start](scheduler::AttendResult result) {
                 Answer(request_id, start, std::move(result));
               });
}

void AttendStreamReactor::Answer(const std::string& request_id, absl::Time start,
                                 scheduler::AttendResult result) {
  const absl::Status status = result.status();
  v1::AttendResponse response;
  if (status.ok()) {
    response = *std::move(result);
  } else {
    response.set_request_id(request_id);
    response.mutable_status()->set_code(static_cast<int32_t>(status.code()));
    response.mutable_status()->set_message(std::string(status.message()));
  }
  ReportAnswer(service_, "AttendStream", request_id, status, start);
  service_->metrics->AddBytesSent(static_cast<int64_t>(response.ByteSizeLong()));

  const v1::AttendResponse* to_write = nullptr;
  bool finish = false;
  bool resume = false;
  {
    absl::MutexLock lock(&mu_);
    if (write_failed_) {
      --outstanding_;  // the client is gone: nothing more can be written
      resume = ClaimResumeLocked();
      finish = ClaimFinishLocked();
    } else {
      writes_.push_back(std::move(response));  // deque: front() stays where it is
      if (!writing_) {
        writing_ = true;
        to_write = &writes_.front();
      }
    }
  }
  if (resume) StartNextRead();
  if (to_write != nullptr) {
    StartWrite(to_write);
  } else if (finish) {
    Finish(grpc::Status::OK);
  }
}

void AttendStreamReactor::OnWriteDone(bool ok) {
  const v1::AttendResponse* next = nullptr;
  bool finish = false;
  bool resume = false;
  {
    absl::MutexLock lock(&mu_);
    writes_.pop_front();
    --outstanding_;
    if (!ok) {
      write_failed_ = true;
      outstanding_ -= static_cast<int>(writes_.size());
      writes_.clear();
    }
    resume = ClaimResumeLocked();
    if (!writes_.empty()) {
      next = &writes_.front();
    } else {
      writing_ = false;
      finish = ClaimFinishLocked();
    }
  }
  if (resume) StartNextRead();
  if (next != nullptr) {
    StartWrite(next);
  } else if (finish) {
    Finish(grpc::Status::OK);
  }
}

void AttendStreamReactor::OnCancel() { cancelled_->store(true, std::memory_order_release); }

void AttendStreamReactor::OnDone() {
  service_->streams.Remove(this);
  delete this;
}

}  // namespace attnd::server::service
