// Helpers for the kernels tests: the cases of a test matrix (problem, kv_lengths, chunk overrides,
// readable names), random tensors in any dtype, and comparison with the float64 reference under a
// tolerance tied to the dtype.
#ifndef ATTND_TESTS_KERNELS_TEST_UTIL_H_
#define ATTND_TESTS_KERNELS_TEST_UTIL_H_

#include <cstdint>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu_attention.h"
#include "kernels/problem.h"

namespace attnd::kernels::testing {

// One case of a kernel test matrix. Test files that need more per case (threads, an expected
// answer, ...) derive their case struct from this one.
struct ProblemCase {
  AttentionProblem problem;
  std::vector<int64_t> kv_lengths;  // [B] when problem.has_kv_lengths
  std::vector<int64_t> q_offsets;   // [B + 1] when problem.ragged (SetRagged)
  std::vector<int64_t> kv_offsets;  // [B + 1] when problem.ragged
  int64_t neg_inf_bias_row = -1;    // >= 0: that query row's bias is -inf (it sees no key)
  int64_t q_chunk = 0;              // chunk overrides, 0 = the test's default
  int64_t kv_chunk = 0;
};

// A problem of `dtype` with batch B, Mq query and Mk key rows, Hq query and Hkv key/value heads,
// head dims D (Q, K) and Dv (V); scale 1/sqrt(D), the LSE returned, every other option off.
AttentionProblem BaseProblem(DType dtype, int64_t batch, int64_t q_len, int64_t kv_len,
                             int64_t q_heads, int64_t kv_heads, int64_t d, int64_t dv);

// A case (ProblemCase or a struct derived from it) holding BaseProblem(...).
template <typename CaseT = ProblemCase>
CaseT BaseCase(DType dtype, int64_t batch, int64_t q_len, int64_t kv_len, int64_t q_heads,
               int64_t kv_heads, int64_t d, int64_t dv) {
  CaseT c;
  c.problem = BaseProblem(dtype, batch, q_len, kv_len, q_heads, kv_heads, d, dv);
  return c;
}

// Gives the case's problem a bias in `dtype` of shape [b, h, m, n] (1 = broadcast).
void SetBias(ProblemCase* c, DType dtype, int64_t b, int64_t h, int64_t m, int64_t n);

// Makes the case's problem ragged: sequence b has q_lens[b] queries and kv_lens[b] keys (0
// allowed), packed in order. Sets B, the bounds q_len and kv_len (the longest, at least 1), the
// totals and the offsets. Set a bias afterwards: its full sizes are the bounds.
void SetRagged(ProblemCase* c, const std::vector<int64_t>& q_lens,
               const std::vector<int64_t>& kv_lens);

// A readable name, usable as a gtest parameter name, e.g.
// "f16_BMHK_B2_Mq97_Mk161_H2x2_D64_Dv64_causalBR_kvlen_161_1_bias1x1x97x161f32_lse_q7kv13":
// dtype, layout and sizes, then only the options that are on.
std::string CaseName(const ProblemCase& c);
// gtest prints a failing parameter with this instead of its bytes.
void PrintTo(const ProblemCase& c, std::ostream* os);

// A problem's tensors, owned: bytes in the problem's dtypes.
struct OwnedTensors {
  std::vector<unsigned char> q, k, v, bias, out;
  std::vector<int64_t> kv_lengths;
  std::vector<int64_t> q_offsets, kv_offsets;
  std::vector<float> lse;

  AttentionTensors View();
};

// Normal(0, 1) values, resampled away from 0 (|x| >= 1e-3): inputs are never zeros.
std::vector<float> RandomValues(int64_t n, std::mt19937* rng);
// n random values stored as `dtype` (rounded to nearest even).
std::vector<unsigned char> RandomBytes(int64_t n, DType dtype, std::mt19937* rng);

// Fills q, k, v (and bias when problem.has_bias) with random data and sizes out and lse. Out is
// pre-filled with NaN so that an unwritten element fails the comparison.
OwnedTensors MakeTensors(const AttentionProblem& problem, std::mt19937* rng);

// Absolute and relative tolerance of a kernel's output against the float64 reference computed on
// the same (already quantised) inputs. The kernels compute in f32 and round the output to the
// dtype once, so the error is f32 arithmetic (~1e-6 relative on these sizes) plus one rounding
// to the output dtype (half an ulp: 2^-24 f32, 2^-11 f16, 2^-8 bf16 relative). We allow about
// 2x the output rounding, as FlashAttention's tests allow twice a same-precision reference:
//   f32  atol 2e-5, rtol 2e-5
//   f16  atol 1e-3, rtol 2e-3  (|out| ~ 1: 3e-3 total, half-ulp 4.9e-4)
//   bf16 atol 8e-3, rtol 8e-3  (|out| ~ 1: 1.6e-2 total, half-ulp 3.9e-3)
struct Tolerance {
  double atol;
  double rtol;
};
Tolerance ToleranceFor(DType dtype);

// Compares out (in the problem's dtype) and, with return_lse, the LSE with the reference over
// query rows [row_begin, row_end) of every (b, h) (of each sequence, when ragged: then
// tensors.q_offsets and kv_offsets say where they lie). Returns "" when all match, else a
// description of the mismatches (count, worst, first few).
std::string CompareWithReference(const AttentionProblem& problem, const OwnedTensors& tensors,
                                 const ReferenceResult& reference, int64_t row_begin = 0,
                                 int64_t row_end = -1);

}  // namespace attnd::kernels::testing

#endif  // ATTND_TESTS_KERNELS_TEST_UTIL_H_
