// The wide kernel's synchronisation (kernels/cuda/fused/wide_schedule.h, the schedule
// wgmma_wide_kernel.cuh follows) run on the host, without a device: the producer's four warps and
// the two consumers' eight, each a program of the waits, arrivals, copies, exchange writes and
// reads the kernel makes, interleaved at random with the landing of the copies in flight, against
// models of mbarriers (arrival counts, transaction counts, phase parities), named barriers
// (bar.sync generations of a thread count) and cp.async groups (wait_group N: all but the newest
// N landed). Every interleaving must finish (no deadlock, no copy in flight at exit, no named
// barrier generation half-arrived); no copy or exchange write may land on a block that still has
// readers to come (the single K and V stage refilled early, block n + 1's partial over block n's
// unread one); every read must see the block it wants from start to end. Copies land at any
// time; warps run fairly (kMaxStall) and then with no bound at all (a warp may sleep through any
// number of blocks): the kernel's schedule hangs only then, the one with kLeaderAloneWaits never.
// Schedules with one rule broken are run too, and must be caught.
#include "kernels/cuda/fused/wide_schedule.h"

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/gpu/barrier_model.h"

namespace attnd::kernels::cuda::fused {
namespace {

// The model's own counts (the schedule's are what is tested).
constexpr int kProducerWarps = 4;
constexpr int kConsumerWarps = 8;  // two consumers of four
constexpr int kWarps = kProducerWarps + kConsumerWarps;
constexpr int kParts = 4;  // a tile's parts: one per producer warp, or per consumer warp
constexpr int kAllParts = -1;
constexpr int kNamedBarriers = 16;

enum Tile : int { kQ = 0, kK, kV, kExchange0, kExchange1, kTiles };
enum Barrier : int { kQFull = 0, kKFull, kVFull, kKEmpty, kVEmpty, kBarriers };

// The reads of a block in a tile part that must end before the part is overwritten: every
// consumer warp reads all of K and V; part p of consumer c's exchange is read by the other's
// warp p. Q is written once (not tracked).
int ReadersOf(int tile) {
  if (tile == kK || tile == kV) return kConsumerWarps;
  return tile == kQ ? 0 : 1;
}

using MBarrier = ::attnd::kernels::schedule_model::MBarrierModel;
using NamedBarrier = ::attnd::kernels::schedule_model::NamedBarrierModel<kWarps>;

struct Op {
  enum Kind { kWait, kArrive, kTma, kCpAsync, kCpAsyncWait, kWrite, kBeginRead, kEndRead, kSync };
  Kind kind;
  int target = 0;  // barrier, tile or named barrier
  int value = 0;   // parity, arriving threads, block, groups left pending, or bar.sync threads
  int aux = 0;     // kTma: its full barrier; reads: the part (kAllParts)
};

struct Copy {
  int tile = 0;
  int part = kAllParts;
  int block = 0;
  int barrier = -1;  // TMA: the barrier whose transaction count it completes
  bool landed = false;
  int speed = 1;  // its weight in the choice of the next event
};

// Events a warp ready to run may be passed over: fair warp scheduling, well short of a block
// (about 130 events of this model). Copies may land arbitrarily late.
constexpr int kMaxStall = 16;
constexpr int kUnboundedStall = 1 << 30;

struct Config {
  int blocks = 1;
  int key_hi = 64;  // past it, the last block's V is copied by threads
  int max_stall = kMaxStall;
};

template <class S>
std::vector<Op> ProducerProgram(const Config& c, int warp) {
  std::vector<Op> ops;
  if (c.blocks == 0) return ops;
  const bool leader = warp == 0;  // thread 0
  ops.push_back({Op::kCpAsync, kQ, 0});
  for (int n = 0; n < c.blocks; ++n) {
    const bool v_by_threads = S::LoadsVByThreads(64 * n, c.key_hi);
    const int empty_parity = static_cast<int>(S::EmptyParity(n));
    const bool waits_for_empty = S::WaitsForEmpty(n, leader);
    if (waits_for_empty) ops.push_back({Op::kWait, kKEmpty, empty_parity});
    if (leader) ops.push_back({Op::kTma, kK, n, kKFull});
    if (waits_for_empty) ops.push_back({Op::kWait, kVEmpty, empty_parity});
    if (v_by_threads) {
      if (S::SyncsVFree(n, v_by_threads)) {
        ops.push_back({Op::kSync, S::kVFreeBarrier, S::kProducerThreads});
      }
      ops.push_back({Op::kCpAsync, kV, n});
    } else if (leader) {
      ops.push_back({Op::kTma, kV, n, kVFull});
    }
    if (S::ReleasesQ(n)) {
      ops.push_back({Op::kCpAsyncWait, 0, S::GroupsPendingAfterQ(v_by_threads)});
      ops.push_back({Op::kArrive, kQFull, 32});
    }
    if (v_by_threads) {
      ops.push_back({Op::kCpAsyncWait, 0, 0});
      ops.push_back({Op::kSync, S::kVLandedBarrier, S::kProducerThreads});
      if (leader) ops.push_back({Op::kArrive, kVFull, 1});
    }
  }
  return ops;
}

template <class S>
std::vector<Op> ConsumerProgram(const Config& c, int consumer, int part) {
  std::vector<Op> ops;
  if (c.blocks == 0) return ops;
  const auto read = [&](int tile, int block, int read_part) {
    ops.push_back({Op::kBeginRead, tile, block, read_part});
    ops.push_back({Op::kEndRead, tile, block, read_part});
  };
  ops.push_back({Op::kWait, kQFull, static_cast<int>(S::kQFullParity)});
  for (int n = 0; n < c.blocks; ++n) {
    ops.push_back({Op::kWait, kKFull, static_cast<int>(S::FullParity(n))});
    ops.push_back({Op::kBeginRead, kQ, 0, kAllParts});
    read(kK, n, kAllParts);  // its Q·Kᵀ chain, waited for
    ops.push_back({Op::kEndRead, kQ, 0, kAllParts});
    ops.push_back({Op::kArrive, kKEmpty, 1});  // lane 0
    if (S::SyncsExchangeRead(n)) {
      ops.push_back({Op::kSync, S::kExchangeReadBarrier, S::kExchangeThreads});
    }
    ops.push_back({Op::kWrite, kExchange0 + consumer, n, part});
    ops.push_back({Op::kSync, S::kExchangeWrittenBarrier, S::kExchangeThreads});
    read(kExchange0 + 1 - consumer, n, part);
    ops.push_back({Op::kWait, kVFull, static_cast<int>(S::FullParity(n))});
    read(kV, n, kAllParts);
    ops.push_back({Op::kArrive, kVEmpty, 1});
  }
  return ops;
}

struct Actor {
  std::string name;
  int warp = 0;  // 0-3 the producer's, 4-11 the consumers'
  std::vector<Op> program;
  size_t pc = 0;
  int joined_generation = -1;    // inside a kSync: the generation it arrived in
  std::vector<int> groups = {};  // its cp.async groups (indices into copies), in issue order
  int speed = 1;                 // its weight in the choice of the next event
  int ready_since = -1;          // the event from which it could have run
};

// One CTA's run under one random interleaving.
template <class S>
class Cta {
 public:
  explicit Cta(const Config& c) : max_stall_(c.max_stall) {
    barriers_[kQFull].expected = S::kQFullArrivals;
    barriers_[kKFull].expected = barriers_[kVFull].expected = S::kKvFullArrivals;
    barriers_[kKEmpty].expected = barriers_[kVEmpty].expected = S::kKvEmptyArrivals;
    for (MBarrier& b : barriers_) b.pending = b.expected;
    for (int w = 0; w < kProducerWarps; ++w) {
      actors_.push_back({absl::StrCat("producer warp ", w), w, ProducerProgram<S>(c, w)});
    }
    for (int w = 0; w < kConsumerWarps; ++w) {
      actors_.push_back({absl::StrCat("consumer ", w / 4, " warp ", w % 4), kProducerWarps + w,
                         ConsumerProgram<S>(c, w / 4, w % 4)});
    }
  }

  // "" or what went wrong.
  // Each warp and each copy gets a random speed, so that one lagging far behind the others (a
  // copy landing late, a warp stalled) is as likely as an even interleaving.
  std::string Run(uint32_t seed) {
    rng_.seed(seed);
    for (Actor& a : actors_) a.speed = RandomSpeed();
    for (int step = 0;; ++step) {
      std::vector<int> events;  // actors >= 0, copies landing ~copy
      std::vector<int> weights;
      int starved = -1;  // the warp ready the longest, once past max_stall_
      bool all_done = true;
      for (size_t i = 0; i < actors_.size(); ++i) {
        Actor& a = actors_[i];
        if (a.pc < a.program.size()) all_done = false;
        if (!Ready(a)) {
          a.ready_since = -1;
          continue;
        }
        if (a.ready_since < 0) a.ready_since = step;
        if (step - a.ready_since > max_stall_ &&
            (starved < 0 || a.ready_since < actors_[starved].ready_since)) {
          starved = static_cast<int>(i);
        }
        events.push_back(static_cast<int>(i));
        weights.push_back(a.speed);
      }
      for (size_t i = 0; i < copies_.size(); ++i) {
        if (copies_[i].landed) continue;
        if (all_done)
          return absl::StrCat("the CTA exits with a copy of tile ", copies_[i].tile, " in flight");
        events.push_back(~static_cast<int>(i));
        weights.push_back(copies_[i].speed);
      }
      if (events.empty()) break;
      const int e =
          starved >= 0
              ? starved
              : events[std::discrete_distribution<int>(weights.begin(), weights.end())(rng_)];
      if (e >= 0) actors_[e].ready_since = -1;
      const std::string why = e >= 0 ? Step(actors_[e]) : Land(copies_[~e]);
      if (!why.empty()) return why;
    }
    std::string stuck;
    for (const Actor& a : actors_) {
      if (a.pc < a.program.size()) {
        absl::StrAppend(&stuck, " ", a.name, " at op ", a.pc, " (kind ", a.program[a.pc].kind,
                        ", target ", a.program[a.pc].target, ");");
      }
    }
    if (!stuck.empty()) return "deadlock:" + stuck;
    for (int id = 0; id < kNamedBarriers; ++id) {
      if (named_[id].arrived != 0) {
        return absl::StrCat("named barrier ", id, " ended with ", named_[id].arrived,
                            " threads in an incomplete generation");
      }
    }
    return "";
  }

 private:
  int RandomSpeed() {
    constexpr int kSpeeds[] = {1, 8, 64};
    return kSpeeds[rng_() % 3];
  }

  bool Ready(const Actor& a) const {
    if (a.pc >= a.program.size()) return false;
    const Op& op = a.program[a.pc];
    switch (op.kind) {
      case Op::kWait:
        return barriers_[op.target].TryWait(static_cast<uint32_t>(op.value));
      case Op::kCpAsyncWait:
        for (size_t i = 0; i + op.value < a.groups.size(); ++i) {
          if (!copies_[a.groups[i]].landed) return false;
        }
        return true;
      case Op::kSync:
        return a.joined_generation < 0 || named_[op.target].generation > a.joined_generation;
      default:
        return true;
    }
  }

  std::string Step(Actor& a) {
    const Op& op = a.program[a.pc];
    std::string why;
    switch (op.kind) {
      case Op::kWait:
      case Op::kCpAsyncWait:
        break;
      case Op::kArrive:
        why = barriers_[op.target].Arrive(op.value);
        break;
      case Op::kTma:  // arrive.expect_tx, then the boxes
        ++barriers_[op.aux].tx;
        why = barriers_[op.aux].Arrive(1);
        copies_.push_back({op.target, kAllParts, op.value, op.aux, false, RandomSpeed()});
        break;
      case Op::kCpAsync:
        a.groups.push_back(static_cast<int>(copies_.size()));
        copies_.push_back({op.target, a.warp, op.value, -1, false, RandomSpeed()});
        break;
      case Op::kWrite:
        why = Write(op.target, op.aux, op.value);
        break;
      case Op::kBeginRead:
      case Op::kEndRead:
        why = Read(op);
        break;
      case Op::kSync: {
        if (a.joined_generation >= 0) {  // released
          a.joined_generation = -1;
          break;
        }
        why = named_[op.target].Join(a.name, op.target, a.warp, op.value, &a.joined_generation);
        if (!why.empty()) return why;
        return "";  // the same op again, to leave once the generation completes
      }
    }
    if (!why.empty()) return absl::StrCat(a.name, ": ", why);
    ++a.pc;
    return "";
  }

  std::string Land(Copy& copy) {
    copy.landed = true;
    std::string why;
    if (copy.part == kAllParts) {
      for (int part = 0; part < kParts && why.empty(); ++part) {
        why = Write(copy.tile, part, copy.block);
      }
    } else {
      why = Write(copy.tile, copy.part, copy.block);
    }
    if (why.empty() && copy.barrier >= 0) {
      MBarrier& b = barriers_[copy.barrier];
      --b.tx;
      b.MaybeComplete();
    }
    return why.empty() ? "" : absl::StrCat("a copy landing: ", why);
  }

  std::string Write(int tile, int part, int block) {
    if (blocks_[tile][part] >= 0 && reads_left_[tile][part] > 0) {
      return absl::StrCat("block ", block, " written over block ", blocks_[tile][part], " of tile ",
                          tile, " part ", part, " with ", reads_left_[tile][part],
                          " reads of it to come");
    }
    blocks_[tile][part] = block;
    reads_left_[tile][part] = ReadersOf(tile);
    return "";
  }

  std::string Read(const Op& op) {
    const int first = op.aux == kAllParts ? 0 : op.aux;
    const int last = op.aux == kAllParts ? kParts - 1 : op.aux;
    for (int part = first; part <= last; ++part) {
      if (blocks_[op.target][part] != op.value) {
        return absl::StrCat(op.kind == Op::kBeginRead ? "began" : "ended", " reading block ",
                            op.value, " of tile ", op.target, " whose part ", part, " holds block ",
                            blocks_[op.target][part]);
      }
      if (op.kind == Op::kEndRead && ReadersOf(op.target) > 0) --reads_left_[op.target][part];
    }
    return "";
  }

  MBarrier barriers_[kBarriers];
  NamedBarrier named_[kNamedBarriers];
  int blocks_[kTiles][kParts] = {
      {-1, -1, -1, -1}, {-1, -1, -1, -1}, {-1, -1, -1, -1}, {-1, -1, -1, -1}, {-1, -1, -1, -1}};
  int reads_left_[kTiles][kParts] = {};
  std::vector<Actor> actors_;
  std::vector<Copy> copies_;
  const int max_stall_;
  std::mt19937 rng_;
};

// The first failure over many interleavings of every configuration, or "".
template <class S>
std::string FirstFailureWithStall(int max_stall) {
  for (int blocks : {0, 1, 2, 3, 7}) {
    for (int tail : {0, 5}) {  // keys short of the last block's end: its V copied by threads
      const Config c{blocks, 64 * blocks - tail, max_stall};
      for (uint32_t seed = 0; seed < 400; ++seed) {
        const std::string why = Cta<S>(c).Run(seed);
        if (!why.empty()) {
          return absl::StrCat(blocks, " blocks, ", tail, " keys short, seed ", seed, ": ", why);
        }
      }
    }
  }
  return "";
}

// The schedule with kLeaderAloneWaits on (wide_schedule.h): thread 0 alone waits on the empty
// barriers, the others meet it at kVFreeBarrier before copying a last V.
struct LeaderAloneWaits : WideSchedule {
  static bool WaitsForEmpty(int n, bool leader) { return n >= kStages && leader; }
  static bool SyncsVFree(int n, bool v_by_threads) { return v_by_threads && n >= kStages; }
};

TEST(WideScheduleTest, EveryInterleavingFinishesAndReadsItsOwnBlock) {
  EXPECT_EQ(FirstFailureWithStall<WideSchedule>(kMaxStall), "");
  EXPECT_EQ(FirstFailureWithStall<LeaderAloneWaits>(kMaxStall), "");
  EXPECT_EQ(FirstFailureWithStall<LeaderAloneWaits>(kUnboundedStall), "");
}

// The kernel's schedule (kLeaderAloneWaits off): every producer thread waits on the empty
// barriers, though in a TMA block only thread 0 copies. Fair scheduling hides the hazard; a
// producer warp that sleeps through a whole block (two releases) waits on a parity come round
// again, for a completion that never comes after the last block, and the CTA never exits.
TEST(WideScheduleTest, TheKernelsScheduleHangsOnlyWhenAWarpSleeps) {
  EXPECT_EQ(FirstFailureWithStall<WideSchedule>(kMaxStall), "");
  const std::string why = FirstFailureWithStall<WideSchedule>(kUnboundedStall);
  EXPECT_NE(why.find("deadlock: producer warp"), std::string::npos) << why;
  EXPECT_EQ(why.find("producer warp 0"), std::string::npos) << why;
  EXPECT_EQ(why.find("consumer"), std::string::npos) << why;
}

// Broken schedules are run under fair scheduling (the kernel's own hangs without it).
template <class S>
std::string FirstFailure() {
  return FirstFailureWithStall<S>(kMaxStall);
}

// The same model must catch a schedule with one rule wrong.
struct NoWaitForEmpty : WideSchedule {
  static bool WaitsForEmpty(int, bool) { return false; }
};
struct NoVFreeBarrier : LeaderAloneWaits {  // the other producer threads copy V without waiting
  static bool SyncsVFree(int, bool) { return false; }
};
struct EmptyWaitedOneUseLate : WideSchedule {
  static uint32_t EmptyParity(int n) { return FullParity(n); }
};
struct FullWaitedOneUseEarly : WideSchedule {
  static uint32_t FullParity(int n) { return static_cast<uint32_t>((n + 1) & 1); }
};
struct EmptyCountsOneConsumer : WideSchedule {
  static constexpr int kKvEmptyArrivals = 4;
};
struct QReleasedBeforeLanding : WideSchedule {
  static int GroupsPendingAfterQ(bool v_by_threads) { return v_by_threads ? 2 : 1; }
};
struct QFullCountsOneWarp : WideSchedule {
  static constexpr int kQFullArrivals = 32;
};
struct VLandedByLeaderWarpOnly : WideSchedule {  // named barrier of the leader's warp alone
  static constexpr int kProducerThreads = 32;
};
struct NoExchangeReadBarrier : WideSchedule {
  static bool SyncsExchangeRead(int) { return false; }
};
struct ExchangeReadFromBlockTwo : WideSchedule {
  static bool SyncsExchangeRead(int n) { return n > 1; }
};
struct ExchangeBarriersOfOneConsumer : WideSchedule {
  static constexpr int kExchangeThreads = 128;
};
struct ExchangeOnTheProducersBarrier : WideSchedule {
  static constexpr int kExchangeWrittenBarrier = kVLandedBarrier;
};

struct BrokenCase {
  const char* name;
  std::string (*first_failure)();
};

class WideScheduleBrokenTest : public testing::TestWithParam<BrokenCase> {};

TEST_P(WideScheduleBrokenTest, IsCaught) {
  const std::string why = GetParam().first_failure();
  EXPECT_NE(why, "");
  RecordProperty("caught", why);
}

INSTANTIATE_TEST_SUITE_P(
    Broken, WideScheduleBrokenTest,
    testing::Values(
        BrokenCase{"NoWaitForEmpty", &FirstFailure<NoWaitForEmpty>},
        BrokenCase{"NoVFreeBarrier", &FirstFailure<NoVFreeBarrier>},
        BrokenCase{"EmptyWaitedOneUseLate", &FirstFailure<EmptyWaitedOneUseLate>},
        BrokenCase{"FullWaitedOneUseEarly", &FirstFailure<FullWaitedOneUseEarly>},
        BrokenCase{"EmptyCountsOneConsumer", &FirstFailure<EmptyCountsOneConsumer>},
        BrokenCase{"QReleasedBeforeLanding", &FirstFailure<QReleasedBeforeLanding>},
        BrokenCase{"QFullCountsOneWarp", &FirstFailure<QFullCountsOneWarp>},
        BrokenCase{"VLandedByLeaderWarpOnly", &FirstFailure<VLandedByLeaderWarpOnly>},
        BrokenCase{"NoExchangeReadBarrier", &FirstFailure<NoExchangeReadBarrier>},
        BrokenCase{"ExchangeReadFromBlockTwo", &FirstFailure<ExchangeReadFromBlockTwo>},
        BrokenCase{"ExchangeBarriersOfOneConsumer", &FirstFailure<ExchangeBarriersOfOneConsumer>},
        BrokenCase{"ExchangeOnTheProducersBarrier", &FirstFailure<ExchangeOnTheProducersBarrier>}),
    [](const testing::TestParamInfo<BrokenCase>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace attnd::kernels::cuda::fused
