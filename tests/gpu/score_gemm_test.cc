// attnd's score GEMM (kernels/cuda/score_gemm) against a float64 product of the same 16-bit
// inputs: partial tiles at every edge, head dims that are not a multiple of 64, GQA, BMHK
// strides, C rows of a multiple of 4 floats (the TMA stores) or not (the stores from registers,
// vector or scalar), a C whose rows are padded, and more tiles than a CTA holds at once
// (every CTA's two consumers and the stage ring wrapping). Also which steps it declines, leaving
// them to cuBLAS. The naive, sliced and chunked suites (cuda_attention_test.cc) run it too,
// through CudaStepRunner, with ATTND_SCORE_GEMM=own (the kernel is opt-in: score_gemm.h).
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/cuda/score_gemm/score_gemm.h"
#include "kernels/cuda/steps.h"
#include "kernels/dtype_convert.h"
#include "tests/gpu/device_support.h"

namespace attnd::kernels::testing {
namespace {

using cuda::GemmOperand;
using cuda::GemmStep;
using cuda::TryScoreGemm;

bool HopperDevice() {
  int device = 0;
  int major = 0;
  return cudaGetDevice(&device) == cudaSuccess &&
         cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) ==
             cudaSuccess &&
         major == 9;
}

struct GemmCase {
  std::string name;
  DType dtype = DType::kBF16;
  int64_t batch = 1;
  int64_t q_heads = 1;
  int64_t group = 1;  // query heads per K head
  int64_t m = 1;
  int64_t n = 1;
  int64_t k = 64;
  bool bmhk = false;       // Q and K [B, M, H, D] (heads D apart) instead of [B, H, M, D]
  int64_t c_pad = 0;       // C's rows n + c_pad floats apart
  int64_t row_step = 1;    // reference rows checked: every row_step-th
  float alpha = 0.125f;
};

// A [B, H, rows, k] or [B, rows, H, k] tensor of random normals in 16 bits, as an operand.
struct Operand16 {
  std::vector<uint16_t> host;
  std::vector<float> values;  // host's elements as floats (exact)
  int64_t seq = 0;  // elements between rows
  int64_t head = 0;
  int64_t batch = 0;

  float At(int64_t b, int64_t h, int64_t row, int64_t col) const {
    return values[static_cast<size_t>(b * batch + h * head + row * seq + col)];
  }
};

Operand16 RandomOperand(int64_t batch, int64_t heads, int64_t rows, int64_t k, bool bmhk,
                        DType dtype, std::mt19937* rng) {
  Operand16 o;
  o.seq = bmhk ? heads * k : k;
  o.head = bmhk ? k : rows * k;
  o.batch = heads * rows * k;
  std::normal_distribution<float> normal(0.0f, 1.0f);
  o.host.resize(static_cast<size_t>(batch * heads * rows * k));
  o.values.resize(o.host.size());
  for (size_t i = 0; i < o.host.size(); ++i) {
    o.host[i] = dtype == DType::kF16 ? FloatToHalf(normal(*rng)) : FloatToBFloat16(normal(*rng));
    o.values[i] = dtype == DType::kF16 ? HalfToFloat(o.host[i]) : BFloat16ToFloat(o.host[i]);
  }
  return o;
}

GemmOperand OperandOf(const DeviceBuffer& buffer, const Operand16& o, DType dtype,
                      int64_t head_div) {
  GemmOperand g;
  g.base = buffer.get();
  g.dtype = dtype;
  g.batch_stride = o.batch;
  g.head_stride = o.head;
  g.head_div = head_div;
  g.ld = o.seq;
  return g;
}

constexpr uint32_t kUntouched = 0x7FC01234u;  // a NaN no kernel writes

void RunCase(const GemmCase& c) {
  SCOPED_TRACE(c.name);
  std::mt19937 rng(static_cast<uint32_t>(std::hash<std::string>{}(c.name)));
  const int64_t kv_heads = c.q_heads / c.group;
  const Operand16 q = RandomOperand(c.batch, c.q_heads, c.m, c.k, c.bmhk, c.dtype, &rng);
  const Operand16 kt = RandomOperand(c.batch, kv_heads, c.n, c.k, c.bmhk, c.dtype, &rng);
  const int64_t z_count = c.batch * c.q_heads;
  const int64_t ldc = c.n + c.c_pad;
  // C, then a guard row: nothing outside [Z, m, n] may change.
  const size_t c_elements = static_cast<size_t>(z_count * c.m * ldc + ldc);
  std::vector<uint32_t> c_host(c_elements, kUntouched);

  DeviceBuffer q_dev, k_dev, c_dev;
  ASSERT_CUDA_OK(q_dev.Upload(q.host.data(), q.host.size() * 2));
  ASSERT_CUDA_OK(k_dev.Upload(kt.host.data(), kt.host.size() * 2));
  ASSERT_CUDA_OK(c_dev.Upload(c_host.data(), c_elements * 4));

  GemmStep s;
  s.batch = c.batch;
  s.q_heads = c.q_heads;
  s.m = c.m;
  s.n = c.n;
  s.k = c.k;
  s.b_transposed = true;
  s.alpha = c.alpha;
  s.beta = 0.0f;
  s.a = OperandOf(q_dev, q, c.dtype, 1);
  s.b = OperandOf(k_dev, kt, c.dtype, c.group);
  s.c.base = c_dev.get();
  s.c.dtype = DType::kF32;
  s.c.ld = ldc;
  s.c.head_stride = c.m * ldc;
  s.c.batch_stride = c.q_heads * c.m * ldc;
  const absl::StatusOr<bool> taken = TryScoreGemm(s, nullptr);
  ASSERT_TRUE(taken.ok()) << taken.status();
  ASSERT_TRUE(*taken) << "the score GEMM declined an aligned 16-bit step";
  ASSERT_CUDA_OK(cudaDeviceSynchronize());
  ASSERT_CUDA_OK(c_dev.Download(c_host.data()));

  int64_t checked = 0;
  int failures = 0;
  for (int64_t z = 0; z < z_count; ++z) {
    const int64_t b = z / c.q_heads;
    const int64_t h = z % c.q_heads;
    for (int64_t i = 0; i < c.m; ++i) {
      const uint32_t* c_row = c_host.data() + z * c.m * ldc + i * ldc;
      for (int64_t j = c.n; j < ldc; ++j) {
        ASSERT_EQ(c_row[j], kUntouched) << "padding of row " << i << " of z " << z << " written";
      }
      if (i % c.row_step != 0 && i != c.m - 1) continue;
      for (int64_t j = 0; j < c.n; ++j) {
        double dot = 0.0;
        double magnitude = 0.0;
        for (int64_t x = 0; x < c.k; ++x) {
          const double product =
              static_cast<double>(q.At(b, h, i, x)) * kt.At(b, h / c.group, j, x);
          dot += product;
          magnitude += std::fabs(product);
        }
        float got;
        std::memcpy(&got, &c_row[j], 4);
        const double want = c.alpha * dot;
        // f32 accumulation of k products: a few f32 ulps of the magnitude.
        const double tolerance = 1e-5 * c.alpha * magnitude + 1e-6;
        ++checked;
        if (!(std::fabs(got - want) <= tolerance) && ++failures <= 5) {
          ADD_FAILURE() << "z " << z << " row " << i << " col " << j << ": got " << got
                        << ", want " << want << " (tolerance " << tolerance << ")";
        }
      }
    }
  }
  EXPECT_EQ(failures, 0) << "of " << checked << " elements checked";
  const uint32_t* guard = c_host.data() + z_count * c.m * ldc;
  for (int64_t j = 0; j < ldc; ++j) ASSERT_EQ(guard[j], kUntouched) << "guard element " << j;
}

TEST(ScoreGemmTest, MatchesFloat64) {
  SKIP_WITHOUT_DEVICE();
  if (!HopperDevice()) GTEST_SKIP() << "the score GEMM needs compute capability 9";
  const GemmCase cases[] = {
      {"bf16_edges_B2_H3_m97_n161_k64", DType::kBF16, 2, 3, 1, 97, 161, 64},
      {"f16_bmhk_gqa2_m256_n384_k128", DType::kF16, 1, 4, 2, 256, 384, 128, true},
      {"bf16_k72_m130_n129", DType::kBF16, 1, 2, 1, 130, 129, 72},
      // C rows of 260 floats: the TMA stores, clipped at both edges.
      {"bf16_tma_edges_B2_H3_m131_n260_k64", DType::kBF16, 2, 3, 1, 131, 260, 64},
      {"f16_k40_m1_n300", DType::kF16, 1, 1, 1, 1, 300, 40},
      {"bf16_k512_odd_ldc_m200_n161", DType::kBF16, 1, 2, 1, 200, 161, 512, false, 2},
      {"bf16_bmhk_gqa4_k392_m129_n257", DType::kBF16, 2, 4, 4, 129, 257, 392, true},
      // 8·8·8 = 512 tiles: about four a CTA on 132 SMs, the ring of 6 stages wrapping 9 steps.
      {"bf16_many_tiles_H8_m1024_n1024_k576", DType::kBF16, 1, 8, 1, 1024, 1024, 576, false, 0,
       61},
      {"f16_many_tiles_B3_H5_m640_n777_k256", DType::kF16, 3, 5, 1, 640, 777, 256, false, 1, 37,
       1.0f},
  };
  for (const GemmCase& c : cases) RunCase(c);
}

TEST(ScoreGemmTest, DeclinesWhatItDoesNotServe) {
  SKIP_WITHOUT_DEVICE();
  if (!HopperDevice()) GTEST_SKIP() << "the score GEMM needs compute capability 9";
  DeviceBuffer a, c;
  ASSERT_CUDA_OK(a.Allocate(1 << 20));
  ASSERT_CUDA_OK(c.Allocate(1 << 20));
  GemmStep base;
  base.batch = 1;
  base.q_heads = 2;
  base.m = 64;
  base.n = 64;
  base.k = 64;
  base.b_transposed = true;
  base.a.base = a.get();
  base.a.dtype = DType::kBF16;
  base.a.ld = 64;
  base.a.head_stride = 64 * 64;
  base.a.batch_stride = 2 * 64 * 64;
  base.b = base.a;
  base.c.base = c.get();
  base.c.dtype = DType::kF32;
  base.c.ld = 64;
  base.c.head_stride = 64 * 64;
  base.c.batch_stride = 2 * 64 * 64;

  auto expect_declined = [](const GemmStep& s, const char* why) {
    const absl::StatusOr<bool> taken = TryScoreGemm(s, nullptr);
    ASSERT_TRUE(taken.ok()) << why << ": " << taken.status();
    EXPECT_FALSE(*taken) << why;
  };
  GemmStep s = base;
  s.a.dtype = s.b.dtype = DType::kF32;
  expect_declined(s, "f32 inputs");
  s = base;
  s.b_transposed = false;
  expect_declined(s, "B not transposed (the P·V step)");
  s = base;
  s.beta = 1.0f;
  expect_declined(s, "beta 1");
  s = base;
  s.c.dtype = DType::kBF16;
  expect_declined(s, "16-bit C");
  s = base;
  s.a.ld = s.b.ld = 36;  // 72-byte rows: TMA needs strides of 16 bytes
  s.k = 36;
  expect_declined(s, "rows not 16-byte aligned");
  s = base;
  s.a.base = static_cast<const unsigned char*>(a.get()) + 2;
  expect_declined(s, "base not 16-byte aligned");
  s = base;
  s.b.dtype = DType::kF16;
  expect_declined(s, "mixed dtypes");
  ASSERT_CUDA_OK(cudaDeviceSynchronize());
}

}  // namespace
}  // namespace attnd::kernels::testing
