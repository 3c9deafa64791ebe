// attnd_gpu_bench: the CUDA variants' forward throughput and extra memory on the shapes of the
// GPU machine's README (../shared/device/README.md), as RunCuda runs them for the server.
//
//   attnd_gpu_bench [--iters 20] [--warmup 3] [--csv FILE]
//                   [--variants naive,sliced,chunked,fused[,cudnn]] [--shapes all|quick]
//                   [--only LABEL] [--q-chunk N] [--kv-chunk N] [--lanes N]
//
// --only runs the shapes whose label contains LABEL (`--only decode`: the two decode shapes,
// Mq 1 with GQA 32/8); --q-chunk/--kv-chunk override the chunks of sliced and chunked (the
// planner's otherwise), for tile-size sweeps; --lanes N the streams sliced and chunked spread
// their query slices over (default kCudaLanes, as the CUDA executor offers; 1 for the one-stream
// baseline).
// The variants default to naive, sliced, chunked and fused, and cudnn when built with cuDNN
// (ATTND_WITH_CUDNN). cudnn goes through the same path as the others (MakePlan with it forced,
// RunCuda), after CudnnSupports says yes; where cuDNN says no the line reads "refused: " and
// cuDNN's reason, and its workspace is CudnnWorkspaceBytes, as the executor sets it.
//
// For each shape and variant: the planner makes the plan with the variant forced and the budget
// the card has free after the inputs (less 2 GiB); the workspace is allocated once; `warmup`
// runs, then `iters` runs each timed with CUDA events on the context's stream; the median is
// reported. TFLOP/s use AttentionProblem::Flops (4·B·Hq·Mq·Mk·D for D = Dv, halved for causal).
// For chunked it also prints its memory-traffic bound: cuda::ChunkedTrafficBytes (the bytes its
// plan must move, formula in kernels/cuda/pipeline.h) at the device-to-device copy rate measured
// at the start of the run (2.96 TB/s on the README's H100), and the ratio of that time to the
// measured one. Decode shapes (Mq <= 16) are memory-bound: for them each line also gives the
// bytes any kernel must move (DecodeBytes: K and V once, Q and O) per second and that rate over
// the copy rate; the CSV carries q_len, io_bytes and copy_bytes_per_s for table.py. Inputs are BHMK (PyTorch
// SDPA's layout, for bench/gpu/peers.py), random normals.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "kernels/cuda/cuda_attention.h"
#include "kernels/cuda/pipeline.h"
#include "kernels/cuda/workspace_layout.h"
#include "kernels/device_query.h"
#include "kernels/dtype_convert.h"
#include "kernels/planner.h"
#include "kernels/problem.h"

#if defined(ATTND_WITH_CUDNN)
#include "kernels/cuda/cudnn/cudnn_attention.h"
#endif

namespace attnd::kernels {
namespace {

// The H100's device-to-device copy rate (bytes read + written, ../shared/device/README.md). The
// bound uses the rate measured in the same run (MeasureCopyRate) and prints this for reference.
constexpr double kH100CopyBytesPerSecond = 2.96e12;
constexpr int64_t kMargin = int64_t{2} << 30;

struct Shape {
  std::string label;
  int64_t batch, heads, kv_heads, len, dim;  // len: Mk, and Mq unless q_len is set
  DType dtype;
  bool causal;
  int bias = 0;  // 0 none, 1 dense [B, H, M, M], 2 [B, 1, M, M]
  int64_t q_len = 0;  // Mq when it differs from len (the decode shapes: 1)
};

// Decode shapes (Mq <= 16) are memory-bound: for them the bench reports bytes, not flops.
// The bytes any kernel must move: K and V read once, Q read, O written,
// B·Mk·Hkv·(D + Dv)·e + B·Mq·Hq·(D + Dv)·e (e: bytes per element); the shape
// (64, 32/8, 1, 8192, 128, bf16): 2147483648 + 1048576 = 2148532224 bytes.
bool IsDecode(const AttentionProblem& p) { return p.q_len <= 16 && p.q_len < p.kv_len; }
double DecodeBytes(const AttentionProblem& p) {
  const double e = static_cast<double>(DTypeSize(p.dtype));
  const double dims = static_cast<double>(p.head_dim + p.v_head_dim);
  return e * dims *
         (static_cast<double>(p.batch * p.kv_len * p.kv_heads) +
          static_cast<double>(p.batch * p.q_len * p.q_heads));
}

std::vector<Shape> Shapes(bool quick) {
  std::vector<Shape> s = {
      {"2x5x4096x64 f16 (SD 2.1 self)", 2, 5, 5, 4096, 64, DType::kF16, false},
      {"1x32x4096x128 bf16", 1, 32, 32, 4096, 128, DType::kBF16, false},
      {"1x32x4096x128 bf16 causal", 1, 32, 32, 4096, 128, DType::kBF16, true},
  };
  if (quick) return s;
  const std::vector<Shape> more = {
      {"1x16x16384x128 bf16 causal", 1, 16, 16, 16384, 128, DType::kBF16, true},
      {"1x8x8192x256 bf16", 1, 8, 8, 8192, 256, DType::kBF16, false},
      {"1x8x65536x128 bf16 causal", 1, 8, 8, 65536, 128, DType::kBF16, true},
      {"2x5x4096x64 f32", 2, 5, 5, 4096, 64, DType::kF32, false},
      {"1x16x4096x128 f32", 1, 16, 16, 4096, 128, DType::kF32, false},
      {"1x32x4096x128 bf16 dense bias", 1, 32, 32, 4096, 128, DType::kBF16, false, 1},
      {"1x32x4096x128 bf16 bias [B,1,M,M]", 1, 32, 32, 4096, 128, DType::kBF16, false, 2},
      {"1x8x8192x512 bf16", 1, 8, 8, 8192, 512, DType::kBF16, false},
      {"2x16x4096x80 bf16", 2, 16, 16, 4096, 80, DType::kBF16, false},
      {"2x16x4096x96 bf16", 2, 16, 16, 4096, 96, DType::kBF16, false},
      {"2x16x4096x160 bf16", 2, 16, 16, 4096, 160, DType::kBF16, false},
      {"2x16x4096x80 f16", 2, 16, 16, 4096, 80, DType::kF16, false},
      {"1x32x1024x64 bf16", 1, 32, 32, 1024, 64, DType::kBF16, false},
      {"1x32x16384x64 f16 causal", 1, 32, 32, 16384, 64, DType::kF16, true},
      {"1x16x8192x256 bf16 causal", 1, 16, 16, 8192, 256, DType::kBF16, true},
      // Decode (Mq 1, GQA 32/8): --only decode runs just these.
      {"64x32/8x1x8192x128 bf16 decode", 64, 32, 8, 8192, 128, DType::kBF16, false, 0, 1},
      {"8x32/8x1x32768x128 bf16 decode", 8, 32, 8, 32768, 128, DType::kBF16, false, 0, 1},
  };
  s.insert(s.end(), more.begin(), more.end());
  return s;
}

AttentionProblem ProblemOf(const Shape& s) {
  AttentionProblem p;
  p.dtype = s.dtype;
  p.layout = Layout::kBHMK;
  p.batch = s.batch;
  p.q_len = s.q_len > 0 ? s.q_len : s.len;
  p.kv_len = s.len;
  p.q_heads = s.heads;
  p.kv_heads = s.kv_heads;
  p.head_dim = s.dim;
  p.v_head_dim = s.dim;
  p.scale = 1.0 / std::sqrt(static_cast<double>(s.dim));
  p.causal = s.causal ? Causal::kTopLeft : Causal::kNone;
  if (s.bias != 0) {
    p.has_bias = true;
    p.bias_dtype = s.dtype;
    p.bias_shape[0] = s.batch;
    p.bias_shape[1] = s.bias == 1 ? s.heads : 1;
    p.bias_shape[2] = p.q_len;
    p.bias_shape[3] = s.len;
  }
  return p;
}

#define BENCH_CHECK_CUDA(call)                                                       \
  do {                                                                               \
    const cudaError_t e_ = (call);                                                   \
    if (e_ != cudaSuccess) {                                                         \
      return absl::InternalError(absl::StrCat(#call, ": ", cudaGetErrorString(e_))); \
    }                                                                                \
  } while (false)

// Device buffers of one shape, freed on scope exit.
struct Buffers {
  std::vector<void*> all;
  ~Buffers() {
    for (void* p : all) cudaFree(p);
  }
  absl::StatusOr<void*> Alloc(int64_t bytes) {
    void* p = nullptr;
    BENCH_CHECK_CUDA(cudaMalloc(&p, static_cast<size_t>(std::max<int64_t>(bytes, 256))));
    all.push_back(p);
    return p;
  }
};

// Fills `elements` of `dtype` at `device` with random normals: a 1 Mi-element random block,
// repeated (enough for timing; the tests check values).
absl::Status FillRandom(void* device, int64_t elements, DType dtype, std::mt19937* rng) {
  constexpr int64_t kBlock = int64_t{1} << 20;
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values(kBlock);
  for (float& v : values) v = normal(*rng);
  const int64_t size = static_cast<int64_t>(DTypeSize(dtype));
  std::vector<unsigned char> block(static_cast<size_t>(kBlock * size));
  ConvertFromFloat(values.data(), kBlock, dtype, block.data());
  for (int64_t at = 0; at < elements; at += kBlock) {
    const int64_t n = std::min(kBlock, elements - at);
    BENCH_CHECK_CUDA(cudaMemcpy(static_cast<unsigned char*>(device) + at * size, block.data(),
                                static_cast<size_t>(n * size), cudaMemcpyHostToDevice));
  }
  // A pageable copy may return before its DMA lands, on the legacy stream, which the context's
  // non-blocking streams do not wait for.
  BENCH_CHECK_CUDA(cudaDeviceSynchronize());
  return absl::OkStatus();
}

// Milliseconds of `op` (enqueued on `stream`, timed with CUDA events): the median of 10 runs
// after 3 warm-up ones. op(i) is run i.
template <class Op>
absl::StatusOr<double> MedianMs(cudaStream_t stream, Op op) {
  cudaEvent_t start, stop;
  BENCH_CHECK_CUDA(cudaEventCreate(&start));
  BENCH_CHECK_CUDA(cudaEventCreate(&stop));
  std::vector<float> ms;
  for (int i = 0; i < 13; ++i) {
    BENCH_CHECK_CUDA(cudaEventRecord(start, stream));
    BENCH_CHECK_CUDA(op(i));
    BENCH_CHECK_CUDA(cudaEventRecord(stop, stream));
    BENCH_CHECK_CUDA(cudaEventSynchronize(stop));
    float t = 0;
    BENCH_CHECK_CUDA(cudaEventElapsedTime(&t, start, stop));
    if (i >= 3) ms.push_back(t);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  return 0.5 * (ms[4] + ms[5]);
}

// Device-to-device copy rate (bytes read + written per second) of a 1 GiB buffer.
absl::StatusOr<double> MeasureCopyRate(cudaStream_t stream) {
  constexpr size_t kBytes = size_t{1} << 30;
  Buffers buffers;
  absl::StatusOr<void*> a = buffers.Alloc(kBytes);
  absl::StatusOr<void*> b = buffers.Alloc(kBytes);
  if (!a.ok()) return a.status();
  if (!b.ok()) return b.status();
  BENCH_CHECK_CUDA(cudaMemsetAsync(*a, 1, kBytes, stream));
  const absl::StatusOr<double> ms = MedianMs(stream, [&](int) {
    return cudaMemcpyAsync(*b, *a, kBytes, cudaMemcpyDeviceToDevice, stream);
  });
  if (!ms.ok()) return ms.status();
  return 2.0 * static_cast<double>(kBytes) / (*ms * 1e-3);
}

// Write-only rate (cudaMemsetAsync of a 1 GiB buffer, bytes written per second): what the f32
// score stores of the cuBLAS variants can reach at best.
absl::StatusOr<double> MeasureWriteRate(cudaStream_t stream) {
  constexpr size_t kBytes = size_t{1} << 30;
  Buffers buffers;
  absl::StatusOr<void*> a = buffers.Alloc(kBytes);
  if (!a.ok()) return a.status();
  const absl::StatusOr<double> ms =
      MedianMs(stream, [&](int i) { return cudaMemsetAsync(*a, i, kBytes, stream); });
  if (!ms.ok()) return ms.status();
  return static_cast<double>(kBytes) / (*ms * 1e-3);
}

struct Options {
  int iters = 20;
  int warmup = 3;
  std::string csv;
  std::vector<Variant> variants = {Variant::kNaive, Variant::kSliced, Variant::kChunked,
                                   Variant::kFused};
  bool quick = false;
  std::string only;          // run only the shapes whose label contains this
  int64_t q_chunk = 0;       // chunk overrides for sliced and chunked (0: the planner's)
  int64_t kv_chunk = 0;
  int lanes = cuda::kCudaLanes;  // streams for sliced and chunked, as the CUDA executor offers
};

struct Result {
  std::string status = "ok";
  double ms = 0;
  double tflops = 0;
  Plan plan;
  double bound_ms = 0;
  // Device memory taken during planning and the runs beyond the workspace allocation (free
  // bytes before planning less free bytes after the runs less the workspace rounded up to
  // cudaMalloc's 2 MiB granule): what cuBLAS/cuDNN took for themselves. Module loading counts
  // on a library's first use.
  int64_t beyond_bytes = 0;
};

std::string Csv(const std::string& s) {
  std::string out = "\"";
  for (char c : s) out += c == '"' ? '\'' : c;
  return out + "\"";
}

// One line of text for the CSV and the console: newlines become spaces, at most 240 chars.
std::string OneLine(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  if (s.size() > 240) s = s.substr(0, 237) + "...";
  return s;
}

// The plan of `v` as the server would make it: the planner with `v` forced. For kCudnn, cuDNN is
// asked first (CudnnSupports builds and caches the graph) and its refusal, with cuDNN's reason,
// is reported as "refused: ..."; then the planner plans it (it may refuse too, e.g. head dims it
// does not offer to cuDNN) and the workspace is CudnnWorkspaceBytes, as the executor sets it.
// A status message instead of a plan (returned as the error's message) for what does not run.
absl::StatusOr<Plan> PlanVariant(const AttentionProblem& p, Variant v, int64_t budget,
                                 int64_t q_chunk, int64_t kv_chunk, int lanes,
                                 const cuda::CudaContext& context) {
#if defined(ATTND_WITH_CUDNN)
  if (v == Variant::kCudnn) {
    std::string reason;
    absl::StatusOr<bool> supported = cuda::CudnnSupports(p, context.cudnn, &reason);
    if (!supported.ok()) {
      return absl::UnimplementedError(absl::StrCat("refused: ", supported.status().message()));
    }
    if (!*supported) return absl::UnimplementedError(absl::StrCat("refused: ", reason));
  }
#else
  (void)context;
#endif
  Capabilities caps;
  caps.is_cuda = true;
  caps.variants = cuda::CudaVariants();
  caps.threads = lanes;
  PlannerConfig config;
  config.forced_variant = v;
  config.q_chunk_override = q_chunk;
  config.kv_chunk_override = kv_chunk;
  absl::StatusOr<Plan> plan = MakePlan(p, caps, budget, config);
  if (!plan.ok()) {
    if (v != Variant::kCudnn) return plan.status();
    return absl::UnimplementedError(
        absl::StrCat("refused by attnd's planner (cuDNN accepts it): ", plan.status().message()));
  }
#if defined(ATTND_WITH_CUDNN)
  if (v == Variant::kCudnn) {
    absl::StatusOr<int64_t> bytes = cuda::CudnnWorkspaceBytes(p, context.cudnn);
    if (!bytes.ok()) return bytes.status();
    plan->workspace_bytes = *bytes;
  }
#endif
  return plan;
}

absl::StatusOr<Result> RunVariant(const AttentionProblem& p, const AttentionTensors& t, Variant v,
                                  const Options& o, const cuda::CudaContext& context,
                                  double copy_rate) {
  size_t free_bytes = 0;
  size_t total_bytes = 0;
  BENCH_CHECK_CUDA(cudaMemGetInfo(&free_bytes, &total_bytes));
  const int64_t budget = static_cast<int64_t>(free_bytes) - kMargin;
  Result r;
  const bool chunks = v == Variant::kSliced || v == Variant::kChunked;
  absl::StatusOr<Plan> plan =
      PlanVariant(p, v, budget, chunks ? o.q_chunk : 0, chunks ? o.kv_chunk : 0, o.lanes, context);
  if (!plan.ok()) {
    r.status = OneLine(std::string(plan.status().message()));
    return r;
  }
  r.plan = *plan;
  Buffers workspace;
  absl::StatusOr<void*> ws = workspace.Alloc(plan->workspace_bytes);
  if (!ws.ok()) return ws.status();
  cudaStream_t stream = static_cast<cudaStream_t>(context.stream);
  for (int i = 0; i < o.warmup; ++i) {
    if (absl::Status s = cuda::RunCuda(*plan, p, t, *ws, plan->workspace_bytes, context); !s.ok()) {
      return s;
    }
  }
  BENCH_CHECK_CUDA(cudaStreamSynchronize(stream));
  std::vector<cudaEvent_t> events(static_cast<size_t>(2 * o.iters));
  for (cudaEvent_t& e : events) BENCH_CHECK_CUDA(cudaEventCreate(&e));
  for (int i = 0; i < o.iters; ++i) {
    BENCH_CHECK_CUDA(cudaEventRecord(events[2 * i], stream));
    if (absl::Status s = cuda::RunCuda(*plan, p, t, *ws, plan->workspace_bytes, context); !s.ok()) {
      return s;
    }
    BENCH_CHECK_CUDA(cudaEventRecord(events[2 * i + 1], stream));
  }
  BENCH_CHECK_CUDA(cudaStreamSynchronize(stream));
  size_t free_after = 0;
  BENCH_CHECK_CUDA(cudaMemGetInfo(&free_after, &total_bytes));
  constexpr int64_t kGranule = int64_t{2} << 20;
  const int64_t ws_rounded =
      (std::max<int64_t>(plan->workspace_bytes, 256) + kGranule - 1) / kGranule * kGranule;
  r.beyond_bytes = std::max<int64_t>(
      0, static_cast<int64_t>(free_bytes) - static_cast<int64_t>(free_after) - ws_rounded);
  std::vector<float> ms(static_cast<size_t>(o.iters));
  for (int i = 0; i < o.iters; ++i) {
    BENCH_CHECK_CUDA(cudaEventElapsedTime(&ms[i], events[2 * i], events[2 * i + 1]));
  }
  for (cudaEvent_t e : events) cudaEventDestroy(e);
  std::sort(ms.begin(), ms.end());
  r.ms = o.iters % 2 == 1 ? ms[o.iters / 2] : 0.5 * (ms[o.iters / 2 - 1] + ms[o.iters / 2]);
  r.tflops = p.Flops() / (r.ms * 1e-3) / 1e12;
  if (v == Variant::kChunked) {
    r.bound_ms = cuda::ChunkedTrafficBytes(p, *plan) / copy_rate * 1e3;
  }
  return r;
}

absl::Status Bench(const Options& o) {
  if (CudaDeviceCount() == 0) return absl::UnavailableError("no CUDA device");
  const std::vector<CudaDeviceInfo> devices = CudaDevices();
  std::printf("device: %s, %d SMs; median of %d runs after %d warm-up\n", devices[0].name.c_str(),
              devices[0].multiprocessors, o.iters, o.warmup);
  cuda::CudaContext context;
  if (absl::Status s = cuda::CreateCudaContext(0, &context); !s.ok()) return s;
  const absl::StatusOr<double> copy_rate =
      MeasureCopyRate(static_cast<cudaStream_t>(context.stream));
  if (!copy_rate.ok()) return copy_rate.status();
  std::printf(
      "device-to-device copy: %.2f TB/s (read + written; the H100 of the README: %.2f); "
      "chunked's bound uses the rate measured here\n",
      *copy_rate / 1e12, kH100CopyBytesPerSecond / 1e12);
  const absl::StatusOr<double> write_rate =
      MeasureWriteRate(static_cast<cudaStream_t>(context.stream));
  if (!write_rate.ok()) return write_rate.status();
  std::printf("write-only (memset): %.2f TB/s\n", *write_rate / 1e12);
  FILE* csv = nullptr;
  if (!o.csv.empty()) {
    csv = std::fopen(o.csv.c_str(), "w");
    if (csv == nullptr) return absl::InvalidArgumentError(absl::StrCat("cannot write ", o.csv));
    std::fprintf(csv,
                 "shape,batch,heads,kv_heads,len,dim,dtype,causal,bias,variant,status,ms,tflops,"
                 "workspace_bytes,q_chunk,kv_chunk,bound_ms,beyond_bytes,q_len,io_bytes,"
                 "copy_bytes_per_s\n");
  }
  std::printf("%-36s %-8s %9s %9s %12s %10s %14s %10s %7s\n", "shape", "variant", "ms", "TFLOP/s",
              "extra MiB", "beyond MiB", "chunks", "bound ms", "/bound");
  std::mt19937 rng(2026);
  absl::Status status;
  for (const Shape& shape : Shapes(o.quick)) {
    if (!o.only.empty() && shape.label.find(o.only) == std::string::npos) continue;
    const AttentionProblem p = ProblemOf(shape);
    Buffers inputs;
    AttentionTensors t;
    const int64_t e = static_cast<int64_t>(DTypeSize(p.dtype));
    absl::StatusOr<void*> q = inputs.Alloc(p.q_elements() * e);
    absl::StatusOr<void*> k = inputs.Alloc(p.k_elements() * e);
    absl::StatusOr<void*> v = inputs.Alloc(p.v_elements() * e);
    absl::StatusOr<void*> out = inputs.Alloc(p.out_elements() * e);
    absl::StatusOr<void*> bias = inputs.Alloc(p.has_bias ? p.bias_elements() * e : 0);
    for (const auto* a : {&q, &k, &v, &out, &bias}) {
      if (!a->ok()) return a->status();
    }
    for (auto [ptr, n] : {std::pair<void*, int64_t>{*q, p.q_elements()},
                          {*k, p.k_elements()},
                          {*v, p.v_elements()},
                          {*bias, p.has_bias ? p.bias_elements() : 0}}) {
      if (absl::Status s = FillRandom(ptr, n, p.dtype, &rng); !s.ok()) return s;
    }
    t.q = *q;
    t.k = *k;
    t.v = *v;
    t.out = *out;
    t.bias = p.has_bias ? *bias : nullptr;
    for (Variant variant : o.variants) {
      const std::string name(VariantName(variant));
      absl::StatusOr<Result> r = RunVariant(p, t, variant, o, context, *copy_rate);
      if (!r.ok()) {
        // A CUDA error: report it and stop (the context may be unusable).
        std::printf("%-36s %-8s ERROR %s\n", shape.label.c_str(), name.c_str(),
                    std::string(r.status().message()).c_str());
        status = r.status();
        break;
      }
      const double ws_mib = static_cast<double>(r->plan.workspace_bytes) / (1 << 20);
      if (r->status != "ok") {
        std::printf("%-36s %-8s %s\n", shape.label.c_str(), name.c_str(), r->status.c_str());
      } else {
        const std::string chunks = absl::StrCat(r->plan.q_chunk, "x", r->plan.kv_chunk);
        std::printf("%-36s %-8s %9.3f %9.1f %12.1f %10.1f %14s", shape.label.c_str(), name.c_str(),
                    r->ms, r->tflops, ws_mib, static_cast<double>(r->beyond_bytes) / (1 << 20),
                    chunks.c_str());
        if (r->bound_ms > 0) std::printf(" %10.3f %7.2f", r->bound_ms, r->bound_ms / r->ms);
        if (IsDecode(p)) {
          // Bytes moved per second over the copy rate (both count bytes read plus written).
          const double rate = DecodeBytes(p) / (r->ms * 1e-3);
          std::printf("  %.2f TB/s, %.3f of copy", rate / 1e12, rate / *copy_rate);
        }
        std::printf("\n");
      }
      std::fflush(stdout);
      if (csv != nullptr) {
        std::fprintf(
            csv,
            "%s,%lld,%lld,%lld,%lld,%lld,%s,%d,%d,%s,%s,%.4f,%.2f,%lld,%lld,%lld,%.4f,%lld,%lld,%.0f,"
            "%.6g\n",
            Csv(shape.label).c_str(), static_cast<long long>(shape.batch),
            static_cast<long long>(shape.heads), static_cast<long long>(shape.kv_heads),
            static_cast<long long>(shape.len), static_cast<long long>(shape.dim),
            std::string(DTypeName(p.dtype)).c_str(), shape.causal ? 1 : 0, shape.bias, name.c_str(),
            Csv(r->status).c_str(), r->ms, r->tflops,
            static_cast<long long>(r->plan.workspace_bytes),
            static_cast<long long>(r->plan.q_chunk), static_cast<long long>(r->plan.kv_chunk),
            r->bound_ms, static_cast<long long>(r->beyond_bytes),
            static_cast<long long>(p.q_len), IsDecode(p) ? DecodeBytes(p) : 0.0, *copy_rate);
        std::fflush(csv);
      }
    }
    if (!status.ok()) break;
  }
  if (csv != nullptr) std::fclose(csv);
  cuda::DestroyCudaContext(&context);
  return status;
}

}  // namespace
}  // namespace attnd::kernels

int main(int argc, char** argv) {
  attnd::kernels::Options o;
#if defined(ATTND_WITH_CUDNN)
  o.variants.push_back(attnd::kernels::Variant::kCudnn);
#endif
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--iters" && has_value) {
      o.iters = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--warmup" && has_value) {
      o.warmup = std::max(0, std::atoi(argv[++i]));
    } else if (arg == "--csv" && has_value) {
      o.csv = argv[++i];
    } else if (arg == "--shapes" && has_value) {
      o.quick = std::string(argv[++i]) == "quick";
    } else if (arg == "--only" && has_value) {
      o.only = argv[++i];
    } else if (arg == "--q-chunk" && has_value) {
      o.q_chunk = std::max(0, std::atoi(argv[++i]));
    } else if (arg == "--kv-chunk" && has_value) {
      o.kv_chunk = std::max(0, std::atoi(argv[++i]));
    } else if (arg == "--lanes" && has_value) {
      o.lanes = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--variants" && has_value) {
      o.variants.clear();
      for (const std::string& name : std::vector<std::string>(absl::StrSplit(argv[++i], ','))) {
        attnd::kernels::Variant v;
        if (!attnd::kernels::ParseVariant(name, &v)) {
          std::fprintf(stderr, "unknown variant %s\n", name.c_str());
          return 2;
        }
        o.variants.push_back(v);
      }
    } else {
      std::fprintf(stderr,
                   "usage: %s [--iters N] [--warmup N] [--csv FILE] [--shapes all|quick] "
                   "[--variants naive,sliced,chunked,fused,cudnn] [--only LABEL] [--q-chunk N] "
                   "[--kv-chunk N] [--lanes N]\n",
                   argv[0]);
      return 2;
    }
  }
  const absl::Status s = attnd::kernels::Bench(o);
  if (!s.ok()) {
    std::fprintf(stderr, "attnd_gpu_bench: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
