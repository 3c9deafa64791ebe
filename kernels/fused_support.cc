#include "kernels/fused_support.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "kernels/cpu_workspace.h"  // SaturatingMul
#include "kernels/cuda/fused/split_kv_tile.h"
#include "kernels/cuda/workspace_layout.h"  // AlignUp256
#include "kernels/problem.h"

namespace attnd::kernels {

std::string FusedRefusal(const AttentionProblem& p) {
  if (p.head_dim % 8 != 0 || p.v_head_dim % 8 != 0) {
    return absl::StrCat("fused needs head dims that are multiples of 8 (D ", p.head_dim, ", Dv ",
                        p.v_head_dim, ")");
  }
  if (p.dtype == DType::kF32 && std::max(p.head_dim, p.v_head_dim) > kFusedF32MaxHeadDim) {
    return absl::StrCat("fused takes f32 head dims up to ", kFusedF32MaxHeadDim, " (D ",
                        p.head_dim, ", Dv ", p.v_head_dim, ")");
  }
  if (std::max(p.head_dim, p.v_head_dim) > kFusedWideDim) {
    return absl::StrCat("fused takes head dims up to ", kFusedWideDim, " (D ", p.head_dim,
                        ", Dv ", p.v_head_dim, ")");
  }
  // The 16-bit kernel starts each score's accumulator at bias / scale.
  if (p.has_bias && std::abs(p.scale) < 0x1p-20) {
    return absl::StrCat("fused takes a bias only with |scale| >= 2^-20 (scale ", p.scale, ")");
  }
  if (p.ragged && !kFusedTakesRagged) {
    return "fused takes no sequence offsets yet (kFusedTakesRagged, kernels/fused_support.h)";
  }
  constexpr int64_t kMaxLen = (int64_t{1} << 31) - 1;  // key and row positions are 32-bit
  if (p.q_len > kMaxLen || p.kv_len > kMaxLen) {
    return "fused takes sequences of at most 2^31 - 1 rows";
  }
  return "";
}

int FusedPaddedDim(const AttentionProblem& p) {
  const int64_t need = std::max(p.head_dim, p.v_head_dim);
  for (int d : kFusedDims) {
    if (need <= d) return d;
  }
  const bool sixteen_bit = p.dtype == DType::kF16 || p.dtype == DType::kBF16;
  return sixteen_bit && need <= kFusedWideDim ? static_cast<int>(kFusedWideDim) : 0;
}

// Why Mk >= 1024 (kFusedSplitMinKeys): below it one (batch, head) of the one-pass kernel streams
// at most 1024 keys (256 KiB of K and V at D 64, a few µs), about what the split path's second
// launch and its workspace round trip cost; above it the one-pass kernel's B · Hq CTAs of one
// real row in 128 re-read K and V per query head and leave the card idle when B · Hq is small.
FusedSplitPlan FusedSplitKv(const AttentionProblem& p) {
  FusedSplitPlan plan;
  // f32 runs its own one-pass kernel (kernels/cuda/fused/fused_f32.h), which has no split path;
  // nor has a ragged batch (the split kernels index dense batch elements), nor a head dim above
  // kFusedMaxHeadDim (the wide kernel's only).
  if (p.dtype == DType::kF32 || p.ragged || !FusedRefusal(p).empty() ||
      std::max(p.head_dim, p.v_head_dim) > kFusedMaxHeadDim || p.q_len > kFusedSplitMaxQueryRows ||
      p.kv_len < kFusedSplitMinKeys) {
    return plan;
  }
  if (p.batch <= 0 || p.q_len <= 0 || p.q_heads <= 0 || p.kv_heads <= 0 ||
      p.q_heads % p.kv_heads != 0) {
    return plan;
  }
  const int dim = FusedPaddedDim(p);
  const int64_t rows = p.group_size() * p.q_len;  // query rows that read one kv head
  plan.row_tiles = (rows + fused_split::kSplitRows - 1) / fused_split::kSplitRows;
  const int64_t per_split = SaturatingMul(SaturatingMul(p.batch, p.kv_heads), plan.row_tiles);
  const double slots = static_cast<double>(kFusedAssumedSms) * fused_split::SplitKvCtasPerSm(dim);
  const int max_splits =
      static_cast<int>(std::clamp<int64_t>(p.kv_len / kFusedMinKeysPerSplit, 1, kFusedMaxSplits));
  auto efficiency = [&](int splits) {
    const double waves = static_cast<double>(per_split) * splits / slots;
    return waves / std::ceil(waves);
  };
  double best = 0.0;
  for (int s = 1; s <= max_splits; ++s) best = std::max(best, efficiency(s));
  plan.splits = max_splits;
  for (int s = 1; s <= max_splits; ++s) {
    if (efficiency(s) >= 0.95 * best) {
      plan.splits = s;
      break;
    }
  }
  plan.ctas = SaturatingMul(per_split, plan.splits);
  return plan;
}

FusedWorkspaceLayout FusedWorkspaceLayout::For(const AttentionProblem& p) {
  FusedWorkspaceLayout l;
  const int64_t rows = SaturatingMul(SaturatingMul(p.batch, p.q_heads), p.q_len);
  const FusedSplitPlan split = FusedSplitKv(p);
  if (split.splits == 0) {
    l.bytes = SaturatingMul(rows, 4);  // the LSE [B, Hq, Mq] f32, as before the split path
    return l;
  }
  l.split = true;
  const int64_t partials = SaturatingMul(rows, split.splits);
  l.partial_o = 0;
  l.partial_lse = cuda::AlignUp256(SaturatingMul(SaturatingMul(partials, p.v_head_dim), 4));
  l.bytes = SaturatingAdd(l.partial_lse, cuda::AlignUp256(SaturatingMul(partials, 4)));
  return l;
}

}  // namespace attnd::kernels
