// The planner: a pure function from (problem, device capabilities, live memory budget, config)
// to a Plan. Same inputs, same plan; it allocates nothing and reads no clock or device.
#ifndef ATTND_KERNELS_PLANNER_H_
#define ATTND_KERNELS_PLANNER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/problem.h"

namespace attnd::kernels {

// What the device that will run the plan offers.
struct Capabilities {
  bool is_cuda = false;
  std::vector<Variant> variants;  // runnable here, e.g. {kCpuChunked, kReference} on the CPU
  int threads = 1;                // CPU worker threads a plan may use
};

// From config (server `planner` section) and the request's expert overrides.
struct PlannerConfig {
  Variant forced_variant = Variant::kAuto;  // request hint; kAuto lets the planner choose
  int64_t q_chunk_override = 0;             // 0 = planner's choice
  int64_t kv_chunk_override = 0;
  int64_t min_q_chunk = 16;       // below these the budget is too small: RESOURCE_EXHAUSTED
  int64_t min_kv_chunk = 16;
  // The largest tiles. cpu_chunked starts from its own cache-sized tile below these; the GPU
  // variants from these (query slices of masked problems from 1024 rows, see planner.cc). Key
  // tiles above 8192 columns leave the row kernels' register-cached path (a second score read).
  int64_t max_q_chunk = 8192;
  int64_t max_kv_chunk = 4096;
};

struct Plan {
  Variant variant = Variant::kAuto;
  int64_t q_chunk = 0;   // query rows per tile, in [1, Mq]
  int64_t kv_chunk = 0;  // key rows per tile, in [1, Mk]
  int64_t workspace_bytes = 0;  // what Run needs beyond the problem's own tensors
  int threads = 1;
  std::string reason;  // one line: why this variant and these chunks
};

// Workspace bytes `variant` needs for `problem` with the given chunks (all threads included).
int64_t WorkspaceBytes(const AttentionProblem& problem, Variant variant, int64_t q_chunk,
                       int64_t kv_chunk, int threads);

// Picks the fastest runnable variant whose workspace fits `budget_bytes`, with the largest
// chunks that fit. RESOURCE_EXHAUSTED when even the minimum chunks do not fit;
// INVALID_ARGUMENT when a forced variant cannot run here.
absl::StatusOr<Plan> MakePlan(const AttentionProblem& problem, const Capabilities& caps,
                              int64_t budget_bytes, const PlannerConfig& config);

}  // namespace attnd::kernels

#endif  // ATTND_KERNELS_PLANNER_H_
