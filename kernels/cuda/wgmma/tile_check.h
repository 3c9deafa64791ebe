// A self-check of the wgmma building blocks (wgmma.cuh) on one tile, the two products of
// attention with their operands where a kernel keeps them:
//   S = A·Bᵀ  A [64, 128], B [64, 128] bf16 row-major, both K-major in shared memory (two atom
//             columns: the descriptors' k steps cross an atom), S [64, 64] f32;
//   O = P·V   P = bf16(S) from the accumulators as register A fragments, V [64, 64] bf16
//             row-major, MN-major in shared memory; O [64, 64] f32.
// One warpgroup (128 threads) of one CTA. Plain C++: device pointers in, the stream as a void*.
#ifndef ATTND_KERNELS_CUDA_WGMMA_TILE_CHECK_H_
#define ATTND_KERNELS_CUDA_WGMMA_TILE_CHECK_H_

#include "absl/status/status.h"

namespace attnd::kernels::cuda {

inline constexpr int kWgmmaCheckRows = 64;   // rows of A, S, P, O
inline constexpr int kWgmmaCheckKeys = 64;   // rows of B and V, columns of S
inline constexpr int kWgmmaCheckDim = 128;   // columns of A and B
inline constexpr int kWgmmaCheckVDim = 64;   // columns of V and O

// Launches the check on `stream` and synchronizes it. INTERNAL on a launch or execution error;
// FAILED_PRECONDITION on a device below sm_90 (no wgmma).
absl::Status RunWgmmaTileCheck(const void* a, const void* b, const void* v, float* s, float* o,
                               void* stream);

}  // namespace attnd::kernels::cuda

#endif  // ATTND_KERNELS_CUDA_WGMMA_TILE_CHECK_H_
