// The ragged launch's grouping decisions (what may share a launch, the caps) and its packing
// arithmetic (offsets, byte offsets, memcpy regions), on hand-worked cases.
#include "server/executor/ragged_group.h"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/kernels/test_util.h"

namespace attnd::server::executor {
namespace {

using kernels::AttentionProblem;
using kernels::DType;
using kernels::Variant;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// f32, Hq = Hkv = 2, D = Dv = 4, LSE on, no mask: the worked example's shared shape.
// (BaseProblem's scale is 1/sqrt(D) = 0.5.)
AttentionProblem Dense(int64_t batch, int64_t q_len, int64_t kv_len) {
  return kernels::testing::BaseProblem(DType::kF32, batch, q_len, kv_len, 2, 2, 4, 4);
}

// Owns the problems and plans that a batch's entries point to.
class Batch {
 public:
  size_t Add(const AttentionProblem& problem, Variant variant = Variant::kCpuChunked,
             bool fixed_chunks = false) {
    problems_.push_back(problem);
    kernels::Plan plan;
    plan.variant = variant;
    plans_.push_back(plan);
    BatchEntry entry;
    entry.problem = &problems_.back();
    entry.plan = &plans_.back();
    entry.fixed_chunks = fixed_chunks;
    entries_.push_back(entry);
    return entries_.size() - 1;
  }
  absl::Span<const BatchEntry> entries() const { return entries_; }
  BatchEntry& entry(size_t i) { return entries_[i]; }

  // Zeroed q, k and v for every entry (4 bytes an element: enough for any dtype), for the tests
  // that check only how the bias is packed.
  void GiveZeroInputs() {
    for (BatchEntry& entry : entries_) {
      const AttentionProblem& p = *entry.problem;
      const void** tensors[] = {&entry.tensors.q, &entry.tensors.k, &entry.tensors.v};
      const int64_t elements[] = {p.q_elements(), p.k_elements(), p.v_elements()};
      for (int t = 0; t < 3; ++t) {
        inputs_.emplace_back(static_cast<size_t>(elements[t] * 4), 0);
        *tensors[t] = inputs_.back().data();
      }
    }
  }

 private:
  std::deque<std::vector<unsigned char>> inputs_;
  std::deque<AttentionProblem> problems_;  // deque: stable addresses
  std::deque<kernels::Plan> plans_;
  std::vector<BatchEntry> entries_;
};

// PackInputs with scratch q, k and v: the bias into `bias`.
void PackWithBias(const RaggedLaunch& launch, absl::Span<const BatchEntry> entries, void* bias) {
  std::vector<unsigned char> q(static_cast<size_t>(launch.q_bytes));
  std::vector<unsigned char> k(static_cast<size_t>(launch.k_bytes));
  std::vector<unsigned char> v(static_cast<size_t>(launch.v_bytes));
  PackInputs(launch, entries, q.data(), k.data(), v.data(), bias);
}

RaggedGroupPolicy CpuPolicy() {
  RaggedGroupPolicy policy;
  policy.variants = {Variant::kCpuChunked};
  return policy;
}

TEST(RaggedGroupTest, WorkedExampleFromTheHeader) {
  Batch batch;
  batch.Add(Dense(1, 3, 5));
  batch.Add(Dense(2, 2, 7));
  const std::vector<size_t> members = {0, 1};
  const RaggedLaunch launch = BuildRaggedLaunch(batch.entries(), members);
  const AttentionProblem& p = launch.problem;
  EXPECT_TRUE(p.ragged);
  EXPECT_EQ(p.batch, 3);
  EXPECT_EQ(p.q_len, 3);
  EXPECT_EQ(p.kv_len, 7);
  EXPECT_EQ(p.total_q, 7);
  EXPECT_EQ(p.total_kv, 19);
  EXPECT_EQ(p.scale, 0.5);
  EXPECT_TRUE(p.return_lse);
  EXPECT_THAT(launch.q_offsets, ElementsAre(0, 3, 5, 7));
  EXPECT_THAT(launch.kv_offsets, ElementsAre(0, 5, 12, 19));
  EXPECT_TRUE(
      kernels::ValidateSequenceOffsets(p, launch.q_offsets.data(), launch.kv_offsets.data()).ok());
  EXPECT_TRUE(kernels::ValidateProblem(p, kernels::ProblemLimits{}).ok());

  ASSERT_EQ(launch.members.size(), 2u);
  const RaggedMember& a = launch.members[0];
  EXPECT_EQ(a.entry, 0u);
  EXPECT_EQ(a.first_sequence, 0);
  EXPECT_EQ(a.q_row, 0);
  EXPECT_EQ(a.kv_row, 0);
  EXPECT_EQ(a.q_offset_bytes, 0);
  EXPECT_EQ(a.q_bytes, 96);  // 3 rows · 32
  EXPECT_EQ(a.k_bytes, 160);
  EXPECT_EQ(a.lse_bytes, 24);
  const RaggedMember& b = launch.members[1];
  EXPECT_EQ(b.entry, 1u);
  EXPECT_EQ(b.first_sequence, 1);
  EXPECT_EQ(b.q_row, 3);
  EXPECT_EQ(b.kv_row, 5);
  EXPECT_EQ(b.q_offset_bytes, 96);
  EXPECT_EQ(b.out_offset_bytes, 96);
  EXPECT_EQ(b.k_offset_bytes, 160);
  EXPECT_EQ(b.v_offset_bytes, 160);
  EXPECT_EQ(b.lse_offset_bytes, 24);
  EXPECT_EQ(b.q_bytes, 128);
  EXPECT_EQ(b.out_bytes, 128);
  EXPECT_EQ(b.k_bytes, 448);
  EXPECT_EQ(b.v_bytes, 448);
  EXPECT_EQ(b.lse_bytes, 32);
  // Packed sizes: 7 query rows, 19 key rows.
  EXPECT_EQ(launch.q_bytes, 7 * 32);
  EXPECT_EQ(launch.k_bytes, 19 * 32);
  EXPECT_EQ(launch.out_bytes, 7 * 32);
  EXPECT_EQ(launch.lse_bytes, 7 * 8);
  EXPECT_EQ(launch.packed_bytes(), 2 * 7 * 32 + 2 * 19 * 32 + 7 * 8);
  EXPECT_EQ(launch.packed_bytes(), PackedBytes(Dense(1, 3, 5)) + PackedBytes(Dense(2, 2, 7)));
}

TEST(RaggedGroupTest, HalfPrecisionByteOffsetsAndNoLse) {
  Batch batch;
  AttentionProblem a = Dense(2, 5, 3);
  a.dtype = DType::kF16;
  a.return_lse = false;
  a.q_heads = 4;  // GQA: Hq 4, Hkv 2; Dv 6
  a.v_head_dim = 6;
  AttentionProblem b = a;
  b.batch = 1;
  b.q_len = 9;
  b.kv_len = 11;
  batch.Add(a);
  batch.Add(b);
  const std::vector<size_t> members = {1, 0};  // the order given is the packing order
  const RaggedLaunch launch = BuildRaggedLaunch(batch.entries(), members);
  EXPECT_THAT(launch.q_offsets, ElementsAre(0, 9, 14, 19));
  EXPECT_THAT(launch.kv_offsets, ElementsAre(0, 11, 14, 17));
  EXPECT_EQ(launch.problem.q_len, 9);
  EXPECT_EQ(launch.problem.kv_len, 11);
  const RaggedMember& second = launch.members[1];  // entry 0, after entry 1's 9 and 11 rows
  EXPECT_EQ(second.entry, 0u);
  EXPECT_EQ(second.q_offset_bytes, 9 * 4 * 4 * 2);    // rows · Hq · D · 2 bytes
  EXPECT_EQ(second.k_offset_bytes, 11 * 2 * 4 * 2);   // rows · Hkv · D · 2
  EXPECT_EQ(second.v_offset_bytes, 11 * 2 * 6 * 2);   // rows · Hkv · Dv · 2
  EXPECT_EQ(second.out_offset_bytes, 9 * 4 * 6 * 2);  // rows · Hq · Dv · 2
  EXPECT_EQ(second.q_bytes, 10 * 4 * 4 * 2);
  EXPECT_EQ(second.v_bytes, 6 * 2 * 6 * 2);
  EXPECT_EQ(second.lse_bytes, 0);
  EXPECT_EQ(launch.lse_bytes, 0);
}

TEST(RaggedGroupTest, WhyNotPackableNamesEachExclusion) {
  const RaggedGroupPolicy policy = CpuPolicy();
  Batch batch;
  AttentionProblem bias = Dense(1, 4, 4);
  bias.has_bias = true;
  AttentionProblem kv_lengths = Dense(1, 4, 4);
  kv_lengths.has_kv_lengths = true;
  AttentionProblem bhmk = Dense(1, 4, 4);
  bhmk.layout = kernels::Layout::kBHMK;
  AttentionProblem ragged = Dense(1, 4, 4);
  ragged.ragged = true;
  batch.Add(Dense(1, 4, 4));
  batch.Add(bias);
  batch.Add(kv_lengths);
  batch.Add(bhmk);
  batch.Add(ragged);
  batch.Add(Dense(1, 4, 4), Variant::kReference);
  batch.Add(Dense(1, 4, 4), Variant::kCpuChunked, /*fixed_chunks=*/true);
  const auto why = [&](size_t i) { return WhyNotPackable(batch.entries()[i], policy); };
  EXPECT_EQ(why(0), "");
  EXPECT_EQ(why(1), "");  // a bias is packed (padded): see BiasIsPaddedToTheLaunchsBounds
  EXPECT_THAT(why(2), HasSubstr("kv_lengths"));
  EXPECT_THAT(why(3), HasSubstr("BHMK"));
  EXPECT_THAT(why(4), HasSubstr("already ragged"));
  EXPECT_THAT(why(5), HasSubstr("variant reference"));
  EXPECT_THAT(why(6), HasSubstr("chunk sizes"));
  // The variant set is the policy's: a device whose reference takes ragged launches.
  RaggedGroupPolicy with_reference = policy;
  with_reference.variants.push_back(Variant::kReference);
  EXPECT_EQ(WhyNotPackable(batch.entries()[5], with_reference), "");
}

TEST(RaggedGroupTest, GroupsCompatibleEntriesAndLeavesTheRestAlone) {
  Batch batch;
  AttentionProblem half = Dense(1, 6, 6);
  half.dtype = DType::kF16;
  AttentionProblem bias = Dense(1, 6, 6);
  bias.has_bias = true;
  AttentionProblem kv_lengths = Dense(2, 6, 6);
  kv_lengths.has_kv_lengths = true;
  AttentionProblem bhmk = Dense(1, 6, 6);
  bhmk.layout = kernels::Layout::kBHMK;
  AttentionProblem causal = Dense(1, 6, 6);
  causal.causal = kernels::Causal::kBottomRight;
  batch.Add(Dense(1, 3, 9));                       // 0: f32 group
  batch.Add(half);                                 // 1: f16 group
  batch.Add(bias);                                 // 2: alone (the only one with a bias)
  batch.Add(kv_lengths);                           // 3: alone
  batch.Add(bhmk);                                 // 4: alone
  batch.Add(Dense(2, 17, 5));                      // 5: f32 group
  batch.Add(causal);                               // 6: alone (no other causal entry)
  batch.Add(half);                                 // 7: f16 group
  batch.Add(Dense(1, 6, 6), Variant::kReference);  // 8: alone
  batch.Add(Dense(3, 1, 1));                       // 9: f32 group
  EXPECT_THAT(ChooseRaggedGroups(batch.entries(), CpuPolicy()),
              ElementsAre(ElementsAre(0, 5, 9), ElementsAre(1, 7)));
}

TEST(RaggedGroupTest, EveryLaunchFieldSeparatesGroups) {
  // Each variation of Dense(1, 4, 4) pairs with its twin only.
  std::vector<AttentionProblem> variations;
  for (int field = 0; field < 11; ++field) {
    AttentionProblem p = Dense(1, 4, 4);
    switch (field) {
      case 0:
        p.q_heads = 4;
        break;
      case 1:
        p.kv_heads = 1;
        break;
      case 2:
        p.head_dim = 8;
        break;
      case 3:
        p.v_head_dim = 8;
        break;
      case 4:
        p.scale = 0.25;
        break;
      case 5:
        p.causal = kernels::Causal::kTopLeft;
        break;
      case 6:
        p.window_left = 2;
        break;
      case 7:
        p.window_right = 1;
        break;
      case 8:
        p.return_lse = false;
        break;
      case 9:
        p.has_bias = true;  // f32
        break;
      case 10:
        p.has_bias = true;
        p.bias_dtype = DType::kBF16;
        break;
    }
    variations.push_back(p);
  }
  Batch batch;
  for (const AttentionProblem& p : variations) batch.Add(p);
  for (const AttentionProblem& p : variations) batch.Add(p);
  const std::vector<std::vector<size_t>> groups = ChooseRaggedGroups(batch.entries(), CpuPolicy());
  ASSERT_EQ(groups.size(), variations.size());
  for (size_t i = 0; i < groups.size(); ++i) {
    EXPECT_THAT(groups[i], ElementsAre(i, i + variations.size()));
  }
}

TEST(RaggedGroupTest, PackedBytesCapSplitsGroups) {
  Batch batch;
  for (int i = 0; i < 5; ++i) batch.Add(Dense(1, 4, 4));  // 4·(32 + 32 + 8) + 4·(32 + 32) bytes
  const int64_t each = PackedBytes(Dense(1, 4, 4));
  EXPECT_EQ(each, 4 * 72 + 4 * 64);
  RaggedGroupPolicy policy = CpuPolicy();
  policy.max_packed_bytes = 2 * each;
  EXPECT_THAT(ChooseRaggedGroups(batch.entries(), policy),
              ElementsAre(ElementsAre(0, 1), ElementsAre(2, 3)));  // 4 is left alone
  policy.max_packed_bytes = 2 * each - 1;
  EXPECT_THAT(ChooseRaggedGroups(batch.entries(), policy), IsEmpty());
  policy.max_packed_bytes = 5 * each;
  EXPECT_THAT(ChooseRaggedGroups(batch.entries(), policy), ElementsAre(ElementsAre(0, 1, 2, 3, 4)));
}

TEST(RaggedGroupTest, TokenCapCountsTheBatchersTokens) {
  Batch batch;
  batch.Add(Dense(2, 10, 30));  // 2 · max(10, 30) = 60 tokens
  batch.Add(Dense(1, 40, 5));   // 40
  batch.Add(Dense(1, 20, 20));  // 20
  EXPECT_EQ(LaunchTokens(Dense(2, 10, 30)), 60);
  RaggedGroupPolicy policy = CpuPolicy();
  policy.max_tokens = 80;  // 60 + 40 > 80: the second opens a group, the third joins the first
  EXPECT_THAT(ChooseRaggedGroups(batch.entries(), policy), ElementsAre(ElementsAre(0, 2)));
  policy.max_tokens = 100;  // 60 + 40 fits; 20 more does not, and a group of one is not made
  EXPECT_THAT(ChooseRaggedGroups(batch.entries(), policy), ElementsAre(ElementsAre(0, 1)));
}

TEST(RaggedGroupTest, PackAndUnpackCopyEachMembersRegion) {
  Batch batch;
  batch.Add(Dense(1, 3, 5));
  batch.Add(Dense(2, 2, 7));
  // Inputs: each entry's bytes are its index + 1; outputs start at 0.
  std::vector<std::vector<unsigned char>> q(2), k(2), v(2), out(2);
  std::vector<std::vector<float>> lse(2);
  for (size_t e = 0; e < 2; ++e) {
    const AttentionProblem& p = *batch.entries()[e].problem;
    q[e].assign(static_cast<size_t>(p.q_elements() * 4), static_cast<unsigned char>(e + 1));
    k[e].assign(static_cast<size_t>(p.k_elements() * 4), static_cast<unsigned char>(e + 1));
    v[e].assign(static_cast<size_t>(p.v_elements() * 4), static_cast<unsigned char>(e + 11));
    out[e].assign(static_cast<size_t>(p.out_elements() * 4), 0);
    lse[e].assign(static_cast<size_t>(p.lse_elements()), 0.0f);
    BatchEntry& entry = batch.entry(e);
    entry.tensors.q = q[e].data();
    entry.tensors.k = k[e].data();
    entry.tensors.v = v[e].data();
    entry.tensors.out = out[e].data();
    entry.tensors.lse = lse[e].data();
  }
  const std::vector<size_t> members = {0, 1};
  const RaggedLaunch launch = BuildRaggedLaunch(batch.entries(), members);
  std::vector<unsigned char> pq(static_cast<size_t>(launch.q_bytes), 0xff);
  std::vector<unsigned char> pk(static_cast<size_t>(launch.k_bytes), 0xff);
  std::vector<unsigned char> pv(static_cast<size_t>(launch.v_bytes), 0xff);
  PackInputs(launch, batch.entries(), pq.data(), pk.data(), pv.data());
  // q: rows 0..2 from entry 0 (3 · 32 bytes), rows 3..6 from entry 1.
  EXPECT_EQ(std::count(pq.begin(), pq.begin() + 96, 1), 96);
  EXPECT_EQ(std::count(pq.begin() + 96, pq.end(), 2), 128);
  EXPECT_EQ(std::count(pk.begin(), pk.begin() + 160, 1), 160);
  EXPECT_EQ(std::count(pk.begin() + 160, pk.end(), 2), 448);
  EXPECT_EQ(std::count(pv.begin() + 160, pv.end(), 12), 448);

  // Packed outputs: the byte (or lse value) says which member's region it lies in.
  std::vector<unsigned char> pout(static_cast<size_t>(launch.out_bytes), 7);
  std::fill(pout.begin() + 96, pout.end(), 8);
  std::vector<float> plse(static_cast<size_t>(launch.lse_bytes / 4), 7.0f);
  std::fill(plse.begin() + 6, plse.end(), 8.0f);  // Hq · 3 rows of entry 0
  UnpackOutputs(launch, batch.entries(), pout.data(), plse.data());
  EXPECT_EQ(std::count(out[0].begin(), out[0].end(), 7), 96);
  EXPECT_EQ(std::count(out[1].begin(), out[1].end(), 8), 128);
  EXPECT_THAT(lse[0], ::testing::Each(7.0f));
  EXPECT_THAT(lse[1], ::testing::Each(8.0f));
  EXPECT_EQ(lse[1].size(), 8u);
}

// Two members with biases of different broadcasts, f32 so values can be checked: A (B 1, Mq 3,
// Mk 5, bias [1, 1, 1, 5]: one row for every head and query) and B (B 2, Mq 2, Mk 4, bias
// [2, 2, 2, 4]: full). The launch's bias is [3, 2, 3, 5]: its axes are the union of theirs, its
// lengths the bounds. Each sequence's block holds its own bias at rows < Mq_e, keys < Mk_e; the
// rest is untouched.
TEST(RaggedGroupTest, BiasIsPaddedToTheLaunchsBounds) {
  Batch batch;
  AttentionProblem a = Dense(1, 3, 5);
  a.has_bias = true;
  a.bias_shape[3] = 5;
  AttentionProblem b = Dense(2, 2, 4);
  b.has_bias = true;
  b.bias_shape[0] = 2;
  b.bias_shape[1] = 2;
  b.bias_shape[2] = 2;
  b.bias_shape[3] = 4;
  batch.Add(a);
  batch.Add(b);
  EXPECT_THAT(ChooseRaggedGroups(batch.entries(), CpuPolicy()), ElementsAre(ElementsAre(0, 1)));

  std::vector<float> bias_a = {1, 2, 3, 4, 5};
  std::vector<float> bias_b(2 * 2 * 2 * 4);
  for (size_t i = 0; i < bias_b.size(); ++i) bias_b[i] = 100.0f + static_cast<float>(i);
  batch.GiveZeroInputs();  // the bias is what is checked here
  batch.entry(0).tensors.bias = bias_a.data();
  batch.entry(1).tensors.bias = bias_b.data();

  const std::vector<size_t> members = {0, 1};
  const RaggedLaunch launch = BuildRaggedLaunch(batch.entries(), members);
  ASSERT_TRUE(launch.problem.has_bias);
  EXPECT_THAT(launch.problem.bias_shape, ElementsAre(3, 2, 3, 5));
  EXPECT_EQ(launch.bias_bytes, 3 * 2 * 3 * 5 * 4);
  EXPECT_EQ(launch.packed_bytes(), launch.q_bytes + launch.k_bytes + launch.v_bytes +
                                       launch.out_bytes + launch.lse_bytes + launch.bias_bytes);
  EXPECT_TRUE(kernels::ValidateProblem(launch.problem, kernels::UnlimitedProblemLimits()).ok());

  constexpr float kUntouched = -7.0f;
  std::vector<float> pbias(static_cast<size_t>(launch.bias_bytes / 4), kUntouched);
  PackWithBias(launch, batch.entries(), pbias.data());
  auto at = [&](int64_t s, int64_t h, int64_t i, int64_t j) {
    return pbias[static_cast<size_t>(((s * 2 + h) * 3 + i) * 5 + j)];
  };
  for (int64_t h = 0; h < 2; ++h) {
    for (int64_t i = 0; i < 3; ++i) {
      for (int64_t j = 0; j < 5; ++j) {
        SCOPED_TRACE(::testing::Message() << "h " << h << " i " << i << " j " << j);
        EXPECT_EQ(at(0, h, i, j), bias_a[static_cast<size_t>(j)]);  // A: every row its one row
        for (int64_t s = 1; s < 3; ++s) {                           // B's sequences 0 and 1
          const bool inside = i < 2 && j < 4;
          const float expected =
              inside ? bias_b[static_cast<size_t>((((s - 1) * 2 + h) * 2 + i) * 4 + j)]
                     : kUntouched;
          EXPECT_EQ(at(s, h, i, j), expected) << "sequence " << s;
        }
      }
    }
  }
}

// An axis stays broadcast in the launch where every member's is: a bias per key of each member
// ([1, 1, 1, Mk_e]) is one row per sequence, and a member's single value ([1, 1, 1, 1])
// fills its keys.
TEST(RaggedGroupTest, BiasKeepsTheAxesEveryMemberBroadcasts) {
  Batch batch;
  AttentionProblem a = Dense(2, 3, 5);
  a.has_bias = true;
  a.bias_dtype = DType::kF16;
  a.bias_shape[3] = 5;
  AttentionProblem b = Dense(1, 4, 3);
  b.has_bias = true;
  b.bias_dtype = DType::kF16;  // [1, 1, 1, 1]
  batch.Add(a);
  batch.Add(b);
  const std::vector<size_t> members = {0, 1};
  const RaggedLaunch launch = BuildRaggedLaunch(batch.entries(), members);
  EXPECT_THAT(launch.problem.bias_shape, ElementsAre(3, 1, 1, 5));
  EXPECT_EQ(launch.problem.bias_dtype, DType::kF16);
  EXPECT_EQ(launch.bias_bytes, 3 * 5 * 2);

  const std::vector<uint16_t> bias_a = {1, 2, 3, 4, 5};
  const std::vector<uint16_t> bias_b = {9};
  batch.GiveZeroInputs();
  batch.entry(0).tensors.bias = bias_a.data();
  batch.entry(1).tensors.bias = bias_b.data();
  std::vector<uint16_t> pbias(15, 0);
  PackWithBias(launch, batch.entries(), pbias.data());
  EXPECT_THAT(pbias, ElementsAre(1, 2, 3, 4, 5,  // A, sequence 0
                                 1, 2, 3, 4, 5,  // A, sequence 1
                                 9, 9, 9, 0, 0   // B: its 3 keys, then padding
                                 ));
}

// A member joins a group only while the padded bias stays within max_bias_padding (2) times
// the members' own: lengths 10 and 30 pad 2·900 = 1800 elements for 100 + 900 (1.8×); a third
// of length 10 would make 3·900 = 2700 for 1100 (2.45×), so it opens the next group.
TEST(RaggedGroupTest, BiasPaddingBoundSplitsGroups) {
  auto with_bias = [](int64_t len) {
    AttentionProblem p = Dense(1, len, len);
    p.has_bias = true;
    p.bias_shape[2] = len;
    p.bias_shape[3] = len;
    return p;
  };
  Batch batch;
  for (int64_t len : {10, 30, 10, 10}) batch.Add(with_bias(len));
  EXPECT_THAT(ChooseRaggedGroups(batch.entries(), CpuPolicy()),
              ElementsAre(ElementsAre(0, 1), ElementsAre(2, 3)));
  RaggedGroupPolicy loose = CpuPolicy();  // all four: 4·900 = 3600 for 1200 (3×)
  loose.max_bias_padding = 3.0;
  EXPECT_THAT(ChooseRaggedGroups(batch.entries(), loose), ElementsAre(ElementsAre(0, 1, 2, 3)));

  // A bias per key only pads the key axis: 3·30 = 90 for 10 + 30 + 10 + 10 = 60 (1.5×).
  Batch keys;
  for (int64_t len : {10, 30, 10}) {
    AttentionProblem p = Dense(1, len, len);
    p.has_bias = true;
    p.bias_shape[3] = len;
    keys.Add(p);
  }
  EXPECT_THAT(ChooseRaggedGroups(keys.entries(), CpuPolicy()), ElementsAre(ElementsAre(0, 1, 2)));

  // The padded bias counts against max_packed_bytes: 1800 · 4 bytes beside the first two
  // entries' own, one byte too many, so the 30 runs alone and the 10s make one launch.
  RaggedGroupPolicy capped = CpuPolicy();
  capped.max_packed_bytes =
      PackedBytes(with_bias(10)) + PackedBytes(with_bias(30)) + 1800 * 4 - 1;
  EXPECT_THAT(ChooseRaggedGroups(batch.entries(), capped), ElementsAre(ElementsAre(0, 2, 3)));
}

}  // namespace
}  // namespace attnd::server::executor
