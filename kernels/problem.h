// The attention problem: plain types shared by every variant, the planner and the server.
// Nothing here knows about gRPC, protobuf or CUDA.
//
//   O = softmax(Q·Kᵀ·scale + bias + mask)·V
//
// Shapes (BMHK, the default layout; BHMK swaps the two middle axes of q, k, v and out):
//   q    [B, Mq, Hq, D]
//   k    [B, Mk, Hkv, D]
//   v    [B, Mk, Hkv, Dv]
//   out  [B, Mq, Hq, Dv]    dtype of q
//   lse  [B, Hq, Mq]        f32; -inf for a row that sees no key (its output row is 0)
//   bias [bB, bH, bMq, bMk] each 1 or the full size: broadcast to [B, Hq, Mq, Mk]
// Query head h reads key/value head h / (Hq / Hkv).
//
// Ragged ("variable-length", FlashAttention's cu_seqlens, cuDNN's ragged offsets): B sequences
// of different lengths packed end to end, BMHK only ("THD"):
//   q    [total_q, Hq, D]     sequence b owns rows [q_offsets[b], q_offsets[b+1]): Mq_b rows
//   k    [total_kv, Hkv, D]   and rows [kv_offsets[b], kv_offsets[b+1]): Mk_b keys
//   v    [total_kv, Hkv, Dv]
//   out  [total_q, Hq, Dv]    dtype of q
//   lse  Hq·total_q f32: sequence b's [Hq, Mq_b] block (head-major, then row) starts at element
//        Hq·q_offsets[b]. So B_e equal sequences packed at offset o fill one contiguous
//        [B_e, Hq, Mq] region of lse (and [B_e, Mq, Hq, Dv] of out): their dense layout.
//   bias [bB, bH, bMq, bMk] as dense, broadcast to the padded [B, Hq, q_len, kv_len]: row i
//        (0-based within its sequence) and key j of sequence b read bias[b, h, i, j].
// q_offsets and kv_offsets are [B + 1] int64, 0 first, non-decreasing, total last
// (ValidateSequenceOffsets). Mq_b = 0 writes nothing; Mk_b = 0 gives rows of 0 with LSE -inf,
// as any row that sees no key. q_len and kv_len are upper bounds of Mq_b and Mk_b (FA's
// max_seqlen); everything per sequence uses Mq_b and Mk_b: the mask of sequence b is the dense
// mask of a problem with Mq = Mq_b and Mk = Mk_b (kernels/mask.h). kv_lengths is refused with
// offsets: a sequence's key count is its length.
#ifndef ATTND_KERNELS_PROBLEM_H_
#define ATTND_KERNELS_PROBLEM_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace attnd::kernels {

enum class DType { kF32, kF16, kBF16 };
enum class Layout { kBMHK, kBHMK };
// kTopLeft: query i sees keys j <= i. kBottomRight: j <= i + (Mk_b - Mq), Mk_b = kv length of b
// (ragged: j <= i + (Mk_b - Mq_b), both lengths of sequence b).
enum class Causal { kNone, kTopLeft, kBottomRight };
enum class Variant { kAuto, kReference, kCpuChunked, kNaive, kSliced, kChunked, kCudnn, kFused };

size_t DTypeSize(DType dtype);
std::string_view DTypeName(DType dtype);      // "f32", "f16", "bf16"
std::string_view VariantName(Variant variant);  // "cpu_chunked", ...
std::string_view CausalName(Causal causal);     // "none", "top-left", "bottom-right"
bool ParseDType(std::string_view name, DType* dtype);
bool ParseVariant(std::string_view name, Variant* variant);
// The remaining names and parsers (case-insensitive; ParseCausal also takes
// "top_left"/"bottom_right", ParseDType also "float32"/"float16"/"bfloat16").
std::string_view LayoutName(Layout layout);  // "BMHK", "BHMK"
bool ParseCausal(std::string_view name, Causal* causal);
bool ParseLayout(std::string_view name, Layout* layout);

// Hard limits on a problem's size, from config (server `limits` section).
struct ProblemLimits {
  int64_t max_batch = 1024;
  int64_t max_seq_len = 1 << 20;
  int64_t max_heads = 1024;
  int64_t max_head_dim = 1024;
  int64_t max_tensor_elements = int64_t{1} << 31;
  // Tokens in one request, counted per side: B × Mq query tokens and B × Mk key/value tokens
  // must each be at most this (the `total_q` and `total_k` of a variable-length batch).
  int64_t max_tokens = int64_t{1} << 24;
};

// Limits that never bind: for kernels that re-check a problem's consistency at run time.
ProblemLimits UnlimitedProblemLimits();

struct AttentionProblem {
  DType dtype = DType::kF32;  // of q, k, v and out
  Layout layout = Layout::kBMHK;
  int64_t batch = 0;     // B
  int64_t q_len = 0;     // Mq
  int64_t kv_len = 0;    // Mk
  int64_t q_heads = 0;   // Hq
  int64_t kv_heads = 0;  // Hkv, divides Hq
  int64_t head_dim = 0;  // D, of q and k
  int64_t v_head_dim = 0;  // Dv, of v and out
  double scale = 0.0;    // resolved: 1/sqrt(D) when the request left it unset
  Causal causal = Causal::kNone;
  // Sliding window around query i's aligned position i' (the causal alignment when causal is
  // set, else bottom-right): keys outside [i' - window_left, i' + window_right] are masked.
  // Negative = unbounded on that side.
  int64_t window_left = -1;
  int64_t window_right = -1;
  bool has_kv_lengths = false;  // per-batch valid key counts, B values in [0, Mk]
  bool has_bias = false;
  DType bias_dtype = DType::kF32;
  int64_t bias_shape[4] = {1, 1, 1, 1};  // [bB, bH, bMq, bMk], each 1 or the full size
  bool return_lse = false;
  // Packed sequences (see the top of this file): q_len and kv_len are then the longest
  // sequence's bounds and total_q, total_kv the packed row counts (AttentionTensors' offsets
  // say where each sequence lies). Unused when ragged is false.
  bool ragged = false;
  int64_t total_q = 0;   // rows of q and out: q_offsets[B]
  int64_t total_kv = 0;  // rows of k and v: kv_offsets[B]

  int64_t group_size() const { return q_heads / kv_heads; }
  // Rows of the sequence axis over the whole batch: B·Mq and B·Mk, or the packed totals.
  int64_t q_tokens() const { return ragged ? total_q : batch * q_len; }
  int64_t kv_tokens() const { return ragged ? total_kv : batch * kv_len; }
  // Element counts of each tensor (packed sizes when ragged).
  int64_t q_elements() const { return q_tokens() * q_heads * head_dim; }
  int64_t k_elements() const { return kv_tokens() * kv_heads * head_dim; }
  int64_t v_elements() const { return kv_tokens() * kv_heads * v_head_dim; }
  int64_t out_elements() const { return q_tokens() * q_heads * v_head_dim; }
  int64_t bias_elements() const {
    return bias_shape[0] * bias_shape[1] * bias_shape[2] * bias_shape[3];
  }
  int64_t lse_elements() const { return q_heads * q_tokens(); }
  // 2·Σ_b Hq·Mq_b·Mk_b·(D + Dv) (two GEMMs), halved for causal: for throughput figures. A ragged
  // problem does not hold its offsets, so this counts total_q·kv_len query-key pairs per head,
  // an upper bound (each row sees at most the longest sequence's keys), exact when every
  // sequence has kv_len keys; RaggedFlops below is exact.
  double Flops() const;
  std::string DebugString() const;
};

// Checks a problem's internal consistency and its limits (positive dims, Hq % Hkv == 0, bias
// dims 1 or full, window bounds, element counts that fit int64 and the limits). Messages name
// the field, the dimension and the value: "k.shape[2] (Hkv) = 3 does not divide q heads 8".
// For a ragged problem: BMHK only, no kv_lengths, total_q and total_kv >= 0, within
// limits.max_tokens and at most B·q_len and B·kv_len (else a sequence would pass its bound);
// q_len and kv_len positive (even when every sequence is empty) and within limits.max_seq_len.
// The offsets are not read here: ValidateSequenceOffsets checks them.
absl::Status ValidateProblem(const AttentionProblem& problem, const ProblemLimits& limits);

// Checks the [B + 1] offsets of a ragged problem, on the host: offsets[0] == 0, non-decreasing,
// offsets[B] == total_q (total_kv), every length at most q_len (kv_len). Messages name the array,
// the index and the value: "q_offsets[3] = 17 is less than q_offsets[2] = 20".
absl::Status ValidateSequenceOffsets(const AttentionProblem& problem, const int64_t* q_offsets,
                                     const int64_t* kv_offsets);

// Flops() with the real per-sequence pairs Σ_b Mq_b·Mk_b (offsets on the host, already valid).
double RaggedFlops(const AttentionProblem& problem, const int64_t* q_offsets,
                   const int64_t* kv_offsets);

// Pointers to the tensors of one problem, all on the same device, laid out as the problem says.
// Input pointers need no alignment beyond their element size.
struct AttentionTensors {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  const void* bias = nullptr;           // when problem.has_bias
  const int64_t* kv_lengths = nullptr;  // when problem.has_kv_lengths: [B]
  const int64_t* q_offsets = nullptr;   // when problem.ragged: [B + 1], rows of q and out
  const int64_t* kv_offsets = nullptr;  // when problem.ragged: [B + 1], rows of k and v
  void* out = nullptr;
  float* lse = nullptr;                 // when problem.return_lse
};

}  // namespace attnd::kernels

#endif  // ATTND_KERNELS_PROBLEM_H_
