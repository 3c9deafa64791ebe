// The fused variant's split-KV launcher (split_kv.cu; kernels in split_kv.cuh), called by
// RunFused for the problems FusedSplitKv (kernels/fused_support.h) sends there. Plain C++.
#ifndef ATTND_KERNELS_CUDA_FUSED_SPLIT_KV_H_
#define ATTND_KERNELS_CUDA_FUSED_SPLIT_KV_H_

#include "absl/status/status.h"
#include "kernels/cuda/fused/fused_params.h"
#include "kernels/fused_support.h"
#include "kernels/problem.h"

namespace attnd::kernels::cuda {

// Launches the partial kernel and the combine kernel on `stream` (a cudaStream_t), the partials
// in `workspace` (256-byte aligned, at least layout.bytes: RunFused checks both). `params` is
// RunFused's, for the one-pass kernel; `dim` the padded head dim (FusedPaddedDim).
absl::Status RunSplitKv(const fused::FusedParams& params, const AttentionProblem& problem,
                        const FusedSplitPlan& plan, const FusedWorkspaceLayout& layout, int dim,
                        void* workspace, void* stream);

}  // namespace attnd::kernels::cuda

#endif  // ATTND_KERNELS_CUDA_FUSED_SPLIT_KV_H_
