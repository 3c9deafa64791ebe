// The `fused` variant: attnd's own attention kernel (kernels/cuda/fused/fused_kernel.cuh), the
// scores never leaving the SM. Plain C++: the executor, the tests and the benchmark call it
// without CUDA headers (streams are passed as void*, a cudaStream_t).
//
// It takes f16 and bf16, head dims D and Dv that are multiples of 8 up to 256, both layouts,
// every mask (causal either alignment, sliding window, kv_lengths), GQA/MQA, an additive bias
// broadcast to [B, Hq, Mq, Mk] in any dtype, and the LSE. Decode-like problems (FusedSplitKv in
// kernels/fused_support.h: Mq <= 16, Mk >= 1024) run the split-KV path (split_kv.cuh), whose
// partial results take FusedWorkspaceLayout::For(problem).bytes of workspace; the one-pass
// kernel takes none.
// f32 takes the same options up to kFusedF32MaxHeadDim on its own kernel (fused_f32.h: 3xTF32,
// f32 accuracy; no split-KV path, no workspace).
#ifndef ATTND_KERNELS_CUDA_FUSED_FUSED_ATTENTION_H_
#define ATTND_KERNELS_CUDA_FUSED_FUSED_ATTENTION_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "kernels/fused_support.h"  // FusedRefusal
#include "kernels/problem.h"

namespace attnd::kernels::cuda {

// Runs the fused kernel on `stream` (does not synchronize), allocating nothing. INVALID_ARGUMENT
// when FusedRefusal is not empty, a tensor is not 16-byte aligned, or the split path's workspace
// is smaller than FusedWorkspaceLayout::For(problem).bytes, null or not 256-byte aligned (the
// one-pass kernel ignores `workspace`); INTERNAL for a launch error. kv_lengths outside [0, Mk]
// are clamped into it.
absl::Status RunFused(const AttentionProblem& problem, const AttentionTensors& tensors,
                      void* workspace, int64_t workspace_bytes, void* stream);

// "" when the current device runs the fused kernel for `problem` (FusedRefusal's rules aside),
// else why not: a head dim above kFusedMaxHeadDim needs the wide kernel, sm_90 only. RunFused
// refuses such problems with INVALID_ARGUMENT; the CUDA executor drops fused from the planner's
// choices for them.
std::string FusedDeviceRefusal(const AttentionProblem& problem);

}  // namespace attnd::kernels::cuda

#endif  // ATTND_KERNELS_CUDA_FUSED_FUSED_ATTENTION_H_
