// The batcher's decision: which waiting requests run next, as a pure function of the queue (a
// read-only view in service order), the time and the policy. The scheduler's threads apply it.
//
// Today a batch is one request: the head of the queue (highest priority, then oldest). Grouping
// compatible requests (same dtype, head dims and mask kind, up to max_batch_requests and
// max_batch_tokens, held at most max_queue_delay) comes with the variable-length kernels; it
// changes only ChooseBatch.
#ifndef ATTND_SERVER_SCHEDULER_BATCHER_H_
#define ATTND_SERVER_SCHEDULER_BATCHER_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "kernels/problem.h"

namespace attnd::server::scheduler {

struct BatchPolicy {
  int64_t max_batch_requests = 1;
  int64_t max_batch_tokens = int64_t{1} << 20;
  absl::Duration max_queue_delay = absl::ZeroDuration();
};

// What the batcher may look at of one waiting request.
struct QueuedView {
  int priority = 0;
  absl::Time enqueue_time;
  absl::Time deadline;
  const kernels::AttentionProblem* problem = nullptr;
};

struct BatchChoice {
  std::vector<size_t> indices;  // into the view; empty: run nothing now
  // When nothing is chosen although requests wait: when to ask again (InfiniteFuture: on the
  // next change to the queue).
  absl::Time retry_at = absl::InfiniteFuture();
};

// `queue` is in service order: priority descending, then arrival. Expired and cancelled
// requests have already been removed.
BatchChoice ChooseBatch(absl::Span<const QueuedView> queue, absl::Time now,
                        const BatchPolicy& policy);

}  // namespace attnd::server::scheduler

#endif  // ATTND_SERVER_SCHEDULER_BATCHER_H_
