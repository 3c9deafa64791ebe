// cpu_chunked against the float64 reference over a matrix of every option: dtypes, odd head dims
// (59, 111) and 64, lengths 1, 97 and 1025, causal alignments with Mq != Mk, sliding windows,
// kv_lengths (0, partial, full), every bias broadcast in every dtype, GQA/MQA, both layouts,
// return_lse, chunk overrides that force many ragged tiles, ragged batches (sequence offsets),
// and 1-3 threads. Inputs are fresh
// random normals (never zero) per case; tolerances are in test_util.h.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/cpu_attention.h"
#include "kernels/cpu_rows.h"
#include "kernels/dtype_convert.h"
#include "kernels/planner.h"
#include "kernels/problem.h"
#include "tests/kernels/test_util.h"

namespace attnd::kernels {
namespace {

using testing::CompareWithReference;
using testing::MakeTensors;
using testing::OwnedTensors;
using testing::SetBias;

// The shared fields (problem, kv_lengths, -inf bias row, chunk overrides) and how to run it.
struct Case : testing::ProblemCase {
  int threads = 2;
  bool baseline_rows = false;  // run the baseline (non-AVX2) row kernels
};

// The shared name with the run's options after it.
std::string CaseName(const Case& c) {
  std::string name = absl::StrCat(testing::CaseName(c), "_t", c.threads);
  if (c.baseline_rows) absl::StrAppend(&name, "_baseline");
  return name;
}

// gtest prints a failing parameter with this instead of its bytes.
void PrintTo(const Case& c, std::ostream* os) { *os << CaseName(c); }

constexpr auto Base = testing::BaseCase<Case>;

std::vector<Case> AllCases() {
  constexpr DType kDTypes[] = {DType::kF32, DType::kF16, DType::kBF16};
  std::vector<Case> cases;

  // Sizes: odd and even head dims × lengths 1, 97 and 1025 (both ways round), every dtype.
  const int64_t head_dims[][2] = {{59, 59}, {111, 111}, {64, 64}};
  const int64_t lengths[][2] = {{1, 97}, {97, 1}, {97, 97}, {97, 1025}, {1025, 97}};
  for (DType dtype : kDTypes) {
    for (const auto& dims : head_dims) {
      for (const auto& len : lengths) {
        cases.push_back(Base(dtype, 2, len[0], len[1], 2, 2, dims[0], dims[1]));
      }
    }
    cases.push_back(Base(dtype, 1, 1, 1, 1, 1, 64, 64));
  }
  {
    Case c = Base(DType::kF32, 1, 1025, 1025, 1, 1, 64, 64);
    c.problem.causal = Causal::kBottomRight;
    cases.push_back(c);
    c = Base(DType::kBF16, 1, 1025, 1025, 1, 1, 59, 59);
    cases.push_back(c);
    c = Base(DType::kF16, 1, 1025, 1025, 2, 1, 111, 64);
    c.problem.layout = Layout::kBHMK;
    c.problem.causal = Causal::kTopLeft;
    cases.push_back(c);
  }

  // Every option on small ragged shapes (Mq != Mk both ways), in every dtype.
  for (DType dtype : kDTypes) {
    const auto small = [dtype](int64_t q_len, int64_t kv_len) {
      return Base(dtype, 2, q_len, kv_len, 2, 2, 64, 64);
    };
    // Causal, both alignments, Mq < Mk and Mq > Mk.
    for (Causal causal : {Causal::kTopLeft, Causal::kBottomRight}) {
      for (auto [mq, mk] : {std::pair<int64_t, int64_t>{97, 161}, {161, 97}}) {
        Case c = small(mq, mk);
        c.problem.causal = causal;
        cases.push_back(c);
      }
    }
    // Sliding windows: two-sided without causal (bottom-right aligned), one-sided, with causal.
    const int64_t windows[][3] = {{16, 8, 0}, {-1, 4, 0}, {16, -1, 2}, {0, 0, 1}, {5, 3, 1}};
    for (const auto& w : windows) {
      for (auto [mq, mk] : {std::pair<int64_t, int64_t>{97, 161}, {161, 97}}) {
        Case c = small(mq, mk);
        c.problem.window_left = w[0];
        c.problem.window_right = w[1];
        c.problem.causal = static_cast<Causal>(w[2]);
        cases.push_back(c);
      }
    }
    // kv_lengths: an empty batch element and a partial one; full and 1; with causal
    // bottom-right (aligned to kv_lengths[b]) and with a window.
    {
      Case c = small(97, 161);
      c.problem.has_kv_lengths = true;
      c.kv_lengths = {0, 50};
      cases.push_back(c);
      c.problem.causal = Causal::kBottomRight;
      c.kv_lengths = {161, 1};
      cases.push_back(c);
      c.kv_lengths = {130, 70};
      c.problem.window_left = 10;
      cases.push_back(c);
      c = small(161, 97);
      c.problem.has_kv_lengths = true;
      c.problem.causal = Causal::kTopLeft;
      c.kv_lengths = {40, 97};
      cases.push_back(c);
    }
    // Every bias broadcast, in every bias dtype.
    const int64_t bias_shapes[][4] = {{2, 2, 97, 161}, {1, 2, 97, 161}, {2, 1, 97, 161},
                                      {1, 1, 97, 161}, {1, 1, 1, 161},  {1, 1, 97, 1},
                                      {2, 2, 1, 1}};
    for (const auto& shape : bias_shapes) {
      for (DType bias_dtype : kDTypes) {
        Case c = small(97, 161);
        SetBias(&c, bias_dtype, shape[0], shape[1], shape[2], shape[3]);
        cases.push_back(c);
      }
    }
    // A query row whose bias is -inf everywhere sees no key: output 0, LSE -inf.
    {
      Case c = small(97, 161);
      SetBias(&c, dtype, 1, 1, 97, 161);
      c.neg_inf_bias_row = 5;
      c.q_chunk = 16;
      c.kv_chunk = 64;
      cases.push_back(c);
    }
    // GQA and MQA, both layouts.
    for (Layout layout : {Layout::kBMHK, Layout::kBHMK}) {
      Case c = Base(dtype, 2, 97, 161, 6, 2, 59, 59);
      c.problem.layout = layout;
      c.problem.causal = Causal::kBottomRight;
      cases.push_back(c);
      c = Base(dtype, 1, 161, 97, 4, 1, 64, 111);
      c.problem.layout = layout;
      SetBias(&c, DType::kF32, 1, 4, 161, 97);
      cases.push_back(c);
    }
    // BHMK with everything at once.
    {
      Case c = small(97, 161);
      c.problem.layout = Layout::kBHMK;
      c.problem.causal = Causal::kTopLeft;
      c.problem.window_left = 30;
      c.problem.has_kv_lengths = true;
      c.kv_lengths = {120, 161};
      SetBias(&c, dtype, 2, 1, 97, 161);
      c.q_chunk = 32;
      c.kv_chunk = 40;
      c.threads = 3;
      cases.push_back(c);
    }
    // Dv != D, without the LSE.
    for (auto [d, dv] : {std::pair<int64_t, int64_t>{64, 59}, {59, 111}}) {
      Case c = Base(dtype, 2, 97, 161, 2, 2, d, dv);
      c.problem.return_lse = false;
      cases.push_back(c);
    }
    // A sharp softmax (scale 1 at D = 64: scores ~ N(0, 64)) exercises the running-max rescale.
    {
      Case c = small(97, 1025);
      c.problem.scale = 1.0;
      c.kv_chunk = 100;
      cases.push_back(c);
    }
    // Chunk overrides: many tiles with ragged tails, odd sizes, one row or one key per tile.
    const int64_t chunks[][3] = {{16, 32, 1}, {7, 13, 2}, {97, 1, 3}, {1, 161, 2}, {33, 160, 2}};
    for (const auto& ch : chunks) {
      Case c = small(97, 161);
      c.problem.causal = Causal::kBottomRight;
      c.problem.window_left = 40;
      c.q_chunk = ch[0];
      c.kv_chunk = ch[1];
      c.threads = static_cast<int>(ch[2]);
      cases.push_back(c);
    }
    // Ragged batches (sequence offsets): empty sequences of both kinds, Mq_b above and below
    // Mk_b, bounds (129, 100) reached by one sequence each; chunks that cut every sequence into
    // many ragged tiles, and the planner's own; 1-3 threads. The reference is held per sequence
    // against dense runs in ragged_test.cc.
    {
      const std::vector<int64_t> q_lens = {1, 0, 37, 64, 129};
      const std::vector<int64_t> kv_lens = {50, 3, 0, 100, 61};
      const int64_t ragged_chunks[][3] = {{0, 0, 2},   {16, 32, 1}, {7, 13, 2},
                                          {129, 1, 3}, {1, 100, 2}, {33, 17, 3}};
      for (const auto& ch : ragged_chunks) {
        Case c = small(1, 1);
        testing::SetRagged(&c, q_lens, kv_lens);
        c.problem.causal = ch[2] == 1 ? Causal::kTopLeft : Causal::kBottomRight;
        c.problem.window_left = ch[2] == 3 ? 20 : -1;
        c.q_chunk = ch[0];
        c.kv_chunk = ch[1];
        c.threads = static_cast<int>(ch[2]);
        cases.push_back(c);
      }
      Case c = Base(dtype, 1, 1, 1, 6, 2, 59, 111);
      testing::SetRagged(&c, {129, 64, 1}, {1, 64, 200});
      c.problem.causal = Causal::kBottomRight;
      SetBias(&c, DType::kBF16, 3, 1, 129, 200);
      c.q_chunk = 20;
      c.kv_chunk = 30;
      c.threads = 3;
      cases.push_back(c);
      c = Base(dtype, 1, 1, 1, 2, 2, 64, 64);
      testing::SetRagged(&c, q_lens, kv_lens);
      SetBias(&c, DType::kF16, 1, 2, 129, 1);
      c.problem.window_left = 8;
      c.problem.window_right = 8;
      c.problem.return_lse = false;
      c.q_chunk = 32;
      c.kv_chunk = 16;
      cases.push_back(c);
    }
    // The baseline (SSE2) row kernels, which CpuRows() does not pick on an AVX2 machine.
    {
      Case c = small(97, 161);
      c.problem.causal = Causal::kTopLeft;
      SetBias(&c, dtype, 1, 2, 97, 161);
      c.kv_chunk = 50;
      c.baseline_rows = true;
      cases.push_back(c);
    }
  }
  return cases;
}

class CpuChunkedTest : public ::testing::TestWithParam<Case> {
 protected:
  void TearDown() override { SetCpuRowsForTesting(nullptr); }
};

TEST_P(CpuChunkedTest, MatchesReference) {
  const Case& c = GetParam();
  const AttentionProblem& p = c.problem;
  ASSERT_TRUE(ValidateProblem(p, ProblemLimits()).ok()) << p.DebugString();
  std::mt19937 rng(static_cast<uint32_t>(std::hash<std::string>()(CaseName(c))));
  OwnedTensors t = MakeTensors(p, &rng);
  t.kv_lengths = c.kv_lengths;
  t.q_offsets = c.q_offsets;
  t.kv_offsets = c.kv_offsets;
  if (c.neg_inf_bias_row >= 0) {
    ASSERT_EQ(p.bias_shape[0] * p.bias_shape[1], 1);
    ASSERT_EQ(p.bias_shape[2], p.q_len);
    for (int64_t j = 0; j < p.bias_shape[3]; ++j) {
      StoreFromFloat(t.bias.data(), p.bias_dtype, c.neg_inf_bias_row * p.bias_shape[3] + j,
                     -std::numeric_limits<float>::infinity());
    }
  }
  if (c.baseline_rows) SetCpuRowsForTesting(&CpuRowsBaseline());

  Capabilities caps;
  caps.variants = {Variant::kCpuChunked, Variant::kReference};
  caps.threads = c.threads;
  PlannerConfig config;
  config.forced_variant = Variant::kCpuChunked;
  config.q_chunk_override = c.q_chunk;
  config.kv_chunk_override = c.kv_chunk;
  const absl::StatusOr<Plan> plan = MakePlan(p, caps, int64_t{1} << 30, config);
  ASSERT_TRUE(plan.ok()) << plan.status();
  if (c.q_chunk > 0) {
    EXPECT_EQ(plan->q_chunk, std::min(c.q_chunk, p.q_len));
  }
  if (c.kv_chunk > 0) {
    EXPECT_EQ(plan->kv_chunk, std::min(c.kv_chunk, p.kv_len));
  }

  const absl::Status run = RunCpuChunked(*plan, p, t.View());
  ASSERT_TRUE(run.ok()) << run;
  ReferenceResult reference;
  const absl::Status ref = ReferenceAttention(p, t.View(), &reference);
  ASSERT_TRUE(ref.ok()) << ref;
  EXPECT_EQ(CompareWithReference(p, t, reference), "")
      << p.DebugString() << "\nplan: " << plan->reason;

  if (c.neg_inf_bias_row >= 0) {
    // The fully masked row is exactly 0 with LSE -inf in every (b, h).
    for (int64_t x = 0; x < p.v_head_dim; ++x) {
      EXPECT_EQ(
          LoadAsFloat(t.out.data(), p.dtype, c.neg_inf_bias_row * p.q_heads * p.v_head_dim + x),
          0.0f);
    }
    EXPECT_EQ(t.lse[c.neg_inf_bias_row], -std::numeric_limits<float>::infinity());
  }
}

INSTANTIATE_TEST_SUITE_P(Matrix, CpuChunkedTest, ::testing::ValuesIn(AllCases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return CaseName(info.param);
                         });

}  // namespace
}  // namespace attnd::kernels
