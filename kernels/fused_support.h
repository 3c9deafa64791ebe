// What the `fused` variant (kernels/cuda/fused) takes, in plain C++ so the planner can ask
// without CUDA: f16 or bf16 with head dims D and Dv that are multiples of 8 up to
// kFusedWideDim (above kFusedMaxHeadDim on sm_90 only), f32 (3xTF32, f32 accuracy) with such
// head dims up to kFusedF32MaxHeadDim,
// sequences of at most 2^31 - 1 rows (positions are 32-bit in the kernel). Everything else of
// the API (layouts, masks, kv_lengths, GQA, bias in any dtype, LSE, ragged batches) it takes.
//
// Also the decisions of its split-KV path (kernels/cuda/fused/split_kv.cuh) that the planner
// needs: whether a problem takes it, into how many key splits, and the workspace it needs.
#ifndef ATTND_KERNELS_FUSED_SUPPORT_H_
#define ATTND_KERNELS_FUSED_SUPPORT_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/problem.h"

// The padded head dims the fused kernels are instantiated for, smallest first; a problem runs on
// the first that holds max(D, Dv). The one list: kernels/cuda/fused instantiates from it.
#define ATTND_FUSED_DIMS 32, 64, 80, 96, 128, 160, 192, 256

// Those of them the warp-specialised Hopper kernel (kernels/cuda/fused/wgmma_ws_kernel.cuh) is
// instantiated for: 64 up, since its 128-byte-swizzled tiles hold rows of 64 columns.
#define ATTND_FUSED_WS_DIMS 64, 80, 96, 128, 160, 192, 256

namespace attnd::kernels {

inline constexpr int kFusedDims[] = {ATTND_FUSED_DIMS};
inline constexpr int kFusedWsDims[] = {ATTND_FUSED_WS_DIMS};

// Whether `dim` is one of `dims`.
template <std::size_t kN>
constexpr bool OneOf(const int (&dims)[kN], int dim) {
  for (const int d : dims) {
    if (d == dim) return true;
  }
  return false;
}
static_assert(
    [] {
      for (const int d : kFusedWsDims) {
        if (!OneOf(kFusedDims, d)) return false;
      }
      return true;
    }(),
    "ATTND_FUSED_WS_DIMS is a part of ATTND_FUSED_DIMS");

// The largest padded head dim the fused kernel is instantiated for.
constexpr int64_t kFusedMaxHeadDim = 256;
static_assert(kFusedDims[sizeof(kFusedDims) / sizeof(kFusedDims[0]) - 1] == kFusedMaxHeadDim,
              "kFusedMaxHeadDim is the last of ATTND_FUSED_DIMS");
// The same for the f32 kernel (kernels/cuda/fused/fused_f32.cu).
constexpr int64_t kFusedF32MaxHeadDim = 256;
// Beyond kFusedMaxHeadDim, 16-bit head dims up to kFusedWideDim run on the wide kernel
// (kernels/cuda/fused/wgmma_wide_kernel.cuh: the head dim split between two warpgroups), on
// sm_90 only (FusedDeviceRefusal, kernels/cuda/fused/fused_attention.h); padded to it.
constexpr int64_t kFusedWideDim = 512;

// Whether the fused kernel takes ragged problems (sequence offsets, kernels/problem.h): the
// one-pass kernels (mma.sync, and the warp-specialised one on sm_90) index packed sequences
// (kernels/cuda/fused/cta_rows.h); split-KV and the synchronous wgmma path leave them to those.
// Off, FusedRefusal refuses them, so neither the planner nor RunFused would run one.
inline constexpr bool kFusedTakesRagged = true;

// Whether the warp-specialised kernel copies `problem`'s bias as TMA tiles (the fast path with a
// bias) rather than by rows, as far as its shape tells: a 16-bit bias, dense over query rows and
// keys (broadcast over batch and heads or not), Mk a multiple of 8 (16-byte aligned rows), a
// dense batch. The kernel also needs the tensor's start 16-byte aligned
// (kernels/cuda/fused/ws_bias_tiles.h), which the device pool's buffers are.
inline bool FusedBiasTakesTiles(const AttentionProblem& p) {
  const bool sixteen_bit = p.bias_dtype == DType::kF16 || p.bias_dtype == DType::kBF16;
  const bool dense_rows =
      p.bias_shape[3] == p.kv_len && p.bias_shape[2] == p.q_len && p.kv_len > 1 && p.q_len > 1;
  return p.has_bias && !p.ragged && sixteen_bit && dense_rows && p.kv_len % 8 == 0;
}

// "" when the fused kernel takes `problem`, else why not, e.g. "fused takes f32 head dims up to
// 256 (D 264, Dv 264)". Device-independent: a 16-bit head dim above kFusedMaxHeadDim also needs
// an sm_90 device, which FusedDeviceRefusal asks.
std::string FusedRefusal(const AttentionProblem& problem);

// The padded head dim (kernel instantiation) of `problem`: the first of kFusedDims >= max(D, Dv),
// else kFusedWideDim for a 16-bit problem within it, else 0.
int FusedPaddedDim(const AttentionProblem& problem);

// The split-KV path: problems with at most kFusedSplitMaxQueryRows query rows and at least
// kFusedSplitMinKeys keys (decode-like) run it instead of the one-pass kernel.
inline constexpr int64_t kFusedSplitMaxQueryRows = 16;
inline constexpr int64_t kFusedSplitMinKeys = 1024;
// Bounds of the split count: at most kFusedMaxSplits (the combine kernel holds one weight per
// split in shared memory), and at least kFusedMinKeysPerSplit keys per split.
inline constexpr int kFusedMaxSplits = 64;
inline constexpr int64_t kFusedMinKeysPerSplit = 256;
// The card the split count is sized for (no device query, so the planner stays pure): the
// H100's and H200's 132 SMs.
inline constexpr int kFusedAssumedSms = 132;

struct FusedSplitPlan {
  int splits = 0;         // key splits per (batch, kv head, row tile); 0: the path does not apply
  int64_t row_tiles = 0;  // 16-row tiles of the group · Mq query rows that read one kv head
  int64_t ctas = 0;       // B · Hkv · row_tiles · splits
};

// The split plan of `problem`: splits == 0 unless FusedRefusal is empty, Mq <= 16 and Mk >= 1024.
// Then the split count is the smallest in [1, min(64, Mk / 256)] whose CTAs fill the card's CTA
// slots (132 SMs × SplitKvCtasPerSm) to within 95% of the best wave efficiency any allowed count
// reaches; wave efficiency = waves / ceil(waves), waves = CTAs / slots. It may be 1: the split
// kernel then still wins over the one-pass kernel by reading K and V once per kv head (not once
// per query head) and by not padding a few query rows to a 128-row tile.
// Worked examples (bf16, D 128: two CTAs per SM, 264 slots):
//   B 64, Hq 32, Hkv 8, Mq 1, Mk 8192: 4 rows, 1 tile, 512 CTAs per split = 1.94 waves (0.97):
//     1 split (the best, 17 splits of 482 keys, would reach 0.999; 0.97 >= 0.95 · 0.999).
//   B 8, Hq 32, Hkv 8, Mq 1, Mk 32768: 64 CTAs per split; 1, 2, 3 splits: 0.24, 0.48, 0.73
//     waves; 4 splits: 256 CTAs, 0.97 of one wave: 4 splits of 8192 keys.
FusedSplitPlan FusedSplitKv(const AttentionProblem& problem);

// The fused variant's workspace, in 256-byte aligned pieces. Rows count B·Hq·Mq: for a ragged
// problem the padded bound B·Hq·q_len, never less than its Hq·total_q rows. The split path: the
// partial results of every split; otherwise (as before the split path) room for the LSE [B, Hq, Mq]
// f32, which the one-pass kernel does not use.
struct FusedWorkspaceLayout {
  int64_t partial_o = 0;    // f32 [B·Hq·Mq, splits, Dv]: each split's normalised output
  int64_t partial_lse = 0;  // f32 [B·Hq·Mq, splits]: each split's LSE, base 2 (-inf: no key)
  int64_t bytes = 0;        // the whole workspace
  bool split = false;       // the split path's layout

  static FusedWorkspaceLayout For(const AttentionProblem& problem);
};

}  // namespace attnd::kernels

#endif  // ATTND_KERNELS_FUSED_SUPPORT_H_
