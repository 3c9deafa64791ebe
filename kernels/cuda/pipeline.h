// The cuBLAS variants as sequences of steps (kernels/cuda/steps.h), independent of who runs
// them: RunCuda hands them to the CUDA runner, the tests also to a CPU emulation.
//
//   naive    one slice: all Mq query rows against the keys they can see
//   sliced   slices of plan.q_chunk query rows:   S = scale·Q·Kᵀ -> softmax -> O = P·V
//   chunked  per slice, key tiles of plan.kv_chunk: S tile -> merge (m, l, acc) -> acc += P·V,
//            then O = acc / l and the LSE
// Every slice first narrows its keys to those some row of it can see (KeyBound): causal and
// windowed problems skip the hidden tiles.
#ifndef ATTND_KERNELS_CUDA_PIPELINE_H_
#define ATTND_KERNELS_CUDA_PIPELINE_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "kernels/cuda/steps.h"
#include "kernels/mask.h"
#include "kernels/planner.h"
#include "kernels/problem.h"

namespace attnd::kernels::cuda {

// Executes steps in order (CUDA: enqueued on one stream). Each returns an error only for a
// failure to launch; the steps' own preconditions hold by construction.
class StepRunner {
 public:
  virtual ~StepRunner() = default;
  virtual absl::Status Gemm(const GemmStep& step) = 0;
  virtual absl::Status Softmax(const SoftmaxStep& step) = 0;
  virtual absl::Status Merge(const MergeStep& step) = 0;
  virtual absl::Status Finalize(const FinalizeStep& step) = 0;
};

// Keys [lo, hi) that cover every key visible to query rows [q0, q1) of every batch element,
// from the mask alone (kv_lengths live on the device: with them, only what holds for every
// length in [0, Mk] is used). Empty when no row of the slice can see a key.
KeyRange KeyBound(const AttentionProblem& problem, int64_t q0, int64_t q1);

// Runs plan.variant (kNaive, kSliced or kChunked) as steps on `lanes`: query slice n on lane
// n % lanes.size(), which must be between 1 and the plan's CudaLanesUsed. Lanes may run
// concurrently (CUDA: one stream each); each uses its own share of the workspace, laid out by
// CudaWorkspaceLayout (kernels/cuda/workspace_layout.h) for lanes.size() lanes, which must hold
// its bytes. The caller has checked the problem, the tensors and the plan's chunks.
absl::Status RunSteps(const Plan& plan, const AttentionProblem& problem,
                      const AttentionTensors& tensors, void* workspace,
                      absl::Span<StepRunner* const> lanes);

// The bytes the chunked plan must move through device memory, for the benchmark's bound. Per key
// tile of r query rows and c keys (Z = B·Hq, Zkv = B·Hkv, e = dtype bytes):
//   Z·r·c·(4 + 4)      scores written by the first GEMM and read by the merge
//   Z·r·c·(e + e)      P written by the merge and read by the second GEMM
//   Z·r·D·e            the Q slice, read by the first GEMM
//   Zkv·c·(D + Dv)·e   the K and V tiles (each kv head once)
//   Z·r·Dv·4·(1 or 2)  the accumulator: written by the first tile's GEMM, read and written after
//   Z·r·c·eb           the bias, read by the merge once per score it adds to (eb = bias dtype
//                      bytes; a broadcast bias is read again for every score it reaches, as the
//                      merge does, so this counts the merge's reads, not the bias tensor's size)
// plus, per slice, Z·r·Dv·(4 + e) to finalise. The occasional accumulator rescale of the merge
// (only where a row's max grows) is left out.
double ChunkedTrafficBytes(const AttentionProblem& problem, const Plan& plan);

}  // namespace attnd::kernels::cuda

#endif  // ATTND_KERNELS_CUDA_PIPELINE_H_
