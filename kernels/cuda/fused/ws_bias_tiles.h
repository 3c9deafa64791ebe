// Which biases the warp-specialised kernel copies as TMA tiles (wgmma_ws_kernel.cuh's kBiasTiles
// kernels) rather than by rows. Plain C++, so that the rule is tested on the host
// (tests/gpu/ws_bias_tiles_test.cc).
//
// A tile is a box of 64 keys × 128 query rows of the bias seen as a rank-4 tensor (keys, query
// rows, heads, batch; a dim broadcast over has size 1 and the kernel asks for coordinate 0
// there). TMA needs the tensor's start, every row and a box's first key 16-byte aligned (the
// kernel starts its key blocks at multiples of 8 keys for the last), and copies contiguous keys
// of distinct rows: so a 16-bit bias, dense over keys and over query rows (a bias broadcast over
// either takes the rows path, which repeats its one element or row), Mk a multiple of 8, a dense
// batch (a ragged batch's bias rows are relative to each sequence's start).
#ifndef ATTND_KERNELS_CUDA_FUSED_WS_BIAS_TILES_H_
#define ATTND_KERNELS_CUDA_FUSED_WS_BIAS_TILES_H_

#include <cstdint>

#include "kernels/fused_support.h"  // FusedBiasTakesTiles
#include "kernels/problem.h"

namespace attnd::kernels::cuda::fused {

// FusedBiasTakesTiles (the shape's part, which the planner uses too), and `bias` 16-byte aligned.
inline bool BiasTakesTiles(const AttentionProblem& p, const void* bias) {
  return FusedBiasTakesTiles(p) && reinterpret_cast<std::uintptr_t>(bias) % 16 == 0;
}

}  // namespace attnd::kernels::cuda::fused

#endif  // ATTND_KERNELS_CUDA_FUSED_WS_BIAS_TILES_H_
