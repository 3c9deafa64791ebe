// attnd_cpu_bench: cpu_chunked throughput against OpenBLAS's own sgemm rate, measured in the same
// run with the same number of threads, so the ratio means the same on any machine.
//
//   attnd_cpu_bench [--threads N] [--reps N] [--budget-mib N] [--q-chunk N] [--kv-chunk N]
//                   [--baseline-rows] [--quick]
//
// For each shape it prints the plan the planner chose, the best of --reps runs, GFLOP/s
// (AttentionProblem::Flops(): 2·B·H·Mq·Mk·(D+Dv), halved for causal), the sgemm rate measured
// alternately with it, and their ratio.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cpu_attention.h"
#include "kernels/cpu_rows.h"
#include "kernels/dtype_convert.h"
#include "kernels/planner.h"
#include "kernels/problem.h"

extern "C" void openblas_set_num_threads(int num_threads);

namespace attnd::kernels {
namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  int threads = 0;
  int reps = 3;
  int64_t budget_mib = 256;
  bool quick = false;
  int64_t q_chunk = 0;  // planner overrides, 0 = planner's choice
  int64_t kv_chunk = 0;
  bool baseline_rows = false;  // the SSE2 row kernels even where AVX2 is present
};

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::vector<float> RandomFloats(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = normal(rng);
  return v;
}

// An n×n×n OpenBLAS sgemm on `threads` threads, timed once per call.
class Sgemm {
 public:
  Sgemm(int64_t n, int threads)
      : n_(n),
        threads_(threads),
        a_(RandomFloats(n * n, 1)),
        b_(RandomFloats(n * n, 2)),
        c_(static_cast<size_t>(n * n)) {}
  // Seconds of one product.
  double Time() {
    openblas_set_num_threads(threads_);  // RunCpuChunked sets it to 1 for its own workers
    const Clock::time_point start = Clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n_, n_, n_, 1.0f, a_.data(), n_,
                b_.data(), n_, 0.0f, c_.data(), n_);
    return Seconds(start);
  }
  double Flops() const { return 2.0 * n_ * n_ * n_; }
  int64_t n() const { return n_; }

 private:
  int64_t n_;
  int threads_;
  std::vector<float> a_, b_, c_;
};

struct Shape {
  const char* name;
  int64_t batch, heads, q_len, kv_len, head_dim;
  DType dtype;
  Causal causal;
};

void Bytes(const std::vector<float>& values, DType dtype, std::vector<unsigned char>* out) {
  out->resize(values.size() * DTypeSize(dtype));
  ConvertFromFloat(values.data(), static_cast<int64_t>(values.size()), dtype, out->data());
}

int Run(const Options& options) {
  const int threads =
      options.threads > 0 ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  if (options.baseline_rows) SetCpuRowsForTesting(&CpuRowsBaseline());
  Sgemm sgemm(options.quick ? 1024 : 2048, threads);
  std::printf("threads %d, softmax row kernels: %s, sgemm %lld³ f32\n", threads, CpuRows().name,
              static_cast<long long>(sgemm.n()));
  std::printf("each row: best of %d runs, sgemm and cpu_chunked alternating\n\n", options.reps);

  std::vector<Shape> shapes = {
      {"f32 B1 H1 M4096 D64", 1, 1, 4096, 4096, 64, DType::kF32, Causal::kNone},
      {"f32 B1 H1 M4096 D64 causal", 1, 1, 4096, 4096, 64, DType::kF32, Causal::kTopLeft},
      {"f32 B1 H8 M1024 D64", 1, 8, 1024, 1024, 64, DType::kF32, Causal::kNone},
      {"f32 B1 H1 M4096 D128", 1, 1, 4096, 4096, 128, DType::kF32, Causal::kNone},
      {"f16 B1 H1 M4096 D64", 1, 1, 4096, 4096, 64, DType::kF16, Causal::kNone},
      {"bf16 B1 H8 M2048 D64 causal", 1, 8, 2048, 2048, 64, DType::kBF16, Causal::kBottomRight},
  };
  if (options.quick) shapes.resize(1);

  std::printf("%-28s %-38s %8s %8s %8s %7s\n", "shape", "plan", "seconds", "GFLOP/s", "sgemm",
              "ratio");
  Capabilities caps;
  caps.variants = {Variant::kCpuChunked, Variant::kReference};
  caps.threads = threads;
  for (const Shape& s : shapes) {
    AttentionProblem p;
    p.dtype = s.dtype;
    p.batch = s.batch;
    p.q_len = s.q_len;
    p.kv_len = s.kv_len;
    p.q_heads = s.heads;
    p.kv_heads = s.heads;
    p.head_dim = s.head_dim;
    p.v_head_dim = s.head_dim;
    p.scale = 1.0 / std::sqrt(static_cast<double>(s.head_dim));
    p.causal = s.causal;
    std::vector<unsigned char> q, k, v;
    Bytes(RandomFloats(p.q_elements(), 3), p.dtype, &q);
    Bytes(RandomFloats(p.k_elements(), 4), p.dtype, &k);
    Bytes(RandomFloats(p.v_elements(), 5), p.dtype, &v);
    std::vector<unsigned char> out(static_cast<size_t>(p.out_elements()) * DTypeSize(p.dtype));
    AttentionTensors t;
    t.q = q.data();
    t.k = k.data();
    t.v = v.data();
    t.out = out.data();

    PlannerConfig config;
    config.q_chunk_override = options.q_chunk;
    config.kv_chunk_override = options.kv_chunk;
    const absl::StatusOr<Plan> plan = MakePlan(p, caps, options.budget_mib << 20, config);
    if (!plan.ok()) {
      std::fprintf(stderr, "%s: %s\n", s.name, std::string(plan.status().message()).c_str());
      return 1;
    }
    // The machine's speed drifts (other work shares it): alternate the two and keep the best of
    // each, so that the ratio compares like with like. Run 0 of each warms up.
    double best = 1e30;
    double best_sgemm = 1e30;
    for (int r = 0; r < options.reps + 1; ++r) {
      const double sgemm_seconds = sgemm.Time();
      // OpenBLAS's worker threads spin for a while after a call before they sleep; they would
      // take a core from cpu_chunked's own workers (measured: ratios of 0.33-0.40 instead of
      // ~0.6 on a quiet machine). Let them go to sleep first.
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      const Clock::time_point start = Clock::now();
      const absl::Status status = RunCpuChunked(*plan, p, t);
      if (!status.ok()) {
        std::fprintf(stderr, "%s: %s\n", s.name, std::string(status.message()).c_str());
        return 1;
      }
      if (r == 0) continue;
      best = std::min(best, Seconds(start));
      best_sgemm = std::min(best_sgemm, sgemm_seconds);
    }
    const double gflops = p.Flops() / best / 1e9;
    const double sgemm_gflops = sgemm.Flops() / best_sgemm / 1e9;
    const std::string plan_text = "q " + std::to_string(plan->q_chunk) + " kv " +
                                  std::to_string(plan->kv_chunk) + " threads " +
                                  std::to_string(plan->threads);
    std::printf("%-28s %-38s %8.3f %8.1f %8.1f %7.2f\n", s.name, plan_text.c_str(), best, gflops,
                sgemm_gflops, gflops / sgemm_gflops);
  }
  return 0;
}

}  // namespace
}  // namespace attnd::kernels

int main(int argc, char** argv) {
  attnd::kernels::Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> long long {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return std::atoll(argv[++i]);
    };
    if (arg == "--threads") {
      options.threads = static_cast<int>(value());
    } else if (arg == "--reps") {
      options.reps = std::max(1, static_cast<int>(value()));
    } else if (arg == "--budget-mib") {
      options.budget_mib = value();
    } else if (arg == "--q-chunk") {
      options.q_chunk = value();
    } else if (arg == "--kv-chunk") {
      options.kv_chunk = value();
    } else if (arg == "--baseline-rows") {
      options.baseline_rows = true;
    } else if (arg == "--quick") {
      options.quick = true;
    } else {
      std::fprintf(
          stderr,
          "usage: attnd_cpu_bench [--threads N] [--reps N] [--budget-mib N] [--q-chunk N]\n"
          "                       [--kv-chunk N] [--baseline-rows] [--quick]\n");
      return 2;
    }
  }
  return attnd::kernels::Run(options);
}
