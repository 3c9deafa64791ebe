// What the `fused` variant (kernels/cuda/fused) takes, in plain C++ so the planner can ask
// without CUDA: f16 or bf16 with head dims D and Dv that are multiples of 8 up to
// kFusedMaxHeadDim, f32 (3xTF32, f32 accuracy) with such head dims up to kFusedF32MaxHeadDim,
// sequences of at most 2^31 - 1 rows (positions are 32-bit in the kernel). Everything else of
// the API (layouts, masks, kv_lengths, GQA, bias in any dtype, LSE) it takes.
#ifndef ATTND_KERNELS_FUSED_SUPPORT_H_
#define ATTND_KERNELS_FUSED_SUPPORT_H_

#include <cstdint>
#include <string>

#include "kernels/problem.h"

namespace attnd::kernels {

// The largest padded head dim the fused kernel is instantiated for.
constexpr int64_t kFusedMaxHeadDim = 256;
// The same for the f32 kernel (kernels/cuda/fused/fused_f32.cu).
constexpr int64_t kFusedF32MaxHeadDim = 256;

// "" when the fused kernel takes `problem`, else why not, e.g. "fused takes f32 head dims up to
// 256 (D 264, Dv 264)".
std::string FusedRefusal(const AttentionProblem& problem);

}  // namespace attnd::kernels

#endif  // ATTND_KERNELS_FUSED_SUPPORT_H_
