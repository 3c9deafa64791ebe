// The f32 fused kernel (kernels/cuda/fused/fused_f32.h, 3xTF32) on the GPU against the float64
// reference, with the f32 tolerance every f32 variant meets (tests/kernels/test_util.h: out
// atol 2e-5 + rtol 2e-5, LSE 5e-5·max(1, |lse|)), on fresh random normals (never zeros), outputs
// pre-filled with NaN. Every option: odd lengths (1, 7, 77, 129, 1031), head dims 8, 64, 80,
// 128 and 256 (the f32 maximum) and Dv != D, GQA 8/2 and MQA 8/1 in both layouts, causal in both
// alignments, sliding windows, kv_lengths with an empty and a partial batch element, a bias in
// each dtype and every broadcast, a row that sees no key, the LSE on and off.
//
// That tolerance rejects plain TF32: its 10-bit mantissa puts a relative error up to 2^-10
// (~1e-3) on each V element it reads, and with few keys the output is about one V row, so an
// error of ~5e-4·|v| against the allowed 2e-5 + 2e-5·|v|; Q·Kᵀ at D 128 moves every score by
// ~1e-3, 20× the LSE tolerance. PlainTf32IsRejected runs the same kernel with one TF32 product
// per step (RunFusedTf32ForTest) on such a case and expects the comparison to fail, so this file
// shows on the device that it can tell f32 from TF32.
//
// Without a CUDA device every test here skips, saying so.
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "kernels/cpu_attention.h"
#include "kernels/cuda/cuda_attention.h"
#include "kernels/cuda/fused/fused_f32.h"
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
using testing::OwnedTensors;
using testing::SharedContext;

// A case's inputs and outputs on the device; out and lse start as the host's NaN.
struct DeviceCase {
  DeviceBuffer q, k, v, bias, kv_lengths, out, lse;
  AttentionTensors tensors;
};

// Uploads; ASSERTs inside, so the caller checks HasFatalFailure().
void Upload(const GpuCase& c, const OwnedTensors& in, DeviceCase* d) {
  const AttentionProblem& p = c.problem;
  ASSERT_CUDA_OK(d->q.Upload(in.q.data(), in.q.size()));
  ASSERT_CUDA_OK(d->k.Upload(in.k.data(), in.k.size()));
  ASSERT_CUDA_OK(d->v.Upload(in.v.data(), in.v.size()));
  ASSERT_CUDA_OK(d->bias.Upload(in.bias.data(), in.bias.size()));
  ASSERT_CUDA_OK(
      d->kv_lengths.Upload(in.kv_lengths.data(), in.kv_lengths.size() * sizeof(int64_t)));
  ASSERT_CUDA_OK(d->out.Upload(in.out.data(), in.out.size()));
  ASSERT_CUDA_OK(d->lse.Upload(in.lse.data(), in.lse.size() * sizeof(float)));
  AttentionTensors& t = d->tensors;
  t.q = d->q.get();
  t.k = d->k.get();
  t.v = d->v.get();
  t.bias = p.has_bias ? d->bias.get() : nullptr;
  t.kv_lengths = p.has_kv_lengths ? static_cast<const int64_t*>(d->kv_lengths.get()) : nullptr;
  t.out = d->out.get();
  t.lse = p.return_lse ? static_cast<float*>(d->lse.get()) : nullptr;
}

void Download(const DeviceCase& d, OwnedTensors* got) {
  ASSERT_CUDA_OK(d.out.Download(got->out.data()));
  ASSERT_CUDA_OK(d.lse.Download(got->lse.data()));
}

constexpr DType kDTypes[] = {DType::kF32, DType::kF16, DType::kBF16};

GpuCase F32(int64_t batch, int64_t q_len, int64_t kv_len, int64_t q_heads, int64_t kv_heads,
            int64_t d, int64_t dv) {
  return testing::BaseCase<GpuCase>(DType::kF32, batch, q_len, kv_len, q_heads, kv_heads, d, dv);
}

// The matrix; every name is distinct (CaseName).
std::vector<GpuCase> F32Cases() {
  std::vector<GpuCase> cases;
  // Head dims (8 pads to 32; 80 to 96; 256 is the f32 maximum) × odd lengths, Mq < Mk and >.
  const std::pair<int64_t, int64_t> lengths[] = {{1, 1031}, {7, 77}, {77, 7}, {129, 129},
                                                 {1031, 129}, {1, 1}};
  for (int64_t d : {8, 64, 80, 128, 256}) {
    for (auto [mq, mk] : lengths) cases.push_back(F32(2, mq, mk, 2, 2, d, d));
  }
  constexpr int64_t a = 77;
  constexpr int64_t b = 129;
  const std::pair<int64_t, int64_t> both_ways[] = {{a, b}, {b, a}};
  for (int64_t d : {64, 128}) {
    // Causal, both alignments.
    for (Causal causal : {Causal::kTopLeft, Causal::kBottomRight}) {
      for (auto [mq, mk] : both_ways) {
        GpuCase c = F32(2, mq, mk, 2, 2, d, d);
        c.problem.causal = causal;
        cases.push_back(c);
      }
    }
    // Sliding windows: two-sided, one-sided, with causal (left, right, causal).
    const int64_t windows[][3] = {{16, 8, 0}, {-1, 4, 0}, {16, -1, 2}, {0, 0, 1}, {5, 3, 1}};
    for (const auto& w : windows) {
      for (auto [mq, mk] : both_ways) {
        GpuCase c = F32(2, mq, mk, 2, 2, d, d);
        c.problem.window_left = w[0];
        c.problem.window_right = w[1];
        c.problem.causal = static_cast<Causal>(w[2]);
        cases.push_back(c);
      }
    }
  }
  // kv_lengths: an empty batch element and a partial one; bottom-right causal aligned to
  // kv_lengths[b]; a window; top-left with Mq > Mk; past the 64-key blocks of D 64.
  {
    GpuCase c = F32(2, a, b, 2, 2, 64, 64);
    c.problem.has_kv_lengths = true;
    c.kv_lengths = {0, 50};
    cases.push_back(c);
    c.problem.causal = Causal::kBottomRight;
    c.kv_lengths = {b, 1};
    cases.push_back(c);
    c.kv_lengths = {100, 65};
    c.problem.window_left = 10;
    cases.push_back(c);
    c = F32(2, b, a, 2, 2, 128, 128);
    c.problem.has_kv_lengths = true;
    c.problem.causal = Causal::kTopLeft;
    c.kv_lengths = {33, a};
    cases.push_back(c);
    c = F32(2, 1031, 1031, 1, 1, 64, 64);
    c.problem.has_kv_lengths = true;
    c.kv_lengths = {0, 1000};
    cases.push_back(c);
  }
  // Every bias broadcast in every bias dtype (D 64), and a dense one at D 128 and 256.
  const int64_t bias_shapes[][4] = {{2, 2, a, b}, {1, 2, a, b}, {2, 1, a, b}, {1, 1, a, b},
                                    {1, 1, 1, b}, {1, 1, a, 1}, {2, 2, 1, 1}};
  for (const auto& shape : bias_shapes) {
    for (DType bias_dtype : kDTypes) {
      GpuCase c = F32(2, a, b, 2, 2, 64, 64);
      testing::SetBias(&c, bias_dtype, shape[0], shape[1], shape[2], shape[3]);
      cases.push_back(c);
    }
  }
  for (int64_t d : {128, 256}) {
    GpuCase c = F32(2, b, a, 2, 2, d, d);
    c.problem.causal = Causal::kBottomRight;
    testing::SetBias(&c, DType::kBF16, 2, 2, b, a);
    cases.push_back(c);
  }
  // A row whose bias is -inf everywhere sees no key: out exactly 0, LSE -inf (the reference's).
  for (DType bias_dtype : kDTypes) {
    GpuCase c = F32(2, a, b, 2, 2, 64, 64);
    testing::SetBias(&c, bias_dtype, 1, 1, a, b);
    c.neg_inf_bias_row = 5;
    cases.push_back(c);
  }
  // GQA 8/2 and MQA 8/1, both layouts, with causal bottom-right or a per-head bias.
  for (Layout layout : {Layout::kBMHK, Layout::kBHMK}) {
    GpuCase c = F32(2, a, b, 8, 2, 80, 80);
    c.problem.layout = layout;
    c.problem.causal = Causal::kBottomRight;
    cases.push_back(c);
    c = F32(1, b, 1031, 8, 1, 128, 64);
    c.problem.layout = layout;
    testing::SetBias(&c, DType::kF32, 1, 8, b, 1031);
    cases.push_back(c);
    c = F32(2, 1031, a, 8, 1, 64, 64);
    c.problem.layout = layout;
    c.problem.causal = Causal::kTopLeft;
    c.problem.window_left = 40;
    cases.push_back(c);
  }
  // BHMK with everything at once.
  {
    GpuCase c = F32(2, a, b, 4, 2, 64, 64);
    c.problem.layout = Layout::kBHMK;
    c.problem.causal = Causal::kTopLeft;
    c.problem.window_left = 30;
    c.problem.has_kv_lengths = true;
    c.kv_lengths = {b * 3 / 4, b};
    testing::SetBias(&c, DType::kF16, 2, 1, a, b);
    cases.push_back(c);
  }
  // Dv != D (the kernel pads to the larger), without the LSE.
  const std::pair<int64_t, int64_t> dim_pairs[] = {{64, 128}, {128, 64}, {8, 256}, {256, 8},
                                                   {80, 16}};
  for (auto [dq, dv] : dim_pairs) {
    GpuCase c = F32(2, a, b, 2, 2, dq, dv);
    c.problem.return_lse = false;
    cases.push_back(c);
  }
  // A sharp softmax (scale 1: scores ~ N(0, 64)) over many blocks: the running-max rescale.
  {
    GpuCase c = F32(2, a, 1031, 2, 2, 64, 64);
    c.problem.scale = 1.0;
    cases.push_back(c);
  }
  // Long rows in both, causal (the CTAs launched in reverse order), one of each layout.
  {
    GpuCase c = F32(1, 1031, 1031, 2, 2, 256, 256);
    c.problem.causal = Causal::kTopLeft;
    cases.push_back(c);
    c = F32(1, 2048, 2048, 2, 1, 128, 128);
    c.problem.layout = Layout::kBHMK;
    c.problem.causal = Causal::kBottomRight;
    cases.push_back(c);
  }
  return cases;
}

class FusedF32Test : public ::testing::TestWithParam<GpuCase> {};

// Through the server's path: the planner's plan with fused forced, RunCuda, RunFused.
TEST_P(FusedF32Test, MatchesReference) {
  SKIP_WITHOUT_DEVICE();
  const GpuCase& c = GetParam();
  const AttentionProblem& p = c.problem;
  ASSERT_TRUE(ValidateProblem(p, ProblemLimits()).ok()) << p.DebugString();
  ASSERT_EQ(FusedRefusal(p), "") << p.DebugString();
  const OwnedTensors inputs = testing::MakeCaseTensors(c);
  OwnedTensors host = inputs;
  const ReferenceResult reference = testing::ParallelReference(p, host.View());

  const absl::StatusOr<Plan> plan = testing::PlanFor(p, {Variant::kFused, 0, 0, "fused"});
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->variant, Variant::kFused);
  DeviceCase d;
  Upload(c, inputs, &d);
  if (HasFatalFailure()) return;
  // The plan's workspace (the LSE's size; fused uses none of it), filled with garbage.
  DeviceBuffer workspace;
  const size_t workspace_bytes = static_cast<size_t>(plan->workspace_bytes);
  ASSERT_CUDA_OK(workspace.Allocate(workspace_bytes));
  ASSERT_CUDA_OK(workspace.Fill(0xFF));
  const CudaContext& context = *SharedContext();
  const absl::Status s =
      cuda::RunCuda(*plan, p, d.tensors, workspace.get(), plan->workspace_bytes, context);
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_CUDA_OK(cudaStreamSynchronize(static_cast<cudaStream_t>(context.stream)));
  OwnedTensors got = inputs;
  Download(d, &got);
  if (HasFatalFailure()) return;
  EXPECT_EQ(testing::CompareWithReference(p, got, reference), "") << p.DebugString();
  EXPECT_EQ(testing::CheckNegInfRow(c, got), "");
}

INSTANTIATE_TEST_SUITE_P(FusedF32, FusedF32Test, ::testing::ValuesIn(F32Cases()),
                         [](const ::testing::TestParamInfo<GpuCase>& info) {
                           return testing::CaseName(info.param);
                         });

// The same kernel in plain TF32 must fail the comparison the 3xTF32 kernel passes (see the top).
// D 128 and 77 keys: each output is a mix of few V rows, and each V element read as TF32 is
// off by up to 2^-10 of itself.
TEST(FusedF32ToleranceTest, PlainTf32IsRejected) {
  SKIP_WITHOUT_DEVICE();
  const GpuCase c = F32(2, 129, 77, 2, 2, 128, 128);
  const AttentionProblem& p = c.problem;
  const OwnedTensors inputs = testing::MakeCaseTensors(c);
  OwnedTensors host = inputs;
  const ReferenceResult reference = testing::ParallelReference(p, host.View());
  const CudaContext& context = *SharedContext();
  for (const bool exact : {true, false}) {
    SCOPED_TRACE(exact ? "3xTF32" : "plain TF32");
    DeviceCase d;
    Upload(c, inputs, &d);
    if (HasFatalFailure()) return;
    const absl::Status s = exact ? cuda::RunFusedF32(p, d.tensors, context.stream)
                                 : cuda::RunFusedTf32ForTest(p, d.tensors, context.stream);
    ASSERT_TRUE(s.ok()) << s;
    ASSERT_CUDA_OK(cudaStreamSynchronize(static_cast<cudaStream_t>(context.stream)));
    OwnedTensors got = inputs;
    Download(d, &got);
    if (HasFatalFailure()) return;
    const std::string mismatches = testing::CompareWithReference(p, got, reference);
    if (exact) {
      EXPECT_EQ(mismatches, "");
    } else {
      EXPECT_NE(mismatches, "") << "plain TF32 passed the f32 tolerance: the test cannot tell";
      std::printf("plain TF32, as expected outside the f32 tolerance:\n%s\n",
                  mismatches.substr(0, 600).c_str());
    }
  }
}

// What the f32 path refuses: head dims above kFusedF32MaxHeadDim, not multiples of 8, tensors
// that are not 16-byte aligned; and that it computes nothing (and fails nothing) when empty.
TEST(FusedF32ToleranceTest, Refusals) {
  SKIP_WITHOUT_DEVICE();
  const CudaContext& context = *SharedContext();
  DeviceBuffer buffer;
  const std::vector<unsigned char> zeros(1 << 20, 0);
  ASSERT_CUDA_OK(buffer.Upload(zeros.data(), zeros.size()));
  AttentionTensors t;
  t.q = t.k = t.v = buffer.get();
  t.out = static_cast<char*>(buffer.get()) + (1 << 19);
  AttentionProblem p = F32(1, 8, 8, 1, 1, 16, 16).problem;
  p.return_lse = false;
  EXPECT_TRUE(cuda::RunFusedF32(p, t, context.stream).ok());
  AttentionProblem wide = p;
  wide.head_dim = wide.v_head_dim = kFusedF32MaxHeadDim + 8;
  absl::Status s = cuda::RunFusedF32(wide, t, context.stream);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(std::string(s.message()).find("f32 head dims up to"), std::string::npos) << s;
  AttentionProblem odd = p;
  odd.head_dim = 12;
  EXPECT_EQ(cuda::RunFusedF32(odd, t, context.stream).code(), absl::StatusCode::kInvalidArgument);
  AttentionTensors unaligned = t;
  unaligned.v = static_cast<const char*>(t.v) + 8;
  EXPECT_EQ(cuda::RunFusedF32(p, unaligned, context.stream).code(),
            absl::StatusCode::kInvalidArgument);
  AttentionProblem half = p;
  half.dtype = DType::kF16;
  EXPECT_EQ(cuda::RunFusedF32(half, t, context.stream).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cuda::RunFusedTf32ForTest(p, t, context.stream).code(),
            absl::StatusCode::kInvalidArgument);  // its one instantiation is D 128
  AttentionProblem empty = p;
  empty.q_len = 0;
  EXPECT_TRUE(cuda::RunFusedF32(empty, t, context.stream).ok());
  ASSERT_CUDA_OK(cudaStreamSynchronize(static_cast<cudaStream_t>(context.stream)));
}

}  // namespace
}  // namespace attnd::kernels
