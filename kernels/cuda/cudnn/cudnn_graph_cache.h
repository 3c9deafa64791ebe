// The `cudnn` variant's graph cache: one slot per (cuDNN handle, graph shape). Knows nothing of
// cudnn-frontend: a slot holds an opaque BuiltGraph, defined where the frontend is included
// (cudnn_attention.cc), so this file compiles fast and is testable on its own.
#ifndef ATTND_KERNELS_CUDA_CUDNN_CUDNN_GRAPH_CACHE_H_
#define ATTND_KERNELS_CUDA_CUDNN_CUDNN_GRAPH_CACHE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "kernels/cuda/cudnn/cudnn_attention.h"
#include "kernels/problem.h"

namespace attnd::kernels::cuda::cudnn_internal {

// Everything that shapes a cuDNN SDPA graph: two problems with equal keys run the same graph.
struct GraphKey {
  void* handle = nullptr;  // graphs are built and run per handle (and so per device)
  DType dtype = DType::kF16;
  Layout layout = Layout::kBMHK;
  int64_t batch = 0;
  int64_t q_len = 0;
  int64_t kv_len = 0;
  int64_t q_heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t v_head_dim = 0;
  Causal causal = Causal::kNone;
  int64_t window_left = -1;  // -1: unbounded, also for bounds that reach every key
  int64_t window_right = -1;
  bool has_kv_lengths = false;
  bool has_bias = false;
  DType bias_dtype = DType::kF32;        // kF32 when !has_bias
  int64_t bias_shape[4] = {0, 0, 0, 0};  // zeros when !has_bias
  bool return_lse = false;
  double scale = 0.0;

  // Normalises what does not change the graph (bounds of Mq + Mk or more are unbounded, as in
  // kernels/mask.h; bias fields without a bias).
  static GraphKey From(const AttentionProblem& problem, void* handle);
  bool operator<(const GraphKey& other) const;
};

// Why attnd does not hand `key` to cuDNN at all, or "" to let cuDNN decide. Host logic only:
//   f32                 cuDNN's SDPA takes f16 and bf16
//   Mq + Mk >= 2^31     cuDNN's sequence lengths and band bounds are int32
//   bias broadcasts     only those checked against the reference on cuDNN 9.19 (H200, tests/
//                       gpu_cudnn): [1|B, 1|H, Mq, Mk], [1|B, 1, 1, Mk] and [1, 1, Mq, 1].
//                       cuDNN accepted [B, H, 1, 1] and computed it wrongly (errors up to 0.34),
//                       so no other broadcast is trusted without a test.
std::string RefusedUpFront(const GraphKey& key);

struct BuiltGraph;  // cudnn_attention.cc

// One key's graph: built once under `mu` by the first caller, read by every later one.
struct GraphSlot {
  absl::Mutex mu;
  bool built ABSL_GUARDED_BY(mu) = false;
  std::shared_ptr<BuiltGraph> graph ABSL_GUARDED_BY(mu);
};

class GraphCache {
 public:
  explicit GraphCache(int64_t capacity) : capacity_(capacity) {}
  GraphCache(const GraphCache&) = delete;
  GraphCache& operator=(const GraphCache&) = delete;

  // The slot of `key`, new (not built) on a miss. Past capacity the least recently used slot is
  // dropped; whoever still holds it keeps it alive until done.
  std::shared_ptr<GraphSlot> Slot(const GraphKey& key) ABSL_LOCKS_EXCLUDED(mu_);
  // Drops every slot built with `handle` (before the handle is destroyed).
  void DropHandle(void* handle) ABSL_LOCKS_EXCLUDED(mu_);

  void CountHit() ABSL_LOCKS_EXCLUDED(mu_);
  void CountBuild() ABSL_LOCKS_EXCLUDED(mu_);
  CudnnGraphCacheStats Stats() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Entry {
    std::shared_ptr<GraphSlot> slot;
    uint64_t last_use = 0;
  };

  // Constant after construction.
  const int64_t capacity_;

  mutable absl::Mutex mu_;
  std::map<GraphKey, Entry> entries_ ABSL_GUARDED_BY(mu_);
  uint64_t clock_ ABSL_GUARDED_BY(mu_) = 0;
  CudnnGraphCacheStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace attnd::kernels::cuda::cudnn_internal

#endif  // ATTND_KERNELS_CUDA_CUDNN_CUDNN_GRAPH_CACHE_H_
