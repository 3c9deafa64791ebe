// Checks every CPU variant makes before it runs: the problem is consistent and the tensors it
// names are there. Limits are the server's business (ValidateProblem at the boundary); these
// checks guard the kernels against a caller that skipped it.
#ifndef ATTND_KERNELS_RUN_CHECKS_H_
#define ATTND_KERNELS_RUN_CHECKS_H_

#include "absl/status/status.h"
#include "kernels/problem.h"

namespace attnd::kernels {

// INVALID_ARGUMENT for an inconsistent problem, a missing tensor, kv_lengths outside [0, Mk], or
// (ragged) sequence offsets that ValidateSequenceOffsets refuses. Both CPU variants take ragged
// problems; the planner keeps them from variants that do not (see Unsupported in planner.cc).
// `need_outputs` false skips out/lse (the reference answers into its own float64 result).
absl::Status CheckRunInputs(const AttentionProblem& problem, const AttentionTensors& tensors,
                            bool need_outputs = true);

}  // namespace attnd::kernels

#endif  // ATTND_KERNELS_RUN_CHECKS_H_
