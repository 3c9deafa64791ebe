// The fused variant on decode-like problems (tests/gpu/decode_cases.h) against the float64
// reference: the split-KV path where FusedSplitKv takes the case, the one-pass kernel where it
// does not. The run goes through the planner and RunCuda as the server's does; out and LSE start
// as NaN and the workspace as 0xFF bytes (NaN floats), so that an unwritten output or a partial
// the combine reads unwritten fails. Also RunFused's refusal of a too-small workspace, and a CPU
// check of the matrix itself. Without a CUDA device the GPU tests skip, saying so.
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/cpu_attention.h"
#include "kernels/cuda/cuda_attention.h"
#include "kernels/cuda/fused/fused_attention.h"
#include "kernels/fused_support.h"
#include "kernels/planner.h"
#include "kernels/problem.h"
#include "tests/gpu/decode_cases.h"
#include "tests/gpu/device_support.h"
#include "tests/gpu/gpu_cases.h"
#include "tests/kernels/test_util.h"

namespace attnd::kernels {
namespace {

using testing::DeviceBuffer;
using testing::GpuCase;
using testing::OwnedTensors;

// The matrix, made once (gtest instantiation and the CPU check share it).
const std::vector<GpuCase>& Cases() {
  static const std::vector<GpuCase>* cases = new std::vector<GpuCase>(testing::DecodeMatrix());
  return *cases;
}

class FusedDecodeTest : public ::testing::TestWithParam<GpuCase> {};

TEST_P(FusedDecodeTest, MatchesReference) {
  SKIP_WITHOUT_DEVICE();
  const GpuCase& c = GetParam();
  const AttentionProblem& p = c.problem;
  ASSERT_TRUE(ValidateProblem(p, ProblemLimits()).ok()) << p.DebugString();
  ASSERT_EQ(FusedRefusal(p), "");
  const FusedSplitPlan split = FusedSplitKv(p);
  SCOPED_TRACE(split.splits > 0 ? absl::StrCat("split-KV, ", split.splits, " splits, ",
                                               split.row_tiles, " row tiles")
                                : std::string("one-pass kernel"));

  const OwnedTensors inputs = testing::MakeCaseTensors(c);
  OwnedTensors host = inputs;
  const ReferenceResult reference = testing::ParallelReference(p, host.View());

  const absl::StatusOr<Plan> plan = testing::PlanFor(p, {Variant::kFused, 0, 0, "fused"});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->workspace_bytes, FusedWorkspaceLayout::For(p).bytes);

  DeviceBuffer q, k, v, bias, kv_lengths, out, lse, workspace;
  ASSERT_CUDA_OK(q.Upload(inputs.q.data(), inputs.q.size()));
  ASSERT_CUDA_OK(k.Upload(inputs.k.data(), inputs.k.size()));
  ASSERT_CUDA_OK(v.Upload(inputs.v.data(), inputs.v.size()));
  ASSERT_CUDA_OK(bias.Upload(inputs.bias.data(), inputs.bias.size()));
  ASSERT_CUDA_OK(
      kv_lengths.Upload(inputs.kv_lengths.data(), inputs.kv_lengths.size() * sizeof(int64_t)));
  ASSERT_CUDA_OK(out.Upload(inputs.out.data(), inputs.out.size()));  // NaN
  ASSERT_CUDA_OK(lse.Upload(inputs.lse.data(), inputs.lse.size() * sizeof(float)));
  ASSERT_CUDA_OK(workspace.Allocate(static_cast<size_t>(plan->workspace_bytes)));
  ASSERT_CUDA_OK(workspace.Fill(0xFF));

  AttentionTensors t;
  t.q = q.get();
  t.k = k.get();
  t.v = v.get();
  t.bias = p.has_bias ? bias.get() : nullptr;
  t.kv_lengths = p.has_kv_lengths ? static_cast<const int64_t*>(kv_lengths.get()) : nullptr;
  t.out = out.get();
  t.lse = p.return_lse ? static_cast<float*>(lse.get()) : nullptr;
  const cuda::CudaContext& context = *testing::SharedContext();
  const absl::Status s =
      cuda::RunCuda(*plan, p, t, workspace.get(), plan->workspace_bytes, context);
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_CUDA_OK(cudaStreamSynchronize(static_cast<cudaStream_t>(context.stream)));

  OwnedTensors got = inputs;
  ASSERT_CUDA_OK(out.Download(got.out.data()));
  ASSERT_CUDA_OK(lse.Download(got.lse.data()));
  EXPECT_EQ(testing::CompareWithReference(p, got, reference), "")
      << p.DebugString() << "\nplan: " << plan->reason;
  EXPECT_EQ(testing::CheckNegInfRow(c, got), "");
}

INSTANTIATE_TEST_SUITE_P(Decode, FusedDecodeTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<GpuCase>& info) {
                           return testing::CaseName(info.param);
                         });

// RunFused on the split path refuses a workspace smaller than its partials, naming both sizes,
// and a null or misaligned one; the right one runs.
TEST(FusedDecodeApiTest, RefusesASmallWorkspace) {
  SKIP_WITHOUT_DEVICE();
  const AttentionProblem p = testing::BaseProblem(DType::kBF16, 1, 1, 2048, 8, 2, 64, 64);
  ASSERT_GT(FusedSplitKv(p).splits, 0);
  const int64_t need = FusedWorkspaceLayout::For(p).bytes;
  ASSERT_GT(need, 0);
  DeviceBuffer tensors;
  DeviceBuffer workspace;
  ASSERT_CUDA_OK(tensors.Allocate(4 << 20));
  ASSERT_CUDA_OK(tensors.Fill(0));
  ASSERT_CUDA_OK(workspace.Allocate(static_cast<size_t>(need) + 256));
  auto* base = static_cast<char*>(tensors.get());
  AttentionTensors t;
  t.q = base;
  t.k = base + (1 << 20);
  t.v = base + (2 << 20);
  t.out = base + (3 << 20);
  t.lse = reinterpret_cast<float*>(base + (3 << 20) + (1 << 19));
  const cuda::CudaContext& context = *testing::SharedContext();

  absl::Status s = cuda::RunFused(p, t, workspace.get(), need - 1, context.stream);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(std::string(s.message()).find(absl::StrCat(need)), std::string::npos) << s;
  EXPECT_NE(std::string(s.message()).find(absl::StrCat(need - 1)), std::string::npos) << s;
  s = cuda::RunFused(p, t, nullptr, need, context.stream);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  s = cuda::RunFused(p, t, static_cast<char*>(workspace.get()) + 16, need, context.stream);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  // Through RunCuda: a plan that promises less than the split path needs.
  Plan plan;
  plan.variant = Variant::kFused;
  s = cuda::RunCuda(plan, p, t, workspace.get(), 0, context);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;

  s = cuda::RunFused(p, t, workspace.get(), need, context.stream);
  EXPECT_TRUE(s.ok()) << s;
  ASSERT_CUDA_OK(cudaStreamSynchronize(static_cast<cudaStream_t>(context.stream)));
}

// CPU: the matrix's names are unique (gtest needs it), every case is valid and fused takes it,
// and it has cases of both routes, split counts above one and above 32, and several row tiles.
TEST(FusedDecodeMatrixTest, CoversBothRoutes) {
  int split_cases = 0;
  int one_pass_cases = 0;
  int max_splits = 0;
  int64_t max_tiles = 0;
  std::vector<std::string> names;
  for (const GpuCase& c : Cases()) {
    const std::string name = testing::CaseName(c);
    for (const std::string& other : names) ASSERT_NE(name, other);
    names.push_back(name);
    EXPECT_TRUE(ValidateProblem(c.problem, ProblemLimits()).ok()) << name;
    EXPECT_EQ(FusedRefusal(c.problem), "") << name;
    const FusedSplitPlan split = FusedSplitKv(c.problem);
    (split.splits > 0 ? split_cases : one_pass_cases) += 1;
    max_splits = split.splits > max_splits ? split.splits : max_splits;
    max_tiles = split.row_tiles > max_tiles ? split.row_tiles : max_tiles;
  }
  EXPECT_GT(split_cases, 100);
  EXPECT_GT(one_pass_cases, 40);
  EXPECT_GT(max_splits, 32);
  EXPECT_GE(max_tiles, 16);
}

}  // namespace
}  // namespace attnd::kernels
