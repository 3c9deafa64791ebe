// The workspace of the cuBLAS variants (naive, sliced, chunked), laid out in one place: the
// planner counts it with CudaWorkspaceLayout::For and RunCuda carves its buffers with the same
// struct, so the bytes planned are exactly the bytes used. Plain C++ (no CUDA headers), so the
// planner includes it in every build.
//
// Z = B·Hq score matrices, one per (batch element, query head). Every buffer starts on a
// 256-byte boundary (cuBLAS's tensor-core kernels want 16 bytes; 256 keeps each buffer on its own
// cache sectors). Worked example: chunked, f32, B=1, Hq=8, Dv=64, q_chunk=kv_chunk=128:
//   pointers 3·8·8 = 192 -> 256, scores 8·128·128·4 = 524288, row max and row sum 8·128·4 = 4096
//   each, acc 8·128·64·4 = 262144: 794880 bytes a lane; with Mq > 128, two lanes: 1589760.
#ifndef ATTND_KERNELS_CUDA_WORKSPACE_LAYOUT_H_
#define ATTND_KERNELS_CUDA_WORKSPACE_LAYOUT_H_

#include <cstdint>

#include "kernels/cpu_workspace.h"  // SaturatingMul, SaturatingAdd
#include "kernels/problem.h"

namespace attnd::kernels::cuda {

inline constexpr int64_t kCudaWorkspaceAlign = 256;

inline int64_t AlignUp256(int64_t bytes) {
  return SaturatingAdd(bytes, kCudaWorkspaceAlign - 1) / kCudaWorkspaceAlign * kCudaWorkspaceAlign;
}

// Streams a sliced or chunked run spreads its query slices over: slice i runs on lane i % lanes,
// each lane with its own stream, cuBLAS handle and copy of the buffers below. The slices are
// independent, so while one lane's GEMM computes the other's row kernel streams its scores, and
// each fills the other's launch gaps and tails.
inline constexpr int kCudaLanes = 2;

// Lanes a run of `variant` with `q_chunk` can use out of `lanes`: one per query slice at most
// (naive is one slice; other variants have no lanes: 1).
inline int CudaLanesUsed(const AttentionProblem& p, Variant variant, int64_t q_chunk, int lanes) {
  if (variant != Variant::kSliced && variant != Variant::kChunked) return 1;
  if (lanes < 1 || q_chunk < 1) return 1;
  const int64_t slices = (p.q_len + q_chunk - 1) / q_chunk;
  return slices < lanes ? static_cast<int>(slices < 1 ? 1 : slices) : lanes;
}

// Byte offsets inside one lane's share of the workspace (lane i's starts at i · lane_bytes); a
// buffer a variant does not use has 0 bytes.
struct CudaWorkspaceLayout {
  int64_t pointers = 0;  // void* [3, Z]: per-(b, h) A, B, C pointers of a batched GEMM
  int64_t scores = 0;    // f32 [Z, rows, cols]: S, then P in place (in the input dtype)
  int64_t row_max = 0;   // f32 [Z, q_chunk]: running max m (chunked)
  int64_t row_sum = 0;   // f32 [Z, q_chunk]: running sum l (chunked)
  int64_t acc = 0;       // f32 [Z, q_chunk, Dv]: unnormalised output (chunked)
  int64_t lane_bytes = 0;  // one lane's buffers
  int64_t bytes = 0;       // the whole workspace: lanes · lane_bytes

  // rows × cols of the score buffer: naive Mq × Mk, sliced q_chunk × Mk, chunked
  // q_chunk × kv_chunk. `lanes`: what CudaLanesUsed gives (1 for naive). Other variants: all
  // zero.
  static CudaWorkspaceLayout For(const AttentionProblem& p, Variant variant, int64_t q_chunk,
                                 int64_t kv_chunk, int lanes) {
    CudaWorkspaceLayout l;
    int64_t rows = 0;
    int64_t cols = 0;
    switch (variant) {
      case Variant::kNaive:
        rows = p.q_len;
        cols = p.kv_len;
        break;
      case Variant::kSliced:
        rows = q_chunk;
        cols = p.kv_len;
        break;
      case Variant::kChunked:
        rows = q_chunk;
        cols = kv_chunk;
        break;
      default:
        return l;
    }
    const int64_t z = SaturatingMul(p.batch, p.q_heads);
    const bool chunked = variant == Variant::kChunked;
    int64_t at = 0;
    auto take = [&at](int64_t bytes) {
      const int64_t offset = at;
      at = SaturatingAdd(at, AlignUp256(bytes));
      return offset;
    };
    l.pointers = take(SaturatingMul(SaturatingMul(3, z), static_cast<int64_t>(sizeof(void*))));
    l.scores = take(SaturatingMul(SaturatingMul(SaturatingMul(z, rows), cols), 4));
    l.row_max = take(chunked ? SaturatingMul(SaturatingMul(z, rows), 4) : 0);
    l.row_sum = take(chunked ? SaturatingMul(SaturatingMul(z, rows), 4) : 0);
    l.acc =
        take(chunked ? SaturatingMul(SaturatingMul(SaturatingMul(z, rows), p.v_head_dim), 4) : 0);
    l.lane_bytes = at;
    l.bytes = SaturatingMul(at, lanes < 1 ? 1 : lanes);
    return l;
  }
};

}  // namespace attnd::kernels::cuda

#endif  // ATTND_KERNELS_CUDA_WORKSPACE_LAYOUT_H_
