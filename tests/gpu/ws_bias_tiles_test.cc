// Which biases the warp-specialised kernel copies as TMA tiles (kernels/cuda/fused/ws_bias_tiles.h)
// checked on the host: a dense 16-bit bias with 16-byte aligned rows does, with or without
// broadcasts over batch and heads; every other bias takes the rows path, which the device suites
// check too.
#include "kernels/cuda/fused/ws_bias_tiles.h"

#include <cstdint>

#include "gtest/gtest.h"
#include "kernels/problem.h"

namespace attnd::kernels::cuda::fused {
namespace {

AttentionProblem Biased(int64_t q_len, int64_t kv_len, DType bias_dtype) {
  AttentionProblem p;
  p.batch = 2;
  p.q_heads = 4;
  p.kv_heads = 4;
  p.q_len = q_len;
  p.kv_len = kv_len;
  p.head_dim = 128;
  p.v_head_dim = 128;
  p.dtype = DType::kBF16;
  p.has_bias = true;
  p.bias_dtype = bias_dtype;
  const int64_t shape[4] = {2, 4, q_len, kv_len};
  for (int i = 0; i < 4; ++i) p.bias_shape[i] = shape[i];
  return p;
}

// A 256-byte aligned address, as the device pool hands out.
const void* const kAligned = reinterpret_cast<const void*>(uintptr_t{1} << 20);

TEST(WsBiasTilesTest, DenseSixteenBitAlignedBiasesTakeTiles) {
  for (DType dtype : {DType::kF16, DType::kBF16}) {
    AttentionProblem p = Biased(4096, 4096, dtype);
    EXPECT_TRUE(BiasTakesTiles(p, kAligned));
    p.bias_shape[0] = 1;  // broadcast over batch
    EXPECT_TRUE(BiasTakesTiles(p, kAligned));
    p.bias_shape[1] = 1;  // and heads
    EXPECT_TRUE(BiasTakesTiles(p, kAligned));
    EXPECT_TRUE(BiasTakesTiles(Biased(130, 8, dtype), kAligned));  // one 16-byte piece a row
  }
}

TEST(WsBiasTilesTest, OtherBiasesTakeRows) {
  EXPECT_FALSE(BiasTakesTiles(Biased(4096, 4096, DType::kF32), kAligned));   // not 16-bit
  EXPECT_FALSE(BiasTakesTiles(Biased(4096, 4100, DType::kBF16), kAligned));  // rows 8-byte steps
  EXPECT_FALSE(BiasTakesTiles(Biased(200, 157, DType::kF16), kAligned));     // odd Mk
  // A start off 16 bytes (a bias the caller placed inside a larger buffer).
  EXPECT_FALSE(BiasTakesTiles(Biased(4096, 4096, DType::kBF16),
                              reinterpret_cast<const void*>((uintptr_t{1} << 20) + 8)));
  AttentionProblem p = Biased(4096, 4096, DType::kBF16);
  p.bias_shape[2] = 1;  // broadcast over queries
  EXPECT_FALSE(BiasTakesTiles(p, kAligned));
  p = Biased(4096, 4096, DType::kBF16);
  p.bias_shape[3] = 1;  // broadcast over keys
  EXPECT_FALSE(BiasTakesTiles(p, kAligned));
  p = Biased(4096, 4096, DType::kBF16);
  p.ragged = true;  // rows relative to each sequence
  EXPECT_FALSE(BiasTakesTiles(p, kAligned));
  p = Biased(4096, 4096, DType::kBF16);
  p.has_bias = false;
  EXPECT_FALSE(BiasTakesTiles(p, kAligned));
}

}  // namespace
}  // namespace attnd::kernels::cuda::fused
