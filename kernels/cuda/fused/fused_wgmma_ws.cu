// Host side of the fused variant's warp-specialised Hopper path (fused_wgmma_ws.h).
#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/fused/fused_wgmma.h"  // CurrentDeviceMajor
#include "kernels/cuda/fused/fused_wgmma_ws.h"
#include "kernels/cuda/fused/ws_bias_tiles.h"
#include "kernels/cuda/fused/wgmma_wide_shape.h"  // WideShape::kBlockN
#include "kernels/cuda/fused/ws_launch.h"
#include "kernels/cuda/fused/ws_tensor_maps.h"
#include "kernels/cuda/wgmma/tensor_map.h"
#include "kernels/fused_support.h"  // kFusedWsDims

namespace attnd::kernels::cuda {
namespace {

using fused::FusedParams;
using fused::WsTensorMaps;

// How the kernel copies K and V, from ATTND_FUSED_WS: unset (or anything else) TMA, "cp_async"
// the producer's cp.async copies (the TMA path's fallback, selectable to test and measure it),
// "0" off (RunFused routes as before the kernel existed, to measure both in one run).
enum class WsMode { kOff, kTma, kCpAsync };
WsMode ModeFromEnvironment() {
  static const WsMode mode = [] {
    const char* env = std::getenv("ATTND_FUSED_WS");
    if (env == nullptr) return WsMode::kTma;
    if (std::strcmp(env, "0") == 0) return WsMode::kOff;
    if (std::strcmp(env, "cp_async") == 0) return WsMode::kCpAsync;
    return WsMode::kTma;
  }();
  return mode;
}

// Whether a bias that could be copied as TMA tiles is (the default), from ATTND_FUSED_WS_BIAS:
// "rows" copies every bias by rows (the path of unaligned and broadcast biases), to test and
// measure both in one run.
bool BiasTilesFromEnvironment() {
  static const bool tiles = [] {
    const char* env = std::getenv("ATTND_FUSED_WS_BIAS");
    return env == nullptr || std::strcmp(env, "rows") != 0;
  }();
  return tiles;
}

// K's or V's map for the TMA kernels: [batch, rows, heads, dim] with the tensor's strides (a
// ragged batch: its packed rows as one batch element), boxes of 64 columns × block_n rows,
// 128-byte swizzle (wgmma.cuh's layout), zeros outside. False where the driver refuses it.
template <class T>
bool EncodeMap(CUtensorMap* map, const void* base, const SeqHeadStrides& strides, int64_t rows,
               int64_t heads, int64_t batch, int dim, int block_n) {
  const auto encode = wgmma::TensorMapEncoder();
  if (encode == nullptr) return false;
  constexpr int64_t kElem = 2;
  const cuuint64_t global_dim[4] = {static_cast<cuuint64_t>(dim), static_cast<cuuint64_t>(rows),
                                    static_cast<cuuint64_t>(heads), static_cast<cuuint64_t>(batch)};
  // A ragged batch's strides have batch 0 (FusedParams): its one element's stride is unused but
  // must be valid.
  const int64_t batch_stride = strides.batch != 0 ? strides.batch : rows * strides.seq;
  const cuuint64_t global_strides[3] = {static_cast<cuuint64_t>(strides.seq * kElem),
                                        static_cast<cuuint64_t>(strides.head * kElem),
                                        static_cast<cuuint64_t>(batch_stride * kElem)};
  const cuuint32_t box[4] = {64, static_cast<cuuint32_t>(block_n), 1, 1};
  const cuuint32_t element_strides[4] = {1, 1, 1, 1};
  const CUtensorMapDataType type = std::is_same_v<T, __half> ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16
                                                             : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  return encode(map, type, 4, const_cast<void*>(base), global_dim, global_strides, box,
                element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

// The bias's map for the kernels with bias tiles (ws_bias_tiles.h): [batch, heads, Mq, Mk], a
// broadcast dim of size 1, boxes of 64 keys × 128 rows, 128-byte swizzle, zeros outside. False
// where the driver refuses it.
bool EncodeBiasMap(CUtensorMap* map, const AttentionProblem& p, const void* bias) {
  const auto encode = wgmma::TensorMapEncoder();
  if (encode == nullptr) return false;
  constexpr int64_t kElem = 2;
  const int64_t* shape = p.bias_shape;  // [bB, bH, Mq, Mk], contiguous
  const cuuint64_t global_dim[4] = {
      static_cast<cuuint64_t>(shape[3]), static_cast<cuuint64_t>(shape[2]),
      static_cast<cuuint64_t>(shape[1]), static_cast<cuuint64_t>(shape[0])};
  const cuuint64_t global_strides[3] = {
      static_cast<cuuint64_t>(shape[3] * kElem),
      static_cast<cuuint64_t>(shape[2] * shape[3] * kElem),
      static_cast<cuuint64_t>(shape[1] * shape[2] * shape[3] * kElem)};
  const cuuint32_t box[4] = {64, 128, 1, 1};
  const cuuint32_t element_strides[4] = {1, 1, 1, 1};
  const CUtensorMapDataType type = p.bias_dtype == DType::kF16 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16
                                                               : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  return encode(map, type, 4, const_cast<void*>(bias), global_dim, global_strides, box,
                element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

// The kernel with TMA copies (and bias tiles where the bias takes them), or with cp.async ones
// where the mode asks or a map cannot be made.
template <class T>
absl::Status LaunchMode(int padded_dim, const FusedParams& params, const AttentionProblem& p,
                        cudaStream_t stream) {
  WsTensorMaps maps;
  std::memset(&maps, 0, sizeof(maps));
  if (ModeFromEnvironment() == WsMode::kTma) {
    const int64_t rows = p.ragged ? p.total_kv : p.kv_len;
    const int64_t batch = p.ragged ? 1 : p.batch;
    const int64_t kv_heads = p.q_heads / params.group;
    const bool bias_tiles = BiasTilesFromEnvironment() && fused::BiasTakesTiles(p, params.bias) &&
                            EncodeBiasMap(&maps.bias, p, params.bias);
    const int block_n = fused::WsBlockN(padded_dim, p.has_bias && !bias_tiles);
    if (EncodeMap<T>(&maps.k, params.k, params.k_strides, rows, kv_heads, batch, params.head_dim,
                     block_n) &&
        EncodeMap<T>(&maps.v, params.v, params.v_strides, rows, kv_heads, batch, params.v_head_dim,
                     block_n)) {
      return bias_tiles ? fused::LaunchWsBiasTiles(padded_dim, params, maps, p, stream)
                        : fused::LaunchWs<true>(padded_dim, params, maps, p, stream);
    }
  }
  return fused::LaunchWs<false>(padded_dim, params, maps, p, stream);
}

}  // namespace

bool WgmmaWsFusedTakes(const AttentionProblem& p, int padded_dim) {
  const bool dim_instantiated = OneOf(kFusedWsDims, padded_dim);
  return ModeFromEnvironment() != WsMode::kOff && (!p.has_bias || p.bias_dtype != DType::kF32) &&
         (p.dtype == DType::kF16 || p.dtype == DType::kBF16) && dim_instantiated &&
         CurrentDeviceMajor() == 9;
}

absl::Status RunWideFused(const FusedParams& params, const AttentionProblem& p, void* stream) {
  WsTensorMaps maps;
  std::memset(&maps, 0, sizeof(maps));
  const int64_t rows = p.ragged ? p.total_kv : p.kv_len;
  const int64_t batch = p.ragged ? 1 : p.batch;
  const int64_t kv_heads = p.q_heads / params.group;
  const int block_n = fused::WideShape::kBlockN;
  const bool f16 = p.dtype == DType::kF16;
  const auto encode = f16 ? &EncodeMap<__half> : &EncodeMap<__nv_bfloat16>;
  if (!encode(&maps.k, params.k, params.k_strides, rows, kv_heads, batch, params.head_dim,
              block_n) ||
      !encode(&maps.v, params.v, params.v_strides, rows, kv_heads, batch, params.v_head_dim,
              block_n)) {
    return absl::InternalError("fused wide kernel: the driver refused K's or V's tensor map");
  }
  return fused::LaunchWide(params, maps, p, static_cast<cudaStream_t>(stream));
}

absl::Status RunWgmmaWsFused(const FusedParams& params, const AttentionProblem& p, int padded_dim,
                             void* stream) {
  auto* s = static_cast<cudaStream_t>(stream);
  return p.dtype == DType::kF16 ? LaunchMode<__half>(padded_dim, params, p, s)
                                : LaunchMode<__nv_bfloat16>(padded_dim, params, p, s);
}

}  // namespace attnd::kernels::cuda
