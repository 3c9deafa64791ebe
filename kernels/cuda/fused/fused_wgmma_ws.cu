// Host side of the fused variant's warp-specialised Hopper path (fused_wgmma_ws.h).
#include "kernels/cuda/fused/fused_wgmma_ws.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/fused/fused_wgmma.h"  // CurrentDeviceMajor
#include "kernels/cuda/fused/wgmma_ws_kernel.cuh"

namespace attnd::kernels::cuda {
namespace {

using fused::FusedParams;
using fused::WsShape;

// ATTND_FUSED_WS: "1" the kernel, "2" with the consumers' GEMMs in ping-pong turns; else off.
int WsMode() {
  static const int mode = [] {
    const char* env = std::getenv("ATTND_FUSED_WS");
    if (env == nullptr) return 0;
    if (std::strcmp(env, "1") == 0) return 1;
    return std::strcmp(env, "2") == 0 ? 2 : 0;
  }();
  return mode;
}

template <class T, int kDim>
absl::Status Launch(const FusedParams& params, const AttentionProblem& p, cudaStream_t stream) {
  using Shape = WsShape<kDim>;
  auto* kernel = WsMode() == 2 ? &fused::WgmmaWsForwardKernel<T, Shape, true>
                               : &fused::WgmmaWsForwardKernel<T, Shape, false>;
  const int smem_bytes = p.has_bias ? Shape::kSmemBytesWithBias : Shape::kSmemBytes;
  if (const cudaError_t e = cudaFuncSetAttribute(
          kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes);
      e != cudaSuccess) {
    return absl::InternalError(absl::StrCat("fused warp-specialised kernel (dim ", kDim,
                                            ") shared memory ", smem_bytes,
                                            " bytes: ", cudaGetErrorString(e)));
  }
  const int64_t m_blocks = (p.q_len + Shape::kBlockM - 1) / Shape::kBlockM;
  const dim3 grid(static_cast<unsigned>(m_blocks), static_cast<unsigned>(p.q_heads),
                  static_cast<unsigned>(p.batch));
  kernel<<<grid, Shape::kThreads, smem_bytes, stream>>>(params);
  if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) {
    return absl::InternalError(absl::StrCat("fused warp-specialised kernel launch (dim ", kDim,
                                            ", grid ", m_blocks, "x", p.q_heads, "x", p.batch,
                                            "): ", cudaGetErrorString(e)));
  }
  return absl::OkStatus();
}

template <class T>
absl::Status LaunchFor(int padded_dim, const FusedParams& params, const AttentionProblem& p,
                       cudaStream_t stream) {
  switch (padded_dim) {
    case 64:
      return Launch<T, 64>(params, p, stream);
    case 80:
      return Launch<T, 80>(params, p, stream);
    case 96:
      return Launch<T, 96>(params, p, stream);
    case 128:
      return Launch<T, 128>(params, p, stream);
    case 160:
      return Launch<T, 160>(params, p, stream);
    case 192:
      return Launch<T, 192>(params, p, stream);
    case 256:
      return Launch<T, 256>(params, p, stream);
    default:
      return absl::InternalError(
          absl::StrCat("no fused warp-specialised kernel for padded head dim ", padded_dim));
  }
}

}  // namespace

bool WgmmaWsFusedTakes(const AttentionProblem& p, int padded_dim) {
  const bool enabled = WsMode() != 0;
  const bool dim_instantiated = padded_dim == 64 || padded_dim == 80 || padded_dim == 96 ||
                                padded_dim == 128 || padded_dim == 160 || padded_dim == 192 ||
                                padded_dim == 256;
  return enabled && (!p.has_bias || p.bias_dtype != DType::kF32) &&
         (p.dtype == DType::kF16 || p.dtype == DType::kBF16) && dim_instantiated &&
         CurrentDeviceMajor() == 9;
}

absl::Status RunWgmmaWsFused(const FusedParams& params, const AttentionProblem& p,
                             int padded_dim, void* stream) {
  auto* s = static_cast<cudaStream_t>(stream);
  return p.dtype == DType::kF16 ? LaunchFor<__half>(padded_dim, params, p, s)
                                : LaunchFor<__nv_bfloat16>(padded_dim, params, p, s);
}

}  // namespace attnd::kernels::cuda
