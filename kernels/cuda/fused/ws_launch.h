// The warp-specialised kernel's launches (wgmma_ws_kernel.cuh), instantiated in three translation
// units so that they compile in parallel: ws_launch_cp_async.cu (kTma false), ws_launch_tma.cu
// (kTma true) and ws_launch_bias_tiles.cu. Used by fused_wgmma_ws.cu only.
#ifndef ATTND_KERNELS_CUDA_FUSED_WS_LAUNCH_H_
#define ATTND_KERNELS_CUDA_FUSED_WS_LAUNCH_H_

#include <cuda_runtime.h>

#include "absl/status/status.h"
#include "kernels/cuda/fused/fused_params.h"
#include "kernels/cuda/fused/ws_tensor_maps.h"
#include "kernels/problem.h"

namespace attnd::kernels::cuda::fused {

// Launches the kernel for `padded_dim` (one of ATTND_FUSED_WS_DIMS) and p's dtype on
// `stream`, the consumers' GEMMs in ping-pong turns; kTma: K and V copied through
// `maps`. INTERNAL on a launch error or another padded dim.
template <bool kTma>
absl::Status LaunchWs(int padded_dim, const FusedParams& params, const WsTensorMaps& maps,
                      const AttentionProblem& p, cudaStream_t stream);

extern template absl::Status LaunchWs<false>(int, const FusedParams&, const WsTensorMaps&,
                                             const AttentionProblem&, cudaStream_t);
extern template absl::Status LaunchWs<true>(int, const FusedParams&, const WsTensorMaps&,
                                            const AttentionProblem&, cudaStream_t);

// The same with K and V copied by TMA and a 16-bit bias copied as TMA tiles through maps.bias
// (ws_bias_tiles.h: BiasTakesTiles(problem) holds and the map was made).
absl::Status LaunchWsBiasTiles(int padded_dim, const FusedParams& params, const WsTensorMaps& maps,
                               const AttentionProblem& p, cudaStream_t stream);

// The wide kernel (wgmma_wide_kernel.cuh, padded head dim 512) for p's dtype, K and V through
// `maps` (boxes of WideShape::kBlockN rows); instantiated in wide_launch.cu.
absl::Status LaunchWide(const FusedParams& params, const WsTensorMaps& maps,
                        const AttentionProblem& p, cudaStream_t stream);

}  // namespace attnd::kernels::cuda::fused

#endif  // ATTND_KERNELS_CUDA_FUSED_WS_LAUNCH_H_
