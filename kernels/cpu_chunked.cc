// cpu_chunked: exact attention in O(tile) extra memory on the CPU (Rabe & Staats 2021 with
// FlashAttention's online softmax).
//
// Work items are (b, h, query chunk); plan.threads workers take them from an atomic counter,
// heaviest first (late query chunks see the most keys under a causal mask). A ragged problem has
// as many chunks per (b, h) as its bound q_len needs; a chunk past its sequence's Mq_b is an
// empty item (CpuWorkItems counts them too, so the threads and workspace planned stay exact).
// Rows and keys are those of the item's sequence (SequenceRows), its mask the sequence's own.
// Per item:
//   Q   [rows, D]    rows i0..i0+rows of head h           (f32: read in place, lda = row stride)
//   for each key tile [j0, j0+n) inside the chunk's visible keys (masked-out tiles are skipped):
//     K   [n, D], V [n, Dv]                               (f32: in place; f16/bf16: converted)
//     S   [rows, n]   = scale · Q·Kᵀ                      (cblas_sgemm)
//     S  += bias; mask; online softmax per row           (CpuRows(): m, l, acc rescale, P)
//     acc [rows, Dv] += P·V                               (cblas_sgemm, beta = 1)
//   out = acc / l, lse = m + log(l)                       (0 and -inf for rows that see no key)
#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cpu_attention.h"
#include "kernels/cpu_rows.h"
#include "kernels/cpu_workspace.h"
#include "kernels/dtype_convert.h"
#include "kernels/mask.h"
#include "kernels/planner.h"
#include "kernels/problem.h"
#include "kernels/run_checks.h"
#include "kernels/tensor_index.h"

namespace attnd::kernels {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct AlignedFree {
  void operator()(unsigned char* p) const {
    ::operator delete(p, std::align_val_t(kWorkspaceAlign));
  }
};

// One thread's buffers, carved from its slice of the workspace by CpuTileLayout.
struct TileBuffers {
  float* scores;     // [q_chunk, kv_chunk]
  float* acc;        // [q_chunk, Dv]
  float* row_max;    // [q_chunk]
  float* row_sum;    // [q_chunk]
  KeyRange* ranges;  // [q_chunk]
  float* q_tile;     // [q_chunk, D]   f16/bf16 only
  float* k_tile;     // [kv_chunk, D]  f16/bf16 only
  float* v_tile;     // [kv_chunk, Dv] f16/bf16 only
  float* bias_row;   // [kv_chunk]     f16/bf16 bias only

  static TileBuffers Carve(unsigned char* base, const CpuTileLayout& l) {
    auto f = [base](int64_t offset) { return reinterpret_cast<float*>(base + offset); };
    return TileBuffers{f(l.scores),
                       f(l.acc),
                       f(l.row_max),
                       f(l.row_sum),
                       reinterpret_cast<KeyRange*>(base + l.ranges),
                       f(l.q_tile),
                       f(l.k_tile),
                       f(l.v_tile),
                       f(l.bias_row)};
  }
};

// A [rows, dim] block of one head of a [B, M, H, X] tensor as f32 for BLAS: f32 tensors are used
// in place (leading dimension = the row stride), f16/bf16 rows are converted into `scratch`.
struct F32Block {
  const float* data;
  int64_t ld;
};

F32Block LoadBlock(const CpuRowKernels& kernels, const void* tensor, DType dtype,
                   const SeqHeadStrides& strides, int64_t b, int64_t first_row, int64_t h,
                   int64_t rows, int64_t dim, float* scratch) {
  const int64_t base = strides.Row(b, first_row, h);
  if (dtype == DType::kF32) {
    return F32Block{static_cast<const float*>(tensor) + base, strides.seq};
  }
  const unsigned char* bytes = static_cast<const unsigned char*>(tensor);
  for (int64_t r = 0; r < rows; ++r) {
    const unsigned char* row = bytes + (base + r * strides.seq) * 2;
    if (dtype == DType::kF16) {
      kernels.half_to_float(row, dim, scratch + r * dim);  // F16C where the CPU has it
    } else {
      ConvertToFloat(row, dtype, dim, scratch + r * dim);
    }
  }
  return F32Block{scratch, dim};
}

// Everything constant during one RunCpuChunked call.
class ChunkedRun {
 public:
  ChunkedRun(const Plan& plan, const AttentionProblem& problem, const AttentionTensors& tensors)
      : p_(problem),
        t_(tensors),
        q_chunk_(plan.q_chunk),
        kv_chunk_(plan.kv_chunk),
        q_chunks_((problem.q_len + plan.q_chunk - 1) / plan.q_chunk),
        mask_(MaskPolicy::FromProblem(problem)),
        strides_(ProblemStrides::For(problem)),
        bias_index_(BiasIndex::For(problem)),
        rows_(CpuRows()) {}

  int64_t items() const { return p_.batch * p_.q_heads * q_chunks_; }

  // Item 0 is the last query chunk of (b, h) = (0, 0): heavy items first under causal masks.
  void RunItem(int64_t item, const TileBuffers& buf) const {
    const int64_t bh = item % (p_.batch * p_.q_heads);
    const int64_t chunk = q_chunks_ - 1 - item / (p_.batch * p_.q_heads);
    RunChunk(bh / p_.q_heads, bh % p_.q_heads, chunk * q_chunk_, buf);
  }

 private:
  void RunChunk(int64_t b, int64_t h, int64_t i0, const TileBuffers& buf) const;
  void SoftmaxTile(int64_t b, int64_t h, int64_t i0, int64_t rows, int64_t j0, int64_t n,
                   const TileBuffers& buf) const;
  void WriteRows(const SequenceRows& seq, int64_t h, int64_t i0, int64_t rows,
                 const TileBuffers& buf) const;

  const AttentionProblem& p_;
  const AttentionTensors& t_;
  const int64_t q_chunk_;
  const int64_t kv_chunk_;
  const int64_t q_chunks_;
  const MaskPolicy mask_;
  const ProblemStrides strides_;
  const BiasIndex bias_index_;
  const CpuRowKernels& rows_;
};

void ChunkedRun::RunChunk(int64_t b, int64_t h, int64_t i0, const TileBuffers& buf) const {
  const SequenceRows seq = SequenceRows::Of(p_, t_, b);
  const int64_t rows = std::min(q_chunk_, seq.q_len - i0);
  if (rows <= 0) return;  // a ragged sequence shorter than the bound: nothing here
  const MaskPolicy mask = mask_.ForSequence(seq.q_len, seq.kv_len);
  const int64_t kvh = h / p_.group_size();
  const int64_t d = p_.head_dim;
  const int64_t dv = p_.v_head_dim;
  const int64_t tb = seq.tensor_batch;
  const int64_t valid_keys = seq.kv_len;

  // The keys any row of the chunk sees: tiles outside [first, last) are skipped whole.
  int64_t first = std::numeric_limits<int64_t>::max();
  int64_t last = 0;
  for (int64_t r = 0; r < rows; ++r) {
    buf.ranges[r] = mask.Visible(i0 + r, valid_keys);
    if (buf.ranges[r].empty()) continue;
    first = std::min(first, buf.ranges[r].lo);
    last = std::max(last, buf.ranges[r].hi);
  }
  std::fill(buf.row_max, buf.row_max + rows, kNegInf);
  std::fill(buf.row_sum, buf.row_sum + rows, 0.0f);
  std::fill(buf.acc, buf.acc + rows * dv, 0.0f);

  if (first < last) {
    const F32Block q =
        LoadBlock(rows_, t_.q, p_.dtype, strides_.q, tb, seq.q_row0 + i0, h, rows, d, buf.q_tile);
    for (int64_t j0 = first; j0 < last; j0 += kv_chunk_) {
      const int64_t n = std::min(kv_chunk_, last - j0);
      const int64_t k_row = seq.kv_row0 + j0;
      const F32Block k =
          LoadBlock(rows_, t_.k, p_.dtype, strides_.k, tb, k_row, kvh, n, d, buf.k_tile);
      const F32Block v =
          LoadBlock(rows_, t_.v, p_.dtype, strides_.v, tb, k_row, kvh, n, dv, buf.v_tile);
      // S [rows, n] = scale · Q [rows, D] · Kᵀ [D, n]
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n, d, static_cast<float>(p_.scale),
                  q.data, q.ld, k.data, k.ld, 0.0f, buf.scores, n);
      SoftmaxTile(b, h, i0, rows, j0, n, buf);
      // acc [rows, Dv] += P [rows, n] · V [n, Dv]
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, dv, n, 1.0f, buf.scores, n,
                  v.data, v.ld, 1.0f, buf.acc, dv);
    }
  }
  WriteRows(seq, h, i0, rows, buf);
}

void ChunkedRun::SoftmaxTile(int64_t b, int64_t h, int64_t i0, int64_t rows, int64_t j0, int64_t n,
                             const TileBuffers& buf) const {
  SoftmaxRowArgs args;
  args.n = n;
  args.dv = p_.v_head_dim;
  for (int64_t r = 0; r < rows; ++r) {
    float* scores = buf.scores + r * n;
    const KeyRange keys = buf.ranges[r];
    const int64_t lo = std::clamp<int64_t>(keys.lo - j0, 0, n);
    const int64_t hi = std::clamp<int64_t>(keys.hi - j0, 0, n);
    if (hi <= lo) {
      std::fill(scores, scores + n, 0.0f);  // no key of this row in the tile: P = 0
      continue;
    }
    args.scores = scores;
    args.lo = lo;
    args.hi = hi;
    args.bias = nullptr;
    args.bias_scalar = 0.0f;
    if (p_.has_bias) {
      const int64_t at = bias_index_.At(b, h, i0 + r, j0);
      if (bias_index_.col == 0) {
        args.bias_scalar = LoadAsFloat(t_.bias, p_.bias_dtype, at);
      } else if (p_.bias_dtype == DType::kF32) {
        args.bias = static_cast<const float*>(t_.bias) + at;
      } else {
        ConvertToFloat(static_cast<const unsigned char*>(t_.bias) + at * 2, p_.bias_dtype, n,
                       buf.bias_row);
        args.bias = buf.bias_row;
      }
    }
    args.row_max = buf.row_max + r;
    args.row_sum = buf.row_sum + r;
    args.acc = buf.acc + r * p_.v_head_dim;
    rows_.online_softmax_row(args);
  }
}

void ChunkedRun::WriteRows(const SequenceRows& seq, int64_t h, int64_t i0, int64_t rows,
                           const TileBuffers& buf) const {
  const int64_t dv = p_.v_head_dim;
  for (int64_t r = 0; r < rows; ++r) {
    float* acc = buf.acc + r * dv;
    const float sum = buf.row_sum[r];
    // l > 0 exactly when the row saw a key with a finite score (the max's own term is 1).
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (int64_t x = 0; x < dv; ++x) acc[x] *= inv;
    const int64_t at = strides_.out.Row(seq.tensor_batch, seq.q_row0 + i0 + r, h);
    if (p_.dtype == DType::kF32) {
      std::copy(acc, acc + dv, static_cast<float*>(t_.out) + at);
    } else {
      ConvertFromFloat(acc, dv, p_.dtype, static_cast<unsigned char*>(t_.out) + at * 2);
    }
    if (p_.return_lse) {
      t_.lse[seq.Lse(h, i0 + r)] = sum > 0.0f ? buf.row_max[r] + std::log(sum) : kNegInf;
    }
  }
}

absl::Status CheckPlan(const Plan& plan, const AttentionProblem& p) {
  if (plan.variant != Variant::kCpuChunked) {
    return absl::InvalidArgumentError(absl::StrCat("RunCpuChunked got a plan for variant ",
                                                   std::string(VariantName(plan.variant))));
  }
  if (plan.q_chunk < 1 || plan.q_chunk > p.q_len) {
    return absl::InvalidArgumentError(
        absl::StrCat("plan.q_chunk = ", plan.q_chunk, " is outside [1, ", p.q_len, "] (Mq)"));
  }
  if (plan.kv_chunk < 1 || plan.kv_chunk > p.kv_len) {
    return absl::InvalidArgumentError(
        absl::StrCat("plan.kv_chunk = ", plan.kv_chunk, " is outside [1, ", p.kv_len, "] (Mk)"));
  }
  if (plan.threads < 1) {
    return absl::InvalidArgumentError(absl::StrCat("plan.threads = ", plan.threads, " < 1"));
  }
  const int64_t need =
      WorkspaceBytes(p, Variant::kCpuChunked, plan.q_chunk, plan.kv_chunk, plan.threads);
  if (need > plan.workspace_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("plan.workspace_bytes = ", plan.workspace_bytes, " but q_chunk ", plan.q_chunk,
                     " kv_chunk ", plan.kv_chunk, " with ", plan.threads, " threads need ", need));
  }
  return absl::OkStatus();
}

}  // namespace

// OpenBLAS's own thread count (its header declares it; repeated so that any cblas.h works).
extern "C" void openblas_set_num_threads(int num_threads);

absl::Status RunCpuChunked(const Plan& plan, const AttentionProblem& problem,
                           const AttentionTensors& tensors) {
  if (absl::Status s = CheckRunInputs(problem, tensors); !s.ok()) return s;
  if (absl::Status s = CheckPlan(plan, problem); !s.ok()) return s;

  const int threads = CpuThreadsUsed(problem, plan.q_chunk, plan.threads);
  const CpuTileLayout layout = CpuTileLayout::For(problem, plan.q_chunk, plan.kv_chunk);
  // Exactly WorkspaceBytes(problem, kCpuChunked, q_chunk, kv_chunk, threads) bytes.
  const int64_t bytes = layout.bytes * threads;
  std::unique_ptr<unsigned char, AlignedFree> workspace(static_cast<unsigned char*>(
      ::operator new(static_cast<size_t>(bytes), std::align_val_t(kWorkspaceAlign), std::nothrow)));
  if (workspace == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cpu_chunked: could not allocate ", bytes, " workspace bytes"));
  }

  // Our workers are the parallelism: BLAS runs single-threaded inside each of them.
  openblas_set_num_threads(1);
  const ChunkedRun run(plan, problem, tensors);
  std::atomic<int64_t> next_item{0};
  auto worker = [&](int t) {
    const TileBuffers buf = TileBuffers::Carve(workspace.get() + layout.bytes * t, layout);
    for (int64_t item = next_item++; item < run.items(); item = next_item++) {
      run.RunItem(item, buf);
    }
  };
  std::vector<std::thread> helpers;
  helpers.reserve(static_cast<size_t>(threads - 1));
  for (int t = 1; t < threads; ++t) {
    try {
      helpers.emplace_back(worker, t);
    } catch (const std::system_error&) {
      break;  // fewer threads than planned: the running ones take all the items
    }
  }
  worker(0);
  for (std::thread& helper : helpers) helper.join();
  return absl::OkStatus();
}

}  // namespace attnd::kernels
