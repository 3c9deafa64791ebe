// The planner: variant choice and exact chunk sizes under generous, tight and too-small budgets,
// forced variants, overrides, and the GPU speed order with a fake CUDA device. Byte counts are
// worked out in the comments from the DESIGN.md table and kernels/cpu_workspace.h.
#include "kernels/planner.h"

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/cpu_attention.h"
#include "kernels/fused_support.h"
#include "kernels/problem.h"

namespace attnd::kernels {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kGiB = int64_t{1} << 30;

AttentionProblem Square(int64_t len, DType dtype = DType::kF32, int64_t heads = 1) {
  AttentionProblem p;
  p.dtype = dtype;
  p.batch = 1;
  p.q_len = len;
  p.kv_len = len;
  p.q_heads = heads;
  p.kv_heads = heads;
  p.head_dim = 64;
  p.v_head_dim = 64;
  p.scale = 0.125;
  return p;
}

Capabilities Cpu(int threads = 2) {
  Capabilities caps;
  caps.variants = {Variant::kCpuChunked, Variant::kReference};
  caps.threads = threads;
  return caps;
}

Capabilities FakeCuda(std::initializer_list<Variant> variants) {
  Capabilities caps;
  caps.is_cuda = true;
  caps.variants = variants;
  return caps;
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Per thread at q 256, kv 1024, D = Dv = 64, f32 (64-byte aligned buffers):
//   scores 256·1024·4 = 1048576, acc 256·64·4 = 65536, m and l 1024 each, ranges 256·16 = 4096
//   = 1120256; two threads 2240512.
TEST(PlannerTest, GenerousBudgetOnTheCpu) {
  const AttentionProblem p = Square(4096);
  const absl::StatusOr<Plan> plan = MakePlan(p, Cpu(), kGiB, PlannerConfig());
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->variant, Variant::kCpuChunked);
  EXPECT_EQ(plan->q_chunk, 256);
  EXPECT_EQ(plan->kv_chunk, 1024);
  EXPECT_EQ(plan->threads, 2);
  EXPECT_EQ(plan->workspace_bytes, 2240512);
  EXPECT_EQ(plan->workspace_bytes, WorkspaceBytes(p, Variant::kCpuChunked, 256, 1024, 2));
  EXPECT_EQ(plan->reason,
            "cpu_chunked: fastest runnable, budget 1 GiB; q_chunk 256 kv_chunk 1024 use 2.1 MiB "
            "on 2 threads");
}

// The memory promise's problem: full scores need 32768²·4 = 4 GiB, far over 256 MiB.
TEST(PlannerTest, LongSequenceRunsInChunks) {
  const absl::StatusOr<Plan> plan = MakePlan(Square(32768), Cpu(), 256 * kMiB, PlannerConfig());
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->variant, Variant::kCpuChunked);
  EXPECT_EQ(plan->q_chunk, 256);
  EXPECT_EQ(plan->kv_chunk, 1024);
  EXPECT_LE(plan->workspace_bytes, 256 * kMiB);
  EXPECT_TRUE(Contains(plan->reason, "full scores need 4 GiB > budget 256 MiB")) << plan->reason;
}

// 1 MiB for two threads: 256×1024 needs 2240512; the larger chunk (kv) halves to 512: per thread
// 524288 + 65536 + 1024 + 1024 + 4096 = 595968, ×2 = 1191936 > 1048576; kv is still the larger,
// so 256: 262144 + 71680 = 333824, ×2 = 667648 fits.
TEST(PlannerTest, TightBudgetHalvesTheLargerChunk) {
  const AttentionProblem p = Square(4096);
  const absl::StatusOr<Plan> plan = MakePlan(p, Cpu(), kMiB, PlannerConfig());
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->q_chunk, 256);
  EXPECT_EQ(plan->kv_chunk, 256);
  EXPECT_EQ(plan->workspace_bytes, 667648);
  // Half that: after 256×256 (667648) a tie halves the query chunk: 128×256 needs
  // 131072 + 32768 + 512 + 512 + 2048 = 166912, ×2 = 333824 <= 524288.
  const absl::StatusOr<Plan> half = MakePlan(p, Cpu(), kMiB / 2, PlannerConfig());
  ASSERT_TRUE(half.ok()) << half.status();
  EXPECT_EQ(half->q_chunk, 128);
  EXPECT_EQ(half->kv_chunk, 256);
  EXPECT_EQ(half->workspace_bytes, 333824);
}

// At the minimum chunks 16×16 two threads need 2·(1024 + 4096 + 64 + 64 + 256) = 11008 bytes.
TEST(PlannerTest, TooSmallBudgetIsResourceExhausted) {
  const absl::StatusOr<Plan> plan = MakePlan(Square(4096), Cpu(), 10000, PlannerConfig());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kResourceExhausted);
  const std::string message(plan.status().message());
  EXPECT_TRUE(Contains(message, "needs at least 11008 workspace bytes")) << message;
  EXPECT_TRUE(Contains(message, "q_chunk 16 kv_chunk 16")) << message;
  EXPECT_TRUE(Contains(message, "budget is 10000 bytes")) << message;
  EXPECT_TRUE(MakePlan(Square(4096), Cpu(), 11008, PlannerConfig()).ok());
}

TEST(PlannerTest, OverridesAreClampedAndStillBudgeted) {
  const AttentionProblem p = Square(4096);
  PlannerConfig config;
  config.q_chunk_override = 100;
  config.kv_chunk_override = 5000;  // longer than Mk: clamped to 4096
  absl::StatusOr<Plan> plan = MakePlan(p, Cpu(), kGiB, config);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->q_chunk, 100);
  EXPECT_EQ(plan->kv_chunk, 4096);

  // A fixed q_chunk of 1024 under 4 MiB: only kv shrinks. kv 1024: 4 MiB of scores alone;
  // kv 512: 2·(2097152 + 262144 + 4096 + 4096 + 16384) > 4 MiB; kv 256:
  // 2·(1048576 + 262144 + 4096 + 4096 + 16384) = 2670592 fits.
  config = PlannerConfig();
  config.q_chunk_override = 1024;
  plan = MakePlan(p, Cpu(), 4 * kMiB, config);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->q_chunk, 1024);
  EXPECT_EQ(plan->kv_chunk, 256);
  EXPECT_EQ(plan->workspace_bytes, 2670592);

  // Both fixed and too big: RESOURCE_EXHAUSTED, not a silent shrink.
  config.kv_chunk_override = 4096;
  plan = MakePlan(p, Cpu(), 4 * kMiB, config);
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(PlannerTest, ConfigMaximaAndBalancedChunks) {
  PlannerConfig config;
  config.max_q_chunk = 64;
  config.max_kv_chunk = 128;
  absl::StatusOr<Plan> plan = MakePlan(Square(4096), Cpu(), kGiB, config);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->q_chunk, 64);
  EXPECT_EQ(plan->kv_chunk, 128);
  // 1025 splits evenly: q into 5 chunks of 205 (cap 256), kv into 2 of 513 (cap 1024).
  plan = MakePlan(Square(1025), Cpu(), kGiB, PlannerConfig());
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->q_chunk, 205);
  EXPECT_EQ(plan->kv_chunk, 513);
  // Short sequences run whole.
  plan = MakePlan(Square(97), Cpu(), kGiB, PlannerConfig());
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->q_chunk, 97);
  EXPECT_EQ(plan->kv_chunk, 97);
}

TEST(PlannerTest, ThreadsNeverExceedWorkItems) {
  // One (b, h) and one query chunk: one work item, one thread, one thread's workspace.
  const AttentionProblem p = Square(100);
  const absl::StatusOr<Plan> plan = MakePlan(p, Cpu(8), kGiB, PlannerConfig());
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->threads, 1);
  EXPECT_EQ(plan->workspace_bytes, WorkspaceBytes(p, Variant::kCpuChunked, 100, 100, 1));
  EXPECT_EQ(WorkspaceBytes(p, Variant::kCpuChunked, 100, 100, 8),
            WorkspaceBytes(p, Variant::kCpuChunked, 100, 100, 1));
}

TEST(PlannerTest, ForcedVariants) {
  const AttentionProblem p = Square(64);
  PlannerConfig config;
  config.forced_variant = Variant::kReference;
  absl::StatusOr<Plan> plan = MakePlan(p, Cpu(), kGiB, config);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->variant, Variant::kReference);
  EXPECT_TRUE(Contains(plan->reason, "reference: forced by request")) << plan->reason;

  config.forced_variant = Variant::kFused;
  plan = MakePlan(p, Cpu(), kGiB, config);
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(std::string(plan.status().message()),
                       "variant fused cannot run on this device (runnable: cpu_chunked, "
                       "reference)"))
      << plan.status();

  config.forced_variant = Variant::kReference;
  EXPECT_EQ(MakePlan(p, Cpu(), 1000, config).status().code(), absl::StatusCode::kResourceExhausted);
  // Auto never picks the reference.
  EXPECT_EQ(MakePlan(p, FakeCuda({Variant::kReference}), kGiB, PlannerConfig()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PlannerTest, GpuSpeedOrder) {
  const Capabilities all = FakeCuda(
      {Variant::kNaive, Variant::kSliced, Variant::kChunked, Variant::kCudnn, Variant::kFused});
  const AttentionProblem f16 = Square(8192, DType::kF16, 8);
  absl::StatusOr<Plan> plan = MakePlan(f16, all, kGiB, PlannerConfig());
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->variant, Variant::kCudnn);
  EXPECT_EQ(plan->workspace_bytes, 8 * 8192 * 4);  // the LSE
  EXPECT_EQ(plan->threads, 1);

  // Where cuDNN says no (the executor drops it from the capabilities), fused.
  plan = MakePlan(f16, FakeCuda({Variant::kNaive, Variant::kChunked, Variant::kFused}), kGiB,
                  PlannerConfig());
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->variant, Variant::kFused);
  EXPECT_EQ(plan->workspace_bytes, 8 * 8192 * 4);

  // f32: cuDNN's SDPA does not take it; full scores 8·8192²·4 = 2 GiB.
  const AttentionProblem f32 = Square(8192, DType::kF32, 8);
  const Capabilities no_fused =
      FakeCuda({Variant::kNaive, Variant::kSliced, Variant::kChunked, Variant::kCudnn});
  plan = MakePlan(f32, no_fused, 4 * kGiB, PlannerConfig());
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->variant, Variant::kNaive);
  EXPECT_EQ(plan->workspace_bytes, 2 * kGiB + 256);  // + the GEMM pointers, 3·8·8 bytes
  EXPECT_EQ(plan->q_chunk, 8192);
  EXPECT_EQ(plan->kv_chunk, 8192);

  // 1 GiB: naive does not fit; sliced starts from the whole 8192 rows (no mask), halves to
  // 4096 (1 GiB + the 256-byte pointers: just over) and fits at 2048: 8·2048·8192·4 = 512 MiB.
  plan = MakePlan(f32, no_fused, kGiB, PlannerConfig());
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->variant, Variant::kSliced);
  EXPECT_EQ(plan->q_chunk, 2048);
  EXPECT_EQ(plan->kv_chunk, 8192);
  EXPECT_TRUE(Contains(plan->reason, "full scores need 2 GiB > budget 1 GiB")) << plan->reason;

  // 100 MiB: sliced halves q to 256 (64 MiB).
  plan = MakePlan(f32, no_fused, 100 * kMiB, PlannerConfig());
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->variant, Variant::kSliced);
  EXPECT_EQ(plan->q_chunk, 256);

  // 1 MiB: sliced needs 4 MiB even at q 16; chunked (32·q·kv + 2112·q bytes + 256 for the GEMM
  // pointers) shrinks from 8192×4096: q 4096, q 2048 (tie), kv 2048, q 1024 (tie), kv 1024,
  // q 512, kv 512, q 256, kv 256, q 128 (1 MiB + 264 KiB), kv 128: 524288 + 270336 + 256 =
  // 794880 fits.
  plan = MakePlan(f32, no_fused, kMiB, PlannerConfig());
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->variant, Variant::kChunked);
  EXPECT_EQ(plan->q_chunk, 128);
  EXPECT_EQ(plan->kv_chunk, 128);
  EXPECT_EQ(plan->workspace_bytes, 794880);

  // Head dim 59: neither cuDNN nor fused (multiples of 8 only). f32: fused (3xTF32) measured
  // 58.4 TFLOP/s against chunked's 25.6 (kernels/measured_rates.cc), so fused comes first.
  // Head dim 264: fused's wide kernel, measured at D 512 (488.9 against chunked's 339.5).
  AttentionProblem odd = f16;
  odd.head_dim = 59;
  odd.v_head_dim = 59;
  plan = MakePlan(odd, all, 4 * kGiB, PlannerConfig());
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->variant, Variant::kNaive);
  plan = MakePlan(f32, FakeCuda({Variant::kFused, Variant::kChunked}), 4 * kGiB, PlannerConfig());
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->variant, Variant::kFused);
  AttentionProblem wide = f16;
  wide.head_dim = 264;
  wide.v_head_dim = 264;
  plan = MakePlan(wide, FakeCuda({Variant::kFused, Variant::kChunked}), 4 * kGiB, PlannerConfig());
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->variant, Variant::kFused);
  EXPECT_TRUE(Contains(plan->reason, "measured 488.9 TFLOP/s on the H100 at 1x8x8192x512 bf16"))
      << plan->reason;
  // Where the device cannot run it (the executor drops fused from the capabilities), chunked.
  plan = MakePlan(wide, FakeCuda({Variant::kChunked}), 4 * kGiB, PlannerConfig());
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->variant, Variant::kChunked);
  PlannerConfig fused_forced;
  fused_forced.forced_variant = Variant::kFused;
  plan = MakePlan(f32, all, kGiB, fused_forced);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->variant, Variant::kFused);
  EXPECT_EQ(plan->workspace_bytes, 8 * 8192 * 4);  // the LSE
  AttentionProblem f32_wide = f32;
  f32_wide.head_dim = 264;
  plan = MakePlan(f32_wide, all, kGiB, fused_forced);
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(std::string(plan.status().message()), "fused takes f32 head dims up to 256"))
      << plan.status();
  PlannerConfig forced;
  forced.forced_variant = Variant::kCudnn;
  plan = MakePlan(f32, all, kGiB, forced);
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(std::string(plan.status().message()), "cudnn needs f16 or bf16"));

  // By measurement (kernels/measured_rates.h): beyond head dim 256 fused (the wide kernel, 488.9
  // TFLOP/s at D 512), then chunked (339.5), not cudnn (89.3); with a dense bias whose rows are
  // 16-byte aligned, fused (483.7, its TMA bias tiles) before cudnn (323.4) at any budget; with a
  // bias fused copies by rows (Mk not a multiple of 8, or broadcast over queries), cudnn before
  // fused (250.5); without either, naive (100.0) while its full score matrix fits (2 GiB here),
  // else chunked (92.6).
  AttentionProblem d512 = f16;
  d512.dtype = DType::kBF16;
  d512.head_dim = 512;
  d512.v_head_dim = 512;
  plan = MakePlan(d512, all, 16 * kGiB, PlannerConfig());
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->variant, Variant::kFused);
  EXPECT_TRUE(Contains(plan->reason, "measured 488.9 TFLOP/s on the H100 at 1x8x8192x512 bf16"))
      << plan->reason;
  plan = MakePlan(d512,
                  FakeCuda({Variant::kNaive, Variant::kSliced, Variant::kChunked, Variant::kCudnn}),
                  16 * kGiB, PlannerConfig());
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->variant, Variant::kChunked);
  EXPECT_TRUE(Contains(plan->reason, "measured 339.5 TFLOP/s on the H100 at 1x8x8192x512 bf16"))
      << plan->reason;
  AttentionProblem biased = Square(4096, DType::kBF16, 32);
  biased.head_dim = biased.v_head_dim = 128;
  biased.has_bias = true;
  biased.bias_dtype = DType::kBF16;
  biased.bias_shape[2] = biased.bias_shape[3] = 4096;
  const Capabilities fused_and_cudnn =
      FakeCuda({Variant::kNaive, Variant::kChunked, Variant::kCudnn, Variant::kFused});
  for (int64_t budget : {16 * kGiB, kGiB}) {
    plan = MakePlan(biased, fused_and_cudnn, budget, PlannerConfig());
    ASSERT_TRUE(plan.ok());
    EXPECT_EQ(plan->variant, Variant::kFused);
    EXPECT_TRUE(Contains(plan->reason, "measured 483.7 TFLOP/s")) << plan->reason;
  }
  AttentionProblem rows_bias = biased;  // broadcast over queries: copied by rows
  rows_bias.bias_shape[2] = 1;
  AttentionProblem odd_keys = Square(4100, DType::kBF16, 32);  // rows 8 bytes apart
  odd_keys.head_dim = odd_keys.v_head_dim = 128;
  odd_keys.has_bias = true;
  odd_keys.bias_dtype = DType::kF16;
  odd_keys.bias_shape[2] = odd_keys.bias_shape[3] = 4100;
  for (const AttentionProblem& rows : {rows_bias, odd_keys}) {
    plan = MakePlan(rows, fused_and_cudnn, 16 * kGiB, PlannerConfig());
    ASSERT_TRUE(plan.ok());
    EXPECT_EQ(plan->variant, Variant::kCudnn);
    plan = MakePlan(rows, FakeCuda({Variant::kNaive, Variant::kChunked, Variant::kFused}), kGiB,
                    PlannerConfig());
    ASSERT_TRUE(plan.ok());
    EXPECT_EQ(plan->variant, Variant::kFused);
    EXPECT_TRUE(Contains(plan->reason, "measured 250.5 TFLOP/s")) << plan->reason;
  }
  plan =
      MakePlan(biased, FakeCuda({Variant::kNaive, Variant::kChunked}), 16 * kGiB, PlannerConfig());
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->variant, Variant::kNaive);
  EXPECT_TRUE(Contains(plan->reason, "measured 100 TFLOP/s")) << plan->reason;
  plan = MakePlan(biased, FakeCuda({Variant::kNaive, Variant::kChunked}), kGiB, PlannerConfig());
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->variant, Variant::kChunked);

  // Nothing fits a zero budget, not even the LSE.
  EXPECT_EQ(MakePlan(f16, all, 0, PlannerConfig()).status().code(),
            absl::StatusCode::kResourceExhausted);
}

// The GPU variants' query slices: as tall as the budget allows without a mask (each slice
// costs its own launches); 1024 rows under a causal mask or a window, where a slice of r rows
// also computes the hidden half of its r x r diagonal block; max_q_chunk bounds both.
TEST(PlannerTest, GpuSliceHeight) {
  const Capabilities cuda = FakeCuda({Variant::kSliced, Variant::kChunked});
  PlannerConfig chunked;
  chunked.forced_variant = Variant::kChunked;
  PlannerConfig sliced;
  sliced.forced_variant = Variant::kSliced;

  // bf16 B=1 H=32 Mq=Mk=4096: chunked's whole 4096-row slice is 32·4096·4096·4 = 2 GiB of scores.
  AttentionProblem p = Square(4096, DType::kBF16, 32);
  absl::StatusOr<Plan> plan = MakePlan(p, cuda, 4 * kGiB, chunked);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->q_chunk, 4096);
  EXPECT_EQ(plan->kv_chunk, 4096);
  plan = MakePlan(p, cuda, 4 * kGiB, sliced);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->q_chunk, 4096);
  // The budget still decides: under 1 GiB the slice halves to 2048 rows (1 GiB + state: over),
  // then the now larger key tile to 2048 (512 MiB + 32·2048·(4 + 4 + 64·4) bytes of m, l, acc).
  plan = MakePlan(p, cuda, kGiB, chunked);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->q_chunk, 2048);
  EXPECT_EQ(plan->kv_chunk, 2048);

  for (Causal causal : {Causal::kTopLeft, Causal::kBottomRight}) {
    AttentionProblem masked = p;
    masked.causal = causal;
    plan = MakePlan(masked, cuda, 4 * kGiB, chunked);
    ASSERT_TRUE(plan.ok()) << plan.status();
    EXPECT_EQ(plan->q_chunk, 1024) << CausalName(causal);
    EXPECT_EQ(plan->kv_chunk, 4096);
    plan = MakePlan(masked, cuda, 4 * kGiB, sliced);
    ASSERT_TRUE(plan.ok()) << plan.status();
    EXPECT_EQ(plan->q_chunk, 1024) << CausalName(causal);
  }
  AttentionProblem windowed = p;
  windowed.window_left = 256;
  plan = MakePlan(windowed, cuda, 4 * kGiB, chunked);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->q_chunk, 1024);

  // Two lanes, as the CUDA executor offers (kCudaLanes): the unmasked rows split into one slice
  // per lane, each lane with its own buffers, so the two 2048-row slices take what one 4096-row
  // slice took. Masked, the 1024-row slices alternate between the lanes.
  Capabilities two_lanes = cuda;
  two_lanes.threads = 2;
  plan = MakePlan(p, two_lanes, 4 * kGiB, chunked);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->q_chunk, 2048);
  EXPECT_EQ(plan->kv_chunk, 4096);
  EXPECT_EQ(plan->threads, 2);
  EXPECT_EQ(plan->workspace_bytes, 2 * WorkspaceBytes(p, Variant::kChunked, 2048, 4096, 1));
  EXPECT_TRUE(Contains(plan->reason, "on 2 streams")) << plan->reason;
  AttentionProblem causal = p;
  causal.causal = Causal::kTopLeft;
  plan = MakePlan(causal, two_lanes, 4 * kGiB, sliced);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->q_chunk, 1024);
  EXPECT_EQ(plan->threads, 2);
  // One query row: one slice, one lane.
  AttentionProblem one_row = p;
  one_row.q_len = 1;
  plan = MakePlan(one_row, two_lanes, 4 * kGiB, chunked);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->threads, 1);
  // A budget that holds one lane at the minimum chunks but not two: one lane, not a refusal.
  const int64_t one_lane_min = WorkspaceBytes(p, Variant::kChunked, 16, 16, 1);
  plan = MakePlan(p, two_lanes, one_lane_min, chunked);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->threads, 1);
  EXPECT_EQ(plan->q_chunk, 16);
  EXPECT_EQ(plan->kv_chunk, 16);
  EXPECT_EQ(plan->workspace_bytes, one_lane_min);
  EXPECT_EQ(MakePlan(p, two_lanes, one_lane_min - 1, chunked).status().code(),
            absl::StatusCode::kResourceExhausted);

  // Longer than max_q_chunk (8192): the slice stops there; a smaller config bound wins; an
  // override is taken as it is, mask or not.
  AttentionProblem long_p = Square(20000, DType::kF16, 2);
  plan = MakePlan(long_p, cuda, 16 * kGiB, chunked);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->q_chunk, 8192);
  PlannerConfig small = chunked;
  small.max_q_chunk = 512;
  plan = MakePlan(long_p, cuda, 16 * kGiB, small);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->q_chunk, 512);
  PlannerConfig overridden = chunked;
  overridden.q_chunk_override = 3000;
  long_p.causal = Causal::kTopLeft;
  plan = MakePlan(long_p, cuda, 16 * kGiB, overridden);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->q_chunk, 3000);
}

TEST(PlannerTest, SameInputsSamePlan) {
  const AttentionProblem p = Square(3000);
  const absl::StatusOr<Plan> a = MakePlan(p, Cpu(), 3 * kMiB, PlannerConfig());
  const absl::StatusOr<Plan> b = MakePlan(p, Cpu(), 3 * kMiB, PlannerConfig());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->q_chunk, b->q_chunk);
  EXPECT_EQ(a->kv_chunk, b->kv_chunk);
  EXPECT_EQ(a->workspace_bytes, b->workspace_bytes);
  EXPECT_EQ(a->reason, b->reason);
}

TEST(PlannerTest, InvalidProblem) {
  AttentionProblem p = Square(16);
  p.kv_heads = 3;
  EXPECT_EQ(MakePlan(p, Cpu(), kGiB, PlannerConfig()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// RunCpuChunked holds a plan to its workspace promise: one byte short is refused.
TEST(PlannerTest, RunRefusesAPlanWithTooLittleWorkspace) {
  const AttentionProblem p = Square(32);
  absl::StatusOr<Plan> plan = MakePlan(p, Cpu(), kGiB, PlannerConfig());
  ASSERT_TRUE(plan.ok());
  Plan short_plan = *plan;
  short_plan.workspace_bytes -= 1;
  std::vector<float> q(32 * 64, 0.5f), k(32 * 64, 0.25f), v(32 * 64, 1.0f), out(32 * 64);
  AttentionTensors t;
  t.q = q.data();
  t.k = k.data();
  t.v = v.data();
  t.out = out.data();
  const absl::Status status = RunCpuChunked(short_plan, p, t);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_TRUE(RunCpuChunked(*plan, p, t).ok());
  EXPECT_FLOAT_EQ(out[0], 1.0f);  // equal values average to themselves
}

// A ragged f16 problem at D 64, which cudnn's and fused's other rules accept: 5 sequences of at
// most 300 query rows (1000 in all) and 400 keys (1200 in all).
AttentionProblem RaggedF16() {
  AttentionProblem p = Square(1, DType::kF16, 4);
  p.batch = 5;
  p.q_len = 300;
  p.kv_len = 400;
  p.ragged = true;
  p.total_q = 1000;
  p.total_kv = 1200;
  return p;
}

// Only reference, cpu_chunked and fused take sequence offsets; forcing another variant is
// refused naming it, and choosing never picks one.
TEST(PlannerTest, RaggedRefusedByDenseOnlyVariants) {
  const AttentionProblem p = RaggedF16();
  for (Variant v : {Variant::kNaive, Variant::kSliced, Variant::kChunked, Variant::kCudnn}) {
    PlannerConfig config;
    config.forced_variant = v;
    const absl::StatusOr<Plan> plan = MakePlan(p, FakeCuda({v}), kGiB, config);
    EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument) << VariantName(v);
    const std::string want = absl::StrCat(std::string(VariantName(v)),
                                          " takes no sequence offsets (ragged batches run on "
                                          "reference, cpu_chunked and fused)");
    EXPECT_TRUE(Contains(std::string(plan.status().message()), want)) << plan.status();
  }
  const Capabilities dense_only =
      FakeCuda({Variant::kCudnn, Variant::kNaive, Variant::kSliced, Variant::kChunked});
  const absl::StatusOr<Plan> plan = MakePlan(p, dense_only, kGiB, PlannerConfig());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(std::string(plan.status().message()), "no variant runnable here"))
      << plan.status();
}

// fused is the GPU's ragged path: picked when FusedRefusal takes ragged problems
// (kFusedTakesRagged), refused with the reason until then.
TEST(PlannerTest, RaggedOnTheGpuIsFusedOnly) {
  const AttentionProblem p = RaggedF16();
  const Capabilities all = FakeCuda(
      {Variant::kCudnn, Variant::kFused, Variant::kNaive, Variant::kSliced, Variant::kChunked});
  const absl::StatusOr<Plan> plan = MakePlan(p, all, kGiB, PlannerConfig());
  PlannerConfig forced;
  forced.forced_variant = Variant::kFused;
  const absl::StatusOr<Plan> forced_plan = MakePlan(p, all, kGiB, forced);
  if (kFusedTakesRagged) {
    ASSERT_TRUE(plan.ok()) << plan.status();
    EXPECT_EQ(plan->variant, Variant::kFused);
    EXPECT_TRUE(forced_plan.ok()) << forced_plan.status();
  } else {
    EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(forced_plan.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(std::string(forced_plan.status().message()),
                         "fused takes no sequence offsets yet"))
        << forced_plan.status();
  }
}

// On the CPU a ragged problem plans like a dense one of its bounds: chunks up to q_len and
// kv_len, (b, h, chunk) work items counted with the bound (chunks past a short sequence are
// empty items), so the workspace is that of the dense problem [B, q_len, kv_len].
TEST(PlannerTest, RaggedOnTheCpu) {
  AttentionProblem p = RaggedF16();
  const absl::StatusOr<Plan> plan = MakePlan(p, Cpu(), kGiB, PlannerConfig());
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->variant, Variant::kCpuChunked);
  EXPECT_EQ(plan->q_chunk, 150);  // 300 rows in two balanced chunks of at most 256
  EXPECT_EQ(plan->kv_chunk, 400);
  AttentionProblem bounds = p;
  bounds.ragged = false;
  EXPECT_EQ(plan->workspace_bytes, WorkspaceBytes(bounds, Variant::kCpuChunked, 150, 400, 2));
  PlannerConfig forced;
  forced.forced_variant = Variant::kReference;
  EXPECT_TRUE(MakePlan(p, Cpu(), kGiB, forced).ok());
}

}  // namespace
}  // namespace attnd::kernels
