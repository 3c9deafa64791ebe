// Host side of the fused variant's Hopper path (fused_wgmma.h).
#include "kernels/cuda/fused/fused_wgmma.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/fused/wgmma_kernel.cuh"

namespace attnd::kernels::cuda {
namespace {

using fused::FusedParams;
using fused::WgmmaShape;

template <class T, int kDim>
absl::Status Launch(const FusedParams& params, const AttentionProblem& p, cudaStream_t stream) {
  using Shape = WgmmaShape<kDim>;
  auto* kernel = &fused::WgmmaForwardKernel<T, Shape>;
  const int smem_bytes = p.has_bias ? Shape::kSmemBytesWithBias : Shape::kSmemBytes;
  if (const cudaError_t e = cudaFuncSetAttribute(
          kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes);
      e != cudaSuccess) {
    return absl::InternalError(absl::StrCat("fused wgmma kernel (dim ", kDim, ") shared memory ",
                                            smem_bytes, " bytes: ", cudaGetErrorString(e)));
  }
  const int64_t m_blocks = (p.q_len + Shape::kBlockM - 1) / Shape::kBlockM;
  const dim3 grid(static_cast<unsigned>(m_blocks), static_cast<unsigned>(p.q_heads),
                  static_cast<unsigned>(p.batch));
  kernel<<<grid, Shape::kThreads, smem_bytes, stream>>>(params);
  if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) {
    return absl::InternalError(absl::StrCat("fused wgmma kernel launch (dim ", kDim, ", grid ",
                                            m_blocks, "x", p.q_heads, "x", p.batch,
                                            "): ", cudaGetErrorString(e)));
  }
  return absl::OkStatus();
}

}  // namespace

int CurrentDeviceMajor() {
  int device = 0;
  int major = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
    return 0;
  }
  return major;
}

bool WgmmaFusedTakes(const AttentionProblem& p, int padded_dim) {
  static const bool enabled = [] {
    const char* env = std::getenv("ATTND_FUSED_WGMMA");
    return env == nullptr || std::strcmp(env, "0") != 0;
  }();
  // A ragged batch runs on the mma.sync kernel (cta_rows.h has not been carried over here).
  if (!enabled || p.ragged || (p.has_bias && p.bias_dtype == DType::kF32) ||
      (p.dtype != DType::kF16 && p.dtype != DType::kBF16) ||
      (padded_dim != 64 && padded_dim != 80 && padded_dim != 96 && padded_dim != 128)) {
    return false;
  }
  return CurrentDeviceMajor() == 9;
}

absl::Status RunWgmmaFused(const FusedParams& params, const AttentionProblem& p, int padded_dim,
                           void* stream) {
  auto* s = static_cast<cudaStream_t>(stream);
  const bool half = p.dtype == DType::kF16;
  switch (padded_dim) {
    case 64:
      return half ? Launch<__half, 64>(params, p, s) : Launch<__nv_bfloat16, 64>(params, p, s);
    case 80:
      return half ? Launch<__half, 80>(params, p, s) : Launch<__nv_bfloat16, 80>(params, p, s);
    case 96:
      return half ? Launch<__half, 96>(params, p, s) : Launch<__nv_bfloat16, 96>(params, p, s);
    default:
      return half ? Launch<__half, 128>(params, p, s) : Launch<__nv_bfloat16, 128>(params, p, s);
  }
}

}  // namespace attnd::kernels::cuda
