// The row operations of the cuBLAS variants, written once for the CUDA kernels and the host
// emulation: each works on one score row with a Group of threads (a warp or a block on the GPU,
// SerialGroup on the host) that strides over the row's columns and reduces with Max/Sum.
//
// Two ways through a row, with the same results:
//   cached    (rows of at most group.size()·kItems columns, e.g. 8192 for a block of 256 threads
//             with 32 items) one read: the scores stay in registers, the group reduces the max,
//             then the sum of exp(s_j - max), then P is written. 6 bytes/score for a 16-bit P.
//   streamed  (any length) pass 1 keeps an online (max, sum) per thread, merged over the group;
//             pass 2 reads the scores again (mostly from L2 on the GPU) and writes P.
// where s_j = S[r, j] + bias(b, h, i, k0 + j); S already carries the softmax scale (the GEMM's
// alpha); P = exp(s_j - max)·scale, 0 where masked. A row that sees nothing (max = -inf) gets
// P = 0, output 0 and LSE -inf.
#ifndef ATTND_KERNELS_CUDA_ROW_OPS_H_
#define ATTND_KERNELS_CUDA_ROW_OPS_H_

#include <math.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/cuda/elem_io.h"
#include "kernels/cuda/steps.h"
#include "kernels/mask.h"
#include "kernels/problem.h"

namespace attnd::kernels::cuda {

#define ATTND_NEG_INF (-INFINITY)

// `#pragma unroll` for the device pass only (host compilers warn about it).
#if defined(__CUDA_ARCH__)
#define ATTND_UNROLL _Pragma("unroll")
#else
#define ATTND_UNROLL
#endif

// One thread does the whole row (host emulation).
struct SerialGroup {
  ATTND_HOST_DEVICE int rank() const { return 0; }
  ATTND_HOST_DEVICE int size() const { return 1; }
  ATTND_HOST_DEVICE float Max(float x) const { return x; }
  ATTND_HOST_DEVICE float Sum(float x) const { return x; }
  ATTND_HOST_DEVICE void Sync() const {}
};

// Where score row r of a step lies in the problem.
struct RowPos {
  int64_t r = 0;  // score row in [0, Z·rows)
  int64_t z = 0;  // b·Hq + h
  int64_t b = 0;
  int64_t h = 0;
  int64_t i = 0;          // query row
  int64_t bias_base = 0;  // bias element of key k0 of this row (BiasIndex::At)
};

ATTND_HOST_DEVICE inline RowPos PosOf(const RowGeometry& g, int64_t r) {
  RowPos pos;
  pos.r = r;
  pos.z = r / g.rows;
  pos.i = g.q0 + r % g.rows;
  pos.b = pos.z / g.q_heads;
  pos.h = pos.z % g.q_heads;
  return pos;
}

// PosOf with the row's bias offset resolved once (the row then walks it with the column stride).
ATTND_HOST_DEVICE inline RowPos ScoreRowPos(const ScoreMask& mask, const RowGeometry& g,
                                            int64_t r) {
  RowPos pos = PosOf(g, r);
  pos.bias_base = mask.bias_index.At(pos.b, pos.h, pos.i, g.k0);
  return pos;
}

// The tile columns [lo, hi) that the row sees. kv_lengths outside [0, Mk] are clamped into it
// (RunCuda cannot read them on the host to refuse them).
ATTND_HOST_DEVICE inline KeyRange VisibleColumns(const ScoreMask& mask, const RowGeometry& g,
                                                 const RowPos& pos) {
  int64_t keys = mask.policy.KeysOf(mask.kv_lengths, pos.b);
  if (keys < 0) keys = 0;
  if (keys > mask.policy.kv_len) keys = mask.policy.kv_len;
  const KeyRange visible = mask.policy.Visible(pos.i, keys);
  int64_t lo = visible.lo - g.k0;
  int64_t hi = visible.hi - g.k0;
  if (lo < 0) lo = 0;
  if (hi > g.cols) hi = g.cols;
  if (hi < lo) hi = lo;
  return KeyRange{lo, hi};
}

// s_j: the scaled score plus the bias, for a visible column j.
ATTND_HOST_DEVICE inline float BiasedScore(const ScoreMask& mask, const RowPos& pos,
                                           const float* s_row, int64_t j) {
  float s = s_row[j];
  if (mask.bias != nullptr) {
    s += LoadElem(mask.bias, mask.bias_dtype, pos.bias_base + j * mask.bias_index.col);
  }
  return s;
}

// max and sum of exp(s - max) over a row's visible columns; max = -inf (sum 0) when none.
struct RowStats {
  float max;
  float sum;
};

// Pass 1, merged over the group: every thread of the group returns the row's stats.
template <class Group>
ATTND_HOST_DEVICE RowStats ScanRow(const Group& group, const ScoreMask& mask, const RowPos& pos,
                                   const float* s_row, KeyRange cols) {
  float max = ATTND_NEG_INF;
  float sum = 0.0f;
  for (int64_t j = cols.lo + group.rank(); j < cols.hi; j += group.size()) {
    const float s = BiasedScore(mask, pos, s_row, j);
    if (s > max) {
      sum = sum * expf(max - s) + 1.0f;  // max = -inf: sum is 0 and exp(-inf) = 0
      max = s;
    } else if (s != ATTND_NEG_INF) {
      sum += expf(s - max);
    }
  }
  RowStats stats;
  stats.max = group.Max(max);
  const float mine = max == ATTND_NEG_INF ? 0.0f : sum * expf(max - stats.max);
  stats.sum = group.Sum(mine);
  return stats;
}

// Pass 2: P[r, j] = exp(s_j - max)·scale for visible j, else 0, written as kP over the f32
// scores of the row. For a 16-bit P, element j overwrites half of float j/2, which another
// thread of the group may still have to read: each round reads its columns, syncs the group, then
// writes (round c writes floats below (c+1)·step/2, all of them read by then, and reads only
// floats that no earlier round wrote).
template <DType kP, class Group>
ATTND_HOST_DEVICE void WriteP(const Group& group, const ScoreMask& mask, const RowGeometry& g,
                              const RowPos& pos, float* s_row, KeyRange cols, float max,
                              float scale) {
  constexpr int kUnroll = 4;
  const int64_t step = static_cast<int64_t>(group.size()) * kUnroll;
  for (int64_t base = 0; base < g.cols; base += step) {
    float p[kUnroll];
    ATTND_UNROLL
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t j = base + u * group.size() + group.rank();
      p[u] = 0.0f;
      if (j >= cols.lo && j < cols.hi && max != ATTND_NEG_INF) {
        p[u] = expf(BiasedScore(mask, pos, s_row, j) - max) * scale;
      }
    }
    if constexpr (kP != DType::kF32) group.Sync();
    ATTND_UNROLL
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t j = base + u * group.size() + group.rank();
      if (j < g.cols) ElemIO<kP>::Store(s_row, j, p[u]);
    }
  }
}

// Naive/sliced: normalised P and the LSE of score row r.
template <DType kP, class Group>
ATTND_HOST_DEVICE void SoftmaxRow(const Group& group, const SoftmaxStep& step, int64_t r) {
  const RowGeometry& g = step.geometry;
  const RowPos pos = ScoreRowPos(step.mask, g, r);
  float* s_row = step.scores + r * g.cols;
  const KeyRange cols = VisibleColumns(step.mask, g, pos);
  const RowStats stats = ScanRow(group, step.mask, pos, s_row, cols);
  const float inv_sum = stats.sum > 0.0f ? 1.0f / stats.sum : 0.0f;
  WriteP<kP>(group, step.mask, g, pos, s_row, cols, stats.max, inv_sum);
  if (step.lse != nullptr && group.rank() == 0) {
    step.lse[pos.z * g.q_len + pos.i] =
        stats.max == ATTND_NEG_INF ? ATTND_NEG_INF : stats.max + logf(stats.sum);
  }
}

// The merge's reference max: a row keeps the max its P and l are relative to while a tile's max
// exceeds it by at most kMergeSlack (natural-log units), so that most tiles after the first
// leave the accumulator alone (its rescale reads and writes the row's Dv floats). P then reaches
// at most e^8 ≈ 2981 (f16 holds 65504; l and the accumulator are f32); the output acc / l and the
// LSE m + log l do not depend on which reference m is. -inf (no state, or nothing visible) as in
// the exact max: an old max of -inf takes the tile's.
constexpr float kMergeSlack = 8.0f;
ATTND_HOST_DEVICE inline float MergeReference(float old_max, float tile_max) {
  return tile_max <= old_max + kMergeSlack ? old_max : tile_max;
}

// Chunked: folds one key tile into score row r's running state (see MergeStep).
template <DType kP, class Group>
ATTND_HOST_DEVICE void MergeRow(const Group& group, const MergeStep& step, int64_t r) {
  const RowGeometry& g = step.geometry;
  const RowPos pos = ScoreRowPos(step.mask, g, r);
  float* s_row = step.scores + r * g.cols;
  const float old_max = step.first ? ATTND_NEG_INF : step.row_max[r];
  const float old_sum = step.first ? 0.0f : step.row_sum[r];
  const KeyRange cols = VisibleColumns(step.mask, g, pos);
  const RowStats tile = ScanRow(group, step.mask, pos, s_row, cols);
  const float new_max = MergeReference(old_max, tile.max);
  // old_scale is exp of a value <= 0, tile_scale of one <= kMergeSlack; a -inf max contributes
  // nothing.
  const float old_scale = old_max == ATTND_NEG_INF ? 0.0f : expf(old_max - new_max);
  const float tile_scale = tile.max == ATTND_NEG_INF ? 0.0f : expf(tile.max - new_max);
  WriteP<kP>(group, step.mask, g, pos, s_row, cols, new_max, 1.0f);
  group.Sync();  // every thread read old_max/old_sum before they are replaced
  if (group.rank() == 0) {
    step.row_max[r] = new_max;
    step.row_sum[r] = old_sum * old_scale + tile.sum * tile_scale;
  }
  if (!step.first && new_max != old_max) {
    float* acc_row = step.acc + r * step.v_head_dim;
    for (int64_t x = group.rank(); x < step.v_head_dim; x += group.size()) {
      acc_row[x] *= old_scale;
    }
  }
}

// The cached path: each thread keeps kItems columns of the row in registers. Two layouts of
// them, by kVec:
//   kVec 1  item u is column u·size + rank: each load and store instruction of the group covers
//           consecutive elements. Used without a bias (measured on the H100: faster there than
//           kVec 4, 51.6 against 45.7 TFLOP/s on SD 2.1 self-attention).
//   kVec 4  item u is column ((u / 4)·size + rank)·4 + u % 4: a thread owns chunks of 4
//           consecutive columns, read as one 16-byte score load (and one 8-byte load of a 16-bit
//           contiguous bias) and written as one P store, when the row is 16-byte aligned and a
//           multiple of 4 long; other rows move the same columns one element at a time. Used with
//           a bias, whose dtype is then a template parameter (no per-element switch): measured
//           63.6 -> 87.7 TFLOP/s with a dense bf16 bias [B, H, M, M].
template <int kVec, class Group>
ATTND_HOST_DEVICE int64_t ColumnOf(const Group& group, int u) {
  return (static_cast<int64_t>(u / kVec) * group.size() + group.rank()) * kVec + u % kVec;
}

// Whether a row's chunks of 4 may move as vectors: the row starts 16-byte aligned and holds
// whole chunks (then P's 16-bit row, starting at the same address, is 8-byte aligned per chunk).
ATTND_HOST_DEVICE inline bool VectorRow(const float* s_row, int64_t row_cols) {
  return row_cols % 4 == 0 && reinterpret_cast<uintptr_t>(s_row) % 16 == 0;
}

// x[e] = bias of column j0 + e, e < 4 (every column < row_cols): one 16- or 8-byte load when
// the row's bias is contiguous and aligned at j0, else element by element.
template <DType kBias>
ATTND_HOST_DEVICE void LoadBiasChunk(const ScoreMask& mask, const RowPos& pos, int64_t j0,
                                     float (&x)[4]) {
  const int64_t col = mask.bias_index.col;
  const int64_t first = pos.bias_base + j0 * col;
#if defined(__CUDA_ARCH__)
  constexpr uintptr_t kAlign = kBias == DType::kF32 ? 16 : 8;
  if (col == 1 && first % 4 == 0 &&
      reinterpret_cast<uintptr_t>(mask.bias) % kAlign == 0) {
    if constexpr (kBias == DType::kF32) {
      const float4 f = *reinterpret_cast<const float4*>(static_cast<const float*>(mask.bias) + first);
      x[0] = f.x, x[1] = f.y, x[2] = f.z, x[3] = f.w;
    } else {
      const uint2 w =
          *reinterpret_cast<const uint2*>(static_cast<const uint16_t*>(mask.bias) + first);
      const uint16_t h[4] = {static_cast<uint16_t>(w.x), static_cast<uint16_t>(w.x >> 16),
                             static_cast<uint16_t>(w.y), static_cast<uint16_t>(w.y >> 16)};
      ATTND_UNROLL
      for (int e = 0; e < 4; ++e) {
        x[e] = kBias == DType::kF16 ? F16BitsToFloat(h[e]) : Bf16BitsToFloat(h[e]);
      }
    }
    return;
  }
#endif
  ATTND_UNROLL
  for (int e = 0; e < 4; ++e) x[e] = ElemIO<kBias>::Load(mask.bias, first + e * col);
}

// Step 1 without a bias (kVec 1): v[u] = s_j of item u's column j (-inf where masked or past
// the row); returns the group's max. Every read of the row happens here, before the reduction.
template <int kItems, class Group>
ATTND_HOST_DEVICE float LoadRowPlain(const Group& group, const float* s_row, KeyRange cols,
                                     float (&v)[kItems]) {
  float max = ATTND_NEG_INF;
  ATTND_UNROLL
  for (int u = 0; u < kItems; ++u) {
    const int64_t j = ColumnOf<1>(group, u);
    v[u] = j >= cols.lo && j < cols.hi ? s_row[j] : ATTND_NEG_INF;
    max = v[u] > max ? v[u] : max;
  }
  return group.Max(max);
}

// Step 1 with a bias of dtype kBias (kVec 4): the same, with s_j = S + bias.
template <int kItems, DType kBias, class Group>
ATTND_HOST_DEVICE float LoadRowBiased(const Group& group, const ScoreMask& mask,
                                      const RowPos& pos, const float* s_row, int64_t row_cols,
                                      KeyRange cols, float (&v)[kItems]) {
  static_assert(kItems % 4 == 0, "the biased path moves whole chunks");
  const bool vector_row = VectorRow(s_row, row_cols);
  float max = ATTND_NEG_INF;
  ATTND_UNROLL
  for (int c = 0; c < kItems / 4; ++c) {
    const int64_t j0 = ColumnOf<4>(group, 4 * c);
    float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    float bias[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (j0 < cols.hi && j0 + 4 > cols.lo) {  // the chunk sees a column
      const bool whole = vector_row && j0 < row_cols;  // then j0 + 4 <= row_cols
#if defined(__CUDA_ARCH__)
      if (whole) {
        const float4 f = *reinterpret_cast<const float4*>(s_row + j0);
        s[0] = f.x, s[1] = f.y, s[2] = f.z, s[3] = f.w;
        LoadBiasChunk<kBias>(mask, pos, j0, bias);
      } else
#endif
      {
        ATTND_UNROLL
        for (int e = 0; e < 4; ++e) {
          const int64_t j = j0 + e;
          if (j >= cols.lo && j < cols.hi) {
            s[e] = s_row[j];
            bias[e] = ElemIO<kBias>::Load(mask.bias, pos.bias_base + j * mask.bias_index.col);
          }
        }
      }
      (void)whole;
    }
    ATTND_UNROLL
    for (int e = 0; e < 4; ++e) {
      const int64_t j = j0 + e;
      float& out = v[4 * c + e];
      out = j >= cols.lo && j < cols.hi ? s[e] + bias[e] : ATTND_NEG_INF;
      max = out > max ? out : max;
    }
  }
  return group.Max(max);
}

// Step 2: v[u] = exp(v[u] - max) (0 for -inf, and everywhere when max is -inf); returns the
// group's sum.
template <int kItems, class Group>
ATTND_HOST_DEVICE float ExpRow(const Group& group, float (&v)[kItems], float max) {
  float sum = 0.0f;
  ATTND_UNROLL
  for (int u = 0; u < kItems; ++u) {
    v[u] = max == ATTND_NEG_INF || v[u] == ATTND_NEG_INF ? 0.0f : expf(v[u] - max);
    sum += v[u];
  }
  return group.Sum(sum);
}

// Step 3: P[r, j] = v[u]·scale for every column of the row, in layout kVec (after the
// reductions: no read of the row is left, so the in-place 16-bit P needs no further sync).
template <int kItems, int kVec, DType kP, class Group>
ATTND_HOST_DEVICE void StoreRow(const Group& group, int64_t row_cols, float* s_row,
                                const float (&v)[kItems], float scale) {
#if defined(__CUDA_ARCH__)
  if (kVec == 4 && VectorRow(s_row, row_cols)) {
    ATTND_UNROLL
    for (int c = 0; c < kItems / 4; ++c) {
      const int64_t j0 = ColumnOf<4>(group, 4 * c);
      if (j0 >= row_cols) continue;
      const float* x = v + 4 * c;
      if constexpr (kP == DType::kF32) {
        *reinterpret_cast<float4*>(s_row + j0) =
            make_float4(x[0] * scale, x[1] * scale, x[2] * scale, x[3] * scale);
      } else {
        uint16_t h[4];
        ATTND_UNROLL
        for (int e = 0; e < 4; ++e) {
          h[e] = kP == DType::kF16 ? FloatToF16Bits(x[e] * scale) : FloatToBf16Bits(x[e] * scale);
        }
        *reinterpret_cast<uint2*>(reinterpret_cast<uint16_t*>(s_row) + j0) =
            make_uint2(h[0] | (static_cast<uint32_t>(h[1]) << 16),
                       h[2] | (static_cast<uint32_t>(h[3]) << 16));
      }
    }
    return;
  }
#endif
  ATTND_UNROLL
  for (int u = 0; u < kItems; ++u) {
    const int64_t j = ColumnOf<kVec>(group, u);
    if (j < row_cols) ElemIO<kP>::Store(s_row, j, v[u] * scale);
  }
}

// The exp and sum of a loaded row (step 2) and its P (step 3), for the row's running maximum
// `max`; returns the sum. Shared by the softmax and the merge.
struct CachedRowResult {
  float max;      // the row's (tile's) own max, before any running max
  float sum;      // sum of exp(s - exp_max)
  float exp_max;  // the max P and sum are relative to
};

// Steps 1-3 in the layout the bias calls for: P = exp(s - exp_max)·scale where exp_max is
// max(running_max, the row's max), or with `merge` MergeReference(running_max, the row's max),
// and scale is 1/sum when `normalise`, else 1.
template <int kItems, DType kP, class Group>
ATTND_HOST_DEVICE CachedRowResult CachedRow(const Group& group, const ScoreMask& mask,
                                            const RowPos& pos, float* s_row, int64_t row_cols,
                                            KeyRange cols, float running_max, bool normalise,
                                            bool merge) {
  float v[kItems];
  CachedRowResult result{ATTND_NEG_INF, 0.0f, ATTND_NEG_INF};
  const auto finish = [&](auto vec_tag) {
    constexpr int kVec = decltype(vec_tag)::value;
    const float exp_max = merge ? MergeReference(running_max, result.max)
                                : (running_max > result.max ? running_max : result.max);
    result.exp_max = exp_max;
    result.sum = ExpRow(group, v, exp_max);
    const float scale = normalise ? (result.sum > 0.0f ? 1.0f / result.sum : 0.0f) : 1.0f;
    StoreRow<kItems, kVec, kP>(group, row_cols, s_row, v, scale);
  };
  if (mask.bias == nullptr) {
    result.max = LoadRowPlain(group, s_row, cols, v);
    finish(std::integral_constant<int, 1>{});
    return result;
  }
  switch (mask.bias_dtype) {
    case DType::kF16:
      result.max = LoadRowBiased<kItems, DType::kF16>(group, mask, pos, s_row, row_cols, cols, v);
      break;
    case DType::kBF16:
      result.max = LoadRowBiased<kItems, DType::kBF16>(group, mask, pos, s_row, row_cols, cols, v);
      break;
    case DType::kF32:
    default:
      result.max = LoadRowBiased<kItems, DType::kF32>(group, mask, pos, s_row, row_cols, cols, v);
      break;
  }
  finish(std::integral_constant<int, 4>{});
  return result;
}

// SoftmaxRow, cached: needs g.cols <= group.size()·kItems.
template <int kItems, DType kP, class Group>
ATTND_HOST_DEVICE void SoftmaxRowCached(const Group& group, const SoftmaxStep& step, int64_t r) {
  const RowGeometry& g = step.geometry;
  const RowPos pos = ScoreRowPos(step.mask, g, r);
  float* s_row = step.scores + r * g.cols;
  const KeyRange cols = VisibleColumns(step.mask, g, pos);
  const CachedRowResult row =
      CachedRow<kItems, kP>(group, step.mask, pos, s_row, g.cols, cols, ATTND_NEG_INF, true, false);
  if (step.lse != nullptr && group.rank() == 0) {
    step.lse[pos.z * g.q_len + pos.i] =
        row.max == ATTND_NEG_INF ? ATTND_NEG_INF : row.max + logf(row.sum);
  }
}

// MergeRow, cached: needs g.cols <= group.size()·kItems.
template <int kItems, DType kP, class Group>
ATTND_HOST_DEVICE void MergeRowCached(const Group& group, const MergeStep& step, int64_t r) {
  const RowGeometry& g = step.geometry;
  const RowPos pos = ScoreRowPos(step.mask, g, r);
  float* s_row = step.scores + r * g.cols;
  const float old_max = step.first ? ATTND_NEG_INF : step.row_max[r];
  const float old_sum = step.first ? 0.0f : step.row_sum[r];
  const KeyRange cols = VisibleColumns(step.mask, g, pos);
  // P relative to the row's new reference max (MergeReference); the tile's sum comes back
  // relative to it too.
  const CachedRowResult tile =
      CachedRow<kItems, kP>(group, step.mask, pos, s_row, g.cols, cols, old_max, false, true);
  const float new_max = tile.exp_max;
  const float old_scale = old_max == ATTND_NEG_INF ? 0.0f : expf(old_max - new_max);
  if (group.rank() == 0) {  // every thread read old_max/old_sum before the reductions
    step.row_max[r] = new_max;
    step.row_sum[r] = old_sum * old_scale + tile.sum;
  }
  if (!step.first && new_max != old_max) {
    float* acc_row = step.acc + r * step.v_head_dim;
    for (int64_t x = group.rank(); x < step.v_head_dim; x += group.size()) {
      acc_row[x] *= old_scale;
    }
  }
}

// The row functions by path: kItems 0 streams, else caches kItems columns per thread.
template <int kItems, DType kP, class Group>
ATTND_HOST_DEVICE void SoftmaxRowWith(const Group& group, const SoftmaxStep& step, int64_t r) {
  if constexpr (kItems == 0) {
    SoftmaxRow<kP>(group, step, r);
  } else {
    SoftmaxRowCached<kItems, kP>(group, step, r);
  }
}

template <int kItems, DType kP, class Group>
ATTND_HOST_DEVICE void MergeRowWith(const Group& group, const MergeStep& step, int64_t r) {
  if constexpr (kItems == 0) {
    MergeRow<kP>(group, step, r);
  } else {
    MergeRowCached<kItems, kP>(group, step, r);
  }
}

// Writes output row r (acc / l) and its LSE; zeros and -inf without state.
template <DType kOut, class Group>
ATTND_HOST_DEVICE void FinalizeRow(const Group& group, const FinalizeStep& step, int64_t r) {
  const RowGeometry& g = step.geometry;
  const RowPos pos = PosOf(g, r);
  const int64_t out_base = step.out_strides.Row(pos.b, pos.i, pos.h);
  float max = ATTND_NEG_INF;
  float sum = 0.0f;
  if (step.has_state) {
    max = step.row_max[r];
    sum = step.row_sum[r];
  }
  const float inv_sum = sum > 0.0f ? 1.0f / sum : 0.0f;
  const float* acc_row = step.acc != nullptr ? step.acc + r * step.v_head_dim : nullptr;
  for (int64_t x = group.rank(); x < step.v_head_dim; x += group.size()) {
    const float value = inv_sum > 0.0f ? acc_row[x] * inv_sum : 0.0f;
    ElemIO<kOut>::Store(step.out, out_base + x, value);
  }
  if (step.lse != nullptr && group.rank() == 0) {
    step.lse[pos.z * g.q_len + pos.i] =
        max == ATTND_NEG_INF || sum <= 0.0f ? ATTND_NEG_INF : max + logf(sum);
  }
}

}  // namespace attnd::kernels::cuda

#endif  // ATTND_KERNELS_CUDA_ROW_OPS_H_
