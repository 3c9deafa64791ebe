// The bounded priority queue of waiting requests: decisions only, no threads, no locks, no
// callbacks. The Scheduler holds it under its mutex and completes what it hands back outside.
//
// Service order: the highest priority level first, FIFO within a level. A request whose deadline
// has passed or whose client cancelled is removed and handed back with DEADLINE_EXCEEDED or
// CANCELLED instead of being chosen, so it is never computed.
#ifndef ATTND_SERVER_SCHEDULER_REQUEST_QUEUE_H_
#define ATTND_SERVER_SCHEDULER_REQUEST_QUEUE_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/scheduler/batcher.h"
#include "server/scheduler/work_item.h"

namespace attnd::server::scheduler {

// An item taken out of the queue without running, and the status to complete it with.
struct Dropped {
  std::unique_ptr<WorkItem> item;
  absl::Status status;
};

// Completes each dropped item with its status (calls the callbacks: no lock may be held).
void CompleteDropped(std::vector<Dropped>* dropped);

// Why `item` must not start at `now`: DEADLINE_EXCEEDED when its deadline is at or before `now`
// (checked first: a call whose deadline passed is also cancelled by gRPC), CANCELLED when its
// client cancelled; OK otherwise. Checked at the queue and again before each request of a batch
// launches.
absl::Status ExpiryStatus(const WorkItem& item, absl::Time now);

class RequestQueue {
 public:
  // max_requests >= 1 waiting at most; priorities clamped to [0, priority_levels).
  RequestQueue(int64_t max_requests, int priority_levels);

  RequestQueue(const RequestQueue&) = delete;
  RequestQueue& operator=(const RequestQueue&) = delete;

  int ClampPriority(int priority) const;

  // Admits *item (its priority clamped) and takes it (*item becomes null). Otherwise leaves *item
  // untouched and returns: DEADLINE_EXCEEDED when its deadline is at or before `now`, CANCELLED
  // when it was cancelled, RESOURCE_EXHAUSTED when max_requests are already waiting.
  absl::Status Push(std::unique_ptr<WorkItem>* item, absl::Time now);

  // Removes every waiting item that expired (deadline <= now) or was cancelled, appending it to
  // *dropped with its status.
  void DropExpired(absl::Time now, std::vector<Dropped>* dropped);

  // DropExpired(now), then the batcher's choice under `policy` and the device's live memory
  // budget: the items to run now, in service order (empty when none waits or the batcher holds
  // them; then *retry_at, when not null, says when to ask again).
  std::vector<std::unique_ptr<WorkItem>> PopNext(absl::Time now, const BatchPolicy& policy,
                                                 std::vector<Dropped>* dropped,
                                                 int64_t memory_budget_bytes = kUnlimitedBudget,
                                                 absl::Time* retry_at = nullptr);

  // Removes everything still waiting, in service order (for shutdown).
  std::vector<std::unique_ptr<WorkItem>> TakeAll();

  int64_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  bool full() const { return size_ >= max_requests_; }
  int64_t max_requests() const { return max_requests_; }

 private:
  const int64_t max_requests_;
  // levels_[p]: priority p's items, oldest first. Served from the highest p down.
  std::vector<std::deque<std::unique_ptr<WorkItem>>> levels_;
  int64_t size_ = 0;
};

}  // namespace attnd::server::scheduler

#endif  // ATTND_SERVER_SCHEDULER_REQUEST_QUEUE_H_
