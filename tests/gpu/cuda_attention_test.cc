// The CUDA variants (naive, sliced, chunked, and fused where it takes the case) on the GPU
// against the float64 reference, over the matrices of tests/gpu/gpu_cases.h: every dtype, head
// dims 8 to 512, lengths 1 to 2048, every option, chunk overrides with ragged tails. Inputs go up with cudaMemcpy; the outputs
// start as NaN so that an unwritten element fails. Without a CUDA device every test here skips,
// saying so.
#include "kernels/cuda/cuda_attention.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "kernels/cpu_attention.h"
#include "kernels/cuda/fused/fused_attention.h"  // FusedDeviceRefusal
#include "kernels/cuda/workspace_layout.h"
#include "kernels/device_query.h"
#include "kernels/fused_support.h"
#include "kernels/planner.h"
#include "kernels/problem.h"
#include "tests/gpu/device_support.h"
#include "tests/gpu/gpu_cases.h"
#include "tests/kernels/test_util.h"

namespace attnd::kernels {
namespace {

using cuda::CudaContext;
using testing::DeviceBuffer;
using testing::GpuCase;
using testing::HaveDevice;
using testing::OwnedTensors;
using testing::SharedContext;

// Inputs of one case on the device.
struct DeviceInputs {
  DeviceBuffer q, k, v, bias, kv_lengths;
};

const testing::MatrixSizes& Sizes() {
  static const testing::MatrixSizes* sizes = new testing::MatrixSizes(testing::GpuSizes());
  return *sizes;
}

class CudaAttentionTest : public ::testing::TestWithParam<GpuCase> {};

TEST_P(CudaAttentionTest, EveryVariantMatchesReference) {
  SKIP_WITHOUT_DEVICE();
  const GpuCase& c = GetParam();
  const AttentionProblem& p = c.problem;
  ASSERT_TRUE(ValidateProblem(p, ProblemLimits()).ok()) << p.DebugString();
  const OwnedTensors inputs = testing::MakeCaseTensors(c);
  OwnedTensors host = inputs;
  const ReferenceResult reference = testing::ParallelReference(p, host.View());

  DeviceInputs in;
  ASSERT_CUDA_OK(in.q.Upload(inputs.q.data(), inputs.q.size()));
  ASSERT_CUDA_OK(in.k.Upload(inputs.k.data(), inputs.k.size()));
  ASSERT_CUDA_OK(in.v.Upload(inputs.v.data(), inputs.v.size()));
  ASSERT_CUDA_OK(in.bias.Upload(inputs.bias.data(), inputs.bias.size()));
  ASSERT_CUDA_OK(
      in.kv_lengths.Upload(inputs.kv_lengths.data(), inputs.kv_lengths.size() * sizeof(int64_t)));
  const CudaContext& context = *SharedContext();

  std::vector<testing::VariantRun> runs = testing::RunsFor(c, Sizes());
  if (FusedRefusal(p).empty() && cuda::FusedDeviceRefusal(p).empty()) {
    runs.push_back({Variant::kFused, 0, 0, "fused"});
  }
  for (const testing::VariantRun& run : runs) {
    SCOPED_TRACE(run.label);
    const absl::StatusOr<Plan> plan = testing::PlanFor(p, run);
    ASSERT_TRUE(plan.ok()) << plan.status();
    DeviceBuffer out;
    DeviceBuffer lse;
    DeviceBuffer workspace;
    ASSERT_CUDA_OK(out.Upload(inputs.out.data(), inputs.out.size()));  // NaN
    ASSERT_CUDA_OK(lse.Upload(inputs.lse.data(), inputs.lse.size() * sizeof(float)));
    ASSERT_CUDA_OK(workspace.Allocate(static_cast<size_t>(plan->workspace_bytes)));
    ASSERT_CUDA_OK(workspace.Fill(0xFF));

    AttentionTensors t;
    t.q = in.q.get();
    t.k = in.k.get();
    t.v = in.v.get();
    t.bias = p.has_bias ? in.bias.get() : nullptr;
    t.kv_lengths = p.has_kv_lengths ? static_cast<const int64_t*>(in.kv_lengths.get()) : nullptr;
    t.out = out.get();
    t.lse = p.return_lse ? static_cast<float*>(lse.get()) : nullptr;
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
}

INSTANTIATE_TEST_SUITE_P(Matrix, CudaAttentionTest,
                         ::testing::ValuesIn(testing::MakeMatrix(Sizes())),
                         [](const ::testing::TestParamInfo<GpuCase>& info) {
                           return testing::CaseName(info.param);
                         });

INSTANTIATE_TEST_SUITE_P(FusedDims, CudaAttentionTest,
                         ::testing::ValuesIn(testing::MakeMatrix(testing::FusedSizes())),
                         [](const ::testing::TestParamInfo<GpuCase>& info) {
                           return testing::CaseName(info.param);
                         });

INSTANTIATE_TEST_SUITE_P(WideDims, CudaAttentionTest,
                         ::testing::ValuesIn(testing::MakeMatrix(testing::WideSizes())),
                         [](const ::testing::TestParamInfo<GpuCase>& info) {
                           return testing::CaseName(info.param);
                         });

INSTANTIATE_TEST_SUITE_P(BiasTiles, CudaAttentionTest, ::testing::ValuesIn(testing::BiasTileCases()),
                         [](const ::testing::TestParamInfo<GpuCase>& info) {
                           return testing::CaseName(info.param);
                         });

// The API's refusals, and what it offers.
class CudaApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveDevice()) GTEST_SKIP() << "no CUDA device";
    ASSERT_NE(SharedContext(), nullptr);
    p_.batch = 1;
    p_.q_len = 8;
    p_.kv_len = 8;
    p_.q_heads = 1;
    p_.kv_heads = 1;
    p_.head_dim = 16;
    p_.v_head_dim = 16;
    p_.scale = 0.25;
    ASSERT_CUDA_OK(buffer_.Allocate(1 << 20));
    t_.q = t_.k = t_.v = buffer_.get();
    t_.out = static_cast<char*>(buffer_.get()) + (1 << 19);
  }
  AttentionProblem p_;
  AttentionTensors t_;
  DeviceBuffer buffer_;
};

TEST_F(CudaApiTest, OffersTheCublasVariants) {
  const std::vector<Variant> variants = cuda::CudaVariants();
  for (Variant v : {Variant::kNaive, Variant::kSliced, Variant::kChunked, Variant::kFused}) {
    EXPECT_NE(std::find(variants.begin(), variants.end(), v), variants.end()) << VariantName(v);
  }
}

TEST_F(CudaApiTest, RefusesBadRuns) {
  const CudaContext& context = *SharedContext();
  Plan plan;
  plan.variant = Variant::kCpuChunked;
  absl::Status s = cuda::RunCuda(plan, p_, t_, nullptr, 0, context);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;

  plan.variant = Variant::kNaive;
  plan.workspace_bytes = cuda::CudaWorkspaceLayout::For(p_, Variant::kNaive, 8, 8, 1).bytes;
  DeviceBuffer workspace;
  ASSERT_CUDA_OK(workspace.Allocate(static_cast<size_t>(plan.workspace_bytes)));
  s = cuda::RunCuda(plan, p_, t_, workspace.get(), plan.workspace_bytes - 1, context);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  s = cuda::RunCuda(plan, p_, t_, static_cast<char*>(workspace.get()) + 16, plan.workspace_bytes,
                    context);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;  // not 256-byte aligned
  Plan short_plan = plan;
  short_plan.workspace_bytes -= 1;
  s = cuda::RunCuda(short_plan, p_, t_, workspace.get(), plan.workspace_bytes, context);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  AttentionTensors missing = t_;
  missing.out = nullptr;
  s = cuda::RunCuda(plan, p_, missing, workspace.get(), plan.workspace_bytes, context);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  s = cuda::RunCuda(plan, p_, t_, workspace.get(), plan.workspace_bytes, CudaContext());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  // And the good run still works after the refusals.
  s = cuda::RunCuda(plan, p_, t_, workspace.get(), plan.workspace_bytes, context);
  EXPECT_TRUE(s.ok()) << s;
  ASSERT_CUDA_OK(cudaStreamSynchronize(static_cast<cudaStream_t>(context.stream)));

  // fused: what FusedRefusal refuses (f32 beyond its head dims), and tensors that are not
  // 16-byte aligned.
  Plan fused;
  fused.variant = Variant::kFused;
  AttentionProblem f32 = p_;
  f32.head_dim = f32.v_head_dim = kFusedF32MaxHeadDim + 8;
  s = cuda::RunCuda(fused, f32, t_, nullptr, 0, context);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  AttentionProblem half = p_;
  half.dtype = DType::kF16;
  half.head_dim = half.v_head_dim = 12;
  s = cuda::RunCuda(fused, half, t_, nullptr, 0, context);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  half.head_dim = half.v_head_dim = kFusedWideDim + 8;
  s = cuda::RunCuda(fused, half, t_, nullptr, 0, context);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  // Head dims above 256: the wide kernel on sm_90, refused elsewhere.
  half.head_dim = half.v_head_dim = 264;
  s = cuda::RunCuda(fused, half, t_, nullptr, 0, context);
  if (cuda::FusedDeviceRefusal(half).empty()) {
    EXPECT_TRUE(s.ok()) << s;
  } else {
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  }
  half.head_dim = half.v_head_dim = 16;
  AttentionTensors unaligned = t_;
  unaligned.k = static_cast<const char*>(t_.k) + 8;
  s = cuda::RunCuda(fused, half, unaligned, nullptr, 0, context);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  s = cuda::RunCuda(fused, half, t_, nullptr, 0, context);
  EXPECT_TRUE(s.ok()) << s;
  s = cuda::RunCuda(fused, p_, t_, nullptr, 0, context);  // f32 at D 16
  EXPECT_TRUE(s.ok()) << s;
  ASSERT_CUDA_OK(cudaStreamSynchronize(static_cast<cudaStream_t>(context.stream)));

  // A ragged problem: only fused indexes packed sequences (Ragged/FusedRaggedTest runs it), and
  // none runs without its offsets.
  AttentionProblem ragged = half;
  ragged.ragged = true;
  ragged.batch = 2;
  ragged.total_q = 8;
  ragged.total_kv = 8;
  s = cuda::RunCuda(fused, ragged, t_, nullptr, 0, context);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("q_offsets"), std::string::npos) << s;
  AttentionTensors with_offsets = t_;
  with_offsets.q_offsets = with_offsets.kv_offsets = static_cast<const int64_t*>(t_.q);
  for (Variant v : {Variant::kNaive, Variant::kSliced, Variant::kChunked}) {
    Plan refused;
    refused.variant = v;
    refused.q_chunk = refused.kv_chunk = 8;
    s = cuda::RunCuda(refused, ragged, with_offsets, nullptr, 0, context);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << VariantName(v) << ": " << s;
  }

#if !defined(ATTND_WITH_CUDNN)
  plan.variant = Variant::kCudnn;
  s = cuda::RunCuda(plan, p_, t_, workspace.get(), plan.workspace_bytes, context);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented) << s;
#endif
}

TEST_F(CudaApiTest, ContextsComeAndGo) {
  CudaContext c;
  ASSERT_TRUE(cuda::CreateCudaContext(0, &c).ok());
  EXPECT_NE(c.stream, nullptr);
  EXPECT_NE(c.cublas, nullptr);
  EXPECT_NE(c.cublas_workspace, nullptr);
  cuda::DestroyCudaContext(&c);
  EXPECT_EQ(c.stream, nullptr);
  EXPECT_EQ(c.cublas, nullptr);
  CudaContext bad;
  EXPECT_FALSE(cuda::CreateCudaContext(CudaDeviceCount(), &bad).ok());  // no such device
  EXPECT_EQ(bad.stream, nullptr);
}

// Visible in every build: says whether the GPU tests ran here.
TEST(CudaPresenceTest, ReportsDevice) {
  if (!HaveDevice()) GTEST_SKIP() << "no CUDA device: the GPU matrix is skipped on this machine";
  const std::vector<CudaDeviceInfo> devices = CudaDevices();
  ASSERT_FALSE(devices.empty());
  std::printf("GPU tests run on %s (compute %d.%d, %d SMs)\n", devices[0].name.c_str(),
              devices[0].compute_major, devices[0].compute_minor, devices[0].multiprocessors);
}

}  // namespace
}  // namespace attnd::kernels
