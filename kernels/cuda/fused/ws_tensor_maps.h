// The warp-specialised kernel's tensor maps of K and V (a kernel parameter; wgmma_ws_kernel.cuh),
// apart from the kernel so that host code can hold them.
#ifndef ATTND_KERNELS_CUDA_FUSED_WS_TENSOR_MAPS_H_
#define ATTND_KERNELS_CUDA_FUSED_WS_TENSOR_MAPS_H_

#include <cuda.h>  // CUtensorMap

namespace attnd::kernels::cuda::fused {

// Keys a block of the warp-specialised kernel holds at padded head dim `dim`: 128 up to 128, 64
// above (so that O, S and P fit the consumers' registers; wgmma_ws_kernel.cuh), and 64 with a
// bias copied by rows (`bias_rows`: the cp.async bias tiles, whose padded rows and shifts take
// more room), so that two of them fit beside Q, K and V. A bias copied as TMA tiles keeps the
// unbiased block. The maps' boxes are that many rows.
constexpr int WsBlockN(int dim, bool bias_rows) { return dim <= 128 && !bias_rows ? 128 : 64; }

// The TMA kernels' maps of K and V (rank 4: head dim, rows, heads, batch; boxes of 64 head
// columns by kBlockN rows, 128-byte swizzle) and, for the kernels that copy the bias as tiles,
// of the bias (rank 4: keys, query rows, heads, batch, a broadcast dim of size 1; boxes of 64
// keys by 128 rows, 128-byte swizzle). Zeros where unused (the cp.async kernels ignore them all).
struct WsTensorMaps {
  CUtensorMap k;
  CUtensorMap v;
  CUtensorMap bias;
};

}  // namespace attnd::kernels::cuda::fused

#endif  // ATTND_KERNELS_CUDA_FUSED_WS_TENSOR_MAPS_H_
