// The score GEMM kernel (sm_90a): S[z] = alpha · Q[z] · K[z]ᵀ in f32 from 16-bit Q and K, the
// first step of the naive, sliced and chunked variants. The aim: at head dim 512 each 128 × 128
// tile is 16.8 MFLOP of tensor work (2.2 µs of one SM) and 64 KB of f32 stores (2.9 µs of one
// SM's share of the copy rate), and cuBLAS's kernel runs them one after the other (0.63 of the
// tensor rate and 0.70 of the copy rate at once on the H100). Here two consumer warpgroups take
// turns: while one stores its tile, the other runs its main loop.
//
// Roles (score_gemm_schedule.h for the barriers' protocol):
//   warpgroup 0  thread 0 copies A's and B's tiles of each step by TMA into a ring of kStages
//                stages (the other threads only give up their registers);
//   warpgroups 1, 2  consumer c takes the CTA's local tiles i ≡ c (mod 2): two m64n128k16 wgmmas
//                (rows 0-63, 64-127) per 16 columns, accumulators in registers (128 a thread),
//                then alpha · accumulators out through the consumer's staging buffer in shared
//                memory, 64 rows at a time, by TMA stores (whole 128-byte lines; edges
//                clipped by TMA). Where C's strides do not allow a map (rows not a multiple of
//                16 bytes), stores straight from registers instead.
//
// Measured on the H100 (2026-12-07, 1×8×4096×4096×512 bf16, bench/RESULTS.md), it does not yet
// beat cuBLAS (0.288 ms), hence opt-in (score_gemm.h):
//   register stores (a warp's store covers 8 rows × 32 bytes)  0.40 ms, 1.29 TB/s of writes;
//   TMA stores (this version)                                  0.288-0.39 ms by machine;
//   main loop alone (stores skipped)                           0.378 ms: 363 TFLOP/s. 128 × 128
//     tiles at k 512 pull 2.1 GB from L2 into shared memory (5.7 TB/s), a third more than
//     cuBLAS's 256 × 128 tiles with 2-CTA multicast;
//   stores alone (wgmmas skipped)                              0.285 ms: 1.8 TB/s, where a memset
//     writes 2.80 TB/s.
// Next: 256 × 128 tiles (the two consumers on one tile) or 2-CTA clusters multicasting B, and an
// epilogue whose TMA stores drain while the next tile's main loop runs.
#ifndef ATTND_KERNELS_CUDA_SCORE_GEMM_SCORE_GEMM_KERNEL_CUH_
#define ATTND_KERNELS_CUDA_SCORE_GEMM_SCORE_GEMM_KERNEL_CUH_

#include <cuda.h>

#include <cstdint>

#include "kernels/cuda/score_gemm/score_gemm_params.h"
#include "kernels/cuda/score_gemm/score_gemm_schedule.h"
#include "kernels/cuda/wgmma/sync.cuh"
#include "kernels/cuda/wgmma/tma.cuh"
#include "kernels/cuda/wgmma/wgmma.cuh"

namespace attnd::kernels::cuda::score_gemm {

using Schedule = ScoreGemmSchedule;

constexpr int kProducerRegs = 40;
constexpr int kConsumerRegs = 232;
// Dynamic shared memory: up to 1023 bytes to align to 1024 (the swizzle atom), the stages, the
// consumers' staging buffers, then a full and an empty barrier per stage.
constexpr int kSmemBytes = 1024 + Schedule::kStages * kStageBytes +
                           Schedule::kConsumers * kStoreBytes + 2 * Schedule::kStages * 8;

__device__ __forceinline__ uint32_t SharedAddress(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Where output tile t lies.
struct TilePos {
  int64_t b = 0;
  int64_t h = 0;
  int row0 = 0;  // first row of the tile
  int col0 = 0;  // first column
};

__device__ __forceinline__ TilePos PosOfTile(const ScoreGemmParams& p, int64_t t) {
  const int64_t per_z = static_cast<int64_t>(p.m_tiles) * p.n_tiles;
  const int64_t z = t / per_z;
  const int64_t in_z = t % per_z;
  TilePos pos;
  pos.b = z / p.q_heads;
  pos.h = z % p.q_heads;
  pos.row0 = static_cast<int>(in_z / p.n_tiles) * kBlockM;
  pos.col0 = static_cast<int>(in_z % p.n_tiles) * kBlockN;
  return pos;
}

// Thread 0 of warpgroup 0: every step of every local tile, in the CTA's order.
__device__ __forceinline__ void Produce(const ScoreGemmParams& p, const ScoreGemmMaps& maps,
                                        int64_t local_tiles, uint32_t stages, uint32_t full,
                                        uint32_t empty) {
  for (int64_t i = 0; i < local_tiles; ++i) {
    const TilePos pos = PosOfTile(p, Schedule::GlobalTile(i, blockIdx.x, gridDim.x));
    const int b = static_cast<int>(pos.b);
    const int h = static_cast<int>(pos.h);
    for (int kk = 0; kk < p.k_steps; ++kk) {
      const int64_t g = Schedule::Step(i, p.k_steps, kk);
      const int stage = Schedule::Stage(g);
      if (Schedule::WaitsForEmpty(g)) {
        wgmma::BarrierWait(empty + 8 * stage, Schedule::EmptyParity(g));
      }
      const uint32_t barrier = full + 8 * stage;
      const uint32_t a_tile = stages + stage * kStageBytes;
      wgmma::BarrierArriveExpectTx(barrier, kStageBytes);
      wgmma::TmaLoad4d(a_tile, &maps.a, kk * kBlockK, pos.row0, h, b, barrier);
      wgmma::TmaLoad4d(a_tile + kTileBytes, &maps.b, kk * kBlockK, pos.col0, h / p.head_div, b,
                       barrier);
    }
  }
}

// Lane 0 of each warp arrives once its warp is past the wgmma wait that freed the stage.
__device__ __forceinline__ void ReleaseStage(uint32_t empty, int64_t g, int lane) {
  __syncwarp();
  if (lane == 0) wgmma::BarrierArrive(empty + 8 * Schedule::Stage(g));
}

// One tile's main loop: acc[0] rows 0-63, acc[1] rows 64-127 of the tile; on return every
// wgmma has completed and every stage of the tile is released.
template <class T>
__device__ __forceinline__ void MainLoop(const ScoreGemmParams& p, int64_t i, uint32_t stages,
                                         uint32_t full, uint32_t empty, int cw, int lane,
                                         bool passes_turn, float (&acc0)[64],
                                         float (&acc1)[64]) {
  wgmma::NamedBarrierSync(Schedule::TurnBarrier(cw), 256);
  for (int kk = 0; kk < p.k_steps; ++kk) {
    const int64_t g = Schedule::Step(i, p.k_steps, kk);
    const int stage = Schedule::Stage(g);
    wgmma::BarrierWait(full + 8 * stage, Schedule::FullParity(g));
    const uint32_t a_tile = stages + stage * kStageBytes;
    const uint32_t b_tile = a_tile + kTileBytes;
    wgmma::Fence();
#pragma unroll
    for (int k16 = 0; k16 < kBlockK / 16; ++k16) {
      // K-major, 128-byte swizzle: 8-row groups 1024 bytes apart, a k16 step 32 bytes on.
      const uint64_t desc_b = wgmma::Sw128Descriptor(b_tile + 32 * k16, 16, 1024);
      const uint64_t desc_a0 = wgmma::Sw128Descriptor(a_tile + 32 * k16, 16, 1024);
      const uint64_t desc_a1 = wgmma::Sw128Descriptor(a_tile + 8192 + 32 * k16, 16, 1024);
      const bool accumulate = kk > 0 || k16 > 0;
      wgmma::MmaSS<kBlockN, T>(acc0, desc_a0, desc_b, accumulate);
      wgmma::MmaSS<kBlockN, T>(acc1, desc_a1, desc_b, accumulate);
    }
    wgmma::Commit();
    if (kk > 0) {
      wgmma::Wait<1>();  // step kk - 1's group has read its stage
      ReleaseStage(empty, g - 1, lane);
    }
  }
  if (passes_turn) wgmma::NamedBarrierArrive(Schedule::TurnBarrier(1 - cw), 256);
  wgmma::Wait<0>();
  wgmma::FenceOperands(acc0);
  wgmma::FenceOperands(acc1);
  ReleaseStage(empty, Schedule::Step(i, p.k_steps, p.k_steps - 1), lane);
}

// alpha · acc of rows [row, + 64) of the tile to C from registers. A thread's rows are r and
// r + 8 (r = 16·warp + lane / 4), its columns 8j + 2·(lane % 4) + {0, 1}.
__device__ __forceinline__ void StoreHalf(const ScoreGemmParams& p, float* c_tile, int row,
                                          int col0, const float (&acc)[64], bool whole) {
  float* c_row = c_tile + static_cast<int64_t>(row) * p.ldc;
  float* c_row8 = c_row + 8 * p.ldc;
  if (whole) {
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      const int col = col0 + 8 * j;
      *reinterpret_cast<float2*>(c_row + col) =
          make_float2(p.alpha * acc[4 * j], p.alpha * acc[4 * j + 1]);
      *reinterpret_cast<float2*>(c_row8 + col) =
          make_float2(p.alpha * acc[4 * j + 2], p.alpha * acc[4 * j + 3]);
    }
    return;
  }
#pragma unroll
  for (int j = 0; j < 16; ++j) {
    const int col = col0 + 8 * j;
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      if (col + e >= p.n) continue;
      if (row < p.m) c_row[col + e] = p.alpha * acc[4 * j + e];
      if (row + 8 < p.m) c_row8[col + e] = p.alpha * acc[4 * j + 2 + e];
    }
  }
}

// alpha · acc (64 rows of the tile from row0) into the staging buffer, then to C by TMA: box
// b holds columns [32b, 32b + 32), row r at 128·r bytes, its 16-byte chunk q at q ^ (r % 8). A
// thread's pair at row r, column 8j + 2·(lane % 4) is chunk 2·(j % 4) + (lane % 4) / 2 of box j / 4;
// the 8 rows of a warp's write fall in 4 chunk pairs, 2 wavefronts for 256 bytes.
// `store_thread` (thread 0 of the consumer) issues the copies; the consumer's 128 threads meet at
// its store barrier before writing (the previous copies have read the buffer) and after.
__device__ __forceinline__ void StoreHalfByTma(const ScoreGemmParams& p, const ScoreGemmMaps& maps,
                                               uint32_t buffer, const TilePos& pos, int row0,
                                               int cw, int thread_row, int lane,
                                               bool store_thread, const float (&acc)[64]) {
  if (store_thread) wgmma::BulkWaitRead<0>();
  wgmma::NamedBarrierSync(Schedule::StoreBarrier(cw), 128);
  const int q = lane % 4;
#pragma unroll
  for (int j = 0; j < 16; ++j) {
    const int chunk = 2 * (j % 4) + q / 2;
#pragma unroll
    for (int half_row = 0; half_row < 2; ++half_row) {
      const int r = thread_row + 8 * half_row;
      const uint32_t address = buffer + (j / 4) * kStoreBoxBytes + r * 128 +
                               ((chunk ^ (r % 8)) * 16) + (q % 2) * 8;
      const float x = p.alpha * acc[4 * j + 2 * half_row];
      const float y = p.alpha * acc[4 * j + 2 * half_row + 1];
      asm volatile("st.shared.v2.f32 [%0], {%1, %2};\n" ::"r"(address), "f"(x), "f"(y)
                   : "memory");
    }
  }
  wgmma::FenceSharedForAsyncProxy();
  wgmma::NamedBarrierSync(Schedule::StoreBarrier(cw), 128);
  if (store_thread) {
#pragma unroll
    for (int box = 0; box < 4; ++box) {
      wgmma::TmaStore4d(&maps.c, pos.col0 + box * kStoreBoxCols, row0, static_cast<int>(pos.h),
                        static_cast<int>(pos.b), buffer + box * kStoreBoxBytes);
    }
    wgmma::BulkCommit();
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads, 1)
    ScoreGemmKernel(const ScoreGemmParams p, const __grid_constant__ ScoreGemmMaps maps) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ unsigned char smem_raw[];
  const uint32_t raw_address = SharedAddress(smem_raw);
  const uint32_t stages = raw_address + (1024 - raw_address % 1024) % 1024;
  const uint32_t buffers = stages + Schedule::kStages * kStageBytes;  // consumer c's at + c·kStoreBytes
  const uint32_t full = buffers + Schedule::kConsumers * kStoreBytes;  // barrier s at + 8s
  const uint32_t empty = full + 8 * Schedule::kStages;
  const int64_t local_tiles = Schedule::LocalTiles(p.tiles, blockIdx.x, gridDim.x);
  const int warpgroup = threadIdx.x / 128;
  const int lane = threadIdx.x % 32;

  if (threadIdx.x == 0) {
    for (int s = 0; s < Schedule::kStages; ++s) {
      wgmma::BarrierInit(full + 8 * s, 1);  // the producer's arrival; the copies' bytes
      wgmma::BarrierInit(empty + 8 * s, Schedule::kEmptyArrivals);
    }
    wgmma::FenceBarrierInit();
  }
  __syncthreads();  // the last CTA-wide barrier

  if (warpgroup == 0) {
    wgmma::ReleaseRegisters<kProducerRegs>();
    if (threadIdx.x == 0) Produce(p, maps, local_tiles, stages, full, empty);
    return;
  }

  wgmma::ClaimRegisters<kConsumerRegs>();
  const int cw = warpgroup - 1;
  const int warp = (threadIdx.x % 128) / 32;
  if (cw == 1 && local_tiles > 0) {
    wgmma::NamedBarrierArrive(Schedule::TurnBarrier(0), 256);  // warpgroup 0's first turn
  }
  const int thread_row = 16 * warp + lane / 4;
  const int thread_col = 2 * (lane % 4);
  const bool store_thread = threadIdx.x % 128 == 0;
  for (int64_t i = cw; i < local_tiles; i += Schedule::kConsumers) {
    float acc0[64];
    float acc1[64];
    MainLoop<T>(p, i, stages, full, empty, cw, lane, Schedule::PassesTurnAfter(i, local_tiles),
                acc0, acc1);
    const TilePos pos = PosOfTile(p, Schedule::GlobalTile(i, blockIdx.x, gridDim.x));
    if (p.tma_store) {
      const uint32_t buffer = buffers + cw * kStoreBytes;
      StoreHalfByTma(p, maps, buffer, pos, pos.row0, cw, thread_row, lane, store_thread, acc0);
      StoreHalfByTma(p, maps, buffer, pos, pos.row0 + 64, cw, thread_row, lane, store_thread,
                     acc1);
      continue;
    }
    float* c_tile = p.c + pos.b * p.c_batch_stride + pos.h * p.c_head_stride;
    const bool whole =
        p.vector_stores && pos.row0 + kBlockM <= p.m && pos.col0 + kBlockN <= p.n;
    StoreHalf(p, c_tile, pos.row0 + thread_row, pos.col0 + thread_col, acc0, whole);
    StoreHalf(p, c_tile, pos.row0 + 64 + thread_row, pos.col0 + thread_col, acc1, whole);
  }
  // The buffer must outlive the copies' reads, and the kernel their writes.
  if (store_thread) wgmma::BulkWait<0>();
#endif
}

}  // namespace attnd::kernels::cuda::score_gemm

#endif  // ATTND_KERNELS_CUDA_SCORE_GEMM_SCORE_GEMM_KERNEL_CUH_
