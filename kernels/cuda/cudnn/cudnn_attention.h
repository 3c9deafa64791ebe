// The `cudnn` variant: cuDNN's fused scaled-dot-product attention (forward) through
// cudnn-frontend's graph API. Plain C++ like cuda_attention.h: no CUDA or cuDNN header needed to
// include it. Built only where cuDNN and the frontend headers are found (ATTND_WITH_CUDNN).
//
// How attnd's options map onto cuDNN's SDPA graph:
//   layouts         strides of the [B, H, M, D] views cuDNN takes (BMHK and BHMK alike)
//   GQA / MQA       K and V with Hkv heads; cuDNN maps query head h to h / (Hq / Hkv)
//   causal          diagonal alignment top-left or bottom-right, right bound 0
//   window          left bound window_left + 1 (cuDNN keeps j > i' - bound), right bound
//                   window_right; bottom-right alignment when not causal (kernels/mask.h)
//   kv_lengths      cuDNN's padding mask: int32 seq_len_q (= Mq) and seq_len_kv [B], converted
//                   on the device from the int64 kv_lengths into the workspace
//   bias            the bias tensor with its own [bB, bH, bMq, bMk] shape and dtype (f32, f16,
//                   bf16); only the broadcasts checked on cuDNN 9.19 reach cuDNN:
//                   [1|B, 1|H, Mq, Mk], [1|B, 1, 1, Mk], [1, 1, Mq, 1] (it gets [B, H, 1, 1]
//                   wrong; see cudnn_graph_cache.h's RefusedUpFront)
//   return_lse      cuDNN's softmax stats [B, Hq, Mq, 1] f32 = max + log(sum exp): natural log,
//                   of the scaled and biased scores, which is attnd's LSE as it stands (checked
//                   against the float64 reference: within 7e-6 on the H200)
//   rows that see no key (kv_lengths 0, bottom-right with Mq > Mk_b, windows, a bias row of
//                   -inf): attnd defines output 0 and LSE -inf; a small kernel writes exactly that
//                   after cuDNN (finding bias-emptied rows by their -inf/NaN stats, which cuDNN
//                   then writes even without return_lse), so the answer never depends on what a
//                   cuDNN engine leaves in such rows
// Whether cuDNN runs a case is cuDNN's answer, never a guess here: CudnnSupports builds the graph
// (validate, operation graph, heuristics, support check, plan build) and says no when any step
// fails, with the frontend's message as the reason. Refused before asking: f32 (cuDNN's SDPA
// takes f16 and bf16) and the unchecked bias broadcasts above. Head dims must be multiples of 8
// (cuDNN's rule); up to 512 ran on the H200 with cuDNN 9.19.
//
// Built graphs are cached per (cuDNN handle, everything that shapes the graph), so each shape is
// built once per handle; the cache is thread-safe and keeps the least recently used 512 graphs.
// Calls must be made with the handle's device current (cudaSetDevice), as for any cuDNN call.
//
// For the planner (kernels/planner.h stays pure): the executor asks CudnnSupports for each
// problem before planning and leaves Variant::kCudnn out of Capabilities::variants when it says
// no; when the plan is kCudnn it sets plan.workspace_bytes to CudnnWorkspaceBytes (cuDNN's plan
// workspace, the int32 sequence lengths, and the stats scratch of a bias without LSE) and
// re-plans without kCudnn if that exceeds the budget. Tensors must be 16-byte aligned (pool
// allocations are); RunCudnn refuses others.
#ifndef ATTND_KERNELS_CUDA_CUDNN_CUDNN_ATTENTION_H_
#define ATTND_KERNELS_CUDA_CUDNN_CUDNN_ATTENTION_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/cuda/cuda_attention.h"
#include "kernels/planner.h"
#include "kernels/problem.h"

namespace attnd::kernels::cuda {

// A cuDNN handle bound to `stream` (a cudaStream_t; null = the legacy default stream), for
// CudaContext::cudnn. INTERNAL naming the cuDNN call on failure (no device, no driver).
absl::Status CreateCudnnHandle(void* stream, void** handle);
// Drops the cached graphs built with `handle`, then destroys it. Null is a no-op.
void DestroyCudnnHandle(void* handle);

// Whether cuDNN runs `problem` on the device of `cudnn_handle`: builds (and caches) its graph.
// false with the step that failed and cuDNN's message in `reason` (when given) for what cuDNN
// does not support; INVALID_ARGUMENT for an inconsistent problem or a null handle.
absl::StatusOr<bool> CudnnSupports(const AttentionProblem& problem, void* cudnn_handle,
                                   std::string* reason = nullptr);

// Workspace bytes RunCudnn needs for `problem`: cuDNN's plan workspace, with the padding mask two
// int32 [B] sequence-length arrays, and with a bias but no LSE the f32 [B, Hq, Mq] stats (each
// part 256-byte aligned). INVALID_ARGUMENT naming cuDNN's reason when cuDNN does not support the
// problem.
absl::StatusOr<int64_t> CudnnWorkspaceBytes(const AttentionProblem& problem, void* cudnn_handle);

// Runs the cached graph of `problem` on context.stream with context.cudnn, the RunCuda contract:
// allocates nothing, uses only `workspace` (CudnnWorkspaceBytes bytes, 256-byte aligned), does not
// synchronize. INVALID_ARGUMENT for plan.variant other than kCudnn, a problem cuDNN does not
// support, missing or misaligned tensors, or a workspace smaller than needed;
// FAILED_PRECONDITION without a cuDNN handle; INTERNAL naming the call, file and line for a CUDA
// or cuDNN error.
absl::Status RunCudnn(const Plan& plan, const AttentionProblem& problem,
                      const AttentionTensors& tensors, void* workspace, int64_t workspace_bytes,
                      const CudaContext& context);

// The graph cache's counters since the process started (for tests and debug logs).
struct CudnnGraphCacheStats {
  int64_t hits = 0;       // lookups that found a built graph
  int64_t builds = 0;     // graphs built (supported or not)
  int64_t evictions = 0;  // graphs dropped for capacity or with their handle
  int64_t entries = 0;    // graphs cached now
};
CudnnGraphCacheStats GetCudnnGraphCacheStats();

}  // namespace attnd::kernels::cuda

#endif  // ATTND_KERNELS_CUDA_CUDNN_CUDNN_ATTENTION_H_
