#include "kernels/cuda/score_gemm/score_gemm.h"

#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/score_gemm/score_gemm_kernel.cuh"
#include "kernels/cuda/score_gemm/score_gemm_params.h"
#include "kernels/cuda/wgmma/tensor_map.h"

namespace attnd::kernels::cuda {
namespace {

using score_gemm::kBlockK;
using score_gemm::kBlockM;
using score_gemm::kBlockN;
using score_gemm::ScoreGemmMaps;
using score_gemm::ScoreGemmParams;


// The current device's compute capability major and SM count (0 when unknown).
struct DeviceFacts {
  int major = 0;
  int sms = 0;
};
DeviceFacts CurrentDevice() {
  DeviceFacts f;
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&f.major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&f.sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
    return DeviceFacts{};
  }
  return f;
}

bool Aligned16(int64_t elements) { return elements % 8 == 0; }  // of 2-byte elements

// An operand's map: rank 4 (k, rows, heads, batch) with its strides; a dim of size 1 gets the
// contiguous stride (its own is never used and may be anything). False where TMA cannot read
// the operand (unaligned base or strides) or the driver refuses the map.
bool EncodeOperandMap(CUtensorMap* map, const GemmOperand& o, int64_t k, int64_t rows,
                      int64_t heads, int64_t batch) {
  const auto encode = wgmma::TensorMapEncoder();
  if (encode == nullptr) return false;
  const int64_t head_stride = heads > 1 ? o.head_stride : rows * o.ld;
  const int64_t batch_stride = batch > 1 ? o.batch_stride : heads * head_stride;
  if (reinterpret_cast<uintptr_t>(o.base) % 16 != 0 || !Aligned16(o.ld) ||
      !Aligned16(head_stride) || !Aligned16(batch_stride) || o.ld <= 0 || head_stride <= 0 ||
      batch_stride <= 0) {
    return false;
  }
  constexpr int64_t kElem = 2;
  const cuuint64_t global_dim[4] = {static_cast<cuuint64_t>(k), static_cast<cuuint64_t>(rows),
                                    static_cast<cuuint64_t>(heads),
                                    static_cast<cuuint64_t>(batch)};
  const cuuint64_t global_strides[3] = {static_cast<cuuint64_t>(o.ld * kElem),
                                        static_cast<cuuint64_t>(head_stride * kElem),
                                        static_cast<cuuint64_t>(batch_stride * kElem)};
  const cuuint32_t box[4] = {kBlockK, 128, 1, 1};
  const cuuint32_t element_strides[4] = {1, 1, 1, 1};
  const CUtensorMapDataType type = o.dtype == DType::kF16 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16
                                                          : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  return encode(map, type, 4, const_cast<void*>(o.base), global_dim, global_strides, box,
                element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

// C's map for the TMA stores: rank 4 (n, m, heads, batch) f32, boxes of 32 columns × 64 rows,
// 128-byte swizzle. False where C's base or strides are not multiples of 16 bytes or the driver
// refuses it (the kernel then stores from registers).
bool EncodeOutputMap(CUtensorMap* map, const GemmOperand& c, int64_t n, int64_t m, int64_t heads,
                     int64_t batch) {
  const auto encode = wgmma::TensorMapEncoder();
  if (encode == nullptr) return false;
  const int64_t head_stride = heads > 1 ? c.head_stride : m * c.ld;
  const int64_t batch_stride = batch > 1 ? c.batch_stride : heads * head_stride;
  if (reinterpret_cast<uintptr_t>(c.base) % 16 != 0 || c.ld % 4 != 0 || head_stride % 4 != 0 ||
      batch_stride % 4 != 0 || c.ld <= 0 || head_stride <= 0 || batch_stride <= 0) {
    return false;
  }
  constexpr int64_t kElem = 4;
  const cuuint64_t global_dim[4] = {static_cast<cuuint64_t>(n), static_cast<cuuint64_t>(m),
                                    static_cast<cuuint64_t>(heads),
                                    static_cast<cuuint64_t>(batch)};
  const cuuint64_t global_strides[3] = {static_cast<cuuint64_t>(c.ld * kElem),
                                        static_cast<cuuint64_t>(head_stride * kElem),
                                        static_cast<cuuint64_t>(batch_stride * kElem)};
  const cuuint32_t box[4] = {score_gemm::kStoreBoxCols, 64, 1, 1};
  const cuuint32_t element_strides[4] = {1, 1, 1, 1};
  return encode(map, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 4, const_cast<void*>(c.base), global_dim,
                global_strides, box, element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_NONE,
                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

template <class T>
absl::Status Launch(const ScoreGemmParams& params, const ScoreGemmMaps& maps, int ctas,
                    cudaStream_t stream) {
  const auto kernel = score_gemm::ScoreGemmKernel<T>;
  static const cudaError_t configured = cudaFuncSetAttribute(
      kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, score_gemm::kSmemBytes);
  if (configured != cudaSuccess) {
    return absl::InternalError(absl::StrCat("score GEMM: cudaFuncSetAttribute: ",
                                            cudaGetErrorName(configured)));
  }
  kernel<<<ctas, score_gemm::kThreads, score_gemm::kSmemBytes, stream>>>(params, maps);
  if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) {
    return absl::InternalError(absl::StrCat(cudaGetErrorName(e), " (", cudaGetErrorString(e),
                                            ") from the score GEMM's launch"));
  }
  return absl::OkStatus();
}

}  // namespace

bool ScoreGemmSelected() {
  static const bool selected = [] {
    const char* env = std::getenv("ATTND_SCORE_GEMM");
    return env != nullptr && std::strcmp(env, "own") == 0;
  }();
  return selected;
}

absl::StatusOr<bool> TryScoreGemm(const GemmStep& s, cudaStream_t stream) {
  const bool sixteen_bit = s.a.dtype == DType::kF16 || s.a.dtype == DType::kBF16;
  if (!s.b_transposed || s.beta != 0.0f || !sixteen_bit ||
      s.b.dtype != s.a.dtype || s.c.dtype != DType::kF32 || s.a.head_div != 1 ||
      s.c.head_div != 1 || s.b.head_div < 1 || s.q_heads % s.b.head_div != 0) {
    return false;
  }
  constexpr int64_t kIntMax = std::numeric_limits<int>::max();
  if (s.m < 1 || s.n < 1 || s.k < 1 || s.batch < 1 || s.q_heads < 1 || s.m > kIntMax ||
      s.n > kIntMax || s.k > kIntMax || s.batch > kIntMax || s.q_heads > kIntMax) {
    return false;
  }
  const DeviceFacts device = CurrentDevice();
  if (device.major != 9 || device.sms < 1) return false;

  ScoreGemmMaps maps;
  std::memset(&maps, 0, sizeof(maps));
  if (!EncodeOperandMap(&maps.a, s.a, s.k, s.m, s.q_heads, s.batch) ||
      !EncodeOperandMap(&maps.b, s.b, s.k, s.n, s.q_heads / s.b.head_div, s.batch)) {
    return false;
  }
  ScoreGemmParams params;
  params.c = static_cast<float*>(const_cast<void*>(s.c.base));
  params.c_batch_stride = s.c.batch_stride;
  params.c_head_stride = s.c.head_stride;
  params.ldc = s.c.ld;
  params.m = static_cast<int>(s.m);
  params.n = static_cast<int>(s.n);
  params.k_steps = static_cast<int>((s.k + kBlockK - 1) / kBlockK);
  params.q_heads = static_cast<int>(s.q_heads);
  params.head_div = static_cast<int>(s.b.head_div);
  params.m_tiles = static_cast<int>((s.m + kBlockM - 1) / kBlockM);
  params.n_tiles = static_cast<int>((s.n + kBlockN - 1) / kBlockN);
  params.tiles = s.batch * s.q_heads * params.m_tiles * params.n_tiles;
  params.alpha = s.alpha;
  params.tma_store = EncodeOutputMap(&maps.c, s.c, s.n, s.m, s.q_heads, s.batch);
  params.vector_stores = reinterpret_cast<uintptr_t>(s.c.base) % 8 == 0 && s.c.ld % 2 == 0 &&
                         s.c.head_stride % 2 == 0 && s.c.batch_stride % 2 == 0;
  const int ctas = static_cast<int>(std::min<int64_t>(params.tiles, device.sms));
  const absl::Status launched =
      s.a.dtype == DType::kF16 ? Launch<__half>(params, maps, ctas, stream)
                               : Launch<__nv_bfloat16>(params, maps, ctas, stream);
  if (!launched.ok()) return launched;
  return true;
}

}  // namespace attnd::kernels::cuda
