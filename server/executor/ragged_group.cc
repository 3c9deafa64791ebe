#include "server/executor/ragged_group.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "kernels/tensor_index.h"

namespace attnd::server::executor {
namespace {

// Bytes of one row (one token) of each of an entry's tensors: the sizes of its dense regions
// are rows × these (problem.h: BMHK, the sequence axis outermost after B).
struct RowBytes {
  int64_t q, k, v, out, lse;
};

RowBytes RowBytesOf(const kernels::AttentionProblem& p) {
  const int64_t element = static_cast<int64_t>(kernels::DTypeSize(p.dtype));
  RowBytes row;
  row.q = p.q_heads * p.head_dim * element;
  row.k = p.kv_heads * p.head_dim * element;
  row.v = p.kv_heads * p.v_head_dim * element;
  row.out = p.q_heads * p.v_head_dim * element;
  row.lse = p.return_lse ? p.q_heads * static_cast<int64_t>(sizeof(float)) : 0;
  return row;
}

}  // namespace

std::string WhyNotPackable(const BatchEntry& entry, const RaggedGroupPolicy& policy) {
  const kernels::AttentionProblem& p = *entry.problem;
  if (p.ragged) return "already ragged";
  if (p.layout != kernels::Layout::kBMHK) return "layout BHMK (ragged launches are BMHK)";
  if (p.has_kv_lengths) return "kv_lengths (refused with sequence offsets)";
  if (entry.fixed_chunks) return "chunk sizes fixed by the request";
  const std::vector<kernels::Variant>& v = policy.variants;
  if (std::find(v.begin(), v.end(), entry.plan->variant) == v.end()) {
    return absl::StrCat("variant ", std::string(kernels::VariantName(entry.plan->variant)),
                        " takes no ragged launch here");
  }
  return "";
}

bool SameLaunch(const kernels::AttentionProblem& a, const kernels::AttentionProblem& b) {
  return a.dtype == b.dtype && a.q_heads == b.q_heads && a.kv_heads == b.kv_heads &&
         a.head_dim == b.head_dim && a.v_head_dim == b.v_head_dim && a.scale == b.scale &&
         a.causal == b.causal && a.window_left == b.window_left &&
         a.window_right == b.window_right && a.return_lse == b.return_lse &&
         a.has_bias == b.has_bias && (!a.has_bias || a.bias_dtype == b.bias_dtype);
}

int64_t PackedBytes(const kernels::AttentionProblem& p) {
  const RowBytes row = RowBytesOf(p);
  return p.batch * (p.q_len * (row.q + row.out + row.lse) + p.kv_len * (row.k + row.v));
}

int64_t LaunchTokens(const kernels::AttentionProblem& p) {
  return p.batch * std::max(p.q_len, p.kv_len);
}

BiasAxes BiasAxes::Of(const kernels::AttentionProblem& p) {
  BiasAxes axes;
  if (!p.has_bias) return axes;
  axes.head = p.bias_shape[1] > 1;
  axes.query = p.bias_shape[2] > 1;
  axes.key = p.bias_shape[3] > 1;
  return axes;
}

BiasAxes& BiasAxes::operator|=(const BiasAxes& other) {
  head |= other.head;
  query |= other.query;
  key |= other.key;
  return *this;
}

void BiasAxes::Shape(int64_t batch, int64_t q_heads, int64_t q_len, int64_t kv_len,
                     int64_t shape[4]) const {
  shape[0] = batch;
  shape[1] = head ? q_heads : 1;
  shape[2] = query ? q_len : 1;
  shape[3] = key ? kv_len : 1;
}

int64_t BiasAxes::Elements(int64_t batch, int64_t q_heads, int64_t q_len, int64_t kv_len) const {
  int64_t shape[4];
  Shape(batch, q_heads, q_len, kv_len, shape);
  return shape[0] * shape[1] * shape[2] * shape[3];
}

std::vector<std::vector<size_t>> ChooseRaggedGroups(absl::Span<const BatchEntry> entries,
                                                    const RaggedGroupPolicy& policy) {
  struct Open {
    std::vector<size_t> members;
    int64_t bytes = 0;  // PackedBytes: without the bias
    int64_t tokens = 0;
  };
  // The padded bias bytes of `g` with entry `extra` added, or -1 when its padding passes the
  // policy's bound. 0 without a bias.
  auto padded_bias_bytes = [&](const Open& g, size_t extra) -> int64_t {
    const kernels::AttentionProblem& p = *entries[extra].problem;
    if (!p.has_bias) return 0;
    BiasAxes axes = BiasAxes::Of(p);
    int64_t batch = p.batch, q_len = p.q_len, kv_len = p.kv_len;
    for (size_t m : g.members) {
      const kernels::AttentionProblem& e = *entries[m].problem;
      axes |= BiasAxes::Of(e);
      batch += e.batch;
      q_len = std::max(q_len, e.q_len);
      kv_len = std::max(kv_len, e.kv_len);
    }
    auto own = [&](const kernels::AttentionProblem& e) {
      return axes.Elements(e.batch, e.q_heads, e.q_len, e.kv_len);
    };
    int64_t unpadded = own(p);
    for (size_t m : g.members) unpadded += own(*entries[m].problem);
    const int64_t padded = axes.Elements(batch, p.q_heads, q_len, kv_len);
    if (static_cast<double>(padded) > policy.max_bias_padding * static_cast<double>(unpadded)) {
      return -1;
    }
    return padded * static_cast<int64_t>(kernels::DTypeSize(p.bias_dtype));
  };
  std::vector<Open> open;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (!WhyNotPackable(entries[i], policy).empty()) continue;
    const kernels::AttentionProblem& p = *entries[i].problem;
    const int64_t bytes = PackedBytes(p);
    const int64_t tokens = LaunchTokens(p);
    auto fits = [&](const Open& g) {
      if (!SameLaunch(*entries[g.members.front()].problem, p)) return false;
      const int64_t bias = padded_bias_bytes(g, i);
      return bias >= 0 && g.bytes + bytes + bias <= policy.max_packed_bytes &&
             g.tokens + tokens <= policy.max_tokens;
    };
    auto group = std::find_if(open.begin(), open.end(), fits);
    if (group == open.end()) group = open.insert(open.end(), Open{});
    group->members.push_back(i);
    group->bytes += bytes;
    group->tokens += tokens;
  }
  std::vector<std::vector<size_t>> groups;
  for (Open& g : open) {
    if (g.members.size() >= 2) groups.push_back(std::move(g.members));
  }
  return groups;
}

RaggedLaunch BuildRaggedLaunch(absl::Span<const BatchEntry> entries,
                               absl::Span<const size_t> members) {
  RaggedLaunch launch;
  const kernels::AttentionProblem& first = *entries[members.front()].problem;
  kernels::AttentionProblem& p = launch.problem;
  p = first;  // dtype, heads, head dims, scale, causal, window, return_lse: shared
  p.layout = kernels::Layout::kBMHK;
  p.ragged = true;
  p.batch = 0;
  p.q_len = 0;
  p.kv_len = 0;
  p.total_q = 0;
  p.total_kv = 0;
  const RowBytes row = RowBytesOf(first);
  launch.q_offsets.push_back(0);
  launch.kv_offsets.push_back(0);
  for (size_t index : members) {
    const kernels::AttentionProblem& e = *entries[index].problem;
    RaggedMember m;
    m.entry = index;
    m.first_sequence = p.batch;
    m.q_row = p.total_q;
    m.kv_row = p.total_kv;
    m.q_offset_bytes = m.q_row * row.q;
    m.k_offset_bytes = m.kv_row * row.k;
    m.v_offset_bytes = m.kv_row * row.v;
    m.out_offset_bytes = m.q_row * row.out;
    m.lse_offset_bytes = m.q_row * row.lse;
    const int64_t q_rows = e.batch * e.q_len;
    const int64_t kv_rows = e.batch * e.kv_len;
    m.q_bytes = q_rows * row.q;
    m.k_bytes = kv_rows * row.k;
    m.v_bytes = kv_rows * row.v;
    m.out_bytes = q_rows * row.out;
    m.lse_bytes = q_rows * row.lse;
    for (int64_t b = 0; b < e.batch; ++b) {
      launch.q_offsets.push_back(launch.q_offsets.back() + e.q_len);
      launch.kv_offsets.push_back(launch.kv_offsets.back() + e.kv_len);
    }
    p.batch += e.batch;
    p.q_len = std::max(p.q_len, e.q_len);
    p.kv_len = std::max(p.kv_len, e.kv_len);
    p.total_q += q_rows;
    p.total_kv += kv_rows;
    launch.members.push_back(m);
  }
  launch.q_bytes = p.total_q * row.q;
  launch.k_bytes = p.total_kv * row.k;
  launch.v_bytes = p.total_kv * row.v;
  launch.out_bytes = p.total_q * row.out;
  launch.lse_bytes = p.total_q * row.lse;
  if (p.has_bias) {
    BiasAxes axes;
    for (size_t index : members) axes |= BiasAxes::Of(*entries[index].problem);
    axes.Shape(p.batch, p.q_heads, p.q_len, p.kv_len, p.bias_shape);
    launch.bias_bytes =
        p.bias_elements() * static_cast<int64_t>(kernels::DTypeSize(p.bias_dtype));
  }
  return launch;
}

namespace {

// Member `m`'s bias (its entry's, [bB_e, bH_e, bMq_e, bMk_e] broadcast to its own
// [B_e, Hq, Mq_e, Mk_e]) into its sequences' blocks of the launch's bias, row by row.
void PackBias(const kernels::AttentionProblem& launch, const RaggedMember& m,
              const kernels::AttentionProblem& e, const void* from, void* to) {
  const size_t element = kernels::DTypeSize(e.bias_dtype);
  const int64_t* shape = launch.bias_shape;  // [B, bH, bMq, bMk]
  const kernels::BiasIndex source = kernels::BiasIndex::For(e);
  const kernels::BiasIndex target = kernels::BiasIndex::For(launch);
  const int64_t rows = shape[2] == 1 ? 1 : e.q_len;
  const int64_t keys = shape[3] == 1 ? 1 : e.kv_len;
  const bool whole_rows = keys == 1 || e.bias_shape[3] == keys;  // else one value per row
  const auto* in = static_cast<const unsigned char*>(from);
  auto* out = static_cast<unsigned char*>(to);
  for (int64_t b = 0; b < e.batch; ++b) {
    for (int64_t h = 0; h < shape[1]; ++h) {
      for (int64_t i = 0; i < rows; ++i) {
        const unsigned char* row = in + source.At(b, h, i, 0) * element;
        unsigned char* dest = out + target.At(m.first_sequence + b, h, i, 0) * element;
        if (whole_rows) {
          std::memcpy(dest, row, static_cast<size_t>(keys) * element);
        } else {
          for (int64_t j = 0; j < keys; ++j) std::memcpy(dest + j * element, row, element);
        }
      }
    }
  }
}

}  // namespace

void PackInputs(const RaggedLaunch& launch, absl::Span<const BatchEntry> entries, void* q, void* k,
                void* v, void* bias) {
  auto* q_bytes = static_cast<unsigned char*>(q);
  auto* k_bytes = static_cast<unsigned char*>(k);
  auto* v_bytes = static_cast<unsigned char*>(v);
  for (const RaggedMember& m : launch.members) {
    const kernels::AttentionTensors& t = entries[m.entry].tensors;
    std::memcpy(q_bytes + m.q_offset_bytes, t.q, static_cast<size_t>(m.q_bytes));
    std::memcpy(k_bytes + m.k_offset_bytes, t.k, static_cast<size_t>(m.k_bytes));
    std::memcpy(v_bytes + m.v_offset_bytes, t.v, static_cast<size_t>(m.v_bytes));
    if (launch.problem.has_bias) {
      PackBias(launch.problem, m, *entries[m.entry].problem, t.bias, bias);
    }
  }
}

void UnpackOutputs(const RaggedLaunch& launch, absl::Span<const BatchEntry> entries,
                   const void* out, const float* lse) {
  const auto* out_bytes = static_cast<const unsigned char*>(out);
  const auto* lse_bytes = reinterpret_cast<const unsigned char*>(lse);
  for (const RaggedMember& m : launch.members) {
    const kernels::AttentionTensors& t = entries[m.entry].tensors;
    std::memcpy(t.out, out_bytes + m.out_offset_bytes, static_cast<size_t>(m.out_bytes));
    if (launch.problem.return_lse) {
      std::memcpy(t.lse, lse_bytes + m.lse_offset_bytes, static_cast<size_t>(m.lse_bytes));
    }
  }
}

}  // namespace attnd::server::executor
