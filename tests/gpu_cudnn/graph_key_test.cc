// The graph cache's key and slots: host logic, no GPU needed.
#include <memory>

#include "gtest/gtest.h"
#include "kernels/cuda/cudnn/cudnn_graph_cache.h"
#include "kernels/problem.h"

namespace attnd::kernels::cuda::cudnn_internal {
namespace {

AttentionProblem Problem() {
  AttentionProblem p;
  p.dtype = DType::kBF16;
  p.batch = 2;
  p.q_len = 97;
  p.kv_len = 161;
  p.q_heads = 4;
  p.kv_heads = 2;
  p.head_dim = 64;
  p.v_head_dim = 64;
  p.scale = 0.125;
  return p;
}

bool Same(const GraphKey& a, const GraphKey& b) { return !(a < b) && !(b < a); }

TEST(GraphKeyTest, WideWindowsAreUnbounded) {
  void* handle = reinterpret_cast<void*>(0x1000);
  AttentionProblem p = Problem();
  const GraphKey none = GraphKey::From(p, handle);
  p.window_left = 97 + 161;  // reaches every key: the same mask as no bound
  p.window_right = 1 << 20;
  EXPECT_TRUE(Same(GraphKey::From(p, handle), none));
  p.window_left = 97 + 161 - 1;
  const GraphKey narrower = GraphKey::From(p, handle);
  EXPECT_FALSE(Same(narrower, none));
  EXPECT_EQ(narrower.window_left, 97 + 161 - 1);
  EXPECT_EQ(narrower.window_right, -1);
}

TEST(GraphKeyTest, BiasFieldsCountOnlyWithABias) {
  void* handle = reinterpret_cast<void*>(0x1000);
  AttentionProblem p = Problem();
  const GraphKey plain = GraphKey::From(p, handle);
  p.bias_dtype = DType::kF16;  // ignored: no bias
  p.bias_shape[2] = 97;
  EXPECT_TRUE(Same(GraphKey::From(p, handle), plain));
  p.has_bias = true;
  const GraphKey with_bias = GraphKey::From(p, handle);
  EXPECT_FALSE(Same(with_bias, plain));
  p.bias_shape[0] = 2;
  EXPECT_FALSE(Same(GraphKey::From(p, handle), with_bias));
}

TEST(GraphKeyTest, EveryShapingFieldDistinguishes) {
  void* handle = reinterpret_cast<void*>(0x1000);
  const AttentionProblem base = Problem();
  const GraphKey key = GraphKey::From(base, handle);
  EXPECT_FALSE(Same(GraphKey::From(base, reinterpret_cast<void*>(0x2000)), key));
  const auto changed = [&](auto mutate) {
    AttentionProblem p = base;
    mutate(&p);
    return !Same(GraphKey::From(p, handle), key);
  };
  EXPECT_TRUE(changed([](AttentionProblem* p) { p->dtype = DType::kF16; }));
  EXPECT_TRUE(changed([](AttentionProblem* p) { p->layout = Layout::kBHMK; }));
  EXPECT_TRUE(changed([](AttentionProblem* p) { p->batch = 3; }));
  EXPECT_TRUE(changed([](AttentionProblem* p) { p->q_len = 98; }));
  EXPECT_TRUE(changed([](AttentionProblem* p) { p->kv_len = 160; }));
  EXPECT_TRUE(changed([](AttentionProblem* p) { p->q_heads = 8; }));
  EXPECT_TRUE(changed([](AttentionProblem* p) { p->kv_heads = 1; }));
  EXPECT_TRUE(changed([](AttentionProblem* p) { p->head_dim = 128; }));
  EXPECT_TRUE(changed([](AttentionProblem* p) { p->v_head_dim = 128; }));
  EXPECT_TRUE(changed([](AttentionProblem* p) { p->causal = Causal::kTopLeft; }));
  EXPECT_TRUE(changed([](AttentionProblem* p) { p->causal = Causal::kBottomRight; }));
  EXPECT_TRUE(changed([](AttentionProblem* p) { p->window_left = 3; }));
  EXPECT_TRUE(changed([](AttentionProblem* p) { p->window_right = 0; }));
  EXPECT_TRUE(changed([](AttentionProblem* p) { p->has_kv_lengths = true; }));
  EXPECT_TRUE(changed([](AttentionProblem* p) { p->return_lse = true; }));
  EXPECT_TRUE(changed([](AttentionProblem* p) { p->scale = 0.5; }));
}

TEST(RefusedUpFrontTest, F32AndUncheckedBiasBroadcastsNeverReachCudnn) {
  void* handle = reinterpret_cast<void*>(0x1000);
  AttentionProblem p = Problem();  // B 2, Hq 4, Mq 97, Mk 161
  EXPECT_EQ(RefusedUpFront(GraphKey::From(p, handle)), "");
  p.dtype = DType::kF32;
  EXPECT_NE(RefusedUpFront(GraphKey::From(p, handle)), "");
  p.dtype = DType::kF16;
  p.has_bias = true;
  const auto refused = [&](int64_t b, int64_t h, int64_t m, int64_t n) {
    p.bias_shape[0] = b;
    p.bias_shape[1] = h;
    p.bias_shape[2] = m;
    p.bias_shape[3] = n;
    return !RefusedUpFront(GraphKey::From(p, handle)).empty();
  };
  // Checked against the reference on cuDNN 9.19.
  EXPECT_FALSE(refused(2, 4, 97, 161));
  EXPECT_FALSE(refused(1, 4, 97, 161));
  EXPECT_FALSE(refused(2, 1, 97, 161));
  EXPECT_FALSE(refused(1, 1, 97, 161));
  EXPECT_FALSE(refused(1, 1, 1, 161));
  EXPECT_FALSE(refused(2, 1, 1, 161));
  EXPECT_FALSE(refused(1, 1, 97, 1));
  // Computed wrongly by cuDNN 9.19 ([B, H, 1, 1]) or never checked.
  EXPECT_TRUE(refused(2, 4, 1, 1));
  EXPECT_TRUE(refused(1, 1, 1, 1));
  EXPECT_TRUE(refused(1, 4, 1, 161));
  EXPECT_TRUE(refused(2, 4, 97, 1));
  EXPECT_TRUE(refused(2, 1, 97, 1));
  // A dim of 1 on a length of 1 broadcasts nothing.
  p.q_len = 1;
  p.kv_len = 1;
  EXPECT_FALSE(refused(2, 4, 1, 1));
}

TEST(GraphCacheTest, SlotsAreSharedAndLeastRecentlyUsedIsDropped) {
  GraphCache cache(2);
  void* handle = reinterpret_cast<void*>(0x1000);
  AttentionProblem a = Problem();
  AttentionProblem b = Problem();
  b.q_len = 1;
  AttentionProblem c = Problem();
  c.q_len = 2;
  const std::shared_ptr<GraphSlot> slot_a = cache.Slot(GraphKey::From(a, handle));
  EXPECT_EQ(cache.Slot(GraphKey::From(a, handle)), slot_a);
  const std::shared_ptr<GraphSlot> slot_b = cache.Slot(GraphKey::From(b, handle));
  EXPECT_NE(slot_b, slot_a);
  cache.Slot(GraphKey::From(a, handle));  // a is now the most recently used
  cache.Slot(GraphKey::From(c, handle));  // over capacity: b goes
  EXPECT_EQ(cache.Stats().entries, 2);
  EXPECT_EQ(cache.Stats().evictions, 1);
  EXPECT_EQ(cache.Slot(GraphKey::From(a, handle)), slot_a);
  EXPECT_NE(cache.Slot(GraphKey::From(b, handle)), slot_b);  // a new slot: b was dropped
}

TEST(GraphCacheTest, DropHandleDropsOnlyThatHandlesSlots) {
  GraphCache cache(16);
  void* h1 = reinterpret_cast<void*>(0x1000);
  void* h2 = reinterpret_cast<void*>(0x2000);
  const AttentionProblem p = Problem();
  const std::shared_ptr<GraphSlot> s1 = cache.Slot(GraphKey::From(p, h1));
  const std::shared_ptr<GraphSlot> s2 = cache.Slot(GraphKey::From(p, h2));
  cache.DropHandle(h1);
  EXPECT_EQ(cache.Stats().entries, 1);
  EXPECT_EQ(cache.Slot(GraphKey::From(p, h2)), s2);
  EXPECT_NE(cache.Slot(GraphKey::From(p, h1)), s1);
}

}  // namespace
}  // namespace attnd::kernels::cuda::cudnn_internal
