#include "kernels/cuda/cudnn/cudnn_graph_cache.h"

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "kernels/problem.h"

namespace attnd::kernels::cuda::cudnn_internal {
namespace {

// A window bound as the graph sees it: -1 when it masks nothing (mask.h clamps at Mq + Mk).
int64_t NormalBound(int64_t bound, int64_t q_len, int64_t kv_len) {
  return bound < 0 || bound >= q_len + kv_len ? -1 : bound;
}

auto Tie(const GraphKey& k) {
  return std::tie(k.handle, k.dtype, k.layout, k.batch, k.q_len, k.kv_len, k.q_heads, k.kv_heads,
                  k.head_dim, k.v_head_dim, k.causal, k.window_left, k.window_right,
                  k.has_kv_lengths, k.has_bias, k.bias_dtype, k.bias_shape[0], k.bias_shape[1],
                  k.bias_shape[2], k.bias_shape[3], k.return_lse, k.scale);
}

}  // namespace

GraphKey GraphKey::From(const AttentionProblem& p, void* handle) {
  GraphKey k;
  k.handle = handle;
  k.dtype = p.dtype;
  k.layout = p.layout;
  k.batch = p.batch;
  k.q_len = p.q_len;
  k.kv_len = p.kv_len;
  k.q_heads = p.q_heads;
  k.kv_heads = p.kv_heads;
  k.head_dim = p.head_dim;
  k.v_head_dim = p.v_head_dim;
  k.causal = p.causal;
  k.window_left = NormalBound(p.window_left, p.q_len, p.kv_len);
  k.window_right = NormalBound(p.window_right, p.q_len, p.kv_len);
  k.has_kv_lengths = p.has_kv_lengths;
  k.has_bias = p.has_bias;
  if (p.has_bias) {
    k.bias_dtype = p.bias_dtype;
    for (int i = 0; i < 4; ++i) k.bias_shape[i] = p.bias_shape[i];
  }
  k.return_lse = p.return_lse;
  k.scale = p.scale;
  return k;
}

std::string RefusedUpFront(const GraphKey& key) {
  if (key.dtype == DType::kF32) return "cuDNN's fused attention takes f16 or bf16, not f32";
  if (key.q_len + key.kv_len > std::numeric_limits<int32_t>::max()) {
    return "Mq + Mk beyond int32: cuDNN's sequence lengths and band bounds are int32";
  }
  if (key.has_bias) {
    const int64_t* s = key.bias_shape;
    // A dim of 1 on a length of 1 broadcasts nothing: it counts as full.
    const bool full_q = s[2] == key.q_len;
    const bool full_k = s[3] == key.kv_len;
    const bool verified = (full_q && full_k) || (full_k && s[1] == 1 && s[2] == 1) ||
                          (full_q && s[0] == 1 && s[1] == 1 && s[3] == 1);
    if (!verified) {
      return absl::StrCat("bias broadcast [", s[0], ", ", s[1], ", ", s[2], ", ", s[3],
                          "] is not one checked with cuDNN ([1|B, 1|H, Mq, Mk], [1|B, 1, 1, Mk], "
                          "[1, 1, Mq, 1]); cuDNN 9.19 computes [B, H, 1, 1] wrongly");
    }
  }
  return "";
}

bool GraphKey::operator<(const GraphKey& other) const { return Tie(*this) < Tie(other); }

std::shared_ptr<GraphSlot> GraphCache::Slot(const GraphKey& key) {
  absl::MutexLock lock(&mu_);
  const uint64_t now = ++clock_;
  auto it = entries_.find(key);
  if (it != entries_.end()) {
    it->second.last_use = now;
    return it->second.slot;
  }
  if (capacity_ > 0 && static_cast<int64_t>(entries_.size()) >= capacity_) {
    // A linear scan: evictions are rare and the cache small.
    auto oldest = entries_.begin();
    for (auto e = entries_.begin(); e != entries_.end(); ++e) {
      if (e->second.last_use < oldest->second.last_use) oldest = e;
    }
    entries_.erase(oldest);
    ++stats_.evictions;
  }
  Entry& entry = entries_[key];
  entry.slot = std::make_shared<GraphSlot>();
  entry.last_use = now;
  return entry.slot;
}

void GraphCache::DropHandle(void* handle) {
  absl::MutexLock lock(&mu_);
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->first.handle == handle) {
      it = entries_.erase(it);
      ++stats_.evictions;
    } else {
      ++it;
    }
  }
}

void GraphCache::CountHit() {
  absl::MutexLock lock(&mu_);
  ++stats_.hits;
}

void GraphCache::CountBuild() {
  absl::MutexLock lock(&mu_);
  ++stats_.builds;
}

CudnnGraphCacheStats GraphCache::Stats() const {
  absl::MutexLock lock(&mu_);
  CudnnGraphCacheStats stats = stats_;
  stats.entries = static_cast<int64_t>(entries_.size());
  return stats;
}

}  // namespace attnd::kernels::cuda::cudnn_internal
