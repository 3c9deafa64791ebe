#include "kernels/cuda/lt_score_gemm.h"

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/problem.h"

namespace attnd::kernels::cuda {
namespace {

bool DisabledByEnvironment() {
  static const bool disabled = [] {
    const char* env = std::getenv("ATTND_SCORE_GEMM");
    return env != nullptr && std::strcmp(env, "cublas") == 0;
  }();
  return disabled;
}

// Everything cublasLtMatmul needs for one shape, made once. `usable` false: cuBLASLt offered
// nothing (the step goes to cuBLAS).
struct Prepared {
  bool usable = false;
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr;  // cuBLAS's first operand: our B (K), transposed
  cublasLtMatrixLayout_t b = nullptr;  // our A (Q)
  cublasLtMatrixLayout_t c = nullptr;
  cublasLtMatmulAlgo_t algo{};
};

// The device, then the shape: m, n, k, lda, ldb, ldc, the three strides, the batch count (which
// sizes the workspace), the input type.
using Key = std::tuple<int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                       int64_t, int64_t, int>;

// The workspace cuBLASLt may use: the step's pointer scratch ([3, Z] pointers, which only the
// batched path over pointer arrays fills, and a strided step never does). Some algorithms ask for
// a few bytes (4, for the 128×160 tile, measured); none of them more than this is offered.
uint64_t WorkspaceBytes(const GemmStep& s) {
  return s.scratch == nullptr ? 0 : static_cast<uint64_t>(3 * s.batch * s.q_heads * sizeof(void*));
}

constexpr size_t kMaxShapes = 4096;

// A handle per device (made on first use with that device current), and the prepared shapes.
struct Cache {
  std::mutex mu;
  std::map<int, cublasLtHandle_t> handles;          // null: cublasLtCreate failed there
  std::map<Key, std::unique_ptr<Prepared>> shapes;  // entries are never removed: stable pointers
};

Cache& TheCache() {
  static Cache* cache = new Cache();  // process lifetime (destroying cuBLASLt at exit is unsafe)
  return *cache;
}

// Column-major, as cuBLAS sees the row-major product: Cᵀ[n_q, m_k] = op(K)·Qᵀ, i.e. m = s.n (keys),
// n = s.m (query rows), A = K stored k × m (transposed), B = Q stored k × n.
void Prepare(const GemmStep& s, int64_t stride_a, int64_t stride_b, int64_t stride_c,
             cublasLtHandle_t handle, Prepared* out) {
  const cudaDataType_t in = s.a.dtype == DType::kF16 ? CUDA_R_16F : CUDA_R_16BF;
  const int32_t batch = static_cast<int32_t>(s.batch * s.q_heads);
  if (cublasLtMatmulDescCreate(&out->op, CUBLAS_COMPUTE_32F, CUDA_R_32F) !=
      CUBLAS_STATUS_SUCCESS) {
    return;
  }
  const cublasOperation_t trans_a = CUBLAS_OP_T;
  const cublasOperation_t trans_b = CUBLAS_OP_N;
  if (cublasLtMatmulDescSetAttribute(out->op, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a,
                                     sizeof(trans_a)) != CUBLAS_STATUS_SUCCESS ||
      cublasLtMatmulDescSetAttribute(out->op, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b,
                                     sizeof(trans_b)) != CUBLAS_STATUS_SUCCESS ||
      cublasLtMatrixLayoutCreate(&out->a, in, static_cast<uint64_t>(s.k),
                                 static_cast<uint64_t>(s.n), s.b.ld) != CUBLAS_STATUS_SUCCESS ||
      cublasLtMatrixLayoutCreate(&out->b, in, static_cast<uint64_t>(s.k),
                                 static_cast<uint64_t>(s.m), s.a.ld) != CUBLAS_STATUS_SUCCESS ||
      cublasLtMatrixLayoutCreate(&out->c, CUDA_R_32F, static_cast<uint64_t>(s.n),
                                 static_cast<uint64_t>(s.m), s.c.ld) != CUBLAS_STATUS_SUCCESS) {
    return;
  }
  const cublasLtMatrixLayout_t layouts[3] = {out->a, out->b, out->c};
  const int64_t strides[3] = {stride_b, stride_a, stride_c};
  for (int i = 0; i < 3; ++i) {
    if (cublasLtMatrixLayoutSetAttribute(layouts[i], CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch,
                                         sizeof(batch)) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatrixLayoutSetAttribute(layouts[i], CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                         &strides[i],
                                         sizeof(strides[i])) != CUBLAS_STATUS_SUCCESS) {
      return;
    }
  }
  cublasLtMatmulPreference_t preference = nullptr;
  if (cublasLtMatmulPreferenceCreate(&preference) != CUBLAS_STATUS_SUCCESS) return;
  const uint64_t workspace = WorkspaceBytes(s);
  cublasLtMatmulHeuristicResult_t results[16];
  int returned = 0;
  const bool found =
      cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                           &workspace, sizeof(workspace)) == CUBLAS_STATUS_SUCCESS &&
      cublasLtMatmulAlgoGetHeuristic(handle, out->op, out->a, out->b, out->c, out->c, preference,
                                     16, results, &returned) == CUBLAS_STATUS_SUCCESS &&
      returned > 0;
  cublasLtMatmulPreferenceDestroy(preference);
  if (!found) return;
  int pick = 0;
  for (int i = 0; i < returned; ++i) {
    int tile = 0;
    size_t written = 0;
    if (results[i].state == CUBLAS_STATUS_SUCCESS &&
        cublasLtMatmulAlgoConfigGetAttribute(&results[i].algo, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile,
                                             sizeof(tile), &written) == CUBLAS_STATUS_SUCCESS &&
        tile == CUBLASLT_MATMUL_TILE_128x160) {
      pick = i;
      break;
    }
  }
  out->algo = results[pick].algo;
  out->usable = true;
}

}  // namespace

absl::StatusOr<bool> TryLtScoreGemm(const GemmStep& s, int64_t stride_a, int64_t stride_b,
                                    int64_t stride_c, cudaStream_t stream) {
  const bool sixteen_bit = s.a.dtype == DType::kF16 || s.a.dtype == DType::kBF16;
  if (DisabledByEnvironment() || !s.b_transposed || s.beta != 0.0f || !sixteen_bit ||
      s.b.dtype != s.a.dtype || s.c.dtype != DType::kF32 || s.m < 128 || s.n < 128) {
    return false;
  }
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return false;
  Cache& cache = TheCache();
  const Prepared* prepared = nullptr;
  cublasLtHandle_t handle = nullptr;
  {
    std::lock_guard<std::mutex> lock(cache.mu);
    auto [it, inserted] = cache.handles.try_emplace(device, nullptr);
    if (inserted && cublasLtCreate(&it->second) != CUBLAS_STATUS_SUCCESS) it->second = nullptr;
    if (it->second == nullptr) return false;
    handle = it->second;
    const Key key{device, s.m, s.n, s.k, s.a.ld, s.b.ld, s.c.ld, stride_a, stride_b, stride_c,
                  s.batch * s.q_heads, static_cast<int>(s.a.dtype)};
    auto found = cache.shapes.find(key);
    if (found == cache.shapes.end()) {
      // Bounded: a server seeing ever new lengths keeps the first kMaxShapes (about 1 KB each)
      // and sends the rest to cuBLAS's own choice.
      if (cache.shapes.size() >= kMaxShapes) return false;
      found = cache.shapes.emplace(key, std::make_unique<Prepared>()).first;
      Prepare(s, stride_a, stride_b, stride_c, handle, found->second.get());
    }
    prepared = found->second.get();
  }
  if (!prepared->usable) return false;
  const float beta = 0.0f;
  const cublasStatus_t status =
      cublasLtMatmul(handle, prepared->op, &s.alpha, s.b.base, prepared->a, s.a.base, prepared->b,
                     &beta, const_cast<void*>(s.c.base), prepared->c,
                     const_cast<void*>(s.c.base), prepared->c, &prepared->algo, s.scratch,
                     WorkspaceBytes(s), stream);
  if (status != CUBLAS_STATUS_SUCCESS) {
    return absl::InternalError(absl::StrCat(cublasGetStatusName(status), " (",
                                            cublasGetStatusString(status),
                                            ") from cublasLtMatmul (the score step)"));
  }
  return true;
}

}  // namespace attnd::kernels::cuda
