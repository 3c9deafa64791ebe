// attnd_score_gemm_algos: the score GEMM of the cuBLAS variants (S = alpha·Q·Kᵀ per head, 16-bit
// Q and K, f32 S) timed three ways in one run: cuBLAS as CudaStepRunner calls it
// (cublasGemmStridedBatchedEx, the library's choice), every algorithm cuBLASLt's heuristic offers
// for it, and attnd's own kernel (kernels/cuda/score_gemm). Which is fastest decides what the
// chunked variant's score step should call.
//
//   attnd_score_gemm_algos [--z 8] [--m 4096] [--n 4096] [--k 512] [--f16] [--algos 32]
//                          [--iters 10] [--workspace BYTES]   (default 64 MiB)
//
// Q [z, m, k], K [z, n, k], S [z, m, n], contiguous (BHMK). Each line: median ms of `iters`
// runs after 3 warm-up ones (CUDA events), TFLOP/s, S's bytes written per second, and for
// cuBLASLt the algorithm's configuration (algo id, tile id, stages id, split-k, swizzle, cluster
// shape id, the heuristic's waves count).
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/cuda/score_gemm/score_gemm.h"
#include "kernels/cuda/steps.h"

namespace {

using attnd::kernels::DType;
using attnd::kernels::cuda::GemmStep;

#define CHECK_CUDA(call)                                                                     \
  do {                                                                                       \
    const cudaError_t e_ = (call);                                                           \
    if (e_ != cudaSuccess) {                                                                 \
      std::fprintf(stderr, "%s: %s\n", #call, cudaGetErrorString(e_));                       \
      std::exit(1);                                                                          \
    }                                                                                        \
  } while (false)
#define CHECK_CUBLAS(call)                                                                   \
  do {                                                                                       \
    const cublasStatus_t s_ = (call);                                                        \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                       \
      std::fprintf(stderr, "%s: %s\n", #call, cublasGetStatusString(s_));                    \
      std::exit(1);                                                                          \
    }                                                                                        \
  } while (false)

struct Options {
  int64_t z = 8;
  int64_t m = 4096;
  int64_t n = 4096;
  int64_t k = 512;
  bool f16 = false;
  int algos = 32;
  int iters = 10;
  int64_t workspace = int64_t{64} << 20;  // the heuristic's workspace limit, bytes
};

// Median ms of `run` (enqueued on `stream`), or -1 when a run fails.
double MedianMs(cudaStream_t stream, int iters, const std::function<bool()>& run) {
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  std::vector<float> ms;
  for (int i = 0; i < 3 + iters; ++i) {
    CHECK_CUDA(cudaEventRecord(start, stream));
    if (!run()) return -1.0;
    CHECK_CUDA(cudaEventRecord(stop, stream));
    CHECK_CUDA(cudaEventSynchronize(stop));
    float t = 0;
    CHECK_CUDA(cudaEventElapsedTime(&t, start, stop));
    if (i >= 3) ms.push_back(t);
  }
  CHECK_CUDA(cudaEventDestroy(start));
  CHECK_CUDA(cudaEventDestroy(stop));
  std::sort(ms.begin(), ms.end());
  return iters % 2 == 1 ? ms[iters / 2] : 0.5 * (ms[iters / 2 - 1] + ms[iters / 2]);
}

int AlgoAttribute(const cublasLtMatmulAlgo_t& algo, cublasLtMatmulAlgoConfigAttributes_t what) {
  int value = 0;
  size_t written = 0;
  // Some attributes are 16-bit; the value starts zeroed, so the low bytes read right either way.
  cublasLtMatmulAlgoConfigGetAttribute(&algo, what, &value, sizeof(value), &written);
  return value;
}

int Run(const Options& o) {
  const double flops = 2.0 * o.z * o.m * o.n * o.k;
  const double s_bytes = 4.0 * o.z * o.m * o.n;
  const cudaDataType_t in_type = o.f16 ? CUDA_R_16F : CUDA_R_16BF;
  cudaDeviceProp prop;
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s; S[%lld, %lld, %lld] = Q·Kᵀ at k %lld, %s in, f32 out; %d runs\n",
              prop.name, static_cast<long long>(o.z), static_cast<long long>(o.m),
              static_cast<long long>(o.n), static_cast<long long>(o.k), o.f16 ? "f16" : "bf16",
              o.iters);

  void* q = nullptr;
  void* kt = nullptr;
  void* s = nullptr;
  void* workspace = nullptr;
  constexpr size_t kWorkspace = size_t{64} << 20;
  CHECK_CUDA(cudaMalloc(&q, static_cast<size_t>(o.z * o.m * o.k * 2)));
  CHECK_CUDA(cudaMalloc(&kt, static_cast<size_t>(o.z * o.n * o.k * 2)));
  CHECK_CUDA(cudaMalloc(&s, static_cast<size_t>(s_bytes)));
  CHECK_CUDA(cudaMalloc(&workspace, kWorkspace));
  // Small values (0x3C00: 1.0 in f16, 0x3C3C ~ 0.011 in bf16): finite products.
  CHECK_CUDA(cudaMemset(q, 0x3C, static_cast<size_t>(o.z * o.m * o.k * 2)));
  CHECK_CUDA(cudaMemset(kt, 0x1C, static_cast<size_t>(o.z * o.n * o.k * 2)));
  cudaStream_t stream;
  CHECK_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const float alpha = 0.044f;
  const float beta = 0.0f;
  auto report = [&](const char* what, double ms, const std::string& config) {
    if (ms < 0) {
      std::printf("%-34s failed %s\n", what, config.c_str());
      return;
    }
    std::printf("%-34s %8.4f ms %7.1f TFLOP/s %5.2f TB/s written  %s\n", what, ms,
                flops / (ms * 1e-3) / 1e12, s_bytes / (ms * 1e-3) / 1e12, config.c_str());
  };

  // 1. cuBLAS as CudaStepRunner::Gemm calls it: column-major Sᵀ[n, m] = Kᵀ·Q per z.
  cublasHandle_t cublas;
  CHECK_CUBLAS(cublasCreate(&cublas));
  CHECK_CUBLAS(cublasSetStream(cublas, stream));
  const int m = static_cast<int>(o.n);
  const int n = static_cast<int>(o.m);
  const int k = static_cast<int>(o.k);
  report("cublasGemmStridedBatchedEx", MedianMs(stream, o.iters, [&] {
           return cublasGemmStridedBatchedEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, kt,
                                             in_type, k, o.n * o.k, q, in_type, k, o.m * o.k,
                                             &beta, s, CUDA_R_32F, m, o.m * o.n,
                                             static_cast<int>(o.z), CUBLAS_COMPUTE_32F,
                                             CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS;
         }),
         "");

  // 2. Every algorithm the cuBLASLt heuristic returns for the same product.
  cublasLtHandle_t lt;
  CHECK_CUBLAS(cublasLtCreate(&lt));
  cublasLtMatmulDesc_t op;
  CHECK_CUBLAS(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t trans_a = CUBLAS_OP_T;
  const cublasOperation_t trans_b = CUBLAS_OP_N;
  CHECK_CUBLAS(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a,
                                              sizeof(trans_a)));
  CHECK_CUBLAS(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b,
                                              sizeof(trans_b)));
  cublasLtMatrixLayout_t a_layout, b_layout, c_layout;
  CHECK_CUBLAS(cublasLtMatrixLayoutCreate(&a_layout, in_type, k, m, k));  // K: k × n, ld k
  CHECK_CUBLAS(cublasLtMatrixLayoutCreate(&b_layout, in_type, k, n, k));  // Q: k × m, ld k
  CHECK_CUBLAS(cublasLtMatrixLayoutCreate(&c_layout, CUDA_R_32F, m, n, m));
  const int batch = static_cast<int>(o.z);
  const int64_t strides[3] = {o.n * o.k, o.m * o.k, o.m * o.n};
  cublasLtMatrixLayout_t layouts[3] = {a_layout, b_layout, c_layout};
  for (int i = 0; i < 3; ++i) {
    CHECK_CUBLAS(cublasLtMatrixLayoutSetAttribute(layouts[i], CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                                                  &batch, sizeof(batch)));
    CHECK_CUBLAS(cublasLtMatrixLayoutSetAttribute(
        layouts[i], CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &strides[i], sizeof(strides[i])));
  }
  cublasLtMatmulPreference_t preference;
  CHECK_CUBLAS(cublasLtMatmulPreferenceCreate(&preference));
  const size_t workspace_bytes = static_cast<size_t>(std::min<int64_t>(o.workspace, kWorkspace));
  CHECK_CUBLAS(cublasLtMatmulPreferenceSetAttribute(
      preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes,
      sizeof(workspace_bytes)));
  std::vector<cublasLtMatmulHeuristicResult_t> results(static_cast<size_t>(o.algos));
  int returned = 0;
  CHECK_CUBLAS(cublasLtMatmulAlgoGetHeuristic(lt, op, a_layout, b_layout, c_layout, c_layout,
                                              preference, o.algos, results.data(), &returned));
  std::printf("cuBLASLt heuristic: %d algorithms\n", returned);
  for (int i = 0; i < returned; ++i) {
    const cublasLtMatmulAlgo_t& algo = results[static_cast<size_t>(i)].algo;
    char config[200];
    std::snprintf(config, sizeof(config),
                  "algo %d tile %d stages %d splitk %d swizzle %d cluster %d waves %.2f ws %zu",
                  AlgoAttribute(algo, CUBLASLT_ALGO_CONFIG_ID),
                  AlgoAttribute(algo, CUBLASLT_ALGO_CONFIG_TILE_ID),
                  AlgoAttribute(algo, CUBLASLT_ALGO_CONFIG_STAGES_ID),
                  AlgoAttribute(algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM),
                  AlgoAttribute(algo, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING),
                  AlgoAttribute(algo, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID),
                  results[static_cast<size_t>(i)].wavesCount,
                  results[static_cast<size_t>(i)].workspaceSize);
    char what[40];
    std::snprintf(what, sizeof(what), "cublasLt heuristic #%d", i);
    report(what, MedianMs(stream, o.iters, [&] {
             return cublasLtMatmul(lt, op, &alpha, kt, a_layout, q, b_layout, &beta, s, c_layout,
                                   s, c_layout, &algo, workspace, workspace_bytes,
                                   stream) == CUBLAS_STATUS_SUCCESS;
           }),
           config);
  }

  // 3. attnd's kernel.
  GemmStep step;
  step.batch = 1;
  step.q_heads = o.z;
  step.m = o.m;
  step.n = o.n;
  step.k = o.k;
  step.b_transposed = true;
  step.alpha = alpha;
  const DType dtype = o.f16 ? DType::kF16 : DType::kBF16;
  step.a = {q, dtype, o.z * o.m * o.k, o.m * o.k, 1, o.k};
  step.b = {kt, dtype, o.z * o.n * o.k, o.n * o.k, 1, o.k};
  step.c = {s, DType::kF32, o.z * o.m * o.n, o.m * o.n, 1, o.n};
  report("attnd score_gemm", MedianMs(stream, o.iters, [&] {
           const absl::StatusOr<bool> taken = attnd::kernels::cuda::TryScoreGemm(step, stream);
           return taken.ok() && *taken;
         }),
         "");
  CHECK_CUDA(cudaStreamSynchronize(stream));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&]() -> int64_t {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return std::atoll(argv[++i]);
    };
    if (arg == "--z") o.z = next();
    else if (arg == "--m") o.m = next();
    else if (arg == "--n") o.n = next();
    else if (arg == "--k") o.k = next();
    else if (arg == "--algos") o.algos = static_cast<int>(next());
    else if (arg == "--iters") o.iters = static_cast<int>(next());
    else if (arg == "--workspace") o.workspace = next();
    else if (arg == "--f16") o.f16 = true;
    else {
      std::fprintf(stderr, "unknown argument %s\n", arg.c_str());
      return 2;
    }
  }
  if (o.z < 1 || o.m < 1 || o.n < 1 || o.k < 1 || o.algos < 1 || o.iters < 1 || o.workspace < 0) {
    std::fprintf(stderr, "sizes, --algos and --iters must be positive\n");
    return 2;
  }
  return Run(o);
}
