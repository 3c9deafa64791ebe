// AttendStream: one reactor object per call. Each request read goes through the same path as a
// unary Attend; answers are written in completion order (keyed by request_id), one write in
// flight at a time, the rest queued. A failed request is answered in-stream with
// AttendResponse.status. The call finishes once the client is done sending (or the server
// drains) and every answer is written. No lock is held while calling into gRPC. With
// max_stream_outstanding requests unanswered the reactor stops reading until an answer is
// written, so a client that pipelines far ahead is held back by flow control, not refused.
#ifndef ATTND_SERVER_SERVICE_ATTEND_STREAM_H_
#define ATTND_SERVER_SERVICE_ATTEND_STREAM_H_

#include <deque>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "attnd/v1/attention.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "server/scheduler/work_item.h"
#include "server/service/service_context.h"

namespace attnd::server::service {

class AttendStreamReactor final
    : public grpc::ServerBidiReactor<v1::AttendRequest, v1::AttendResponse> {
 public:
  AttendStreamReactor(ServiceContext* service, grpc::CallbackServerContext* context);

  // From StreamRegistry::DrainAll: stop computing new requests (they are answered UNAVAILABLE).
  // True when the stream is idle and the caller now owns calling FinishNow().
  bool BeginDrain();
  void FinishNow();

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  void StartNextRead();
  // A request's answer (from the scheduler's completion, or at once for a refusal).
  void Answer(const std::string& request_id, absl::Time start, scheduler::AttendResult result);
  // Whether the call may finish now; if so marks it finished (the caller then calls Finish).
  bool ClaimFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether a paused read chain may start again now; if so marks it running (the caller then
  // calls StartNextRead).
  bool ClaimResumeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  ServiceContext* const service_;
  const absl::Time rpc_deadline_;
  const scheduler::CancelFlag cancelled_;

  // Touched only by the read chain (one read in flight at a time).
  std::shared_ptr<v1::AttendRequest> reading_;

  absl::Mutex mu_;
  int outstanding_ ABSL_GUARDED_BY(mu_) = 0;  // requests read whose answer is not yet written
  std::deque<v1::AttendResponse> writes_ ABSL_GUARDED_BY(mu_);  // front() is being written
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool read_paused_ ABSL_GUARDED_BY(mu_) = false;  // no read in flight: too many outstanding
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool write_failed_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace attnd::server::service

#endif  // ATTND_SERVER_SERVICE_ATTEND_STREAM_H_
