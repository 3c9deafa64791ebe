// The CUDA variants' entry point: plain C++ (no CUDA headers needed to include it), so the
// server's CUDA executor and the GPU tests call it the same way.
//
// Plan/run split: the planner (kernels/planner.h) chose the variant and chunks; RunCuda launches
// everything on `stream`, allocates nothing, and uses only `workspace` (plan.workspace_bytes,
// 256-byte aligned) beyond the problem's own tensors. All tensor pointers are device pointers,
// laid out as kernels/problem.h says (kv_lengths: B int64 values on the device).
#ifndef ATTND_KERNELS_CUDA_CUDA_ATTENTION_H_
#define ATTND_KERNELS_CUDA_CUDA_ATTENTION_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "kernels/planner.h"
#include "kernels/problem.h"

namespace attnd::kernels::cuda {

// Per-stream handles, created once per executor stream and reused by every launch on it.
// Opaque here so callers need no CUDA headers: cudaStream_t, cublasHandle_t, cudnnHandle_t.
struct CudaContext {
  void* stream = nullptr;
  void* cublas = nullptr;
  void* cudnn = nullptr;  // null when cuDNN is not available
  int device = 0;
  // cuBLAS's own workspace (cublasSetWorkspace), allocated once by
  // CreateCudaContext so that no cuBLAS call allocates on the request path.
  void* cublas_workspace = nullptr;
  int64_t cublas_workspace_bytes = 0;
  // The second lane of sliced and chunked runs (kCudaLanes, kernels/cuda/workspace_layout.h):
  // its own stream, cuBLAS handle and cuBLAS workspace, and the two events that fork it from
  // `stream` and join it back. Null in a context made without it.
  void* lane_stream = nullptr;
  void* lane_cublas = nullptr;
  void* lane_cublas_workspace = nullptr;
  void* fork_event = nullptr;
  void* join_event = nullptr;
};

// Creates/destroys the handles of one context on `device` (two new non-blocking streams, the
// second for the second lane).
// CreateCudaContext makes `device` the calling thread's current device (cuBLAS binds its handle
// to it); on failure it releases what it made and leaves *context empty. The cuBLAS handle runs on
// the stream with CUBLAS_DEFAULT_MATH and reduced-precision reductions disallowed (f32 GEMMs use
// CUBLAS_COMPUTE_32F_PEDANTIC: never TF32). Destroy synchronizes the stream first; it is a no-op
// on an empty context.
absl::Status CreateCudaContext(int device, CudaContext* context);
void DestroyCudaContext(CudaContext* context);

// The variants this build can run on the current device (naive, sliced, chunked, fused; cudnn
// when linked): for kernels::Capabilities::variants.
std::vector<Variant> CudaVariants();

// Runs plan.variant (kNaive, kSliced, kChunked, kFused, kCudnn) on `tensors`. Sliced and chunked
// plans of more than one lane (plan.threads) also use the context's second lane, forked from
// `stream` at the start and joined back into it before returning, failure or not: what the
// caller queues on `stream` afterwards (a copy-out, freeing the workspace) follows all of it.
// INVALID_ARGUMENT for a variant that is not a CUDA one or a workspace smaller than the plan's;
// INTERNAL (naming the call, file and line) for a CUDA, cuBLAS or cuDNN error. Does not
// synchronize `stream`.
// Makes context.device current when it is not. kCudnn: UNIMPLEMENTED unless built with
// attnd_kernels_cudnn (ATTND_WITH_CUDNN). kv_lengths outside [0, Mk] (on the device, so not
// checked here) are clamped into it.
absl::Status RunCuda(const Plan& plan, const AttentionProblem& problem,
                     const AttentionTensors& tensors, void* workspace, int64_t workspace_bytes,
                     const CudaContext& context);

}  // namespace attnd::kernels::cuda

#endif  // ATTND_KERNELS_CUDA_CUDA_ATTENTION_H_
