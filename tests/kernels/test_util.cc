#include "tests/kernels/test_util.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <ostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/dtype_convert.h"
#include "kernels/problem.h"
#include "kernels/tensor_index.h"

namespace attnd::kernels::testing {
namespace {

// A window bound for a name: -1 (unbounded) reads "inf".
std::string Bound(int64_t v) { return v < 0 ? "inf" : absl::StrCat(v); }

}  // namespace

AttentionProblem BaseProblem(DType dtype, int64_t batch, int64_t q_len, int64_t kv_len,
                             int64_t q_heads, int64_t kv_heads, int64_t d, int64_t dv) {
  AttentionProblem p;
  p.dtype = dtype;
  p.batch = batch;
  p.q_len = q_len;
  p.kv_len = kv_len;
  p.q_heads = q_heads;
  p.kv_heads = kv_heads;
  p.head_dim = d;
  p.v_head_dim = dv;
  p.scale = 1.0 / std::sqrt(static_cast<double>(d));
  p.return_lse = true;
  return p;
}

void SetBias(ProblemCase* c, DType dtype, int64_t b, int64_t h, int64_t m, int64_t n) {
  c->problem.has_bias = true;
  c->problem.bias_dtype = dtype;
  c->problem.bias_shape[0] = b;
  c->problem.bias_shape[1] = h;
  c->problem.bias_shape[2] = m;
  c->problem.bias_shape[3] = n;
}

void SetRagged(ProblemCase* c, const std::vector<int64_t>& q_lens,
               const std::vector<int64_t>& kv_lens) {
  AttentionProblem& p = c->problem;
  p.ragged = true;
  p.batch = static_cast<int64_t>(q_lens.size());
  p.q_len = 1;
  p.kv_len = 1;
  c->q_offsets = {0};
  c->kv_offsets = {0};
  for (size_t b = 0; b < q_lens.size(); ++b) {
    p.q_len = std::max(p.q_len, q_lens[b]);
    p.kv_len = std::max(p.kv_len, kv_lens[b]);
    c->q_offsets.push_back(c->q_offsets.back() + q_lens[b]);
    c->kv_offsets.push_back(c->kv_offsets.back() + kv_lens[b]);
  }
  p.total_q = c->q_offsets.back();
  p.total_kv = c->kv_offsets.back();
}

std::string CaseName(const ProblemCase& c) {
  const AttentionProblem& p = c.problem;
  std::string name =
      absl::StrCat(std::string(DTypeName(p.dtype)), "_", std::string(LayoutName(p.layout)), "_B",
                   p.batch, "_Mq", p.q_len, "_Mk", p.kv_len, "_H", p.q_heads, "x", p.kv_heads, "_D",
                   p.head_dim, "_Dv", p.v_head_dim);
  if (p.causal == Causal::kTopLeft) absl::StrAppend(&name, "_causalTL");
  if (p.causal == Causal::kBottomRight) absl::StrAppend(&name, "_causalBR");
  if (p.window_left >= 0 || p.window_right >= 0) {
    absl::StrAppend(&name, "_win", Bound(p.window_left), "_", Bound(p.window_right));
  }
  if (p.ragged) {
    absl::StrAppend(&name, "_ragged_q");
    for (size_t b = 0; b + 1 < c.q_offsets.size(); ++b) {
      absl::StrAppend(&name, "_", c.q_offsets[b + 1] - c.q_offsets[b]);
    }
    absl::StrAppend(&name, "_kv");
    for (size_t b = 0; b + 1 < c.kv_offsets.size(); ++b) {
      absl::StrAppend(&name, "_", c.kv_offsets[b + 1] - c.kv_offsets[b]);
    }
  }
  if (p.has_kv_lengths) {
    absl::StrAppend(&name, "_kvlen");
    for (int64_t n : c.kv_lengths) absl::StrAppend(&name, "_", n);
  }
  if (p.has_bias) {
    absl::StrAppend(&name, "_bias", p.bias_shape[0], "x", p.bias_shape[1], "x", p.bias_shape[2],
                    "x", p.bias_shape[3], std::string(DTypeName(p.bias_dtype)));
  }
  if (c.neg_inf_bias_row >= 0) absl::StrAppend(&name, "_neginfrow", c.neg_inf_bias_row);
  if (p.scale != 1.0 / std::sqrt(static_cast<double>(p.head_dim))) {
    absl::StrAppend(&name, p.scale < 0 ? "_scaleneg" : "_scale",
                    static_cast<int>(std::abs(p.scale) * 100));
  }
  if (p.return_lse) absl::StrAppend(&name, "_lse");
  if (c.q_chunk > 0 || c.kv_chunk > 0) absl::StrAppend(&name, "_q", c.q_chunk, "kv", c.kv_chunk);
  return name;
}

void PrintTo(const ProblemCase& c, std::ostream* os) { *os << CaseName(c); }

AttentionTensors OwnedTensors::View() {
  AttentionTensors t;
  t.q = q.data();
  t.k = k.data();
  t.v = v.data();
  t.bias = bias.empty() ? nullptr : bias.data();
  t.kv_lengths = kv_lengths.empty() ? nullptr : kv_lengths.data();
  t.q_offsets = q_offsets.empty() ? nullptr : q_offsets.data();
  t.kv_offsets = kv_offsets.empty() ? nullptr : kv_offsets.data();
  t.out = out.data();
  t.lse = lse.empty() ? nullptr : lse.data();
  return t;
}

std::vector<float> RandomValues(int64_t n, std::mt19937* rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values(static_cast<size_t>(n));
  for (float& x : values) {
    do {
      x = normal(*rng);
    } while (std::fabs(x) < 1e-3f);
  }
  return values;
}

std::vector<unsigned char> RandomBytes(int64_t n, DType dtype, std::mt19937* rng) {
  const std::vector<float> values = RandomValues(n, rng);
  std::vector<unsigned char> bytes(static_cast<size_t>(n) * DTypeSize(dtype));
  ConvertFromFloat(values.data(), n, dtype, bytes.data());
  return bytes;
}

OwnedTensors MakeTensors(const AttentionProblem& p, std::mt19937* rng) {
  OwnedTensors t;
  t.q = RandomBytes(p.q_elements(), p.dtype, rng);
  t.k = RandomBytes(p.k_elements(), p.dtype, rng);
  t.v = RandomBytes(p.v_elements(), p.dtype, rng);
  if (p.has_bias) t.bias = RandomBytes(p.bias_elements(), p.bias_dtype, rng);
  const std::vector<float> nan(static_cast<size_t>(p.out_elements()),
                               std::numeric_limits<float>::quiet_NaN());
  t.out.resize(nan.size() * DTypeSize(p.dtype));
  ConvertFromFloat(nan.data(), p.out_elements(), p.dtype, t.out.data());
  if (p.return_lse) {
    t.lse.assign(static_cast<size_t>(p.lse_elements()), std::numeric_limits<float>::quiet_NaN());
  }
  return t;
}

Tolerance ToleranceFor(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return {2e-5, 2e-5};
    case DType::kF16:
      return {1e-3, 2e-3};
    case DType::kBF16:
      return {8e-3, 8e-3};
  }
  return {0, 0};
}

namespace {

// Collects mismatches and describes them.
class Mismatches {
 public:
  // `describe` names the value; it is called only for a mismatch.
  template <typename Describe>
  void Check(double got, double want, double allowed, Describe describe) {
    ++checked_;
    const bool both_neg_inf = std::isinf(got) && std::isinf(want) && got < 0 && want < 0;
    const double error = std::fabs(got - want);
    if (both_neg_inf || error <= allowed) return;  // NaN fails here too
    ++count_;
    if (!(error <= worst_)) worst_ = error;
    if (count_ <= 5) {
      text_ << "  " << describe() << ": got " << got << ", want " << want << " (allowed " << allowed
            << ")\n";
    }
  }
  std::string Summary() const {
    if (count_ == 0) return "";
    std::ostringstream s;
    s << count_ << " of " << checked_ << " values differ, worst error " << worst_ << "\n"
      << text_.str();
    return s.str();
  }

 private:
  int64_t checked_ = 0;
  int64_t count_ = 0;
  double worst_ = 0;
  std::ostringstream text_;
};

}  // namespace

std::string CompareWithReference(const AttentionProblem& p, const OwnedTensors& t,
                                 const ReferenceResult& reference, int64_t row_begin,
                                 int64_t row_end) {
  if (row_end < 0) row_end = p.q_len;
  const Tolerance tol = ToleranceFor(p.dtype);
  const SeqHeadStrides out_strides =
      SeqHeadStrides::For(p.layout, p.q_len, p.q_heads, p.v_head_dim);
  // Where each sequence's rows lie; its key count does not matter here, so kv_lengths is not
  // read (callers need not set tensors.kv_lengths).
  AttentionProblem rows_only = p;
  rows_only.has_kv_lengths = false;
  AttentionTensors offsets;
  offsets.q_offsets = t.q_offsets.empty() ? nullptr : t.q_offsets.data();
  offsets.kv_offsets = t.kv_offsets.empty() ? nullptr : t.kv_offsets.data();
  Mismatches mismatches;
  for (int64_t b = 0; b < p.batch; ++b) {
    const SequenceRows seq = SequenceRows::Of(rows_only, offsets, b);
    for (int64_t h = 0; h < p.q_heads; ++h) {
      for (int64_t i = row_begin; i < std::min(row_end, seq.q_len); ++i) {
        const int64_t base = out_strides.Row(seq.tensor_batch, seq.q_row0 + i, h);
        for (int64_t x = 0; x < p.v_head_dim; ++x) {
          const double want = reference.out[base + x];
          const double got = LoadAsFloat(t.out.data(), p.dtype, base + x);
          mismatches.Check(got, want, tol.atol + tol.rtol * std::fabs(want), [&] {
            std::ostringstream what;
            what << "out[b=" << b << ", i=" << i << ", h=" << h << ", x=" << x << "]";
            return what.str();
          });
        }
        if (p.return_lse) {
          const int64_t at = seq.Lse(h, i);
          const double want = reference.lse[at];
          // The LSE is f32 in every dtype: f32 rounding of scores of size ~|lse|.
          mismatches.Check(t.lse[at], want, 5e-5 * std::fmax(1.0, std::fabs(want)), [&] {
            std::ostringstream what;
            what << "lse[b=" << b << ", h=" << h << ", i=" << i << "]";
            return what.str();
          });
        }
      }
    }
  }
  return mismatches.Summary();
}

}  // namespace attnd::kernels::testing
