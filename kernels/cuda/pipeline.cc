#include "kernels/cuda/pipeline.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "kernels/cuda/steps.h"
#include "kernels/cuda/workspace_layout.h"
#include "kernels/mask.h"
#include "kernels/planner.h"
#include "kernels/problem.h"
#include "kernels/tensor_index.h"

namespace attnd::kernels::cuda {
namespace {

const void* Advance(const void* base, int64_t elements, DType dtype) {
  return static_cast<const unsigned char*>(base) +
         elements * static_cast<int64_t>(DTypeSize(dtype));
}

// What every step of one run shares.
struct RunContext {
  const AttentionProblem* p = nullptr;
  const AttentionTensors* t = nullptr;
  ProblemStrides strides;
  ScoreMask mask;
  int64_t z = 0;
  void** pointers = nullptr;  // [3, Z]
  float* scores = nullptr;
  float* row_max = nullptr;
  float* row_sum = nullptr;
  float* acc = nullptr;
  StepRunner* runner = nullptr;
};

// One of q, k, v or out as a GEMM operand, starting at sequence row `row`.
GemmOperand SeqOperand(const void* data, DType dtype, const SeqHeadStrides& s, int64_t row,
                       int64_t head_div) {
  GemmOperand o;
  o.base = Advance(data, row * s.seq, dtype);
  o.dtype = dtype;
  o.batch_stride = s.batch;
  o.head_stride = s.head;
  o.head_div = head_div;
  o.ld = s.seq;
  return o;
}

// A [Z, rows, ld] buffer of the workspace as a GEMM operand.
GemmOperand WorkspaceOperand(const void* data, DType dtype, int64_t q_heads, int64_t rows,
                             int64_t ld) {
  GemmOperand o;
  o.base = data;
  o.dtype = dtype;
  o.head_stride = rows * ld;
  o.batch_stride = q_heads * rows * ld;
  o.head_div = 1;
  o.ld = ld;
  return o;
}

RowGeometry Geometry(const RunContext& c, int64_t q0, int64_t rows, int64_t k0, int64_t cols) {
  RowGeometry g;
  g.z = c.z;
  g.q_heads = c.p->q_heads;
  g.q_len = c.p->q_len;
  g.q0 = q0;
  g.rows = rows;
  g.k0 = k0;
  g.cols = cols;
  return g;
}

// S[Z, rows, cols] = scale · Q[q0 : q0 + rows] · K[k0 : k0 + cols]ᵀ (f32).
absl::Status ScoresGemm(const RunContext& c, int64_t q0, int64_t rows, int64_t k0, int64_t cols) {
  const AttentionProblem& p = *c.p;
  GemmStep s;
  s.batch = p.batch;
  s.q_heads = p.q_heads;
  s.m = rows;
  s.n = cols;
  s.k = p.head_dim;
  s.b_transposed = true;
  s.alpha = static_cast<float>(p.scale);
  s.beta = 0.0f;
  s.a = SeqOperand(c.t->q, p.dtype, c.strides.q, q0, 1);
  s.b = SeqOperand(c.t->k, p.dtype, c.strides.k, k0, p.group_size());
  s.c = WorkspaceOperand(c.scores, DType::kF32, p.q_heads, rows, cols);
  s.scratch = c.pointers;
  return c.runner->Gemm(s);
}

// C[Z, rows, Dv] = P[Z, rows, cols] · V[k0 : k0 + cols] + beta·C, into `c_operand`.
absl::Status ValuesGemm(const RunContext& c, int64_t rows, int64_t k0, int64_t cols,
                        const GemmOperand& c_operand, float beta) {
  const AttentionProblem& p = *c.p;
  // P overwrote the scores in place: its rows start where the f32 score rows start.
  const int64_t p_ld = p.dtype == DType::kF32 ? cols : 2 * cols;
  GemmStep s;
  s.batch = p.batch;
  s.q_heads = p.q_heads;
  s.m = rows;
  s.n = p.v_head_dim;
  s.k = cols;
  s.b_transposed = false;
  s.alpha = 1.0f;
  s.beta = beta;
  s.a = WorkspaceOperand(c.scores, p.dtype, p.q_heads, rows, p_ld);
  s.b = SeqOperand(c.t->v, p.dtype, c.strides.v, k0, p.group_size());
  s.c = c_operand;
  s.scratch = c.pointers;
  return c.runner->Gemm(s);
}

// Output rows [q0, q0 + rows): from the chunked state, or zeros and -inf without it.
absl::Status Finalize(const RunContext& c, int64_t q0, int64_t rows, bool has_state) {
  FinalizeStep f;
  f.geometry = Geometry(c, q0, rows, 0, 0);
  f.row_max = c.row_max;
  f.row_sum = c.row_sum;
  f.acc = c.acc;
  f.v_head_dim = c.p->v_head_dim;
  f.out = c.t->out;
  f.out_dtype = c.p->dtype;
  f.out_strides = c.strides.out;
  f.lse = c.p->return_lse ? c.t->lse : nullptr;
  f.has_state = has_state;
  return c.runner->Finalize(f);
}

// Naive and sliced: one slice of query rows against all the keys it sees.
absl::Status RunSlice(const RunContext& c, int64_t q0, int64_t rows) {
  const AttentionProblem& p = *c.p;
  const KeyRange keys = KeyBound(p, q0, q0 + rows);
  if (keys.empty()) return Finalize(c, q0, rows, /*has_state=*/false);
  const int64_t cols = keys.size();
  if (absl::Status s = ScoresGemm(c, q0, rows, keys.lo, cols); !s.ok()) return s;

  SoftmaxStep softmax;
  softmax.geometry = Geometry(c, q0, rows, keys.lo, cols);
  softmax.mask = c.mask;
  softmax.scores = c.scores;
  softmax.p_dtype = p.dtype;
  softmax.lse = p.return_lse ? c.t->lse : nullptr;
  if (absl::Status s = c.runner->Softmax(softmax); !s.ok()) return s;

  const GemmOperand out = SeqOperand(c.t->out, p.dtype, c.strides.out, q0, 1);
  return ValuesGemm(c, rows, keys.lo, cols, out, 0.0f);
}

// Chunked: one slice of query rows, its visible keys in tiles of kv_chunk.
absl::Status RunChunkedSlice(const RunContext& c, int64_t q0, int64_t rows, int64_t kv_chunk) {
  const AttentionProblem& p = *c.p;
  const KeyRange keys = KeyBound(p, q0, q0 + rows);
  if (keys.empty()) return Finalize(c, q0, rows, /*has_state=*/false);
  const GemmOperand acc = WorkspaceOperand(c.acc, DType::kF32, p.q_heads, rows, p.v_head_dim);
  for (int64_t k0 = keys.lo; k0 < keys.hi; k0 += kv_chunk) {
    const int64_t cols = std::min(kv_chunk, keys.hi - k0);
    const bool first = k0 == keys.lo;
    if (absl::Status s = ScoresGemm(c, q0, rows, k0, cols); !s.ok()) return s;

    MergeStep merge;
    merge.geometry = Geometry(c, q0, rows, k0, cols);
    merge.mask = c.mask;
    merge.scores = c.scores;
    merge.p_dtype = p.dtype;
    merge.row_max = c.row_max;
    merge.row_sum = c.row_sum;
    merge.acc = c.acc;
    merge.v_head_dim = p.v_head_dim;
    merge.first = first;
    if (absl::Status s = c.runner->Merge(merge); !s.ok()) return s;

    if (absl::Status s = ValuesGemm(c, rows, k0, cols, acc, first ? 0.0f : 1.0f); !s.ok()) {
      return s;
    }
  }
  return Finalize(c, q0, rows, /*has_state=*/true);
}

// The query slice of each variant.
int64_t SliceRows(const AttentionProblem& p, const Plan& plan) {
  return plan.variant == Variant::kNaive ? p.q_len : std::clamp<int64_t>(plan.q_chunk, 1, p.q_len);
}

}  // namespace

KeyRange KeyBound(const AttentionProblem& p, int64_t q0, int64_t q1) {
  const MaskPolicy policy = MaskPolicy::FromProblem(p);
  if (q1 <= q0) return KeyRange{0, 0};
  // Both ends of Visible(i, Mk_b) are non-decreasing in i and in Mk_b, except the lower end in
  // Mk_b where the alignment is bottom-right (it moves left as Mk_b shrinks): then the bound
  // takes the smallest alignment i - Mq (Mk_b = 0).
  const int64_t hi = policy.Visible(q1 - 1, p.kv_len).hi;
  int64_t lo = policy.Visible(q0, p.kv_len).lo;
  if (p.has_kv_lengths && p.causal != Causal::kTopLeft) {
    lo = policy.window_left >= 0 ? std::max<int64_t>(0, q0 - p.q_len - policy.window_left) : 0;
  }
  return lo < hi ? KeyRange{lo, hi} : KeyRange{0, 0};
}

absl::Status RunSteps(const Plan& plan, const AttentionProblem& p, const AttentionTensors& t,
                      void* workspace, absl::Span<StepRunner* const> lanes) {
  if (plan.variant != Variant::kNaive && plan.variant != Variant::kSliced &&
      plan.variant != Variant::kChunked) {
    return absl::InvalidArgumentError(absl::StrCat("RunSteps runs naive, sliced and chunked, not ",
                                                   std::string(VariantName(plan.variant))));
  }
  const int lane_count = static_cast<int>(lanes.size());
  const int usable = CudaLanesUsed(p, plan.variant, plan.q_chunk, plan.threads);
  if (lane_count < 1 || lane_count > usable) {
    return absl::InvalidArgumentError(absl::StrCat("RunSteps got ", lane_count,
                                                   " lanes; the plan (plan.threads = ",
                                                   plan.threads, ") can use 1 to ", usable));
  }
  const CudaWorkspaceLayout layout =
      CudaWorkspaceLayout::For(p, plan.variant, plan.q_chunk, plan.kv_chunk, lane_count);
  const bool chunked = plan.variant == Variant::kChunked;

  RunContext base;
  base.p = &p;
  base.t = &t;
  base.strides = ProblemStrides::For(p);
  base.mask.policy = MaskPolicy::FromProblem(p);
  base.mask.kv_lengths = p.has_kv_lengths ? t.kv_lengths : nullptr;
  base.mask.bias = p.has_bias ? t.bias : nullptr;
  base.mask.bias_dtype = p.bias_dtype;
  base.mask.bias_index = BiasIndex::For(p);
  base.z = p.batch * p.q_heads;
  // Lane i: its runner and its share of the workspace.
  auto lane_context = [&](int i) {
    RunContext c = base;
    unsigned char* ws = static_cast<unsigned char*>(workspace) + i * layout.lane_bytes;
    c.pointers = reinterpret_cast<void**>(ws + layout.pointers);
    c.scores = reinterpret_cast<float*>(ws + layout.scores);
    c.row_max = chunked ? reinterpret_cast<float*>(ws + layout.row_max) : nullptr;
    c.row_sum = chunked ? reinterpret_cast<float*>(ws + layout.row_sum) : nullptr;
    c.acc = chunked ? reinterpret_cast<float*>(ws + layout.acc) : nullptr;
    c.runner = lanes[static_cast<size_t>(i)];
    return c;
  };

  // Slice n on lane n % lanes: the slices write disjoint output and LSE rows, and a lane's
  // slices follow each other on its runner, so each lane's buffers serve one slice at a time.
  const int64_t slice = SliceRows(p, plan);
  int64_t n = 0;
  for (int64_t q0 = 0; q0 < p.q_len; q0 += slice, ++n) {
    const RunContext c = lane_context(static_cast<int>(n % lane_count));
    const int64_t rows = std::min(slice, p.q_len - q0);
    const absl::Status s =
        chunked ? RunChunkedSlice(c, q0, rows, plan.kv_chunk) : RunSlice(c, q0, rows);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

double ChunkedTrafficBytes(const AttentionProblem& p, const Plan& plan) {
  const double z = static_cast<double>(p.batch * p.q_heads);
  const double z_kv = static_cast<double>(p.batch * p.kv_heads);
  const double e = static_cast<double>(DTypeSize(p.dtype));
  const double d = static_cast<double>(p.head_dim);
  const double dv = static_cast<double>(p.v_head_dim);
  const double eb = p.has_bias ? static_cast<double>(DTypeSize(p.bias_dtype)) : 0.0;
  const int64_t slice = std::clamp<int64_t>(plan.q_chunk, 1, p.q_len);
  const int64_t kv_chunk = std::clamp<int64_t>(plan.kv_chunk, 1, p.kv_len);
  double bytes = 0.0;
  for (int64_t q0 = 0; q0 < p.q_len; q0 += slice) {
    const double r = static_cast<double>(std::min(slice, p.q_len - q0));
    const KeyRange keys = KeyBound(p, q0, q0 + static_cast<int64_t>(r));
    bytes += z * r * dv * (4.0 + e);
    for (int64_t k0 = keys.lo; k0 < keys.hi; k0 += kv_chunk) {
      const double cols = static_cast<double>(std::min(kv_chunk, keys.hi - k0));
      const double acc_passes = k0 == keys.lo ? 1.0 : 2.0;
      bytes += z * r * cols * (8.0 + 2.0 * e + eb) + z * r * d * e + z_kv * cols * (d + dv) * e +
               z * r * dv * 4.0 * acc_passes;
    }
  }
  return bytes;
}

}  // namespace attnd::kernels::cuda
