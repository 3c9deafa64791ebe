// One request waiting for (or running on) a device: what the service hands the scheduler.
#ifndef ATTND_SERVER_SCHEDULER_WORK_ITEM_H_
#define ATTND_SERVER_SCHEDULER_WORK_ITEM_H_

#include <atomic>
#include <memory>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "attnd/v1/attention.pb.h"
#include "server/scheduler/batcher.h"
#include "wire/request_codec.h"

namespace attnd::server::scheduler {

using AttendResult = absl::StatusOr<v1::AttendResponse>;

// Called exactly once per item, with the response or the reason there is none. Rvalue-qualified:
// calling it consumes it.
using Completion = absl::AnyInvocable<void(AttendResult) &&>;

// Set (to true) by the gRPC reactor's OnCancel; read by the scheduler before it runs an item.
using CancelFlag = std::shared_ptr<std::atomic<bool>>;

inline CancelFlag MakeCancelFlag() { return std::make_shared<std::atomic<bool>>(false); }

struct WorkItem {
  // The request `decoded`'s views point into. The item keeps it alive (or, for a unary call,
  // gRPC does until the call is finished, which only `done` does) until `done` has run.
  std::shared_ptr<const v1::AttendRequest> request;
  wire::DecodedRequest decoded;
  int priority = 0;                                // clamped to [0, levels) by the queue
  absl::Time enqueue_time = absl::InfinitePast();  // stamped by the scheduler at Submit
  absl::Time deadline = absl::InfiniteFuture();
  CancelFlag cancelled;  // null: cannot be cancelled
  Completion done;
  // What the batcher reads, filled by the scheduler at Submit (outside its lock): the key of
  // the requests it may run with, its tokens, and its memory cost on the device (its tensors
  // plus the planner's workspace for it under the live budget).
  BatchKey batch_key;
  int64_t tokens = 0;
  int64_t memory_cost_bytes = 0;

  bool IsCancelled() const {
    return cancelled != nullptr && cancelled->load(std::memory_order_acquire);
  }
};

// Calls item->done with `result` (consuming it).
inline void Complete(WorkItem* item, AttendResult result) {
  Completion done = std::move(item->done);
  std::move(done)(std::move(result));
}

}  // namespace attnd::server::scheduler

#endif  // ATTND_SERVER_SCHEDULER_WORK_ITEM_H_
