// Scalar conversions between f32 and the 16-bit float formats (round to nearest even).
#ifndef ATTND_KERNELS_DTYPE_CONVERT_H_
#define ATTND_KERNELS_DTYPE_CONVERT_H_

#include <cstdint>

#include "kernels/problem.h"

namespace attnd::kernels {

float HalfToFloat(uint16_t h);
uint16_t FloatToHalf(float f);
float BFloat16ToFloat(uint16_t b);
uint16_t FloatToBFloat16(float f);

// Element i of a buffer of `dtype`, as float (unaligned buffers are fine).
float LoadAsFloat(const void* data, DType dtype, int64_t i);
void StoreFromFloat(void* data, DType dtype, int64_t i, float value);
// Converts n elements.
void ConvertToFloat(const void* src, DType dtype, int64_t n, float* dst);
void ConvertFromFloat(const float* src, int64_t n, DType dtype, void* dst);

}  // namespace attnd::kernels

#endif  // ATTND_KERNELS_DTYPE_CONVERT_H_
