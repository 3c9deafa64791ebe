// Host side of the fused variant: checks, parameters, and the one list of kernel
// configurations (ATTND_FUSED_DIMS with ShapeFor) from which every instantiation is made.
#include "kernels/cuda/fused/fused_attention.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cuda/fused/fused_f32.h"
#include "kernels/cuda/fused/fused_kernel.cuh"
#include "kernels/cuda/fused/fused_params.h"
#include "kernels/cuda/fused/fused_wgmma.h"
#include "kernels/cuda/fused/fused_wgmma_ws.h"
#include "kernels/cuda/fused/split_kv.h"
#include "kernels/cuda/workspace_layout.h"
#include "kernels/fused_support.h"
#include "kernels/mask.h"
#include "kernels/tensor_index.h"

namespace attnd::kernels::cuda {
namespace {

using fused::FusedParams;
using fused::TileShape;

// The padded head dims instantiated are ATTND_FUSED_DIMS (kernels/fused_support.h); a problem
// runs on the first that holds max(D, Dv). Each has its own tile (ShapeFor), 4 warps: up to 128,
// two m-tiles per warp (128 query rows); above 128, one m-tile per warp (64 rows), so that O
// fits the registers (D 256: 128 floats). 64 keys per block up to D 64, 32 above (S and O at
// D 128: 2·4·4 + 2·16·4 = 160 floats). Two CTAs fit an SM's shared memory with a bias's two
// tiles too (the most, D 64 with an f32 bias: 36 KiB of Q, K and V and 72 KiB of bias each).
template <int kDim>
using ShapeFor = TileShape<kDim, 4, (kDim <= 128 ? 2 : 1), (kDim <= 64 ? 64 : 32)>;

template <class T, int kDim>
absl::Status Launch(const FusedParams& params, const AttentionProblem& p, cudaStream_t stream) {
  using Shape = ShapeFor<kDim>;
  auto* kernel = &fused::FusedForwardKernel<T, Shape>;
  const int smem_bytes =
      p.has_bias ? Shape::template SmemBytesWithBias<T>(static_cast<int>(DTypeSize(p.bias_dtype)))
                 : Shape::template SmemBytes<T>();
  // Above 48 KiB of dynamic shared memory a kernel must opt in, on each device: every launch
  // sets it (a host-side attribute write, no device work).
  const cudaError_t opt_in =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes);
  if (opt_in != cudaSuccess) {
    return absl::InternalError(absl::StrCat("fused kernel (dim ", kDim, ") shared memory ",
                                            smem_bytes, " bytes: ", cudaGetErrorString(opt_in)));
  }
  const int64_t m_blocks = (p.q_len + Shape::kBlockM - 1) / Shape::kBlockM;
  const dim3 grid(static_cast<unsigned>(m_blocks), static_cast<unsigned>(p.q_heads),
                  static_cast<unsigned>(p.batch));
  kernel<<<grid, Shape::kThreads, smem_bytes, stream>>>(params);
  if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) {
    return absl::InternalError(absl::StrCat("fused kernel launch (dim ", kDim, ", grid ", m_blocks,
                                            "x", p.q_heads, "x", p.batch,
                                            "): ", cudaGetErrorString(e)));
  }
  return absl::OkStatus();
}

// Launches the instantiation for padded head dim `dim`, one of ATTND_FUSED_DIMS.
template <class T, int kDim, int... kRest>
absl::Status LaunchFor(int dim, const FusedParams& params, const AttentionProblem& p,
                       cudaStream_t stream) {
  if (dim == kDim) return Launch<T, kDim>(params, p, stream);
  if constexpr (sizeof...(kRest) > 0) {
    return LaunchFor<T, kRest...>(dim, params, p, stream);
  } else {
    return absl::InternalError(absl::StrCat("no fused kernel for padded head dim ", dim));
  }
}

bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

absl::Status RunFused(const AttentionProblem& p, const AttentionTensors& t, void* workspace,
                      int64_t workspace_bytes, void* stream) {
  if (p.dtype == DType::kF32) return RunFusedF32(p, t, stream);  // its own kernel and checks
  if (const std::string why = FusedRefusal(p); !why.empty()) {
    return absl::InvalidArgumentError(why);
  }
  if (!Aligned16(t.q) || !Aligned16(t.k) || !Aligned16(t.v) || !Aligned16(t.out) ||
      (p.has_bias && !Aligned16(t.bias))) {
    return absl::InvalidArgumentError("fused needs q, k, v, out and the bias 16-byte aligned");
  }
  const FusedSplitPlan split = FusedSplitKv(p);
  const FusedWorkspaceLayout layout = FusedWorkspaceLayout::For(p);
  if (split.splits > 0) {
    if (workspace_bytes < layout.bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("fused split-KV (", split.splits, " splits) needs ", layout.bytes,
                       " workspace bytes but workspace_bytes = ", workspace_bytes));
    }
    if (workspace == nullptr ||
        reinterpret_cast<uintptr_t>(workspace) % kCudaWorkspaceAlign != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "fused split-KV needs a non-null workspace, ", kCudaWorkspaceAlign, "-byte aligned"));
    }
  }
  if (const std::string why = FusedDeviceRefusal(p); !why.empty()) {
    return absl::InvalidArgumentError(why);
  }
  if (p.batch == 0 || p.q_len == 0 || p.q_heads == 0) return absl::OkStatus();
  const FusedParams params = FusedParams::For(p, t);
  const int dim = FusedPaddedDim(p);
  if (dim == kFusedWideDim) return RunWideFused(params, p, stream);
  if (split.splits > 0) return RunSplitKv(params, p, split, layout, dim, workspace, stream);
  if (WgmmaWsFusedTakes(p, dim)) return RunWgmmaWsFused(params, p, dim, stream);
  if (WgmmaFusedTakes(p, dim)) return RunWgmmaFused(params, p, dim, stream);
  auto* s = static_cast<cudaStream_t>(stream);
  return p.dtype == DType::kF16 ? LaunchFor<__half, ATTND_FUSED_DIMS>(dim, params, p, s)
                                : LaunchFor<__nv_bfloat16, ATTND_FUSED_DIMS>(dim, params, p, s);
}

std::string FusedDeviceRefusal(const AttentionProblem& p) {
  if (p.dtype == DType::kF32 || std::max(p.head_dim, p.v_head_dim) <= kFusedMaxHeadDim) return "";
  const int major = CurrentDeviceMajor();
  if (major == 9) return "";
  return absl::StrCat("fused takes head dims above ", kFusedMaxHeadDim,
                      " on sm_90 devices only (D ", p.head_dim, ", Dv ", p.v_head_dim,
                      "; this device is sm_", major, "x)");
}

}  // namespace attnd::kernels::cuda
