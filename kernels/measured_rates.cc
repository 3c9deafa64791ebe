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

// bench/RESULTS.md, H100, 2026-12-07 session 10 run 2 (every variant in one run, PyTorch's peers
// beside them): the cuBLAS variants as the planner runs them, fused (16-bit: the warp-specialised
// wgmma kernel at padded D 64-256 on sm_90; f32: 3xTF32), cudnn through attnd's kernel path (at
// D 512 the planner lets cuDNN try: 89.8).
constexpr Row kRows[] = {
    {"2x5x4096x64 f16", false, 64, false, false, 60.3, 58.4, 56.6, 377.9, 316.0},
    {"1x32x1024x64 bf16", false, 64, false, false, 51.4, 50.3, 46.7, 344.8, 270.7},
    {"1x32x16384x64 f16 causal", false, 64, true, false, 26.7, 36.9, 52.2, 472.6, 425.9},
    {"2x16x4096x80 bf16", false, 80, false, false, 76.9, 73.4, 71.1, 434.0, 445.6},
    {"2x16x4096x96 bf16", false, 96, false, false, 91.5, 87.5, 84.8, 519.6, 507.3},
    {"1x32x4096x128 bf16", false, 128, false, false, 120.0, 114.7, 110.7, 667.1, 594.9},
    {"1x32x4096x128 bf16 causal", false, 128, true, false, 64.3, 87.9, 83.3, 531.3, 486.4},
    {"1x16x16384x128 bf16 causal", false, 128, true, false, 52.6, 71.9, 100.1, 628.5, 629.0},
    {"1x8x65536x128 bf16 causal", false, 128, true, false, 0, 69.3, 103.8, 611.8, 568.7},
    {"1x32x4096x128 bf16 dense bias", false, 128, false, true, 100.0, 99.6, 92.8, 324.0, 143.9},
    {"1x32x4096x128 bf16 bias [B,1,M,M]", false, 128, false, true, 100.0, 99.6, 92.8, 360.4, 149.2},
    {"2x16x4096x160 bf16", false, 160, false, false, 148.3, 142.0, 135.4, 582.5, 535.8},
    {"1x8x8192x256 bf16", false, 256, false, false, 157.7, 156.7, 210.7, 739.0, 631.0},
    {"1x16x8192x256 bf16 causal", false, 256, true, false, 108.1, 151.5, 173.2, 630.1, 570.0},
    {"1x8x8192x512 bf16", false, 512, false, false, 275.0, 264.4, 340.0, 89.8, 0},
    {"2x5x4096x64 f32", true, 64, false, false, 26.3, 26.1, 25.6, 0, 58.7},
    {"1x16x4096x128 f32", true, 128, false, false, 37.5, 37.9, 37.0, 0, 70.7},
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
