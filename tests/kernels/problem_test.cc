// AttentionProblem: names, parsers, Flops, and ValidateProblem's errors (each names the field,
// the dimension and the value); ragged problems and ValidateSequenceOffsets.
#include "kernels/problem.h"

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

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

// Three sequences packed: 40 query rows under the bound 20, 50 key rows under the bound 30.
AttentionProblem Ragged() {
  AttentionProblem p = Good();
  p.batch = 3;
  p.q_len = 20;
  p.kv_len = 30;
  p.ragged = true;
  p.total_q = 40;
  p.total_kv = 50;
  return p;
}

// Expects ValidateSequenceOffsets to refuse with exactly `message`.
void ExpectBadOffsets(const AttentionProblem& p, const std::vector<int64_t>& q_offsets,
                      const std::vector<int64_t>& kv_offsets, const std::string& message) {
  const absl::Status s = ValidateSequenceOffsets(p, q_offsets.empty() ? nullptr : q_offsets.data(),
                                                 kv_offsets.empty() ? nullptr : kv_offsets.data());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ(s.message(), message);
}

TEST(ProblemRaggedTest, PackedSizesAndFlops) {
  const AttentionProblem p = Ragged();
  EXPECT_TRUE(ValidateProblem(p, ProblemLimits()).ok());
  EXPECT_EQ(p.q_elements(), 40 * 8 * 64);
  EXPECT_EQ(p.k_elements(), 50 * 2 * 64);
  EXPECT_EQ(p.v_elements(), 50 * 2 * 64);
  EXPECT_EQ(p.out_elements(), 40 * 8 * 64);
  EXPECT_EQ(p.lse_elements(), 8 * 40);
  // Flops() without the offsets: total_q · kv_len pairs per head, an upper bound.
  EXPECT_DOUBLE_EQ(p.Flops(), 2.0 * 40 * 8 * 30 * 128);
  // Sequences (Mq_b, Mk_b) = (20, 30), (0, 10), (20, 10): 600 + 0 + 200 pairs per head.
  const std::vector<int64_t> q_offsets = {0, 20, 20, 40};
  const std::vector<int64_t> kv_offsets = {0, 30, 40, 50};
  EXPECT_TRUE(ValidateSequenceOffsets(p, q_offsets.data(), kv_offsets.data()).ok());
  EXPECT_DOUBLE_EQ(RaggedFlops(p, q_offsets.data(), kv_offsets.data()), 2.0 * 800 * 8 * 128);
  EXPECT_NE(p.DebugString().find("ragged total_q=40 total_kv=50"), std::string::npos)
      << p.DebugString();
}

TEST(ProblemRaggedTest, AcceptsEmptySequencesAndPaddedBias) {
  AttentionProblem p = Ragged();
  p.total_q = 0;  // every sequence without queries
  EXPECT_TRUE(ValidateProblem(p, ProblemLimits()).ok());
  EXPECT_TRUE(ValidateSequenceOffsets(p, std::vector<int64_t>{0, 0, 0, 0}.data(),
                                      std::vector<int64_t>{0, 30, 30, 50}.data())
                  .ok());
  p = Ragged();
  p.has_bias = true;
  p.bias_shape[0] = 3;
  p.bias_shape[2] = 20;
  p.bias_shape[3] = 30;
  EXPECT_TRUE(ValidateProblem(p, ProblemLimits()).ok());
  p.bias_shape[2] = 40;  // the packed total is not the bias's size: the bound is
  ExpectInvalid(p, "bias.shape[2] = 40 must be 1 or 20 (q_len)");
}

TEST(ProblemRaggedTest, RefusesBhmkAndKvLengths) {
  AttentionProblem p = Ragged();
  p.layout = Layout::kBHMK;
  ExpectInvalid(p, "layout = BHMK cannot be ragged: packed sequences are BMHK");
  p = Ragged();
  p.has_kv_lengths = true;
  ExpectInvalid(p, "kv_lengths and sequence offsets cannot both be given");
}

TEST(ProblemRaggedTest, RefusesTotalsOutOfRange) {
  AttentionProblem p = Ragged();
  p.total_q = -1;
  ExpectInvalid(p, "q.shape[0] (total_q) = -1 must not be negative");
  p = Ragged();
  p.total_kv = -7;
  ExpectInvalid(p, "k.shape[0] (total_kv) = -7 must not be negative");
  p = Ragged();
  p.total_q = 61;  // three sequences of at most 20 rows hold 60
  ExpectInvalid(p,
                "q.shape[0] (total_q) = 61 exceeds batch (B) × q_len (max Mq_b) = 3 × 20 = 60: "
                "some sequence would be longer than the bound");
  p = Ragged();
  p.total_kv = 91;
  ExpectInvalid(p, "k.shape[0] (total_kv) = 91 exceeds batch (B) × kv_len (max Mk_b) = 3 × 30");
  ProblemLimits limits;
  limits.max_tokens = 49;  // total_q 40 fits, total_kv 50 does not
  ExpectInvalid(Ragged(), "k.shape[0] (total_kv) = 50 exceeds limits.max_tokens = 49", limits);
  limits.max_tokens = 50;
  EXPECT_TRUE(ValidateProblem(Ragged(), limits).ok());
  limits = ProblemLimits();
  limits.max_seq_len = 25;  // applies to the bounds
  ExpectInvalid(Ragged(), "kv_len (max Mk_b) = 30 exceeds limits.max_seq_len = 25", limits);
  limits = ProblemLimits();
  limits.max_tensor_elements = 40 * 8 * 64 - 1;  // the packed q
  ExpectInvalid(Ragged(), "q has 20480 elements, more than limits.max_tensor_elements = 20479",
                limits);
  p = Ragged();
  p.q_len = 0;  // the bound stays positive, even when every sequence is empty
  ExpectInvalid(p, "q_len (max Mq_b) = 0 must be positive");
}

TEST(ProblemRaggedTest, RefusesBadOffsetsNamingIndexAndValue) {
  const AttentionProblem p = Ragged();  // B 3, total_q 40 (bound 20), total_kv 50 (bound 30)
  const std::vector<int64_t> q_good = {0, 20, 20, 40};
  const std::vector<int64_t> kv_good = {0, 30, 40, 50};
  ExpectBadOffsets(p, {}, kv_good, "problem.ragged but tensors.q_offsets is null");
  ExpectBadOffsets(p, q_good, {}, "problem.ragged but tensors.kv_offsets is null");
  ExpectBadOffsets(p, {1, 20, 20, 40}, kv_good, "q_offsets[0] = 1 must be 0");
  ExpectBadOffsets(p, {0, 20, 17, 40}, kv_good, "q_offsets[2] = 17 is less than q_offsets[1] = 20");
  ExpectBadOffsets(p, q_good, {0, 30, 40, 39},
                   "kv_offsets[3] = 39 is less than kv_offsets[2] = 40");
  ExpectBadOffsets(p, {0, 20, 20, 39}, kv_good, "q_offsets[3] = 39 must equal total_q = 40");
  ExpectBadOffsets(p, {0, 10, 20, 41}, kv_good,
                   "sequence 2 has q_offsets[3] - q_offsets[2] = 41 - 20 = 21 rows, more than "
                   "q_len = 20");
  ExpectBadOffsets(p, q_good, {0, 31, 40, 50},
                   "sequence 0 has kv_offsets[1] - kv_offsets[0] = 31 - 0 = 31 rows, more than "
                   "kv_len = 30");
  ExpectBadOffsets(p, q_good, {0, 30, 40, 51}, "kv_offsets[3] = 51 must equal total_kv = 50");
  ExpectBadOffsets(Good(), q_good, kv_good,
                   "sequence offsets given for a problem that is not ragged");
}

}  // namespace
}  // namespace attnd::kernels
