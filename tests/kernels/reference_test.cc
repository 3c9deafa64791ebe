// The float64 reference against cases worked out by hand. Most use D = 1 and equal scores, so a
// row's output is the plain mean of the values it sees and its LSE is s + log(#keys).
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "kernels/cpu_attention.h"
#include "kernels/dtype_convert.h"
#include "kernels/problem.h"
#include "tests/kernels/test_util.h"

namespace attnd::kernels {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// A small f32 problem with its data as floats (all BMHK unless a test changes it).
struct Small {
  AttentionProblem p;
  std::vector<float> q, k, v, bias;
  std::vector<int64_t> kv_lengths;

  Small(int64_t batch, int64_t q_len, int64_t kv_len, int64_t q_heads, int64_t kv_heads) {
    p.batch = batch;
    p.q_len = q_len;
    p.kv_len = kv_len;
    p.q_heads = q_heads;
    p.kv_heads = kv_heads;
    p.head_dim = 1;
    p.v_head_dim = 1;
    p.scale = 1.0;
    p.return_lse = true;
    // Every score is 1 unless a test sets q or k.
    q.assign(static_cast<size_t>(p.q_elements()), 1.0f);
    k.assign(static_cast<size_t>(p.k_elements()), 1.0f);
    v.assign(static_cast<size_t>(p.v_elements()), 1.0f);
  }

  ReferenceResult Run() {
    AttentionTensors t;
    t.q = q.data();
    t.k = k.data();
    t.v = v.data();
    if (p.has_bias) t.bias = bias.data();
    if (p.has_kv_lengths) t.kv_lengths = kv_lengths.data();
    std::vector<float> out(static_cast<size_t>(p.out_elements()));
    std::vector<float> lse(static_cast<size_t>(p.lse_elements()));
    t.out = out.data();
    t.lse = lse.data();
    ReferenceResult result;
    const absl::Status status = ReferenceAttention(p, t, &result);
    EXPECT_TRUE(status.ok()) << status;
    return result;
  }
};

// 1 query, 2 keys, D = 1: q = 2, k = (0.5, 1) give scores (1, 2); softmax weights
// 1/(1+e) and e/(1+e). With v = (1, -1): out = (1 - e)/(1 + e) = -tanh(1/2),
// LSE = log(e + e²) = 1 + log(1 + e).
TEST(ReferenceTest, OneQueryTwoKeys) {
  Small s(1, 1, 2, 1, 1);
  s.q = {2.0f};
  s.k = {0.5f, 1.0f};
  s.v = {1.0f, -1.0f};
  const ReferenceResult r = s.Run();
  EXPECT_NEAR(r.out[0], -std::tanh(0.5), 1e-12);
  EXPECT_NEAR(r.lse[0], 1.0 + std::log(1.0 + std::exp(1.0)), 1e-12);
}

// The scale multiplies q·k: scale 0.5 turns the scores above into (0.5, 1), so
// out = (1 - e^0.5)/(1 + e^0.5) = -tanh(1/4) and LSE = 0.5 + log(1 + e^0.5).
TEST(ReferenceTest, ScaleMultipliesScores) {
  Small s(1, 1, 2, 1, 1);
  s.p.scale = 0.5;
  s.q = {2.0f};
  s.k = {0.5f, 1.0f};
  s.v = {1.0f, -1.0f};
  const ReferenceResult r = s.Run();
  EXPECT_NEAR(r.out[0], -std::tanh(0.25), 1e-12);
  EXPECT_NEAR(r.lse[0], 0.5 + std::log(1.0 + std::exp(0.5)), 1e-12);
}

// Mq = 2, Mk = 3, equal scores (1), v = (1, 2, 4).
//   top-left:     row 0 sees key 0 → 1,            row 1 sees keys 0-1 → 1.5
//   bottom-right: offset Mk - Mq = 1: row 0 sees keys 0-1 → 1.5, row 1 sees 0-2 → 7/3
TEST(ReferenceTest, CausalAlignmentsWithMoreKeys) {
  Small s(1, 2, 3, 1, 1);
  s.v = {1.0f, 2.0f, 4.0f};
  s.p.causal = Causal::kTopLeft;
  ReferenceResult r = s.Run();
  EXPECT_DOUBLE_EQ(r.out[0], 1.0);
  EXPECT_DOUBLE_EQ(r.out[1], 1.5);
  EXPECT_NEAR(r.lse[0], 1.0, 1e-12);
  EXPECT_NEAR(r.lse[1], 1.0 + std::log(2.0), 1e-12);
  s.p.causal = Causal::kBottomRight;
  r = s.Run();
  EXPECT_DOUBLE_EQ(r.out[0], 1.5);
  EXPECT_NEAR(r.out[1], 7.0 / 3.0, 1e-12);
  EXPECT_NEAR(r.lse[1], 1.0 + std::log(3.0), 1e-12);
}

// Mq = 3, Mk = 2, v = (1, 2).
//   top-left:     row 0 → key 0 → 1, rows 1 and 2 → keys 0-1 → 1.5
//   bottom-right: offset -1: row 0 sees no key → 0 and LSE -inf, row 1 → 1, row 2 → 1.5
TEST(ReferenceTest, CausalAlignmentsWithMoreQueries) {
  Small s(1, 3, 2, 1, 1);
  s.v = {1.0f, 2.0f};
  s.p.causal = Causal::kTopLeft;
  ReferenceResult r = s.Run();
  EXPECT_DOUBLE_EQ(r.out[0], 1.0);
  EXPECT_DOUBLE_EQ(r.out[1], 1.5);
  EXPECT_DOUBLE_EQ(r.out[2], 1.5);
  s.p.causal = Causal::kBottomRight;
  r = s.Run();
  EXPECT_EQ(r.out[0], 0.0);
  EXPECT_EQ(r.lse[0], kNegInf);
  EXPECT_DOUBLE_EQ(r.out[1], 1.0);
  EXPECT_DOUBLE_EQ(r.out[2], 1.5);
}

// Mq = Mk = 5, v = (1, 2, 4, 8, 16), window left 1 right 1 (no causal): row i sees
// keys i-1..i+1: row 0 → 1.5, row 2 → 14/3, row 4 → 12. With causal top-left as well, row i sees
// i-1..i: row 0 → 1, row 3 → 6.
TEST(ReferenceTest, SlidingWindow) {
  Small s(1, 5, 5, 1, 1);
  s.v = {1.0f, 2.0f, 4.0f, 8.0f, 16.0f};
  s.p.window_left = 1;
  s.p.window_right = 1;
  ReferenceResult r = s.Run();
  EXPECT_DOUBLE_EQ(r.out[0], 1.5);
  EXPECT_NEAR(r.out[2], 14.0 / 3.0, 1e-12);
  EXPECT_DOUBLE_EQ(r.out[4], 12.0);
  EXPECT_NEAR(r.lse[2], 1.0 + std::log(3.0), 1e-12);
  s.p.causal = Causal::kTopLeft;
  r = s.Run();
  EXPECT_DOUBLE_EQ(r.out[0], 1.0);
  EXPECT_DOUBLE_EQ(r.out[3], 6.0);
}

// Without causal the window is aligned bottom-right: Mq = 2, Mk = 5, window [0, 0] puts row i on
// exactly key i + 3: row 0 → v3 = 8, row 1 → v4 = 16. Left-only window 1 (right unbounded):
// row 0 sees keys 2..4 → 28/3.
TEST(ReferenceTest, WindowWithoutCausalIsBottomRightAligned) {
  Small s(1, 2, 5, 1, 1);
  s.v = {1.0f, 2.0f, 4.0f, 8.0f, 16.0f};
  s.p.window_left = 0;
  s.p.window_right = 0;
  ReferenceResult r = s.Run();
  EXPECT_DOUBLE_EQ(r.out[0], 8.0);
  EXPECT_DOUBLE_EQ(r.out[1], 16.0);
  EXPECT_NEAR(r.lse[0], 1.0, 1e-12);
  s.p.window_left = 1;
  s.p.window_right = -1;
  r = s.Run();
  EXPECT_NEAR(r.out[0], 28.0 / 3.0, 1e-12);
}

// kv_lengths = (2, 0), Mq = 1, Mk = 3, v = (1, 2, 4) in both batch elements: b0 averages keys
// 0-1 → 1.5; b1 sees nothing → 0, LSE -inf.
TEST(ReferenceTest, KvLengthsMaskPadding) {
  Small s(2, 1, 3, 1, 1);
  s.v = {1.0f, 2.0f, 4.0f, 1.0f, 2.0f, 4.0f};
  s.p.has_kv_lengths = true;
  s.kv_lengths = {2, 0};
  const ReferenceResult r = s.Run();
  EXPECT_DOUBLE_EQ(r.out[0], 1.5);
  EXPECT_NEAR(r.lse[0], 1.0 + std::log(2.0), 1e-12);
  EXPECT_EQ(r.out[1], 0.0);
  EXPECT_EQ(r.lse[1], kNegInf);
}

// Bottom-right causal aligns to kv_lengths[b]: Mq = 2, Mk = 3, kv_lengths = (3, 1).
//   b0: offset 3 - 2 = 1: row 0 sees keys 0-1 → 1.5, row 1 keys 0-2 → 7/3
//   b1: offset 1 - 2 = -1: row 0 sees nothing → 0 / -inf, row 1 sees key 0 → 1
TEST(ReferenceTest, BottomRightUsesKvLengths) {
  Small s(2, 2, 3, 1, 1);
  s.v = {1.0f, 2.0f, 4.0f, 1.0f, 2.0f, 4.0f};
  s.p.has_kv_lengths = true;
  s.kv_lengths = {3, 1};
  s.p.causal = Causal::kBottomRight;
  const ReferenceResult r = s.Run();
  EXPECT_DOUBLE_EQ(r.out[0], 1.5);
  EXPECT_NEAR(r.out[1], 7.0 / 3.0, 1e-12);
  EXPECT_EQ(r.out[2], 0.0);
  EXPECT_EQ(r.lse[2], kNegInf);
  EXPECT_DOUBLE_EQ(r.out[3], 1.0);
}

// Bias (0, log 3) on equal scores weighs the keys 1/4 and 3/4: v = (4, 8) → 7, LSE = 1 + log 4.
// The [1, 1, 1, 2] bias broadcasts to every (b, h) of B = 2, H = 2.
TEST(ReferenceTest, BiasBroadcastsOverBatchAndHeads) {
  Small s(2, 1, 2, 2, 2);
  // v [B=2, Mk=2, H=2, 1]: 4 for key 0 and 8 for key 1 in every (b, h).
  for (int b = 0; b < 2; ++b) {
    s.v[b * 4 + 0] = 4.0f;  // j = 0, h = 0
    s.v[b * 4 + 1] = 4.0f;  // j = 0, h = 1
    s.v[b * 4 + 2] = 8.0f;  // j = 1, h = 0
    s.v[b * 4 + 3] = 8.0f;  // j = 1, h = 1
  }
  s.p.has_bias = true;
  s.p.bias_shape[3] = 2;
  const float log3 = static_cast<float>(std::log(3.0));
  s.bias = {0.0f, log3};
  const ReferenceResult r = s.Run();
  // With bias exactly log3f the weights are 1/(1 + 3') and 3'/(1 + 3'), 3' = e^log3f.
  const double three = std::exp(static_cast<double>(log3));
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(r.out[i], (4.0 + 8.0 * three) / (1.0 + three), 1e-12) << i;
    EXPECT_NEAR(r.out[i], 7.0, 1e-6) << i;
    EXPECT_NEAR(r.lse[i], 1.0 + std::log(4.0), 1e-6) << i;
  }
}

// A row whose bias is -inf on every key sees nothing: 0 and LSE -inf; the other row is normal.
TEST(ReferenceTest, FullyMaskedRowByBias) {
  Small s(1, 2, 2, 1, 1);
  s.v = {2.0f, 6.0f};
  s.p.has_bias = true;
  s.p.bias_shape[2] = 2;
  s.p.bias_shape[3] = 2;
  const float inf = std::numeric_limits<float>::infinity();
  s.bias = {0.0f, -inf, -inf, -inf};
  const ReferenceResult r = s.Run();
  EXPECT_DOUBLE_EQ(r.out[0], 2.0);  // row 0 sees only key 0
  EXPECT_NEAR(r.lse[0], 1.0, 1e-12);
  EXPECT_EQ(r.out[1], 0.0);
  EXPECT_EQ(r.lse[1], kNegInf);
}

// GQA: Hq = 4, Hkv = 2, so q heads 0-1 read kv head 0 and q heads 2-3 read kv head 1.
// v head 0 = (1, 3), head 1 = (10, 30) with equal scores: outputs 2, 2, 20, 20.
TEST(ReferenceTest, GroupedQueryHeads) {
  Small s(1, 1, 2, 4, 2);
  s.v = {1.0f, 10.0f, 3.0f, 30.0f};  // [1, Mk=2, Hkv=2, 1]
  const ReferenceResult r = s.Run();
  EXPECT_DOUBLE_EQ(r.out[0], 2.0);
  EXPECT_DOUBLE_EQ(r.out[1], 2.0);
  EXPECT_DOUBLE_EQ(r.out[2], 20.0);
  EXPECT_DOUBLE_EQ(r.out[3], 20.0);
}

// BHMK holds the same problem with the sequence and head axes swapped; so must the output.
TEST(ReferenceTest, LayoutsAgree) {
  AttentionProblem p;
  p.batch = 2;
  p.q_len = 5;
  p.kv_len = 7;
  p.q_heads = 3;
  p.kv_heads = 3;
  p.head_dim = 4;
  p.v_head_dim = 3;
  p.scale = 0.5;
  p.causal = Causal::kBottomRight;
  p.return_lse = true;
  std::mt19937 rng(7);
  testing::OwnedTensors bmhk = testing::MakeTensors(p, &rng);
  // [B, M, H, X] → [B, H, M, X]
  auto to_bhmk = [](const std::vector<unsigned char>& src, int64_t batch, int64_t seq,
                    int64_t heads, int64_t dim) {
    std::vector<unsigned char> dst(src.size());
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t m = 0; m < seq; ++m)
        for (int64_t h = 0; h < heads; ++h)
          for (int64_t x = 0; x < dim * 4; ++x)
            dst[(((b * heads + h) * seq + m) * dim) * 4 + x] =
                src[(((b * seq + m) * heads + h) * dim) * 4 + x];
    return dst;
  };
  testing::OwnedTensors bhmk = bmhk;
  bhmk.q = to_bhmk(bmhk.q, 2, 5, 3, 4);
  bhmk.k = to_bhmk(bmhk.k, 2, 7, 3, 4);
  bhmk.v = to_bhmk(bmhk.v, 2, 7, 3, 3);
  ReferenceResult a, b;
  ASSERT_TRUE(ReferenceAttention(p, bmhk.View(), &a).ok());
  AttentionProblem q = p;
  q.layout = Layout::kBHMK;
  ASSERT_TRUE(ReferenceAttention(q, bhmk.View(), &b).ok());
  for (int64_t bb = 0; bb < 2; ++bb)
    for (int64_t m = 0; m < 5; ++m)
      for (int64_t h = 0; h < 3; ++h)
        for (int64_t x = 0; x < 3; ++x)
          EXPECT_EQ(a.out[((bb * 5 + m) * 3 + h) * 3 + x], b.out[((bb * 3 + h) * 5 + m) * 3 + x]);
  EXPECT_EQ(a.lse, b.lse);
}

// Row sampling computes exactly the full run's rows inside the range and leaves the rest 0.
TEST(ReferenceTest, RowRangeSampling) {
  AttentionProblem p;
  p.batch = 1;
  p.q_len = 9;
  p.kv_len = 6;
  p.q_heads = 2;
  p.kv_heads = 1;
  p.head_dim = 3;
  p.v_head_dim = 2;
  p.scale = 0.7;
  p.return_lse = true;
  std::mt19937 rng(11);
  testing::OwnedTensors t = testing::MakeTensors(p, &rng);
  ReferenceResult full, part;
  ASSERT_TRUE(ReferenceAttention(p, t.View(), &full).ok());
  ASSERT_TRUE(ReferenceAttention(p, t.View(), &part, 3, 5).ok());
  for (int64_t i = 0; i < 9; ++i) {
    for (int64_t h = 0; h < 2; ++h) {
      const bool inside = i >= 3 && i < 5;
      for (int64_t x = 0; x < 2; ++x) {
        const size_t at = static_cast<size_t>((i * 2 + h) * 2 + x);
        EXPECT_EQ(part.out[at], inside ? full.out[at] : 0.0) << i;
      }
      EXPECT_EQ(part.lse[h * 9 + i], inside ? full.lse[h * 9 + i] : 0.0) << i;
    }
  }
  EXPECT_EQ(ReferenceAttention(p, t.View(), &part, 5, 3).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReferenceAttention(p, t.View(), &part, 0, 10).code(),
            absl::StatusCode::kInvalidArgument);
}

// RunReference rounds the float64 result into the problem's dtype, and the LSE into f32.
TEST(ReferenceTest, RunReferenceWritesTheDtype) {
  AttentionProblem p;
  p.dtype = DType::kF16;
  p.batch = 1;
  p.q_len = 1;
  p.kv_len = 2;
  p.q_heads = 1;
  p.kv_heads = 1;
  p.head_dim = 1;
  p.v_head_dim = 1;
  p.scale = 1.0;
  p.return_lse = true;
  // q = 2, k = (0.5, 1), v = (1, -1) as in OneQueryTwoKeys: out = -tanh(1/2).
  const uint16_t q[] = {FloatToHalf(2.0f)};
  const uint16_t k[] = {FloatToHalf(0.5f), FloatToHalf(1.0f)};
  const uint16_t v[] = {FloatToHalf(1.0f), FloatToHalf(-1.0f)};
  uint16_t out[1] = {0};
  float lse[1] = {0};
  AttentionTensors t;
  t.q = q;
  t.k = k;
  t.v = v;
  t.out = out;
  t.lse = lse;
  ASSERT_TRUE(RunReference(p, t).ok());
  EXPECT_EQ(out[0], FloatToHalf(static_cast<float>(-std::tanh(0.5))));
  EXPECT_FLOAT_EQ(lse[0], static_cast<float>(1.0 + std::log(1.0 + std::exp(1.0))));
}

TEST(ReferenceTest, RejectsBadTensors) {
  Small s(1, 1, 2, 1, 1);
  s.p.has_kv_lengths = true;
  s.kv_lengths = {3};  // > Mk
  AttentionTensors t;
  t.q = s.q.data();
  t.k = s.k.data();
  t.v = s.v.data();
  t.kv_lengths = s.kv_lengths.data();
  float out[1];
  float lse[1];
  t.out = out;
  t.lse = lse;
  ReferenceResult r;
  absl::Status status = ReferenceAttention(s.p, t, &r);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("kv_lengths[0] = 3"), absl::string_view::npos) << status;
  t.kv_lengths = nullptr;
  status = ReferenceAttention(s.p, t, &r);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace attnd::kernels
