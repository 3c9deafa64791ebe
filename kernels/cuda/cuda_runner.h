// The CUDA StepRunner: each GEMM step is one cuBLAS call (strided-batched where every operand's
// matrices are evenly spaced, else batched over device-built pointer arrays; the strided score
// steps through cuBLASLt with a measured algorithm choice, lt_score_gemm.h; with
// ATTND_SCORE_GEMM=own attnd's own score GEMM where it takes the step, score_gemm.h), each row
// step one kernel launch. Everything goes on one stream; nothing synchronizes it or allocates.
#ifndef ATTND_KERNELS_CUDA_CUDA_RUNNER_H_
#define ATTND_KERNELS_CUDA_CUDA_RUNNER_H_

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda/pipeline.h"
#include "kernels/cuda/steps.h"

namespace attnd::kernels::cuda {

class CudaStepRunner : public StepRunner {
 public:
  // `cublas` is bound to `stream` (cublasSetStream) by the caller.
  CudaStepRunner(cudaStream_t stream, cublasHandle_t cublas) : stream_(stream), cublas_(cublas) {}

  absl::Status Gemm(const GemmStep& step) override;
  absl::Status Softmax(const SoftmaxStep& step) override;
  absl::Status Merge(const MergeStep& step) override;
  absl::Status Finalize(const FinalizeStep& step) override;

 private:
  cudaStream_t stream_;
  cublasHandle_t cublas_;
};

// OK when this build's kernels have an image for the current device (they are built for the
// architectures in CMAKE_CUDA_ARCHITECTURES only); the CUDA error otherwise.
absl::Status CheckKernelImage();

// The matrices of `operand` for z in [0, Z) (z = b·Hq + h) are evenly spaced: *stride elements.
bool UniformStride(const GemmOperand& operand, int64_t batch, int64_t q_heads, int64_t* stride);

}  // namespace attnd::kernels::cuda

#endif  // ATTND_KERNELS_CUDA_CUDA_RUNNER_H_
