// The cuBLAS variants' pipeline on the CPU emulation (no GPU needed, runs everywhere): every
// variant of the case matrix on tiny sizes against the float64 reference, with a workspace
// poisoned with NaN so that a read of anything not written first shows; plus the host pieces
// the CUDA path relies on: the key bound of a query slice, the strided-batch test and the
// workspace layout the planner counts.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "gtest/gtest.h"
#include "kernels/cpu_attention.h"
#include "kernels/cuda/cuda_runner.h"
#include "kernels/cuda/pipeline.h"
#include "kernels/cuda/steps.h"
#include "kernels/cuda/workspace_layout.h"
#include "kernels/mask.h"
#include "kernels/planner.h"
#include "kernels/problem.h"
#include "tests/gpu/emulated_runner.h"
#include "tests/gpu/gpu_cases.h"
#include "tests/kernels/test_util.h"

namespace attnd::kernels {
namespace {

using cuda::CudaWorkspaceLayout;
using cuda::KeyBound;
using testing::GpuCase;

AttentionProblem Small(int64_t q_len, int64_t kv_len, Causal causal, int64_t left, int64_t right,
                       bool kv_lengths) {
  AttentionProblem p;
  p.batch = 1;
  p.q_len = q_len;
  p.kv_len = kv_len;
  p.q_heads = 1;
  p.kv_heads = 1;
  p.head_dim = 8;
  p.v_head_dim = 8;
  p.scale = 0.5;
  p.causal = causal;
  p.window_left = left;
  p.window_right = right;
  p.has_kv_lengths = kv_lengths;
  return p;
}

// Every key any row of [q0, q1) sees, for every kv length the problem allows, lies in the bound;
// without kv_lengths the bound is exactly the rows' hull.
TEST(KeyBoundTest, CoversEveryVisibleKey) {
  int checked = 0;
  for (auto [mq, mk] : {std::pair<int64_t, int64_t>{7, 12}, {12, 7}, {9, 9}, {1, 5}}) {
    for (Causal causal : {Causal::kNone, Causal::kTopLeft, Causal::kBottomRight}) {
      for (auto [left, right] :
           {std::pair<int64_t, int64_t>{-1, -1}, {2, -1}, {-1, 1}, {0, 0}, {3, 2}, {40, 40}}) {
        for (bool has_lengths : {false, true}) {
          const AttentionProblem p = Small(mq, mk, causal, left, right, has_lengths);
          const MaskPolicy policy = MaskPolicy::FromProblem(p);
          for (int64_t q0 = 0; q0 < mq; ++q0) {
            for (int64_t q1 = q0 + 1; q1 <= mq; ++q1) {
              const KeyRange bound = KeyBound(p, q0, q1);
              int64_t hull_lo = mk;
              int64_t hull_hi = 0;
              for (int64_t keys = has_lengths ? 0 : mk; keys <= mk; ++keys) {
                for (int64_t i = q0; i < q1; ++i) {
                  const KeyRange v = policy.Visible(i, keys);
                  if (v.empty()) continue;
                  ++checked;
                  ASSERT_FALSE(bound.empty()) << p.DebugString() << " rows " << q0 << ".." << q1;
                  ASSERT_LE(bound.lo, v.lo) << p.DebugString() << " row " << i << " keys " << keys;
                  ASSERT_GE(bound.hi, v.hi) << p.DebugString() << " row " << i << " keys " << keys;
                  hull_lo = std::min(hull_lo, v.lo);
                  hull_hi = std::max(hull_hi, v.hi);
                }
              }
              if (!has_lengths && hull_hi > hull_lo) {
                EXPECT_EQ(bound.hi, hull_hi) << p.DebugString() << " rows " << q0 << ".." << q1;
                EXPECT_EQ(bound.lo, hull_lo) << p.DebugString() << " rows " << q0 << ".." << q1;
              }
            }
          }
        }
      }
    }
  }
  EXPECT_GT(checked, 1000);
}

TEST(KeyBoundTest, CausalSkipsHiddenKeys) {
  const AttentionProblem p = Small(1000, 1000, Causal::kTopLeft, -1, -1, false);
  EXPECT_EQ(KeyBound(p, 0, 100).lo, 0);
  EXPECT_EQ(KeyBound(p, 0, 100).hi, 100);
  const AttentionProblem w = Small(1000, 1000, Causal::kBottomRight, 50, -1, false);
  EXPECT_EQ(KeyBound(w, 500, 600).lo, 450);
  EXPECT_EQ(KeyBound(w, 500, 600).hi, 600);
  // kv_lengths with a bottom-right window: the window may slide left as far as i - Mq - 50.
  const AttentionProblem wl = Small(1000, 1000, Causal::kBottomRight, 50, -1, true);
  EXPECT_EQ(KeyBound(wl, 500, 600).lo, 0);
  EXPECT_EQ(KeyBound(wl, 500, 600).hi, 600);
  // A window entirely right of the keys: nothing to compute.
  const AttentionProblem none = Small(10, 5, Causal::kNone, 0, 0, false);
  EXPECT_TRUE(KeyBound(none, 0, 4).empty());  // rows 0..3 align to keys -5..-2
}

TEST(UniformStrideTest, StridedWhereTheLayoutAllows) {
  cuda::GemmOperand o;
  int64_t stride = -1;
  // BHMK q: batch stride Hq·Mq·D, head stride Mq·D: evenly spaced.
  o.batch_stride = 4 * 10 * 8;
  o.head_stride = 10 * 8;
  EXPECT_TRUE(cuda::UniformStride(o, 3, 4, &stride));
  EXPECT_EQ(stride, 80);
  // BMHK q: head stride D, batch stride Mq·Hq·D: not, unless B = 1 or Hq = 1.
  o.batch_stride = 10 * 4 * 8;
  o.head_stride = 8;
  EXPECT_FALSE(cuda::UniformStride(o, 3, 4, &stride));
  EXPECT_TRUE(cuda::UniformStride(o, 1, 4, &stride));
  EXPECT_EQ(stride, 8);
  EXPECT_TRUE(cuda::UniformStride(o, 3, 1, &stride));
  EXPECT_EQ(stride, 320);
  // GQA k (head h reads kv head h / 2): never evenly spaced over h.
  o.head_div = 2;
  EXPECT_FALSE(cuda::UniformStride(o, 1, 4, &stride));
  // One matrix: trivially.
  EXPECT_TRUE(cuda::UniformStride(o, 1, 1, &stride));
}

TEST(WorkspaceLayoutTest, PlannerCountsWhatRunCudaCarves) {
  AttentionProblem p = Small(300, 500, Causal::kNone, -1, -1, false);
  p.batch = 3;
  p.q_heads = 5;
  p.kv_heads = 5;
  p.v_head_dim = 33;
  for (Variant v : {Variant::kNaive, Variant::kSliced, Variant::kChunked}) {
    for (auto [q, kv] : {std::pair<int64_t, int64_t>{300, 500}, {17, 29}, {1, 1}}) {
      const CudaWorkspaceLayout l = CudaWorkspaceLayout::For(p, v, q, kv, 1);
      EXPECT_EQ(WorkspaceBytes(p, v, q, kv, 1), l.bytes);
      EXPECT_EQ(l.bytes, l.lane_bytes);
      // Two lanes where there are two query slices (not naive, not q 300 of Mq 300): twice.
      const int lanes = cuda::CudaLanesUsed(p, v, q, 2);
      EXPECT_EQ(lanes, v != Variant::kNaive && q < 300 ? 2 : 1);
      const CudaWorkspaceLayout two = CudaWorkspaceLayout::For(p, v, q, kv, lanes);
      EXPECT_EQ(WorkspaceBytes(p, v, q, kv, 2), two.bytes);
      EXPECT_EQ(two.bytes, lanes * l.bytes);
      for (int64_t offset : {l.pointers, l.scores, l.row_max, l.row_sum, l.acc, l.bytes}) {
        EXPECT_EQ(offset % 256, 0);
      }
      EXPECT_GE(l.scores - l.pointers, 3 * 15 * 8);
      const int64_t rows = v == Variant::kNaive ? 300 : q;
      const int64_t cols = v == Variant::kChunked ? kv : 500;
      EXPECT_GE(l.row_max - l.scores, 15 * rows * cols * 4);
      if (v == Variant::kChunked) {
        EXPECT_GE(l.row_sum - l.row_max, 15 * q * 4);
        EXPECT_GE(l.acc - l.row_sum, 15 * q * 4);
        EXPECT_GE(l.bytes - l.acc, 15 * q * 33 * 4);
      } else {
        EXPECT_EQ(l.bytes, l.row_max);
      }
    }
  }
  EXPECT_EQ(CudaWorkspaceLayout::For(p, Variant::kCudnn, 1, 1, 1).bytes, 0);
}

// Worked example of the chunked bound: B=1, Hq=Hkv=1, Mq=2, Mk=3, D=Dv=4, f16, one slice and
// tiles of 2 and 1 keys: finalise 2·4·(4+2) = 48; tile 1: 2·2·12 + 2·4·2 + 2·8·2 + 2·4·4 = 128;
// tile 2: 2·1·12 + 16 + 1·8·2 + 2·4·8 = 120. 296 bytes.
TEST(ChunkedTrafficTest, WorkedExample) {
  AttentionProblem p = Small(2, 3, Causal::kNone, -1, -1, false);
  p.dtype = DType::kF16;
  p.head_dim = 4;
  p.v_head_dim = 4;
  Plan plan;
  plan.variant = Variant::kChunked;
  plan.q_chunk = 2;
  plan.kv_chunk = 2;
  EXPECT_DOUBLE_EQ(cuda::ChunkedTrafficBytes(p, plan), 296.0);
}

const testing::MatrixSizes& Sizes() {
  static const testing::MatrixSizes* sizes = new testing::MatrixSizes(testing::EmulationSizes());
  return *sizes;
}

// Runs the plan on `lanes` (1 or 2) emulated runners, each with its share of a workspace that is
// NaN everywhere: reading a score, P or accumulator that was not written first shows.
absl::Status RunEmulated(const Plan& plan, const AttentionProblem& p, bool streamed, int lanes,
                         testing::OwnedTensors* got) {
  std::vector<unsigned char> storage(static_cast<size_t>(plan.workspace_bytes) + 256, 0xFF);
  void* workspace = storage.data() + (256 - reinterpret_cast<uintptr_t>(storage.data()) % 256);
  cuda::testing::EmulatedRunner first(streamed);
  cuda::testing::EmulatedRunner second(streamed);
  cuda::StepRunner* all[] = {&first, &second};
  return cuda::RunSteps(plan, p, got->View(), workspace,
                        absl::MakeConstSpan(all, static_cast<size_t>(lanes)));
}

class EmulatedPipelineTest : public ::testing::TestWithParam<GpuCase> {};

TEST_P(EmulatedPipelineTest, EveryVariantMatchesReference) {
  const GpuCase& c = GetParam();
  const AttentionProblem& p = c.problem;
  ASSERT_TRUE(ValidateProblem(p, ProblemLimits()).ok()) << p.DebugString();
  testing::OwnedTensors inputs = testing::MakeCaseTensors(c);
  ReferenceResult reference;
  ASSERT_TRUE(ReferenceAttention(p, inputs.View(), &reference).ok());

  for (const bool streamed : {false, true}) {
    for (const testing::VariantRun& run : testing::RunsFor(c, Sizes())) {
      SCOPED_TRACE(run.label + (streamed ? ", streamed rows" : ", cached rows"));
      const absl::StatusOr<Plan> plan = testing::PlanFor(p, run);
      ASSERT_TRUE(plan.ok()) << plan.status();
      testing::OwnedTensors got = inputs;  // out and lse are NaN
      const int lanes = cuda::CudaLanesUsed(p, plan->variant, plan->q_chunk, plan->threads);
      ASSERT_LE(lanes, 2);
      const absl::Status s = RunEmulated(*plan, p, streamed, lanes, &got);
      ASSERT_TRUE(s.ok()) << s;
      EXPECT_EQ(testing::CompareWithReference(p, got, reference), "")
          << p.DebugString() << "\nplan: " << plan->reason;
      EXPECT_EQ(testing::CheckNegInfRow(c, got), "");
    }
  }
}

// Chunked's merge keeps a row's reference max until a tile's max passes it by more than
// kMergeSlack (row_ops.h): random scores never do, so the matrix above barely reaches the
// rescale. Here a bias lifts (or lowers) each tile of 8 keys by a step: 12 passes the slack at
// every tile (rescale each time), 5 within it at the next tile and past it two tiles on, -12
// never moves the reference. Cached and streamed rows, f32 and bf16.
TEST(EmulatedMergeTest, TilesFarAboveTheReferenceRescale) {
  for (const DType dtype : {DType::kF32, DType::kBF16}) {
    for (const float step : {12.0f, 5.0f, -12.0f, 0.0f}) {
      AttentionProblem p;
      p.batch = 1;
      p.q_len = 9;
      p.kv_len = 40;
      p.q_heads = 2;
      p.kv_heads = 2;
      p.head_dim = 8;
      p.v_head_dim = 8;
      p.scale = 0.35;
      p.dtype = dtype;
      p.has_bias = true;
      p.bias_dtype = DType::kF32;
      const int64_t bias_shape[4] = {1, 2, 9, 40};
      std::copy(bias_shape, bias_shape + 4, p.bias_shape);
      ASSERT_TRUE(ValidateProblem(p, ProblemLimits()).ok()) << p.DebugString();
      std::mt19937 rng(7);
      testing::OwnedTensors inputs = testing::MakeTensors(p, &rng);
      float* bias = reinterpret_cast<float*>(inputs.bias.data());
      for (int64_t e = 0; e < p.bias_elements(); ++e) bias[e] = step * static_cast<float>(e % 40 / 8);
      ReferenceResult reference;
      ASSERT_TRUE(ReferenceAttention(p, inputs.View(), &reference).ok());
      testing::VariantRun run;
      run.variant = Variant::kChunked;
      run.q_chunk = 4;
      run.kv_chunk = 8;
      const absl::StatusOr<Plan> plan = testing::PlanFor(p, run);
      ASSERT_TRUE(plan.ok()) << plan.status();
      for (const bool streamed : {false, true}) {
        SCOPED_TRACE(absl::StrCat(std::string(DTypeName(dtype)), " step ", step,
                                  streamed ? " streamed" : ""));
        testing::OwnedTensors got = inputs;
        const absl::Status s = RunEmulated(*plan, p, streamed, /*lanes=*/1, &got);
        ASSERT_TRUE(s.ok()) << s;
        EXPECT_EQ(testing::CompareWithReference(p, got, reference), "") << p.DebugString();
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Matrix, EmulatedPipelineTest,
                         ::testing::ValuesIn(testing::MakeMatrix(Sizes())),
                         [](const ::testing::TestParamInfo<GpuCase>& info) {
                           return testing::CaseName(info.param);
                         });

}  // namespace
}  // namespace attnd::kernels
