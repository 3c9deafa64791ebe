// The fused kernels on ragged batches (kernels/problem.h: sequences packed end to end, found
// through q_offsets and kv_offsets) on the GPU against the float64 reference of the same ragged
// problem (itself checked sequence by sequence against dense runs in tests/kernels/ragged_test.cc).
// Fresh random normals (never zeros), outputs pre-filled with NaN so that a row written for the
// wrong sequence, or not at all, fails. Lengths mix empty sequences, one row, odd lengths, more
// queries than keys and the reverse, so that the kernels' row placement (cta_rows.h) is tried in
// every causal alignment and with a window; f16, bf16 and f32; padded head dims 64, 96 (for 80),
// 128 and 256; GQA; the LSE; a bias in each dtype, padded and broadcast. Also: the planner's
// choice for a ragged problem on a GPU is fused, and RunCuda refuses the other variants.
//
// Without a CUDA device every test here skips, saying so.
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "kernels/cpu_attention.h"
#include "kernels/cuda/cuda_attention.h"
#include "kernels/fused_support.h"
#include "kernels/planner.h"
#include "kernels/problem.h"
#include "tests/gpu/device_support.h"
#include "tests/gpu/gpu_cases.h"
#include "tests/kernels/test_util.h"

namespace attnd::kernels {
namespace {

using testing::DeviceBuffer;
using testing::GpuCase;
using testing::OwnedTensors;

struct Lengths {
  std::vector<int64_t> q, kv;
};

// Empty sequences (no queries; no keys), one row, odd lengths, Mq_b < Mk_b and Mq_b > Mk_b.
const Lengths kMixed = {{1, 0, 37, 64, 129, 200}, {50, 3, 0, 100, 61, 300}};
// Few long sequences: several CTAs per sequence, the shorter one's CTAs partly empty.
const Lengths kLong = {{300, 5, 130}, {1000, 700, 17}};

GpuCase RaggedCase(DType dtype, int64_t d, const Lengths& lengths, int64_t q_heads = 4,
                   int64_t kv_heads = 2) {
  GpuCase c = testing::BaseCase(dtype, 1, 1, 1, q_heads, kv_heads, d, d);
  testing::SetRagged(&c, lengths.q, lengths.kv);
  return c;
}

std::vector<GpuCase> RaggedCases() {
  std::vector<GpuCase> cases;
  for (DType dtype : {DType::kF16, DType::kBF16, DType::kF32}) {
    for (int64_t d : {64, 80, 128, 256}) {
      for (const Lengths* lengths : {&kMixed, &kLong}) {
        cases.push_back(RaggedCase(dtype, d, *lengths));
        for (Causal causal : {Causal::kTopLeft, Causal::kBottomRight}) {
          GpuCase c = RaggedCase(dtype, d, *lengths);
          c.problem.causal = causal;
          cases.push_back(c);
        }
      }
    }
    // A window (bottom-right aligned without causal), with and without causal; MQA.
    for (Causal causal : {Causal::kNone, Causal::kTopLeft}) {
      GpuCase c = RaggedCase(dtype, 64, kMixed, 6, 1);
      c.problem.causal = causal;
      c.problem.window_left = 23;
      c.problem.window_right = 9;
      cases.push_back(c);
    }
    // A bias in each dtype: padded to the bounds, and broadcast over batch, heads and queries.
    for (DType bias_dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
      GpuCase full = RaggedCase(dtype, 128, kMixed);
      full.problem.causal = Causal::kBottomRight;
      testing::SetBias(&full, bias_dtype, full.problem.batch, full.problem.q_heads,
                       full.problem.q_len, full.problem.kv_len);
      cases.push_back(full);
      GpuCase keys = RaggedCase(dtype, 64, kLong);
      testing::SetBias(&keys, bias_dtype, 1, 1, 1, keys.problem.kv_len);
      cases.push_back(keys);
    }
    GpuCase no_lse = RaggedCase(dtype, 64, kMixed);
    no_lse.problem.return_lse = false;
    cases.push_back(no_lse);
    // The wide kernel (16-bit head dims above 256): both length sets, causal bottom-right with a
    // padded bias.
    if (dtype != DType::kF32) {
      cases.push_back(RaggedCase(dtype, 512, kLong));
      GpuCase wide = RaggedCase(dtype, 392, kMixed);
      wide.problem.causal = Causal::kBottomRight;
      testing::SetBias(&wide, DType::kBF16, wide.problem.batch, wide.problem.q_heads,
                       wide.problem.q_len, wide.problem.kv_len);
      cases.push_back(wide);
    }
  }
  return cases;
}

class FusedRaggedTest : public ::testing::TestWithParam<GpuCase> {};

TEST_P(FusedRaggedTest, MatchesReference) {
  SKIP_WITHOUT_DEVICE();
  const GpuCase& c = GetParam();
  const AttentionProblem& p = c.problem;
  ASSERT_TRUE(ValidateProblem(p, ProblemLimits()).ok()) << p.DebugString();
  ASSERT_TRUE(ValidateSequenceOffsets(p, c.q_offsets.data(), c.kv_offsets.data()).ok());
  ASSERT_EQ(FusedRefusal(p), "");
  const OwnedTensors inputs = testing::MakeCaseTensors(c);
  OwnedTensors host = inputs;
  ReferenceResult reference;
  ASSERT_TRUE(ReferenceAttention(p, host.View(), &reference).ok());

  // Left to itself on a GPU the planner runs a ragged problem on fused (nothing else takes it).
  const absl::StatusOr<Plan> automatic = testing::PlanFor(p, {Variant::kAuto, 0, 0, "auto"});
  ASSERT_TRUE(automatic.ok()) << automatic.status();
  EXPECT_EQ(automatic->variant, Variant::kFused);
  const absl::StatusOr<Plan> plan = testing::PlanFor(p, {Variant::kFused, 0, 0, "fused"});
  ASSERT_TRUE(plan.ok()) << plan.status();

  DeviceBuffer q, k, v, bias, q_offsets, kv_offsets, out, lse, workspace;
  ASSERT_CUDA_OK(q.Upload(inputs.q.data(), inputs.q.size()));
  ASSERT_CUDA_OK(k.Upload(inputs.k.data(), inputs.k.size()));
  ASSERT_CUDA_OK(v.Upload(inputs.v.data(), inputs.v.size()));
  ASSERT_CUDA_OK(bias.Upload(inputs.bias.data(), inputs.bias.size()));
  ASSERT_CUDA_OK(q_offsets.Upload(c.q_offsets.data(), c.q_offsets.size() * sizeof(int64_t)));
  ASSERT_CUDA_OK(kv_offsets.Upload(c.kv_offsets.data(), c.kv_offsets.size() * sizeof(int64_t)));
  ASSERT_CUDA_OK(out.Upload(inputs.out.data(), inputs.out.size()));  // NaN
  ASSERT_CUDA_OK(lse.Upload(inputs.lse.data(), inputs.lse.size() * sizeof(float)));
  ASSERT_CUDA_OK(workspace.Allocate(static_cast<size_t>(plan->workspace_bytes)));

  AttentionTensors t;
  t.q = q.get();
  t.k = k.get();
  t.v = v.get();
  t.bias = p.has_bias ? bias.get() : nullptr;
  t.q_offsets = static_cast<const int64_t*>(q_offsets.get());
  t.kv_offsets = static_cast<const int64_t*>(kv_offsets.get());
  t.out = out.get();
  t.lse = p.return_lse ? static_cast<float*>(lse.get()) : nullptr;
  const cuda::CudaContext& context = *testing::SharedContext();
  const absl::Status s = cuda::RunCuda(*plan, p, t, workspace.get(), plan->workspace_bytes, context);
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_CUDA_OK(cudaStreamSynchronize(static_cast<cudaStream_t>(context.stream)));

  OwnedTensors got = inputs;
  ASSERT_CUDA_OK(out.Download(got.out.data()));
  ASSERT_CUDA_OK(lse.Download(got.lse.data()));
  EXPECT_EQ(testing::CompareWithReference(p, got, reference), "") << p.DebugString();
}

INSTANTIATE_TEST_SUITE_P(Ragged, FusedRaggedTest, ::testing::ValuesIn(RaggedCases()),
                         [](const ::testing::TestParamInfo<GpuCase>& info) {
                           return testing::CaseName(info.param);
                         });

// The cuBLAS variants index dense [B, M, H, X] tensors: RunCuda refuses a ragged problem for
// them rather than read it wrongly, and refuses fused without the offsets.
TEST(FusedRaggedApiTest, DenseVariantsAndMissingOffsetsAreRefused) {
  SKIP_WITHOUT_DEVICE();
  const GpuCase c = RaggedCase(DType::kF16, 64, kMixed);
  DeviceBuffer buffer;
  ASSERT_CUDA_OK(buffer.Allocate(8 << 20));
  AttentionTensors t;
  t.q = t.k = t.v = buffer.get();
  t.out = static_cast<char*>(buffer.get()) + (4 << 20);
  t.lse = reinterpret_cast<float*>(static_cast<char*>(buffer.get()) + (6 << 20));
  const cuda::CudaContext& context = *testing::SharedContext();
  Plan plan;
  plan.variant = Variant::kFused;
  absl::Status s = cuda::RunCuda(plan, c.problem, t, nullptr, 0, context);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("q_offsets"), std::string::npos) << s;

  t.q_offsets = t.kv_offsets = static_cast<const int64_t*>(buffer.get());
  for (Variant v : {Variant::kNaive, Variant::kSliced, Variant::kChunked}) {
    plan.variant = v;
    plan.q_chunk = plan.kv_chunk = 64;
    s = cuda::RunCuda(plan, c.problem, t, nullptr, 0, context);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << VariantName(v);
    EXPECT_NE(s.message().find("takes no sequence offsets"), std::string::npos) << s;
  }
}

}  // namespace
}  // namespace attnd::kernels
