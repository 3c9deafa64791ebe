#include "client/tensor_gen.h"

#include <cmath>
#include <cstring>

#include "client/npy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/dtype_convert.h"

namespace attnd::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<int64_t> Shape(const v1::Tensor& t) { return {t.shape().begin(), t.shape().end()}; }

// Every element of `t` as float.
std::vector<float> Values(const v1::Tensor& t) {
  const int64_t n = static_cast<int64_t>(t.data().size()) / DTypeBytes(t.dtype());
  std::vector<float> out(n);
  const kernels::DType dtype = t.dtype() == v1::DTYPE_F32   ? kernels::DType::kF32
                               : t.dtype() == v1::DTYPE_F16 ? kernels::DType::kF16
                                                            : kernels::DType::kBF16;
  kernels::ConvertToFloat(t.data().data(), dtype, n, out.data());
  return out;
}

int64_t Bytes(const std::vector<int64_t>& shape, v1::DType dtype) {
  int64_t n = DTypeBytes(dtype);
  for (int64_t d : shape) n *= d;
  return n;
}

RequestSpec OddSpec(v1::DType dtype) {
  RequestSpec spec;
  spec.batch = 2;
  spec.q_len = 97;
  spec.kv_len = 33;
  spec.heads = 6;
  spec.kv_heads = 3;
  spec.head_dim = 59;
  spec.v_head_dim = 17;
  spec.dtype = dtype;
  spec.seed = 42;
  return spec;
}

class TensorGenByDType : public ::testing::TestWithParam<v1::DType> {};

TEST_P(TensorGenByDType, ShapesSizesAndNonZeroNormalValues) {
  RequestSpec spec = OddSpec(GetParam());
  spec.bias = true;
  absl::StatusOr<v1::AttendRequest> request = GenerateRequest(spec);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_THAT(Shape(request->q()), ElementsAre(2, 97, 6, 59));
  EXPECT_THAT(Shape(request->k()), ElementsAre(2, 33, 3, 59));
  EXPECT_THAT(Shape(request->v()), ElementsAre(2, 33, 3, 17));
  EXPECT_THAT(Shape(request->bias()), ElementsAre(2, 6, 97, 33));
  for (const v1::Tensor* t : {&request->q(), &request->k(), &request->v(), &request->bias()}) {
    EXPECT_EQ(t->dtype(), GetParam());
    ASSERT_EQ(static_cast<int64_t>(t->data().size()), Bytes(Shape(*t), GetParam()));
    const std::vector<float> values = Values(*t);
    double sum = 0, sum_sq = 0;
    for (float v : values) {
      ASSERT_NE(v, 0.0f);
      ASSERT_TRUE(std::isfinite(v));
      sum += v;
      sum_sq += double{v} * v;
    }
    // Thousands of N(0,1) draws: mean near 0, variance near 1 (fixed seed, so not flaky).
    const double mean = sum / values.size();
    EXPECT_NEAR(mean, 0.0, 0.1);
    EXPECT_NEAR(sum_sq / values.size() - mean * mean, 1.0, 0.15);
  }
}

INSTANTIATE_TEST_SUITE_P(AllDTypes, TensorGenByDType,
                         ::testing::Values(v1::DTYPE_F32, v1::DTYPE_F16, v1::DTYPE_BF16),
                         [](const auto& info) { return v1::DType_Name(info.param); });

TEST(TensorGen, BhmkSwapsMiddleAxes) {
  RequestSpec spec = OddSpec(v1::DTYPE_F32);
  spec.layout = v1::LAYOUT_BHMK;
  absl::StatusOr<v1::AttendRequest> request = GenerateRequest(spec);
  ASSERT_TRUE(request.ok());
  EXPECT_EQ(request->layout(), v1::LAYOUT_BHMK);
  EXPECT_THAT(Shape(request->q()), ElementsAre(2, 6, 97, 59));
  EXPECT_THAT(Shape(request->k()), ElementsAre(2, 3, 33, 59));
  EXPECT_THAT(Shape(request->v()), ElementsAre(2, 3, 33, 17));
}

TEST(TensorGen, DefaultsKvHeadsAndValueDim) {
  RequestSpec spec;
  spec.batch = 1;
  spec.q_len = 3;
  spec.kv_len = 4;
  spec.heads = 5;
  spec.head_dim = 7;
  absl::StatusOr<v1::AttendRequest> request = GenerateRequest(spec);
  ASSERT_TRUE(request.ok());
  EXPECT_THAT(Shape(request->k()), ElementsAre(1, 4, 5, 7));
  EXPECT_THAT(Shape(request->v()), ElementsAre(1, 4, 5, 7));
  EXPECT_FALSE(request->has_bias());
  EXPECT_FALSE(request->has_window());
  EXPECT_FALSE(request->has_scale());
}

TEST(TensorGen, SameSeedSameBytesOtherSeedOtherBytes) {
  RequestSpec spec = OddSpec(v1::DTYPE_BF16);
  absl::StatusOr<v1::AttendRequest> a = GenerateRequest(spec);
  absl::StatusOr<v1::AttendRequest> b = GenerateRequest(spec);
  spec.seed = 43;
  absl::StatusOr<v1::AttendRequest> c = GenerateRequest(spec);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->q().data(), b->q().data());
  EXPECT_EQ(a->v().data(), b->v().data());
  EXPECT_NE(a->q().data(), c->q().data());
  // q, k and v are different draws.
  EXPECT_NE(a->q().data().substr(0, 64), a->k().data().substr(0, 64));
}

TEST(TensorGen, OptionsReachTheRequest) {
  RequestSpec spec = OddSpec(v1::DTYPE_F16);
  spec.causal = v1::CAUSAL_BOTTOM_RIGHT;
  spec.has_window = true;
  spec.window_left = 8;
  spec.window_right = -1;
  spec.return_lse = true;
  spec.scale = 0.25;
  spec.variant = v1::VARIANT_REFERENCE;
  spec.q_chunk = 16;
  spec.kv_chunk = 32;
  spec.priority = 2;
  spec.kv_lengths = {33, 7};
  spec.bias = true;
  spec.bias_shape = {6, 1, 33};
  spec.bias_dtype = v1::DTYPE_F32;
  spec.request_id = "r1";
  absl::StatusOr<v1::AttendRequest> r = GenerateRequest(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->causal(), v1::CAUSAL_BOTTOM_RIGHT);
  EXPECT_EQ(r->window().left(), 8);
  EXPECT_EQ(r->window().right(), -1);
  EXPECT_TRUE(r->return_lse());
  EXPECT_DOUBLE_EQ(r->scale(), 0.25);
  EXPECT_EQ(r->variant(), v1::VARIANT_REFERENCE);
  EXPECT_EQ(r->q_chunk(), 16);
  EXPECT_EQ(r->kv_chunk(), 32);
  EXPECT_EQ(r->priority(), 2);
  EXPECT_THAT(r->kv_lengths(), ElementsAre(33, 7));
  EXPECT_EQ(r->request_id(), "r1");
  EXPECT_THAT(Shape(r->bias()), ElementsAre(6, 1, 33));
  EXPECT_EQ(r->bias().dtype(), v1::DTYPE_F32);
  EXPECT_EQ(r->bias().data().size(), 6u * 33 * 4);
}

TEST(TensorGen, RandomKvLengthsInRangeAndSeeded) {
  RequestSpec spec = OddSpec(v1::DTYPE_F32);
  spec.batch = 64;
  spec.q_len = 2;
  spec.random_kv_lengths = true;
  absl::StatusOr<v1::AttendRequest> a = GenerateRequest(spec);
  absl::StatusOr<v1::AttendRequest> b = GenerateRequest(spec);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->kv_lengths_size(), 64);
  bool differ = false;
  for (int i = 0; i < 64; ++i) {
    EXPECT_GE(a->kv_lengths(i), 1);
    EXPECT_LE(a->kv_lengths(i), 33);
    EXPECT_EQ(a->kv_lengths(i), b->kv_lengths(i));
    differ |= a->kv_lengths(i) != a->kv_lengths(0);
  }
  EXPECT_TRUE(differ);
}

struct BadSpec {
  const char* name;
  std::function<void(RequestSpec*)> change;
  const char* message;
  bool generatable;  // the server, not the generator, refuses it
};

class TensorGenBadSpec : public ::testing::TestWithParam<BadSpec> {};

TEST_P(TensorGenBadSpec, RefusedWithMessage) {
  RequestSpec spec = OddSpec(v1::DTYPE_F32);
  GetParam().change(&spec);
  absl::Status status = ValidateSpec(spec);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr(GetParam().message));
  // GenerateRequest refuses only what it cannot generate; the rest goes to the server.
  if (GetParam().generatable) {
    EXPECT_TRUE(GenerateRequest(spec).ok());
  } else {
    EXPECT_EQ(GenerateRequest(spec).status(), status);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, TensorGenBadSpec,
    ::testing::Values(
        BadSpec{"ZeroBatch", [](RequestSpec* s) { s->batch = 0; }, "--batch = 0", false},
        BadSpec{"NegativeHeadDim", [](RequestSpec* s) { s->head_dim = -3; }, "--head-dim = -3",
                false},
        BadSpec{"HeadsNotMultiple", [](RequestSpec* s) { s->kv_heads = 4; },
                "--heads = 6 is not a multiple of --kv-heads = 4", true},
        BadSpec{"KvLengthsCount",
                [](RequestSpec* s) {
                  s->kv_lengths = {1, 2, 3};
                },
                "3 values, want --batch = 2", true},
        BadSpec{"KvLengthOutOfRange",
                [](RequestSpec* s) {
                  s->kv_lengths = {1, 34};
                },
                "--kv-lengths[1] = 34 is outside [0, 33]", true},
        BadSpec{"BiasNotBroadcastable",
                [](RequestSpec* s) {
                  s->bias = true;
                  s->bias_shape = {2, 5, 97, 33};
                },
                "bias shape[1] = 5 does not broadcast to 6", true},
        BadSpec{"BiasRank5",
                [](RequestSpec* s) {
                  s->bias = true;
                  s->bias_shape = {1, 2, 6, 97, 33};
                },
                "bias rank 5", true},
        BadSpec{"Overflow", [](RequestSpec* s) { s->q_len = s->kv_len = int64_t{1} << 40; },
                "overflows", false}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace attnd::client
