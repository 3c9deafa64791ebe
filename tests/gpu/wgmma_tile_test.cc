// The wgmma building blocks (kernels/cuda/wgmma) on one tile, against float64 products of the
// same bf16 inputs: S = A·Bᵀ (shared-memory operands, K-major, k steps across two atom columns)
// and O = bf16(S)·V (register A from the accumulators, V MN-major). Fresh random inputs, never
// zeros; a wrong descriptor, swizzle or fragment layout moves whole rows or columns, far past
// the tolerance. Needs an sm_90 device (skipped otherwise).
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/wgmma/tile_check.h"
#include "kernels/dtype_convert.h"
#include "kernels/problem.h"
#include "tests/gpu/device_support.h"

namespace attnd::kernels {
namespace {

using testing::DeviceBuffer;

// `count` bf16 values uniform in [-1, 1), as bytes, and the floats they round to.
std::vector<uint16_t> RandomBf16(int count, uint32_t seed, std::vector<float>* values) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<uint16_t> bits(count);
  values->resize(count);
  for (int i = 0; i < count; ++i) {
    StoreFromFloat(bits.data(), DType::kBF16, i, dist(gen));
    (*values)[i] = LoadAsFloat(bits.data(), DType::kBF16, i);
  }
  return bits;
}

TEST(WgmmaTileTest, SharedAndRegisterOperandsMatchFloat64) {
  SKIP_WITHOUT_DEVICE();
  constexpr int kRows = cuda::kWgmmaCheckRows;
  constexpr int kKeys = cuda::kWgmmaCheckKeys;
  constexpr int kDim = cuda::kWgmmaCheckDim;
  constexpr int kVDim = cuda::kWgmmaCheckVDim;
  std::vector<float> a, b, v;
  const std::vector<uint16_t> a_bits = RandomBf16(kRows * kDim, std::random_device()(), &a);
  const std::vector<uint16_t> b_bits = RandomBf16(kKeys * kDim, std::random_device()(), &b);
  const std::vector<uint16_t> v_bits = RandomBf16(kKeys * kVDim, std::random_device()(), &v);
  DeviceBuffer da, db, dv, ds, dout;
  ASSERT_CUDA_OK(da.Upload(a_bits.data(), a_bits.size() * 2));
  ASSERT_CUDA_OK(db.Upload(b_bits.data(), b_bits.size() * 2));
  ASSERT_CUDA_OK(dv.Upload(v_bits.data(), v_bits.size() * 2));
  ASSERT_CUDA_OK(ds.Allocate(kRows * kKeys * sizeof(float)));
  ASSERT_CUDA_OK(dout.Allocate(kRows * kVDim * sizeof(float)));
  const absl::Status status =
      cuda::RunWgmmaTileCheck(da.get(), db.get(), dv.get(), static_cast<float*>(ds.get()),
                              static_cast<float*>(dout.get()), nullptr);
  if (absl::IsFailedPrecondition(status)) GTEST_SKIP() << status;
  ASSERT_TRUE(status.ok()) << status;
  std::vector<float> s(kRows * kKeys), o(kRows * kVDim);
  ASSERT_CUDA_OK(ds.Download(s.data()));
  ASSERT_CUDA_OK(dout.Download(o.data()));

  // S: each of its 128 products of two values in [-1, 1] is exact in f32; only the f32 sums
  // round (|S| <= 128, error well below 1e-3).
  int bad = 0;
  for (int i = 0; i < kRows; ++i) {
    for (int j = 0; j < kKeys; ++j) {
      double want = 0;
      for (int d = 0; d < kDim; ++d) want += double{a[i * kDim + d]} * b[j * kDim + d];
      const double got = s[i * kKeys + j];
      if (std::abs(got - want) > 1e-3 && bad++ < 10) {
        ADD_FAILURE() << "S[" << i << "][" << j << "] = " << got << ", want " << want;
      }
    }
  }
  // O from the kernel's own S rounded to bf16 (as the kernel rounds it), so that O checks the
  // register operand and V's layout alone.
  for (int i = 0; i < kRows; ++i) {
    for (int n = 0; n < kVDim; ++n) {
      double want = 0;
      for (int k = 0; k < kKeys; ++k) {
        uint16_t p_bits;
        StoreFromFloat(&p_bits, DType::kBF16, 0, s[i * kKeys + k]);
        want += double{LoadAsFloat(&p_bits, DType::kBF16, 0)} * v[k * kVDim + n];
      }
      const double got = o[i * kVDim + n];
      if (std::abs(got - want) > 1e-3 * (1 + std::abs(want)) && bad++ < 20) {
        ADD_FAILURE() << "O[" << i << "][" << n << "] = " << got << ", want " << want;
      }
    }
  }
  EXPECT_EQ(bad, 0);
}

}  // namespace
}  // namespace attnd::kernels
