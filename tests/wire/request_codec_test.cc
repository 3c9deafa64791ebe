// DecodeRequest: every malformed request is INVALID_ARGUMENT naming the field, the dimension
// and the value; good requests decode into the right problem and views over the request bytes.
#include "wire/request_codec.h"

#include <cstring>
#include <limits>
#include <random>
#include <string>

#include "gtest/gtest.h"

namespace attnd::wire {
namespace {

// Fills a tensor with random non-zero f32 values of the given shape.
void FillF32(v1::Tensor* t, std::vector<int64_t> shape, std::mt19937* rng) {
  t->set_dtype(v1::DTYPE_F32);
  t->clear_shape();
  int64_t n = 1;
  for (int64_t d : shape) {
    t->add_shape(d);
    n *= d;
  }
  std::vector<float> values(n);
  std::uniform_real_distribution<float> dist(0.1f, 1.0f);
  for (float& x : values) x = dist(*rng);
  t->set_data(std::string(reinterpret_cast<const char*>(values.data()), n * sizeof(float)));
}

// B=2, Mq=5, Mk=7, Hq=4, Hkv=2, D=8, Dv=6 in BMHK.
v1::AttendRequest GoodRequest() {
  std::mt19937 rng(7);
  v1::AttendRequest r;
  r.set_request_id("r1");
  FillF32(r.mutable_q(), {2, 5, 4, 8}, &rng);
  FillF32(r.mutable_k(), {2, 7, 2, 8}, &rng);
  FillF32(r.mutable_v(), {2, 7, 2, 6}, &rng);
  return r;
}

kernels::ProblemLimits Limits() { return kernels::ProblemLimits(); }

TEST(DecodeRequestTest, GoodRequestDecodes) {
  v1::AttendRequest r = GoodRequest();
  r.set_causal(v1::CAUSAL_BOTTOM_RIGHT);
  r.add_kv_lengths(7);
  r.add_kv_lengths(3);
  std::mt19937 rng(1);
  FillF32(r.mutable_bias(), {4, 5, 7}, &rng);  // [Hq, Mq, Mk] → [1, Hq, Mq, Mk]
  r.set_return_lse(true);
  absl::StatusOr<DecodedRequest> d = DecodeRequest(r, Limits());
  ASSERT_TRUE(d.ok()) << d.status();
  const kernels::AttentionProblem& p = d->problem;
  EXPECT_EQ(p.batch, 2);
  EXPECT_EQ(p.q_len, 5);
  EXPECT_EQ(p.kv_len, 7);
  EXPECT_EQ(p.q_heads, 4);
  EXPECT_EQ(p.kv_heads, 2);
  EXPECT_EQ(p.head_dim, 8);
  EXPECT_EQ(p.v_head_dim, 6);
  EXPECT_DOUBLE_EQ(p.scale, 1.0 / std::sqrt(8.0));
  EXPECT_EQ(p.causal, kernels::Causal::kBottomRight);
  EXPECT_TRUE(p.has_bias);
  EXPECT_EQ(p.bias_shape[0], 1);
  EXPECT_EQ(p.bias_shape[1], 4);
  EXPECT_EQ(p.bias_shape[2], 5);
  EXPECT_EQ(p.bias_shape[3], 7);
  EXPECT_EQ(d->kv_lengths, (std::vector<int64_t>{7, 3}));
  // Views point into the request's own bytes: no copy.
  EXPECT_EQ(d->q, r.q().data().data());
  EXPECT_EQ(d->bias, r.bias().data().data());
  EXPECT_EQ(d->out_bytes(), 2 * 5 * 4 * 6 * 4);
  EXPECT_EQ(d->lse_bytes(), 2 * 4 * 5 * 4);
  EXPECT_EQ(OutShape(p), (std::vector<int64_t>{2, 5, 4, 6}));
}

TEST(DecodeRequestTest, BhmkLayoutReadsHeadsFromAxisOne) {
  std::mt19937 rng(3);
  v1::AttendRequest r;
  r.set_layout(v1::LAYOUT_BHMK);
  FillF32(r.mutable_q(), {1, 4, 9, 16}, &rng);  // [B, Hq, Mq, D]
  FillF32(r.mutable_k(), {1, 1, 11, 16}, &rng);
  FillF32(r.mutable_v(), {1, 1, 11, 16}, &rng);
  absl::StatusOr<DecodedRequest> d = DecodeRequest(r, Limits());
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->problem.q_heads, 4);
  EXPECT_EQ(d->problem.q_len, 9);
  EXPECT_EQ(d->problem.kv_len, 11);
  EXPECT_EQ(d->problem.kv_heads, 1);
  EXPECT_EQ(OutShape(d->problem), (std::vector<int64_t>{1, 4, 9, 16}));
}

struct BadCase {
  std::string name;
  std::function<void(v1::AttendRequest*)> mutate;
  std::vector<std::string> message_parts;  // each must appear in the status message
};

class BadRequestTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadRequestTest, IsInvalidArgumentNamingTheField) {
  v1::AttendRequest r = GoodRequest();
  GetParam().mutate(&r);
  absl::StatusOr<DecodedRequest> d = DecodeRequest(r, Limits());
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << d.status();
  for (const std::string& part : GetParam().message_parts) {
    EXPECT_NE(d.status().message().find(part), std::string::npos)
        << "message \"" << d.status().message() << "\" lacks \"" << part << "\"";
  }
}

std::mt19937& Rng() {
  static std::mt19937 rng(11);
  return rng;
}

INSTANTIATE_TEST_SUITE_P(
    Matrix, BadRequestTest,
    ::testing::Values(
        BadCase{"MissingQ", [](v1::AttendRequest* r) { r->clear_q(); }, {"q: missing"}},
        BadCase{"WrongRank",
                [](v1::AttendRequest* r) { r->mutable_q()->mutable_shape()->RemoveLast(); },
                {"q.shape", "rank 3"}},
        BadCase{"ZeroDim",
                [](v1::AttendRequest* r) { r->mutable_k()->set_shape(1, 0); },
                {"k.shape[1] (Mk) = 0"}},
        BadCase{"NegativeDim",
                [](v1::AttendRequest* r) { r->mutable_v()->set_shape(3, -6); },
                {"v.shape[3] (Dv) = -6"}},
        BadCase{"ElementCountOverflow",
                [](v1::AttendRequest* r) {
                  for (int i = 0; i < 4; ++i) r->mutable_q()->set_shape(i, int64_t{1} << 20);
                },
                {"q.shape", "overflows int64"}},
        BadCase{"AbsurdShapeTinyPayload",
                [](v1::AttendRequest* r) { r->mutable_q()->set_shape(1, int64_t{1} << 40); },
                {"q.shape", "limits.max_tensor_elements"}},
        BadCase{"DataOneByteShort",
                [](v1::AttendRequest* r) { r->mutable_k()->mutable_data()->pop_back(); },
                {"k.data", "bytes, want"}},
        BadCase{"DataOneByteLong",
                [](v1::AttendRequest* r) { r->mutable_v()->mutable_data()->push_back('x'); },
                {"v.data"}},
        BadCase{"DTypeMismatch",
                [](v1::AttendRequest* r) { r->mutable_k()->set_dtype(v1::DTYPE_F16); },
                {"k.dtype = f16", "q.dtype = f32"}},
        BadCase{"DTypeUnspecified",
                [](v1::AttendRequest* r) { r->mutable_q()->set_dtype(v1::DTYPE_UNSPECIFIED); },
                {"q.dtype"}},
        BadCase{"HeadsNotMultiple",
                [](v1::AttendRequest* r) {
                  FillF32(r->mutable_k(), {2, 7, 3, 8}, &Rng());
                  FillF32(r->mutable_v(), {2, 7, 3, 6}, &Rng());
                },
                {"(Hq) = 4", "(Hkv) = 3"}},
        BadCase{"HeadDimMismatch",
                [](v1::AttendRequest* r) {
                  FillF32(r->mutable_k(), {2, 7, 2, 9}, &Rng());
                },
                {"k.shape[3] (D) = 9", "q.shape[3] (D) = 8"}},
        BadCase{"KvLenMismatch",
                [](v1::AttendRequest* r) {
                  FillF32(r->mutable_v(), {2, 6, 2, 6}, &Rng());
                },
                {"v.shape[1] (Mk) = 6", "k.shape[1] (Mk) = 7"}},
        BadCase{"BatchMismatch",
                [](v1::AttendRequest* r) {
                  FillF32(r->mutable_k(), {3, 7, 2, 8}, &Rng());
                },
                {"k.shape[0] (B) = 3"}},
        BadCase{"BiasWrongShape",
                [](v1::AttendRequest* r) {
                  FillF32(r->mutable_bias(), {2, 4, 5, 6}, &Rng());
                },
                {"bias.shape[3] = 6", "Mk = 7"}},
        BadCase{"BiasWrongRank",
                [](v1::AttendRequest* r) { FillF32(r->mutable_bias(), {7}, &Rng()); },
                {"bias.shape", "rank 1"}},
        BadCase{"BiasShortData",
                [](v1::AttendRequest* r) {
                  FillF32(r->mutable_bias(), {5, 7}, &Rng());
                  r->mutable_bias()->mutable_data()->resize(3);
                },
                {"bias.data", "3 bytes"}},
        BadCase{"KvLengthsCount",
                [](v1::AttendRequest* r) { r->add_kv_lengths(3); },
                {"kv_lengths", "B = 2"}},
        BadCase{"KvLengthsRange",
                [](v1::AttendRequest* r) {
                  r->add_kv_lengths(3);
                  r->add_kv_lengths(8);
                },
                {"kv_lengths[1] = 8", "Mk = 7"}},
        BadCase{
            "ScaleNaN",
            [](v1::AttendRequest* r) { r->set_scale(std::numeric_limits<double>::quiet_NaN()); },
            {"scale"}},
        BadCase{
            "NegativeChunk", [](v1::AttendRequest* r) { r->set_q_chunk(-1); }, {"q_chunk = -1"}},
        BadCase{"UnknownCausal",
                [](v1::AttendRequest* r) { r->set_causal(static_cast<v1::Causal>(9)); },
                {"causal", "9"}}),
    [](const ::testing::TestParamInfo<BadCase>& info) { return info.param.name; });

TEST(DecodeRequestTest, LimitsComeFromConfig) {
  v1::AttendRequest r = GoodRequest();
  kernels::ProblemLimits limits;
  limits.max_head_dim = 4;
  absl::StatusOr<DecodedRequest> d = DecodeRequest(r, limits);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("limits.max_head_dim = 4"), std::string::npos) << d.status();
}

}  // namespace
}  // namespace attnd::wire
