#include "kernels/problem.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace attnd::kernels {
namespace {

constexpr Variant kAllVariants[] = {Variant::kAuto,  Variant::kReference, Variant::kCpuChunked,
                                    Variant::kNaive, Variant::kSliced,    Variant::kChunked,
                                    Variant::kCudnn, Variant::kFused};

// Debian's abseil has its own string_view type, so the case folding here is local.
std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool IsValidDType(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16;
}

// Names one axis of a 4-d tensor the way the request spells it: "q.shape[2] (Hq)". In BHMK the
// sequence and head axes of q, k, v and out trade places.
std::string AxisName(absl::string_view tensor, Layout layout, int bmhk_axis,
                     absl::string_view symbol) {
  int axis = bmhk_axis;
  if (layout == Layout::kBHMK && (bmhk_axis == 1 || bmhk_axis == 2)) axis = 3 - bmhk_axis;
  return absl::StrCat(tensor, ".shape[", axis, "] (", symbol, ")");
}

// Multiplies the dims, failing (false) on int64 overflow. Dims must be positive.
bool CheckedProduct(const int64_t* dims, int n, int64_t* product) {
  int64_t p = 1;
  for (int i = 0; i < n; ++i) {
    if (__builtin_mul_overflow(p, dims[i], &p)) return false;
  }
  *product = p;
  return true;
}

absl::Status CheckPositive(int64_t value, const std::string& name) {
  if (value <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(name, " = ", value, " must be positive"));
  }
  return absl::OkStatus();
}

absl::Status CheckAtMost(int64_t value, const std::string& name, int64_t limit,
                         absl::string_view limit_name) {
  if (value > limit) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " = ", value, " exceeds limits.", limit_name, " = ", limit));
  }
  return absl::OkStatus();
}

absl::Status CheckElements(absl::string_view tensor, const int64_t* dims, int n,
                           const ProblemLimits& limits) {
  int64_t elements = 0;
  if (!CheckedProduct(dims, n, &elements)) {
    std::string shape;
    for (int i = 0; i < n; ++i) absl::StrAppend(&shape, i ? ", " : "", dims[i]);
    return absl::InvalidArgumentError(
        absl::StrCat(tensor, " shape [", shape, "] has more elements than int64 can count"));
  }
  if (elements > limits.max_tensor_elements) {
    return absl::InvalidArgumentError(absl::StrCat(
        tensor, " has ", elements,
        " elements, more than limits.max_tensor_elements = ", limits.max_tensor_elements));
  }
  return absl::OkStatus();
}

// A ragged problem's packed row counts: not negative, within limits.max_tokens, and no more
// than B sequences of the bound's length hold (else some sequence would exceed q_len or kv_len).
absl::Status CheckRaggedTotals(const AttentionProblem& p, const std::string& b_name,
                               const std::string& mq_name, const std::string& mk_name,
                               const ProblemLimits& limits) {
  struct Side {
    int64_t total;
    const char* name;
    int64_t bound;
    const std::string* bound_name;
  };
  const Side sides[] = {{p.total_q, "q.shape[0] (total_q)", p.q_len, &mq_name},
                        {p.total_kv, "k.shape[0] (total_kv)", p.kv_len, &mk_name}};
  for (const Side& side : sides) {
    if (side.total < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(side.name, " = ", side.total, " must not be negative"));
    }
    if (absl::Status s = CheckAtMost(side.total, side.name, limits.max_tokens, "max_tokens");
        !s.ok()) {
      return s;
    }
    int64_t most = 0;
    if (!__builtin_mul_overflow(p.batch, side.bound, &most) && side.total > most) {
      return absl::InvalidArgumentError(
          absl::StrCat(side.name, " = ", side.total, " exceeds ", b_name, " × ", *side.bound_name,
                       " = ", p.batch, " × ", side.bound, " = ", most,
                       ": some sequence would be longer than the bound"));
    }
  }
  return absl::OkStatus();
}

// One offsets array of a ragged problem (see ValidateSequenceOffsets).
absl::Status CheckOffsets(absl::string_view name, const int64_t* offsets, int64_t batch,
                          int64_t total, absl::string_view total_name, int64_t bound,
                          absl::string_view bound_name) {
  if (offsets == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("problem.ragged but tensors.", name, " is null"));
  }
  if (offsets[0] != 0) {
    return absl::InvalidArgumentError(absl::StrCat(name, "[0] = ", offsets[0], " must be 0"));
  }
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t begin = offsets[b];
    const int64_t end = offsets[b + 1];
    if (end < begin) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, "[", b + 1, "] = ", end, " is less than ", name, "[", b, "] = ", begin));
    }
    // No overflow: 0 <= begin <= end.
    if (end - begin > bound) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sequence ", b, " has ", name, "[", b + 1, "] - ", name, "[", b, "] = ", end, " - ",
          begin, " = ", end - begin, " rows, more than ", bound_name, " = ", bound));
    }
  }
  if (offsets[batch] != total) {
    return absl::InvalidArgumentError(absl::StrCat(name, "[", batch, "] = ", offsets[batch],
                                                   " must equal ", total_name, " = ", total));
  }
  return absl::OkStatus();
}

}  // namespace

size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return 4;
    case DType::kF16:
    case DType::kBF16:
      return 2;
  }
  return 0;
}

std::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "f32";
    case DType::kF16:
      return "f16";
    case DType::kBF16:
      return "bf16";
  }
  return "unknown";
}

std::string_view LayoutName(Layout layout) {
  switch (layout) {
    case Layout::kBMHK:
      return "BMHK";
    case Layout::kBHMK:
      return "BHMK";
  }
  return "unknown";
}

std::string_view VariantName(Variant variant) {
  switch (variant) {
    case Variant::kAuto:
      return "auto";
    case Variant::kReference:
      return "reference";
    case Variant::kCpuChunked:
      return "cpu_chunked";
    case Variant::kNaive:
      return "naive";
    case Variant::kSliced:
      return "sliced";
    case Variant::kChunked:
      return "chunked";
    case Variant::kCudnn:
      return "cudnn";
    case Variant::kFused:
      return "fused";
  }
  return "unknown";
}

std::string_view CausalName(Causal causal) {
  switch (causal) {
    case Causal::kNone:
      return "none";
    case Causal::kTopLeft:
      return "top-left";
    case Causal::kBottomRight:
      return "bottom-right";
  }
  return "unknown";
}

bool ParseDType(std::string_view name, DType* dtype) {
  const std::string lower = ToLower(name);
  if (lower == "f32" || lower == "float32") {
    *dtype = DType::kF32;
  } else if (lower == "f16" || lower == "float16") {
    *dtype = DType::kF16;
  } else if (lower == "bf16" || lower == "bfloat16") {
    *dtype = DType::kBF16;
  } else {
    return false;
  }
  return true;
}

bool ParseVariant(std::string_view name, Variant* variant) {
  const std::string lower = ToLower(name);
  for (Variant v : kAllVariants) {
    if (lower == VariantName(v)) {
      *variant = v;
      return true;
    }
  }
  return false;
}

bool ParseCausal(std::string_view name, Causal* causal) {
  std::string lower = ToLower(name);
  for (char& c : lower) {
    if (c == '_') c = '-';
  }
  for (Causal c : {Causal::kNone, Causal::kTopLeft, Causal::kBottomRight}) {
    if (lower == CausalName(c)) {
      *causal = c;
      return true;
    }
  }
  return false;
}

bool ParseLayout(std::string_view name, Layout* layout) {
  const std::string lower = ToLower(name);
  for (Layout l : {Layout::kBMHK, Layout::kBHMK}) {
    if (lower == ToLower(LayoutName(l))) {
      *layout = l;
      return true;
    }
  }
  return false;
}

double AttentionProblem::Flops() const {
  // Two GEMMs per (b, h): S = Q·Kᵀ (2·Mq·Mk·D) and O = P·V (2·Mq·Mk·Dv). Causal masks about half.
  // Ragged: total_q rows against at most kv_len keys each (the header says why an upper bound).
  const double rows = ragged ? static_cast<double>(total_q)
                             : static_cast<double>(batch) * static_cast<double>(q_len);
  const double pairs = rows * static_cast<double>(q_heads) * static_cast<double>(kv_len);
  const double flops = 2.0 * pairs * static_cast<double>(head_dim + v_head_dim);
  return causal == Causal::kNone ? flops : flops / 2.0;
}

double RaggedFlops(const AttentionProblem& p, const int64_t* q_offsets, const int64_t* kv_offsets) {
  double pairs = 0.0;
  for (int64_t b = 0; b < p.batch; ++b) {
    pairs += static_cast<double>(q_offsets[b + 1] - q_offsets[b]) *
             static_cast<double>(kv_offsets[b + 1] - kv_offsets[b]);
  }
  const double flops =
      2.0 * pairs * static_cast<double>(p.q_heads) * static_cast<double>(p.head_dim + p.v_head_dim);
  return p.causal == Causal::kNone ? flops : flops / 2.0;
}

std::string AttentionProblem::DebugString() const {
  std::string s =
      absl::StrFormat("%s %s B=%d Mq=%d Mk=%d Hq=%d Hkv=%d D=%d Dv=%d scale=%g causal=%s",
                      DTypeName(dtype), LayoutName(layout), batch, q_len, kv_len, q_heads, kv_heads,
                      head_dim, v_head_dim, scale, CausalName(causal));
  if (window_left >= 0 || window_right >= 0) {
    absl::StrAppendFormat(&s, " window=[%d,%d]", window_left, window_right);
  }
  if (has_kv_lengths) absl::StrAppend(&s, " kv_lengths");
  if (ragged) absl::StrAppendFormat(&s, " ragged total_q=%d total_kv=%d", total_q, total_kv);
  if (has_bias) {
    absl::StrAppendFormat(&s, " bias=%s[%d,%d,%d,%d]", DTypeName(bias_dtype), bias_shape[0],
                          bias_shape[1], bias_shape[2], bias_shape[3]);
  }
  if (return_lse) absl::StrAppend(&s, " lse");
  return s;
}

ProblemLimits UnlimitedProblemLimits() {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  ProblemLimits limits;
  limits.max_batch = kMax;
  limits.max_seq_len = kMax;
  limits.max_heads = kMax;
  limits.max_head_dim = kMax;
  limits.max_tensor_elements = kMax;
  limits.max_tokens = kMax;
  return limits;
}

absl::Status ValidateProblem(const AttentionProblem& p, const ProblemLimits& limits) {
  if (!IsValidDType(p.dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat("dtype = ", static_cast<int>(p.dtype), " is not f32, f16 or bf16"));
  }
  if (p.layout != Layout::kBMHK && p.layout != Layout::kBHMK) {
    return absl::InvalidArgumentError(
        absl::StrCat("layout = ", static_cast<int>(p.layout), " is not BMHK or BHMK"));
  }
  if (p.causal != Causal::kNone && p.causal != Causal::kTopLeft &&
      p.causal != Causal::kBottomRight) {
    return absl::InvalidArgumentError(absl::StrCat("causal = ", static_cast<int>(p.causal),
                                                   " is not none, top-left or bottom-right"));
  }
  if (p.ragged && p.layout != Layout::kBMHK) {
    return absl::InvalidArgumentError(
        absl::StrCat("layout = ", std::string(LayoutName(p.layout)),
                     " cannot be ragged: packed sequences are BMHK (q [total_q, Hq, D])"));
  }
  if (p.ragged && p.has_kv_lengths) {
    return absl::InvalidArgumentError(
        "kv_lengths and sequence offsets cannot both be given: each sequence's key count is its "
        "length, kv_offsets[b + 1] - kv_offsets[b]");
  }
  const Layout l = p.layout;
  // Packed tensors are 3-d ([total, H, X]); B and the lengths are then the offsets' count and the
  // sequences' bounds, not axes of q.
  const std::string b_name = p.ragged ? "batch (B)" : AxisName("q", l, 0, "B");
  const std::string mq_name = p.ragged ? "q_len (max Mq_b)" : AxisName("q", l, 1, "Mq");
  const std::string hq_name = p.ragged ? "q.shape[1] (Hq)" : AxisName("q", l, 2, "Hq");
  const std::string d_name = p.ragged ? "q.shape[2] (D)" : AxisName("q", l, 3, "D");
  const std::string mk_name = p.ragged ? "kv_len (max Mk_b)" : AxisName("k", l, 1, "Mk");
  const std::string hkv_name = p.ragged ? "k.shape[1] (Hkv)" : AxisName("k", l, 2, "Hkv");
  const std::string dv_name = p.ragged ? "v.shape[2] (Dv)" : AxisName("v", l, 3, "Dv");

  struct Dim {
    int64_t value;
    const std::string* name;
    int64_t limit;
    const char* limit_name;
  };
  const Dim dims[] = {
      {p.batch, &b_name, limits.max_batch, "max_batch"},
      {p.q_len, &mq_name, limits.max_seq_len, "max_seq_len"},
      {p.kv_len, &mk_name, limits.max_seq_len, "max_seq_len"},
      {p.q_heads, &hq_name, limits.max_heads, "max_heads"},
      {p.kv_heads, &hkv_name, limits.max_heads, "max_heads"},
      {p.head_dim, &d_name, limits.max_head_dim, "max_head_dim"},
      {p.v_head_dim, &dv_name, limits.max_head_dim, "max_head_dim"},
  };
  for (const Dim& dim : dims) {
    if (absl::Status s = CheckPositive(dim.value, *dim.name); !s.ok()) return s;
  }
  for (const Dim& dim : dims) {
    if (absl::Status s = CheckAtMost(dim.value, *dim.name, dim.limit, dim.limit_name); !s.ok()) {
      return s;
    }
  }
  if (p.q_heads % p.kv_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(hkv_name, " = ", p.kv_heads, " does not divide ", hq_name, " = ", p.q_heads));
  }
  if (!std::isfinite(p.scale)) {
    return absl::InvalidArgumentError(absl::StrCat("scale = ", p.scale, " must be finite"));
  }

  if (p.ragged) {
    if (absl::Status s = CheckRaggedTotals(p, b_name, mq_name, mk_name, limits); !s.ok()) return s;
  }

  // Element counts, each checked for int64 overflow before it is compared with the limit. A
  // ragged problem's tensors are 3-d: its sequence axis is the packed total, and the leading
  // (batch) axis below is skipped.
  const int first = p.ragged ? 1 : 0;
  const int64_t batch = p.ragged ? 1 : p.batch;
  const int64_t q_rows = p.ragged ? p.total_q : p.q_len;
  const int64_t kv_rows = p.ragged ? p.total_kv : p.kv_len;
  const int64_t q_dims[] = {batch, q_rows, p.q_heads, p.head_dim};
  const int64_t k_dims[] = {batch, kv_rows, p.kv_heads, p.head_dim};
  const int64_t v_dims[] = {batch, kv_rows, p.kv_heads, p.v_head_dim};
  const int64_t out_dims[] = {batch, q_rows, p.q_heads, p.v_head_dim};
  const int64_t lse_dims[] = {batch, p.q_heads, q_rows};
  if (absl::Status s = CheckElements("q", q_dims + first, 4 - first, limits); !s.ok()) return s;
  if (absl::Status s = CheckElements("k", k_dims + first, 4 - first, limits); !s.ok()) return s;
  if (absl::Status s = CheckElements("v", v_dims + first, 4 - first, limits); !s.ok()) return s;
  if (absl::Status s = CheckElements("out", out_dims + first, 4 - first, limits); !s.ok()) return s;
  if (p.return_lse) {
    if (absl::Status s = CheckElements("lse", lse_dims + first, 3 - first, limits); !s.ok()) {
      return s;
    }
  }
  // Tokens per side: B × Mq and B × Mk (no overflow: q and k, which have more elements, were
  // just counted). Ragged totals were checked above.
  const std::pair<const std::string*, int64_t> token_sides[] = {{&mq_name, p.q_len},
                                                                {&mk_name, p.kv_len}};
  for (const auto& [len_name, len] : token_sides) {
    if (p.ragged) break;
    if (p.batch * len > limits.max_tokens) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokens ", b_name, " × ", *len_name, " = ", p.batch, " × ", len, " = ",
                       p.batch * len, " exceed limits.max_tokens = ", limits.max_tokens));
    }
  }

  if (p.has_bias) {
    if (!IsValidDType(p.bias_dtype)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bias.dtype = ", static_cast<int>(p.bias_dtype), " is not f32, f16 or bf16"));
    }
    // Ragged: padded to the bounds q_len and kv_len (kernels/tensor_index.h, BiasIndex).
    const int64_t full[4] = {p.batch, p.q_heads, p.q_len, p.kv_len};
    const char* symbols[4] = {"B", "Hq", p.ragged ? "q_len" : "Mq", p.ragged ? "kv_len" : "Mk"};
    for (int i = 0; i < 4; ++i) {
      if (p.bias_shape[i] != 1 && p.bias_shape[i] != full[i]) {
        return absl::InvalidArgumentError(absl::StrCat("bias.shape[", i, "] = ", p.bias_shape[i],
                                                       " must be 1 or ", full[i], " (", symbols[i],
                                                       ") to broadcast to [B, Hq, Mq, Mk]"));
      }
    }
    if (absl::Status s = CheckElements("bias", p.bias_shape, 4, limits); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ValidateSequenceOffsets(const AttentionProblem& p, const int64_t* q_offsets,
                                     const int64_t* kv_offsets) {
  if (!p.ragged) {
    return absl::InvalidArgumentError("sequence offsets given for a problem that is not ragged");
  }
  if (absl::Status s =
          CheckOffsets("q_offsets", q_offsets, p.batch, p.total_q, "total_q", p.q_len, "q_len");
      !s.ok()) {
    return s;
  }
  return CheckOffsets("kv_offsets", kv_offsets, p.batch, p.total_kv, "total_kv", p.kv_len,
                      "kv_len");
}

}  // namespace attnd::kernels
