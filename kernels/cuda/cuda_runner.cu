#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_runner.h"
#include "kernels/cuda/elem_io.h"
#include "kernels/cuda/lt_score_gemm.h"
#include "kernels/cuda/row_ops.h"
#include "kernels/cuda/score_gemm/score_gemm.h"
#include "kernels/cuda/steps.h"
#include "kernels/problem.h"

namespace attnd::kernels::cuda {
namespace row_groups {

// 8 warps per block: a warp per score row for short rows, the whole block for long ones.
constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

__device__ __forceinline__ float WarpMax(float x) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) x = fmaxf(x, __shfl_xor_sync(~0u, x, offset));
  return x;
}

__device__ __forceinline__ float WarpSum(float x) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) x += __shfl_xor_sync(~0u, x, offset);
  return x;
}

// The 32 threads of one warp share a row. (Host-device only so that the row templates of
// row_ops.h instantiate cleanly; they run on the device alone.)
struct WarpGroup {
  ATTND_HOST_DEVICE int rank() const {
#if defined(__CUDA_ARCH__)
    return static_cast<int>(threadIdx.x & 31);
#else
    return 0;
#endif
  }
  ATTND_HOST_DEVICE int size() const { return 32; }
  ATTND_HOST_DEVICE float Max(float x) const {
#if defined(__CUDA_ARCH__)
    x = WarpMax(x);
#endif
    return x;
  }
  ATTND_HOST_DEVICE float Sum(float x) const {
#if defined(__CUDA_ARCH__)
    x = WarpSum(x);
#endif
    return x;
  }
  ATTND_HOST_DEVICE void Sync() const {
#if defined(__CUDA_ARCH__)
    __syncwarp();
#endif
  }
};

// All kThreads threads of the block share a row; reductions go through `scratch` [kWarps].
struct BlockGroup {
  float* scratch;

  ATTND_HOST_DEVICE int rank() const {
#if defined(__CUDA_ARCH__)
    return static_cast<int>(threadIdx.x);
#else
    return 0;
#endif
  }
  ATTND_HOST_DEVICE int size() const { return kThreads; }
  ATTND_HOST_DEVICE float Max(float x) const {
#if defined(__CUDA_ARCH__)
    x = WarpMax(x);
    if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = x;
    __syncthreads();
    x = (threadIdx.x & 31) < kWarps ? scratch[threadIdx.x & 31] : ATTND_NEG_INF;
    x = WarpMax(x);
    __syncthreads();  // scratch is reused by the next reduction
#endif
    return x;
  }
  ATTND_HOST_DEVICE float Sum(float x) const {
#if defined(__CUDA_ARCH__)
    x = WarpSum(x);
    if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = x;
    __syncthreads();
    x = (threadIdx.x & 31) < kWarps ? scratch[threadIdx.x & 31] : 0.0f;
    x = WarpSum(x);
    __syncthreads();
#endif
    return x;
  }
  ATTND_HOST_DEVICE void Sync() const {
#if defined(__CUDA_ARCH__)
    __syncthreads();
#endif
  }
};

}  // namespace row_groups

namespace {

using row_groups::BlockGroup;
using row_groups::kThreads;
using row_groups::kWarps;
using row_groups::WarpGroup;

// How a row kernel covers its rows: a warp or a block per row, and the columns each thread
// keeps in registers (0: the streamed two-pass path, for rows longer than a block can hold).
// Measured on the H200 at 1x32x4096x128 bf16 with 1024x4096 tiles: the streamed merge ran the
// chunked variant at 0.48 of its traffic bound, reading each score twice. kBlock32 caches rows
// of up to 8192 columns (32 registers of scores a thread), so that naive and sliced at 8192 keys
// and chunked with 8192-key tiles read each score once.
enum class RowMode { kWarp8, kWarp32, kBlock8, kBlock16, kBlock32, kBlockStreamed };

RowMode ModeFor(int64_t cols) {
  if (cols <= 32 * 8) return RowMode::kWarp8;
  if (cols <= 32 * 32) return RowMode::kWarp32;
  if (cols <= kThreads * 8) return RowMode::kBlock8;
  if (cols <= kThreads * 16) return RowMode::kBlock16;
  if (cols <= kThreads * 32) return RowMode::kBlock32;
  return RowMode::kBlockStreamed;
}
// Grid-stride loops cover any number of rows; this many blocks fill an H100 several times over.
constexpr int64_t kMaxBlocks = int64_t{1} << 20;

// Calls row(group, r) for every score row: a block per row, or a warp per row.
template <bool kBlockPerRow, typename RowFn>
__device__ __forceinline__ void ForEachRow(int64_t total_rows, RowFn row) {
  if constexpr (kBlockPerRow) {
    __shared__ float scratch[kWarps];
    const BlockGroup group{scratch};
    for (int64_t r = blockIdx.x; r < total_rows; r += gridDim.x) row(group, r);
  } else {
    const WarpGroup group;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * kWarps;
    for (int64_t r = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5); r < total_rows;
         r += stride) {
      row(group, r);
    }
  }
}

template <DType kP, bool kBlockPerRow, int kItems>
__global__ void __launch_bounds__(kThreads) SoftmaxKernel(const SoftmaxStep step) {
  ForEachRow<kBlockPerRow>(step.geometry.total_rows(), [&](const auto& group, int64_t r) {
    SoftmaxRowWith<kItems, kP>(group, step, r);
  });
}

template <DType kP, bool kBlockPerRow, int kItems>
__global__ void __launch_bounds__(kThreads) MergeKernel(const MergeStep step) {
  ForEachRow<kBlockPerRow>(step.geometry.total_rows(), [&](const auto& group, int64_t r) {
    MergeRowWith<kItems, kP>(group, step, r);
  });
}

template <DType kOut>
__global__ void __launch_bounds__(kThreads) FinalizeKernel(const FinalizeStep step) {
  ForEachRow<false>(step.geometry.total_rows(),
                    [&](const auto& group, int64_t r) { FinalizeRow<kOut>(group, step, r); });
}

// pointers [3, Z]: cuBLAS's A, B and C matrices of problem z.
__global__ void __launch_bounds__(kThreads)
    BuildPointersKernel(const GemmOperand a, const GemmOperand b, const GemmOperand c,
                        int64_t z_count, int64_t q_heads, void** pointers) {
  for (int64_t z = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; z < z_count;
       z += static_cast<int64_t>(gridDim.x) * kThreads) {
    pointers[z] = const_cast<char*>(static_cast<const char*>(a.base) +
                                    a.Offset(z, q_heads) * ElemBytes(a.dtype));
    pointers[z_count + z] = const_cast<char*>(static_cast<const char*>(b.base) +
                                              b.Offset(z, q_heads) * ElemBytes(b.dtype));
    pointers[2 * z_count + z] = const_cast<char*>(static_cast<const char*>(c.base) +
                                                  c.Offset(z, q_heads) * ElemBytes(c.dtype));
  }
}

unsigned int Blocks(int64_t work, int64_t per_block) {
  const int64_t blocks = (work + per_block - 1) / per_block;
  return static_cast<unsigned int>(std::clamp<int64_t>(blocks, 1, kMaxBlocks));
}

cudaDataType_t CudaType(DType dtype) {
  switch (dtype) {
    case DType::kF16:
      return CUDA_R_16F;
    case DType::kBF16:
      return CUDA_R_16BF;
    case DType::kF32:
    default:
      return CUDA_R_32F;
  }
}

absl::Status CheckInt(int64_t value, const char* what) {
  if (value < 0 || value > INT_MAX) {
    return absl::UnimplementedError(
        absl::StrCat("GEMM ", what, " = ", value, " exceeds cuBLAS's 32-bit range"));
  }
  return absl::OkStatus();
}

// Launches Launch<dtype, block per row, items> for the runtime dtype and row mode.
template <template <DType, bool, int> class Launch, DType kType, typename Step>
absl::Status DispatchMode(RowMode mode, const Step& step, cudaStream_t stream) {
  switch (mode) {
    case RowMode::kWarp8:
      return Launch<kType, false, 8>::Run(step, stream);
    case RowMode::kWarp32:
      return Launch<kType, false, 32>::Run(step, stream);
    case RowMode::kBlock8:
      return Launch<kType, true, 8>::Run(step, stream);
    case RowMode::kBlock16:
      return Launch<kType, true, 16>::Run(step, stream);
    case RowMode::kBlock32:
      return Launch<kType, true, 32>::Run(step, stream);
    case RowMode::kBlockStreamed:
      return Launch<kType, true, 0>::Run(step, stream);
  }
  return absl::InternalError("unknown row mode");
}

template <template <DType, bool, int> class Launch, typename Step>
absl::Status DispatchRows(DType dtype, RowMode mode, const Step& step, cudaStream_t stream) {
  switch (dtype) {
    case DType::kF32:
      return DispatchMode<Launch, DType::kF32>(mode, step, stream);
    case DType::kF16:
      return DispatchMode<Launch, DType::kF16>(mode, step, stream);
    case DType::kBF16:
      return DispatchMode<Launch, DType::kBF16>(mode, step, stream);
  }
  return absl::InvalidArgumentError("unknown dtype");
}

template <DType kP, bool kBlockPerRow, int kItems>
struct LaunchSoftmax {
  static absl::Status Run(const SoftmaxStep& step, cudaStream_t stream) {
    const int64_t rows = step.geometry.total_rows();
    SoftmaxKernel<kP, kBlockPerRow, kItems>
        <<<Blocks(rows, kBlockPerRow ? 1 : kWarps), kThreads, 0, stream>>>(step);
    CUDA_RETURN_IF_ERROR(cudaGetLastError());
    return absl::OkStatus();
  }
};

template <DType kP, bool kBlockPerRow, int kItems>
struct LaunchMerge {
  static absl::Status Run(const MergeStep& step, cudaStream_t stream) {
    const int64_t rows = step.geometry.total_rows();
    MergeKernel<kP, kBlockPerRow, kItems>
        <<<Blocks(rows, kBlockPerRow ? 1 : kWarps), kThreads, 0, stream>>>(step);
    CUDA_RETURN_IF_ERROR(cudaGetLastError());
    return absl::OkStatus();
  }
};

template <DType kOut>
absl::Status LaunchFinalize(const FinalizeStep& step, cudaStream_t stream) {
  FinalizeKernel<kOut><<<Blocks(step.geometry.total_rows(), kWarps), kThreads, 0, stream>>>(step);
  CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return absl::OkStatus();
}

}  // namespace

bool UniformStride(const GemmOperand& operand, int64_t batch, int64_t q_heads, int64_t* stride) {
  const int64_t z_count = batch * q_heads;
  *stride = z_count > 1 ? operand.Offset(1, q_heads) - operand.Offset(0, q_heads) : 0;
  for (int64_t z = 0; z < z_count; ++z) {
    if (operand.Offset(z, q_heads) != z * *stride) return false;
  }
  return true;
}

absl::Status CheckKernelImage() {
  cudaFuncAttributes attributes;
  CUDA_RETURN_IF_ERROR(cudaFuncGetAttributes(&attributes, FinalizeKernel<DType::kF32>));
  return absl::OkStatus();
}

absl::Status CudaStepRunner::Gemm(const GemmStep& s) {
  const int64_t z_count = s.batch * s.q_heads;
  // Row-major C = A·op(B) is column-major Cᵀ = op(B)ᵀ·Aᵀ: cuBLAS's first operand is our B (its
  // column-major view of B[n, k] is Bᵀ, hence OP_T when b_transposed), its second our A.
  const char* names[] = {"m", "n", "k", "lda", "ldb", "ldc", "batch count"};
  const int64_t values[] = {s.m, s.n, s.k, s.a.ld, s.b.ld, s.c.ld, z_count};
  for (int i = 0; i < 7; ++i) {
    if (absl::Status st = CheckInt(values[i], names[i]); !st.ok()) return st;
  }
  // With ATTND_SCORE_GEMM=own, the score step at 16 bits on Hopper goes to attnd's own kernel
  // (score_gemm.h: opt-in until it is faster than the cuBLASLt path below).
  if (ScoreGemmSelected()) {
    const absl::StatusOr<bool> own = TryScoreGemm(s, stream_);
    if (!own.ok()) return own.status();
    if (*own) return absl::OkStatus();
  }
  const cublasOperation_t op_b = s.b_transposed ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int m = static_cast<int>(s.n);
  const int n = static_cast<int>(s.m);
  const int k = static_cast<int>(s.k);
  const int lda = static_cast<int>(s.b.ld);
  const int ldb = static_cast<int>(s.a.ld);
  const int ldc = static_cast<int>(s.c.ld);
  const int batch_count = static_cast<int>(z_count);
  int64_t stride_a = 0;
  int64_t stride_b = 0;
  int64_t stride_c = 0;
  const bool strided = UniformStride(s.a, s.batch, s.q_heads, &stride_a) &&
                       UniformStride(s.b, s.batch, s.q_heads, &stride_b) &&
                       UniformStride(s.c, s.batch, s.q_heads, &stride_c);
  if (!strided) {
    if (s.scratch == nullptr) return absl::InternalError("batched GEMM without pointer scratch");
    BuildPointersKernel<<<Blocks(z_count, kThreads), kThreads, 0, stream_>>>(s.b, s.a, s.c, z_count,
                                                                             s.q_heads, s.scratch);
    CUDA_RETURN_IF_ERROR(cudaGetLastError());
  }
  if (strided) {
    // The score step through cuBLASLt with a measured algorithm choice (lt_score_gemm.h).
    const absl::StatusOr<bool> lt = TryLtScoreGemm(s, stride_a, stride_b, stride_c, stream_);
    if (!lt.ok()) return lt.status();
    if (*lt) return absl::OkStatus();
  }
  const void* const* pointers = s.scratch;
  auto gemm = [&](cublasComputeType_t compute) {
    if (strided) {
      return cublasGemmStridedBatchedEx(cublas_, op_b, CUBLAS_OP_N, m, n, k, &s.alpha, s.b.base,
                                        CudaType(s.b.dtype), lda, stride_b, s.a.base,
                                        CudaType(s.a.dtype), ldb, stride_a, &s.beta,
                                        const_cast<void*>(s.c.base), CudaType(s.c.dtype), ldc,
                                        stride_c, batch_count, compute, CUBLAS_GEMM_DEFAULT);
    }
    return cublasGemmBatchedEx(cublas_, op_b, CUBLAS_OP_N, m, n, k, &s.alpha, pointers,
                               CudaType(s.b.dtype), lda, pointers + z_count, CudaType(s.a.dtype),
                               ldb, &s.beta, s.scratch + 2 * z_count, CudaType(s.c.dtype), ldc,
                               batch_count, compute, CUBLAS_GEMM_DEFAULT);
  };
  if (s.a.dtype != DType::kF32) {
    CUBLAS_RETURN_IF_ERROR(gemm(CUBLAS_COMPUTE_32F));
    return absl::OkStatus();
  }
  // f32 inputs: pedantic, so that no TF32 ever rounds them (not even NVIDIA_TF32_OVERRIDE).
  // Should a cuBLAS refuse the pedantic compute type for a batched call, plain 32F under the
  // handle's CUBLAS_DEFAULT_MATH is still full f32 (TF32 needs CUBLAS_TF32_TENSOR_OP_MATH).
  const cublasStatus_t status = gemm(CUBLAS_COMPUTE_32F_PEDANTIC);
  if (status == CUBLAS_STATUS_NOT_SUPPORTED || status == CUBLAS_STATUS_INVALID_VALUE) {
    CUBLAS_RETURN_IF_ERROR(gemm(CUBLAS_COMPUTE_32F));
    return absl::OkStatus();
  }
  CUBLAS_RETURN_IF_ERROR(status);
  return absl::OkStatus();
}

absl::Status CudaStepRunner::Softmax(const SoftmaxStep& step) {
  return DispatchRows<LaunchSoftmax>(step.p_dtype, ModeFor(step.geometry.cols), step, stream_);
}

absl::Status CudaStepRunner::Merge(const MergeStep& step) {
  return DispatchRows<LaunchMerge>(step.p_dtype, ModeFor(step.geometry.cols), step, stream_);
}

absl::Status CudaStepRunner::Finalize(const FinalizeStep& step) {
  switch (step.out_dtype) {
    case DType::kF32:
      return LaunchFinalize<DType::kF32>(step, stream_);
    case DType::kF16:
      return LaunchFinalize<DType::kF16>(step, stream_);
    case DType::kBF16:
      return LaunchFinalize<DType::kBF16>(step, stream_);
  }
  return absl::InvalidArgumentError("unknown dtype");
}

}  // namespace attnd::kernels::cuda
