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

// bench/RESULTS.md, H100, run 1 of 2026-12-07 (every variant in one run, PyTorch's peers beside
// them): the cuBLAS variants as the planner runs them, fused v4 (16-bit; the wgmma path at padded
// D 64-128 on sm_90) and 3xTF32 (f32), cudnn through attnd's kernel path (at D 512 the planner
// lets cuDNN try: 90.5).
constexpr Row kRows[] = {
    {"2x5x4096x64 f16", false, 64, false, false, 59.8, 57.6, 55.8, 379.7, 241.2},
    {"1x32x1024x64 bf16", false, 64, false, false, 51.1, 50.0, 46.7, 341.1, 232.7},
    {"1x32x16384x64 f16 causal", false, 64, true, false, 26.5, 36.5, 51.5, 469.0, 319.5},
    {"2x16x4096x80 bf16", false, 80, false, false, 76.2, 72.5, 70.1, 444.6, 327.9},
    {"2x16x4096x96 bf16", false, 96, false, false, 90.9, 86.5, 83.6, 527.2, 351.7},
    {"1x32x4096x128 bf16", false, 128, false, false, 119.0, 113.1, 109.2, 683.4, 391.9},
    {"1x32x4096x128 bf16 causal", false, 128, true, false, 63.4, 86.6, 82.7, 537.0, 327.0},
    {"1x16x16384x128 bf16 causal", false, 128, true, false, 52.0, 70.9, 98.6, 646.0, 415.8},
    {"1x8x65536x128 bf16 causal", false, 128, true, false, 0, 68.2, 102.6, 607.7, 416.8},
    {"1x32x4096x128 bf16 dense bias", false, 128, false, true, 98.6, 98.0, 91.5, 324.6, 162.0},
    {"1x32x4096x128 bf16 bias [B,1,M,M]", false, 128, false, true, 98.7, 98.1, 91.6, 361.1, 162.5},
    {"2x16x4096x160 bf16", false, 160, false, false, 147.6, 140.3, 134.1, 590.3, 234.4},
    {"1x8x8192x256 bf16", false, 256, false, false, 156.6, 155.6, 208.4, 754.9, 235.3},
    {"1x16x8192x256 bf16 causal", false, 256, true, false, 107.2, 150.1, 171.1, 639.7, 219.3},
    {"1x8x8192x512 bf16", false, 512, false, false, 276.4, 266.7, 338.1, 90.5, 0},
    {"2x5x4096x64 f32", true, 64, false, false, 26.6, 26.3, 25.4, 0, 58.6},
    {"1x16x4096x128 f32", true, 128, false, false, 37.2, 37.2, 36.8, 0, 71.1},
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
