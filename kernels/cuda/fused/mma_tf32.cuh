// The tensor-core step of the f32 fused kernel: mma.sync m16n8k8 on TF32 operands with f32
// accumulators, and the big/small split that makes three of them as accurate as f32 (3xTF32).
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k8" .tf32), lane = threadIdx % 32,
// g = lane / 4, t = lane % 4:
//   A 16×8 (row-major)  a0: (g, t)   a1: (g + 8, t)   a2: (g, t + 4)   a3: (g + 8, t + 4)
//   B 8×8  (k × n)      b0: (k t, n g)                 b1: (k t + 4, n g)
//   C 16×8 (f32)        c0, c1: (g, 2t + {0, 1})        c2, c3: (g + 8, 2t + {0, 1})
// Unlike m16n8k16 on 16-bit types, C's columns (2t, 2t + 1) are not A's (t, t + 4): the kernel
// reorders the keys of P·V's k-step instead of moving registers (fused_f32_kernel.cuh).
//
// ldmatrix (mma.cuh's LdMatrixX4, a b16 instruction) loads f32 data too: an 8×8 b16 matrix is
// 8 rows of 4 floats, and lane l receives float l % 4 of row l / 4, which is A's a0 layout and
// B's b0 layout (with K's rows as n).
#ifndef ATTND_KERNELS_CUDA_FUSED_MMA_TF32_CUH_
#define ATTND_KERNELS_CUDA_FUSED_MMA_TF32_CUH_

#include <cstdint>

namespace attnd::kernels::cuda::fused {

// d += a·b on one m16n8k8 tile; the operands are f32 bit patterns of which the tensor core
// reads the TF32 part (sign, exponent, top 10 mantissa bits; the low 13 bits are ignored).
__device__ __forceinline__ void MmaTf32(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                        uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// x = big + small, both usable as TF32 operands.
//   big   = x with its low 13 mantissa bits cleared (a TF32 value: 11 significant bits)
//   small = x - big, exact in f32 (the 13 cleared bits, same sign, |small| < 2^-10 |x|); the
//           tensor core reads it truncated to 11 significant bits, an error below
//           2^-10 |small| < 2^-20 |x|.
// So big + small' is x within 2^-20 |x|, where TF32 alone (big) is within 2^-10 |x|.
// Two instructions (LOP3, FADD); the error argument of the product is at MmaSplit.
struct SplitTf32 {
  uint32_t big;
  uint32_t small;
};
__device__ __forceinline__ SplitTf32 Split(float x) {
  const uint32_t big = __float_as_uint(x) & 0xffffe000u;
  return SplitTf32{big, __float_as_uint(x - __uint_as_float(big))};
}
__device__ __forceinline__ SplitTf32 Split(uint32_t bits) { return Split(__uint_as_float(bits)); }

// d += a·b in 3xTF32 (kPasses 3): a_small·b_big + a_big·b_small + a_big·b_big, the small terms
// first so that they are added while the accumulator is smallest. With a = A + α, b = B + β
// (|α| < 2^-20 |a|, |β| < 2^-20 |b| from Split), each product term is exact in the tensor core
// and the dropped a_small·b_small is below 2^-20 |ab|, so each term of the dot product is within
// about 3·2^-20 |ab| (≈ 2.9e-6) of exact, with errors of random sign across terms, and the sums
// are f32 (the tensor core's accumulation, then ours). One pass of TF32 (kPasses 1) is within
// 2·2^-10 |ab| (≈ 2e-3): 700× worse. kPasses 1 exists only for the test that proves the f32
// tests catch it (RunFusedTf32ForTest).
template <int kPasses>
__device__ __forceinline__ void MmaSplit(float (&d)[4], const uint32_t (&a_big)[4],
                                         const uint32_t (&a_small)[4], SplitTf32 b0,
                                         SplitTf32 b1) {
  static_assert(kPasses == 1 || kPasses == 3, "3xTF32, or plain TF32 for the test");
  if constexpr (kPasses == 3) {
    MmaTf32(d, a_small, b0.big, b1.big);
    MmaTf32(d, a_big, b0.small, b1.small);
  }
  MmaTf32(d, a_big, b0.big, b1.big);
}

}  // namespace attnd::kernels::cuda::fused

#endif  // ATTND_KERNELS_CUDA_FUSED_MMA_TF32_CUH_
