// The batcher's decision: which waiting requests run next, as a pure function of the queue (a
// read-only view in service order), the time, the policy and the device's live memory budget.
// The scheduler's threads apply it; nothing here reads a clock, a device or a lock.
//
// A batch is a group of compatible requests (the same BatchKey: dtype, layout, heads, head dims,
// mask kind, bias kind, scale, LSE, expert overrides; sequence lengths and B may differ, as the
// variable-length kernels take them), chosen in service order:
//
//   head   the first request in service order (highest priority, then oldest) always runs, even
//          alone past every cap (a request larger than max_batch_tokens or the budget is never
//          starved; its runner re-plans it or answers RESOURCE_EXHAUSTED).
//   fill   then each later compatible request, in service order (lower priority levels fill what
//          the higher ones leave), while the batch stays within max_batch_requests,
//          max_batch_tokens and the memory budget (the sum of the requests' memory costs: their
//          device tensors plus the workspace the planner chose for them under the live budget).
//   hold   a batch that could still grow waits until its head has waited max_queue_delay. It
//          is closed (runs now) when it is full by requests, when a compatible request was left
//          out for tokens or memory (waiting cannot help), when it holds max_batch_tokens or the
//          whole budget, or when one of its requests' deadlines comes before the head's delay
//          ends.
//   others while the head's batch is held, the next group (the first request not compatible with
//          it) is considered the same way, up to kMaxGroups groups, but never one of a lower
//          priority level than a held group: priorities are served in order.
//
// Worked example (max_batch_requests 4, max_batch_tokens 1024, max_queue_delay 2 ms, one
// priority level): A(key x, 256 tokens) arrives at t = 0 ms, B(y, 256) at 0.5, C(x, 512) at 1,
// D(x, 512) at 1.2, E(y, 128) at 1.5.
//   t=1.0  [A, C] (768 tokens) is held until 2.0; [B] until 2.5: nothing runs, ask at 2.0.
//   t=1.2  [A, C] leaves D out (768 + 512 > 1024): closed, [A, C] runs now.
//          Then [B] is held until 2.5 and [D] until 3.2.
//   t=1.5  [B, E] held until 2.5; [D] until 3.2.
//   t=2.5  [B, E] runs; t=3.2 [D] runs.
// (BatcherTest.WorkedExampleFromTheHeader replays exactly this.)
#ifndef ATTND_SERVER_SCHEDULER_BATCHER_H_
#define ATTND_SERVER_SCHEDULER_BATCHER_H_

#include <cstddef>
#include <cstdint>
#include <limits>
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

// Everything that must be equal for two requests to run in one (ragged) launch.
struct BatchKey {
  kernels::DType dtype = kernels::DType::kF32;
  kernels::Layout layout = kernels::Layout::kBMHK;
  int64_t q_heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t v_head_dim = 0;
  double scale = 0;
  kernels::Causal causal = kernels::Causal::kNone;
  int64_t window_left = -1;
  int64_t window_right = -1;
  bool has_kv_lengths = false;
  bool has_bias = false;
  kernels::DType bias_dtype = kernels::DType::kF32;
  int bias_broadcast = 0;  // bit i set: bias dim i is broadcast (size 1)
  bool return_lse = false;
  kernels::Variant variant_hint = kernels::Variant::kAuto;
  int64_t q_chunk = 0;
  int64_t kv_chunk = 0;

  friend bool operator==(const BatchKey& a, const BatchKey& b);
  friend bool operator!=(const BatchKey& a, const BatchKey& b) { return !(a == b); }
};

// The key of a request with these expert overrides (wire::DecodedRequest's).
BatchKey BatchKeyOf(const kernels::AttentionProblem& problem, kernels::Variant variant_hint,
                    int64_t q_chunk, int64_t kv_chunk);

// What one request counts against max_batch_tokens: B · max(Mq, Mk) (self-attention: its
// tokens; cross-attention: the longer side).
int64_t RequestTokens(const kernels::AttentionProblem& problem);

// A budget that never binds (no memory figure for the device).
inline constexpr int64_t kUnlimitedBudget = std::numeric_limits<int64_t>::max() / 4;

// What the batcher may look at of one waiting request.
struct QueuedView {
  int priority = 0;
  absl::Time enqueue_time;
  absl::Time deadline = absl::InfiniteFuture();
  BatchKey key;
  int64_t tokens = 0;
  int64_t memory_cost_bytes = 0;
};

struct BatchChoice {
  std::vector<size_t> indices;  // into the view, ascending (service order); empty: run nothing
  // When nothing is chosen although requests wait: when to ask again (InfiniteFuture: on the
  // next change to the queue).
  absl::Time retry_at = absl::InfiniteFuture();
};

// Groups considered per decision (bounds the work to O(kMaxGroups · queue)).
inline constexpr int kMaxGroups = 8;

// `queue` is in service order: priority descending, then arrival. Expired and cancelled
// requests have already been removed. `memory_budget_bytes` is the device's live budget.
BatchChoice ChooseBatch(absl::Span<const QueuedView> queue, absl::Time now,
                        const BatchPolicy& policy, int64_t memory_budget_bytes = kUnlimitedBudget);

}  // namespace attnd::server::scheduler

#endif  // ATTND_SERVER_SCHEDULER_BATCHER_H_
