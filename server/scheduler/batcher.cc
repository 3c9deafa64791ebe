#include "server/scheduler/batcher.h"

#include <algorithm>
#include <cstring>

namespace attnd::server::scheduler {
namespace {

// A group under construction: its head, the compatible requests that fit, and whether waiting
// could still make it bigger.
struct Group {
  std::vector<size_t> indices;
  int64_t tokens = 0;
  int64_t cost = 0;
  bool closed = false;  // full, or a compatible request did not fit
  absl::Time earliest_deadline = absl::InfiniteFuture();
};

// Saturating a + b for non-negative figures.
int64_t AddCapped(int64_t a, int64_t b) {
  return a > kUnlimitedBudget - b ? kUnlimitedBudget : a + b;
}

// The group of queue[head]: compatible, unassigned requests in service order within the caps.
// Marks every member in *assigned.
Group Fill(absl::Span<const QueuedView> queue, size_t head, const BatchPolicy& policy,
           int64_t budget, std::vector<bool>* assigned) {
  const int64_t max_requests = std::max<int64_t>(policy.max_batch_requests, 1);
  const QueuedView& h = queue[head];
  Group g;
  g.indices.push_back(head);
  g.tokens = std::max<int64_t>(h.tokens, 0);
  g.cost = std::max<int64_t>(h.memory_cost_bytes, 0);
  g.earliest_deadline = h.deadline;
  (*assigned)[head] = true;
  for (size_t i = head + 1; i < queue.size(); ++i) {
    if (static_cast<int64_t>(g.indices.size()) >= max_requests) break;
    const QueuedView& r = queue[i];
    if ((*assigned)[i] || r.key != h.key) continue;
    const int64_t tokens = AddCapped(g.tokens, std::max<int64_t>(r.tokens, 0));
    const int64_t cost = AddCapped(g.cost, std::max<int64_t>(r.memory_cost_bytes, 0));
    if (tokens > policy.max_batch_tokens || cost > budget) {
      g.closed = true;  // it waits for the next batch; holding this one cannot let it in
      continue;
    }
    g.indices.push_back(i);
    g.tokens = tokens;
    g.cost = cost;
    g.earliest_deadline = std::min(g.earliest_deadline, r.deadline);
    (*assigned)[i] = true;
  }
  if (static_cast<int64_t>(g.indices.size()) >= max_requests ||
      g.tokens >= policy.max_batch_tokens || g.cost >= budget) {
    g.closed = true;
  }
  return g;
}

}  // namespace

bool operator==(const BatchKey& a, const BatchKey& b) {
  // The scale is compared bitwise: two requests share a launch only with the very same value.
  return a.dtype == b.dtype && a.layout == b.layout && a.q_heads == b.q_heads &&
         a.kv_heads == b.kv_heads && a.head_dim == b.head_dim && a.v_head_dim == b.v_head_dim &&
         std::memcmp(&a.scale, &b.scale, sizeof(double)) == 0 && a.causal == b.causal &&
         a.window_left == b.window_left && a.window_right == b.window_right &&
         a.has_kv_lengths == b.has_kv_lengths && a.has_bias == b.has_bias &&
         (!a.has_bias || (a.bias_dtype == b.bias_dtype && a.bias_broadcast == b.bias_broadcast)) &&
         a.return_lse == b.return_lse && a.variant_hint == b.variant_hint &&
         a.q_chunk == b.q_chunk && a.kv_chunk == b.kv_chunk;
}

BatchKey BatchKeyOf(const kernels::AttentionProblem& p, kernels::Variant variant_hint,
                    int64_t q_chunk, int64_t kv_chunk) {
  BatchKey key;
  key.dtype = p.dtype;
  key.layout = p.layout;
  key.q_heads = p.q_heads;
  key.kv_heads = p.kv_heads;
  key.head_dim = p.head_dim;
  key.v_head_dim = p.v_head_dim;
  key.scale = p.scale;
  key.causal = p.causal;
  key.window_left = p.window_left;
  key.window_right = p.window_right;
  key.has_kv_lengths = p.has_kv_lengths;
  key.has_bias = p.has_bias;
  if (p.has_bias) {
    key.bias_dtype = p.bias_dtype;
    for (int d = 0; d < 4; ++d) {
      if (p.bias_shape[d] == 1) key.bias_broadcast |= 1 << d;
    }
  }
  key.return_lse = p.return_lse;
  key.variant_hint = variant_hint;
  key.q_chunk = q_chunk;
  key.kv_chunk = kv_chunk;
  return key;
}

int64_t RequestTokens(const kernels::AttentionProblem& p) {
  return p.batch * std::max(p.q_len, p.kv_len);
}

BatchChoice ChooseBatch(absl::Span<const QueuedView> queue, absl::Time now,
                        const BatchPolicy& policy, int64_t memory_budget_bytes) {
  BatchChoice choice;
  std::vector<bool> assigned(queue.size(), false);
  size_t next_head = 0;
  bool held = false;
  int held_priority = 0;
  for (int group = 0; group < kMaxGroups; ++group) {
    while (next_head < queue.size() && assigned[next_head]) ++next_head;
    if (next_head >= queue.size()) break;
    const QueuedView& head = queue[next_head];
    // A held group of a higher level keeps lower levels waiting behind it.
    if (held && head.priority < held_priority) break;
    Group g = Fill(queue, next_head, policy, memory_budget_bytes, &assigned);
    const absl::Time ready_at = head.enqueue_time + policy.max_queue_delay;
    // Holding past a member's deadline would only expire it: run now instead.
    if (g.closed || now >= ready_at || g.earliest_deadline <= ready_at) {
      choice.indices = std::move(g.indices);
      std::sort(choice.indices.begin(), choice.indices.end());
      choice.retry_at = absl::InfiniteFuture();
      return choice;
    }
    choice.retry_at = std::min(choice.retry_at, ready_at);
    if (!held) {
      held = true;
      held_priority = head.priority;
    }
  }
  return choice;
}

}  // namespace attnd::server::scheduler
