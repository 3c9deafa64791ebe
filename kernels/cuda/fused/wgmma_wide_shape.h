// The wide kernel's shape (wgmma_wide_kernel.cuh: padded head dim 512, split between two
// consumer warpgroups), apart from the kernel so that its host code can read it. Plain C++.
#ifndef ATTND_KERNELS_CUDA_FUSED_WGMMA_WIDE_SHAPE_H_
#define ATTND_KERNELS_CUDA_FUSED_WGMMA_WIDE_SHAPE_H_

namespace attnd::kernels::cuda::fused {

struct WideShape {
  static constexpr int kDim = 512;
  static constexpr int kHalf = 256;    // head columns a consumer owns
  static constexpr int kAtomCols = 8;  // 64-column atom columns of a tile row
  static constexpr int kBlockM = 64;   // query rows of a CTA, the same for both consumers
  static constexpr int kBlockN = 64;   // keys a block (wgmma_ws_kernel.cuh's box height)
  static constexpr int kThreads = 384;
  static constexpr int kProducerRegs = 40;
  static constexpr int kConsumerRegs = 232;
  static constexpr int kSRegs = kBlockN / 2;                   // 32: m64n64 f32 accumulators
  static constexpr int kORegs = kHalf / 2;                     // 128: m64n256 f32 accumulators
  static constexpr int kKSteps = kBlockN / 16;                 // of P·V
  static constexpr int kQBytes = kBlockM * kAtomCols * 128;    // 64 KiB
  static constexpr int kKvBytes = kBlockN * kAtomCols * 128;   // 64 KiB each
  static constexpr int kExchangeBytes = 2 * 128 * kSRegs * 4;  // 32 KiB
  static constexpr int kBarrierBytes = 64;                     // 5 mbarriers of 8 bytes
  static constexpr int kSmemBytes =
      kQBytes + 2 * kKvBytes + kExchangeBytes + kBarrierBytes + 1024;  // + 1024: alignment
  static_assert(kSmemBytes <= 227 * 1024, "an sm_90 CTA has at most 227 KiB");
};

}  // namespace attnd::kernels::cuda::fused

#endif  // ATTND_KERNELS_CUDA_FUSED_WGMMA_WIDE_SHAPE_H_
