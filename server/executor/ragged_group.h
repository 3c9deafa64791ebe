// Which entries of a batch can share one ragged (sequence-offset) launch, and the packed problem
// they make: pure host code, no device, so the CPU executor uses it now and a GPU executor can
// pack into its staging with the same offsets later.
//
// A dense entry e is B_e sequences of Mq_e queries and Mk_e keys. Packed end to end with the
// other members (kernels/problem.h, ragged form), its sequences are B_e consecutive sequences of
// the launch, and since they are all of one length its rows fill one contiguous region of each
// packed tensor in its own dense (BMHK) layout:
//   q    rows [q_row, q_row + B_e·Mq_e)      of [total_q, Hq, D]
//   k, v rows [kv_row, kv_row + B_e·Mk_e)    of [total_kv, Hkv, D] and [total_kv, Hkv, Dv]
//   out  rows [q_row, q_row + B_e·Mq_e)      of [total_q, Hq, Dv]
//   lse  elements [Hq·q_row, Hq·(q_row + B_e·Mq_e)) (its [B_e, Hq, Mq_e])
// so packing is one memcpy per tensor per member, and unpacking one per output.
//
// A bias is the one tensor that is padded: the kernels read a ragged problem's bias as
// [B, bH, bMq, bMk] broadcast to the padded [B, Hq, q_len, kv_len] (problem.h), so each member's
// sequences get a region of the launch's bounds, its own rows and keys at the start of it:
//   launch bias [B, bH, bMq, bMk]: bB = B (one block per sequence); bH = Hq, bMq = q_len and
//   bMk = kv_len where some member's bias is not broadcast along that axis, else 1.
//   sequence s = first_sequence + b of a member: block s, rows [0, Mq_e), keys [0, Mk_e) hold
//   the member's bias broadcast to them; the rest of the block is 0 and read by no one.
// Members share the bias dtype (or all have none). The padding costs memory in proportion to
// how unequal the lengths are, so a member joins a group only while the launch's padded bias
// stays within max_bias_padding times the members' unpadded bias (RaggedGroupPolicy).
//
// Worked example (f32, Hq = Hkv = 2, D = Dv = 4, LSE on; bytes per row: q, k, v, out 2·4·4 = 32,
// lse 2·4 = 8): entries A (B 1, Mq 3, Mk 5) and B (B 2, Mq 2, Mk 7) make B = 3 sequences,
//   q_offsets  [0, 3, 5, 7]    kv_offsets [0, 5, 12, 19]    q_len 3, kv_len 7, totals 7 and 19
//   A: q_row 0, kv_row 0;  B: q_row 3, kv_row 5
//   B's byte offsets: q and out 3·32 = 96, k and v 5·32 = 160, lse 3·8 = 24
//   B's byte counts:  q and out 4·32 = 128, k and v 14·32 = 448, lse 4·8 = 32
// (RaggedGroupTest.WorkedExampleFromTheHeader checks exactly this.)
#ifndef ATTND_SERVER_EXECUTOR_RAGGED_GROUP_H_
#define ATTND_SERVER_EXECUTOR_RAGGED_GROUP_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "kernels/planner.h"
#include "kernels/problem.h"
#include "server/executor/executor.h"

namespace attnd::server::executor {

inline constexpr int64_t kNoRaggedCap = std::numeric_limits<int64_t>::max() / 4;

// What a device's ragged launch takes, and how large one may grow.
struct RaggedGroupPolicy {
  // The plan variants whose kernels take ragged problems on this device (the CPU: cpu_chunked;
  // the reference takes them too, but a request that asked for it asked for that oracle alone).
  std::vector<kernels::Variant> variants;
  // The packed q, k, v, out and lse of one launch together (the copies it makes beside the
  // requests' own bytes).
  int64_t max_packed_bytes = kNoRaggedCap;
  // Σ B_e·max(Mq_e, Mk_e) of one launch: the batcher's token count (scheduler.max_batch_tokens),
  // which a batch already keeps to; checked again here so the grouping does not depend on it.
  int64_t max_tokens = kNoRaggedCap;
  // The launch's padded bias at most this many times Σ over members of the bias their own
  // sequences need in the launch's layout (B_e·bH·(Mq_e or 1)·(Mk_e or 1) elements): lengths
  // far apart make separate launches rather than a bias mostly of padding.
  double max_bias_padding = 2.0;
};

// "" when `entry` may join a ragged launch under `policy`, else why not: already ragged, BHMK,
// kv_lengths, chunks the request fixed, or a plan variant outside policy.variants.
std::string WhyNotPackable(const BatchEntry& entry, const RaggedGroupPolicy& policy);

// Whether two packable problems can be one launch: equal in everything a launch shares (dtype,
// heads, head dims, scale, causal, window, return_lse, whether there is a bias and its dtype).
// The batcher's BatchKey groups by most of these already; this checks again rather than rely
// on it.
bool SameLaunch(const kernels::AttentionProblem& a, const kernels::AttentionProblem& b);

// The bytes an entry adds to a launch's packed q, k, v, out and lse (not the bias, whose padded
// size depends on the whole launch: LaunchBiasShape), and the tokens it counts.
int64_t PackedBytes(const kernels::AttentionProblem& problem);
int64_t LaunchTokens(const kernels::AttentionProblem& problem);

// Which axes of the launch's bias are not broadcast (see the top of this file): head, query,
// key. Combined over members with |=.
struct BiasAxes {
  bool head = false, query = false, key = false;
  static BiasAxes Of(const kernels::AttentionProblem& problem);
  BiasAxes& operator|=(const BiasAxes& other);
  // [B, bH, bMq, bMk] of a launch of `batch` sequences, bounds q_len and kv_len.
  void Shape(int64_t batch, int64_t q_heads, int64_t q_len, int64_t kv_len,
             int64_t shape[4]) const;
  // Elements of the bias of B sequences of q_len × kv_len in this layout, unpadded.
  int64_t Elements(int64_t batch, int64_t q_heads, int64_t q_len, int64_t kv_len) const;
};

// The launches worth making: each a list of at least 2 entry indices, ascending, of packable
// entries that SameLaunch pairwise and within the policy's caps. Greedy in entry order: an entry
// joins the first group it fits, else opens one. Entries in no list run alone.
std::vector<std::vector<size_t>> ChooseRaggedGroups(absl::Span<const BatchEntry> entries,
                                                    const RaggedGroupPolicy& policy);

// One entry's place in a launch. Byte offsets are into the packed buffers; byte counts are its
// own dense tensors' sizes (the length of its region in each).
struct RaggedMember {
  size_t entry = 0;            // index into the batch's entries
  int64_t first_sequence = 0;  // its first sequence in the launch
  int64_t q_row = 0;           // its first row of packed q and out: q_offsets[first_sequence]
  int64_t kv_row = 0;          // its first row of packed k and v: kv_offsets[first_sequence]
  int64_t q_offset_bytes = 0, k_offset_bytes = 0, v_offset_bytes = 0;
  int64_t out_offset_bytes = 0, lse_offset_bytes = 0;
  int64_t q_bytes = 0, k_bytes = 0, v_bytes = 0, out_bytes = 0, lse_bytes = 0;
};

// One ragged launch: the packed problem, its offsets and where each member lies.
struct RaggedLaunch {
  kernels::AttentionProblem problem;  // ragged, BMHK: B = Σ B_e, q_len/kv_len the longest
  std::vector<int64_t> q_offsets;     // [B + 1]
  std::vector<int64_t> kv_offsets;    // [B + 1]
  std::vector<RaggedMember> members;  // in the order given
  // The packed tensors' sizes (lse 0 without return_lse, bias 0 without a bias).
  int64_t q_bytes = 0, k_bytes = 0, v_bytes = 0, out_bytes = 0, lse_bytes = 0, bias_bytes = 0;

  int64_t packed_bytes() const {
    return q_bytes + k_bytes + v_bytes + out_bytes + lse_bytes + bias_bytes;
  }
};

// The launch of `members` (indices into `entries`, at least 1, packable and SameLaunch: the
// caller chose them with ChooseRaggedGroups, perhaps less some that may no longer run).
RaggedLaunch BuildRaggedLaunch(absl::Span<const BatchEntry> entries,
                               absl::Span<const size_t> members);

// Copies each member's q, k and v (its entry's tensors, on the host) into the packed buffers
// (launch.q_bytes, k_bytes and v_bytes long, host memory), and with a bias, each member's bias
// broadcast into its sequences' blocks of `bias` (launch.bias_bytes long, zeroed by the caller
// where the padding should read 0; the kernels never read it).
void PackInputs(const RaggedLaunch& launch, absl::Span<const BatchEntry> entries, void* q, void* k,
                void* v, void* bias = nullptr);

// Copies each member's region of the packed out (and lse, when the problem returns it) into its
// entry's tensors.out (and tensors.lse).
void UnpackOutputs(const RaggedLaunch& launch, absl::Span<const BatchEntry> entries,
                   const void* out, const float* lse);

}  // namespace attnd::server::executor

#endif  // ATTND_SERVER_EXECUTOR_RAGGED_GROUP_H_
