// The wgmma self-check kernel (tile_check.h).
#include "kernels/cuda/wgmma/tile_check.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/wgmma/wgmma.cuh"

namespace attnd::kernels::cuda {
namespace {

constexpr int kRows = kWgmmaCheckRows;
constexpr int kKeys = kWgmmaCheckKeys;
constexpr int kDim = kWgmmaCheckDim;
constexpr int kVDim = kWgmmaCheckVDim;
constexpr int kABytes = kRows * kDim * 2;   // 16 KiB, two atom columns
constexpr int kBBytes = kKeys * kDim * 2;   // 16 KiB
constexpr int kVBytes = kKeys * kVDim * 2;  // 8 KiB, one atom column
constexpr int kSmemBytes = kABytes + kBBytes + kVBytes + 1024;  // + alignment slack

__device__ __forceinline__ uint32_t PackBf16(float lo, float hi) {
  const __nv_bfloat162 pair = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&pair);
}

__global__ void __launch_bounds__(128) WgmmaTileCheckKernel(const __nv_bfloat16* a,
                                                            const __nv_bfloat16* b,
                                                            const __nv_bfloat16* v, float* s_out,
                                                            float* o_out) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ unsigned char smem_raw[];
  // The swizzle acts on address bits 4-9: atoms must start at multiples of 1024 bytes.
  const uint32_t raw = static_cast<uint32_t>(__cvta_generic_to_shared(smem_raw));
  unsigned char* smem = smem_raw + ((1024 - raw % 1024) % 1024);
  unsigned char* sa = smem;
  unsigned char* sb = sa + kABytes;
  unsigned char* sv = sb + kBBytes;
  const int t = static_cast<int>(threadIdx.x);
  for (int i = t; i < kRows * kDim; i += 128) {
    *reinterpret_cast<__nv_bfloat16*>(sa + wgmma::KMajorOffset(i / kDim, i % kDim, kRows)) = a[i];
  }
  for (int i = t; i < kKeys * kDim; i += 128) {
    *reinterpret_cast<__nv_bfloat16*>(sb + wgmma::KMajorOffset(i / kDim, i % kDim, kKeys)) = b[i];
  }
  for (int i = t; i < kKeys * kVDim; i += 128) {
    *reinterpret_cast<__nv_bfloat16*>(sv + wgmma::MnMajorOffset(i / kVDim, i % kVDim,
                                                                  kKeys * 128)) = v[i];
  }
  wgmma::FenceSharedForAsyncProxy();
  __syncthreads();

  const uint32_t sa_addr = static_cast<uint32_t>(__cvta_generic_to_shared(sa));
  const uint32_t sb_addr = static_cast<uint32_t>(__cvta_generic_to_shared(sb));
  const uint32_t sv_addr = static_cast<uint32_t>(__cvta_generic_to_shared(sv));

  // S = A·Bᵀ: 8 k16 steps over D 128; steps 4-7 are in the second atom column.
  float s[32];
#pragma unroll
  for (int i = 0; i < 32; ++i) s[i] = 0.0f;
  wgmma::FenceOperands(s);
  wgmma::Fence();
#pragma unroll
  for (int kk = 0; kk < kDim / 16; ++kk) {
    // Atom column kk / 4, then 32 bytes (16 elements) per step inside it.
    const uint32_t a_at = sa_addr + (kk / 4) * kRows * 128 + (kk % 4) * 32;
    const uint32_t b_at = sb_addr + (kk / 4) * kKeys * 128 + (kk % 4) * 32;
    const uint64_t desc_a = wgmma::Sw128Descriptor(a_at, 16, 1024);
    const uint64_t desc_b = wgmma::Sw128Descriptor(b_at, 16, 1024);
    wgmma::MmaSS<64, __nv_bfloat16>(s, desc_a, desc_b, kk > 0);
  }
  wgmma::Commit();
  wgmma::Wait<0>();
  wgmma::FenceOperands(s);

  const int warp = t / 32;
  const int lane = t % 32;
  const int row = 16 * warp + lane / 4;
#pragma unroll
  for (int j = 0; j < kKeys / 8; ++j) {
    const int col = 8 * j + 2 * (lane % 4);
    s_out[row * kKeys + col] = s[4 * j];
    s_out[row * kKeys + col + 1] = s[4 * j + 1];
    s_out[(row + 8) * kKeys + col] = s[4 * j + 2];
    s_out[(row + 8) * kKeys + col + 1] = s[4 * j + 3];
  }

  // O = bf16(S)·V: 4 k16 steps over the 64 keys, P from the accumulators.
  float o[32];
#pragma unroll
  for (int i = 0; i < 32; ++i) o[i] = 0.0f;
  wgmma::FenceOperands(o);
  wgmma::Fence();
#pragma unroll
  for (int kk = 0; kk < kKeys / 16; ++kk) {
    const uint32_t p[4] = {PackBf16(s[8 * kk], s[8 * kk + 1]), PackBf16(s[8 * kk + 2], s[8 * kk + 3]),
                           PackBf16(s[8 * kk + 4], s[8 * kk + 5]),
                           PackBf16(s[8 * kk + 6], s[8 * kk + 7])};
    const uint64_t desc_v = wgmma::Sw128Descriptor(sv_addr + kk * 2048, kKeys * 128, 1024);
    wgmma::MmaRS<64, __nv_bfloat16>(o, p, desc_v, kk > 0);
  }
  wgmma::Commit();
  wgmma::Wait<0>();
  wgmma::FenceOperands(o);
#pragma unroll
  for (int j = 0; j < kVDim / 8; ++j) {
    const int col = 8 * j + 2 * (lane % 4);
    o_out[row * kVDim + col] = o[4 * j];
    o_out[row * kVDim + col + 1] = o[4 * j + 1];
    o_out[(row + 8) * kVDim + col] = o[4 * j + 2];
    o_out[(row + 8) * kVDim + col + 1] = o[4 * j + 3];
  }
#endif
}

}  // namespace

absl::Status RunWgmmaTileCheck(const void* a, const void* b, const void* v, float* s, float* o,
                               void* stream) {
  int device = 0;
  cudaDeviceProp prop;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
    return absl::InternalError("wgmma check: no current CUDA device");
  }
  if (prop.major < 9) {
    return absl::FailedPreconditionError(
        absl::StrCat("wgmma needs sm_90 or later; the device is sm_", prop.major, prop.minor));
  }
  auto* kernel = &WgmmaTileCheckKernel;
  if (const cudaError_t e =
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes);
      e != cudaSuccess) {
    return absl::InternalError(absl::StrCat("wgmma check: ", cudaGetErrorString(e)));
  }
  auto* s_ = static_cast<cudaStream_t>(stream);
  kernel<<<1, 128, kSmemBytes, s_>>>(static_cast<const __nv_bfloat16*>(a),
                                     static_cast<const __nv_bfloat16*>(b),
                                     static_cast<const __nv_bfloat16*>(v), s, o);
  if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) {
    return absl::InternalError(absl::StrCat("wgmma check launch: ", cudaGetErrorString(e)));
  }
  if (const cudaError_t e = cudaStreamSynchronize(s_); e != cudaSuccess) {
    return absl::InternalError(absl::StrCat("wgmma check: ", cudaGetErrorString(e)));
  }
  return absl::OkStatus();
}

}  // namespace attnd::kernels::cuda
