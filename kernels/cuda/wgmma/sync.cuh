// Hopper's CTA-level synchronisation for warp-specialised kernels (sm_90a), as inline PTX:
// shared-memory mbarriers (a producer warpgroup tells consumers a stage has landed, consumers
// tell it a stage is free) and setmaxnreg (the producer hands registers to the consumers).
//
// mbarrier protocol as used here: a barrier is initialised with the number of arrivals that
// complete a phase; a waiter names the parity of the phase it waits for. The k-th completion of a
// barrier (k = 0, 1, ...) ends phase k, so a wait for "use k of this stage" passes parity k % 2.
// arrive has release semantics and the wait acquire semantics at CTA scope: shared-memory writes
// made (and, for the async proxy, fenced) before an arrive are visible after the matching wait.
#ifndef ATTND_KERNELS_CUDA_WGMMA_SYNC_CUH_
#define ATTND_KERNELS_CUDA_WGMMA_SYNC_CUH_

#include <cstdint>

namespace attnd::kernels::cuda::wgmma {

// One thread initialises; then a CTA barrier (__syncthreads) before any use.
__device__ __forceinline__ void BarrierInit(uint32_t barrier_address, int arrivals) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(barrier_address), "r"(arrivals)
               : "memory");
}

// After the inits, before the CTA barrier: makes them visible to the async proxy too (the TMA
// unit completes transactions on them), as CUTLASS's pipelines do.
__device__ __forceinline__ void FenceBarrierInit() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}

__device__ __forceinline__ void BarrierArrive(uint32_t barrier_address) {
  asm volatile(
      "{\n"
      ".reg .b64 state;\n"
      "mbarrier.arrive.shared::cta.b64 state, [%0];\n"
      "}\n" ::"r"(barrier_address)
      : "memory");
}

// An arrival on the barrier once every cp.async this thread issued before it has landed, without
// waiting for them (.noinc: it is one of the arrivals the barrier was initialised with). The
// copies' writes are then visible after the matching wait, as an arrive's release makes the
// thread's own writes.
__device__ __forceinline__ void BarrierArriveOnCpAsyncLanded(uint32_t barrier_address) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(barrier_address)
               : "memory");
}

// True once the phase of parity `parity` has completed (try_wait may also give up after a
// system-dependent time: callers loop).
__device__ __forceinline__ bool BarrierTryWait(uint32_t barrier_address, uint32_t parity) {
  uint32_t done;
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
      "selp.u32 %0, 1, 0, p;\n"
      "}\n"
      : "=r"(done)
      : "r"(barrier_address), "r"(parity)
      : "memory");
  return done != 0;
}

__device__ __forceinline__ void BarrierWait(uint32_t barrier_address, uint32_t parity) {
  while (!BarrierTryWait(barrier_address, parity)) {
  }
}

// Named CTA barriers (1-15; 0 is __syncthreads'): Sync waits until `threads` threads (a multiple
// of 32) have arrived at barrier `id`, counting itself; Arrive counts itself and goes on.
__device__ __forceinline__ void NamedBarrierSync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void NamedBarrierArrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// Every warp of a warpgroup executes these together. Lowers the warpgroup's per-thread register
// limit to kRegs (the producer, which needs few) or raises it (the consumers, which hold the
// accumulators); kRegs a multiple of 8 in [24, 256].
template <int kRegs>
__device__ __forceinline__ void ReleaseRegisters() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}
template <int kRegs>
__device__ __forceinline__ void ClaimRegisters() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}

}  // namespace attnd::kernels::cuda::wgmma

#endif  // ATTND_KERNELS_CUDA_WGMMA_SYNC_CUH_
