// The warp-specialised fused forward kernel on Hopper (sm_90a): wgmma_kernel.cuh's arithmetic,
// scheduled as FlashAttention-3 does, so that the tensor cores are not idle while the scores
// are masked and exponentiated. For 16-bit inputs at padded head dims 64-256, without a bias or
// with a 16-bit one, dense or ragged batches (cta_rows.h: a sequence's rows placed so that the
// batch's mask is its own, as in fused_kernel.cuh). RunFused routes here on sm_90 unless
// ATTND_FUSED_WS=0 (fused_wgmma_ws.h says which problems).
//
// One CTA of three warpgroups owns kBlockM = 128 query rows of one (batch, head):
//   producer     warpgroup 0, 40 registers a thread (setmaxnreg): copies Q once and then K_n
//                and V_n of each key block into a ring of two stages (cp.async, the 128-byte-
//                swizzled layouts of wgmma.cuh); after its copies land it fences them for the
//                async proxy and arrives on the stage's "full" mbarrier. It waits on a stage's
//                "empty" mbarrier before reusing it. With a bias, block n's bias tile first, into
//                a ring of its own. kBiasTiles (a 16-bit bias with 16-byte aligned rows, dense
//                over queries and keys: ws_bias_tiles.h): one thread copies it with TMA, 128-byte
//                swizzled like K, two stages. Else by rows (fused_kernel.cuh's padded tile
//                layout and shifts, a row a producer thread; two stages where they fit), and the
//                producer does not wait for those copies to land (cp.async.mbarrier.arrive), so
//                that several are in flight. The consumers read a bias tile into S before they
//                multiply and free it at once.
//                kTma (the default; ATTND_FUSED_WS=cp_async keeps the cp.async copies, which
//                are also the fallback where a tensor map cannot be made): one thread copies
//                K_n and V_n with
//                the tensor memory accelerator instead (tma.cuh; the host's CUtensorMaps lay
//                them out swizzled as above), their bytes completing the full barriers; only
//                a last block that stops inside the tensor copies V by cp.async, to zero the
//                keys past the CTA's last (P is 0 there, but 0·NaN is not).
//   consumers    warpgroups 1 and 2, 64 rows each, 232 registers a thread: S = Q·Kᵀ as one SS
//                wgmma chain, P·V as one RS chain (P in registers, V MN-major), the online
//                softmax of wgmma_block.cuh. Within a warpgroup the two GEMMs overlap the
//                softmax: at block n it issues S_n = Q·K_nᵀ and O += P_{n-1}·V_{n-1} together,
//                waits for S_n only, masks and exponentiates it while P_{n-1}·V_{n-1} runs, then
//                waits for that and rescales O by the new row maxima. Named barriers also
//                order the two consumers' GEMM issues, turn about, so that one's softmax runs
//                while the other's GEMMs do (FlashAttention-3's ping-pong schedule; without it
//                the kernel was 13% slower at D 128, H100, bench/RESULTS.md 2026-12-07).
// Shared memory: Q [128, D] K-major; per stage K [kBlockN, D] K-major and V [kBlockN, D]
// MN-major; with a bias, per bias stage a tile of it ([128, kBlockN] swizzled with kBiasTiles,
// else [128, kBlockN + 8] and its rows' shifts); up to thirteen mbarriers. kBlockN is 128 up to
// D 128 (161 KiB at D 128) and 64 above (D 256: 193 KiB), so that O (D/2), S (kBlockN/2) and
// P (kBlockN/4) fit 232 registers. Two bias tiles of 32 KiB fit beside that at D 128 (225 KiB)
// and two of 16 KiB at D 256; padded rows take more room, so with a bias copied by rows kBlockN
// is 64 at every D (D 128: 133 KiB; D 256 has room for one stage only, 211 KiB).
// Head dims above 128 split P·V across two RS chains (wgmma's N is at most 256, and its
// accumulators are one array): D 160 as 64 + 96, D 192 as 128 + 64, D 256 as 128 + 128.
//
// Barriers and their parities: ws_schedule.h (run on the host by tests/gpu/ws_schedule_test.cc).
// Full barriers count the producer's 128 arrivals (one with TMA; 256 for a bias by rows: two a
// thread), K's and V's empty ones the consumers' 8 warps, the bias tiles' empty ones all 256
// consumer threads (each reads the tile with plain loads, so each releases it itself).
#ifndef ATTND_KERNELS_CUDA_FUSED_WGMMA_WS_KERNEL_CUH_
#define ATTND_KERNELS_CUDA_FUSED_WGMMA_WS_KERNEL_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "kernels/cuda/fused/cta_rows.h"
#include "kernels/cuda/fused/fused_params.h"
#include "kernels/cuda/fused/mma.cuh"  // CpAsync*, PackPair, SmemAddress
#include "kernels/cuda/fused/wgmma_block.cuh"
#include "kernels/cuda/fused/ws_schedule.h"
#include "kernels/cuda/fused/ws_tensor_maps.h"
#include "kernels/cuda/wgmma/sync.cuh"
#include "kernels/cuda/wgmma/tma.cuh"
#include "kernels/cuda/wgmma/wgmma.cuh"

namespace attnd::kernels::cuda::fused {

// kBlockN_: WsBlockN(kDim_, biased) (ws_tensor_maps.h); a biased problem at D <= 128 takes the
// 64-key shape.
template <int kDim_, int kBlockN_ = WsBlockN(kDim_, false)>
struct WsShape {
  static_assert(kDim_ == 64 || kDim_ == 80 || kDim_ == 96 || kDim_ == 128 || kDim_ == 160 ||
                    kDim_ == 192 || kDim_ == 256,
                "P·V is split into chains of the instantiated wgmma widths");
  static constexpr int kDim = kDim_;
  static constexpr int kAtomCols = (kDim + 63) / 64;  // 64-element atom columns of a tile row
  static constexpr int kBlockM = 128;                 // two consumer warpgroups × 64 rows
  static constexpr int kBlockN = kBlockN_;
  static_assert(kBlockN == 64 || kBlockN == 128, "S is kBlockN / 2 registers of one wgmma");
  static_assert(WsSchedule::kStages == 2, "the tiles and barriers below hold two stages");
  static constexpr int kThreads = 384;
  static constexpr int kProducerRegs = 40;
  static constexpr int kConsumerRegs = 232;  // 128 · 40 + 256 · 232 <= 65536
  static constexpr int kSRegs = kBlockN / 2;
  static constexpr int kORegs = kDim / 2;
  static constexpr int kKSteps = kBlockN / 16;  // of P·V
  // P·V's two chains: head columns [0, kPv0) and [kPv0, kDim); each starts at an atom column.
  static constexpr int kPv0 = kDim == 160 ? 64 : (kDim > 128 ? 128 : kDim);
  static constexpr int kPv1 = kDim - kPv0;
  static constexpr int kQBytes = kBlockM * kAtomCols * 128;
  static constexpr int kKvBytes = kBlockN * kAtomCols * 128;  // one stage of K or of V
  static constexpr int kBarrierBytes = 128;                   // 13 mbarriers of 8 bytes
  // Q, two stages of K and of V, the barriers, and slack to start the tiles at a multiple of
  // 1024 bytes (the swizzle acts on address bits 4-9).
  static constexpr int kSmemBytes = kQBytes + 4 * kKvBytes + kBarrierBytes + 1024;
  // With a 16-bit bias: kBiasStages tiles of it (LoadBiasTile's layout) after the above, then
  // their rows' shifts; two stages where they fit (all but D 256), so that the producer copies
  // block n + 1's bias while the consumers use block n's.
  __host__ __device__ static constexpr int BiasPitch(int elem) { return (kBlockN + 8) * elem; }
  __host__ __device__ static constexpr int BiasTileBytes(int elem) {
    return kBlockM * BiasPitch(elem);
  }
  static constexpr int kBiasStageBytes = BiasTileBytes(2) + kBlockM;  // a tile and its shifts
  static constexpr int kBiasStages = kSmemBytes + 2 * kBiasStageBytes <= 227 * 1024 ? 2 : 1;
  static constexpr int kSmemBytesWithBias = kSmemBytes + kBiasStages * kBiasStageBytes;
  static_assert(kSmemBytesWithBias <= 227 * 1024, "an sm_90 CTA has at most 227 KiB");
  // With a 16-bit bias copied as TMA tiles (kBiasTiles kernels): two stages of [kBlockM, kBlockN]
  // elements, in 64-key atom columns of [128 rows, 128 bytes] swizzled as K's, right after V
  // (1024-byte aligned for the swizzle), then the barriers. No padding and no shifts: the tensor's
  // rows are 16-byte aligned (ws_bias_tiles.h), and the box starts at the block's first key.
  static constexpr int kBiasTileStages = 2;
  static constexpr int kBiasTileBytes = kBlockM * kBlockN * 2;
  static constexpr int kSmemBytesWithBiasTiles = kSmemBytes + kBiasTileStages * kBiasTileBytes;
  static_assert(kSmemBytesWithBiasTiles <= 227 * 1024, "an sm_90 CTA has at most 227 KiB");
};

// The producer's copy of a 16-bit bias tile, LoadBiasTile's layout (fused_kernel.cuh) but one
// row a thread (kBlockM = the producer's 128 threads): the row's start, its 64-bit index
// arithmetic and its shift once, then its pieces at 16-byte steps. LoadBiasTile spreads pieces
// over threads and pays a division and the index arithmetic for every piece, which at 40
// registers a thread made the producer the biased kernel's bottleneck (ncu, H100 2026-12-07:
// 3.9× the cycles of the unbiased kernel at the same issue rate).
template <class Shape>
__device__ __forceinline__ void ProducerLoadBiasRows(unsigned char* tile, uint8_t* shifts,
                                                     const FusedParams& p, int kb) {
  static_assert(Shape::kBlockM == 128, "a producer thread per tile row");
  constexpr int kElem = 2;
  const int r = static_cast<int>(threadIdx.x);
  const bool one_row = p.bias_index.row == 0;  // broadcast over queries
  if (one_row && r > 0) return;
  const int64_t b = blockIdx.z;
  const int64_t h = blockIdx.y;
  const int64_t q0 = static_cast<int64_t>(gridDim.x - 1 - blockIdx.x) * Shape::kBlockM;
  const CtaRows seq = RowsOf(p, b);
  const int64_t row = one_row ? seq.row_lo : q0 + r;
  const bool row_valid = seq.Has(row);
  const int64_t first = row_valid ? p.bias_index.At(b, h, row - seq.row_lo, kb) * kElem : 0;
  shifts[r] = static_cast<uint8_t>((first & 15) / kElem);
  unsigned char* to = tile + r * Shape::BiasPitch(kElem);
  const unsigned char* base = static_cast<const unsigned char*>(p.bias);
  const int64_t from = first & ~int64_t{15};
  // A bias broadcast over keys needs only the piece of its one element.
  const int pieces = p.bias_index.col == 0 ? 1 : Shape::BiasPitch(kElem) / 16;
#pragma unroll 1
  for (int piece = 0; piece < pieces; ++piece) {
    CopyBiasPiece(to + 16 * piece, base, from + 16 * piece, p.bias_bytes, row_valid);
  }
}

// The producer's copy of rows [row0, row0 + kRows) of a head into a K-major tile (kMnMajor:
// MN-major), as wgmma_kernel.cuh's LoadSwizzledRows but by the warpgroup's 128 threads and two
// copies at a time (fully unrolled, the loop-invariant addresses of 16-32 copies a thread would
// not fit the producer's 40 registers), and rows before `floor` (another ragged sequence's)
// zero-filled like those at or past `limit`.
template <class Shape, int kRows, bool kMnMajor, class T>
__device__ __forceinline__ void ProducerLoadRows(unsigned char* tile, const T* head,
                                                 int64_t seq_stride, int64_t row0, int64_t limit,
                                                 int dim, int64_t floor = 0) {
  constexpr int kChunks = Shape::kDim / 8;
  constexpr int kCopies = kRows * kChunks;
  static_assert(kCopies % 128 == 0, "every producer thread copies the same count");
  const int t = static_cast<int>(threadIdx.x);  // the producer is warpgroup 0
#pragma unroll 2
  for (int i = 0; i < kCopies / 128; ++i) {
    const int c = t + i * 128;
    const int r = c / kChunks;
    const int col = (c % kChunks) * 8;
    const bool valid = row0 + r >= floor && row0 + r < limit && col < dim;
    const T* src = valid ? head + (row0 + r) * seq_stride + col : head;
    const int at =
        kMnMajor ? wgmma::MnMajorOffset(r, col, kRows * 128) : wgmma::KMajorOffset(r, col, kRows);
    CpAsync16(tile + at, src, valid);
  }
}

// One K or V tile of Shape::kBlockN rows from `row` by TMA (one thread): a box of 64 columns per
// atom column, whose bytes complete `full` (which this arrival tells to expect them). Also the
// wide kernel's (wgmma_wide_kernel.cuh).
template <class Shape>
__device__ __forceinline__ void TmaKvTile(const CUtensorMap* map, unsigned char* tile, int row,
                                          int64_t kv_h, int batch, uint32_t full) {
  wgmma::BarrierArriveExpectTx(full, Shape::kKvBytes);
#pragma unroll
  for (int a = 0; a < Shape::kAtomCols; ++a) {
    wgmma::TmaLoad4d(SmemAddress(tile) + a * Shape::kBlockN * 128, map, 64 * a, row,
                     static_cast<int>(kv_h), batch, full);
  }
}

// Offsets of the mbarriers in their block.
enum WsBarrier : int {
  kQFull = 0,
  kKFull = 1,  // + stage
  kVFull = 3,
  kKEmpty = 5,
  kVEmpty = 7,
  kBiasFull = 9,    // + bias stage
  kBiasEmpty = 11,  // likewise
};

// A bias stage's tile and its rows' shifts (`bias` is where the stages start).
template <class Shape>
__device__ __forceinline__ unsigned char* BiasTileOf(unsigned char* bias, int stage) {
  return bias + stage * Shape::BiasTileBytes(2);
}
template <class Shape>
__device__ __forceinline__ uint8_t* BiasShiftsOf(unsigned char* bias, int stage) {
  return bias + Shape::kBiasStages * Shape::BiasTileBytes(2) + stage * Shape::kBlockM;
}

// O += P·V for the warpgroup: P the packed scores of kBlockN keys (the register A fragments of
// its k steps), V the stage's MN-major tile at `v_address`.
template <class Shape, class T>
__device__ __forceinline__ void IssuePV(float (&o)[Shape::kORegs],
                                        const uint32_t (&pf)[Shape::kKSteps][4],
                                        uint32_t v_address) {
  constexpr int kAtomColumnBytes = Shape::kBlockN * 128;
#pragma unroll
  for (int kk = 0; kk < Shape::kKSteps; ++kk) {
    const uint64_t desc0 = wgmma::Sw128Descriptor(v_address + kk * 2048, kAtomColumnBytes, 1024);
    wgmma::MmaRS<Shape::kPv0, T>(*reinterpret_cast<float(*)[Shape::kPv0 / 2]>(&o[0]), pf[kk], desc0,
                                 true);
    if constexpr (Shape::kPv1 > 0) {
      const uint64_t desc1 = wgmma::Sw128Descriptor(
          v_address + kk * 2048 + (Shape::kPv0 / 64) * kAtomColumnBytes, kAtomColumnBytes, 1024);
      wgmma::MmaRS<Shape::kPv1, T>(
          *reinterpret_cast<float(*)[Shape::kPv1 / 2]>(&o[Shape::kPv0 / 2]), pf[kk], desc1, true);
    }
  }
}

// S exponentiated, packed to 16 bits as P·V's A fragments: n-blocks 2kk and 2kk + 1 are k step
// kk.
template <class Shape, class T>
__device__ __forceinline__ void PackP(uint32_t (&pf)[Shape::kKSteps][4],
                                      const float (&s)[Shape::kSRegs]) {
#pragma unroll
  for (int kk = 0; kk < Shape::kKSteps; ++kk) {
#pragma unroll
    for (int i = 0; i < 4; ++i) pf[kk][i] = PackPair<T>(s[8 * kk + 2 * i], s[8 * kk + 2 * i + 1]);
  }
}

// Lane 0 of each consumer warp arrives once its warp is past the wgmma wait that freed a tile.
__device__ __forceinline__ void ReleaseTile(uint32_t barrier_address, int lane) {
  __syncwarp();
  if (lane == 0) wgmma::BarrierArrive(barrier_address);
}

// S of a block started at bias / scale from a TMA bias tile (WsShape's kBiasTileBytes layout:
// 64-key atom columns of 128 rows × 128 bytes, the 16-byte pieces of row r at piece ^ (r % 8)).
// The thread's rows tile_row and tile_row + 8 are both ≡ lane / 4 (mod 8), and its keys 8j +
// 2·(lane % 4) + {0, 1} are one aligned 4-byte pair: so one 32-bit load a pair, at an offset
// whose swizzle is one XOR; the eight row groups of a warp's load hit eight different pieces
// of 16 bytes, all 32 banks once.
template <int kBlockN, class Bias>
__device__ __forceinline__ void ScoresFromBiasTiles(float (&s)[kBlockN / 2],
                                                    const unsigned char* tile, float to_acc,
                                                    int tile_row, int lane) {
  const int swizzle = 16 * (lane / 4);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const unsigned char* row = tile + (tile_row + 8 * r) * 128 + 4 * (lane % 4);
#pragma unroll
    for (int j = 0; j < kBlockN / 8; ++j) {
      const int at = (j / 8) * (128 * 128) + ((16 * (j % 8)) ^ swizzle);
      const uint32_t pair = *reinterpret_cast<const uint32_t*>(row + at);
      float lo;
      float hi;
      if constexpr (std::is_same_v<Bias, __nv_bfloat16>) {
        lo = __uint_as_float(pair << 16);  // a bf16 is a float's upper half
        hi = __uint_as_float(pair & 0xffff0000u);
      } else {
        const float2 both = __half22float2(*reinterpret_cast<const __half2*>(&pair));
        lo = both.x;
        hi = both.y;
      }
      s[4 * j + 2 * r] = lo * to_acc;
      s[4 * j + 2 * r + 1] = hi * to_acc;
    }
  }
}

// With a bias, S of block n starts at bias / scale from its stage's bias tile, which is then free
// for block n + the stages'; without one, IssueQK's first step sets S. kBiasTiles: the tiles are
// TMA's (ScoresFromBiasTiles), else LoadBiasTile's padded rows with their shifts.
template <class Shape, bool kBiasTiles>
__device__ __forceinline__ void StartScores(float (&s)[Shape::kSRegs], unsigned char* bias,
                                            const FusedParams& p, uint32_t barriers, int n,
                                            int tile_row, int lane) {
  if (p.bias == nullptr) return;
  constexpr int kStages = kBiasTiles ? Shape::kBiasTileStages : Shape::kBiasStages;
  const int stage = WsSchedule::BiasStage(n, kStages);
  wgmma::BarrierWait(barriers + 8 * (kBiasFull + stage), WsSchedule::BiasFullParity(n, kStages));
  if constexpr (kBiasTiles) {
    const unsigned char* tile = bias + stage * Shape::kBiasTileBytes;
    if (p.bias_dtype == DType::kBF16) {
      ScoresFromBiasTiles<Shape::kBlockN, __nv_bfloat16>(s, tile, p.bias_to_acc, tile_row, lane);
    } else {
      ScoresFromBiasTiles<Shape::kBlockN, __half>(s, tile, p.bias_to_acc, tile_row, lane);
    }
  } else {
    ScoresFromBiasTile<Shape::kBlockN>(s, BiasTileOf<Shape>(bias, stage),
                                       BiasShiftsOf<Shape>(bias, stage), p, tile_row, lane);
  }
  wgmma::BarrierArrive(barriers + 8 * (kBiasEmpty + stage));  // this thread's reads are done
}

// Ping-pong turns of the consumer warpgroups' GEMM issues (ws_schedule.h). Each warpgroup takes
// n_blocks + 1 turns: S_0; S_n with P_{n-1}·V_{n-1}; the last P·V.
__device__ __forceinline__ void TakeTurn(int cw) {
  wgmma::NamedBarrierSync(WsSchedule::TurnBarrier(cw), 256);
}
__device__ __forceinline__ void PassTurn(int cw, bool last_turn) {
  if (WsSchedule::PassesTurn(cw, last_turn)) {
    wgmma::NamedBarrierArrive(WsSchedule::TurnBarrier(1 - cw), 256);
  }
}

// The producer's copy of the CTA's Q rows (q_head is the head's row 0: kernel row r is its row
// r + q_shift; rows outside the sequence zeroed), one cp.async group.
template <class Shape, class T>
__device__ __forceinline__ void ProducerLoadQ(const FusedParams& p, unsigned char* q_tile,
                                              const T* q_head, int64_t q0, const CtaRows& seq) {
  ProducerLoadRows<Shape, Shape::kBlockM, false>(q_tile, q_head, p.q_strides.seq, q0 + seq.q_shift,
                                                 seq.row_hi + seq.q_shift, p.head_dim,
                                                 seq.row_lo + seq.q_shift);
  CpAsyncCommit();
}

// The producer's copy of block n's bias tile into its stage, once both consumers have read
// block n - the stages' from there into S.
// kBiasTiles: thread 0 copies it as TMA boxes of 64 keys × 128 rows (the map's broadcast dims
// at coordinate 0), whose bytes complete the full barrier (counting its one arrival); rows past
// Mq and keys past Mk land as zeros (masked anyway).
// Else by rows, one cp.async group. The thread does not wait for its copies: its full barrier
// counts two arrivals of each producer thread, one when its copies have landed and one now
// (whose release covers the plain stores: the shifts, a short last piece).
template <class Shape, bool kBiasTiles>
__device__ __forceinline__ void ProducerLoadBias(const FusedParams& p, const WsTensorMaps& maps,
                                                 unsigned char* bias, uint32_t barriers, int n,
                                                 int kb) {
  constexpr int kStages = kBiasTiles ? Shape::kBiasTileStages : Shape::kBiasStages;
  const int stage = WsSchedule::BiasStage(n, kStages);
  const uint32_t full = barriers + 8 * (kBiasFull + stage);
  if constexpr (kBiasTiles) {
    if (threadIdx.x != 0) return;
  }
  if (WsSchedule::WaitsForBiasEmpty(n, kStages)) {
    wgmma::BarrierWait(barriers + 8 * (kBiasEmpty + stage),
                       WsSchedule::BiasEmptyParity(n, kStages));
  }
  if constexpr (kBiasTiles) {
    const int q0 = static_cast<int>(gridDim.x - 1 - blockIdx.x) * Shape::kBlockM;
    const int h = p.bias_index.head == 0 ? 0 : static_cast<int>(blockIdx.y);
    const int b = p.bias_index.batch == 0 ? 0 : static_cast<int>(blockIdx.z);
    const uint32_t tile = SmemAddress(bias + stage * Shape::kBiasTileBytes);
    wgmma::BarrierArriveExpectTx(full, Shape::kBiasTileBytes);
#pragma unroll
    for (int a = 0; a < Shape::kBlockN / 64; ++a) {
      wgmma::TmaLoad4d(tile + a * (128 * 128), &maps.bias, kb + 64 * a, q0, h, b, full);
    }
  } else {
    ProducerLoadBiasRows<Shape>(BiasTileOf<Shape>(bias, stage), BiasShiftsOf<Shape>(bias, stage), p,
                                kb);
    CpAsyncCommit();
    wgmma::BarrierArriveOnCpAsyncLanded(full);
    wgmma::BarrierArrive(full);
  }
}

// cp.async.wait_group with a count known only at run time (0-3).
__device__ __forceinline__ void CpAsyncWaitAtMost(int pending) {
  if (pending >= 3) {
    CpAsyncWait<3>();
  } else if (pending == 2) {
    CpAsyncWait<2>();
  } else if (pending == 1) {
    CpAsyncWait<1>();
  } else {
    CpAsyncWait<0>();
  }
}

// The producer: Q once, then of every block n its bias tile (with a bias), K_n and V_n into
// stage n % 2, each a cp.async group by all 128 threads, which arrive on its full barrier once
// their copies have landed (fenced for the async proxy where wgmma reads them). kTma: thread 0
// copies K_n and V_n instead, one TMA box per 64-column atom column, announcing their bytes on
// the full barriers (which then count one arrival); a block that ends past the CTA's last key
// still copies its V by cp.async (rows from key_hi zeroed), the 128 threads meeting at
// kVLandedBarrier before thread 0 arrives.
template <class T, class Shape, bool kTma, bool kBiasTiles>
__device__ __forceinline__ void ProduceTiles(const FusedParams& p, const WsTensorMaps& maps,
                                             const T* q_head, const T* k_head, const T* v_head,
                                             int64_t q0, const CtaRows& seq,
                                             const WgmmaCtaKeys& keys, int64_t b, int64_t kv_h,
                                             unsigned char* q_tile, unsigned char* k_tiles,
                                             unsigned char* v_tiles, unsigned char* bias,
                                             uint32_t barriers) {
  const bool biased = p.bias != nullptr;
  const bool leader = threadIdx.x == 0;
  // TMA coordinates: a ragged batch's rows are packed in one "batch element".
  const int batch = p.q_offsets != nullptr ? 0 : static_cast<int>(b);
  const int row0 = static_cast<int>(seq.kv_row0);
  ProducerLoadQ<Shape>(p, q_tile, q_head, q0, seq);
  for (int n = 0; n < keys.n_blocks; ++n) {
    const int stage = WsSchedule::Stage(n);
    const int kb = keys.key_lo + n * Shape::kBlockN;
    unsigned char* k_tile = k_tiles + stage * Shape::kKvBytes;
    unsigned char* v_tile = v_tiles + stage * Shape::kKvBytes;
    if (biased) ProducerLoadBias<Shape, kBiasTiles>(p, maps, bias, barriers, n, kb);
    // Block n - 2's tiles in this stage are free once both consumers are past them (with TMA and
    // kLeaderAloneWaits thread 0 alone waits; the others wait for it only to copy a V:
    // ws_schedule.h).
    const bool waits_for_empty = WsSchedule::WaitsForEmpty(n, kTma, leader);
    if (waits_for_empty) {
      wgmma::BarrierWait(barriers + 8 * (kKEmpty + stage), WsSchedule::EmptyParity(n));
    }
    if constexpr (kTma) {
      if (leader) {
        TmaKvTile<Shape>(&maps.k, k_tile, row0 + kb, kv_h, batch, barriers + 8 * (kKFull + stage));
      }
    } else {
      ProducerLoadRows<Shape, Shape::kBlockN, false>(k_tile, k_head, p.k_strides.seq, kb,
                                                     keys.key_hi, p.head_dim);
      CpAsyncCommit();
    }
    if (waits_for_empty) {
      wgmma::BarrierWait(barriers + 8 * (kVEmpty + stage), WsSchedule::EmptyParity(n));
    }
    const bool v_by_threads = !kTma || kb + Shape::kBlockN > keys.key_hi;
    if (v_by_threads) {
      if (WsSchedule::SyncsVFree(n, kTma, v_by_threads)) {
        wgmma::NamedBarrierSync(WsSchedule::kVFreeBarrier, WsSchedule::kProducerThreads);
      }
      ProducerLoadRows<Shape, Shape::kBlockN, true>(v_tile, v_head, p.v_strides.seq, kb,
                                                    keys.key_hi, p.v_head_dim);
      CpAsyncCommit();
    } else if (leader) {
      TmaKvTile<Shape>(&maps.v, v_tile, row0 + kb, kv_h, batch, barriers + 8 * (kVFull + stage));
    }
    // This thread's cp.async groups land in order: Q (first block only), the bias tile (with a
    // bias copied by rows; its barrier already tracks it), K_n (without TMA), V_n (by threads).
    // Q, K and V are fenced for the async proxy (wgmma reads through it) before their barriers
    // release them.
    const int bias_group = biased && !kBiasTiles ? 1 : 0;
    const int k_group = kTma ? 0 : 1;
    const int v_group = v_by_threads ? 1 : 0;
    if (n == 0) {
      CpAsyncWaitAtMost(bias_group + k_group + v_group);
      wgmma::FenceSharedForAsyncProxy();
      wgmma::BarrierArrive(barriers + 8 * kQFull);
    }
    if constexpr (!kTma) {
      CpAsyncWait<1>();
      wgmma::FenceSharedForAsyncProxy();
      wgmma::BarrierArrive(barriers + 8 * (kKFull + stage));
    }
    if (v_by_threads) {
      CpAsyncWait<0>();
      wgmma::FenceSharedForAsyncProxy();
      if constexpr (kTma) {
        // Every producer thread's part has landed.
        wgmma::NamedBarrierSync(WsSchedule::kVLandedBarrier, WsSchedule::kProducerThreads);
        if (leader) wgmma::BarrierArrive(barriers + 8 * (kVFull + stage));
      } else {
        wgmma::BarrierArrive(barriers + 8 * (kVFull + stage));
      }
    }
  }
}

// kBiasTiles (with kTma only): the problem has a 16-bit bias whose tiles TMA copies through
// maps.bias (ws_bias_tiles.h says which biases); else a bias, if any, is copied by rows.
template <class T, class Shape, bool kTma, bool kBiasTiles>
__global__ void __launch_bounds__(Shape::kThreads, 1)
    WgmmaWsForwardKernel(const FusedParams p, const __grid_constant__ WsTensorMaps maps) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  static_assert(kTma || !kBiasTiles, "bias tiles come by TMA");
  extern __shared__ unsigned char smem_raw[];
  const uint32_t raw_address = SmemAddress(smem_raw);
  unsigned char* q_tile = smem_raw + (1024 - raw_address % 1024) % 1024;
  unsigned char* k_tiles = q_tile + Shape::kQBytes;        // stage s at + s · kKvBytes
  unsigned char* v_tiles = k_tiles + 2 * Shape::kKvBytes;  // likewise
  // Then the barriers (8 bytes each) and the bias stages (BiasTileOf), or with kBiasTiles the
  // bias stages (1024-byte aligned) and the barriers.
  unsigned char* after_v = v_tiles + 2 * Shape::kKvBytes;
  const uint32_t barriers =
      SmemAddress(kBiasTiles ? after_v + Shape::kBiasTileStages * Shape::kBiasTileBytes : after_v);
  unsigned char* bias = kBiasTiles ? after_v : after_v + Shape::kBarrierBytes;

  const int warpgroup = threadIdx.x / 128;
  const int lane = threadIdx.x % 32;
  // Causal rows late in the sequence see the most keys: launch them first.
  const int64_t q0 = static_cast<int64_t>(gridDim.x - 1 - blockIdx.x) * Shape::kBlockM;
  const int64_t h = blockIdx.y;
  const int64_t b = blockIdx.z;
  const int64_t kv_h = h / p.group;
  // The sequence's rows and keys (cta_rows.h); a ragged sequence shorter than the longest has
  // CTAs with none of its rows, which end here (the whole CTA alike).
  const CtaRows seq = RowsOf(p, b);
  int64_t q_first = 0;
  int64_t q_last = 0;
  if (!CtaHoldsRows(seq, q0, Shape::kBlockM, &q_first, &q_last)) return;
  WgmmaCtaKeys keys = KeysOfRows(p, seq.valid_keys, q_first, q_last, Shape::kBlockN);
  if (kBiasTiles && keys.n_blocks > 0) {
    // A TMA box's first key must lie on 16 bytes (else the copy is an illegal instruction, H100
    // 2026-12-07): blocks start at a multiple of 8 keys, those before key_lo masked like any
    // other key a row does not see.
    keys.key_lo &= ~7;
    keys.n_blocks = (keys.key_hi - keys.key_lo + Shape::kBlockN - 1) / Shape::kBlockN;
  }

  if (threadIdx.x == 0) {
    wgmma::BarrierInit(barriers + 8 * kQFull, 128);
    for (int s = 0; s < 2; ++s) {
      // With TMA one thread arrives on K's and V's full barriers (and their bytes complete them).
      wgmma::BarrierInit(barriers + 8 * (kKFull + s), kTma ? 1 : 128);
      wgmma::BarrierInit(barriers + 8 * (kVFull + s), kTma ? 1 : 128);
      wgmma::BarrierInit(barriers + 8 * (kKEmpty + s), 8);
      wgmma::BarrierInit(barriers + 8 * (kVEmpty + s), 8);
    }
    // ProducerLoadBias: one arrival with TMA, two a thread by rows.
    for (int s = 0; s < (kBiasTiles ? Shape::kBiasTileStages : Shape::kBiasStages); ++s) {
      wgmma::BarrierInit(barriers + 8 * (kBiasFull + s), kBiasTiles ? 1 : 256);
      wgmma::BarrierInit(barriers + 8 * (kBiasEmpty + s), 256);
    }
    wgmma::FenceBarrierInit();
  }
  __syncthreads();  // the last CTA-wide barrier: the roles never meet at one again

  if (warpgroup == 0) {
    wgmma::ReleaseRegisters<Shape::kProducerRegs>();
    if (keys.n_blocks == 0) return;
    const T* q_head = static_cast<const T*>(p.q) + b * p.q_strides.batch + h * p.q_strides.head;
    const T* k_head = static_cast<const T*>(p.k) + b * p.k_strides.batch +
                      seq.kv_row0 * p.k_strides.seq + kv_h * p.k_strides.head;
    const T* v_head = static_cast<const T*>(p.v) + b * p.v_strides.batch +
                      seq.kv_row0 * p.v_strides.seq + kv_h * p.v_strides.head;
    ProduceTiles<T, Shape, kTma, kBiasTiles>(p, maps, q_head, k_head, v_head, q0, seq, keys, b,
                                             kv_h, q_tile, k_tiles, v_tiles, bias, barriers);
    return;
  }

  wgmma::ClaimRegisters<Shape::kConsumerRegs>();
  const int cw = warpgroup - 1;               // consumer warpgroup: rows 64·cw ...
  const int warp = (threadIdx.x % 128) / 32;  // within it
  const int row_base = static_cast<int>(q0) + 64 * cw + 16 * warp + lane / 4;
  const uint32_t q_address = SmemAddress(q_tile);
  const uint32_t k_address = SmemAddress(k_tiles);
  const uint32_t v_address = SmemAddress(v_tiles);
  const bool biased = p.bias != nullptr;
  const int tile_row = 64 * cw + 16 * warp + lane / 4;  // the thread's first row in the CTA

  float o[Shape::kORegs];
#pragma unroll
  for (int i = 0; i < Shape::kORegs; ++i) o[i] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY};  // running max, base-2 units
  float l[2] = {0.0f, 0.0f};            // this thread's share of the running sum
  uint32_t pf[Shape::kKSteps][4];       // P of the block whose P·V is next
  float s[Shape::kSRegs];
  float rescale[2];

  if (keys.n_blocks > 0) {
    if (WsSchedule::GivesFirstTurn(cw)) {
      wgmma::NamedBarrierArrive(WsSchedule::TurnBarrier(1 - cw), 256);
    }
    wgmma::BarrierWait(barriers + 8 * kQFull, 0);  // its one use
    // Block 0: S_0 alone; nothing is accumulated yet, so no rescale.
    StartScores<Shape, kBiasTiles>(s, bias, p, barriers, 0, tile_row, lane);
    wgmma::BarrierWait(barriers + 8 * kKFull, WsSchedule::FullParity(0));
    TakeTurn(cw);
    wgmma::Fence();
    IssueQK<Shape, T>(s, q_address, k_address, cw, biased);
    wgmma::Commit();
    PassTurn(cw, false);
    wgmma::Wait<0>();
    wgmma::FenceOperands(s);
    ReleaseTile(barriers + 8 * kKEmpty, lane);
    ScaleAndMask<Shape::kBlockN>(s, p, keys, keys.key_lo, row_base, lane);
    OnlineSoftmax<Shape::kBlockN>(s, m, l, rescale);
    PackP<Shape, T>(pf, s);
  }
  for (int n = 1; n < keys.n_blocks; ++n) {
    const int stage = WsSchedule::Stage(n);
    const int prev = WsSchedule::Stage(n - 1);
    const int kb = keys.key_lo + n * Shape::kBlockN;
    // S_n = Q·K_nᵀ, then O += P_{n-1}·V_{n-1}: two groups, completing in that order.
    StartScores<Shape, kBiasTiles>(s, bias, p, barriers, n, tile_row, lane);
    wgmma::BarrierWait(barriers + 8 * (kKFull + stage), WsSchedule::FullParity(n));
    TakeTurn(cw);
    wgmma::Fence();
    IssueQK<Shape, T>(s, q_address, k_address + stage * Shape::kKvBytes, cw, biased);
    wgmma::Commit();
    wgmma::BarrierWait(barriers + 8 * (kVFull + prev), WsSchedule::FullParity(n - 1));
    wgmma::Fence();
    IssuePV<Shape, T>(o, pf, v_address + prev * Shape::kKvBytes);
    wgmma::Commit();
    PassTurn(cw, false);
    // S_n has landed (P_{n-1}·V_{n-1} may still run): mask and exponentiate it meanwhile.
    wgmma::Wait<1>();
    wgmma::FenceOperands(s);
    ReleaseTile(barriers + 8 * (kKEmpty + stage), lane);
    ScaleAndMask<Shape::kBlockN>(s, p, keys, kb, row_base, lane);
    OnlineSoftmax<Shape::kBlockN>(s, m, l, rescale);
    // O holds block n-1's sum at the old maxima: rescale it once its chain is done.
    wgmma::Wait<0>();
    wgmma::FenceOperands(o);
    ReleaseTile(barriers + 8 * (kVEmpty + prev), lane);
    RescaleRows(o, rescale);
    PackP<Shape, T>(pf, s);
  }
  if (keys.n_blocks > 0) {
    const int last = WsSchedule::Stage(keys.n_blocks - 1);
    wgmma::BarrierWait(barriers + 8 * (kVFull + last), WsSchedule::FullParity(keys.n_blocks - 1));
    TakeTurn(cw);
    wgmma::Fence();
    IssuePV<Shape, T>(o, pf, v_address + last * Shape::kKvBytes);
    wgmma::Commit();
    PassTurn(cw, true);
    wgmma::Wait<0>();
    wgmma::FenceOperands(o);
  }
  StoreSequenceRows<T>(p, o, m, l, seq, b, h, row_base, lane);
#endif
}

}  // namespace attnd::kernels::cuda::fused

#endif  // ATTND_KERNELS_CUDA_FUSED_WGMMA_WS_KERNEL_CUH_
