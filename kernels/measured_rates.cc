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

// bench/RESULTS.md, H100, 2026-12-07 session 10, run 4 (every variant in one run, PyTorch's peers
// beside them): the cuBLAS variants as the planner runs them, fused (16-bit: the warp-specialised
// wgmma kernel at padded D 64-256 on sm_90; f32: 3xTF32), cudnn through attnd's kernel path (at
// D 512 the planner lets cuDNN try: 90.1).
constexpr Row kRows[] = {
    {"2x5x4096x64 f16", false, 64, false, false, 60.3, 58.2, 56.5, 385.1, 315.3},
    {"1x32x1024x64 bf16", false, 64, false, false, 51.5, 50.5, 46.9, 348.2, 274.8},
    {"1x32x16384x64 f16 causal", false, 64, true, false, 26.7, 37.0, 52.1, 478.2, 415.1},
    {"2x16x4096x80 bf16", false, 80, false, false, 76.9, 73.2, 70.9, 443.6, 447.5},
    {"2x16x4096x96 bf16", false, 96, false, false, 91.4, 87.2, 84.6, 524.2, 508.2},
    {"1x32x4096x128 bf16", false, 128, false, false, 120.2, 114.5, 110.5, 680.0, 604.1},
    {"1x32x4096x128 bf16 causal", false, 128, true, false, 64.1, 87.9, 83.3, 533.5, 490.2},
    {"1x16x16384x128 bf16 causal", false, 128, true, false, 52.6, 71.8, 99.9, 635.2, 634.0},
    {"1x8x65536x128 bf16 causal", false, 128, true, false, 0, 69.2, 103.2, 610.7, 589.2},
    {"1x32x4096x128 bf16 dense bias", false, 128, false, true, 100.0, 99.4, 92.5, 324.5, 143.9},
    {"1x32x4096x128 bf16 bias [B,1,M,M]", false, 128, false, true, 100.1, 99.5, 92.5, 361.7, 149.2},
    {"2x16x4096x160 bf16", false, 160, false, false, 148.1, 141.8, 135.2, 589.1, 539.0},
    {"1x8x8192x256 bf16", false, 256, false, false, 157.7, 156.8, 210.2, 749.3, 645.0},
    {"1x16x8192x256 bf16 causal", false, 256, true, false, 108.0, 151.5, 173.0, 636.4, 572.3},
    {"1x8x8192x512 bf16", false, 512, false, false, 276.5, 265.6, 342.2, 90.1, 0},
    {"2x5x4096x64 f32", true, 64, false, false, 26.5, 26.4, 25.4, 0, 58.0},
    {"1x16x4096x128 f32", true, 128, false, false, 37.5, 37.5, 36.9, 0, 70.6},
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
