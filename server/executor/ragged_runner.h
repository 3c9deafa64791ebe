// Running a batch's ragged launches: the part every device's executor shares. An executor
// chooses its groups (ragged_group.h: ChooseRaggedGroups) and calls RunRaggedGroup for each;
// what differs between devices (the variant that takes ragged problems, how the packed
// tensors reach it, how an entry runs alone) comes in as RaggedLaunchSteps.
//
// Per group, in order:
//   admit each member (deadline, cancellation) → drop the refused: never launched nor written
//   fewer than 2 left → each alone;   the packed problem cannot be planned → each alone
//   pack into host buffers (bias padded, zeroed) → steps.run → unpack → answer every member with
//   the launch's status and wall time (launch_requests = members, first_in_launch on the first)
#ifndef ATTND_SERVER_EXECUTOR_RAGGED_RUNNER_H_
#define ATTND_SERVER_EXECUTOR_RAGGED_RUNNER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kernels/planner.h"
#include "kernels/problem.h"
#include "server/config/config.h"
#include "server/executor/executor.h"
#include "server/executor/ragged_group.h"

namespace attnd::server::executor {

// Whether and how an executor runs a batch's compatible entries as ragged launches.
struct RaggedLaunchOptions {
  // scheduler.ragged_launch: compatible entries (ragged_group.h) run as one launch over their
  // packed sequences; false (the default): one Run per entry.
  bool ragged_launch = false;
  kernels::PlannerConfig planner;  // config.planner: the chunk bounds of a launch's plan
  int64_t max_batch_tokens = kNoRaggedCap;  // scheduler.max_batch_tokens: a launch's token cap
};

// The options from the server's config.
RaggedLaunchOptions RaggedLaunchOptionsFor(const Config& config);

// What a device does at each step of RunRaggedGroup.
struct RaggedLaunchSteps {
  // The plan of the packed problem under `budget_bytes` (the members' own plans' workspaces
  // summed: what they were given to use). An error: the members run alone, as planned.
  std::function<absl::StatusOr<kernels::Plan>(const kernels::AttentionProblem& problem,
                                              int64_t budget_bytes)>
      plan;
  // Runs `plan` on the launch's packed tensors, in host memory (outputs there when OK).
  std::function<absl::Status(const kernels::Plan& plan, const RaggedLaunch& launch,
                             const kernels::AttentionTensors& packed)>
      run;
  // Runs entry `index`, already admitted, alone and answers it.
  std::function<void(size_t index)> run_alone;
  // Whether the launch crosses to a device: each member then reports its own tensors' bytes
  // as its host copies (StageTimes::host_copy_in_bytes and host_copy_out_bytes).
  bool copies_to_device = false;
};

// Runs `group` (entry indices from ChooseRaggedGroups) as above.
void RunRaggedGroup(absl::Span<const BatchEntry> entries, absl::Span<const size_t> group,
                    BatchCallbacks* callbacks, const RaggedLaunchSteps& steps);

// Runs a whole batch in order: each of `groups` (ChooseRaggedGroups) with RunRaggedGroup at its
// first member's place, every entry in no group, once admitted, with steps.run_alone.
void RunBatchInGroups(absl::Span<const BatchEntry> entries,
                      const std::vector<std::vector<size_t>>& groups, BatchCallbacks* callbacks,
                      const RaggedLaunchSteps& steps);

}  // namespace attnd::server::executor

#endif  // ATTND_SERVER_EXECUTOR_RAGGED_RUNNER_H_
