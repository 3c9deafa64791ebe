// attnctl's --check: the comparison math, and whole responses made by the reference itself.
#include "client/attnctl/check.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "client/tensor_gen.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/cpu_attention.h"
#include "kernels/dtype_convert.h"
#include "wire/request_codec.h"

namespace attnd::attnctl {
namespace {

using ::testing::HasSubstr;

TEST(Compare, KnownErrors) {
  // |d| = 0.5, 0.002 (ref 0.0005, below the relative floor), 3 (ref 100, scaled 0.03).
  ErrorStats s = CompareToReference({1.5f, 0.0025f, 103.0f}, {1.0, 0.0005, 100.0});
  EXPECT_EQ(s.elements, 3);
  EXPECT_NEAR(s.max_abs_error, 3.0, 1e-6);
  EXPECT_NEAR(s.max_rel_error, 0.5, 1e-6);     // 0.5 / 1.0; 0.002/0.0005 ignored
  EXPECT_NEAR(s.max_scaled_error, 0.5, 1e-6);  // 0.5 / max(1, 1.0)
  EXPECT_EQ(s.worst_index, 0);
  EXPECT_FALSE(s.has_nan);
}

TEST(Compare, InfinitiesAndNaN) {
  const float inf = std::numeric_limits<float>::infinity();
  ErrorStats same =
      CompareToReference({-inf, 1.0f}, {-std::numeric_limits<double>::infinity(), 1.0});
  EXPECT_FALSE(same.has_nan);
  EXPECT_EQ(same.max_abs_error, 0);
  EXPECT_TRUE(CompareToReference({-inf}, {0.5}).has_nan);
  EXPECT_TRUE(CompareToReference({std::nanf("")}, {0.5}).has_nan);
  EXPECT_TRUE(CompareToReference({1.0f}, {1.0, 2.0}).has_nan);  // length mismatch
}

TEST(Tolerance, PerDType) {
  EXPECT_EQ(ToleranceFor(v1::DTYPE_F32), 1e-4);
  EXPECT_EQ(ToleranceFor(v1::DTYPE_F16), 4e-3);
  EXPECT_EQ(ToleranceFor(v1::DTYPE_BF16), 3e-2);
}

kernels::DType KernelDType(v1::DType d) {
  return d == v1::DTYPE_F32   ? kernels::DType::kF32
         : d == v1::DTYPE_F16 ? kernels::DType::kF16
                              : kernels::DType::kBF16;
}

// A request with every option, and the answer the reference gives for it.
struct Exchange {
  v1::AttendRequest request;
  v1::AttendResponse response;
};

Exchange ReferenceExchange(v1::DType dtype) {
  client::RequestSpec spec;
  spec.batch = 2;
  spec.q_len = 7;
  spec.kv_len = 11;
  spec.heads = 4;
  spec.kv_heads = 2;
  spec.head_dim = 9;
  spec.v_head_dim = 5;
  spec.dtype = dtype;
  spec.causal = v1::CAUSAL_BOTTOM_RIGHT;
  spec.bias = true;
  spec.bias_shape = {4, 1, 11};
  spec.kv_lengths = {11, 6};
  spec.return_lse = true;
  spec.seed = 77;
  Exchange x;
  x.request = *client::GenerateRequest(spec);
  absl::StatusOr<wire::DecodedRequest> decoded = wire::DecodeRequest(x.request, UnboundedLimits());
  EXPECT_TRUE(decoded.ok()) << decoded.status();
  const kernels::AttentionProblem& p = decoded->problem;
  std::string out(decoded->out_bytes(), '\0');
  std::vector<float> lse(p.lse_elements());
  kernels::AttentionTensors tensors = wire::TensorsFor(*decoded, out.data(), lse.data());
  EXPECT_TRUE(kernels::RunReference(p, tensors).ok());

  v1::Tensor* o = x.response.mutable_out();
  o->set_dtype(dtype);
  for (int64_t d : wire::OutShape(p)) o->add_shape(d);
  o->set_data(out);
  v1::Tensor* l = x.response.mutable_lse();
  l->set_dtype(v1::DTYPE_F32);
  for (int64_t d : wire::LseShape(p)) l->add_shape(d);
  l->set_data(std::string(reinterpret_cast<const char*>(lse.data()), lse.size() * 4));
  return x;
}

class CheckByDType : public ::testing::TestWithParam<v1::DType> {};

TEST_P(CheckByDType, ReferenceAnswerPassesPerturbedFails) {
  Exchange x = ReferenceExchange(GetParam());
  absl::StatusOr<CheckResult> good = CheckResponse(x.request, x.response);
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_TRUE(good->passed) << good->Summary();
  EXPECT_EQ(good->out.elements, 2 * 7 * 4 * 5);
  EXPECT_EQ(good->lse.elements, 2 * 4 * 7);
  EXPECT_THAT(good->Summary(), HasSubstr("PASSED"));

  // Push element 13 by ten tolerances.
  const kernels::DType dtype = KernelDType(GetParam());
  std::string* data = x.response.mutable_out()->mutable_data();
  const float value = kernels::LoadAsFloat(data->data(), dtype, 13);
  kernels::StoreFromFloat(data->data(), dtype, 13,
                          value + 10 * ToleranceFor(GetParam()) * std::max(1.0f, std::fabs(value)));
  absl::StatusOr<CheckResult> bad = CheckResponse(x.request, x.response);
  ASSERT_TRUE(bad.ok()) << bad.status();
  EXPECT_FALSE(bad->passed);
  EXPECT_EQ(bad->out.worst_index, 13);
  EXPECT_THAT(bad->Summary(), HasSubstr("FAILED"));
}

TEST_P(CheckByDType, WrongLseFails) {
  Exchange x = ReferenceExchange(GetParam());
  std::string* lse = x.response.mutable_lse()->mutable_data();
  float first;
  std::memcpy(&first, lse->data(), 4);
  first += 0.5f;
  std::memcpy(lse->data(), &first, 4);
  absl::StatusOr<CheckResult> result = CheckResponse(x.request, x.response);
  ASSERT_TRUE(result.ok());
  EXPECT_FALSE(result->passed);
  EXPECT_EQ(result->lse.worst_index, 0);
}

INSTANTIATE_TEST_SUITE_P(AllDTypes, CheckByDType,
                         ::testing::Values(v1::DTYPE_F32, v1::DTYPE_F16, v1::DTYPE_BF16),
                         [](const auto& info) { return v1::DType_Name(info.param); });

TEST(Check, MisshapenResponseIsAnError) {
  Exchange x = ReferenceExchange(v1::DTYPE_F32);
  x.response.mutable_out()->set_shape(1, 99);
  absl::StatusOr<CheckResult> r = CheckResponse(x.request, x.response);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("response.out"));

  x = ReferenceExchange(v1::DTYPE_F32);
  x.response.mutable_out()->mutable_data()->pop_back();
  EXPECT_THAT(std::string(CheckResponse(x.request, x.response).status().message()),
              HasSubstr("bytes"));

  x = ReferenceExchange(v1::DTYPE_F32);
  x.response.clear_lse();
  EXPECT_THAT(std::string(CheckResponse(x.request, x.response).status().message()),
              HasSubstr("response.lse"));
}

}  // namespace
}  // namespace attnd::attnctl
