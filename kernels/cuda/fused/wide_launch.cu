// The wide kernel's launches (ws_launch.h's LaunchWide), one per 16-bit dtype.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/fused/wgmma_wide_kernel.cuh"
#include "kernels/cuda/fused/ws_launch.h"

namespace attnd::kernels::cuda::fused {
namespace {

template <class T>
absl::Status Launch(const FusedParams& params, const WsTensorMaps& maps, const AttentionProblem& p,
                    cudaStream_t stream) {
  auto* kernel = &WgmmaWideForwardKernel<T>;
  constexpr int kSmemBytes = WideShape::kSmemBytes;
  if (const cudaError_t e =
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes);
      e != cudaSuccess) {
    return absl::InternalError(absl::StrCat("fused wide kernel shared memory ", kSmemBytes,
                                            " bytes: ", cudaGetErrorString(e)));
  }
  const int64_t m_blocks = (p.q_len + WideShape::kBlockM - 1) / WideShape::kBlockM;
  const dim3 grid(static_cast<unsigned>(m_blocks), static_cast<unsigned>(p.q_heads),
                  static_cast<unsigned>(p.batch));
  kernel<<<grid, WideShape::kThreads, kSmemBytes, stream>>>(params, maps);
  if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) {
    return absl::InternalError(absl::StrCat("fused wide kernel launch (grid ", m_blocks, "x",
                                            p.q_heads, "x", p.batch, "): ", cudaGetErrorString(e)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status LaunchWide(const FusedParams& params, const WsTensorMaps& maps,
                        const AttentionProblem& p, cudaStream_t stream) {
  return p.dtype == DType::kF16 ? Launch<__half>(params, maps, p, stream)
                                : Launch<__nv_bfloat16>(params, maps, p, stream);
}

}  // namespace attnd::kernels::cuda::fused
