// The warp-specialised kernel's launches with TMA copies of K and V (ws_launch.h).
#include "kernels/cuda/fused/ws_launch.cuh"

namespace attnd::kernels::cuda::fused {

template absl::Status LaunchWs<true>(int, const FusedParams&, const WsTensorMaps&,
                                      const AttentionProblem&, cudaStream_t);

}  // namespace attnd::kernels::cuda::fused
