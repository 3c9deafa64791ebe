#include "server/executor/ragged_runner.h"

#include <chrono>
#include <new>
#include <vector>

#include "absl/strings/str_cat.h"

namespace attnd::server::executor {

RaggedLaunchOptions RaggedLaunchOptionsFor(const Config& config) {
  RaggedLaunchOptions options;
  options.ragged_launch = config.scheduler.ragged_launch;
  options.planner = config.planner;
  options.max_batch_tokens = config.scheduler.max_batch_tokens;
  return options;
}

void RunRaggedGroup(absl::Span<const BatchEntry> entries, absl::Span<const size_t> group,
                    BatchCallbacks* callbacks, const RaggedLaunchSteps& steps) {
  // Refused members are dropped before packing: they are never launched nor written.
  std::vector<size_t> members;
  for (size_t i : group) {
    if (callbacks->Admit(i).ok()) members.push_back(i);
  }
  auto run_alone = [&] {
    for (size_t i : members) steps.run_alone(i);
  };
  if (members.size() < 2) {
    run_alone();
    return;
  }

  const auto start = std::chrono::steady_clock::now();
  const RaggedLaunch launch = BuildRaggedLaunch(entries, members);
  // The launch's budget is what its members' own plans were given to use: their workspaces.
  int64_t budget = 0;
  for (size_t i : members) budget += entries[i].plan->workspace_bytes;
  absl::StatusOr<kernels::Plan> plan = steps.plan(launch.problem, budget);
  if (!plan.ok()) {  // the members' workspaces do not fit the launch's: run them as planned
    run_alone();
    return;
  }

  absl::Status status;
  std::vector<unsigned char> q, k, v, out, bias;
  std::vector<float> lse;
  try {
    q.resize(static_cast<size_t>(launch.q_bytes));
    k.resize(static_cast<size_t>(launch.k_bytes));
    v.resize(static_cast<size_t>(launch.v_bytes));
    bias.resize(static_cast<size_t>(launch.bias_bytes));  // zeroed: the padding reads 0
    out.resize(static_cast<size_t>(launch.out_bytes));
    lse.resize(static_cast<size_t>(launch.lse_bytes) / sizeof(float));
  } catch (const std::bad_alloc&) {
    // As a failed workspace allocation: the runner re-plans each member alone.
    status = absl::ResourceExhaustedError(
        absl::StrCat("could not allocate ", launch.packed_bytes(),
                     " host bytes for a ragged launch of ", members.size(), " requests"));
  }
  if (status.ok()) {
    PackInputs(launch, entries, q.data(), k.data(), v.data(), bias.data());
    kernels::AttentionTensors packed;
    packed.q = q.data();
    packed.k = k.data();
    packed.v = v.data();
    packed.bias = launch.problem.has_bias ? bias.data() : nullptr;
    packed.q_offsets = launch.q_offsets.data();
    packed.kv_offsets = launch.kv_offsets.data();
    packed.out = out.data();
    packed.lse = launch.problem.return_lse ? lse.data() : nullptr;
    status = steps.run(*plan, launch, packed);
    if (status.ok()) UnpackOutputs(launch, entries, out.data(), lse.data());
  }
  // Every member reports the shared launch's wall time (packing and unpacking included) and
  // the group's status.
  StageTimes times;
  times.compute_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  times.launch_requests = static_cast<int>(members.size());
  times.launch_plan = &*plan;
  for (size_t m = 0; m < members.size(); ++m) {
    times.first_in_launch = m == 0;
    if (steps.copies_to_device && status.ok()) {
      const RaggedMember& member = launch.members[m];
      times.host_copy_in_bytes = member.q_bytes + member.k_bytes + member.v_bytes;
      times.host_copy_out_bytes = member.out_bytes + member.lse_bytes;
    }
    callbacks->Done(members[m], status, times);
  }
}

void RunBatchInGroups(absl::Span<const BatchEntry> entries,
                      const std::vector<std::vector<size_t>>& groups, BatchCallbacks* callbacks,
                      const RaggedLaunchSteps& steps) {
  // The group an entry leads (its first member), or -1; entries in a group but not leading it
  // are answered with their group.
  std::vector<int> leads(entries.size(), -1);
  std::vector<bool> grouped(entries.size(), false);
  for (size_t g = 0; g < groups.size(); ++g) {
    leads[groups[g].front()] = static_cast<int>(g);
    for (size_t i : groups[g]) grouped[i] = true;
  }
  for (size_t i = 0; i < entries.size(); ++i) {
    if (leads[i] >= 0) {
      RunRaggedGroup(entries, groups[static_cast<size_t>(leads[i])], callbacks, steps);
    } else if (!grouped[i] && callbacks->Admit(i).ok()) {
      steps.run_alone(i);
    }
  }
}

}  // namespace attnd::server::executor
