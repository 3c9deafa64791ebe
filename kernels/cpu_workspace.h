// The per-thread workspace of cpu_chunked, laid out in one place: the planner counts it with
// CpuTileLayout::For and RunCpuChunked carves its buffers with the same struct, so the bytes
// planned are exactly the bytes allocated.
#ifndef ATTND_KERNELS_CPU_WORKSPACE_H_
#define ATTND_KERNELS_CPU_WORKSPACE_H_

#include <cstdint>
#include <limits>

#include "kernels/mask.h"
#include "kernels/problem.h"

namespace attnd::kernels {

// int64 arithmetic that saturates instead of overflowing (for byte counts of huge problems).
inline int64_t SaturatingMul(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_mul_overflow(a, b, &r) ? std::numeric_limits<int64_t>::max() : r;
}
inline int64_t SaturatingAdd(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_add_overflow(a, b, &r) ? std::numeric_limits<int64_t>::max() : r;
}

// Every buffer starts on a cache line (and an AVX-512 vector) boundary.
inline constexpr int64_t kWorkspaceAlign = 64;

inline int64_t AlignUp(int64_t bytes) {
  return SaturatingAdd(bytes, kWorkspaceAlign - 1) / kWorkspaceAlign * kWorkspaceAlign;
}

// Byte offsets of one thread's buffers inside its slice of the workspace.
struct CpuTileLayout {
  int64_t scores = 0;    // f32 [q_chunk, kv_chunk]: S, then P in place
  int64_t acc = 0;       // f32 [q_chunk, Dv]: running unnormalised output
  int64_t row_max = 0;   // f32 [q_chunk]: running max m
  int64_t row_sum = 0;   // f32 [q_chunk]: running sum l
  int64_t ranges = 0;    // KeyRange [q_chunk]: visible keys of each row
  int64_t q_tile = 0;    // f32 [q_chunk, D]  (f16/bf16 only; f32 inputs feed BLAS in place)
  int64_t k_tile = 0;    // f32 [kv_chunk, D]  (f16/bf16 only)
  int64_t v_tile = 0;    // f32 [kv_chunk, Dv] (f16/bf16 only)
  int64_t bias_row = 0;  // f32 [kv_chunk]     (f16/bf16 bias only)
  int64_t bytes = 0;     // the whole slice, a multiple of kWorkspaceAlign

  static CpuTileLayout For(const AttentionProblem& p, int64_t q_chunk, int64_t kv_chunk) {
    CpuTileLayout l;
    int64_t at = 0;
    auto take = [&at](int64_t bytes) {
      const int64_t offset = at;
      at = SaturatingAdd(at, AlignUp(bytes));
      return offset;
    };
    const bool convert = p.dtype != DType::kF32;
    l.scores = take(SaturatingMul(SaturatingMul(q_chunk, kv_chunk), 4));
    l.acc = take(SaturatingMul(SaturatingMul(q_chunk, p.v_head_dim), 4));
    l.row_max = take(SaturatingMul(q_chunk, 4));
    l.row_sum = take(SaturatingMul(q_chunk, 4));
    l.ranges = take(SaturatingMul(q_chunk, static_cast<int64_t>(sizeof(KeyRange))));
    l.q_tile = take(convert ? SaturatingMul(SaturatingMul(q_chunk, p.head_dim), 4) : 0);
    l.k_tile = take(convert ? SaturatingMul(SaturatingMul(kv_chunk, p.head_dim), 4) : 0);
    l.v_tile = take(convert ? SaturatingMul(SaturatingMul(kv_chunk, p.v_head_dim), 4) : 0);
    const bool convert_bias = p.has_bias && p.bias_dtype != DType::kF32;
    l.bias_row = take(convert_bias ? SaturatingMul(kv_chunk, 4) : 0);
    l.bytes = at;
    return l;
  }
};

// Work items of cpu_chunked: one per (b, h, query chunk).
inline int64_t CpuWorkItems(const AttentionProblem& p, int64_t q_chunk) {
  const int64_t chunks = q_chunk > 0 ? (p.q_len + q_chunk - 1) / q_chunk : 0;
  return SaturatingMul(SaturatingMul(p.batch, p.q_heads), chunks);
}

// Threads RunCpuChunked really starts: never more than there are work items.
inline int CpuThreadsUsed(const AttentionProblem& p, int64_t q_chunk, int threads) {
  const int64_t items = CpuWorkItems(p, q_chunk);
  if (threads < 1) threads = 1;
  return items < threads ? static_cast<int>(items < 1 ? 1 : items) : threads;
}

}  // namespace attnd::kernels

#endif  // ATTND_KERNELS_CPU_WORKSPACE_H_
