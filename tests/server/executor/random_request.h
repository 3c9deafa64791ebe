// Test helpers: random AttendRequests of a given shape, and checking a response against the
// float64 reference (kernels::ReferenceAttention) on the same request.
#ifndef ATTND_TESTS_SERVER_EXECUTOR_RANDOM_REQUEST_H_
#define ATTND_TESTS_SERVER_EXECUTOR_RANDOM_REQUEST_H_

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "attnd/v1/attention.pb.h"
#include "gtest/gtest.h"
#include "kernels/cpu_attention.h"
#include "kernels/dtype_convert.h"
#include "wire/request_codec.h"

namespace attnd::testing {

struct Shape {
  v1::DType dtype = v1::DTYPE_F32;
  v1::Layout layout = v1::LAYOUT_BMHK;
  int64_t batch = 2, q_len = 7, kv_len = 13, q_heads = 4, kv_heads = 2, head_dim = 16,
          v_head_dim = 16;
  v1::Causal causal = v1::CAUSAL_NONE;
  bool bias = false;
  bool kv_lengths = false;
  bool return_lse = true;
};

inline kernels::DType KernelDType(v1::DType dtype) {
  switch (dtype) {
    case v1::DTYPE_F16:
      return kernels::DType::kF16;
    case v1::DTYPE_BF16:
      return kernels::DType::kBF16;
    default:
      return kernels::DType::kF32;
  }
}

// A tensor of `shape` with values uniform in [-1, 1] (never all zeros).
inline void FillRandom(v1::Tensor* tensor, v1::DType dtype, const std::vector<int64_t>& shape,
                       std::mt19937* rng) {
  tensor->set_dtype(dtype);
  int64_t n = 1;
  for (int64_t d : shape) {
    tensor->add_shape(d);
    n *= d;
  }
  const kernels::DType kd = KernelDType(dtype);
  std::string* data = tensor->mutable_data();
  data->resize(static_cast<size_t>(n) * kernels::DTypeSize(kd));
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (int64_t i = 0; i < n; ++i) kernels::StoreFromFloat(data->data(), kd, i, dist(*rng));
}

inline v1::AttendRequest RandomRequest(const Shape& s, uint32_t seed,
                                       const std::string& id = "req") {
  std::mt19937 rng(seed);
  v1::AttendRequest r;
  r.set_request_id(id);
  r.set_layout(s.layout);
  const bool bhmk = s.layout == v1::LAYOUT_BHMK;
  auto dims = [&](int64_t m, int64_t h, int64_t d) {
    return bhmk ? std::vector<int64_t>{s.batch, h, m, d} : std::vector<int64_t>{s.batch, m, h, d};
  };
  FillRandom(r.mutable_q(), s.dtype, dims(s.q_len, s.q_heads, s.head_dim), &rng);
  FillRandom(r.mutable_k(), s.dtype, dims(s.kv_len, s.kv_heads, s.head_dim), &rng);
  FillRandom(r.mutable_v(), s.dtype, dims(s.kv_len, s.kv_heads, s.v_head_dim), &rng);
  r.set_causal(s.causal);
  if (s.bias) FillRandom(r.mutable_bias(), v1::DTYPE_F32, {1, s.q_heads, s.q_len, s.kv_len}, &rng);
  if (s.kv_lengths) {
    for (int64_t b = 0; b < s.batch; ++b) r.add_kv_lengths(1 + (rng() % s.kv_len));
  }
  r.set_return_lse(s.return_lse);
  return r;
}

struct Tolerance {
  double atol;
  double rtol;
};

inline Tolerance ToleranceFor(v1::DType dtype) {
  switch (dtype) {
    case v1::DTYPE_F16:
      return {4e-3, 4e-3};
    case v1::DTYPE_BF16:
      return {3e-2, 3e-2};
    default:
      return {1e-4, 1e-4};
  }
}

// Checks the response's out (and lse, when asked) against the float64 reference.
inline void ExpectMatchesReference(const v1::AttendRequest& request,
                                   const v1::AttendResponse& response) {
  absl::StatusOr<wire::DecodedRequest> decoded =
      wire::DecodeRequest(request, kernels::ProblemLimits());
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  const kernels::AttentionProblem& p = decoded->problem;
  kernels::ReferenceResult ref;
  // The reference writes its result into `ref`; the output views are only checked for presence.
  std::vector<char> unused_out(static_cast<size_t>(decoded->out_bytes()));
  std::vector<float> unused_lse(static_cast<size_t>(p.lse_elements()));
  const absl::Status status = kernels::ReferenceAttention(
      p, wire::TensorsFor(*decoded, unused_out.data(), unused_lse.data()), &ref);
  ASSERT_TRUE(status.ok()) << status;

  ASSERT_EQ(response.out().dtype(), request.q().dtype());
  const std::vector<int64_t> out_shape = wire::OutShape(p);
  ASSERT_EQ(response.out().shape_size(), 4);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(response.out().shape(i), out_shape[i]) << "dim " << i;
  ASSERT_EQ(static_cast<int64_t>(response.out().data().size()), decoded->out_bytes());
  const Tolerance tol = ToleranceFor(request.q().dtype());
  int bad = 0;
  for (int64_t i = 0; i < p.out_elements() && bad < 5; ++i) {
    const double got = kernels::LoadAsFloat(response.out().data().data(), p.dtype, i);
    const double want = ref.out[i];
    if (std::abs(got - want) > tol.atol + tol.rtol * std::abs(want)) {
      ADD_FAILURE() << "out[" << i << "] = " << got << ", reference " << want;
      ++bad;
    }
  }
  if (!p.return_lse) {
    EXPECT_FALSE(response.has_lse());
    return;
  }
  ASSERT_EQ(response.lse().dtype(), v1::DTYPE_F32);
  ASSERT_EQ(static_cast<int64_t>(response.lse().data().size()), p.lse_elements() * 4);
  for (int64_t i = 0; i < p.lse_elements() && bad < 5; ++i) {
    const double got = kernels::LoadAsFloat(response.lse().data().data(), kernels::DType::kF32, i);
    const double want = ref.lse[i];
    if (std::isinf(want)) {
      EXPECT_EQ(got, want) << "lse[" << i << "]";
    } else if (std::abs(got - want) > 1e-3 + 1e-4 * std::abs(want)) {
      ADD_FAILURE() << "lse[" << i << "] = " << got << ", reference " << want;
      ++bad;
    }
  }
}

}  // namespace attnd::testing

#endif  // ATTND_TESTS_SERVER_EXECUTOR_RANDOM_REQUEST_H_
