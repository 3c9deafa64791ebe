#include "kernels/measured_rates.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "kernels/fused_support.h"  // FusedBiasTakesTiles
#include "kernels/problem.h"

namespace attnd::kernels {
namespace {

// Whether a case has a bias, and how the fused kernel copies it (FusedBiasTakesTiles): as TMA
// tiles, or by rows (broadcast over queries or keys, unaligned, ragged), at half the speed.
enum class Bias { kNone, kTiles, kRows };

Bias BiasOf(const AttentionProblem& p) {
  if (!p.has_bias) return Bias::kNone;
  return FusedBiasTakesTiles(p) ? Bias::kTiles : Bias::kRows;
}

// One measured case: B×H×M×D (Mq = Mk), its dtype class, causality, bias, and the TFLOP/s of each
// variant (0: not run there, or refused).
struct Row {
  const char* shape;
  bool f32;
  int64_t head_dim;
  bool causal;
  Bias bias;
  double naive, sliced, chunked, cudnn, fused;
};

// bench/RESULTS.md, H100, 2026-12-07 session 10, run 4 (every variant in one run, PyTorch's peers
// beside them): the cuBLAS variants as the planner runs them, fused (16-bit: the warp-specialised
// wgmma kernel at padded D 64-256 on sm_90; f32: 3xTF32), cudnn through attnd's kernel path (at
// D 512 the planner lets cuDNN try: 89.3).
constexpr Row kRows[] = {
    {"2x5x4096x64 f16", false, 64, false, Bias::kNone, 60.3, 58.1, 56.5, 386.5, 323.3},
    {"1x32x1024x64 bf16", false, 64, false, Bias::kNone, 51.7, 50.4, 47.0, 345.0, 275.2},
    {"1x32x16384x64 f16 causal", false, 64, true, Bias::kNone, 26.8, 36.9, 52.1, 478.9, 422.0},
    {"2x16x4096x80 bf16", false, 80, false, Bias::kNone, 76.9, 73.1, 71.0, 445.7, 460.7},
    {"2x16x4096x96 bf16", false, 96, false, Bias::kNone, 91.4, 87.2, 84.6, 528.0, 514.1},
    {"1x32x4096x128 bf16", false, 128, false, Bias::kNone, 120.1, 114.6, 110.6, 681.1, 608.4},
    {"1x32x4096x128 bf16 causal", false, 128, true, Bias::kNone, 64.1, 87.7, 83.1, 537.1, 490.3},
    {"1x16x16384x128 bf16 causal", false, 128, true, Bias::kNone, 52.5, 71.8, 100.0, 641.4, 614.0},
    {"1x8x65536x128 bf16 causal", false, 128, true, Bias::kNone, 0, 69.2, 103.6, 617.6, 575.5},
    // Session 11, run 2 (bench/RESULTS.md 2026-12-07 session 11): fused with its TMA bias tiles
    // (111085b), then the same biases copied by rows (ATTND_FUSED_WS_BIAS=rows), the rows path of
    // the biases that take no tiles; cudnn from the same run, the cuBLAS variants from run 4 of
    // session 10 (the fused path is the only one that copies a bias differently).
    {"1x32x4096x128 bf16 dense bias", false, 128, false, Bias::kTiles, 100.0, 99.5, 92.6, 323.4,
     483.7},
    {"1x32x4096x128 bf16 bias [B,1,M,M]", false, 128, false, Bias::kTiles, 100.1, 99.3, 92.5, 358.8,
     509.3},
    {"1x32x4096x128 bf16 dense bias (rows)", false, 128, false, Bias::kRows, 100.0, 99.5, 92.6,
     323.4, 250.5},
    {"1x32x4096x128 bf16 bias [B,1,M,M] (rows)", false, 128, false, Bias::kRows, 100.1, 99.3, 92.5,
     358.8, 252.3},
    {"2x16x4096x160 bf16", false, 160, false, Bias::kNone, 148.2, 141.6, 135.4, 591.5, 538.0},
    {"1x8x8192x256 bf16", false, 256, false, Bias::kNone, 157.6, 156.8, 210.5, 755.6, 642.8},
    {"1x16x8192x256 bf16 causal", false, 256, true, Bias::kNone, 108.6, 151.5, 173.1, 640.6, 575.4},
    // fused: the wide kernel, session 11 run 3 (chunked 340.2 beside it).
    {"1x8x8192x512 bf16", false, 512, false, Bias::kNone, 277.7, 266.8, 339.5, 89.3, 488.9},
    {"2x5x4096x64 f32", true, 64, false, Bias::kNone, 26.4, 26.2, 25.6, 0, 58.4},
    {"1x16x4096x128 f32", true, 128, false, Bias::kNone, 37.7, 37.8, 37.1, 0, 71.1},
};

double RateOf(const Row& row, Variant v) {
  switch (v) {
    case Variant::kNaive:
      return row.naive;
    case Variant::kSliced:
      return row.sliced;
    case Variant::kChunked:
      return row.chunked;
    case Variant::kCudnn:
      return row.cudnn;
    case Variant::kFused:
      return row.fused;
    default:
      return 0.0;
  }
}

}  // namespace

MeasuredRate MeasuredRateFor(const AttentionProblem& p, Variant v) {
  const bool f32 = p.dtype == DType::kF32;
  const bool causal = p.causal != Causal::kNone;
  const Bias bias = BiasOf(p);
  const bool wide = std::max(p.head_dim, p.v_head_dim) > kFusedMaxHeadDim;
  const double dim = static_cast<double>(std::max<int64_t>(1, std::max(p.head_dim, p.v_head_dim)));
  MeasuredRate best;
  double best_distance = 0.0;
  for (const Row& row : kRows) {
    const double rate = RateOf(row, v);
    // Above kFusedMaxHeadDim fused (the wide kernel) and cuDNN run other kernels than below:
    // a case there is compared with cases there only.
    const bool row_wide = row.head_dim > kFusedMaxHeadDim;
    if (rate <= 0.0 || row.f32 != f32 || row.bias != bias || row_wide != wide) continue;
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
