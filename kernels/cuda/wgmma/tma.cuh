// Hopper's tensor memory accelerator (sm_90a), as inline PTX: one thread copies a box of a tensor
// described by a CUtensorMap (made on the host with cuTensorMapEncodeTiled) into shared memory,
// swizzled as the map says, and the copy's bytes complete the transaction count of an mbarrier
// (sync.cuh: the waiters' phase completes once the expected bytes have landed); or a box from
// shared memory to the tensor, tracked by bulk groups.
#ifndef ATTND_KERNELS_CUDA_WGMMA_TMA_CUH_
#define ATTND_KERNELS_CUDA_WGMMA_TMA_CUH_

#include <cuda.h>  // CUtensorMap

#include <cstdint>

namespace attnd::kernels::cuda::wgmma {

// Arrives on the barrier and adds `bytes` to the transaction count its phase waits for.
__device__ __forceinline__ void BarrierArriveExpectTx(uint32_t barrier_address, uint32_t bytes) {
  asm volatile(
      "{\n"
      ".reg .b64 state;\n"
      "mbarrier.arrive.expect_tx.shared::cta.b64 state, [%0], %1;\n"
      "}\n" ::"r"(barrier_address),
      "r"(bytes)
      : "memory");
}

// Copies the box at coordinates (c0, c1, c2, c3) (innermost first) of a rank-4 map into shared
// memory at `smem_address`; elements outside the tensor land as zeros. `map` is the generic
// address of a __grid_constant__ kernel parameter.
__device__ __forceinline__ void TmaLoad4d(uint32_t smem_address, const CUtensorMap* map, int c0,
                                          int c1, int c2, int c3, uint32_t barrier_address) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%2, %3, %4, %5}], [%6];\n" ::"r"(smem_address),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(barrier_address)
      : "memory");
}

// The other direction: one thread copies a box from shared memory at `smem_address` to
// coordinates (c0, c1, c2, c3) of a rank-4 map; elements outside the tensor are not written. The
// copy joins this thread's current bulk group (BulkCommit closes it). Before it the writers of
// the box fence their generic-proxy writes (wgmma.cuh's FenceSharedForAsyncProxy) and meet.
__device__ __forceinline__ void TmaStore4d(const CUtensorMap* map, int c0, int c1, int c2, int c3,
                                           uint32_t smem_address) {
  asm volatile(
      "cp.async.bulk.tensor.4d.global.shared::cta.bulk_group [%0, {%1, %2, %3, %4}], [%5];\n" ::"l"(
          reinterpret_cast<uint64_t>(map)),
      "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(smem_address)
      : "memory");
}
__device__ __forceinline__ void BulkCommit() {
  asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
}
// Waits until at most kPending of this thread's bulk groups are still reading shared memory
// (their boxes may then be overwritten).
template <int kPending>
__device__ __forceinline__ void BulkWaitRead() {
  asm volatile("cp.async.bulk.wait_group.read %0;\n" ::"n"(kPending) : "memory");
}
// Waits until at most kPending of this thread's bulk groups are incomplete (writes done).
template <int kPending>
__device__ __forceinline__ void BulkWait() {
  asm volatile("cp.async.bulk.wait_group %0;\n" ::"n"(kPending) : "memory");
}

}  // namespace attnd::kernels::cuda::wgmma

#endif  // ATTND_KERNELS_CUDA_WGMMA_TMA_CUH_
