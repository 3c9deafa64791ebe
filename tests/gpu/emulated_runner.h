// A StepRunner on the CPU: the GEMM steps as plain loops (double accumulation, row-major as
// kernels/cuda/steps.h defines them) and the row steps through the same row_ops.h functions the
// CUDA kernels call, one thread per row. It lets the pipeline of every cuBLAS variant (slicing,
// tiling, key bounds, workspace carving, the in-place P) run and be checked on a machine
// without a GPU.
#ifndef ATTND_TESTS_GPU_EMULATED_RUNNER_H_
#define ATTND_TESTS_GPU_EMULATED_RUNNER_H_

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda/pipeline.h"
#include "kernels/cuda/steps.h"

namespace attnd::kernels::cuda::testing {

class EmulatedRunner : public StepRunner {
 public:
  // Rows of at most kCachedCols columns take the cached row path (one thread holding the whole
  // row, as a CUDA group holds it spread over its threads) unless `streamed`; longer rows, and
  // all rows when `streamed`, take the two-pass path.
  static constexpr int kCachedCols = 4096;
  explicit EmulatedRunner(bool streamed = false) : streamed_(streamed) {}

  absl::Status Gemm(const GemmStep& step) override;
  absl::Status Softmax(const SoftmaxStep& step) override;
  absl::Status Merge(const MergeStep& step) override;
  absl::Status Finalize(const FinalizeStep& step) override;

  int64_t gemms() const { return gemms_; }
  int64_t row_steps() const { return row_steps_; }

 private:
  bool streamed_;
  int64_t gemms_ = 0;
  int64_t row_steps_ = 0;
};

}  // namespace attnd::kernels::cuda::testing

#endif  // ATTND_TESTS_GPU_EMULATED_RUNNER_H_
