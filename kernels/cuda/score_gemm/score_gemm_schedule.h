// The score GEMM kernel's schedule (score_gemm_kernel.cuh), as plain functions that host tests
// can run against models of the barriers (tests/gpu/score_gemm_schedule_test.cc).
//
// A persistent CTA takes output tiles blockIdx.x, blockIdx.x + gridDim.x, ...: its local tiles
// i = 0, 1, .... Each tile is k_steps steps of kBlockK columns of the shared dimension. The
// producer thread copies step g = i·k_steps + kk of the CTA into stage g % kStages, in that
// order, and waits for the stage's empty barrier before every use but the first. Consumer
// warpgroup c takes the local tiles i ≡ c (mod 2); it waits for step g's full barrier and, once
// the wgmma that read the stage has completed, its four warps arrive on the empty barrier (an
// empty barrier completes a phase on 4 arrivals, a full one on the producer's arrival plus the
// copies' bytes). Each barrier's phase k (its k-th completion) is waited for with parity k % 2.
//
// Turns (ping-pong): the warpgroups issue their tiles' main loops one after the other, so that
// one's epilogue (the f32 stores, the kernel's bottleneck) overlaps the other's main loop.
// Warpgroup c waits at named barrier TurnBarrier(c) before tile i's main loop and, once its
// issues are done, arrives at the other's barrier if the other has tile i + 1. Warpgroup 1
// gives warpgroup 0 its first turn. Every arrival meets exactly one wait. The turns are also
// what makes the parity waits sound (tests/gpu/score_gemm_schedule_test.cc): a wait for parity 1
// passes on a barrier whose phase 0 has not completed yet, so a consumer must not wait for a
// stage's use u + 1 before use u has landed; in turn order every earlier use of a stage belongs
// to a tile whose main loop is already past its full waits. Needs k_steps >= 1 (the host
// declines k < 1).
#ifndef ATTND_KERNELS_CUDA_SCORE_GEMM_SCORE_GEMM_SCHEDULE_H_
#define ATTND_KERNELS_CUDA_SCORE_GEMM_SCORE_GEMM_SCHEDULE_H_

#include <cstdint>

#include "kernels/mask.h"  // ATTND_HOST_DEVICE

namespace attnd::kernels::cuda::score_gemm {

struct ScoreGemmSchedule {
  static constexpr int kStages = 5;
  static constexpr int kConsumers = 2;
  static constexpr int kEmptyArrivals = 4;  // lane 0 of each warp of the consuming warpgroup

  // Tiles of CTA `cta` of `ctas`.
  ATTND_HOST_DEVICE static int64_t LocalTiles(int64_t tiles, int64_t cta, int64_t ctas) {
    return tiles > cta ? (tiles - 1 - cta) / ctas + 1 : 0;
  }
  ATTND_HOST_DEVICE static int64_t GlobalTile(int64_t local, int64_t cta, int64_t ctas) {
    return cta + local * ctas;
  }
  // The CTA's step g = i·k_steps + kk.
  ATTND_HOST_DEVICE static int64_t Step(int64_t local, int64_t k_steps, int64_t kk) {
    return local * k_steps + kk;
  }
  ATTND_HOST_DEVICE static int Stage(int64_t g) { return static_cast<int>(g % kStages); }
  // Step g's full wait: the stage's (g / kStages)-th completion.
  ATTND_HOST_DEVICE static uint32_t FullParity(int64_t g) {
    return static_cast<uint32_t>((g / kStages) & 1);
  }
  // The producer waits before step g's copy for the stage's release by step g - kStages.
  ATTND_HOST_DEVICE static bool WaitsForEmpty(int64_t g) { return g >= kStages; }
  ATTND_HOST_DEVICE static uint32_t EmptyParity(int64_t g) {
    return static_cast<uint32_t>((g / kStages - 1) & 1);
  }
  ATTND_HOST_DEVICE static int ConsumerOf(int64_t local) {
    return static_cast<int>(local % kConsumers);
  }
  // Named barriers 1 and 2 (0 is __syncthreads').
  ATTND_HOST_DEVICE static int TurnBarrier(int consumer) { return 1 + consumer; }
  // Named barriers 3 and 4: a consumer's 128 threads around its staging buffer (the epilogue).
  ATTND_HOST_DEVICE static int StoreBarrier(int consumer) { return 3 + consumer; }
  // Warpgroup 1 arrives once at warpgroup 0's barrier before its own tiles (a CTA has >= 1 tile).
  ATTND_HOST_DEVICE static bool PassesTurnAfter(int64_t local, int64_t local_tiles) {
    return local + 1 < local_tiles;
  }
};

}  // namespace attnd::kernels::cuda::score_gemm

#endif  // ATTND_KERNELS_CUDA_SCORE_GEMM_SCORE_GEMM_SCHEDULE_H_
