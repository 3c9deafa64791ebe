// The mask policy: which keys one query row sees. Defined once here and used by the float64
// reference, cpu_chunked and the GPU kernels, so every variant masks identically.
//
// For batch element b with Mk_b valid keys (kv_lengths[b] when given, else Mk) and query row i:
//   aligned position  i' = i                  (causal top-left)
//                     i' = i + (Mk_b - Mq)    (causal bottom-right, and the window without causal)
//   causal            keys j <= i'
//   sliding window    keys i' - left <= j <= i' + right (a negative bound is unbounded)
//   key padding       keys j < Mk_b
// Ragged problems: sequence b's mask is this policy for a dense problem of Mq = Mq_b and
// Mk = Mk_b (ForSequence), so i' = i + (Mk_b - Mq_b) with its own lengths, never the maxima.
// The visible keys always form one interval [lo, hi); lo == hi when the row sees nothing (its
// output is 0 and its LSE -inf). Both ends are non-decreasing in i.
#ifndef ATTND_KERNELS_MASK_H_
#define ATTND_KERNELS_MASK_H_

#include <cstdint>

#include "kernels/problem.h"

#if defined(__CUDACC__)
#define ATTND_HOST_DEVICE __host__ __device__
#else
#define ATTND_HOST_DEVICE
#endif

namespace attnd::kernels {

struct KeyRange {
  int64_t lo = 0;  // first visible key
  int64_t hi = 0;  // one past the last visible key; hi == lo: none visible
  ATTND_HOST_DEVICE bool empty() const { return hi <= lo; }
  ATTND_HOST_DEVICE int64_t size() const { return hi > lo ? hi - lo : 0; }
};

struct MaskPolicy {
  Causal causal = Causal::kNone;
  int64_t q_len = 0;         // Mq
  int64_t kv_len = 0;        // Mk
  int64_t window_left = -1;  // clamped to Mq + Mk: wider windows are the same as unbounded
  int64_t window_right = -1;

  static MaskPolicy FromProblem(const AttentionProblem& problem) {
    MaskPolicy policy;
    policy.causal = problem.causal;
    policy.q_len = problem.q_len;
    policy.kv_len = problem.kv_len;
    // i' lies in [-Mq, Mk + Mq), so a bound of Mq + Mk already reaches every key; clamping keeps
    // i' ± bound far from int64 overflow.
    const int64_t widest = problem.q_len + problem.kv_len;
    policy.window_left = problem.window_left > widest ? widest : problem.window_left;
    policy.window_right = problem.window_right > widest ? widest : problem.window_right;
    return policy;
  }

  // The policy of one sequence of a ragged problem: its own Mq_b and Mk_b. The window clamp of
  // FromProblem (q_len + kv_len of the maxima) stays: it is wider than this sequence's, so still
  // the same as unbounded.
  ATTND_HOST_DEVICE MaskPolicy ForSequence(int64_t seq_q_len, int64_t seq_kv_len) const {
    MaskPolicy policy = *this;
    policy.q_len = seq_q_len;
    policy.kv_len = seq_kv_len;
    return policy;
  }

  // Valid keys of batch element b.
  ATTND_HOST_DEVICE int64_t KeysOf(const int64_t* kv_lengths, int64_t b) const {
    return kv_lengths != nullptr ? kv_lengths[b] : kv_len;
  }

  // Keys [lo, hi) that query row i sees when its batch element has `valid_keys` keys.
  ATTND_HOST_DEVICE KeyRange Visible(int64_t i, int64_t valid_keys) const {
    const int64_t aligned = causal == Causal::kTopLeft ? i : i + (valid_keys - q_len);
    int64_t lo = 0;
    int64_t hi = valid_keys;
    if (causal != Causal::kNone && aligned + 1 < hi) hi = aligned + 1;
    if (window_right >= 0 && aligned + window_right + 1 < hi) hi = aligned + window_right + 1;
    if (window_left >= 0 && aligned - window_left > lo) lo = aligned - window_left;
    if (lo > valid_keys) lo = valid_keys;
    if (hi < lo) hi = lo;
    return KeyRange{lo, hi};
  }

  // True when no mask applies at all: every row sees [0, Mk_b).
  ATTND_HOST_DEVICE bool IsFull() const {
    return causal == Causal::kNone && window_left < 0 && window_right < 0;
  }
};

}  // namespace attnd::kernels

#endif  // ATTND_KERNELS_MASK_H_
