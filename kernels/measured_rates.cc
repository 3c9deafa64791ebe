#include "kernels/measured_rates.h"

#include <cmath>
#include <cstdint>
#include <string>

#include "kernels/problem.h"

namespace attnd::kernels {
namespace {

// One measured case: B×H×M×D (Mq = Mk), its dtype class, causality, bias, and the TFLOP/s of each
// variant (0: not run there, or refused).
struct Row {
  const char* shape;
  bool f32;
  int64_t head_dim;
  bool causal;
  bool bias;
  double naive, sliced, chunked, cudnn, fused;
};

// bench/RESULTS.md, H100, the first run of 2026-12-06 (every variant in one run, PyTorch's peers
// beside them): the cuBLAS variants with the planner's tall query slices (one stream; the second
// lane adds 4-9% on causal shapes only, measured on the H200), fused v3 (16-bit) and 3xTF32
// (f32), cudnn through attnd's kernel path (at D 512 the planner lets cuDNN try: 91.2).
constexpr Row kRows[] = {
    {"2x5x4096x64 f16", false, 64, false, false, 59.8, 59.8, 56.5, 383.9, 175.2},
    {"1x32x1024x64 bf16", false, 64, false, false, 51.2, 50.9, 47.1, 342.0, 233.7},
    {"1x32x16384x64 f16 causal", false, 64, true, false, 26.5, 36.3, 50.8, 472.1, 284.7},
    {"2x16x4096x80 bf16", false, 80, false, false, 76.2, 76.3, 72.2, 443.8, 229.9},
    {"2x16x4096x96 bf16", false, 96, false, false, 91.0, 91.0, 86.1, 521.3, 279.6},
    {"1x32x4096x128 bf16", false, 128, false, false, 119.0, 119.2, 111.7, 674.6, 302.8},
    {"1x32x4096x128 bf16 causal", false, 128, true, false, 63.6, 84.9, 80.0, 535.9, 233.6},
    {"1x16x16384x128 bf16 causal", false, 128, true, false, 52.0, 70.1, 95.5, 644.3, 290.6},
    {"1x8x65536x128 bf16 causal", false, 128, true, false, 0, 69.4, 97.8, 593.9, 304.9},
    {"1x32x4096x128 bf16 dense bias", false, 128, false, true, 98.8, 98.8, 91.8, 324.4, 92.7},
    {"1x32x4096x128 bf16 bias [B,1,M,M]", false, 128, false, true, 98.6, 98.6, 91.7, 363.1, 98.5},
    {"2x16x4096x160 bf16", false, 160, false, false, 147.2, 147.2, 138.1, 588.0, 229.3},
    {"1x8x8192x256 bf16", false, 256, false, false, 156.5, 156.6, 209.7, 746.5, 270.3},
    {"1x16x8192x256 bf16 causal", false, 256, true, false, 107.5, 145.5, 164.5, 637.3, 251.1},
    {"1x8x8192x512 bf16", false, 512, false, false, 276.4, 274.9, 333.4, 91.2, 0},
    {"2x5x4096x64 f32", true, 64, false, false, 26.5, 26.3, 25.7, 0, 58.7},
    {"1x16x4096x128 f32", true, 128, false, false, 37.6, 37.6, 36.9, 0, 70.3},
};

double RateOf(const Row& row, Variant v) {
  switch (v) {
    case Variant::kNaive: return row.naive;
    case Variant::kSliced: return row.sliced;
    case Variant::kChunked: return row.chunked;
    case Variant::kCudnn: return row.cudnn;
    case Variant::kFused: return row.fused;
    default: return 0.0;
  }
}

}  // namespace

MeasuredRate MeasuredRateFor(const AttentionProblem& p, Variant v) {
  const bool f32 = p.dtype == DType::kF32;
  const bool causal = p.causal != Causal::kNone;
  const double dim = static_cast<double>(std::max<int64_t>(1, std::max(p.head_dim, p.v_head_dim)));
  MeasuredRate best;
  double best_distance = 0.0;
  for (const Row& row : kRows) {
    const double rate = RateOf(row, v);
    if (rate <= 0.0 || row.f32 != f32 || row.bias != p.has_bias) continue;
    const double distance = std::fabs(std::log2(dim / static_cast<double>(row.head_dim))) +
                            (row.causal != causal ? 0.25 : 0.0);
    if (best.tflops < 0.0 || distance < best_distance) {
      best = MeasuredRate{rate, row.shape};
      best_distance = distance;
    }
  }
  return best;
}

}  // namespace attnd::kernels
