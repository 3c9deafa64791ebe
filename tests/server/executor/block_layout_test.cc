// BlockLayout: a request's tensors in its one device block (server/executor/block_layout.h).
#include "server/executor/block_layout.h"

#include <gtest/gtest.h>

#include <cstdint>

#include "kernels/problem.h"

namespace attnd::server::executor {
namespace {

using kernels::AttentionProblem;
using kernels::DType;

// B 2, Hq 4, Hkv 2, Mq 7, Mk 13, D 24, Dv 40, f16, with a bf16 bias [B, 1, Mq, Mk], key lengths
// and the LSE: odd sizes so that every part needs padding to its 256-byte boundary.
AttentionProblem OddProblem() {
  AttentionProblem p;
  p.dtype = DType::kF16;
  p.batch = 2;
  p.q_heads = 4;
  p.kv_heads = 2;
  p.q_len = 7;
  p.kv_len = 13;
  p.head_dim = 24;
  p.v_head_dim = 40;
  p.has_bias = true;
  p.bias_dtype = DType::kBF16;
  p.bias_shape[0] = 2;
  p.bias_shape[1] = 1;
  p.bias_shape[2] = 7;
  p.bias_shape[3] = 13;
  p.has_kv_lengths = true;
  p.return_lse = true;
  return p;
}

TEST(BlockLayoutTest, PartsAreAlignedInOrderAndHoldTheirTensors) {
  const AttentionProblem p = OddProblem();
  const BlockLayout l = BlockLayout::For(p, 1000);
  EXPECT_EQ(l.q_bytes, 2 * 4 * 7 * 24 * 2);
  EXPECT_EQ(l.k_bytes, 2 * 2 * 13 * 24 * 2);
  EXPECT_EQ(l.v_bytes, 2 * 2 * 13 * 40 * 2);
  EXPECT_EQ(l.bias_bytes, 2 * 7 * 13 * 2);
  EXPECT_EQ(l.kv_lengths_bytes, 2 * 8);
  EXPECT_EQ(l.out_bytes, 2 * 4 * 7 * 40 * 2);
  EXPECT_EQ(l.lse_bytes, 2 * 4 * 7 * 4);
  EXPECT_EQ(l.offsets_bytes, 0);  // dense
  const int64_t starts[] = {l.q, l.k, l.v, l.bias, l.kv_lengths, l.out, l.lse, l.workspace};
  const int64_t sizes[] = {l.q_bytes,          l.k_bytes,   l.v_bytes,   l.bias_bytes,
                           l.kv_lengths_bytes, l.out_bytes, l.lse_bytes, l.workspace_bytes};
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(starts[i] % 256, 0) << "part " << i;
    if (i > 0) {
      EXPECT_GE(starts[i], starts[i - 1] + sizes[i - 1]) << "part " << i;
    }
  }
  EXPECT_GE(l.total, l.workspace + 1000);
  EXPECT_EQ(l.input_bytes(), l.q_bytes + l.k_bytes + l.v_bytes + l.bias_bytes + 16);
}

TEST(BlockLayoutTest, TensorsAtPointIntoTheBlockAndOptionalOnesAreNullWhenAbsent) {
  AttentionProblem p = OddProblem();
  const BlockLayout l = BlockLayout::For(p, 0);
  char* base = reinterpret_cast<char*>(uintptr_t{1} << 20);  // never dereferenced
  kernels::AttentionTensors t = l.TensorsAt(p, base);
  EXPECT_EQ(t.q, base + l.q);
  EXPECT_EQ(t.k, base + l.k);
  EXPECT_EQ(t.v, base + l.v);
  EXPECT_EQ(t.bias, base + l.bias);
  EXPECT_EQ(reinterpret_cast<const char*>(t.kv_lengths), base + l.kv_lengths);
  EXPECT_EQ(t.out, base + l.out);
  EXPECT_EQ(reinterpret_cast<char*>(t.lse), base + l.lse);

  p.has_bias = false;
  p.has_kv_lengths = false;
  p.return_lse = false;
  t = BlockLayout::For(p, 0).TensorsAt(p, base);
  EXPECT_EQ(t.bias, nullptr);
  EXPECT_EQ(t.kv_lengths, nullptr);
  EXPECT_EQ(t.lse, nullptr);
  EXPECT_NE(t.out, nullptr);
}

// A ragged problem: q, k, v, out and lse at their packed sizes (total_q, total_kv rows), and
// the two [B + 1] offset arrays among the inputs, after kv_lengths, before out (one copy in).
TEST(BlockLayoutTest, RaggedProblemsCarryTheirOffsetsAmongTheInputs) {
  AttentionProblem p = OddProblem();
  p.has_kv_lengths = false;  // refused with offsets
  p.ragged = true;
  p.batch = 3;
  p.total_q = 17;   // e.g. q_offsets [0, 7, 12, 17]
  p.total_kv = 30;  // kv_offsets [0, 13, 20, 30]
  p.bias_shape[0] = 3;
  const BlockLayout l = BlockLayout::For(p, 0);
  EXPECT_EQ(l.q_bytes, 17 * 4 * 24 * 2);
  EXPECT_EQ(l.k_bytes, 30 * 2 * 24 * 2);
  EXPECT_EQ(l.v_bytes, 30 * 2 * 40 * 2);
  EXPECT_EQ(l.out_bytes, 17 * 4 * 40 * 2);
  EXPECT_EQ(l.lse_bytes, 4 * 17 * 4);
  EXPECT_EQ(l.bias_bytes, 3 * 7 * 13 * 2);  // padded to the bounds: [B, 1, q_len, kv_len]
  EXPECT_EQ(l.offsets_bytes, 4 * 8);
  EXPECT_EQ(l.q_offsets % 256, 0);
  EXPECT_EQ(l.kv_offsets % 256, 0);
  EXPECT_GE(l.q_offsets, l.kv_lengths);
  EXPECT_GE(l.kv_offsets, l.q_offsets + l.offsets_bytes);
  EXPECT_GE(l.out, l.kv_offsets + l.offsets_bytes);
  EXPECT_EQ(l.input_bytes(), l.q_bytes + l.k_bytes + l.v_bytes + l.bias_bytes + 2 * 32);

  char* base = reinterpret_cast<char*>(uintptr_t{1} << 20);  // never dereferenced
  const kernels::AttentionTensors t = l.TensorsAt(p, base);
  EXPECT_EQ(reinterpret_cast<const char*>(t.q_offsets), base + l.q_offsets);
  EXPECT_EQ(reinterpret_cast<const char*>(t.kv_offsets), base + l.kv_offsets);
  EXPECT_EQ(t.kv_lengths, nullptr);
  p.ragged = false;
  const kernels::AttentionTensors dense = BlockLayout::For(p, 0).TensorsAt(p, base);
  EXPECT_EQ(dense.q_offsets, nullptr);
  EXPECT_EQ(dense.kv_offsets, nullptr);
}

}  // namespace
}  // namespace attnd::server::executor
