// The test matrix of the cuBLAS variants, shared by the GPU test (real sizes: head dims 59, 111,
// 64, 128, 256, 512; lengths 1, 97, 1025) and the CPU emulation test (the same options on tiny
// sizes, so it runs on every machine). Each case runs every variant: naive, sliced over several
// query slices, chunked with the planner's chunks and chunked with small ragged tiles.
#ifndef ATTND_TESTS_GPU_GPU_CASES_H_
#define ATTND_TESTS_GPU_GPU_CASES_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/cpu_attention.h"
#include "kernels/planner.h"
#include "kernels/problem.h"
#include "tests/kernels/test_util.h"

namespace attnd::kernels::testing {

// A case of the matrix: the problem, kv_lengths, the -inf bias row, and chunk overrides for the
// small-tile runs (0 = the matrix's default). CaseName and PrintTo come from test_util.h.
using GpuCase = ProblemCase;

// Sizes of a matrix: the "size" cases cross head dims with length pairs; the option cases use
// `small_q` × `small_kv` (and swapped) with head dim `option_dim`.
struct MatrixSizes {
  std::vector<int64_t> head_dims;
  std::vector<std::pair<int64_t, int64_t>> lengths;
  std::vector<std::pair<int64_t, int64_t>> dim_pairs;  // (D, Dv) with D != Dv
  int64_t small_q = 0;
  int64_t small_kv = 0;
  int64_t option_dim = 0;
  int64_t odd_dim = 0;  // odd head dim for the GQA cases
  int64_t tile_q = 0;   // default small tiles of the chunked and sliced runs
  int64_t tile_kv = 0;
  bool large = false;             // add the long cases (1025 × 1025, 2048 × 2048)
  bool sixteen_bit_only = false;  // f16 and bf16 cases only
};
MatrixSizes GpuSizes();
// The fused kernel's padded head dims and the dims between them (multiples of 8 up to 256).
MatrixSizes FusedSizes();
// The wide fused kernel's head dims (above 256, 16-bit only).
MatrixSizes WideSizes();
MatrixSizes EmulationSizes();
std::vector<GpuCase> MakeMatrix(const MatrixSizes& sizes);
// f16 and bf16 cases for the fused kernel's bias tiles: every broadcast at each tile shape, rows
// that start anywhere in a 16-byte piece (odd Mk, a window), kv_lengths, a -inf row, negative
// and sharp scales, GQA, many blocks.
std::vector<GpuCase> BiasTileCases();

// One run of a case: a variant and its chunk overrides (0 = planner's choice). RunsFor gives
// the cuBLAS variants' runs (the ones the CPU emulation also has); the GPU test adds fused where
// FusedRefusal (kernels/fused_support.h) takes the case.
struct VariantRun {
  Variant variant = Variant::kNaive;
  int64_t q_chunk = 0;
  int64_t kv_chunk = 0;
  std::string label;
};
std::vector<VariantRun> RunsFor(const GpuCase& c, const MatrixSizes& sizes);

// The plan of a run, as the server would make it (forced variant, overrides, 16 GiB budget).
absl::StatusOr<Plan> PlanFor(const AttentionProblem& p, const VariantRun& run);

// Random inputs for the case (seeded by its name), kv_lengths and the -inf bias row applied.
OwnedTensors MakeCaseTensors(const GpuCase& c);

// The float64 reference, its query rows split over the machine's cores.
ReferenceResult ParallelReference(const AttentionProblem& p, const AttentionTensors& t);

// "" when the fully masked row of the case (if any) is exactly 0 with LSE -inf.
std::string CheckNegInfRow(const GpuCase& c, const OwnedTensors& got);

}  // namespace attnd::kernels::testing

#endif  // ATTND_TESTS_GPU_GPU_CASES_H_
