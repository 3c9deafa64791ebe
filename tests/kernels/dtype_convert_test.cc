// f16/bf16 conversions: exact round trips, round-to-nearest-even on ties, subnormals, overflow
// to Inf, NaN staying NaN; and a property check that every conversion picks the nearest value.
#include "kernels/dtype_convert.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/problem.h"

namespace attnd::kernels {
namespace {

float FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

TEST(DTypeConvertTest, HalfRoundTripsEveryPattern) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = HalfToFloat(static_cast<uint16_t>(h));
    const bool nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0;
    EXPECT_EQ(std::isnan(f), nan) << std::hex << h;
    if (nan) {
      EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(f))));  // stays NaN (made quiet)
    } else {
      ASSERT_EQ(FloatToHalf(f), h) << std::hex << h;
    }
  }
}

TEST(DTypeConvertTest, BFloat16RoundTripsEveryPattern) {
  for (uint32_t b = 0; b < 65536; ++b) {
    const float f = BFloat16ToFloat(static_cast<uint16_t>(b));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(BFloat16ToFloat(FloatToBFloat16(f))));
    } else {
      ASSERT_EQ(FloatToBFloat16(f), b) << std::hex << b;
    }
  }
}

TEST(DTypeConvertTest, HalfSpecialValues) {
  EXPECT_EQ(FloatToHalf(1.0f), 0x3c00);
  EXPECT_EQ(FloatToHalf(-2.0f), 0xc000);
  EXPECT_EQ(FloatToHalf(-0.0f), 0x8000);
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7bff);  // the largest half
  EXPECT_EQ(FloatToHalf(65519.0f), 0x7bff);  // just under the midpoint to 65536
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7c00);  // the midpoint ties to even: Inf
  EXPECT_EQ(FloatToHalf(1e10f), 0x7c00);
  EXPECT_EQ(FloatToHalf(-std::numeric_limits<float>::infinity()), 0xfc00);
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -14)), 0x0400);             // smallest normal
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -24)), 0x0001);             // smallest subnormal
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -25)), 0x0000);             // half of it ties to even: 0
  EXPECT_EQ(FloatToHalf(std::ldexp(1.5f, -25)), 0x0001);             // above the tie: up
  EXPECT_EQ(FloatToHalf(std::ldexp(3.0f, -25)), 0x0002);             // 1.5 units ties to even: 2
  EXPECT_EQ(FloatToHalf(std::ldexp(5.0f, -25)), 0x0002);             // 2.5 units ties to even: 2
  EXPECT_EQ(FloatToHalf(std::ldexp(1023.5f, -24)), 0x0400);          // rounds up into the normals
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // tie: to even
  EXPECT_EQ(FloatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie: to even (up)
  EXPECT_EQ(FloatToHalf(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(std::nanf("")))));
  EXPECT_EQ(HalfToFloat(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(HalfToFloat(0x7bff), 65504.0f);
  EXPECT_EQ(HalfToFloat(0xfc00), -std::numeric_limits<float>::infinity());
}

TEST(DTypeConvertTest, BFloat16SpecialValues) {
  EXPECT_EQ(FloatToBFloat16(1.0f), 0x3f80);
  EXPECT_EQ(FloatToBFloat16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);        // tie: to even
  EXPECT_EQ(FloatToBFloat16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);    // tie: to even (up)
  EXPECT_EQ(FloatToBFloat16(std::numeric_limits<float>::max()), 0x7f80);  // rounds to Inf
  EXPECT_EQ(FloatToBFloat16(-std::numeric_limits<float>::infinity()), 0xff80);
  EXPECT_EQ(FloatToBFloat16(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(FloatToBFloat16(FromBits(0x00018000)), 0x0002);  // subnormal tie: to even
  EXPECT_TRUE(std::isnan(BFloat16ToFloat(FloatToBFloat16(std::nanf("")))));
  // A NaN whose payload lives only in the low 16 bits must not become Inf.
  EXPECT_TRUE(std::isnan(BFloat16ToFloat(FloatToBFloat16(FromBits(0x7f800001)))));
}

// For random bit patterns: the conversion is the nearest representable value, ties to even.
template <typename ToFn, typename FromFn>
void CheckNearest(ToFn to, FromFn from, uint32_t max_finite_bits) {
  std::mt19937 rng(3);
  for (int i = 0; i < 200000; ++i) {
    const float f = FromBits(rng());
    if (std::isnan(f)) continue;
    const uint16_t c = to(f);
    const uint16_t magnitude = c & 0x7fff;
    const double got = from(c);
    if (std::isinf(got)) {
      EXPECT_GE(std::fabs(f), from(static_cast<uint16_t>(max_finite_bits))) << f;
      continue;
    }
    const double error = std::fabs(static_cast<double>(f) - got);
    // The neighbours one code below and above (same sign).
    const uint16_t sign = c & 0x8000;
    for (int step : {-1, 1}) {
      const int neighbour = magnitude + step;
      if (neighbour < 0 || neighbour > static_cast<int>(max_finite_bits)) continue;
      const double other = from(static_cast<uint16_t>(sign | neighbour));
      const double other_error = std::fabs(static_cast<double>(f) - other);
      ASSERT_LE(error, other_error) << "f=" << f << " code=" << std::hex << c;
      if (error == other_error) {
        ASSERT_EQ(c & 1, 0) << "tie not to even: f=" << f;
      }
    }
  }
}

TEST(DTypeConvertTest, HalfIsNearestEven) { CheckNearest(FloatToHalf, HalfToFloat, 0x7bff); }

TEST(DTypeConvertTest, BFloat16IsNearestEven) {
  CheckNearest(FloatToBFloat16, BFloat16ToFloat, 0x7f7f);
}

TEST(DTypeConvertTest, BufferHelpers) {
  const std::vector<float> values = {1.5f, -2.25f, 3.0e-5f, 65000.0f};
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    // Unaligned on purpose: the helpers accept any byte address.
    std::vector<unsigned char> bytes(values.size() * DTypeSize(dtype) + 1);
    unsigned char* data = bytes.data() + 1;
    ConvertFromFloat(values.data(), 4, dtype, data);
    std::vector<float> back(4);
    ConvertToFloat(data, dtype, 4, back.data());
    for (int i = 0; i < 4; ++i) {
      EXPECT_EQ(LoadAsFloat(data, dtype, i), back[i]);
      const float expected = dtype == DType::kF32   ? values[i]
                             : dtype == DType::kF16 ? HalfToFloat(FloatToHalf(values[i]))
                                                    : BFloat16ToFloat(FloatToBFloat16(values[i]));
      EXPECT_EQ(back[i], expected) << DTypeName(dtype) << " " << i;
      StoreFromFloat(data, dtype, i, -values[i]);
      EXPECT_EQ(LoadAsFloat(data, dtype, i), -expected);
    }
  }
}

}  // namespace
}  // namespace attnd::kernels
