#include "kernels/dtype_convert.h"

#include <cstdint>
#include <cstring>

namespace attnd::kernels {
namespace {

uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

float BitsFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

// Rounds `value >> shift` to nearest, ties to even (shift in [1, 31]).
uint32_t ShiftRoundNearestEven(uint32_t value, int shift) {
  const uint32_t kept = value >> shift;
  const uint32_t rest = value & ((uint32_t{1} << shift) - 1);
  const uint32_t half = uint32_t{1} << (shift - 1);
  return kept + ((rest > half || (rest == half && (kept & 1))) ? 1 : 0);
}

// The conversions themselves, internal so that the loops below inline them (the library is
// built -fPIC, where calls to the exported functions cannot be inlined).
inline float HalfBitsToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exponent = (h >> 10) & 0x1f;
  const uint32_t mantissa = h & 0x3ff;
  if (exponent == 0) {
    // Zero or subnormal: mantissa · 2^-24, exact in f32.
    const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-08f;
    return BitsFloat(sign | FloatBits(magnitude));
  }
  if (exponent == 31) {
    // Inf, or NaN made quiet (as F16C's vcvtph2ps does), keeping its payload.
    return BitsFloat(sign | 0x7f800000u | (mantissa != 0 ? 0x400000u : 0u) | (mantissa << 13));
  }
  return BitsFloat(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

inline uint16_t FloatToHalfBits(float f) {
  const uint32_t bits = FloatBits(f);
  const uint32_t sign = (bits >> 16) & 0x8000;
  const uint32_t abs = bits & 0x7fffffff;
  if (abs > 0x7f800000) {
    // NaN: stays NaN (quiet bit set), keeping the payload's top bits.
    return static_cast<uint16_t>(sign | 0x7e00 | ((abs >> 13) & 0x3ff));
  }
  if (abs >= 0x477ff000) return static_cast<uint16_t>(sign | 0x7c00);  // >= 65520 rounds to Inf
  if (abs >= 0x38800000) {
    // Normal half: rebias the exponent (127 -> 15) and round the 13 dropped mantissa bits; a
    // carry into the exponent is the right answer.
    return static_cast<uint16_t>(sign | ShiftRoundNearestEven(abs - 0x38000000, 13));
  }
  // Below 2^-14: a half subnormal (units of 2^-24) or zero. value = mant · 2^(e - 150), so the
  // half mantissa is mant >> (126 - e). Below 2^-25 everything rounds to zero.
  const uint32_t exponent = abs >> 23;
  if (exponent < 102) return static_cast<uint16_t>(sign);
  const uint32_t mantissa = (abs & 0x7fffff) | 0x800000;
  // A round-up to 0x400 is the smallest normal half, encoded correctly.
  return static_cast<uint16_t>(sign |
                               ShiftRoundNearestEven(mantissa, static_cast<int>(126 - exponent)));
}

inline float BFloat16BitsToFloat(uint16_t b) { return BitsFloat(static_cast<uint32_t>(b) << 16); }

inline uint16_t FloatToBFloat16Bits(float f) {
  const uint32_t bits = FloatBits(f);
  if ((bits & 0x7fffffff) > 0x7f800000) {
    return static_cast<uint16_t>((bits >> 16) | 0x0040);  // NaN stays (quiet) NaN
  }
  // Round to nearest even on the low 16 bits; overflow past the largest finite carries to Inf.
  const uint32_t rounding = 0x7fff + ((bits >> 16) & 1);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

}  // namespace

float HalfToFloat(uint16_t h) { return HalfBitsToFloat(h); }
uint16_t FloatToHalf(float f) { return FloatToHalfBits(f); }
float BFloat16ToFloat(uint16_t b) { return BFloat16BitsToFloat(b); }
uint16_t FloatToBFloat16(float f) { return FloatToBFloat16Bits(f); }

float LoadAsFloat(const void* data, DType dtype, int64_t i) {
  const unsigned char* bytes = static_cast<const unsigned char*>(data);
  switch (dtype) {
    case DType::kF32: {
      float f;
      std::memcpy(&f, bytes + i * 4, 4);
      return f;
    }
    case DType::kF16: {
      uint16_t h;
      std::memcpy(&h, bytes + i * 2, 2);
      return HalfBitsToFloat(h);
    }
    case DType::kBF16: {
      uint16_t b;
      std::memcpy(&b, bytes + i * 2, 2);
      return BFloat16BitsToFloat(b);
    }
  }
  return 0.0f;
}

void StoreFromFloat(void* data, DType dtype, int64_t i, float value) {
  unsigned char* bytes = static_cast<unsigned char*>(data);
  switch (dtype) {
    case DType::kF32:
      std::memcpy(bytes + i * 4, &value, 4);
      return;
    case DType::kF16: {
      const uint16_t h = FloatToHalfBits(value);
      std::memcpy(bytes + i * 2, &h, 2);
      return;
    }
    case DType::kBF16: {
      const uint16_t b = FloatToBFloat16Bits(value);
      std::memcpy(bytes + i * 2, &b, 2);
      return;
    }
  }
}

void ConvertToFloat(const void* src, DType dtype, int64_t n, float* dst) {
  const unsigned char* bytes = static_cast<const unsigned char*>(src);
  // One loop per dtype, so that each inlines its conversion (and bf16's vectorises).
  switch (dtype) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, bytes + i * 2, 2);
        dst[i] = HalfBitsToFloat(h);
      }
      return;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t b;
        std::memcpy(&b, bytes + i * 2, 2);
        dst[i] = BFloat16BitsToFloat(b);
      }
      return;
  }
}

void ConvertFromFloat(const float* src, int64_t n, DType dtype, void* dst) {
  unsigned char* bytes = static_cast<unsigned char*>(dst);
  switch (dtype) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = FloatToHalfBits(src[i]);
        std::memcpy(bytes + i * 2, &h, 2);
      }
      return;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t b = FloatToBFloat16Bits(src[i]);
        std::memcpy(bytes + i * 2, &b, 2);
      }
      return;
  }
}

}  // namespace attnd::kernels
