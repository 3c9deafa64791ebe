// Host side of the f32 fused path: checks, parameters, and the one list of f32 kernel
// configurations (ATTND_FUSED_F32_DIMS with F32ShapeFor) from which every instantiation is made.
#include "kernels/cuda/fused/fused_f32.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cuda/fused/fused_f32_kernel.cuh"
#include "kernels/cuda/fused/fused_params.h"
#include "kernels/fused_support.h"
#include "kernels/mask.h"
#include "kernels/tensor_index.h"

namespace attnd::kernels::cuda {
namespace {

using fused::FusedParams;

// The padded head dims instantiated for f32, smallest first; a problem runs on the first that
// holds max(D, Dv). 4 warps each. Up to 128: two m-tiles per warp (128 query rows), so every K
// and V fragment a warp loads and splits feeds 6 mma's, not 3; 64 keys per block up to D 64, 32
// above (registers: S + O = 2·8·4 + 2·16·4 = 160 floats at D 128, as the 16-bit kernel).
// Shared memory (rows of kDim + 4 floats, Q [kBlockM] + K, V [kBlockN]): D 64 68 KiB, D 128
// 99 KiB; ptxas gives 240 registers at D 64 and 249 at D 128 (no spills), so two CTAs (8 warps)
// fit an SM. Above 128: one m-tile per warp (64 rows) and 32 keys, so that O fits the registers
// (D 256: 128 floats); D 256 needs 130 KiB, one CTA per SM (not tuned: the goal shape is D 64).
// The S = Q·Kᵀ k-loop fully unrolled: unrolled by 2 it spilled 32 bytes at D 128.
#define ATTND_FUSED_F32_DIMS 32, 64, 96, 128, 160, 192, 256
constexpr int kF32Dims[] = {ATTND_FUSED_F32_DIMS};
static_assert(kF32Dims[sizeof(kF32Dims) / sizeof(kF32Dims[0]) - 1] == kFusedF32MaxHeadDim,
              "kernels/fused_support.h promises f32 head dims up to kFusedF32MaxHeadDim");

// The one dim of the plain-TF32 test instantiation (RunFusedTf32ForTest).
constexpr int kTf32TestDim = 128;

template <int kDim, int kPasses = 3>
using F32ShapeFor =
    fused::F32TileShape<kDim, (kDim <= 128 ? 2 : 1), (kDim <= 64 ? 64 : 32), kPasses>;

template <class Shape>
absl::Status Launch(const FusedParams& params, const AttentionProblem& p, cudaStream_t stream) {
  auto* kernel = &fused::FusedF32ForwardKernel<Shape>;
  constexpr int kSmem = Shape::SmemBytes();
  // Above 48 KiB of dynamic shared memory a kernel must opt in, on each device: every launch
  // sets it (a host-side attribute write, no device work).
  const cudaError_t opt_in =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  if (opt_in != cudaSuccess) {
    return absl::InternalError(absl::StrCat("fused f32 kernel (dim ", Shape::kDim,
                                            ") shared memory ", kSmem,
                                            " bytes: ", cudaGetErrorString(opt_in)));
  }
  const int64_t m_blocks = (p.q_len + Shape::kBlockM - 1) / Shape::kBlockM;
  const dim3 grid(static_cast<unsigned>(m_blocks), static_cast<unsigned>(p.q_heads),
                  static_cast<unsigned>(p.batch));
  kernel<<<grid, Shape::kThreads, kSmem, stream>>>(params);
  if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) {
    return absl::InternalError(absl::StrCat("fused f32 kernel launch (dim ", Shape::kDim,
                                            ", grid ", m_blocks, "x", p.q_heads, "x", p.batch,
                                            "): ", cudaGetErrorString(e)));
  }
  return absl::OkStatus();
}

// Launches the 3xTF32 instantiation for padded head dim `dim`, one of kF32Dims.
template <int kDim, int... kRest>
absl::Status LaunchFor(int dim, const FusedParams& params, const AttentionProblem& p,
                       cudaStream_t stream) {
  if (dim == kDim) return Launch<F32ShapeFor<kDim>>(params, p, stream);
  if constexpr (sizeof...(kRest) > 0) {
    return LaunchFor<kRest...>(dim, params, p, stream);
  } else {
    return absl::InternalError(absl::StrCat("no fused f32 kernel for padded head dim ", dim));
  }
}

bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The padded head dim (the kernel instantiation) that runs `p`, 0 if none.
int F32KernelDim(const AttentionProblem& p) {
  const int64_t need = std::max(p.head_dim, p.v_head_dim);
  for (int d : kF32Dims) {
    if (need <= d) return d;
  }
  return 0;
}

// The checks of RunFused, for f32. OK with *empty true when there is nothing to compute.
absl::Status Check(const AttentionProblem& p, const AttentionTensors& t, bool* empty) {
  if (const std::string why = FusedRefusal(p); !why.empty()) {
    return absl::InvalidArgumentError(why);
  }
  if (p.dtype != DType::kF32) {
    return absl::InvalidArgumentError("the f32 fused kernel was given a 16-bit problem");
  }
  if (!Aligned16(t.q) || !Aligned16(t.k) || !Aligned16(t.v) || !Aligned16(t.out)) {
    return absl::InvalidArgumentError("fused needs q, k, v and out 16-byte aligned");
  }
  *empty = p.batch == 0 || p.q_len == 0 || p.q_heads == 0;
  return absl::OkStatus();
}

}  // namespace

absl::Status RunFusedF32(const AttentionProblem& p, const AttentionTensors& t, void* stream) {
  bool empty = false;
  if (absl::Status s = Check(p, t, &empty); !s.ok() || empty) return s;
  return LaunchFor<ATTND_FUSED_F32_DIMS>(F32KernelDim(p), FusedParams::For(p, t), p,
                                         static_cast<cudaStream_t>(stream));
}

absl::Status RunFusedTf32ForTest(const AttentionProblem& p, const AttentionTensors& t,
                                 void* stream) {
  bool empty = false;
  if (absl::Status s = Check(p, t, &empty); !s.ok() || empty) return s;
  if (F32KernelDim(p) != kTf32TestDim) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the plain-TF32 test kernel takes max(D, Dv) in (96, ", kTf32TestDim, "] only"));
  }
  return Launch<F32ShapeFor<kTf32TestDim, 1>>(FusedParams::For(p, t), p,
                                              static_cast<cudaStream_t>(stream));
}

}  // namespace attnd::kernels::cuda
