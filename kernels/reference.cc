// The float64 oracle. Straightforward on purpose: one query row at a time, scores for the row's
// visible keys, a two-pass softmax, all in double. Masks come from kernels/mask.h and indexing
// from kernels/tensor_index.h, as in every other variant.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cpu_attention.h"
#include "kernels/dtype_convert.h"
#include "kernels/mask.h"
#include "kernels/problem.h"
#include "kernels/run_checks.h"
#include "kernels/tensor_index.h"

namespace attnd::kernels {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// Rows [row0, row0 + rows) of one head of a [B, M, H, X] tensor, as doubles: out [rows, dim].
void LoadHeadRows(const void* data, DType dtype, const SeqHeadStrides& strides, int64_t b,
                  int64_t row0, int64_t h, int64_t rows, int64_t dim, std::vector<double>* out) {
  out->resize(static_cast<size_t>(rows * dim));
  for (int64_t m = 0; m < rows; ++m) {
    const int64_t base = strides.Row(b, row0 + m, h);
    for (int64_t x = 0; x < dim; ++x) {
      (*out)[m * dim + x] = LoadAsFloat(data, dtype, base + x);
    }
  }
}

}  // namespace

absl::Status ReferenceAttention(const AttentionProblem& problem, const AttentionTensors& tensors,
                                ReferenceResult* result, int64_t row_begin, int64_t row_end) {
  // The answer goes to `result`: tensors.out and tensors.lse are not needed here.
  if (absl::Status s = CheckRunInputs(problem, tensors, /*need_outputs=*/false); !s.ok()) {
    return s;
  }
  const AttentionProblem& p = problem;
  if (row_end < 0) row_end = p.q_len;
  if (row_begin < 0 || row_begin > row_end || row_end > p.q_len) {
    return absl::InvalidArgumentError(
        absl::StrCat("row range [", row_begin, ", ", row_end, ") is not inside [0, ", p.q_len,
                     p.ragged ? "] (q_len, the longest sequence's bound)" : "] (Mq)"));
  }
  result->out.assign(static_cast<size_t>(p.out_elements()), 0.0);
  result->lse.assign(static_cast<size_t>(p.lse_elements()), 0.0);

  const MaskPolicy problem_mask = MaskPolicy::FromProblem(p);
  const ProblemStrides strides = ProblemStrides::For(p);
  const BiasIndex bias_index = BiasIndex::For(p);
  const int64_t d = p.head_dim;
  const int64_t dv = p.v_head_dim;

  std::vector<double> k;       // [Mk_b, D] of one kv head
  std::vector<double> v;       // [Mk_b, Dv]
  std::vector<double> q(d);    // [D] one query row
  std::vector<double> scores;  // [hi - lo] one row's visible scores
  for (int64_t b = 0; b < p.batch; ++b) {
    const SequenceRows seq = SequenceRows::Of(p, tensors, b);
    const MaskPolicy mask = problem_mask.ForSequence(seq.q_len, seq.kv_len);
    const int64_t tb = seq.tensor_batch;
    const int64_t seq_row_end = std::min(row_end, seq.q_len);
    for (int64_t kvh = 0; kvh < p.kv_heads; ++kvh) {
      LoadHeadRows(tensors.k, p.dtype, strides.k, tb, seq.kv_row0, kvh, seq.kv_len, d, &k);
      LoadHeadRows(tensors.v, p.dtype, strides.v, tb, seq.kv_row0, kvh, seq.kv_len, dv, &v);
      for (int64_t h = kvh * p.group_size(); h < (kvh + 1) * p.group_size(); ++h) {
        for (int64_t i = row_begin; i < seq_row_end; ++i) {
          const int64_t lse_at = seq.Lse(h, i);
          double* out_row = result->out.data() + strides.out.Row(tb, seq.q_row0 + i, h);
          const KeyRange keys = mask.Visible(i, seq.kv_len);
          result->lse[lse_at] = kNegInf;
          if (keys.empty()) continue;  // output row stays 0

          const int64_t q_base = strides.q.Row(tb, seq.q_row0 + i, h);
          for (int64_t x = 0; x < d; ++x) q[x] = LoadAsFloat(tensors.q, p.dtype, q_base + x);
          scores.assign(static_cast<size_t>(keys.size()), 0.0);
          double row_max = kNegInf;
          for (int64_t j = keys.lo; j < keys.hi; ++j) {
            double dot = 0.0;
            for (int64_t x = 0; x < d; ++x) dot += q[x] * k[j * d + x];
            double s = p.scale * dot;
            if (p.has_bias) {
              s += LoadAsFloat(tensors.bias, p.bias_dtype, bias_index.At(b, h, i, j));
            }
            scores[j - keys.lo] = s;
            if (s > row_max) row_max = s;
          }
          if (row_max == kNegInf) continue;  // every visible key biased to -inf: as no key

          double sum = 0.0;
          for (double& s : scores) {
            s = std::exp(s - row_max);
            sum += s;
          }
          for (int64_t j = keys.lo; j < keys.hi; ++j) {
            const double weight = scores[j - keys.lo] / sum;
            for (int64_t x = 0; x < dv; ++x) out_row[x] += weight * v[j * dv + x];
          }
          result->lse[lse_at] = row_max + std::log(sum);
        }
      }
    }
  }
  return absl::OkStatus();
}

absl::Status RunReference(const AttentionProblem& problem, const AttentionTensors& tensors) {
  if (absl::Status s = CheckRunInputs(problem, tensors); !s.ok()) return s;
  ReferenceResult result;
  if (absl::Status s = ReferenceAttention(problem, tensors, &result); !s.ok()) return s;
  for (size_t i = 0; i < result.out.size(); ++i) {
    StoreFromFloat(tensors.out, problem.dtype, static_cast<int64_t>(i),
                   static_cast<float>(result.out[i]));
  }
  if (problem.return_lse) {
    for (size_t i = 0; i < result.lse.size(); ++i) {
      tensors.lse[i] = static_cast<float>(result.lse[i]);
    }
  }
  return absl::OkStatus();
}

}  // namespace attnd::kernels
