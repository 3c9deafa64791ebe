// The wide kernel's synchronisation schedule (wgmma_wide_kernel.cuh) as plain functions and
// constants, so that tests/gpu/wide_schedule_test.cc runs the very schedule the kernel follows on
// the host, against models of mbarriers, named barriers, cp.async groups and TMA copies, under
// random interleavings (no deadlock; neither the one K and V stage nor the exchange overwritten
// before its last reader is done; every read sees the block it wants).
//
// mbarrier parities (sync.cuh): the k-th completion of a barrier ends phase k, and a waiter for
// that completion passes parity k % 2.
//   Q full: completes once (every producer thread, once its Q copies have landed): parity 0.
//   K and V, one stage: block n is the stage's use n, so its full barriers are waited with parity
//     n % 2, and before block n (n >= 1) refills the stage the producer waits on the empty
//     barriers for block n - 1's release (every consumer warp, once its GEMM has read the tile).
//     A parity tells two phases apart only: it suffices for thread 0, which copies by TMA and so
//     cannot issue block n + 1 before block n's release, and for the consumers, which cannot
//     release block n before it is issued. Every producer thread waits, though: the others gate
//     nothing, and one asleep through a whole block would wait on a parity come round again, for
//     a completion that never comes (a hazard only unfair warp scheduling reaches; the test shows
//     it with unbounded stalls). kLeaderAloneWaits removes it (thread 0 alone waits; the others
//     wait for it only to copy a V themselves, at kVFreeBarrier) but measured 6% slower on the
//     H100 (bench/RESULTS.md, session 12), so it is off; the test runs it too.
// The exchange (named barriers, bar.sync of both consumers' 256 threads): block n's partials are
// written, then kExchangeWrittenBarrier, then each reads the other's. Before block n's write
// (n >= 1) both meet at kExchangeReadBarrier, which each reaches only after it read block
// n - 1's: so no partial of block n lands on one of block n - 1 still unread. bar.arrive would
// not do: one consumer's arrival could complete a generation with the other's next block.
// The producer's V by threads (a last block past the CTA's last key): its 128 threads meet at
// kVLandedBarrier once their own cp.async groups have landed, then one arrives on V full.
#ifndef ATTND_KERNELS_CUDA_FUSED_WIDE_SCHEDULE_H_
#define ATTND_KERNELS_CUDA_FUSED_WIDE_SCHEDULE_H_

#include <cstdint>

#include "kernels/cuda/fused/wgmma_wide_shape.h"
#include "kernels/mask.h"  // ATTND_HOST_DEVICE

namespace attnd::kernels::cuda::fused {

struct WideSchedule {
  static constexpr int kStages = 1;             // one K and one V tile (Q, K, V: 192 KiB)
  static constexpr int kProducerThreads = 128;  // warpgroup 0
  static constexpr int kConsumerWarps = 8;      // warpgroups 1 and 2
  static constexpr int kExchangeThreads = 256;  // both consumers

  // Arrivals that complete a phase (mbarrier.init's count).
  static constexpr int kQFullArrivals = kProducerThreads;
  static constexpr int kKvFullArrivals = 1;  // the leader's arrive.expect_tx, or its arrive
  static constexpr int kKvEmptyArrivals = kConsumerWarps;  // lane 0 of each consumer warp

  // Named barriers (0 is __syncthreads'; 1 and 2 the warp-specialised kernel's turns).
  static constexpr int kVLandedBarrier = 3;  // kProducerThreads
  static constexpr int kExchangeWrittenBarrier = 4;
  static constexpr int kExchangeReadBarrier = 5;
  static constexpr int kVFreeBarrier = 6;  // kProducerThreads

  static constexpr uint32_t kQFullParity = 0;

  ATTND_HOST_DEVICE static uint32_t FullParity(int n) { return static_cast<uint32_t>(n & 1); }
  static constexpr bool kLeaderAloneWaits = false;  // see "K and V, one stage" above

  // Whether a producer thread waits on the empty barriers before block n (`leader`: thread 0).
  ATTND_HOST_DEVICE static bool WaitsForEmpty(int n, bool leader) {
    return n >= kStages && (leader || !kLeaderAloneWaits);
  }
  // Whether the producer threads meet at kVFreeBarrier before copying block n's V themselves.
  ATTND_HOST_DEVICE static bool SyncsVFree(int n, bool v_by_threads) {
    return kLeaderAloneWaits && v_by_threads && n >= kStages;
  }
  ATTND_HOST_DEVICE static uint32_t EmptyParity(int n) { return FullParity(n - kStages); }

  // A producer thread's cp.async groups: Q (block 0 only), then V when by threads. Q is released
  // once all but the V group have landed.
  ATTND_HOST_DEVICE static bool ReleasesQ(int n) { return n == 0; }
  ATTND_HOST_DEVICE static int GroupsPendingAfterQ(bool v_by_threads) {
    return v_by_threads ? 1 : 0;
  }
  // A block ending past the CTA's last key copies V by threads (TMA would not zero those rows).
  ATTND_HOST_DEVICE static bool LoadsVByThreads(int kb, int key_hi) {
    return kb + WideShape::kBlockN > key_hi;
  }

  ATTND_HOST_DEVICE static bool SyncsExchangeRead(int n) { return n > 0; }
};

static_assert(WideSchedule::kProducerThreads + WideSchedule::kExchangeThreads ==
                  WideShape::kThreads,
              "one producer and two consumer warpgroups");
static_assert(WideSchedule::kExchangeThreads == 32 * WideSchedule::kConsumerWarps,
              "the exchange barriers join every consumer warp");

}  // namespace attnd::kernels::cuda::fused

#endif  // ATTND_KERNELS_CUDA_FUSED_WIDE_SCHEDULE_H_
