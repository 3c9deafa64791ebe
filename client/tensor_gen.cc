#include "client/tensor_gen.h"

#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/npy.h"
#include "kernels/dtype_convert.h"

namespace attnd::client {
namespace {

int64_t KvHeads(const RequestSpec& spec) { return spec.kv_heads > 0 ? spec.kv_heads : spec.heads; }
int64_t VHeadDim(const RequestSpec& spec) {
  return spec.v_head_dim > 0 ? spec.v_head_dim : spec.head_dim;
}

std::vector<int64_t> InLayout(const RequestSpec& spec, int64_t seq, int64_t heads, int64_t dim) {
  if (spec.layout == v1::LAYOUT_BHMK) return {spec.batch, heads, seq, dim};
  return {spec.batch, seq, heads, dim};
}

std::vector<int64_t> FullBiasShape(const RequestSpec& spec) {
  return {spec.batch, spec.heads, spec.q_len, spec.kv_len};
}

// Product of `shape`, or -1 when it overflows int64.
int64_t Elements(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) return -1;
    n *= d;
  }
  return n;
}

absl::Status Positive(absl::string_view flag, int64_t value) {
  if (value > 0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(flag, " = ", value, " must be positive"));
}

// 16 bits of `value` in the 16-bit dtype; 0 for f32 (callers handle it apart).
uint16_t ToBits16(v1::DType dtype, float value) {
  return dtype == v1::DTYPE_F16 ? kernels::FloatToHalf(value) : kernels::FloatToBFloat16(value);
}

}  // namespace

std::vector<int64_t> QShape(const RequestSpec& spec) {
  return InLayout(spec, spec.q_len, spec.heads, spec.head_dim);
}
std::vector<int64_t> KShape(const RequestSpec& spec) {
  return InLayout(spec, spec.kv_len, KvHeads(spec), spec.head_dim);
}
std::vector<int64_t> VShape(const RequestSpec& spec) {
  return InLayout(spec, spec.kv_len, KvHeads(spec), VHeadDim(spec));
}

absl::Status CheckGeneratable(const RequestSpec& spec) {
  for (const auto& [flag, value] : {std::pair<absl::string_view, int64_t>{"--batch", spec.batch},
                                    {"--q-len", spec.q_len},
                                    {"--kv-len", spec.kv_len},
                                    {"--heads", spec.heads},
                                    {"--head-dim", spec.head_dim}}) {
    if (absl::Status s = Positive(flag, value); !s.ok()) return s;
  }
  if (spec.kv_heads < 0) return Positive("--kv-heads", spec.kv_heads);
  if (spec.v_head_dim < 0) return Positive("--v-head-dim", spec.v_head_dim);
  if (DTypeBytes(spec.dtype) == 0) return absl::InvalidArgumentError("dtype is unspecified");
  for (const auto& shape :
       {QShape(spec), KShape(spec), VShape(spec), FullBiasShape(spec), spec.bias_shape}) {
    const int64_t n = Elements(shape);
    if (n < 0 || n > std::numeric_limits<int64_t>::max() / 4) {
      return absl::InvalidArgumentError(
          absl::StrCat("shape [", absl::StrJoin(shape, ", "), "] overflows int64 bytes"));
    }
  }
  if (spec.bias && !spec.bias_shape.empty()) {
    for (size_t i = 0; i < spec.bias_shape.size(); ++i) {
      if (spec.bias_shape[i] <= 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("bias shape[", i, "] = ", spec.bias_shape[i], " must be positive"));
      }
    }
  }
  if (!spec.kv_lengths.empty() && spec.random_kv_lengths) {
    return absl::InvalidArgumentError("give kv_lengths or random_kv_lengths, not both");
  }
  return absl::OkStatus();
}

absl::Status ValidateSpec(const RequestSpec& spec) {
  if (absl::Status s = CheckGeneratable(spec); !s.ok()) return s;
  if (spec.heads % KvHeads(spec) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--heads = ", spec.heads, " is not a multiple of --kv-heads = ", KvHeads(spec)));
  }
  if (!spec.kv_lengths.empty()) {
    if (static_cast<int64_t>(spec.kv_lengths.size()) != spec.batch) {
      return absl::InvalidArgumentError(absl::StrCat("--kv-lengths has ", spec.kv_lengths.size(),
                                                     " values, want --batch = ", spec.batch));
    }
    for (size_t b = 0; b < spec.kv_lengths.size(); ++b) {
      if (spec.kv_lengths[b] < 0 || spec.kv_lengths[b] > spec.kv_len) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--kv-lengths[", b, "] = ", spec.kv_lengths[b], " is outside [0, ", spec.kv_len, "]"));
      }
    }
  }
  if (spec.bias && !spec.bias_shape.empty()) {
    const std::vector<int64_t> full = FullBiasShape(spec);
    const size_t rank = spec.bias_shape.size();
    if (rank < 2 || rank > 4) {
      return absl::InvalidArgumentError(absl::StrCat("bias rank ", rank, " is outside 2..4"));
    }
    for (size_t i = 0; i < rank; ++i) {
      const int64_t d = spec.bias_shape[i];
      const int64_t want = full[4 - rank + i];
      if (d != 1 && d != want) {
        return absl::InvalidArgumentError(absl::StrCat("bias shape[", i, "] = ", d,
                                                       " does not broadcast to ", want, " (of [",
                                                       absl::StrJoin(full, ", "), "])"));
      }
    }
  }
  return absl::OkStatus();
}

void FillRandomTensor(v1::DType dtype, const std::vector<int64_t>& shape, std::mt19937_64* rng,
                      v1::Tensor* tensor) {
  tensor->Clear();
  tensor->set_dtype(dtype);
  for (int64_t d : shape) tensor->add_shape(d);
  const int64_t n = Elements(shape);
  std::string* data = tensor->mutable_data();
  data->resize(static_cast<size_t>(n * DTypeBytes(dtype)));
  char* out = data->data();
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t i = 0; i < n; ++i) {
    if (dtype == v1::DTYPE_F32) {
      float value;
      do value = normal(*rng);
      while (value == 0.0f);
      std::memcpy(out + 4 * i, &value, 4);
    } else {
      uint16_t bits;
      do bits = ToBits16(dtype, normal(*rng));
      while ((bits & 0x7fff) == 0);  // +0 or -0 after rounding
      // Little-endian on the wire, whatever the host.
      out[2 * i] = static_cast<char>(bits & 0xff);
      out[2 * i + 1] = static_cast<char>(bits >> 8);
    }
  }
}

void ApplyOptions(const RequestSpec& spec, v1::AttendRequest* request) {
  request->set_request_id(spec.request_id);
  request->set_layout(spec.layout);
  request->set_causal(spec.causal);
  if (spec.has_window) {
    request->mutable_window()->set_left(spec.window_left);
    request->mutable_window()->set_right(spec.window_right);
  } else {
    request->clear_window();
  }
  request->clear_kv_lengths();
  if (!spec.kv_lengths.empty()) {
    for (int64_t length : spec.kv_lengths) request->add_kv_lengths(length);
  } else if (spec.random_kv_lengths) {
    // From a generator of its own so the tensors do not depend on this option.
    std::mt19937_64 rng(spec.seed ^ 0x6b765f6c656e73ULL);
    std::uniform_int_distribution<int64_t> length(1, spec.kv_len);
    for (int64_t b = 0; b < spec.batch; ++b) request->add_kv_lengths(length(rng));
  }
  request->set_return_lse(spec.return_lse);
  if (spec.scale.has_value()) {
    request->set_scale(*spec.scale);
  } else {
    request->clear_scale();
  }
  request->set_variant(spec.variant);
  request->set_q_chunk(spec.q_chunk);
  request->set_kv_chunk(spec.kv_chunk);
  request->set_priority(spec.priority);
}

absl::StatusOr<v1::AttendRequest> GenerateRequest(const RequestSpec& spec) {
  if (absl::Status status = CheckGeneratable(spec); !status.ok()) return status;
  v1::AttendRequest request;
  ApplyOptions(spec, &request);
  std::mt19937_64 rng(spec.seed);
  FillRandomTensor(spec.dtype, QShape(spec), &rng, request.mutable_q());
  FillRandomTensor(spec.dtype, KShape(spec), &rng, request.mutable_k());
  FillRandomTensor(spec.dtype, VShape(spec), &rng, request.mutable_v());
  if (spec.bias) {
    const v1::DType bias_dtype =
        spec.bias_dtype == v1::DTYPE_UNSPECIFIED ? spec.dtype : spec.bias_dtype;
    FillRandomTensor(bias_dtype, spec.bias_shape.empty() ? FullBiasShape(spec) : spec.bias_shape,
                     &rng, request.mutable_bias());
  }
  return request;
}

}  // namespace attnd::client
