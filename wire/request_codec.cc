// Request validation happens here, before the server allocates anything for a request: every
// check works on the declared shapes and the actual byte lengths, with overflow-safe arithmetic,
// so an absurd declared shape with a tiny payload costs nothing.
#include "wire/request_codec.h"

#include <cmath>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace attnd::wire {
namespace {

using kernels::AttentionProblem;
using kernels::DType;
using kernels::Layout;

absl::Status Invalid(const std::string& message) { return absl::InvalidArgumentError(message); }

std::string ShapeString(const v1::Tensor& t) {
  return absl::StrCat("[", absl::StrJoin(t.shape(), ", "), "]");
}

absl::StatusOr<DType> DecodeDType(const v1::Tensor& t, const char* name) {
  switch (t.dtype()) {
    case v1::DTYPE_F32:
      return DType::kF32;
    case v1::DTYPE_F16:
      return DType::kF16;
    case v1::DTYPE_BF16:
      return DType::kBF16;
    case v1::DTYPE_UNSPECIFIED:
      return Invalid(absl::StrCat(name, ".dtype: unspecified (want f32, f16 or bf16)"));
    default:
      return Invalid(absl::StrCat(name, ".dtype: unknown value ", t.dtype()));
  }
}

// Checks rank, positive dims, element count (no int64 overflow, within the limit) and the exact
// byte length. `dim_names` names each axis for messages, e.g. {"B", "Mq", "Hq", "D"}.
absl::Status CheckTensor(const v1::Tensor& t, const char* name, DType dtype,
                         const std::vector<const char*>& dim_names,
                         const kernels::ProblemLimits& limits) {
  if (t.shape_size() != static_cast<int>(dim_names.size())) {
    return Invalid(absl::StrCat(name, ".shape: rank ", t.shape_size(), " ", ShapeString(t),
                                ", want rank ", dim_names.size(), " [",
                                absl::StrJoin(dim_names, ", "), "]"));
  }
  int64_t elements = 1;
  for (int i = 0; i < t.shape_size(); ++i) {
    const int64_t d = t.shape(i);
    if (d <= 0) {
      return Invalid(
          absl::StrCat(name, ".shape[", i, "] (", dim_names[i], ") = ", d, " must be positive"));
    }
    if (__builtin_mul_overflow(elements, d, &elements)) {
      return Invalid(
          absl::StrCat(name, ".shape ", ShapeString(t), ": element count overflows int64"));
    }
  }
  if (elements > limits.max_tensor_elements) {
    return Invalid(
        absl::StrCat(name, ".shape ", ShapeString(t), ": ", elements,
                     " elements exceed limits.max_tensor_elements = ", limits.max_tensor_elements));
  }
  const int64_t want_bytes = elements * static_cast<int64_t>(kernels::DTypeSize(dtype));
  if (static_cast<int64_t>(t.data().size()) != want_bytes) {
    return Invalid(absl::StrCat(name, ".data: ", t.data().size(), " bytes, want ", want_bytes,
                                " for shape ", ShapeString(t), " ",
                                std::string(kernels::DTypeName(dtype))));
  }
  return absl::OkStatus();
}

absl::Status CheckEqual(const char* what, int64_t got, const char* want_what, int64_t want) {
  if (got == want) return absl::OkStatus();
  return Invalid(absl::StrCat(what, " = ", got, " does not match ", want_what, " = ", want));
}

absl::Status CheckLimit(const char* what, int64_t value, const char* limit_name, int64_t limit) {
  if (value <= limit) return absl::OkStatus();
  return Invalid(absl::StrCat(what, " = ", value, " exceeds limits.", limit_name, " = ", limit));
}

// Right-aligns the bias shape against [B, Hq, Mq, Mk]; every dim must be 1 or the full size.
absl::Status DecodeBias(const v1::Tensor& bias, const kernels::ProblemLimits& limits,
                        AttentionProblem* p) {
  absl::StatusOr<DType> dtype = DecodeDType(bias, "bias");
  if (!dtype.ok()) return dtype.status();
  const int rank = bias.shape_size();
  if (rank < 2 || rank > 4) {
    return Invalid(absl::StrCat("bias.shape: rank ", rank, " ", ShapeString(bias),
                                ", want rank 2 to 4 broadcastable to [B, Hq, Mq, Mk]"));
  }
  const int64_t full[4] = {p->batch, p->q_heads, p->q_len, p->kv_len};
  const char* names[4] = {"B", "Hq", "Mq", "Mk"};
  int64_t shape4[4] = {1, 1, 1, 1};
  std::vector<const char*> dim_names;
  for (int i = 0; i < rank; ++i) {
    const int axis = 4 - rank + i;
    const int64_t d = bias.shape(i);
    dim_names.push_back(names[axis]);
    if (d != 1 && d != full[axis]) {
      return Invalid(absl::StrCat("bias.shape[", i, "] = ", d, " does not broadcast to ",
                                  names[axis], " = ", full[axis], " (must be 1 or ", full[axis],
                                  ")"));
    }
    shape4[axis] = d;
  }
  absl::Status st = CheckTensor(bias, "bias", *dtype, dim_names, limits);
  if (!st.ok()) return st;
  p->has_bias = true;
  p->bias_dtype = *dtype;
  for (int i = 0; i < 4; ++i) p->bias_shape[i] = shape4[i];
  return absl::OkStatus();
}

}  // namespace

int64_t DecodedRequest::out_bytes() const {
  return problem.out_elements() * static_cast<int64_t>(kernels::DTypeSize(problem.dtype));
}

int64_t DecodedRequest::lse_bytes() const {
  return problem.return_lse ? problem.lse_elements() * static_cast<int64_t>(sizeof(float)) : 0;
}

absl::StatusOr<DecodedRequest> DecodeRequest(const v1::AttendRequest& request,
                                             const kernels::ProblemLimits& limits) {
  DecodedRequest out;
  AttentionProblem& p = out.problem;

  if (request.layout() != v1::LAYOUT_BMHK && request.layout() != v1::LAYOUT_BHMK) {
    return Invalid(absl::StrCat("layout: unknown value ", request.layout()));
  }
  p.layout = request.layout() == v1::LAYOUT_BHMK ? Layout::kBHMK : Layout::kBMHK;
  const bool bhmk = p.layout == Layout::kBHMK;
  // Axis names per tensor in the request's layout; the seq and head axes swap in BHMK.
  const int seq_axis = bhmk ? 2 : 1;
  const int head_axis = bhmk ? 1 : 2;
  auto names = [&](const char* seq, const char* heads, const char* dim) {
    std::vector<const char*> n = {"B", seq, heads, dim};
    if (bhmk) std::swap(n[1], n[2]);
    return n;
  };

  if (!request.has_q()) return Invalid("q: missing");
  if (!request.has_k()) return Invalid("k: missing");
  if (!request.has_v()) return Invalid("v: missing");
  absl::StatusOr<DType> q_dtype = DecodeDType(request.q(), "q");
  if (!q_dtype.ok()) return q_dtype.status();
  p.dtype = *q_dtype;
  for (const auto& [tensor, name] : {std::pair{&request.k(), "k"}, {&request.v(), "v"}}) {
    absl::StatusOr<DType> dt = DecodeDType(*tensor, name);
    if (!dt.ok()) return dt.status();
    if (*dt != p.dtype) {
      return Invalid(
          absl::StrCat(name, ".dtype = ", std::string(kernels::DTypeName(*dt)),
                       " does not match q.dtype = ", std::string(kernels::DTypeName(p.dtype))));
    }
  }

  const v1::Tensor& q = request.q();
  const v1::Tensor& k = request.k();
  const v1::Tensor& v = request.v();
  absl::Status st = CheckTensor(q, "q", p.dtype, names("Mq", "Hq", "D"), limits);
  if (st.ok()) st = CheckTensor(k, "k", p.dtype, names("Mk", "Hkv", "D"), limits);
  if (st.ok()) st = CheckTensor(v, "v", p.dtype, names("Mk", "Hkv", "Dv"), limits);
  if (!st.ok()) return st;

  p.batch = q.shape(0);
  p.q_len = q.shape(seq_axis);
  p.q_heads = q.shape(head_axis);
  p.head_dim = q.shape(3);
  p.kv_len = k.shape(seq_axis);
  p.kv_heads = k.shape(head_axis);
  p.v_head_dim = v.shape(3);

  const std::string seq_dim = absl::StrCat("[", seq_axis, "]");
  const std::string head_dim = absl::StrCat("[", head_axis, "]");
  st = CheckEqual("k.shape[0] (B)", k.shape(0), "q.shape[0] (B)", p.batch);
  if (st.ok()) st = CheckEqual("v.shape[0] (B)", v.shape(0), "q.shape[0] (B)", p.batch);
  if (st.ok()) {
    st = CheckEqual(absl::StrCat("k.shape[3] (D)").c_str(), k.shape(3), "q.shape[3] (D)",
                    p.head_dim);
  }
  if (st.ok()) {
    st = CheckEqual(absl::StrCat("v.shape", seq_dim, " (Mk)").c_str(), v.shape(seq_axis),
                    absl::StrCat("k.shape", seq_dim, " (Mk)").c_str(), p.kv_len);
  }
  if (st.ok()) {
    st = CheckEqual(absl::StrCat("v.shape", head_dim, " (Hkv)").c_str(), v.shape(head_axis),
                    absl::StrCat("k.shape", head_dim, " (Hkv)").c_str(), p.kv_heads);
  }
  if (!st.ok()) return st;
  if (p.q_heads % p.kv_heads != 0) {
    return Invalid(absl::StrCat("q.shape", head_dim, " (Hq) = ", p.q_heads,
                                " is not a multiple of k.shape", head_dim,
                                " (Hkv) = ", p.kv_heads));
  }
  st = CheckLimit("q.shape[0] (B)", p.batch, "max_batch", limits.max_batch);
  if (st.ok()) {
    st = CheckLimit(absl::StrCat("q.shape", seq_dim, " (Mq)").c_str(), p.q_len, "max_seq_len",
                    limits.max_seq_len);
  }
  if (st.ok()) {
    st = CheckLimit(absl::StrCat("k.shape", seq_dim, " (Mk)").c_str(), p.kv_len, "max_seq_len",
                    limits.max_seq_len);
  }
  if (st.ok()) {
    st = CheckLimit(absl::StrCat("q.shape", head_dim, " (Hq)").c_str(), p.q_heads, "max_heads",
                    limits.max_heads);
  }
  if (st.ok()) st = CheckLimit("q.shape[3] (D)", p.head_dim, "max_head_dim", limits.max_head_dim);
  if (st.ok()) {
    st = CheckLimit("v.shape[3] (Dv)", p.v_head_dim, "max_head_dim", limits.max_head_dim);
  }
  if (!st.ok()) return st;

  // Options.
  if (request.has_scale()) {
    if (!std::isfinite(request.scale()) || request.scale() == 0.0) {
      return Invalid(absl::StrCat("scale = ", request.scale(), " must be finite and non-zero"));
    }
    p.scale = request.scale();
  } else {
    p.scale = 1.0 / std::sqrt(static_cast<double>(p.head_dim));
  }
  switch (request.causal()) {
    case v1::CAUSAL_NONE:
      p.causal = kernels::Causal::kNone;
      break;
    case v1::CAUSAL_TOP_LEFT:
      p.causal = kernels::Causal::kTopLeft;
      break;
    case v1::CAUSAL_BOTTOM_RIGHT:
      p.causal = kernels::Causal::kBottomRight;
      break;
    default:
      return Invalid(absl::StrCat("causal: unknown value ", request.causal()));
  }
  if (request.has_window()) {
    // Negative means unbounded on that side; normalise to -1.
    p.window_left = request.window().left() < 0 ? -1 : request.window().left();
    p.window_right = request.window().right() < 0 ? -1 : request.window().right();
  }
  if (request.kv_lengths_size() > 0) {
    if (request.kv_lengths_size() != p.batch) {
      return Invalid(absl::StrCat("kv_lengths: ", request.kv_lengths_size(),
                                  " values, want one per batch element (B = ", p.batch, ")"));
    }
    for (int b = 0; b < request.kv_lengths_size(); ++b) {
      const int64_t len = request.kv_lengths(b);
      if (len < 0 || len > p.kv_len) {
        return Invalid(
            absl::StrCat("kv_lengths[", b, "] = ", len, " is outside [0, Mk = ", p.kv_len, "]"));
      }
    }
    p.has_kv_lengths = true;
    out.kv_lengths.assign(request.kv_lengths().begin(), request.kv_lengths().end());
  }
  if (request.has_bias()) {
    st = DecodeBias(request.bias(), limits, &p);
    if (!st.ok()) return st;
    out.bias = request.bias().data().data();
  }
  p.return_lse = request.return_lse();
  if (!v1::Variant_IsValid(request.variant())) {
    return Invalid(absl::StrCat("variant: unknown value ", request.variant()));
  }
  out.variant_hint = FromProto(request.variant());
  if (request.q_chunk() < 0) {
    return Invalid(absl::StrCat("q_chunk = ", request.q_chunk(), " must be >= 0 (0 = auto)"));
  }
  if (request.kv_chunk() < 0) {
    return Invalid(absl::StrCat("kv_chunk = ", request.kv_chunk(), " must be >= 0 (0 = auto)"));
  }
  out.q_chunk = request.q_chunk();
  out.kv_chunk = request.kv_chunk();
  out.priority = request.priority();

  // The kernels' own consistency check (element counts of outputs, window, limits).
  st = kernels::ValidateProblem(p, limits);
  if (!st.ok()) return st;

  out.q = q.data().data();
  out.k = k.data().data();
  out.v = v.data().data();
  return out;
}

kernels::AttentionTensors TensorsFor(const DecodedRequest& decoded, void* out, float* lse) {
  kernels::AttentionTensors t;
  t.q = decoded.q;
  t.k = decoded.k;
  t.v = decoded.v;
  t.bias = decoded.bias;
  t.kv_lengths = decoded.problem.has_kv_lengths ? decoded.kv_lengths.data() : nullptr;
  t.out = out;
  t.lse = decoded.problem.return_lse ? lse : nullptr;
  return t;
}

std::vector<int64_t> OutShape(const kernels::AttentionProblem& p) {
  if (p.layout == Layout::kBHMK) return {p.batch, p.q_heads, p.q_len, p.v_head_dim};
  return {p.batch, p.q_len, p.q_heads, p.v_head_dim};
}

std::vector<int64_t> LseShape(const kernels::AttentionProblem& p) {
  return {p.batch, p.q_heads, p.q_len};
}

v1::DType ToProto(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return v1::DTYPE_F32;
    case DType::kF16:
      return v1::DTYPE_F16;
    case DType::kBF16:
      return v1::DTYPE_BF16;
  }
  return v1::DTYPE_UNSPECIFIED;
}

v1::Variant ToProto(kernels::Variant variant) {
  using kernels::Variant;
  switch (variant) {
    case Variant::kAuto:
      return v1::VARIANT_AUTO;
    case Variant::kReference:
      return v1::VARIANT_REFERENCE;
    case Variant::kCpuChunked:
      return v1::VARIANT_CPU_CHUNKED;
    case Variant::kNaive:
      return v1::VARIANT_NAIVE;
    case Variant::kSliced:
      return v1::VARIANT_SLICED;
    case Variant::kChunked:
      return v1::VARIANT_CHUNKED;
    case Variant::kCudnn:
      return v1::VARIANT_CUDNN;
    case Variant::kFused:
      return v1::VARIANT_FUSED;
  }
  return v1::VARIANT_AUTO;
}

kernels::Variant FromProto(v1::Variant variant) {
  using kernels::Variant;
  switch (variant) {
    case v1::VARIANT_REFERENCE:
      return Variant::kReference;
    case v1::VARIANT_CPU_CHUNKED:
      return Variant::kCpuChunked;
    case v1::VARIANT_NAIVE:
      return Variant::kNaive;
    case v1::VARIANT_SLICED:
      return Variant::kSliced;
    case v1::VARIANT_CHUNKED:
      return Variant::kChunked;
    case v1::VARIANT_CUDNN:
      return Variant::kCudnn;
    case v1::VARIANT_FUSED:
      return Variant::kFused;
    default:
      return Variant::kAuto;
  }
}

}  // namespace attnd::wire
