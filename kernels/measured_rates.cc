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

// bench/RESULTS.md, H100: naive/sliced/chunked/cudnn from the first full run of the session (the
// cuBLAS variants have not changed since), cudnn at D 512 and fused from the fused-v2 run (with
// a bias: v3); naive and chunked with a bias from session 3's run (row kernels vectorised with a
// bias; sliced was not rerun). The f32 rows' fused figures (3xTF32 kernel) and the
// 1x16x4096x128 f32 row come from the H200 run of 2026-12-02 (the H100 was not lent then).
constexpr Row kRows[] = {
    {"2x5x4096x64 f16", false, 64, false, false, 56.5, 52.9, 51.5, 381.2, 179.4},
    {"1x32x1024x64 bf16", false, 64, false, false, 0, 0, 49.4, 346.4, 242.3},
    {"1x32x16384x64 f16 causal", false, 64, true, false, 0, 0, 50.3, 474.5, 290.5},
    {"2x16x4096x80 bf16", false, 80, false, false, 71.6, 67.9, 66.2, 438.6, 230.7},
    {"2x16x4096x96 bf16", false, 96, false, false, 85.6, 81.1, 79.1, 519.5, 278.8},
    {"1x32x4096x128 bf16", false, 128, false, false, 112.4, 106.5, 104.2, 671.4, 291.5},
    {"1x32x4096x128 bf16 causal", false, 128, true, false, 61.3, 82.6, 79.7, 528.1, 223.8},
    {"1x16x16384x128 bf16 causal", false, 128, true, false, 51.9, 70.1, 95.4, 632.0, 277.2},
    {"1x8x65536x128 bf16 causal", false, 128, true, false, 0, 69.4, 98.2, 605.9, 312.4},
    {"1x32x4096x128 bf16 dense bias", false, 128, false, true, 98.6, 64.6, 87.2, 324.1, 92.2},
    {"1x32x4096x128 bf16 bias [B,1,M,M]", false, 128, false, true, 98.7, 68.3, 91.1, 353.6,
     98.4},
    {"2x16x4096x160 bf16", false, 160, false, false, 139.0, 132.0, 128.0, 581.0, 228.9},
    {"1x8x8192x256 bf16", false, 256, false, false, 156.4, 144.2, 181.5, 741.4, 277.4},
    {"1x16x8192x256 bf16 causal", false, 256, true, false, 0, 0, 163.8, 642.5, 255.6},
    {"1x8x8192x512 bf16", false, 512, false, false, 274.5, 255.6, 307.2, 90.0, 0},
    {"2x5x4096x64 f32", true, 64, false, false, 26.5, 20.0, 19.2, 0, 58.3},
    {"1x16x4096x128 f32", true, 128, false, false, 39.5, 36.9, 35.0, 0, 69.7},
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
