// The fused variant's host-side decisions (kernels/fused_support.h): which problems take the
// split-KV path, into how many splits (worked out by hand from the wave rule), and the workspace
// the planner reserves for it. No GPU needed.
#include "kernels/fused_support.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "kernels/cuda/fused/split_kv_tile.h"
#include "kernels/planner.h"
#include "kernels/problem.h"

namespace attnd::kernels {
namespace {

AttentionProblem Decode(int64_t batch, int64_t q_heads, int64_t kv_heads, int64_t q_len,
                        int64_t kv_len, int64_t dim = 128, DType dtype = DType::kBF16) {
  AttentionProblem p;
  p.dtype = dtype;
  p.batch = batch;
  p.q_len = q_len;
  p.kv_len = kv_len;
  p.q_heads = q_heads;
  p.kv_heads = kv_heads;
  p.head_dim = dim;
  p.v_head_dim = dim;
  p.scale = 0.125;
  return p;
}

TEST(FusedSupportTest, PaddedDims) {
  AttentionProblem p = Decode(1, 1, 1, 1, 1, 8);
  EXPECT_EQ(FusedPaddedDim(p), 32);
  p.head_dim = 64;
  p.v_head_dim = 72;
  EXPECT_EQ(FusedPaddedDim(p), 80);
  p.v_head_dim = 256;
  EXPECT_EQ(FusedPaddedDim(p), 256);
  // Above 256: the wide kernel's 512, 16-bit only.
  p.v_head_dim = 264;
  EXPECT_EQ(FusedPaddedDim(p), 512);
  p.head_dim = 512;
  EXPECT_EQ(FusedPaddedDim(p), 512);
  EXPECT_EQ(FusedRefusal(p), "");
  p.head_dim = 520;
  EXPECT_EQ(FusedPaddedDim(p), 0);
  EXPECT_NE(FusedRefusal(p), "");
  p.head_dim = 264;
  p.dtype = DType::kF32;
  EXPECT_EQ(FusedPaddedDim(p), 0);
  EXPECT_NE(FusedRefusal(p), "");
}

// The tile's shared memory: (16 + 2 · 3 · block_n) rows of (dim + 8) 16-bit elements.
TEST(FusedSupportTest, ABiasNeedsAScaleOfAtLeastTwoToTheMinus20) {
  // The 16-bit kernel starts each score's accumulator at bias / scale.
  AttentionProblem p = Decode(1, 2, 2, 64, 64);
  p.has_bias = true;
  p.bias_dtype = DType::kBF16;
  p.bias_shape[3] = 64;
  EXPECT_EQ(FusedRefusal(p), "");
  p.scale = -0x1p-20;
  EXPECT_EQ(FusedRefusal(p), "");
  p.scale = 0x1p-21;
  EXPECT_NE(FusedRefusal(p).find("|scale| >= 2^-20"), std::string::npos) << FusedRefusal(p);
  p.has_bias = false;  // without a bias any scale is taken
  EXPECT_EQ(FusedRefusal(p), "");
}

TEST(FusedSupportTest, SplitTile) {
  using fused_split::SplitKvCtasPerSm;
  using fused_split::SplitKvTileFor;
  EXPECT_EQ(SplitKvTileFor(128).block_n(), 64);
  EXPECT_EQ(SplitKvTileFor(128).threads(), 128);
  EXPECT_EQ(SplitKvTileFor(128).SmemBytes(), (16 + 384) * 136 * 2);  // 108800
  EXPECT_EQ(SplitKvTileFor(256).block_n(), 32);
  EXPECT_EQ(SplitKvTileFor(256).SmemBytes(), (16 + 192) * 264 * 2);  // 109824
  EXPECT_EQ(SplitKvCtasPerSm(128), 2);                               // 233472 / 109824
  EXPECT_EQ(SplitKvCtasPerSm(256), 2);                               // 233472 / 110848
  EXPECT_EQ(SplitKvCtasPerSm(64), 3);  // (16 + 384) · 72 · 2 = 57600: 233472 / 58624
  EXPECT_EQ(SplitKvCtasPerSm(32), 7);  // 32000: 233472 / 33024
}

TEST(FusedSupportTest, WhoTakesTheSplitPath) {
  EXPECT_GT(FusedSplitKv(Decode(64, 32, 8, 1, 8192)).splits, 0);
  EXPECT_GT(FusedSplitKv(Decode(2, 8, 2, 16, 1024)).splits, 0);  // the edges
  EXPECT_EQ(FusedSplitKv(Decode(2, 8, 2, 17, 8192)).splits, 0);  // Mq > 16
  EXPECT_EQ(FusedSplitKv(Decode(2, 8, 2, 1, 1023)).splits, 0);   // Mk < 1024
  EXPECT_EQ(FusedSplitKv(Decode(2, 8, 2, 1, 77)).splits, 0);
  EXPECT_EQ(FusedSplitKv(Decode(2, 8, 2, 1, 8192, 128, DType::kF32)).splits, 0);  // no fused
  EXPECT_EQ(FusedSplitKv(Decode(2, 8, 2, 1, 8192, 264)).splits, 0);
  EXPECT_EQ(FusedSplitKv(Decode(0, 8, 2, 1, 8192)).splits, 0);  // nothing to run
}

// Worked examples of the wave rule (fused_support.h), 132 SMs.
TEST(FusedSupportTest, SplitCounts) {
  // The decode shape: 4 rows, 1 tile, 512 CTAs per split on 264 slots (1.94 waves,
  // 0.97): one split.
  FusedSplitPlan plan = FusedSplitKv(Decode(64, 32, 8, 1, 8192));
  EXPECT_EQ(plan.row_tiles, 1);
  EXPECT_EQ(plan.splits, 1);
  EXPECT_EQ(plan.ctas, 512);
  // B 8, Mk 32768: 64 CTAs per split; 4 splits fill 256 of 264 slots.
  plan = FusedSplitKv(Decode(8, 32, 8, 1, 32768));
  EXPECT_EQ(plan.splits, 4);
  EXPECT_EQ(plan.ctas, 256);
  // The GPU test's shapes: B 2, Hq 8, Hkv 2, Mq 16: 64 rows, 4 tiles, 16 CTAs per split; the
  // wave rule wants many splits, capped by Mk / 256: 4 at Mk 1024, 16 (0.97) at 8193 (max 32).
  plan = FusedSplitKv(Decode(2, 8, 2, 16, 1024));
  EXPECT_EQ(plan.row_tiles, 4);
  EXPECT_EQ(plan.splits, 4);
  EXPECT_EQ(FusedSplitKv(Decode(2, 8, 2, 16, 8193)).splits, 16);
  // Mq 3 with MQA (Hkv 1, Hq 8): 24 rows, 2 tiles; Mk 1031 allows 4 splits.
  plan = FusedSplitKv(Decode(2, 8, 1, 3, 1031));
  EXPECT_EQ(plan.row_tiles, 2);
  EXPECT_EQ(plan.splits, 4);
  // One CTA per split: efficiency s / 264 grows to the cap, 64 splits (0.242); the smallest
  // within 95% of it is 61.
  plan = FusedSplitKv(Decode(1, 1, 1, 1, 1 << 20));
  EXPECT_EQ(plan.splits, 61);
  // Enough CTAs already (B 256: 2048 CTAs, 7.76 waves, 0.97): one split.
  EXPECT_EQ(FusedSplitKv(Decode(256, 32, 8, 1, 4096)).splits, 1);
  // A pure function: the same problem, the same plan.
  EXPECT_EQ(FusedSplitKv(Decode(8, 32, 8, 1, 32768)).splits, 4);
}

// Every split count in range for many shapes: at least one, at most kFusedMaxSplits and Mk / 256.
TEST(FusedSupportTest, SplitCountBounds) {
  for (int64_t batch : {1, 3, 64}) {
    for (int64_t kv_heads : {1, 2, 8}) {
      for (int64_t q_len : {1, 5, 16}) {
        for (int64_t kv_len : {1024, 3000, 100000}) {
          for (int64_t dim : {64, 128, 256}) {
            const AttentionProblem p = Decode(batch, 8 * kv_heads, kv_heads, q_len, kv_len, dim);
            const FusedSplitPlan plan = FusedSplitKv(p);
            SCOPED_TRACE(p.DebugString());
            EXPECT_GE(plan.splits, 1);
            EXPECT_LE(plan.splits, kFusedMaxSplits);
            EXPECT_LE(plan.splits, std::max<int64_t>(1, kv_len / kFusedMinKeysPerSplit));
            EXPECT_EQ(plan.row_tiles, (8 * q_len + 15) / 16);
            EXPECT_EQ(plan.ctas, batch * kv_heads * plan.row_tiles * plan.splits);
          }
        }
      }
    }
  }
}

// Partials: O [rows, splits, Dv] f32 and LSE [rows, splits] f32, each 256-byte aligned.
TEST(FusedSupportTest, WorkspaceBytes) {
  // Split path, B 64 Hq 32 Mq 1, 1 split, Dv 128: O 2048 · 128 · 4 = 1048576, LSE 2048 · 4 =
  // 8192.
  AttentionProblem p = Decode(64, 32, 8, 1, 8192);
  FusedWorkspaceLayout layout = FusedWorkspaceLayout::For(p);
  EXPECT_TRUE(layout.split);
  EXPECT_EQ(layout.partial_o, 0);
  EXPECT_EQ(layout.partial_lse, 1048576);
  EXPECT_EQ(layout.bytes, 1048576 + 8192);
  EXPECT_EQ(WorkspaceBytes(p, Variant::kFused, 0, 0, 1), layout.bytes);
  // B 2 Hq 8 Mq 3 Hkv 1, Mk 1031: 4 splits, 48 rows, Dv 80: O 48 · 4 · 80 · 4 = 61440 (240 ·
  // 256), LSE 48 · 4 · 4 = 768.
  p = Decode(2, 8, 1, 3, 1031, 80);
  layout = FusedWorkspaceLayout::For(p);
  EXPECT_EQ(layout.partial_lse, 61440);
  EXPECT_EQ(layout.bytes, 61440 + 768);
  // An odd count rounds up: Dv 8, B 1, Hq 1, Mq 1, Mk 1024 (4 splits): O 4 · 8 · 4 = 128 -> 256,
  // LSE 16 -> 256.
  p = Decode(1, 1, 1, 1, 1024, 8);
  layout = FusedWorkspaceLayout::For(p);
  EXPECT_EQ(FusedSplitKv(p).splits, 4);
  EXPECT_EQ(layout.partial_lse, 256);
  EXPECT_EQ(layout.bytes, 512);
  EXPECT_EQ(layout.bytes % 256, 0);
  // Without the split path: the LSE [B, Hq, Mq] f32, as before (and as cudnn).
  p = Decode(2, 8, 2, 17, 8192);
  layout = FusedWorkspaceLayout::For(p);
  EXPECT_FALSE(layout.split);
  EXPECT_EQ(layout.bytes, 2 * 8 * 17 * 4);
  EXPECT_EQ(WorkspaceBytes(p, Variant::kFused, 0, 0, 1), 2 * 8 * 17 * 4);
  EXPECT_EQ(WorkspaceBytes(Decode(2, 8, 2, 1, 77), Variant::kFused, 0, 0, 1), 2 * 8 * 1 * 4);
}

// The planner reserves the split path's workspace for a forced fused plan.
TEST(FusedSupportTest, PlannerReservesThePartials) {
  Capabilities caps;
  caps.is_cuda = true;
  caps.variants = {Variant::kFused, Variant::kChunked};
  PlannerConfig config;
  config.forced_variant = Variant::kFused;
  const AttentionProblem p = Decode(8, 32, 8, 1, 32768);
  const absl::StatusOr<Plan> plan = MakePlan(p, caps, int64_t{1} << 30, config);
  ASSERT_TRUE(plan.ok()) << plan.status();
  // 256 rows · 4 splits: O 1024 · 128 · 4 = 524288, LSE 1024 · 4 = 4096.
  EXPECT_EQ(plan->workspace_bytes, 524288 + 4096);
  // A budget below it: RESOURCE_EXHAUSTED (fused has no chunks to shrink).
  EXPECT_EQ(MakePlan(p, caps, 4096, config).status().code(), absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace attnd::kernels
