// The `cudnn` variant on cudnn-frontend. The only translation unit that includes the frontend
// (a large header-only library: it compiles slowly).
#include "kernels/cuda/cudnn/cudnn_attention.h"

#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "cudnn_frontend.h"
#include "kernels/cuda/cuda_attention.h"
#include "kernels/cuda/cudnn/cudnn_aux.h"
#include "kernels/cuda/cudnn/cudnn_graph_cache.h"
#include "kernels/mask.h"
#include "kernels/planner.h"
#include "kernels/problem.h"

namespace attnd::kernels::cuda {
namespace cudnn_internal {

namespace fe = cudnn_frontend;

// A built graph, or cuDNN's reason for not building one. Immutable once built, except that
// executions of one graph are serialised by `run_mu` (the frontend's execute is not documented as
// safe to call concurrently).
struct BuiltGraph {
  bool supported = false;
  std::string reason;  // the step that failed and cuDNN's message, when !supported
  std::shared_ptr<fe::graph::Graph> graph;
  int64_t cudnn_workspace = 0;    // bytes cuDNN's plan needs
  bool padding = false;           // seq_len_q / seq_len_kv tensors in the variant pack
  bool stats = false;             // cuDNN writes its softmax stats (the LSE, or scratch)
  bool clear_empty_rows = false;  // some row may see no key: LaunchClearEmptyRows after cuDNN
  absl::Mutex run_mu;
};

}  // namespace cudnn_internal

namespace {

namespace fe = cudnn_frontend;
using cudnn_internal::BuiltGraph;
using cudnn_internal::GraphCache;
using cudnn_internal::GraphKey;
using cudnn_internal::GraphSlot;

// Tensor uids of the variant pack.
enum Uid : int64_t { kUidQ = 1, kUidK, kUidV, kUidO, kUidStats, kUidBias, kUidSeqQ, kUidSeqKv };

constexpr int64_t kAlign = 256;       // each workspace part, as the pool aligns allocations
constexpr int64_t kTensorAlign = 16;  // cuDNN's kernels load tensors in 16-byte vectors
// Graphs kept per process. One graph is a few hundred KiB of host descriptors; a serving mix of
// shapes stays far below this, and an evicted graph is rebuilt on its next use.
constexpr int64_t kCacheCapacity = 512;

int64_t AlignUp(int64_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

#define ATTND_CUDNN_CHECK(expr)                                                                    \
  do {                                                                                             \
    const cudnnStatus_t attnd_status_ = (expr);                                                    \
    if (attnd_status_ != CUDNN_STATUS_SUCCESS) {                                                   \
      return absl::InternalError(absl::StrCat(#expr, " failed at ", __FILE__, ":", __LINE__, ": ", \
                                              cudnnGetErrorString(attnd_status_)));                \
    }                                                                                              \
  } while (false)

// The process's cache; never destroyed, so no cuDNN call runs during static destruction.
GraphCache& Cache() {
  static GraphCache* cache = new GraphCache(kCacheCapacity);
  return *cache;
}

fe::DataType_t FeType(DType dtype) {
  switch (dtype) {
    case DType::kF16:
      return fe::DataType_t::HALF;
    case DType::kBF16:
      return fe::DataType_t::BFLOAT16;
    case DType::kF32:
      return fe::DataType_t::FLOAT;
  }
  return fe::DataType_t::NOT_SET;
}

// Dims and strides of a q/k/v/out tensor as cuDNN's [B, H, M, X] view of attnd's layout.
std::vector<int64_t> Dims(int64_t b, int64_t h, int64_t m, int64_t x) { return {b, h, m, x}; }
std::vector<int64_t> Strides(Layout layout, int64_t h, int64_t m, int64_t x) {
  if (layout == Layout::kBMHK) return {m * h * x, x, h * x, 1};  // stored [B, M, H, X]
  return {h * m * x, m * x, x, 1};                               // stored [B, H, M, X]
}

// True when some query row sees no key with every batch element at Mk keys (kernels/mask.h).
bool HasEmptyRowAtFullLength(const GraphKey& key) {
  AttentionProblem p;
  p.q_len = key.q_len;
  p.kv_len = key.kv_len;
  p.causal = key.causal;
  p.window_left = key.window_left;
  p.window_right = key.window_right;
  const MaskPolicy policy = MaskPolicy::FromProblem(p);
  if (policy.IsFull()) return false;
  for (int64_t i = 0; i < key.q_len; ++i) {
    if (policy.Visible(i, key.kv_len).empty()) return true;
  }
  return false;
}

// Describes a frontend error as "step: code message".
std::string Describe(const char* step, fe::error_t error) {
  std::string message = error.get_message();
  if (message.empty()) message = "no message";
  return absl::StrCat(step, " failed (cudnn-frontend error ", static_cast<int>(error.get_code()),
                      "): ", message);
}

// Builds the SDPA graph of `key` with `implementation`; "" on success, else why not.
std::string TryBuild(const GraphKey& key, cudnnHandle_t handle,
                     fe::AttentionImplementation_t implementation, BuiltGraph* built) {
  auto graph = std::make_shared<fe::graph::Graph>();
  graph->set_io_data_type(FeType(key.dtype))
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);

  const int64_t b = key.batch;
  auto tensor = [&](const char* name, Uid uid, std::vector<int64_t> dims,
                    std::vector<int64_t> strides) {
    return graph->tensor(fe::graph::Tensor_attributes()
                             .set_name(name)
                             .set_uid(uid)
                             .set_dim(std::move(dims))
                             .set_stride(std::move(strides)));
  };
  auto q = tensor("q", kUidQ, Dims(b, key.q_heads, key.q_len, key.head_dim),
                  Strides(key.layout, key.q_heads, key.q_len, key.head_dim));
  auto k = tensor("k", kUidK, Dims(b, key.kv_heads, key.kv_len, key.head_dim),
                  Strides(key.layout, key.kv_heads, key.kv_len, key.head_dim));
  auto v = tensor("v", kUidV, Dims(b, key.kv_heads, key.kv_len, key.v_head_dim),
                  Strides(key.layout, key.kv_heads, key.kv_len, key.v_head_dim));

  // With a bias a row may see no key through -inf scores alone; its stats (-inf or NaN) are how
  // LaunchClearEmptyRows finds it, so they are generated even when no LSE was asked for.
  built->stats = key.return_lse || key.has_bias;
  auto options = fe::graph::SDPA_attributes()
                     .set_name("attnd_sdpa")
                     .set_generate_stats(built->stats)
                     .set_attn_scale(static_cast<float>(key.scale))
                     .set_implementation(implementation);
  if (key.has_bias) {
    const int64_t* s = key.bias_shape;  // [bB, bH, bMq, bMk], dims of 1 broadcast
    auto bias = graph->tensor(fe::graph::Tensor_attributes()
                                  .set_name("bias")
                                  .set_uid(kUidBias)
                                  .set_data_type(FeType(key.bias_dtype))
                                  .set_dim({s[0], s[1], s[2], s[3]})
                                  .set_stride({s[1] * s[2] * s[3], s[2] * s[3], s[3], 1}));
    options.set_bias(bias);
  }
  // The padding mask carries kv_lengths; without them it still lets cuDNN take bottom-right
  // alignment with Mq > Mk, which it refuses at fixed lengths.
  const bool has_window = key.window_left >= 0 || key.window_right >= 0;
  const bool bottom_right =
      key.causal == Causal::kBottomRight || (key.causal == Causal::kNone && has_window);
  built->padding = key.has_kv_lengths || (bottom_right && key.q_len > key.kv_len);
  if (built->padding) {
    auto seq_len = [&](const char* name, Uid uid) {
      return graph->tensor(fe::graph::Tensor_attributes()
                               .set_name(name)
                               .set_uid(uid)
                               .set_data_type(fe::DataType_t::INT32)
                               .set_dim({b, 1, 1, 1})
                               .set_stride({1, 1, 1, 1}));
    };
    options.set_padding_mask(true)
        .set_seq_len_q(seq_len("seq_len_q", kUidSeqQ))
        .set_seq_len_kv(seq_len("seq_len_kv", kUidSeqKv));
  }
  if (key.causal != Causal::kNone || has_window) {
    options.set_diagonal_alignment(bottom_right ? fe::DiagonalAlignment_t::BOTTOM_RIGHT
                                                : fe::DiagonalAlignment_t::TOP_LEFT);
    // attnd keeps keys j in [i' - left, i' + right]; cuDNN keeps j <= i' + right_bound and
    // j > i' - left_bound. Causal is right bound 0 (a window's right bound can only widen it).
    if (key.causal != Causal::kNone) {
      options.set_diagonal_band_right_bound(0);
    } else if (key.window_right >= 0) {
      options.set_diagonal_band_right_bound(static_cast<int>(key.window_right));
    }
    if (key.window_left >= 0) {
      options.set_diagonal_band_left_bound(static_cast<int>(key.window_left + 1));
    }
  }

  auto [o, stats] = graph->sdpa(q, k, v, options);
  o->set_output(true)
      .set_uid(kUidO)
      .set_dim(Dims(b, key.q_heads, key.q_len, key.v_head_dim))
      .set_stride(Strides(key.layout, key.q_heads, key.q_len, key.v_head_dim));
  if (built->stats) {
    // attnd's LSE [B, Hq, Mq] f32 is cuDNN's stats [B, Hq, Mq, 1].
    stats->set_output(true)
        .set_uid(kUidStats)
        .set_data_type(fe::DataType_t::FLOAT)
        .set_dim({b, key.q_heads, key.q_len, 1})
        .set_stride({key.q_heads * key.q_len, key.q_len, 1, 1});
  }

  if (auto e = graph->validate(); e.is_bad()) return Describe("validate", e);
  if (auto e = graph->build_operation_graph(handle); e.is_bad()) {
    return Describe("build_operation_graph", e);
  }
  if (auto e = graph->create_execution_plans({fe::HeurMode_t::A, fe::HeurMode_t::FALLBACK});
      e.is_bad()) {
    return Describe("create_execution_plans", e);
  }
  if (auto e = graph->check_support(); e.is_bad()) return Describe("check_support", e);
  if (auto e = graph->build_plans(fe::BuildPlanPolicy_t::HEURISTICS_CHOICE); e.is_bad()) {
    return Describe("build_plans", e);
  }
  int64_t workspace = 0;
  if (auto e = graph->get_workspace_size(workspace); e.is_bad()) {
    return Describe("get_workspace_size", e);
  }
  built->graph = std::move(graph);
  built->cudnn_workspace = workspace;
  return "";
}

std::shared_ptr<BuiltGraph> Build(const GraphKey& key, cudnnHandle_t handle) {
  auto built = std::make_shared<BuiltGraph>();
  built->reason = cudnn_internal::RefusedUpFront(key);
  if (!built->reason.empty()) return built;
  // The frontend may pick its unified SDPA node; where that node has no engine for the case,
  // the composite graph may still have one, so it gets a second try.
  std::string reasons;
  for (auto [implementation, name] :
       {std::pair{fe::AttentionImplementation_t::AUTO, "auto"},
        std::pair{fe::AttentionImplementation_t::COMPOSITE, "composite"}}) {
    std::string why;
    try {
      why = TryBuild(key, handle, implementation, built.get());
    } catch (const std::exception& e) {
      why = absl::StrCat("cudnn-frontend threw: ", e.what());
    }
    if (why.empty()) {
      built->supported = true;
      break;
    }
    absl::StrAppend(&reasons, reasons.empty() ? "" : "; ", name, " SDPA: ", why);
  }
  if (!built->supported) {
    built->graph.reset();
    built->reason = reasons;
    return built;
  }
  built->clear_empty_rows = key.has_kv_lengths || key.has_bias || HasEmptyRowAtFullLength(key);
  return built;
}

// The cached graph of (problem, handle), built on first use.
absl::StatusOr<std::shared_ptr<BuiltGraph>> Graph(const AttentionProblem& problem, void* handle) {
  if (handle == nullptr) return absl::InvalidArgumentError("the cuDNN handle is null");
  if (absl::Status s = ValidateProblem(problem, UnlimitedProblemLimits()); !s.ok()) return s;
  const GraphKey key = GraphKey::From(problem, handle);
  std::shared_ptr<GraphSlot> slot = Cache().Slot(key);
  absl::MutexLock lock(&slot->mu);
  if (slot->built) {
    Cache().CountHit();
    return slot->graph;
  }
  slot->graph = Build(key, static_cast<cudnnHandle_t>(handle));
  slot->built = true;
  Cache().CountBuild();
  // A failed build may leave a CUDA error behind; it must not surface in a later, unrelated call.
  cudaGetLastError();
  return slot->graph;
}

// Workspace: [seq_len_q int32 [B]][seq_len_kv int32 [B]] with the padding mask, [stats f32
// [B, Hq, Mq]] when cuDNN writes stats nobody asked for, then cuDNN's own; each part aligned.
struct WorkspaceLayout {
  int64_t seq_q = -1;  // byte offsets, -1 when absent
  int64_t seq_kv = -1;
  int64_t stats = -1;
  int64_t cudnn = 0;
  int64_t total = 0;

  static WorkspaceLayout For(const BuiltGraph& g, const AttentionProblem& p) {
    WorkspaceLayout w;
    int64_t at = 0;
    if (g.padding) {
      w.seq_q = at;
      at += AlignUp(p.batch * static_cast<int64_t>(sizeof(int32_t)));
      w.seq_kv = at;
      at += AlignUp(p.batch * static_cast<int64_t>(sizeof(int32_t)));
    }
    if (g.stats && !p.return_lse) {
      w.stats = at;
      at += AlignUp(p.lse_elements() * static_cast<int64_t>(sizeof(float)));
    }
    w.cudnn = at;
    w.total = at + AlignUp(g.cudnn_workspace);
    return w;
  }
};

absl::Status Unsupported(const AttentionProblem& problem, const BuiltGraph& g) {
  return absl::InvalidArgumentError(
      absl::StrCat("cuDNN does not support ", problem.DebugString(), ": ", g.reason));
}

absl::Status CheckTensors(const AttentionProblem& p, const AttentionTensors& t) {
  std::vector<std::pair<const char*, const void*>> tensors = {
      {"q", t.q}, {"k", t.k}, {"v", t.v}, {"out", t.out}};
  if (p.has_bias) tensors.emplace_back("bias", t.bias);
  if (p.return_lse) tensors.emplace_back("lse", t.lse);
  for (const auto& [name, ptr] : tensors) {
    if (ptr == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("tensors.", name, " must be set"));
    }
    if (reinterpret_cast<uintptr_t>(ptr) % kTensorAlign != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("cudnn needs 16-byte aligned tensors; tensors.", name, " is not"));
    }
  }
  if (p.has_kv_lengths && t.kv_lengths == nullptr) {
    return absl::InvalidArgumentError("problem.has_kv_lengths but tensors.kv_lengths is null");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CreateCudnnHandle(void* stream, void** handle) {
  if (handle == nullptr) return absl::InvalidArgumentError("handle is null");
  cudnnHandle_t h = nullptr;
  ATTND_CUDNN_CHECK(cudnnCreate(&h));
  const cudnnStatus_t status = cudnnSetStream(h, static_cast<cudaStream_t>(stream));
  if (status != CUDNN_STATUS_SUCCESS) {
    cudnnDestroy(h);
    return absl::InternalError(absl::StrCat("cudnnSetStream failed at ", __FILE__, ":", __LINE__,
                                            ": ", cudnnGetErrorString(status)));
  }
  *handle = h;
  return absl::OkStatus();
}

void DestroyCudnnHandle(void* handle) {
  if (handle == nullptr) return;
  Cache().DropHandle(handle);
  cudnnDestroy(static_cast<cudnnHandle_t>(handle));
}

absl::StatusOr<bool> CudnnSupports(const AttentionProblem& problem, void* cudnn_handle,
                                   std::string* reason) {
  absl::StatusOr<std::shared_ptr<BuiltGraph>> graph = Graph(problem, cudnn_handle);
  if (!graph.ok()) return graph.status();
  if (reason != nullptr) *reason = (*graph)->reason;
  return (*graph)->supported;
}

absl::StatusOr<int64_t> CudnnWorkspaceBytes(const AttentionProblem& problem, void* cudnn_handle) {
  absl::StatusOr<std::shared_ptr<BuiltGraph>> graph = Graph(problem, cudnn_handle);
  if (!graph.ok()) return graph.status();
  if (!(*graph)->supported) return Unsupported(problem, **graph);
  return WorkspaceLayout::For(**graph, problem).total;
}

absl::Status RunCudnn(const Plan& plan, const AttentionProblem& problem,
                      const AttentionTensors& tensors, void* workspace, int64_t workspace_bytes,
                      const CudaContext& context) {
  if (plan.variant != Variant::kCudnn) {
    return absl::InvalidArgumentError(
        absl::StrCat("RunCudnn runs variant cudnn, not ", std::string(VariantName(plan.variant))));
  }
  if (context.cudnn == nullptr) {
    return absl::FailedPreconditionError("the CUDA context has no cuDNN handle");
  }
  if (absl::Status s = CheckTensors(problem, tensors); !s.ok()) return s;
  absl::StatusOr<std::shared_ptr<BuiltGraph>> graph_or = Graph(problem, context.cudnn);
  if (!graph_or.ok()) return graph_or.status();
  BuiltGraph& g = **graph_or;
  if (!g.supported) return Unsupported(problem, g);
  const WorkspaceLayout layout = WorkspaceLayout::For(g, problem);
  const int64_t needed = layout.total;
  if (workspace_bytes < needed || (needed > 0 && workspace == nullptr)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cudnn needs ", needed, " workspace bytes but was given ", workspace_bytes));
  }

  auto* handle = static_cast<cudnnHandle_t>(context.cudnn);
  ATTND_CUDNN_CHECK(cudnnSetStream(handle, static_cast<cudaStream_t>(context.stream)));
  char* base = static_cast<char*>(workspace);
  std::unordered_map<int64_t, void*> pack = {
      {kUidQ, const_cast<void*>(tensors.q)},
      {kUidK, const_cast<void*>(tensors.k)},
      {kUidV, const_cast<void*>(tensors.v)},
      {kUidO, tensors.out},
  };
  if (problem.has_bias) pack[kUidBias] = const_cast<void*>(tensors.bias);
  float* stats = nullptr;
  if (g.stats) {
    stats = problem.return_lse ? tensors.lse : reinterpret_cast<float*>(base + layout.stats);
    pack[kUidStats] = stats;
  }
  if (g.padding) {
    auto* seq_q = reinterpret_cast<int32_t*>(base + layout.seq_q);
    auto* seq_kv = reinterpret_cast<int32_t*>(base + layout.seq_kv);
    if (absl::Status s = cudnn_internal::LaunchSequenceLengths(
            problem.has_kv_lengths ? tensors.kv_lengths : nullptr, problem.batch, problem.q_len,
            problem.kv_len, seq_q, seq_kv, context.stream);
        !s.ok()) {
      return s;
    }
    pack[kUidSeqQ] = seq_q;
    pack[kUidSeqKv] = seq_kv;
  }
  {
    absl::MutexLock lock(&g.run_mu);
    fe::error_t e =
        g.graph->execute(handle, pack, g.cudnn_workspace > 0 ? base + layout.cudnn : nullptr);
    if (e.is_bad()) {
      return absl::InternalError(absl::StrCat(Describe("cudnn-frontend Graph::execute", e), " at ",
                                              __FILE__, ":", __LINE__));
    }
  }
  if (g.clear_empty_rows) {
    return cudnn_internal::LaunchClearEmptyRows(
        problem, tensors.kv_lengths, problem.has_bias ? stats : nullptr, tensors.out,
        problem.return_lse ? tensors.lse : nullptr, context.stream);
  }
  return absl::OkStatus();
}

CudnnGraphCacheStats GetCudnnGraphCacheStats() { return Cache().Stats(); }

}  // namespace attnd::kernels::cuda
