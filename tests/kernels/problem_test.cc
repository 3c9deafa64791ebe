// AttentionProblem: names, parsers, Flops, and ValidateProblem's errors (each names the field,
// the dimension and the value).
#include "kernels/problem.h"

#include <cstdint>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace attnd::kernels {
namespace {

AttentionProblem Good() {
  AttentionProblem p;
  p.batch = 2;
  p.q_len = 16;
  p.kv_len = 32;
  p.q_heads = 8;
  p.kv_heads = 2;
  p.head_dim = 64;
  p.v_head_dim = 64;
  p.scale = 0.125;
  return p;
}

// Expects INVALID_ARGUMENT whose message contains `needle`.
void ExpectInvalid(const AttentionProblem& p, const std::string& needle,
                   const ProblemLimits& limits = ProblemLimits()) {
  const absl::Status s = ValidateProblem(p, limits);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(std::string(s.message()).find(needle), std::string::npos)
      << "message: " << s.message() << "\nwanted: " << needle;
}

TEST(ProblemTest, NamesAndParsers) {
  EXPECT_EQ(DTypeSize(DType::kF32), 4u);
  EXPECT_EQ(DTypeSize(DType::kF16), 2u);
  EXPECT_EQ(DTypeSize(DType::kBF16), 2u);
  for (DType d : {DType::kF32, DType::kF16, DType::kBF16}) {
    DType parsed = DType::kF32;
    ASSERT_TRUE(ParseDType(DTypeName(d), &parsed)) << DTypeName(d);
    EXPECT_EQ(parsed, d);
  }
  DType dtype;
  EXPECT_TRUE(ParseDType("BFloat16", &dtype));
  EXPECT_EQ(dtype, DType::kBF16);
  EXPECT_FALSE(ParseDType("f64", &dtype));

  const char* variants[] = {"auto",   "reference", "cpu_chunked", "naive",
                            "sliced", "chunked",   "cudnn",       "fused"};
  for (int i = 0; i < 8; ++i) {
    const Variant v = static_cast<Variant>(i);
    EXPECT_EQ(VariantName(v), variants[i]);
    Variant parsed = Variant::kAuto;
    ASSERT_TRUE(ParseVariant(variants[i], &parsed));
    EXPECT_EQ(parsed, v);
  }
  Variant variant;
  EXPECT_FALSE(ParseVariant("flash", &variant));

  EXPECT_EQ(CausalName(Causal::kNone), "none");
  EXPECT_EQ(CausalName(Causal::kTopLeft), "top-left");
  EXPECT_EQ(CausalName(Causal::kBottomRight), "bottom-right");
  Causal causal;
  ASSERT_TRUE(ParseCausal("bottom_right", &causal));
  EXPECT_EQ(causal, Causal::kBottomRight);
  ASSERT_TRUE(ParseCausal("top-left", &causal));
  EXPECT_EQ(causal, Causal::kTopLeft);
  EXPECT_FALSE(ParseCausal("left", &causal));

  Layout layout;
  ASSERT_TRUE(ParseLayout("bhmk", &layout));
  EXPECT_EQ(layout, Layout::kBHMK);
  EXPECT_EQ(LayoutName(Layout::kBMHK), "BMHK");
  EXPECT_FALSE(ParseLayout("BMKH", &layout));
}

TEST(ProblemTest, FlopsAndDebugString) {
  AttentionProblem p = Good();
  // 2·B·Hq·Mq·Mk·(D + Dv) = 2·2·8·16·32·128
  EXPECT_DOUBLE_EQ(p.Flops(), 2.0 * 2 * 8 * 16 * 32 * 128);
  p.causal = Causal::kTopLeft;
  EXPECT_DOUBLE_EQ(p.Flops(), 2.0 * 8 * 16 * 32 * 128);
  p.has_bias = true;
  p.bias_shape[3] = 32;
  const std::string s = p.DebugString();
  EXPECT_NE(s.find("Mq=16"), std::string::npos) << s;
  EXPECT_NE(s.find("causal=top-left"), std::string::npos) << s;
  EXPECT_NE(s.find("bias=f32[1,1,1,32]"), std::string::npos) << s;
}

TEST(ProblemTest, AcceptsGoodProblems) {
  AttentionProblem p = Good();
  EXPECT_TRUE(ValidateProblem(p, ProblemLimits()).ok());
  p.has_bias = true;
  p.bias_shape[0] = 2;
  p.bias_shape[2] = 16;
  p.bias_shape[3] = 32;
  p.window_left = 1000000;  // wider than the problem: fine
  p.window_right = -5;      // any negative bound is unbounded
  p.layout = Layout::kBHMK;
  EXPECT_TRUE(ValidateProblem(p, ProblemLimits()).ok());
}

TEST(ProblemTest, RejectsNonPositiveDims) {
  AttentionProblem p = Good();
  p.batch = 0;
  ExpectInvalid(p, "q.shape[0] (B) = 0 must be positive");
  p = Good();
  p.q_len = -3;
  ExpectInvalid(p, "q.shape[1] (Mq) = -3 must be positive");
  p.layout = Layout::kBHMK;  // the sequence axis is 2 in BHMK
  ExpectInvalid(p, "q.shape[2] (Mq) = -3 must be positive");
  p = Good();
  p.kv_len = 0;
  ExpectInvalid(p, "k.shape[1] (Mk) = 0");
  p = Good();
  p.kv_heads = 0;
  ExpectInvalid(p, "k.shape[2] (Hkv) = 0");
  p = Good();
  p.head_dim = 0;
  ExpectInvalid(p, "q.shape[3] (D) = 0");
  p = Good();
  p.v_head_dim = -1;
  ExpectInvalid(p, "v.shape[3] (Dv) = -1");
}

TEST(ProblemTest, RejectsHeadsThatDoNotDivide) {
  AttentionProblem p = Good();
  p.kv_heads = 3;
  ExpectInvalid(p, "k.shape[2] (Hkv) = 3 does not divide q.shape[2] (Hq) = 8");
}

TEST(ProblemTest, RejectsLimits) {
  ProblemLimits limits;
  limits.max_seq_len = 16;
  AttentionProblem p = Good();
  ExpectInvalid(p, "k.shape[1] (Mk) = 32 exceeds limits.max_seq_len = 16", limits);
  limits = ProblemLimits();
  limits.max_head_dim = 32;
  ExpectInvalid(p, "q.shape[3] (D) = 64 exceeds limits.max_head_dim = 32", limits);
  limits = ProblemLimits();
  limits.max_heads = 4;
  ExpectInvalid(p, "q.shape[2] (Hq) = 8 exceeds limits.max_heads = 4", limits);
  limits = ProblemLimits();
  limits.max_batch = 1;
  ExpectInvalid(p, "q.shape[0] (B) = 2 exceeds limits.max_batch = 1", limits);
  limits = ProblemLimits();
  limits.max_tensor_elements = 2 * 16 * 8 * 64 - 1;  // q has 16384 elements
  ExpectInvalid(p, "q has 16384 elements, more than limits.max_tensor_elements = 16383", limits);
}

TEST(ProblemTest, MaxTokensCountsEachSideAtAndPastTheLimit) {
  ProblemLimits limits;
  AttentionProblem p = Good();  // B × Mq = 32, B × Mk = 64
  limits.max_tokens = 64;
  EXPECT_TRUE(ValidateProblem(p, limits).ok());
  limits.max_tokens = 63;
  ExpectInvalid(
      p, "tokens q.shape[0] (B) × k.shape[1] (Mk) = 2 × 32 = 64 exceed limits.max_tokens = 63",
      limits);
  p.kv_len = 8;
  p.q_len = 32;  // B × Mq = 64 now
  ExpectInvalid(p, "tokens q.shape[0] (B) × q.shape[1] (Mq) = 2 × 32 = 64 exceed", limits);
  p.layout = Layout::kBHMK;  // the message follows the layout
  ExpectInvalid(p, "q.shape[2] (Mq) = 2 × 32", limits);
}

TEST(ProblemTest, ElementCountsThatOverflowInt64) {
  AttentionProblem p = Good();
  const int64_t big = int64_t{1} << 40;
  p.batch = big;
  p.q_len = big;
  const ProblemLimits unlimited = UnlimitedProblemLimits();
  ExpectInvalid(p, "q shape [1099511627776, 1099511627776, 8, 64] has more elements than int64",
                unlimited);
  // Under the default limits the dims fail first, naming the limit.
  ExpectInvalid(p, "exceeds limits.max_batch");
}

TEST(ProblemTest, RejectsBadBias) {
  AttentionProblem p = Good();
  p.has_bias = true;
  p.bias_shape[1] = 3;
  ExpectInvalid(p, "bias.shape[1] = 3 must be 1 or 8 (Hq)");
  p.bias_shape[1] = 1;
  p.bias_shape[3] = 0;
  ExpectInvalid(p, "bias.shape[3] = 0 must be 1 or 32 (Mk)");
  p.bias_shape[3] = 32;
  p.bias_dtype = static_cast<DType>(9);
  ExpectInvalid(p, "bias.dtype = 9");
}

TEST(ProblemTest, RejectsBadEnumsAndScale) {
  AttentionProblem p = Good();
  p.dtype = static_cast<DType>(7);
  ExpectInvalid(p, "dtype = 7");
  p = Good();
  p.causal = static_cast<Causal>(5);
  ExpectInvalid(p, "causal = 5");
  p = Good();
  p.layout = static_cast<Layout>(2);
  ExpectInvalid(p, "layout = 2");
  p = Good();
  p.scale = std::numeric_limits<double>::infinity();
  ExpectInvalid(p, "scale = inf must be finite");
}

}  // namespace
}  // namespace attnd::kernels
