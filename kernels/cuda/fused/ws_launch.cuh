// Definitions of ws_launch.h's launches; included by ws_launch_cp_async.cu, ws_launch_tma.cu and
// ws_launch_bias_tiles.cu only (each instantiates one of them).
#ifndef ATTND_KERNELS_CUDA_FUSED_WS_LAUNCH_CUH_
#define ATTND_KERNELS_CUDA_FUSED_WS_LAUNCH_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/fused/wgmma_ws_kernel.cuh"
#include "kernels/cuda/fused/ws_launch.h"
#include "kernels/fused_support.h"  // ATTND_FUSED_WS_DIMS

namespace attnd::kernels::cuda::fused {
namespace ws_launch_internal {

template <class T, class Shape, bool kTma, bool kBiasTiles = false>
absl::Status LaunchShape(const FusedParams& params, const WsTensorMaps& maps,
                         const AttentionProblem& p, cudaStream_t stream) {
  constexpr int kDim = Shape::kDim;
  auto* kernel = &WgmmaWsForwardKernel<T, Shape, kTma, kBiasTiles>;
  const int smem_bytes = kBiasTiles   ? Shape::kSmemBytesWithBiasTiles
                         : p.has_bias ? Shape::kSmemBytesWithBias
                                      : Shape::kSmemBytes;
  if (const cudaError_t e =
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes);
      e != cudaSuccess) {
    return absl::InternalError(absl::StrCat("fused warp-specialised kernel (dim ", kDim,
                                            ") shared memory ", smem_bytes,
                                            " bytes: ", cudaGetErrorString(e)));
  }
  const int64_t m_blocks = (p.q_len + Shape::kBlockM - 1) / Shape::kBlockM;
  const dim3 grid(static_cast<unsigned>(m_blocks), static_cast<unsigned>(p.q_heads),
                  static_cast<unsigned>(p.batch));
  kernel<<<grid, Shape::kThreads, smem_bytes, stream>>>(params, maps);
  if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) {
    return absl::InternalError(absl::StrCat("fused warp-specialised kernel launch (dim ", kDim,
                                            ", grid ", m_blocks, "x", p.q_heads, "x", p.batch,
                                            "): ", cudaGetErrorString(e)));
  }
  return absl::OkStatus();
}

// A problem biased by rows takes the 64-key shape (WsBlockN), with room for two bias stages; one
// with bias tiles (kBiasTiles) keeps the unbiased shape.
template <class T, int kDim, bool kTma, bool kBiasTiles>
absl::Status LaunchDim(const FusedParams& params, const WsTensorMaps& maps,
                       const AttentionProblem& p, cudaStream_t stream) {
  if constexpr (kBiasTiles) {
    return LaunchShape<T, WsShape<kDim, WsBlockN(kDim, false)>, kTma, true>(params, maps, p,
                                                                            stream);
  } else {
    return p.has_bias
               ? LaunchShape<T, WsShape<kDim, WsBlockN(kDim, true)>, kTma>(params, maps, p, stream)
               : LaunchShape<T, WsShape<kDim, WsBlockN(kDim, false)>, kTma>(params, maps, p,
                                                                            stream);
  }
}

// The launch for `padded_dim`, one of kDim, kRest...
template <class T, bool kTma, bool kBiasTiles, int kDim, int... kRest>
absl::Status LaunchFor(int padded_dim, const FusedParams& params, const WsTensorMaps& maps,
                       const AttentionProblem& p, cudaStream_t stream) {
  if (padded_dim == kDim) return LaunchDim<T, kDim, kTma, kBiasTiles>(params, maps, p, stream);
  if constexpr (sizeof...(kRest) > 0) {
    return LaunchFor<T, kTma, kBiasTiles, kRest...>(padded_dim, params, maps, p, stream);
  } else {
    return absl::InternalError(
        absl::StrCat("no fused warp-specialised kernel for padded head dim ", padded_dim));
  }
}

}  // namespace ws_launch_internal

// LaunchWs<kTma>'s kernels (kBiasTiles false), or LaunchWsBiasTiles's (kTma and kBiasTiles).
template <bool kTma, bool kBiasTiles>
absl::Status LaunchWsKernels(int padded_dim, const FusedParams& params, const WsTensorMaps& maps,
                             const AttentionProblem& p, cudaStream_t stream) {
  using ws_launch_internal::LaunchFor;
  return p.dtype == DType::kF16 ? LaunchFor<__half, kTma, kBiasTiles, ATTND_FUSED_WS_DIMS>(
                                      padded_dim, params, maps, p, stream)
                                : LaunchFor<__nv_bfloat16, kTma, kBiasTiles, ATTND_FUSED_WS_DIMS>(
                                      padded_dim, params, maps, p, stream);
}

template <bool kTma>
absl::Status LaunchWs(int padded_dim, const FusedParams& params, const WsTensorMaps& maps,
                      const AttentionProblem& p, cudaStream_t stream) {
  return LaunchWsKernels<kTma, false>(padded_dim, params, maps, p, stream);
}

}  // namespace attnd::kernels::cuda::fused

#endif  // ATTND_KERNELS_CUDA_FUSED_WS_LAUNCH_CUH_
