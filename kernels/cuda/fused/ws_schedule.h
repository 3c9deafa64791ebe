// The warp-specialised kernel's synchronisation schedule (wgmma_ws_kernel.cuh) as plain functions
// of the key block's index, so that tests/gpu/ws_schedule_test.cc runs the very schedule the
// kernel follows on the host, against models of mbarriers and named barriers, under random
// interleavings (no deadlock; no tile overwritten before its last reader is done; every read
// sees the block it wants).
//
// mbarrier parities (sync.cuh): the k-th completion of a barrier ends phase k, and a waiter for
// that completion passes parity k % 2.
//   K and V ring: block n uses stage n % kStages; it is that stage's use n / kStages, so its full
//     barriers are waited with that use's parity, and before block n refills the stage the
//     producer waits on its empty barriers for block n - kStages's release. Every producer
//     thread waits, in both paths. By cp.async every thread copies, so each gates the consumers
//     and stays within a phase of them. With TMA thread 0 alone copies K and V: the others gate
//     nothing, and one asleep through a stage's two releases would wait on a parity come round
//     again, for a completion that may never come (a hazard only unfair warp scheduling can
//     reach: tests/gpu/ws_schedule_test.cc shows it with unbounded stalls). kLeaderAloneWaits
//     removes it (thread 0 alone waits; the others meet it at kVFreeBarrier before copying a
//     last V) but measured 3.5-8% slower on the H100 (bench/RESULTS.md, session 12), so it is
//     off; the test runs it too.
//   Bias tiles: a ring of `stages` (1 or 2, as shared memory allows) with the same rules.
// Ping-pong turns (named barriers): consumer warpgroup cw takes a turn at barrier TurnBarrier(cw)
// (its bar.sync completes when the other warpgroup passes it the turn with bar.arrive there);
// warpgroup 1 gives warpgroup 0 the first turn and does not pass on its last, so that every
// barrier generation completes.
#ifndef ATTND_KERNELS_CUDA_FUSED_WS_SCHEDULE_H_
#define ATTND_KERNELS_CUDA_FUSED_WS_SCHEDULE_H_

#include <cstdint>

#include "kernels/mask.h"  // ATTND_HOST_DEVICE

namespace attnd::kernels::cuda::fused {

struct WsSchedule {
  static constexpr int kStages = 2;

  ATTND_HOST_DEVICE static int Stage(int n) { return n % kStages; }
  ATTND_HOST_DEVICE static uint32_t FullParity(int n) {
    return static_cast<uint32_t>((n / kStages) % 2);
  }
  static constexpr int kProducerThreads = 128;  // warpgroup 0
  static constexpr int kVLandedBarrier = 3;       // named barriers of the producer's threads
  static constexpr int kVFreeBarrier = 6;

  static constexpr bool kLeaderAloneWaits = false;  // see the K and V ring above

  // Whether a producer thread (`leader`: thread 0) waits on the K and V empty barriers before
  // block n, with K and V copied by TMA (`tma`) or by cp.async.
  ATTND_HOST_DEVICE static bool WaitsForEmpty(int n, bool tma, bool leader) {
    return n >= kStages && (leader || !tma || !kLeaderAloneWaits);
  }
  // Whether the producer threads meet at kVFreeBarrier before copying block n's V themselves.
  ATTND_HOST_DEVICE static bool SyncsVFree(int n, bool tma, bool v_by_threads) {
    return kLeaderAloneWaits && tma && v_by_threads && n >= kStages;
  }
  ATTND_HOST_DEVICE static uint32_t EmptyParity(int n) { return FullParity(n - kStages); }

  ATTND_HOST_DEVICE static int BiasStage(int n, int stages) { return n % stages; }
  ATTND_HOST_DEVICE static uint32_t BiasFullParity(int n, int stages) {
    return static_cast<uint32_t>((n / stages) % 2);
  }
  ATTND_HOST_DEVICE static bool WaitsForBiasEmpty(int n, int stages) { return n >= stages; }
  ATTND_HOST_DEVICE static uint32_t BiasEmptyParity(int n, int stages) {
    return BiasFullParity(n - stages, stages);
  }

  ATTND_HOST_DEVICE static int TurnBarrier(int cw) { return 1 + cw; }
  ATTND_HOST_DEVICE static bool GivesFirstTurn(int cw) { return cw == 1; }
  ATTND_HOST_DEVICE static bool PassesTurn(int cw, bool last_turn) {
    return !(cw == 1 && last_turn);
  }
};

}  // namespace attnd::kernels::cuda::fused

#endif  // ATTND_KERNELS_CUDA_FUSED_WS_SCHEDULE_H_
