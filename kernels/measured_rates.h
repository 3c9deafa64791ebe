// Forward throughput of the GPU variants measured on the H100 (bench/RESULTS.md, the latest run:
// 2026-12-07, `bench/gpu/run_kernel_bench.sh`), kept in the repository so that the planner orders
// the variants it may run for a problem by measurement, not by a guess: cudnn where it is fastest,
// fused where cuDNN refuses and with a bias it copies as TMA tiles (1.5× cudnn), chunked beyond
// head dim 256 (cuDNN runs D 512 at 90 TFLOP/s, chunked at 338), naive before sliced and chunked
// where that was measured faster.
#ifndef ATTND_KERNELS_MEASURED_RATES_H_
#define ATTND_KERNELS_MEASURED_RATES_H_

#include <string>

#include "kernels/problem.h"

namespace attnd::kernels {

struct MeasuredRate {
  double tflops = -1.0;  // -1: nothing measured for this variant in this dtype class
  std::string shape;     // the measured case it comes from, e.g. "1x32x4096x128 bf16 causal"
};

// The rate of `variant` on the measured case nearest `problem`: same dtype class (f32 or 16-bit)
// and bias (none, one the fused kernel copies as TMA tiles, one it copies by rows:
// FusedBiasTakesTiles), the same side of kFusedMaxHeadDim (other kernels run above it), then the
// nearest head dim (ratio), then the same causality.
MeasuredRate MeasuredRateFor(const AttentionProblem& problem, Variant variant);

}  // namespace attnd::kernels

#endif  // ATTND_KERNELS_MEASURED_RATES_H_
