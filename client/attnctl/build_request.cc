#include "client/attnctl/build_request.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/npy.h"

namespace attnd::attnctl {
namespace {

client::RequestSpec SpecFromFlags(const ProblemFlags& flags) {
  client::RequestSpec spec;
  spec.batch = flags.batch.value_or(0);
  spec.q_len = flags.q_len.value_or(0);
  spec.kv_len = flags.kv_len.value_or(0);
  spec.heads = flags.heads.value_or(0);
  spec.kv_heads = flags.kv_heads.value_or(0);
  spec.head_dim = flags.head_dim.value_or(0);
  spec.v_head_dim = flags.v_head_dim.value_or(0);
  spec.dtype = flags.dtype;
  spec.layout = flags.layout;
  spec.causal = flags.causal;
  if (flags.window.has_value()) {
    spec.has_window = true;
    spec.window_left = flags.window->first;
    spec.window_right = flags.window->second;
  }
  spec.bias = flags.bias;
  spec.bias_shape = flags.bias_shape;
  spec.kv_lengths = flags.kv_lengths;
  spec.random_kv_lengths = flags.random_kv_lengths;
  spec.return_lse = flags.lse;
  spec.scale = flags.scale;
  spec.variant = flags.variant;
  spec.q_chunk = flags.q_chunk;
  spec.kv_chunk = flags.kv_chunk;
  spec.priority = flags.priority;
  spec.seed = flags.seed;
  spec.request_id = "attnctl";
  return spec;
}

// Takes dimension `value` from a file; a shape flag given for it must agree.
absl::Status TakeDim(absl::string_view flag, const std::optional<int64_t>& given,
                     absl::string_view file, int64_t value, int64_t* out) {
  if (given.has_value() && *given != value) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " = ", *given, " but ", file, " has ", value));
  }
  *out = value;
  return absl::OkStatus();
}

absl::StatusOr<client::NpyArray> ReadInput(const std::string& path, absl::string_view role,
                                           size_t want_rank) {
  absl::StatusOr<client::NpyArray> array = client::ReadNpy(path);
  if (!array.ok()) return array.status();
  if (want_rank != 0 && array->shape.size() != want_rank) {
    return absl::InvalidArgumentError(
        absl::StrCat(role, " file ", path, " has rank ", array->shape.size(), " (shape [",
                     absl::StrJoin(array->shape, ", "), "]), want ", want_rank));
  }
  return array;
}

absl::StatusOr<BuiltRequest> FromFiles(const ProblemFlags& flags) {
  absl::StatusOr<client::NpyArray> q = ReadInput(flags.q_file, "--q", 4);
  if (!q.ok()) return q.status();
  absl::StatusOr<client::NpyArray> k = ReadInput(flags.k_file, "--k", 4);
  if (!k.ok()) return k.status();
  absl::StatusOr<client::NpyArray> v = ReadInput(flags.v_file, "--v", 4);
  if (!v.ok()) return v.status();
  if (k->dtype != q->dtype || v->dtype != q->dtype) {
    return absl::InvalidArgumentError(
        absl::StrCat("q, k and v files must share a dtype: ", DTypeName(q->dtype), ", ",
                     DTypeName(k->dtype), ", ", DTypeName(v->dtype)));
  }
  if (flags.dtype_given && flags.dtype != q->dtype) {
    return absl::InvalidArgumentError(absl::StrCat("--dtype = ", DTypeName(flags.dtype), " but ",
                                                   flags.q_file, " is ", DTypeName(q->dtype)));
  }

  BuiltRequest built;
  client::RequestSpec& spec = built.spec;
  spec = SpecFromFlags(flags);
  spec.dtype = q->dtype;
  // Sequence and head axes by layout: BMHK [B, M, H, D], BHMK [B, H, M, D].
  const bool bhmk = flags.layout == v1::LAYOUT_BHMK;
  const int seq_axis = bhmk ? 2 : 1, head_axis = bhmk ? 1 : 2;
  const std::string& qf = flags.q_file;
  const std::string& kf = flags.k_file;
  const std::string& vf = flags.v_file;
  for (absl::Status s : {
           TakeDim("--batch", flags.batch, qf, q->shape[0], &spec.batch),
           TakeDim("--q-len", flags.q_len, qf, q->shape[seq_axis], &spec.q_len),
           TakeDim("--heads", flags.heads, qf, q->shape[head_axis], &spec.heads),
           TakeDim("--head-dim", flags.head_dim, qf, q->shape[3], &spec.head_dim),
           TakeDim("--kv-len", flags.kv_len, kf, k->shape[seq_axis], &spec.kv_len),
           TakeDim("--kv-heads", flags.kv_heads, kf, k->shape[head_axis], &spec.kv_heads),
           TakeDim("--v-head-dim", flags.v_head_dim, vf, v->shape[3], &spec.v_head_dim),
       }) {
    if (!s.ok()) return s;
  }

  std::optional<client::NpyArray> bias;
  if (!flags.bias_file.empty()) {
    absl::StatusOr<client::NpyArray> b = ReadInput(flags.bias_file, "--bias-file", 0);
    if (!b.ok()) return b.status();
    spec.bias = true;
    spec.bias_shape = b->shape;
    spec.bias_dtype = b->dtype;
    bias = std::move(*b);
  } else if (spec.bias) {
    return absl::InvalidArgumentError("--bias with .npy inputs needs --bias-file");
  }
  // Whether the files make a valid problem is the server's call (its INVALID_ARGUMENT names the
  // tensor and dimension); only the options must make sense.
  if (absl::Status s = client::CheckGeneratable(spec); !s.ok()) return s;

  client::ApplyOptions(spec, &built.request);
  *built.request.mutable_q() = client::ToTensor(std::move(*q));
  *built.request.mutable_k() = client::ToTensor(std::move(*k));
  *built.request.mutable_v() = client::ToTensor(std::move(*v));
  if (bias.has_value()) *built.request.mutable_bias() = client::ToTensor(std::move(*bias));
  return built;
}

}  // namespace

absl::StatusOr<BuiltRequest> BuildRequest(const ProblemFlags& flags) {
  if (!flags.q_file.empty()) return FromFiles(flags);
  BuiltRequest built;
  built.spec = SpecFromFlags(flags);
  absl::StatusOr<v1::AttendRequest> request = client::GenerateRequest(built.spec);
  if (!request.ok()) return request.status();
  built.request = std::move(*request);
  return built;
}

std::string DescribeSpec(const client::RequestSpec& spec) {
  const int64_t kv_heads = spec.kv_heads > 0 ? spec.kv_heads : spec.heads;
  const int64_t v_head_dim = spec.v_head_dim > 0 ? spec.v_head_dim : spec.head_dim;
  std::string out = absl::StrCat("B=", spec.batch, " Mq=", spec.q_len, " Mk=", spec.kv_len,
                                 " Hq=", spec.heads, " Hkv=", kv_heads, " D=", spec.head_dim,
                                 " Dv=", v_head_dim, " ", DTypeName(spec.dtype), " ",
                                 LayoutName(spec.layout), " causal=", CausalName(spec.causal));
  if (spec.has_window) absl::StrAppend(&out, " window=", spec.window_left, ",", spec.window_right);
  absl::StrAppend(&out, " bias=", spec.bias ? "yes" : "no");
  if (!spec.kv_lengths.empty() || spec.random_kv_lengths) absl::StrAppend(&out, " kv_lengths=yes");
  absl::StrAppend(&out, " lse=", spec.return_lse ? "yes" : "no");
  return out;
}

}  // namespace attnd::attnctl
