#include "server/executor/ragged_group.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

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
  // A bias would have to be padded to the launch's [B, Hq, q_len, kv_len] (problem.h): a copy
  // as large as the scores for long sequences. Not done; such requests run alone.
  if (p.has_bias) return "bias (not packed)";
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
         a.window_right == b.window_right && a.return_lse == b.return_lse;
}

int64_t PackedBytes(const kernels::AttentionProblem& p) {
  const RowBytes row = RowBytesOf(p);
  return p.batch * (p.q_len * (row.q + row.out + row.lse) + p.kv_len * (row.k + row.v));
}

int64_t LaunchTokens(const kernels::AttentionProblem& p) {
  return p.batch * std::max(p.q_len, p.kv_len);
}

std::vector<std::vector<size_t>> ChooseRaggedGroups(absl::Span<const BatchEntry> entries,
                                                    const RaggedGroupPolicy& policy) {
  struct Open {
    std::vector<size_t> members;
    int64_t bytes = 0;
    int64_t tokens = 0;
  };
  std::vector<Open> open;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (!WhyNotPackable(entries[i], policy).empty()) continue;
    const kernels::AttentionProblem& p = *entries[i].problem;
    const int64_t bytes = PackedBytes(p);
    const int64_t tokens = LaunchTokens(p);
    auto fits = [&](const Open& g) {
      return SameLaunch(*entries[g.members.front()].problem, p) &&
             g.bytes + bytes <= policy.max_packed_bytes && g.tokens + tokens <= policy.max_tokens;
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
  return launch;
}

void PackInputs(const RaggedLaunch& launch, absl::Span<const BatchEntry> entries, void* q, void* k,
                void* v) {
  auto* q_bytes = static_cast<unsigned char*>(q);
  auto* k_bytes = static_cast<unsigned char*>(k);
  auto* v_bytes = static_cast<unsigned char*>(v);
  for (const RaggedMember& m : launch.members) {
    const kernels::AttentionTensors& t = entries[m.entry].tensors;
    std::memcpy(q_bytes + m.q_offset_bytes, t.q, static_cast<size_t>(m.q_bytes));
    std::memcpy(k_bytes + m.k_offset_bytes, t.k, static_cast<size_t>(m.k_bytes));
    std::memcpy(v_bytes + m.v_offset_bytes, t.v, static_cast<size_t>(m.v_bytes));
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
