// The fused kernels' row placement (kernels/cuda/fused/cta_rows.h) checked on the host, without a
// device: for every CTA the one-pass kernels would launch over a problem (FusedParams::For, as
// RunFused fills it), the rows it loads and stores, their packed rows, LSE elements, masks and the
// CTA's key range are computed the way the kernels compute them (fused_kernel.cuh's prologue and
// epilogue) and compared with the API's contract (kernels/problem.h, SequenceRows and
// MaskPolicy::ForSequence, which the reference uses). Ragged batches with empty sequences, one
// row, more queries than keys and the reverse, in every causal alignment and with windows, at the
// kernels' two query-block heights; dense problems with kv_lengths keep their old indexing.
#include "kernels/cuda/fused/cta_rows.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/cuda/fused/fused_params.h"
#include "kernels/mask.h"
#include "kernels/problem.h"
#include "kernels/tensor_index.h"
#include "tests/kernels/test_util.h"

namespace attnd::kernels::cuda::fused {
namespace {

struct RowsCase {
  testing::ProblemCase c;
  int block_m = 64;
};

// Emulates every CTA of one launch over `rc` and checks it; returns how often each sequence row
// (b, m) was stored, so the caller can check that each is stored exactly once.
void CheckLaunch(const RowsCase& rc) {
  const AttentionProblem& p = rc.c.problem;
  AttentionTensors t;
  if (p.ragged) {
    t.q_offsets = rc.c.q_offsets.data();
    t.kv_offsets = rc.c.kv_offsets.data();
  }
  if (p.has_kv_lengths) t.kv_lengths = rc.c.kv_lengths.data();
  const FusedParams params = FusedParams::For(p, t);
  const MaskPolicy contract_mask = MaskPolicy::FromProblem(p);
  const int64_t m_blocks = (p.q_len + rc.block_m - 1) / rc.block_m;
  for (int64_t b = 0; b < p.batch; ++b) {
    const SequenceRows want = SequenceRows::Of(p, t, b);
    const int64_t want_keys = std::clamp<int64_t>(want.kv_len, 0, p.kv_len);
    const MaskPolicy seq_mask = contract_mask.ForSequence(want.q_len, want_keys);
    std::vector<int> stored(static_cast<size_t>(want.q_len), 0);
    for (int64_t block = 0; block < m_blocks; ++block) {
      const int64_t q0 = block * rc.block_m;
      // The prologue.
      const CtaRows seq = RowsOf(params, b);
      ASSERT_EQ(seq.valid_keys, want_keys) << "b " << b;
      ASSERT_EQ(seq.kv_row0 * (p.ragged ? 1 : 0), want.kv_row0) << "b " << b;
      int64_t q_first = 0;
      int64_t q_last = 0;
      if (!CtaHoldsRows(seq, q0, rc.block_m, &q_first, &q_last)) {  // the CTA returns
        for (int64_t r = q0; r < q0 + rc.block_m; ++r) ASSERT_FALSE(seq.Has(r)) << "b " << b;
        continue;
      }
      ASSERT_TRUE(seq.Has(q_first) && seq.Has(q_last)) << "b " << b << " block " << block;
      ASSERT_TRUE(q_first == q0 || !seq.Has(q_first - 1)) << "b " << b << " block " << block;
      ASSERT_TRUE(q_last == q0 + rc.block_m - 1 || !seq.Has(q_last + 1)) << "b " << b;
      const KeyRange first_row = params.mask.Visible(q_first, seq.valid_keys);
      const KeyRange last_row = params.mask.Visible(q_last, seq.valid_keys);
      const int64_t key_lo = first_row.lo;
      const int64_t key_hi = std::max(last_row.hi, key_lo);
      const int64_t all_lo = last_row.lo;
      const int64_t all_hi = first_row.hi;
      for (int64_t r = q0; r < q0 + rc.block_m; ++r) {
        // LoadRows of Q: packed rows [row_lo + q_shift, row_hi + q_shift) only.
        const int64_t packed = r + seq.q_shift;
        const bool loaded = packed >= seq.row_lo + seq.q_shift && packed < seq.row_hi + seq.q_shift;
        ASSERT_EQ(loaded, seq.Has(r)) << "b " << b << " row " << r;
        if (!seq.Has(r)) continue;
        const int64_t m = r - seq.row_lo;  // the row within its sequence
        ASSERT_GE(m, 0);
        ASSERT_LT(m, want.q_len) << "b " << b << " row " << r;
        ++stored[static_cast<size_t>(m)];
        const std::string where = absl::StrCat("b ", b, " row ", m, " (kernel row ", r, ")");
        EXPECT_EQ(packed, want.q_row0 + m) << where;
        for (int64_t h : {int64_t{0}, p.q_heads - 1}) {
          EXPECT_EQ(seq.LseIndex(h, r), want.Lse(h, m)) << where << " head " << h;
        }
        const KeyRange got = params.mask.Visible(r, seq.valid_keys);
        const KeyRange expected = seq_mask.Visible(m, want_keys);
        EXPECT_EQ(got.size() == 0, expected.size() == 0) << where;
        if (expected.size() > 0) {
          EXPECT_EQ(got.lo, expected.lo) << where;
          EXPECT_EQ(got.hi, expected.hi) << where;
          // The CTA walks [key_lo, key_hi): it covers the row; blocks inside [all_lo, all_hi)
          // skip the mask, so the row must see all of them.
          EXPECT_LE(key_lo, got.lo) << where;
          EXPECT_GE(key_hi, got.hi) << where;
          if (all_lo < all_hi) {
            EXPECT_LE(got.lo, all_lo) << where;
            EXPECT_GE(got.hi, all_hi) << where;
          }
        }
      }
    }
    for (int64_t m = 0; m < want.q_len; ++m) {
      EXPECT_EQ(stored[static_cast<size_t>(m)], 1) << "b " << b << " row " << m;
    }
  }
}

std::vector<RowsCase> Cases() {
  std::vector<RowsCase> cases;
  std::mt19937 rng(20261207);
  std::uniform_int_distribution<int64_t> length(0, 300);
  const std::vector<std::vector<int64_t>> q_sets = {
      {1, 0, 37, 64, 129, 200}, {300, 5, 130}, {0, 0, 1}, {128, 128, 127, 129}};
  const std::vector<std::vector<int64_t>> kv_sets = {
      {50, 3, 0, 100, 61, 300}, {1000, 700, 17}, {5, 0, 1}, {1, 400, 127, 64}};
  std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> lengths;
  for (size_t i = 0; i < q_sets.size(); ++i) lengths.push_back({q_sets[i], kv_sets[i]});
  for (int s = 0; s < 4; ++s) {  // random batches of 9 sequences
    std::vector<int64_t> q, kv;
    for (int b = 0; b < 9; ++b) {
      q.push_back(length(rng));
      kv.push_back(length(rng));
    }
    lengths.push_back({q, kv});
  }
  const std::vector<std::pair<int64_t, int64_t>> windows = {{-1, -1}, {23, 9}, {0, 0}, {5, -1}};
  for (const auto& [q, kv] : lengths) {
    for (Causal causal : {Causal::kNone, Causal::kTopLeft, Causal::kBottomRight}) {
      for (const auto& [left, right] : windows) {
        for (int block_m : {64, 128}) {
          RowsCase rc;
          rc.c = testing::BaseCase(DType::kBF16, 1, 1, 1, 6, 2, 128, 128);
          testing::SetRagged(&rc.c, q, kv);
          rc.c.problem.causal = causal;
          rc.c.problem.window_left = left;
          rc.c.problem.window_right = right;
          rc.block_m = block_m;
          cases.push_back(rc);
        }
      }
    }
  }
  // Dense, with kv_lengths (one past Mk, one empty): the old indexing.
  for (Causal causal : {Causal::kNone, Causal::kTopLeft, Causal::kBottomRight}) {
    RowsCase rc;
    rc.c = testing::BaseCase(DType::kF16, 3, 97, 161, 4, 4, 64, 64);
    rc.c.problem.causal = causal;
    rc.c.problem.has_kv_lengths = true;
    rc.c.kv_lengths = {161, 0, 53};
    cases.push_back(rc);
  }
  return cases;
}

TEST(FusedRowsTest, EveryCtaPlacesItsSequenceRowsAsTheContractSays) {
  for (const RowsCase& rc : Cases()) {
    SCOPED_TRACE(absl::StrCat(testing::CaseName(rc.c), " block ", rc.block_m));
    CheckLaunch(rc);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

// The placement depends on the alignment: a bottom-right sequence shorter than the longest sits
// at the end of the kernel's rows, a top-left one at the start.
TEST(FusedRowsTest, ShortSequencesSitWhereTheirAlignmentPutsThem) {
  testing::ProblemCase c = testing::BaseCase(DType::kF16, 1, 1, 1, 2, 2, 64, 64);
  testing::SetRagged(&c, {100, 30}, {100, 80});
  AttentionTensors t;
  t.q_offsets = c.q_offsets.data();
  t.kv_offsets = c.kv_offsets.data();
  c.problem.causal = Causal::kBottomRight;
  CtaRows rows = RowsOf(FusedParams::For(c.problem, t), 1);
  EXPECT_EQ(rows.row_lo, 70);
  EXPECT_EQ(rows.row_hi, 100);
  EXPECT_EQ(rows.q_shift, 100 - 70);  // kernel row 70 is packed row 100
  EXPECT_EQ(rows.kv_row0, 100);
  EXPECT_EQ(rows.valid_keys, 80);
  c.problem.causal = Causal::kTopLeft;
  rows = RowsOf(FusedParams::For(c.problem, t), 1);
  EXPECT_EQ(rows.row_lo, 0);
  EXPECT_EQ(rows.row_hi, 30);
  EXPECT_EQ(rows.q_shift, 100);
}

}  // namespace
}  // namespace attnd::kernels::cuda::fused
