// Loads and stores of f32, f16 and bf16 elements as float, for host and device code alike: the
// CUDA kernels use the hardware conversions, the host side (the CPU emulation of the steps in
// tests/gpu) the round-to-nearest-even ones of kernels/dtype_convert.h. Both round the same way.
#ifndef ATTND_KERNELS_CUDA_ELEM_IO_H_
#define ATTND_KERNELS_CUDA_ELEM_IO_H_

#include <cstdint>

#include "kernels/dtype_convert.h"
#include "kernels/mask.h"  // ATTND_HOST_DEVICE
#include "kernels/problem.h"

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

namespace attnd::kernels::cuda {

ATTND_HOST_DEVICE inline float F16BitsToFloat(uint16_t bits) {
#if defined(__CUDA_ARCH__)
  return __half2float(__ushort_as_half(bits));
#else
  return HalfToFloat(bits);
#endif
}

ATTND_HOST_DEVICE inline uint16_t FloatToF16Bits(float value) {
#if defined(__CUDA_ARCH__)
  return __half_as_ushort(__float2half_rn(value));
#else
  return FloatToHalf(value);
#endif
}

ATTND_HOST_DEVICE inline float Bf16BitsToFloat(uint16_t bits) {
#if defined(__CUDA_ARCH__)
  return __bfloat162float(__ushort_as_bfloat16(bits));
#else
  return BFloat16ToFloat(bits);
#endif
}

ATTND_HOST_DEVICE inline uint16_t FloatToBf16Bits(float value) {
#if defined(__CUDA_ARCH__)
  return __bfloat16_as_ushort(__float2bfloat16_rn(value));
#else
  return FloatToBFloat16(value);
#endif
}

// Bytes of one element (DTypeSize, usable in device code).
ATTND_HOST_DEVICE inline int64_t ElemBytes(DType dtype) { return dtype == DType::kF32 ? 4 : 2; }

// Element i of a buffer of type kType, as float; and the store back (rounded to nearest even).
template <DType kType>
struct ElemIO;

template <>
struct ElemIO<DType::kF32> {
  ATTND_HOST_DEVICE static float Load(const void* data, int64_t i) {
    return static_cast<const float*>(data)[i];
  }
  ATTND_HOST_DEVICE static void Store(void* data, int64_t i, float value) {
    static_cast<float*>(data)[i] = value;
  }
};

template <>
struct ElemIO<DType::kF16> {
  ATTND_HOST_DEVICE static float Load(const void* data, int64_t i) {
    return F16BitsToFloat(static_cast<const uint16_t*>(data)[i]);
  }
  ATTND_HOST_DEVICE static void Store(void* data, int64_t i, float value) {
    static_cast<uint16_t*>(data)[i] = FloatToF16Bits(value);
  }
};

template <>
struct ElemIO<DType::kBF16> {
  ATTND_HOST_DEVICE static float Load(const void* data, int64_t i) {
    return Bf16BitsToFloat(static_cast<const uint16_t*>(data)[i]);
  }
  ATTND_HOST_DEVICE static void Store(void* data, int64_t i, float value) {
    static_cast<uint16_t*>(data)[i] = FloatToBf16Bits(value);
  }
};

// The same with the type known at run time (for the bias, whose dtype is its own).
ATTND_HOST_DEVICE inline float LoadElem(const void* data, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::kF16:
      return ElemIO<DType::kF16>::Load(data, i);
    case DType::kBF16:
      return ElemIO<DType::kBF16>::Load(data, i);
    case DType::kF32:
    default:
      return ElemIO<DType::kF32>::Load(data, i);
  }
}

ATTND_HOST_DEVICE inline void StoreElem(void* data, DType dtype, int64_t i, float value) {
  switch (dtype) {
    case DType::kF16:
      ElemIO<DType::kF16>::Store(data, i, value);
      break;
    case DType::kBF16:
      ElemIO<DType::kBF16>::Store(data, i, value);
      break;
    case DType::kF32:
    default:
      ElemIO<DType::kF32>::Store(data, i, value);
      break;
  }
}

}  // namespace attnd::kernels::cuda

#endif  // ATTND_KERNELS_CUDA_ELEM_IO_H_
