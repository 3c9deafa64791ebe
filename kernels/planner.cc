// The planner. Worked example (CPU, caps {cpu_chunked, reference}, 2 threads, default config):
//   f32 B=1 H=1 Mq=Mk=32768 D=64, budget 256 MiB. Full scores would need 4 GiB, so only the
//   chunked variant can run. cpu_chunked starts from its cache-sized tile, q_chunk 256 and
//   kv_chunk 1024 (see kCpuTile*), which needs 2 threads × (1 MiB scores + 64 KiB acc + 5 KiB)
//   = 2.1 MiB <= 256 MiB. With a 1 MiB budget the larger chunk halves first: kv 512, then
//   q 128 and kv 256 ... until it fits; below min_q_chunk/min_kv_chunk it is RESOURCE_EXHAUSTED.
#include "kernels/planner.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "kernels/cpu_workspace.h"
#include "kernels/cuda/workspace_layout.h"
#include "kernels/fused_support.h"
#include "kernels/measured_rates.h"
#include "kernels/problem.h"

namespace attnd::kernels {
namespace {

// The order without a measurement (DESIGN.md's); MeasuredOrder reorders the GPU variants by the
// rates of kernels/measured_rates.h. `reference` is never chosen unless forced.
constexpr Variant kSpeedOrder[] = {Variant::kCudnn,  Variant::kFused,   Variant::kNaive,
                                   Variant::kSliced, Variant::kChunked, Variant::kCpuChunked};

// Debian's abseil has its own string_view, which std::string_view does not convert to.
std::string Name(Variant v) { return std::string(VariantName(v)); }

// cpu_chunked's starting tile when the request sets no chunk: a 256×1024 f32 score tile (1 MiB)
// stays in a core's L2. Measured at f32 Mq=Mk=4096 D=64 on 2 cores (attnd_cpu_bench --q-chunk
// --kv-chunk, bench/RESULTS.md): 256×1024 105 GFLOP/s, 512×512 111, 1024×1024 91, 256×4096 91,
// 1024×4096 (16 MiB tiles) 76. Lengths longer than the tile split into equal chunks (Mk 1025 →
// two chunks of 513, not 1024 + 1).
constexpr int64_t kCpuTileQ = 256;
constexpr int64_t kCpuTileKv = 1024;

// The GPU variants' query slice (sliced, chunked) before the budget and max_q_chunk bound it.
// Every slice costs its own launches (scores GEMM, row kernel, values GEMM, per key tile; about
// 25 us a slice on the H100: chunked at 1024-row slices ran 0.87x naive's single slice at
// 2x5x4096x64 f16 and 0.89x at 1x32x4096x128 bf16, bench/RESULTS.md), so without a mask a slice
// is as tall as the budget lets it be. Under a causal mask or a window, a slice of r rows also
// computes the hidden half of its r x r diagonal block, a fraction r / Mq of the visible work:
// there slices stay at kGpuMaskedSliceRows (1024: a quarter wasted at Mq 4096, 1/16 at 16384).
// Slices run on Capabilities::threads CUDA lanes (kernels/cuda/workspace_layout.h), each lane
// with its own workspace, so the budget is split between them.
constexpr int64_t kGpuMaskedSliceRows = 1024;

// The largest chunk <= cap that splits `len` into equal parts (the last one at most 1 shorter).
int64_t BalancedChunk(int64_t len, int64_t cap) {
  if (cap >= len) return len;
  const int64_t parts = (len + cap - 1) / cap;
  return (len + parts - 1) / parts;
}

bool HasQueryChunks(Variant v) {
  return v == Variant::kSliced || v == Variant::kChunked || v == Variant::kCpuChunked;
}
bool HasKeyChunks(Variant v) { return v == Variant::kChunked || v == Variant::kCpuChunked; }

// The tallest query slice the GPU variants start from (see kGpuMaskedSliceRows): without a mask
// the rows split evenly over the `lanes` (>= 1) streams, one slice each, so that they overlap.
int64_t GpuSliceRowCap(const AttentionProblem& p, int lanes) {
  const bool masked = p.causal != Causal::kNone || p.window_left >= 0 || p.window_right >= 0;
  return masked ? kGpuMaskedSliceRows : (p.q_len + lanes - 1) / lanes;
}

int64_t Product(std::initializer_list<int64_t> factors) {
  int64_t p = 1;
  for (int64_t f : factors) p = SaturatingMul(p, f);
  return p;
}

int64_t FullScoreBytes(const AttentionProblem& p) {
  return Product({p.batch, p.q_heads, p.q_len, p.kv_len, 4});
}

std::string HumanBytes(int64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  const char* units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double value = static_cast<double>(bytes) / 1024.0;
  int unit = 0;
  while (value >= 1024.0 && unit < 5) {
    value /= 1024.0;
    ++unit;
  }
  if (value == std::floor(value)) return absl::StrFormat("%.0f %s", value, units[unit]);
  return absl::StrFormat("%.1f %s", value, units[unit]);
}

// What the kernels of each variant accept beyond ValidateProblem (empty: anything). For cudnn
// only cuDNN's fixed rules (no f32, head dims multiples of 8): whether cuDNN takes a shape is
// asked of cuDNN itself by the executor, which drops kCudnn from Capabilities when it says no.
// Ragged problems run on reference, cpu_chunked and fused (when FusedRefusal takes them); the
// cuBLAS variants and cudnn index dense [B, M, H, X] tensors only.
std::string Unsupported(const AttentionProblem& p, Variant v) {
  if (p.ragged && (v == Variant::kNaive || v == Variant::kSliced || v == Variant::kChunked ||
                   v == Variant::kCudnn)) {
    return absl::StrCat(Name(v),
                        " takes no sequence offsets (ragged batches run on reference, "
                        "cpu_chunked and fused)");
  }
  if (v == Variant::kCudnn) {
    if (p.dtype == DType::kF32) return "cudnn needs f16 or bf16";
    if (p.head_dim % 8 != 0 || p.v_head_dim % 8 != 0) {
      return "cudnn needs head dims that are multiples of 8";
    }
  }
  if (v == Variant::kFused) return FusedRefusal(p);
  return "";
}

bool Contains(const std::vector<Variant>& variants, Variant v) {
  return std::find(variants.begin(), variants.end(), v) != variants.end();
}

// The variants of kSpeedOrder, fastest measured first on the case nearest `p` (stable: those
// without a measurement keep kSpeedOrder's order, after the measured ones).
std::vector<Variant> MeasuredOrder(const AttentionProblem& p) {
  std::vector<std::pair<Variant, double>> ranked;
  for (Variant v : kSpeedOrder) ranked.push_back({v, MeasuredRateFor(p, v).tflops});
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  std::vector<Variant> order;
  for (const auto& [v, rate] : ranked) order.push_back(v);
  return order;
}

struct Chunks {
  int64_t q_chunk = 0;
  int64_t kv_chunk = 0;
  int64_t bytes = 0;
  int threads = 1;
  bool fits = false;
};

// The largest chunks of `v` that fit the budget: start from the overrides or the maxima (capped
// by the lengths, and for cpu_chunked by its cache-sized tile), then halve the larger
// non-overridden chunk (the query chunk on a tie) until the workspace fits or both reach their
// minimum. Variants without a chunk axis run it whole.
Chunks ChooseChunks(const AttentionProblem& p, Variant v, const Capabilities& caps, int64_t budget,
                    const PlannerConfig& config) {
  const bool q_axis = HasQueryChunks(v);
  const bool kv_axis = HasKeyChunks(v);
  const bool q_fixed = !q_axis || config.q_chunk_override > 0;
  const bool kv_fixed = !kv_axis || config.kv_chunk_override > 0;
  auto start = [](bool axis, int64_t override_value, int64_t max_value, int64_t len) {
    if (!axis) return len;
    const int64_t wanted = override_value > 0 ? override_value : std::max<int64_t>(1, max_value);
    return std::min(wanted, len);
  };
  const int64_t min_q = std::clamp<int64_t>(config.min_q_chunk, 1, p.q_len);
  const int64_t min_kv = std::clamp<int64_t>(config.min_kv_chunk, 1, p.kv_len);
  // cpu_chunked's worker threads, or the CUDA lanes (streams) of sliced and chunked.
  const int threads = std::max(1, caps.threads);

  Chunks c;
  c.q_chunk = start(q_axis, config.q_chunk_override, config.max_q_chunk, p.q_len);
  c.kv_chunk = start(kv_axis, config.kv_chunk_override, config.max_kv_chunk, p.kv_len);
  if (v == Variant::kCpuChunked) {
    if (!q_fixed) c.q_chunk = BalancedChunk(p.q_len, std::min(c.q_chunk, kCpuTileQ));
    if (!kv_fixed) c.kv_chunk = BalancedChunk(p.kv_len, std::min(c.kv_chunk, kCpuTileKv));
  } else if (!q_fixed) {
    c.q_chunk = std::min(c.q_chunk, GpuSliceRowCap(p, threads));
  }
  for (;;) {
    c.bytes = WorkspaceBytes(p, v, c.q_chunk, c.kv_chunk, threads);
    if (c.bytes <= budget) {
      c.fits = true;
      break;
    }
    const bool can_q = !q_fixed && c.q_chunk > min_q;
    const bool can_kv = !kv_fixed && c.kv_chunk > min_kv;
    if (can_q && (!can_kv || c.q_chunk >= c.kv_chunk)) {
      c.q_chunk = std::max(min_q, (c.q_chunk + 1) / 2);
    } else if (can_kv) {
      c.kv_chunk = std::max(min_kv, (c.kv_chunk + 1) / 2);
    } else {
      break;
    }
  }
  c.threads = v == Variant::kCpuChunked ? CpuThreadsUsed(p, c.q_chunk, threads)
                                         : cuda::CudaLanesUsed(p, v, c.q_chunk, threads);
  if (!c.fits && caps.is_cuda && threads > 1) {
    // A second lane doubles the workspace; it must never be why a request is refused.
    Capabilities one_lane = caps;
    one_lane.threads = 1;
    const Chunks single = ChooseChunks(p, v, one_lane, budget, config);
    if (single.fits) return single;
  }
  return c;
}

Plan MakePlanFrom(Variant v, const Chunks& c, std::string why) {
  Plan plan;
  plan.variant = v;
  plan.q_chunk = c.q_chunk;
  plan.kv_chunk = c.kv_chunk;
  plan.workspace_bytes = c.bytes;
  plan.threads = c.threads;
  plan.reason = absl::StrCat(Name(v), ": ", why, "; q_chunk ", c.q_chunk, " kv_chunk ", c.kv_chunk,
                             " use ", HumanBytes(c.bytes));
  if (v == Variant::kCpuChunked) absl::StrAppend(&plan.reason, " on ", c.threads, " threads");
  if (c.threads > 1 && v != Variant::kCpuChunked) {
    absl::StrAppend(&plan.reason, " on ", c.threads, " streams");
  }
  return plan;
}

std::string VariantList(const std::vector<Variant>& variants) {
  std::vector<std::string> names;
  for (Variant v : variants) names.push_back(Name(v));
  return names.empty() ? "none" : absl::StrJoin(names, ", ");
}

}  // namespace

int64_t WorkspaceBytes(const AttentionProblem& p, Variant variant, int64_t q_chunk,
                       int64_t kv_chunk, int threads) {
  switch (variant) {
    case Variant::kAuto:
      return 0;
    case Variant::kReference:
      // ReferenceResult (out and lse in double), one kv head of K and V in double, one row of
      // scores and one query row.
      return SaturatingAdd(
          Product({SaturatingAdd(p.out_elements(), p.lse_elements()), 8}),
          Product(
              {SaturatingAdd(Product({p.kv_len, p.head_dim + p.v_head_dim + 1}), p.head_dim), 8}));
    case Variant::kCpuChunked:
      return SaturatingMul(CpuTileLayout::For(p, q_chunk, kv_chunk).bytes,
                           CpuThreadsUsed(p, q_chunk, threads));
    case Variant::kNaive:     // S [B, Hq, Mq, Mk] f32
    case Variant::kSliced:    // S [B, Hq, q_chunk, Mk]
    case Variant::kChunked:   // S [B, Hq, q_chunk, kv_chunk], m, l, acc [B, Hq, q_chunk, Dv]
      // Each plus the GEMM pointer arrays, in 256-byte aligned pieces, once per lane (`threads`
      // lanes at most, one per query slice): the layout RunCuda carves.
      return cuda::CudaWorkspaceLayout::For(p, variant, q_chunk, kv_chunk,
                                            cuda::CudaLanesUsed(p, variant, q_chunk, threads))
          .bytes;
    case Variant::kCudnn:
      return Product({p.batch, p.q_heads, p.q_len, 4});  // the LSE [B, Hq, Mq] f32
    case Variant::kFused:
      // The split-KV path's partial outputs and LSEs when it applies (FusedSplitKv), else the
      // LSE [B, Hq, Mq] f32 as for cudnn: the layout RunFused carves.
      return FusedWorkspaceLayout::For(p).bytes;
  }
  return 0;
}

absl::StatusOr<Plan> MakePlan(const AttentionProblem& problem, const Capabilities& caps,
                              int64_t budget_bytes, const PlannerConfig& config) {
  if (absl::Status s = ValidateProblem(problem, UnlimitedProblemLimits()); !s.ok()) return s;
  const int64_t budget = std::max<int64_t>(0, budget_bytes);
  const int64_t full = FullScoreBytes(problem);
  const std::string budget_text = HumanBytes(budget);

  if (config.forced_variant != Variant::kAuto) {
    const Variant v = config.forced_variant;
    if (!Contains(caps.variants, v)) {
      return absl::InvalidArgumentError(
          absl::StrCat("variant ", Name(v),
                       " cannot run on this device (runnable: ", VariantList(caps.variants), ")"));
    }
    if (const std::string why = Unsupported(problem, v); !why.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("variant ", Name(v), " cannot run ", problem.DebugString(), ": ", why));
    }
    const Chunks c = ChooseChunks(problem, v, caps, budget, config);
    if (!c.fits) {
      return absl::ResourceExhaustedError(
          absl::StrCat(Name(v), " needs ", c.bytes, " workspace bytes (", HumanBytes(c.bytes),
                       ") even at q_chunk ", c.q_chunk, " kv_chunk ", c.kv_chunk,
                       " but the budget is ", budget, " bytes (", budget_text, ")"));
    }
    return MakePlanFrom(v, c, "forced by request");
  }

  bool any_runnable = false;
  int64_t least_needed = 0;
  std::string least_needed_by;
  for (Variant v : MeasuredOrder(problem)) {
    if (!Contains(caps.variants, v) || !Unsupported(problem, v).empty()) continue;
    const Chunks c = ChooseChunks(problem, v, caps, budget, config);
    if (!c.fits) {
      if (!any_runnable || c.bytes < least_needed) {
        least_needed = c.bytes;
        least_needed_by =
            absl::StrCat(Name(v), " at q_chunk ", c.q_chunk, " kv_chunk ", c.kv_chunk);
      }
      any_runnable = true;
      continue;
    }
    std::string why = full > budget ? absl::StrCat("full scores need ", HumanBytes(full),
                                                   " > budget ", budget_text)
                                    : absl::StrCat("fastest runnable, budget ", budget_text);
    if (const MeasuredRate rate = MeasuredRateFor(problem, v); rate.tflops > 0.0) {
      absl::StrAppend(&why, " (measured ", rate.tflops, " TFLOP/s on the H100 at ", rate.shape,
                      ")");
    }
    return MakePlanFrom(v, c, why);
  }
  if (!any_runnable) {
    return absl::InvalidArgumentError(absl::StrCat("no variant runnable here (",
                                                   VariantList(caps.variants), ") supports ",
                                                   problem.DebugString()));
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "attention needs at least ", least_needed, " workspace bytes (", HumanBytes(least_needed),
      ", ", least_needed_by, ") but the budget is ", budget, " bytes (", budget_text, ")"));
}

}  // namespace attnd::kernels
