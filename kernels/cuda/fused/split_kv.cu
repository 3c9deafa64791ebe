// Host side of the split-KV path: one instantiation of the partial kernel per (dtype, padded
// head dim of ATTND_FUSED_DIMS), one combine kernel per dtype.
#include "kernels/cuda/fused/split_kv.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cuda/fused/split_kv.cuh"

namespace attnd::kernels::cuda {
namespace {

using fused::SplitKvParams;

template <class T, int kDim>
absl::Status Launch(const SplitKvParams& sp, const AttentionProblem& p, cudaStream_t stream) {
  using Shape = fused::SplitShape<kDim>;
  auto* partial = &fused::SplitKvPartialKernel<T, Shape>;
  // Above 48 KiB of dynamic shared memory a kernel must opt in, on each device (a host-side
  // attribute write, no device work).
  const cudaError_t opt_in =
      cudaFuncSetAttribute(partial, cudaFuncAttributeMaxDynamicSharedMemorySize, Shape::kSmemBytes);
  if (opt_in != cudaSuccess) {
    return absl::InternalError(absl::StrCat("fused split-KV kernel (dim ", kDim, ") shared memory ",
                                            Shape::kSmemBytes,
                                            " bytes: ", cudaGetErrorString(opt_in)));
  }
  const int64_t grid_x = int64_t{sp.row_tiles} * sp.splits;
  const dim3 grid(static_cast<unsigned>(grid_x), static_cast<unsigned>(p.kv_heads),
                  static_cast<unsigned>(p.batch));
  partial<<<grid, Shape::kThreads, Shape::kSmemBytes, stream>>>(sp);
  if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) {
    return absl::InternalError(absl::StrCat("fused split-KV partial kernel launch (dim ", kDim,
                                            ", grid ", grid_x, "x", p.kv_heads, "x", p.batch,
                                            "): ", cudaGetErrorString(e)));
  }
  const int64_t combine_blocks = (sp.rows + fused::kCombineWarps - 1) / fused::kCombineWarps;
  fused::SplitKvCombineKernel<T>
      <<<static_cast<unsigned>(combine_blocks), 32 * fused::kCombineWarps, 0, stream>>>(sp);
  if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) {
    return absl::InternalError(absl::StrCat("fused split-KV combine kernel launch (",
                                            combine_blocks, " blocks): ", cudaGetErrorString(e)));
  }
  return absl::OkStatus();
}

// Launches the instantiation for padded head dim `dim`, one of ATTND_FUSED_DIMS.
template <class T, int kDim, int... kRest>
absl::Status LaunchFor(int dim, const SplitKvParams& sp, const AttentionProblem& p,
                       cudaStream_t stream) {
  if (dim == kDim) return Launch<T, kDim>(sp, p, stream);
  if constexpr (sizeof...(kRest) > 0) {
    return LaunchFor<T, kRest...>(dim, sp, p, stream);
  } else {
    return absl::InternalError(absl::StrCat("no fused split-KV kernel for padded head dim ", dim));
  }
}

}  // namespace

absl::Status RunSplitKv(const fused::FusedParams& params, const AttentionProblem& p,
                        const FusedSplitPlan& plan, const FusedWorkspaceLayout& layout, int dim,
                        void* workspace, void* stream) {
  // The grid's y and z axes hold Hkv and B; the combine kernel one weight per split.
  if (p.kv_heads > 65535 || p.batch > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("fused split-KV takes at most 65535 kv heads and batch elements (Hkv ",
                     p.kv_heads, ", B ", p.batch, ")"));
  }
  if (plan.splits < 1 || plan.splits > kFusedMaxSplits || plan.row_tiles < 1 ||
      plan.row_tiles * plan.splits > (int64_t{1} << 31) - 1) {
    return absl::InternalError(absl::StrCat("fused split-KV plan out of range: ", plan.splits,
                                            " splits, ", plan.row_tiles, " row tiles"));
  }
  SplitKvParams sp;
  sp.fused = params;
  auto* base = static_cast<unsigned char*>(workspace);
  sp.partial_o = reinterpret_cast<float*>(base + layout.partial_o);
  sp.partial_lse = reinterpret_cast<float*>(base + layout.partial_lse);
  sp.rows = p.batch * p.q_heads * p.q_len;
  sp.splits = plan.splits;
  sp.row_tiles = static_cast<int>(plan.row_tiles);
  auto* s = static_cast<cudaStream_t>(stream);
  return p.dtype == DType::kF16 ? LaunchFor<__half, ATTND_FUSED_DIMS>(dim, sp, p, s)
                                : LaunchFor<__nv_bfloat16, ATTND_FUSED_DIMS>(dim, sp, p, s);
}

}  // namespace attnd::kernels::cuda
