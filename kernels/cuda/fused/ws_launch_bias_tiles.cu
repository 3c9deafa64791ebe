// The warp-specialised kernel's launches with TMA copies of K, V and the bias's tiles
// (ws_launch.h).
#include "kernels/cuda/fused/ws_launch.cuh"

namespace attnd::kernels::cuda::fused {

absl::Status LaunchWsBiasTiles(int padded_dim, const FusedParams& params, const WsTensorMaps& maps,
                               const AttentionProblem& p, cudaStream_t stream) {
  return LaunchWsKernels<true, true>(padded_dim, params, maps, p, stream);
}

}  // namespace attnd::kernels::cuda::fused
