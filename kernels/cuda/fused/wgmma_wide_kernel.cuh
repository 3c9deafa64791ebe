// The fused forward kernel for 16-bit head dims 264-512 on Hopper (sm_90a): padded D 512, where
// one warpgroup's O (64 rows × 512 columns of f32) would need 256 registers a thread. So the
// head dim is split between the two consumer warpgroups, which own the same 64 query rows:
//
//   producer     warpgroup 0, 40 registers: Q once (cp.async), then K_n and V_n of each 64-key
//                block by TMA (wgmma_ws_kernel.cuh's maps and boxes; a last block that ends past
//                the CTA's last key copies V by cp.async, to zero the rows past it).
//   consumer c   warpgroups 1 and 2 (c = 0, 1), 232 registers: head columns [256c, 256c + 256).
//                Per block: its partial scores S_c = Q[:, half c]·K_n[:, half c]ᵀ (one SS chain
//                of 16 k-steps); consumer 0 adds the bias (read from global memory while the
//                chain runs). Each writes S_c to shared memory, both meet at a named barrier and
//                each adds the other's: both then hold S = S_0 + S_1 (+ bias), bit for bit the
//                same (a + b = b + a), and run the same mask and online softmax, so their P, row
//                maxima and sums agree. Each accumulates its half of O += P·V_n (two RS chains of
//                128 columns) and writes it; consumer 0 writes the LSE.
//
// No QK FLOP is repeated: each consumer multiplies half the head dim. What it costs instead is
// the exchange (16 KiB written and 16 KiB read a consumer a block) and its two barriers, and a
// single stage of K and V (Q, K and V take 192 KiB of the 227): K_{n+1} streams in while block
// n's softmax and P·V run, V_{n+1} while block n+1's Q·Kᵀ does. The consumers are in step
// (the exchange joins them every block), so their softmaxes do not overlap each other's GEMMs.
//
// Shared memory: Q [64, 512] K-major (64 KiB), K [64, 512] K-major, V [64, 512] MN-major (64 KiB
// each), the exchange (two × 128 threads × 32 floats), five mbarriers.
// Barriers: Q full (the producer's 128 threads), K and V full (TMA: one arrival and the bytes;
// V by threads: 128 threads meet at a named barrier, then one arrives), K and V empty (the
// consumers' 8 warps), and two named barriers around the exchange; wide_schedule.h holds their
// parities, counts and ids, and why they suffice (tests/gpu/wide_schedule_test.cc checks them).
#ifndef ATTND_KERNELS_CUDA_FUSED_WGMMA_WIDE_KERNEL_CUH_
#define ATTND_KERNELS_CUDA_FUSED_WGMMA_WIDE_KERNEL_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/cuda/fused/cta_rows.h"
#include "kernels/cuda/fused/fused_kernel.cuh"  // TileBias
#include "kernels/cuda/fused/fused_params.h"
#include "kernels/cuda/fused/wgmma_block.cuh"
#include "kernels/cuda/fused/wgmma_wide_shape.h"
#include "kernels/cuda/fused/wgmma_ws_kernel.cuh"  // ProducerLoadRows, ProducerLoadQ, PackP
#include "kernels/cuda/fused/wide_schedule.h"
#include "kernels/cuda/fused/ws_tensor_maps.h"
#include "kernels/cuda/wgmma/sync.cuh"
#include "kernels/cuda/wgmma/tma.cuh"
#include "kernels/cuda/wgmma/wgmma.cuh"

namespace attnd::kernels::cuda::fused {

// mbarriers of the wide kernel, in their block.
enum WideBarrier : int { kWideQFull = 0, kWideKFull, kWideVFull, kWideKEmpty, kWideVEmpty };

// S_c = Q[:, half c]·K[:, half c]ᵀ (c = kC) for the CTA's 64 rows and the block's 64 keys: k
// steps 16c .. 16c + 15 of the 32 over D 512, four in each atom column.
template <class T, int kC>
__device__ __forceinline__ void IssueHalfQK(float (&s)[WideShape::kSRegs], uint32_t q_address,
                                            uint32_t k_address) {
#pragma unroll
  for (int kk = 0; kk < 16; ++kk) {
    const int step = 16 * kC + kk;
    const uint32_t in_atom = (step % 4) * 32;
    const uint64_t desc_q = wgmma::Sw128Descriptor(
        q_address + (step / 4) * WideShape::kBlockM * 128 + in_atom, 16, 1024);
    const uint64_t desc_k = wgmma::Sw128Descriptor(
        k_address + (step / 4) * WideShape::kBlockN * 128 + in_atom, 16, 1024);
    wgmma::MmaSS<64, T>(s, desc_q, desc_k, kk > 0);
  }
}

// O_c += P·V[:, half c]: per k step of 16 keys two RS chains of 128 columns, at atom columns
// 4c and 4c + 2 of the MN-major V tile.
template <class T, int kC>
__device__ __forceinline__ void IssueHalfPV(float (&o)[WideShape::kORegs],
                                            const uint32_t (&pf)[WideShape::kKSteps][4],
                                            uint32_t v_address) {
  constexpr int kAtomColumnBytes = WideShape::kBlockN * 128;
#pragma unroll
  for (int kk = 0; kk < WideShape::kKSteps; ++kk) {
#pragma unroll
    for (int chain = 0; chain < 2; ++chain) {
      const uint64_t desc = wgmma::Sw128Descriptor(
          v_address + kk * 2048 + (4 * kC + 2 * chain) * kAtomColumnBytes, kAtomColumnBytes, 1024);
      wgmma::MmaRS<128, T>(*reinterpret_cast<float(*)[64]>(&o[64 * chain]), pf[kk], desc, true);
    }
  }
}

// The bias of the thread's elements of S (rows row_base and row_base + 8, keys kb + 8j +
// 2·(lane % 4) + {0, 1}; wgmma_block.cuh's layout) as bias / scale, from global memory: 0 for
// rows outside the sequence and keys at or past Mk (masked anyway, and never read past the
// tensor). Any broadcast and dtype (a few loads a block at D 512).
__device__ __forceinline__ void LoadBiasOfScores(float (&bias)[WideShape::kSRegs],
                                                 const FusedParams& p, const CtaRows& seq,
                                                 int64_t b, int64_t h, int row_base, int kb,
                                                 int lane) {
  const unsigned char* base = static_cast<const unsigned char*>(p.bias);
  const int elem = BiasElemBytes(p);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t i = row_base + 8 * r;
    const bool row_valid = seq.Has(i);
#pragma unroll
    for (int j = 0; j < WideShape::kBlockN / 8; ++j) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int64_t key = kb + 8 * j + 2 * (lane % 4) + e;
        const bool valid = row_valid && key < p.kv_len;
        const int64_t at = valid ? p.bias_index.At(b, h, i - seq.row_lo, key) : 0;
        bias[4 * j + 2 * r + e] =
            valid ? TileBias(base + at * elem, p.bias_dtype) * p.bias_to_acc : 0.0f;
      }
    }
  }
}

// The producer: Q once, then K_n and V_n of every block into the single stage, each once both
// consumers have released block n - 1's.
template <class T>
__device__ __forceinline__ void ProduceWideTiles(const FusedParams& p, const WsTensorMaps& maps,
                                                 const T* q_head, const T* v_head, int64_t q0,
                                                 const CtaRows& seq, const WgmmaCtaKeys& keys,
                                                 int64_t b, int64_t kv_h, unsigned char* q_tile,
                                                 unsigned char* k_tile, unsigned char* v_tile,
                                                 uint32_t barriers) {
  const bool leader = threadIdx.x == 0;
  const int batch = p.q_offsets != nullptr ? 0 : static_cast<int>(b);  // ragged: one element
  const int row0 = static_cast<int>(seq.kv_row0);
  ProducerLoadQ<WideShape>(p, q_tile, q_head, q0, seq);
  for (int n = 0; n < keys.n_blocks; ++n) {
    const int kb = keys.key_lo + n * WideShape::kBlockN;
    // Block n - 1's release (with kLeaderAloneWaits thread 0 alone waits; the others wait for it
    // only to copy a V themselves, at kVFreeBarrier: wide_schedule.h).
    const bool waits_for_empty = WideSchedule::WaitsForEmpty(n, leader);
    const uint32_t empty_parity = WideSchedule::EmptyParity(n);  // block n - 1's release
    if (waits_for_empty) wgmma::BarrierWait(barriers + 8 * kWideKEmpty, empty_parity);
    if (leader)
      TmaKvTile<WideShape>(&maps.k, k_tile, row0 + kb, kv_h, batch, barriers + 8 * kWideKFull);
    if (waits_for_empty) wgmma::BarrierWait(barriers + 8 * kWideVEmpty, empty_parity);
    const bool v_by_threads = WideSchedule::LoadsVByThreads(kb, keys.key_hi);
    if (v_by_threads) {
      if (WideSchedule::SyncsVFree(n, v_by_threads)) {
        wgmma::NamedBarrierSync(WideSchedule::kVFreeBarrier, WideSchedule::kProducerThreads);
      }
      ProducerLoadRows<WideShape, WideShape::kBlockN, true>(v_tile, v_head, p.v_strides.seq, kb,
                                                            keys.key_hi, p.v_head_dim);
      CpAsyncCommit();
    } else if (leader) {
      TmaKvTile<WideShape>(&maps.v, v_tile, row0 + kb, kv_h, batch, barriers + 8 * kWideVFull);
    }
    // cp.async groups land in order: Q (block 0), then V (by threads).
    if (WideSchedule::ReleasesQ(n)) {
      CpAsyncWaitAtMost(WideSchedule::GroupsPendingAfterQ(v_by_threads));
      wgmma::FenceSharedForAsyncProxy();
      wgmma::BarrierArrive(barriers + 8 * kWideQFull);
    }
    if (v_by_threads) {
      CpAsyncWait<0>();
      wgmma::FenceSharedForAsyncProxy();
      // Every producer thread's part has landed.
      wgmma::NamedBarrierSync(WideSchedule::kVLandedBarrier, WideSchedule::kProducerThreads);
      if (leader) wgmma::BarrierArrive(barriers + 8 * kWideVFull);
    }
  }
}

// Consumer kC (warpgroup kC + 1): head columns [256·kC, 256·kC + 256) of the CTA's 64 rows.
template <class T, int kC>
__device__ __forceinline__ void ConsumeWide(const FusedParams& p, const CtaRows& seq,
                                            const WgmmaCtaKeys& keys, int64_t b, int64_t h,
                                            int64_t q0, unsigned char* q_tile,
                                            unsigned char* k_tile, unsigned char* v_tile,
                                            float* exchange, uint32_t barriers) {
  using Shape = WideShape;
  const int lane = threadIdx.x % 32;
  const int t = threadIdx.x % 128;  // within the consumer
  const int warp = t / 32;
  const int row_base = static_cast<int>(q0) + 16 * warp + lane / 4;
  const uint32_t q_address = SmemAddress(q_tile);
  const uint32_t k_address = SmemAddress(k_tile);
  const uint32_t v_address = SmemAddress(v_tile);
  float* mine = exchange + kC * Shape::kSRegs * 128;
  const float* theirs = exchange + (1 - kC) * Shape::kSRegs * 128;
  const bool add_bias = kC == 0 && p.bias != nullptr;

  float o[Shape::kORegs];
#pragma unroll
  for (int i = 0; i < Shape::kORegs; ++i) o[i] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY};
  float l[2] = {0.0f, 0.0f};
  float rescale[2];
  float s[Shape::kSRegs];
  uint32_t pf[Shape::kKSteps][4];

  if (keys.n_blocks > 0) wgmma::BarrierWait(barriers + 8 * kWideQFull, WideSchedule::kQFullParity);
  for (int n = 0; n < keys.n_blocks; ++n) {
    const int kb = keys.key_lo + n * Shape::kBlockN;
    wgmma::BarrierWait(barriers + 8 * kWideKFull, WideSchedule::FullParity(n));
    wgmma::Fence();
    IssueHalfQK<T, kC>(s, q_address, k_address);
    wgmma::Commit();
    float bias[Shape::kSRegs];
    if (add_bias) LoadBiasOfScores(bias, p, seq, b, h, row_base, kb, lane);
    wgmma::Wait<0>();
    wgmma::FenceOperands(s);
    ReleaseTile(barriers + 8 * kWideKEmpty, lane);
    if (add_bias) {
#pragma unroll
      for (int i = 0; i < Shape::kSRegs; ++i) s[i] += bias[i];
    }
    // The exchange: element i of thread t at [i][t] (consecutive threads, consecutive words).
    if (WideSchedule::SyncsExchangeRead(n)) {  // block n - 1's partial was read
      wgmma::NamedBarrierSync(WideSchedule::kExchangeReadBarrier, WideSchedule::kExchangeThreads);
    }
#pragma unroll
    for (int i = 0; i < Shape::kSRegs; i += 4) {
      *reinterpret_cast<float4*>(&mine[i * 128 + 4 * t]) =
          make_float4(s[i], s[i + 1], s[i + 2], s[i + 3]);
    }
    wgmma::NamedBarrierSync(WideSchedule::kExchangeWrittenBarrier, WideSchedule::kExchangeThreads);
#pragma unroll
    for (int i = 0; i < Shape::kSRegs; i += 4) {
      const float4 other = *reinterpret_cast<const float4*>(&theirs[i * 128 + 4 * t]);
      s[i] += other.x;
      s[i + 1] += other.y;
      s[i + 2] += other.z;
      s[i + 3] += other.w;
    }
    ScaleAndMask<Shape::kBlockN>(s, p, keys, kb, row_base, lane);
    OnlineSoftmax<Shape::kBlockN>(s, m, l, rescale);
    RescaleRows(o, rescale);
    PackP<Shape, T>(pf, s);
    wgmma::BarrierWait(barriers + 8 * kWideVFull, WideSchedule::FullParity(n));
    wgmma::Fence();
    IssueHalfPV<T, kC>(o, pf, v_address);
    wgmma::Commit();
    wgmma::Wait<0>();
    wgmma::FenceOperands(o);
    ReleaseTile(barriers + 8 * kWideVEmpty, lane);
  }
  StoreSequenceRows<T>(p, o, m, l, seq, b, h, row_base, lane, Shape::kHalf * kC);
}

template <class T>
__global__ void __launch_bounds__(WideShape::kThreads, 1)
    WgmmaWideForwardKernel(const FusedParams p, const __grid_constant__ WsTensorMaps maps) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  using Shape = WideShape;
  extern __shared__ unsigned char smem_raw[];
  const uint32_t raw_address = SmemAddress(smem_raw);
  unsigned char* q_tile = smem_raw + (1024 - raw_address % 1024) % 1024;
  unsigned char* k_tile = q_tile + Shape::kQBytes;
  unsigned char* v_tile = k_tile + Shape::kKvBytes;
  float* exchange = reinterpret_cast<float*>(v_tile + Shape::kKvBytes);  // [2][kSRegs][128]
  const uint32_t barriers = SmemAddress(v_tile + Shape::kKvBytes + Shape::kExchangeBytes);

  const int warpgroup = threadIdx.x / 128;
  const int64_t q0 = static_cast<int64_t>(gridDim.x - 1 - blockIdx.x) * Shape::kBlockM;
  const int64_t h = blockIdx.y;
  const int64_t b = blockIdx.z;
  const int64_t kv_h = h / p.group;
  const CtaRows seq = RowsOf(p, b);
  int64_t q_first = 0;
  int64_t q_last = 0;
  if (!CtaHoldsRows(seq, q0, Shape::kBlockM, &q_first, &q_last)) return;
  const WgmmaCtaKeys keys = KeysOfRows(p, seq.valid_keys, q_first, q_last, Shape::kBlockN);

  if (threadIdx.x == 0) {
    wgmma::BarrierInit(barriers + 8 * kWideQFull, WideSchedule::kQFullArrivals);
    wgmma::BarrierInit(barriers + 8 * kWideKFull, WideSchedule::kKvFullArrivals);
    wgmma::BarrierInit(barriers + 8 * kWideVFull, WideSchedule::kKvFullArrivals);
    wgmma::BarrierInit(barriers + 8 * kWideKEmpty, WideSchedule::kKvEmptyArrivals);
    wgmma::BarrierInit(barriers + 8 * kWideVEmpty, WideSchedule::kKvEmptyArrivals);
    wgmma::FenceBarrierInit();
  }
  __syncthreads();  // the last CTA-wide barrier

  if (warpgroup == 0) {
    wgmma::ReleaseRegisters<Shape::kProducerRegs>();
    if (keys.n_blocks == 0) return;
    const T* q_head = static_cast<const T*>(p.q) + b * p.q_strides.batch + h * p.q_strides.head;
    const T* v_head = static_cast<const T*>(p.v) + b * p.v_strides.batch +
                      seq.kv_row0 * p.v_strides.seq + kv_h * p.v_strides.head;
    ProduceWideTiles<T>(p, maps, q_head, v_head, q0, seq, keys, b, kv_h, q_tile, k_tile, v_tile,
                        barriers);
    return;
  }

  wgmma::ClaimRegisters<Shape::kConsumerRegs>();
  // The half a consumer owns is a template argument, so that its descriptors are constants.
  if (warpgroup == 1) {
    ConsumeWide<T, 0>(p, seq, keys, b, h, q0, q_tile, k_tile, v_tile, exchange, barriers);
  } else {
    ConsumeWide<T, 1>(p, seq, keys, b, h, q0, q_tile, k_tile, v_tile, exchange, barriers);
  }
#endif
}

}  // namespace attnd::kernels::cuda::fused

#endif  // ATTND_KERNELS_CUDA_FUSED_WGMMA_WIDE_KERNEL_CUH_
