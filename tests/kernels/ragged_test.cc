// Ragged (packed, sequence-offset) problems through the float64 reference. The contract
// (kernels/problem.h) says a ragged batch is B independent dense problems packed end to end, so
// each sequence's rows must equal the dense reference of that sequence run alone (B = 1, Mq_b,
// Mk_b): same arithmetic in the same order, so equal to the last bit. That catches a mask aligned
// to the bounds instead of Mq_b and Mk_b (sequence 0 below, 1 query and 50 keys under a bound of
// 129 queries, would see no key bottom-right aligned), a bias read at packed rows, and an LSE
// laid out [B, Hq, q_len]. Plus a case worked by hand, the equal-length case against the dense
// layout byte for byte, and the run-time checks of the offsets.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "kernels/cpu_attention.h"
#include "kernels/planner.h"
#include "kernels/problem.h"
#include "tests/kernels/test_util.h"

namespace attnd::kernels {
namespace {

using testing::CompareWithReference;
using testing::MakeTensors;
using testing::OwnedTensors;
using testing::ProblemCase;
using testing::SetBias;
using testing::SetRagged;

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// Lengths with an empty sequence of each kind (no queries; queries but no keys), Mq_b < Mk_b,
// Mq_b > Mk_b, and bounds (129, 100) that only some sequences reach.
const std::vector<int64_t> kQueriesA = {1, 0, 37, 64, 129};
const std::vector<int64_t> kKeysA = {50, 3, 0, 100, 61};
// Mq_b > Mk_b, equal, Mq_b < Mk_b.
const std::vector<int64_t> kQueriesB = {129, 64, 1};
const std::vector<int64_t> kKeysB = {1, 64, 200};

ProblemCase RaggedCase(DType dtype, const std::vector<int64_t>& q_lens,
                       const std::vector<int64_t>& kv_lens, int64_t q_heads = 2,
                       int64_t kv_heads = 2, int64_t d = 64, int64_t dv = 64) {
  ProblemCase c = testing::BaseCase(dtype, 1, 1, 1, q_heads, kv_heads, d, dv);
  SetRagged(&c, q_lens, kv_lens);
  return c;
}

std::vector<ProblemCase> AllCases() {
  std::vector<ProblemCase> cases;
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (Causal causal : {Causal::kNone, Causal::kTopLeft, Causal::kBottomRight}) {
      for (int set = 0; set < 2; ++set) {
        ProblemCase c =
            set == 0 ? RaggedCase(dtype, kQueriesA, kKeysA) : RaggedCase(dtype, kQueriesB, kKeysB);
        c.problem.causal = causal;
        cases.push_back(c);
      }
    }
    // Sliding windows: two-sided bottom-right aligned, with causal both ways.
    const int64_t windows[][3] = {{16, 8, 0}, {5, 3, 2}, {-1, 4, 1}, {20, -1, 2}};
    for (const auto& w : windows) {
      ProblemCase c = RaggedCase(dtype, kQueriesA, kKeysA);
      c.problem.window_left = w[0];
      c.problem.window_right = w[1];
      c.problem.causal = static_cast<Causal>(w[2]);
      cases.push_back(c);
    }
    // GQA with D != Dv; and without the LSE.
    {
      ProblemCase c = RaggedCase(dtype, kQueriesA, kKeysA, 6, 2, 59, 111);
      c.problem.causal = Causal::kBottomRight;
      cases.push_back(c);
      c = RaggedCase(dtype, kQueriesB, kKeysB, 6, 2, 111, 59);
      c.problem.return_lse = false;
      cases.push_back(c);
    }
    // Bias in every dtype, full and broadcast on each axis; full sizes are the bounds
    // [B 5, Hq 2, q_len 129, kv_len 100].
    const int64_t bias_shapes[][4] = {
        {5, 2, 129, 100}, {1, 2, 129, 100}, {5, 1, 1, 100}, {1, 1, 129, 1}, {5, 2, 1, 1}};
    for (const auto& shape : bias_shapes) {
      for (DType bias_dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
        ProblemCase c = RaggedCase(dtype, kQueriesA, kKeysA);
        c.problem.causal = Causal::kBottomRight;
        SetBias(&c, bias_dtype, shape[0], shape[1], shape[2], shape[3]);
        cases.push_back(c);
      }
    }
  }
  return cases;
}

// Sequence b of a ragged case as a dense B = 1 problem with its own tensors (a copy of its
// rows, and of its block of the bias).
struct DenseSequence {
  AttentionProblem problem;
  OwnedTensors tensors;
};

DenseSequence Slice(const ProblemCase& c, const OwnedTensors& packed, int64_t b) {
  const AttentionProblem& p = c.problem;
  const int64_t q0 = c.q_offsets[b];
  const int64_t kv0 = c.kv_offsets[b];
  const int64_t mq = c.q_offsets[b + 1] - q0;
  const int64_t mk = c.kv_offsets[b + 1] - kv0;
  DenseSequence s;
  s.problem = p;
  s.problem.ragged = false;
  s.problem.total_q = 0;
  s.problem.total_kv = 0;
  s.problem.batch = 1;
  s.problem.q_len = mq;
  s.problem.kv_len = mk;
  // Packed BMHK rows of one sequence are contiguous: [Mq_b, Hq, D] from row q0.
  const size_t e = DTypeSize(p.dtype);
  auto rows = [e](const std::vector<unsigned char>& from, int64_t row0, int64_t n, int64_t width) {
    const auto begin = from.begin() + static_cast<std::ptrdiff_t>(row0 * width * e);
    return std::vector<unsigned char>(begin, begin + static_cast<std::ptrdiff_t>(n * width * e));
  };
  s.tensors.q = rows(packed.q, q0, mq, p.q_heads * p.head_dim);
  s.tensors.k = rows(packed.k, kv0, mk, p.kv_heads * p.head_dim);
  s.tensors.v = rows(packed.v, kv0, mk, p.kv_heads * p.v_head_dim);
  if (p.has_bias) {
    // bias [bB, bH, bMq, bMk] padded to the bounds → [1, bH, 1 or Mq_b, 1 or Mk_b].
    const int64_t* full = p.bias_shape;
    int64_t* shape = s.problem.bias_shape;
    shape[0] = 1;
    shape[2] = full[2] == 1 ? 1 : mq;
    shape[3] = full[3] == 1 ? 1 : mk;
    const size_t be = DTypeSize(p.bias_dtype);
    const int64_t bb = full[0] == 1 ? 0 : b;
    for (int64_t h = 0; h < full[1]; ++h) {
      for (int64_t i = 0; i < shape[2]; ++i) {
        const int64_t from = ((bb * full[1] + h) * full[2] + i) * full[3];
        const auto begin = packed.bias.begin() + static_cast<std::ptrdiff_t>(from * be);
        s.tensors.bias.insert(s.tensors.bias.end(), begin,
                              begin + static_cast<std::ptrdiff_t>(shape[3] * be));
      }
    }
  }
  return s;
}

// Counts elements of `got` (ragged) and `want` (dense) that differ; describes the first.
class Differences {
 public:
  void Check(double got, double want, const char* what, int64_t b, int64_t h, int64_t i) {
    if (got == want) return;  // -inf == -inf too
    if (count_++ == 0) {
      first_ << what << " of sequence " << b << ", head " << h << ", row " << i << ": ragged "
             << got << ", dense " << want;
    }
  }
  std::string Summary() const {
    return count_ == 0 ? "" : std::to_string(count_) + " differ; first: " + first_.str();
  }

 private:
  int64_t count_ = 0;
  std::ostringstream first_;
};

class RaggedReferenceTest : public ::testing::TestWithParam<ProblemCase> {};

TEST_P(RaggedReferenceTest, EachSequenceEqualsItsDenseRun) {
  const ProblemCase& c = GetParam();
  const AttentionProblem& p = c.problem;
  ASSERT_TRUE(ValidateProblem(p, ProblemLimits()).ok()) << p.DebugString();
  ASSERT_TRUE(ValidateSequenceOffsets(p, c.q_offsets.data(), c.kv_offsets.data()).ok());
  std::mt19937 rng(static_cast<uint32_t>(std::hash<std::string>()(testing::CaseName(c))));
  OwnedTensors t = MakeTensors(p, &rng);
  t.q_offsets = c.q_offsets;
  t.kv_offsets = c.kv_offsets;

  ReferenceResult ragged;
  const absl::Status ran = ReferenceAttention(p, t.View(), &ragged);
  ASSERT_TRUE(ran.ok()) << ran;
  ASSERT_EQ(static_cast<int64_t>(ragged.out.size()), p.total_q * p.q_heads * p.v_head_dim);
  ASSERT_EQ(static_cast<int64_t>(ragged.lse.size()), p.total_q * p.q_heads);

  Differences diff;
  const int64_t dv = p.v_head_dim;
  for (int64_t b = 0; b < p.batch; ++b) {
    const int64_t q0 = c.q_offsets[b];
    const int64_t mq = c.q_offsets[b + 1] - q0;
    const int64_t mk = c.kv_offsets[b + 1] - c.kv_offsets[b];
    if (mq == 0) continue;  // nothing of it in out or lse
    ReferenceResult dense;
    if (mk > 0) {
      DenseSequence s = Slice(c, t, b);
      ASSERT_TRUE(ValidateProblem(s.problem, ProblemLimits()).ok()) << s.problem.DebugString();
      const absl::Status dense_ran = ReferenceAttention(s.problem, s.tensors.View(), &dense);
      ASSERT_TRUE(dense_ran.ok()) << dense_ran;
    } else {
      // No keys (a dense problem cannot have Mk = 0): every row 0 with LSE -inf.
      dense.out.assign(static_cast<size_t>(mq * p.q_heads * dv), 0.0);
      dense.lse.assign(static_cast<size_t>(mq * p.q_heads), kNegInf);
    }
    for (int64_t h = 0; h < p.q_heads; ++h) {
      for (int64_t i = 0; i < mq; ++i) {
        for (int64_t x = 0; x < dv; ++x) {
          diff.Check(ragged.out[((q0 + i) * p.q_heads + h) * dv + x],
                     dense.out[(i * p.q_heads + h) * dv + x], "out", b, h, i);
        }
        // Sequence b's LSE block [Hq, Mq_b] starts at Hq·q_offsets[b].
        diff.Check(ragged.lse[p.q_heads * q0 + h * mq + i], dense.lse[h * mq + i], "lse", b, h, i);
      }
    }
  }
  EXPECT_EQ(diff.Summary(), "") << p.DebugString();

  // RunReference writes the same packed result in the problem's dtype (out was NaN before).
  ASSERT_TRUE(RunReference(p, t.View()).ok());
  EXPECT_EQ(CompareWithReference(p, t, ragged), "");
}

INSTANTIATE_TEST_SUITE_P(Matrix, RaggedReferenceTest, ::testing::ValuesIn(AllCases()),
                         [](const ::testing::TestParamInfo<ProblemCase>& info) {
                           return testing::CaseName(info.param);
                         });

// By hand: Hq 2, Hkv 1, D = Dv = 1, scale 1, k = 1, q = 1 in head 0 and 2 in head 1, so every
// score of head h is h + 1 and a row's output is the mean of the values it sees.
//   sequence 0: Mq 2, Mk 1, v (4).    Bottom-right offset Mk_b - Mq_b = -1: row 0 sees no key
//               (0, LSE -inf), row 1 sees key 0 (4, LSE h + 1).
//   sequence 1: Mq 1, Mk 3, v (1, 2, 4). Offset 2: row 0 sees all three (7/3, h + 1 + log 3).
// Aligned to the bounds (Mq 2, Mk 3: offset 1) row 0 of sequence 0 would see key 0 instead.
// out [3 rows, 2 heads]; lse: sequence 0's [2 heads, 2 rows] at 0, sequence 1's [2, 1] at 2·2.
TEST(RaggedReferenceHandTest, CausalBottomRightPerSequence) {
  AttentionProblem p;
  p.ragged = true;
  p.batch = 2;
  p.q_len = 2;
  p.kv_len = 3;
  p.total_q = 3;
  p.total_kv = 4;
  p.q_heads = 2;
  p.kv_heads = 1;
  p.head_dim = 1;
  p.v_head_dim = 1;
  p.scale = 1.0;
  p.causal = Causal::kBottomRight;
  p.return_lse = true;
  const std::vector<float> q = {1, 2, 1, 2, 1, 2};  // [3, 2, 1]
  const std::vector<float> k = {1, 1, 1, 1};        // [4, 1, 1]
  const std::vector<float> v = {4, 1, 2, 4};
  const std::vector<int64_t> q_offsets = {0, 2, 3};
  const std::vector<int64_t> kv_offsets = {0, 1, 4};
  AttentionTensors t;
  t.q = q.data();
  t.k = k.data();
  t.v = v.data();
  t.q_offsets = q_offsets.data();
  t.kv_offsets = kv_offsets.data();
  ReferenceResult r;
  ASSERT_TRUE(ReferenceAttention(p, t, &r).ok());
  const double want_out[] = {0, 0, 4, 4, 7.0 / 3.0, 7.0 / 3.0};
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(r.out[i], want_out[i], 1e-12) << "out " << i;
  const double want_lse[] = {kNegInf, 1, kNegInf, 2, 1 + std::log(3.0), 2 + std::log(3.0)};
  for (int i = 0; i < 6; ++i) {
    if (std::isinf(want_lse[i])) {
      EXPECT_EQ(r.lse[i], kNegInf) << "lse " << i;
    } else {
      EXPECT_NEAR(r.lse[i], want_lse[i], 1e-12) << "lse " << i;
    }
  }
}

// B_e equal-length sequences packed from offset 0 are the dense problem's layout: the same bytes
// give the same out and LSE, element for element, in the reference and in cpu_chunked.
TEST(RaggedLayoutTest, EqualLengthsAreTheDenseLayout) {
  ProblemCase dense = testing::BaseCase(DType::kBF16, 3, 17, 29, 6, 2, 64, 59);
  dense.problem.causal = Causal::kBottomRight;
  dense.problem.window_left = 7;
  SetBias(&dense, DType::kF16, 3, 1, 17, 29);
  ProblemCase ragged = dense;
  SetRagged(&ragged, {17, 17, 17}, {29, 29, 29});
  ASSERT_EQ(ragged.problem.q_elements(), dense.problem.q_elements());
  ASSERT_EQ(ragged.problem.lse_elements(), dense.problem.lse_elements());
  std::mt19937 rng(7);
  OwnedTensors t = MakeTensors(dense.problem, &rng);
  OwnedTensors tr = t;
  tr.q_offsets = ragged.q_offsets;
  tr.kv_offsets = ragged.kv_offsets;

  ReferenceResult want, got;
  ASSERT_TRUE(ReferenceAttention(dense.problem, t.View(), &want).ok());
  ASSERT_TRUE(ReferenceAttention(ragged.problem, tr.View(), &got).ok());
  EXPECT_EQ(got.out, want.out);
  EXPECT_EQ(got.lse, want.lse);

  Capabilities caps;
  caps.variants = {Variant::kCpuChunked};
  caps.threads = 2;
  PlannerConfig config;
  config.q_chunk_override = 5;
  config.kv_chunk_override = 7;
  const absl::StatusOr<Plan> plan = MakePlan(dense.problem, caps, int64_t{1} << 30, config);
  const absl::StatusOr<Plan> ragged_plan = MakePlan(ragged.problem, caps, int64_t{1} << 30, config);
  ASSERT_TRUE(plan.ok() && ragged_plan.ok());
  EXPECT_EQ(ragged_plan->workspace_bytes, plan->workspace_bytes);
  ASSERT_TRUE(RunCpuChunked(*plan, dense.problem, t.View()).ok());
  ASSERT_TRUE(RunCpuChunked(*ragged_plan, ragged.problem, tr.View()).ok());
  EXPECT_EQ(tr.out, t.out);
  EXPECT_EQ(tr.lse, t.lse);
}

// The kernels check the offsets themselves (CheckRunInputs), naming the array and the index.
TEST(RaggedRunChecksTest, RefusesMissingAndBadOffsets) {
  ProblemCase c = RaggedCase(DType::kF32, {3, 2}, {4, 1});
  std::mt19937 rng(3);
  OwnedTensors t = MakeTensors(c.problem, &rng);
  ReferenceResult r;
  absl::Status s = ReferenceAttention(c.problem, t.View(), &r);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "problem.ragged but tensors.q_offsets is null");

  t.q_offsets = c.q_offsets;
  t.kv_offsets = {0, 4, 6};  // total_kv is 5
  s = RunReference(c.problem, t.View());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "kv_offsets[2] = 6 must equal total_kv = 5");

  t.kv_offsets = c.kv_offsets;
  t.q_offsets = {0, 4, 5};  // sequence 0 has 4 rows, more than the bound q_len = 3
  Capabilities caps;
  caps.variants = {Variant::kCpuChunked};
  const absl::StatusOr<Plan> plan = MakePlan(c.problem, caps, int64_t{1} << 30, PlannerConfig());
  ASSERT_TRUE(plan.ok()) << plan.status();
  s = RunCpuChunked(*plan, c.problem, t.View());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "sequence 0 has q_offsets[1] - q_offsets[0] = 4 - 0 = 4 rows, more than q_len = 3");
}

// Sampled rows apply per sequence: rows [1, min(40, Mq_b)) of each, the rest left 0.
TEST(RaggedReferenceRowsTest, RowRangeAppliesPerSequence) {
  ProblemCase c = RaggedCase(DType::kF16, kQueriesA, kKeysA);
  c.problem.causal = Causal::kBottomRight;
  std::mt19937 rng(11);
  OwnedTensors t = MakeTensors(c.problem, &rng);
  t.q_offsets = c.q_offsets;
  t.kv_offsets = c.kv_offsets;
  ReferenceResult all, some;
  ASSERT_TRUE(ReferenceAttention(c.problem, t.View(), &all).ok());
  ASSERT_TRUE(ReferenceAttention(c.problem, t.View(), &some, 1, 40).ok());
  const int64_t hq = c.problem.q_heads;
  const int64_t dv = c.problem.v_head_dim;
  for (int64_t b = 0; b < c.problem.batch; ++b) {
    const int64_t q0 = c.q_offsets[b];
    const int64_t mq = c.q_offsets[b + 1] - q0;
    for (int64_t i = 0; i < mq; ++i) {
      const bool sampled = i >= 1 && i < 40;
      for (int64_t h = 0; h < hq; ++h) {
        const int64_t at = ((q0 + i) * hq + h) * dv;
        EXPECT_EQ(some.out[at], sampled ? all.out[at] : 0.0) << b << " " << i << " " << h;
        const int64_t lse_at = hq * q0 + h * mq + i;
        EXPECT_EQ(some.lse[lse_at], sampled ? all.lse[lse_at] : 0.0) << b << " " << i;
      }
    }
  }
  EXPECT_FALSE(ReferenceAttention(c.problem, t.View(), &some, 0, 130).ok());  // past q_len 129
}

}  // namespace
}  // namespace attnd::kernels
