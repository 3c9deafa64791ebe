// The warp-specialised kernel's launches with cp.async copies (ws_launch.h).
#include "kernels/cuda/fused/ws_launch.cuh"

namespace attnd::kernels::cuda::fused {

template absl::Status LaunchWs<false>(int, const FusedParams&, const WsTensorMaps&,
                                      const AttentionProblem&, cudaStream_t);

}  // namespace attnd::kernels::cuda::fused
