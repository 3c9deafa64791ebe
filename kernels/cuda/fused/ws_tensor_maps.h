// The warp-specialised kernel's tensor maps of K and V (a kernel parameter; wgmma_ws_kernel.cuh),
// apart from the kernel so that host code can hold them.
#ifndef ATTND_KERNELS_CUDA_FUSED_WS_TENSOR_MAPS_H_
#define ATTND_KERNELS_CUDA_FUSED_WS_TENSOR_MAPS_H_

#include <cuda.h>  // CUtensorMap

namespace attnd::kernels::cuda::fused {

// Keys a block of the warp-specialised kernel holds at padded head dim `dim`: 128 up to 128, 64
// above (so that O, S and P fit the consumers' registers; wgmma_ws_kernel.cuh), and 64 with a
// bias (`biased`), so that two bias tiles fit beside Q, K and V. The maps' boxes are that many
// rows.
constexpr int WsBlockN(int dim, bool biased) { return dim <= 128 && !biased ? 128 : 64; }

// The TMA kernels' maps of K and V (rank 4: head dim, rows, heads, batch; boxes of 64 head
// columns by kBlockN rows, 128-byte swizzle). Zeros for the cp.async kernels, which ignore them.
struct WsTensorMaps {
  CUtensorMap k;
  CUtensorMap v;
};

}  // namespace attnd::kernels::cuda::fused

#endif  // ATTND_KERNELS_CUDA_FUSED_WS_TENSOR_MAPS_H_
