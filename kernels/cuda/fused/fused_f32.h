// The f32 path of the `fused` variant (fused_f32_kernel.cuh): the same options as the 16-bit
// kernel (both layouts, every mask, kv_lengths, GQA/MQA, a broadcast bias in any dtype, the LSE)
// for head dims D and Dv that are multiples of 8 up to kFusedF32MaxHeadDim, with both products in
// 3xTF32 on tensor cores so the result keeps f32 accuracy (never plain TF32). RunFused routes f32
// problems here. Plain C++, as fused_attention.h.
#ifndef ATTND_KERNELS_CUDA_FUSED_FUSED_F32_H_
#define ATTND_KERNELS_CUDA_FUSED_FUSED_F32_H_

#include "absl/status/status.h"
#include "kernels/problem.h"

namespace attnd::kernels::cuda {

// Runs the f32 fused kernel on `stream` (does not synchronize). INVALID_ARGUMENT when
// FusedRefusal is not empty, the dtype is not f32, or a tensor is not 16-byte aligned; INTERNAL
// for a launch error.
absl::Status RunFusedF32(const AttentionProblem& problem, const AttentionTensors& tensors,
                         void* stream);

// For tests only: the same kernel with one TF32 product per step instead of three (what a
// "silent TF32" kernel would compute), instantiated for head dims up to 128 only. The f32 tests
// run it to show that their tolerance rejects plain TF32 (tests/gpu/fused_f32_test.cc).
absl::Status RunFusedTf32ForTest(const AttentionProblem& problem, const AttentionTensors& tensors,
                                 void* stream);

}  // namespace attnd::kernels::cuda

#endif  // ATTND_KERNELS_CUDA_FUSED_FUSED_F32_H_
