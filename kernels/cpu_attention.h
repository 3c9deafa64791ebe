// CPU attention: the float64 oracle and the chunked online-softmax variant.
#ifndef ATTND_KERNELS_CPU_ATTENTION_H_
#define ATTND_KERNELS_CPU_ATTENTION_H_

#include <vector>

#include "absl/status/status.h"
#include "kernels/planner.h"
#include "kernels/problem.h"

namespace attnd::kernels {

// The oracle's results in float64.
struct ReferenceResult {
  // Both as AttentionTensors' out and lse: ragged problems packed (out [total_q, Hq, Dv], lse
  // sequence b's [Hq, Mq_b] from element Hq·q_offsets[b]).
  std::vector<double> out;  // [B, Mq, Hq, Dv] in the problem's layout
  std::vector<double> lse;  // [B, Hq, Mq]
};

// float64 accumulation, O(Mq·Mk) memory per head; the oracle for every test. Computes only the
// query rows in [row_begin, row_end) of every (b, h) when given (other rows left 0), so tests
// can sample rows of problems too large to check whole. Ragged: rows [row_begin,
// min(row_end, Mq_b)) of each sequence, counted from its own first row; row_end <= q_len.
absl::Status ReferenceAttention(const AttentionProblem& problem, const AttentionTensors& tensors,
                                ReferenceResult* result, int64_t row_begin = 0,
                                int64_t row_end = -1);

// Writes the reference result into tensors.out / tensors.lse in the problem's dtype (for the
// `reference` variant served by the server).
absl::Status RunReference(const AttentionProblem& problem, const AttentionTensors& tensors);

// BLAS on q×kv tiles with an online-softmax merge, plan.threads workers. Allocates at most
// plan.workspace_bytes (it owns its workspace on the CPU).
absl::Status RunCpuChunked(const Plan& plan, const AttentionProblem& problem,
                           const AttentionTensors& tensors);

}  // namespace attnd::kernels

#endif  // ATTND_KERNELS_CPU_ATTENTION_H_
