// The warp-specialised kernel's synchronisation (kernels/cuda/fused/ws_schedule.h, the schedule
// wgmma_ws_kernel.cuh follows) run on the host, without a device: the producer's four warps and
// the consumers' eight, each a program of the waits, arrivals, copies and GEMM reads the kernel
// makes (ProduceTiles and the consumer loop, op for op), interleaved at random with the landing
// of the copies in flight, against models of mbarriers (arrival counts as the kernel initialises
// them, transaction counts, phase parities), named barriers (bar.sync / bar.arrive generations of
// a thread count: the consumers' 256-thread turns, the producer's 128-thread kVFreeBarrier and
// kVLandedBarrier) and cp.async groups (wait_group N: all but the newest N landed;
// cp.async.mbarrier.arrive: an arrival once the thread's earlier copies landed).
// Both producer paths run: cp.async (every producer warp copies its part of K_n and V_n and
// waits on the empty barriers) and TMA (thread 0 alone copies K_n and V_n; every producer thread
// waits, or with kLeaderAloneWaits thread 0 alone; a last block past the CTA's last key copies
// its V by all producer threads). With a bias, its tiles come by
// rows (every producer thread, one or two stages) or, with TMA, as TMA tiles (thread 0, two).
// Every interleaving must finish (no deadlock, no copy in flight at exit, no named barrier
// generation half-arrived); no copy may land on a block that still has reads to come; every read
// must see the block it wants from issue to completion. Copies land at any time; warps run
// fairly (kMaxStall) and then with no bound at all (a warp may sleep through any number of
// blocks): the kernel's TMA path hangs only then, the schedule with kLeaderAloneWaits never.
// Schedules with one rule broken are run too, and must be caught.
#include "kernels/cuda/fused/ws_schedule.h"

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
constexpr int kConsumerWarps = 8;  // two warpgroups of four
constexpr int kWarps = kProducerWarps + kConsumerWarps;
constexpr int kParts = kProducerWarps;  // a tile's parts: what each producer warp copies
constexpr int kAllParts = -1;
constexpr int kNamedBarriers = 16;
constexpr int kConsumerThreads = 256;  // the turn barriers'
constexpr int kBlockN = 64;            // keys of a block (only where a block ends matters)

enum Tile : int { kQ = 0, kK0, kK1, kV0, kV1, kBias0, kBias1, kTiles };
constexpr const char* kTileNames[kTiles] = {"Q", "K 0", "K 1", "V 0", "V 1", "bias 0", "bias 1"};
enum Barrier : int {
  kQFull = 0,
  kKFull0,
  kKFull1,
  kVFull0,
  kVFull1,
  kKEmpty0,
  kKEmpty1,
  kVEmpty0,
  kVEmpty1,
  kBiasFull0,
  kBiasFull1,
  kBiasEmpty0,
  kBiasEmpty1,
  kBarriers
};
constexpr const char* kBarrierNames[kBarriers] = {
    "Q full",      "K full 0",     "K full 1",    "V full 0",  "V full 1",
    "K empty 0",   "K empty 1",    "V empty 0",   "V empty 1", "bias full 0",
    "bias full 1", "bias empty 0", "bias empty 1"};

// The reads of a block in a tile part that must end before the part is overwritten: every
// consumer warp reads all of K, V and the bias tile. Q is written once (not tracked).
int ReadersOf(int tile) { return tile == kQ ? 0 : kConsumerWarps; }

enum class BiasCopy { kNone, kRows, kTiles };
const char* NameOf(BiasCopy bias) {
  return bias == BiasCopy::kNone ? "no bias"
                                 : (bias == BiasCopy::kRows ? "bias by rows" : "bias tiles");
}

// Events a warp ready to run may be passed over: fair warp scheduling, well short of a block
// (over 100 events of this model). Copies may land arbitrarily late.
constexpr int kMaxStall = 16;
constexpr int kUnboundedStall = 1 << 30;

struct Config {
  int blocks = 1;
  bool tma = false;         // K and V by TMA (ProduceTiles' kTma)
  bool short_tail = false;  // keys short of the last block's end: with TMA its V comes by threads
  BiasCopy bias = BiasCopy::kNone;
  int bias_stages = 1;  // by rows: WsShape::kBiasStages (1 or 2); TMA tiles: kBiasTileStages (2)
  bool ping_pong = false;
  int max_stall = kMaxStall;
};

// Arrivals that complete a phase: wgmma_ws_kernel.cuh's mbarrier.init counts.
int ArrivalsOf(int barrier, const Config& c) {
  switch (barrier) {
    case kQFull:
      return 128;  // every producer thread
    case kKFull0:
    case kKFull1:
    case kVFull0:
    case kVFull1:
      return c.tma ? 1 : 128;  // thread 0's arrive.expect_tx (or arrive), else every thread
    case kBiasFull0:
    case kBiasFull1:
      return c.bias == BiasCopy::kTiles ? 1 : 256;  // by rows: two of every producer thread
    case kBiasEmpty0:
    case kBiasEmpty1:
      return 256;  // every consumer thread
    default:
      return kConsumerWarps;  // K and V empty: lane 0 of each consumer warp
  }
}

using MBarrier = ::attnd::kernels::schedule_model::MBarrierModel;
using NamedBarrier = ::attnd::kernels::schedule_model::NamedBarrierModel<kWarps>;

struct Op {
  enum Kind {
    kWait,           // mbarrier try_wait loop: target barrier, value parity
    kArrive,         // target barrier, value arriving threads
    kTma,            // arrive.expect_tx on aux by one thread, then the copy of block value
    kCpAsync,        // the warp's part of block value into tile target, one committed group
    kCpAsyncArrive,  // cp.async.mbarrier.arrive.noinc: value threads on target, once landed
    kCpAsyncWait,    // wait_group value
    kBeginRead,      // target tile, value block
    kEndRead,
    kSync,         // bar.sync: target named barrier, value threads
    kArriveNamed,  // bar.arrive
  };
  Kind kind;
  int target = 0;
  int value = 0;
  int aux = 0;
};

// Thread 0 is modelled as its whole warp 0: the warp's other threads copy, arrive and meet at
// the named barriers as the other warps do, and reach bar.sync converged (it is .aligned), so
// only with thread 0; where they run ahead of it alone, warps 1-3 do the same.
template <class S>
std::vector<Op> ProducerProgram(const Config& c, int warp) {
  std::vector<Op> ops;
  if (c.blocks == 0) return ops;  // the producer returns before ProduceTiles
  const bool leader = warp == 0;
  const int key_hi = kBlockN * c.blocks - (c.short_tail ? 5 : 0);
  ops.push_back({Op::kCpAsync, kQ, 0});
  for (int n = 0; n < c.blocks; ++n) {
    const int stage = S::Stage(n);
    const int kb = kBlockN * n;
    // ProducerLoadBias.
    if (c.bias != BiasCopy::kNone && (c.bias == BiasCopy::kRows || leader)) {
      const int bs = S::BiasStage(n, c.bias_stages);
      if (S::WaitsForBiasEmpty(n, c.bias_stages)) {
        ops.push_back({Op::kWait, kBiasEmpty0 + bs, int(S::BiasEmptyParity(n, c.bias_stages))});
      }
      if (c.bias == BiasCopy::kTiles) {
        ops.push_back({Op::kTma, kBias0 + bs, n, kBiasFull0 + bs});
      } else {
        ops.push_back({Op::kCpAsync, kBias0 + bs, n});
        ops.push_back({Op::kCpAsyncArrive, kBiasFull0 + bs, 32});
        ops.push_back({Op::kArrive, kBiasFull0 + bs, 32});
      }
    }
    const bool v_by_threads = !c.tma || kb + kBlockN > key_hi;
    const bool waits_for_empty = S::WaitsForEmpty(n, c.tma, leader);
    const int empty_parity = int(S::EmptyParity(n));
    if (waits_for_empty) ops.push_back({Op::kWait, kKEmpty0 + stage, empty_parity});
    if (!c.tma) {
      ops.push_back({Op::kCpAsync, kK0 + stage, n});
    } else if (leader) {
      ops.push_back({Op::kTma, kK0 + stage, n, kKFull0 + stage});
    }
    if (waits_for_empty) ops.push_back({Op::kWait, kVEmpty0 + stage, empty_parity});
    if (v_by_threads) {
      if (S::SyncsVFree(n, c.tma, v_by_threads)) {
        ops.push_back({Op::kSync, S::kVFreeBarrier, S::kProducerThreads});
      }
      ops.push_back({Op::kCpAsync, kV0 + stage, n});
    } else if (leader) {
      ops.push_back({Op::kTma, kV0 + stage, n, kVFull0 + stage});
    }
    // The thread's groups: Q (block 0), the bias tile by rows, K (without TMA), V by threads.
    const int bias_group = c.bias == BiasCopy::kRows ? 1 : 0;
    const int k_group = c.tma ? 0 : 1;
    const int v_group = v_by_threads ? 1 : 0;
    if (n == 0) {
      ops.push_back({Op::kCpAsyncWait, 0, bias_group + k_group + v_group});
      ops.push_back({Op::kArrive, kQFull, 32});
    }
    if (!c.tma) {
      ops.push_back({Op::kCpAsyncWait, 0, 1});
      ops.push_back({Op::kArrive, kKFull0 + stage, 32});
    }
    if (v_by_threads) {
      ops.push_back({Op::kCpAsyncWait, 0, 0});
      if (c.tma) {
        ops.push_back({Op::kSync, S::kVLandedBarrier, S::kProducerThreads});
        if (leader) ops.push_back({Op::kArrive, kVFull0 + stage, 1});
      } else {
        ops.push_back({Op::kArrive, kVFull0 + stage, 32});
      }
    }
  }
  return ops;
}

template <class S>
std::vector<Op> ConsumerProgram(const Config& c, int cw) {
  std::vector<Op> ops;
  const int n_blocks = c.blocks;
  if (n_blocks == 0) return ops;
  const auto read = [&](int tile, int block) {
    ops.push_back({Op::kBeginRead, tile, block});
    ops.push_back({Op::kEndRead, tile, block});
  };
  const auto take_turn = [&] {
    if (c.ping_pong) ops.push_back({Op::kSync, S::TurnBarrier(cw), kConsumerThreads});
  };
  const auto pass_turn = [&](bool last) {
    if (c.ping_pong && S::PassesTurn(cw, last)) {
      ops.push_back({Op::kArriveNamed, S::TurnBarrier(1 - cw), kConsumerThreads});
    }
  };
  const auto start_scores = [&](int n) {  // StartScores: every thread reads and releases
    if (c.bias == BiasCopy::kNone) return;
    const int bs = S::BiasStage(n, c.bias_stages);
    ops.push_back({Op::kWait, kBiasFull0 + bs, int(S::BiasFullParity(n, c.bias_stages))});
    read(kBias0 + bs, n);
    ops.push_back({Op::kArrive, kBiasEmpty0 + bs, 32});
  };
  if (c.ping_pong && S::GivesFirstTurn(cw)) {
    ops.push_back({Op::kArriveNamed, S::TurnBarrier(1 - cw), kConsumerThreads});
  }
  ops.push_back({Op::kWait, kQFull, 0});
  ops.push_back({Op::kBeginRead, kQ, 0});
  // Block 0: S_0 alone.
  start_scores(0);
  ops.push_back({Op::kWait, kKFull0 + S::Stage(0), int(S::FullParity(0))});
  take_turn();
  ops.push_back({Op::kBeginRead, kK0 + S::Stage(0), 0});
  pass_turn(false);
  ops.push_back({Op::kEndRead, kK0 + S::Stage(0), 0});
  ops.push_back({Op::kArrive, kKEmpty0 + S::Stage(0), 1});  // ReleaseTile: lane 0
  for (int n = 1; n < n_blocks; ++n) {
    const int stage = S::Stage(n);
    const int prev = S::Stage(n - 1);
    start_scores(n);
    ops.push_back({Op::kWait, kKFull0 + stage, int(S::FullParity(n))});
    take_turn();
    ops.push_back({Op::kBeginRead, kK0 + stage, n});
    ops.push_back({Op::kWait, kVFull0 + prev, int(S::FullParity(n - 1))});
    ops.push_back({Op::kBeginRead, kV0 + prev, n - 1});
    pass_turn(false);
    ops.push_back({Op::kEndRead, kK0 + stage, n});  // wgmma.wait_group 1
    ops.push_back({Op::kArrive, kKEmpty0 + stage, 1});
    ops.push_back({Op::kEndRead, kV0 + prev, n - 1});  // wgmma.wait_group 0
    ops.push_back({Op::kArrive, kVEmpty0 + prev, 1});
  }
  const int last = S::Stage(n_blocks - 1);
  ops.push_back({Op::kWait, kVFull0 + last, int(S::FullParity(n_blocks - 1))});
  take_turn();
  ops.push_back({Op::kBeginRead, kV0 + last, n_blocks - 1});
  pass_turn(true);
  ops.push_back({Op::kEndRead, kV0 + last, n_blocks - 1});
  ops.push_back({Op::kEndRead, kQ, 0});
  return ops;
}

struct Copy {
  int tile = 0;
  int part = kAllParts;  // TMA: the whole tile
  int block = 0;
  int barrier = -1;  // TMA: the barrier whose transaction count it completes
  bool landed = false;
  int speed = 1;  // its weight in the choice of the next event
};

// A cp.async.mbarrier.arrive not yet triggered: the warp's first `groups` copies must land.
struct AsyncArrival {
  int actor = 0;
  size_t groups = 0;
  int barrier = 0;
  int threads = 0;
};

struct Actor {
  int warp = 0;  // 0-3 the producer's, 4-11 the consumers'
  std::vector<Op> program;
  size_t pc = 0;
  int joined_generation = -1;    // inside a kSync: the generation it arrived in
  std::vector<int> groups = {};  // its cp.async groups (indices into copies), in issue order
  mutable size_t landed = 0;     // how many of the first groups are known to have landed
  int speed = 1;                 // its weight in the choice of the next event
  int ready_since = -1;          // the event from which it could have run
};

std::string NameOf(int warp) {
  return warp < kProducerWarps ? absl::StrCat("producer warp ", warp)
                               : absl::StrCat("consumer ", (warp - kProducerWarps) / 4, " warp ",
                                              (warp - kProducerWarps) % 4);
}

// One CTA's run under one random interleaving.
template <class S>
class Cta {
 public:
  explicit Cta(const Config& c) : max_stall_(c.max_stall) {
    for (int b = 0; b < kBarriers; ++b) {
      barriers_[b].expected = barriers_[b].pending = ArrivalsOf(b, c);
    }
    for (int w = 0; w < kProducerWarps; ++w) actors_.push_back({w, ProducerProgram<S>(c, w)});
    for (int w = 0; w < kConsumerWarps; ++w) {
      actors_.push_back({kProducerWarps + w, ConsumerProgram<S>(c, w / 4)});
    }
    for (auto& parts : blocks_) {
      for (int& block : parts) block = -1;
    }
  }

  // "" or what went wrong. Each warp and each copy gets a random speed, so that one lagging far
  // behind the others (a copy landing late, a warp stalled) is as likely as an even interleaving.
  std::string Run(uint32_t seed) {
    rng_.seed(seed);
    for (Actor& a : actors_) a.speed = RandomSpeed();
    std::vector<int> events;  // actors >= 0, copies landing ~copy
    std::vector<int> weights;
    for (int step = 0;; ++step) {
      events.clear();
      weights.clear();
      int total = 0;
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
        weights.push_back(total += a.speed);
      }
      for (int i : in_flight_) {
        if (all_done) {
          return absl::StrCat("the CTA exits with a copy of ", kTileNames[copies_[i].tile],
                              " in flight");
        }
        events.push_back(~i);
        weights.push_back(total += copies_[i].speed);
      }
      if (events.empty()) break;
      int e = starved;
      if (e < 0) {
        const int pick = static_cast<int>(rng_() % static_cast<uint32_t>(total));
        size_t k = 0;
        while (weights[k] <= pick) ++k;
        e = events[k];
      }
      if (e >= 0) actors_[e].ready_since = -1;
      const std::string why = e >= 0 ? Step(actors_[e]) : Land(~e);
      if (!why.empty()) return why;
    }
    std::string stuck;
    for (const Actor& a : actors_) {
      if (a.pc < a.program.size()) absl::StrAppend(&stuck, " ", NameOf(a.warp), Blocked(a), ";");
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

  // Whether the warp's first `groups` cp.async groups have landed.
  bool Landed(const Actor& a, size_t groups) const {
    while (a.landed < groups && copies_[a.groups[a.landed]].landed) ++a.landed;
    return a.landed >= groups;
  }

  bool Ready(const Actor& a) const {
    if (a.pc >= a.program.size()) return false;
    const Op& op = a.program[a.pc];
    switch (op.kind) {
      case Op::kWait:
        return barriers_[op.target].TryWait(static_cast<uint32_t>(op.value));
      case Op::kCpAsyncWait:
        return a.groups.size() <= static_cast<size_t>(op.value) ||
               Landed(a, a.groups.size() - op.value);
      case Op::kSync:
        return a.joined_generation < 0 || named_[op.target].generation > a.joined_generation;
      default:
        return true;
    }
  }

  // What a warp stuck at its next op waits for.
  std::string Blocked(const Actor& a) const {
    const Op& op = a.program[a.pc];
    switch (op.kind) {
      case Op::kWait:
        return absl::StrCat(" waits for parity ", op.value, " of ", kBarrierNames[op.target], " (",
                            barriers_[op.target].completed, " phases completed)");
      case Op::kCpAsyncWait:
        return absl::StrCat(" waits for its cp.async groups (", op.value, " left pending)");
      case Op::kSync:
        return absl::StrCat(" waits at named barrier ", op.target);
      default:
        return absl::StrCat(" at op ", a.pc);
    }
  }

  std::string Step(Actor& a) {
    const Op& op = a.program[a.pc];
    bool arrived = true;
    std::string why;
    switch (op.kind) {
      case Op::kWait:
      case Op::kCpAsyncWait:
        break;
      case Op::kArrive:
        arrived = barriers_[op.target].Arrive(op.value).empty();
        break;
      case Op::kTma:  // arrive.expect_tx, then the boxes
        ++barriers_[op.aux].tx;
        arrived = barriers_[op.aux].Arrive(1).empty();
        in_flight_.push_back(static_cast<int>(copies_.size()));
        copies_.push_back({op.target, kAllParts, op.value, op.aux, false, RandomSpeed()});
        break;
      case Op::kCpAsync:
        a.groups.push_back(static_cast<int>(copies_.size()));
        in_flight_.push_back(static_cast<int>(copies_.size()));
        copies_.push_back({op.target, a.warp, op.value, -1, false, RandomSpeed()});
        break;
      case Op::kCpAsyncArrive:
        async_arrivals_.push_back(
            {static_cast<int>(&a - actors_.data()), a.groups.size(), op.target, op.value});
        arrived = FireAsyncArrivals();
        break;
      case Op::kBeginRead:
      case Op::kEndRead:
        why = Read(op);
        break;
      case Op::kSync:
      case Op::kArriveNamed: {
        if (op.kind == Op::kSync && a.joined_generation >= 0) {  // released
          a.joined_generation = -1;
          break;
        }
        int joined = 0;
        why = named_[op.target].Join(NameOf(a.warp), op.target, a.warp, op.value, &joined);
        if (!why.empty()) return why;
        if (op.kind == Op::kSync) {
          a.joined_generation = joined;
          return "";  // the same op again, to leave once the generation completes
        }
        break;
      }
    }
    if (!arrived) return absl::StrCat(NameOf(a.warp), ": an arrival past the phase's count");
    if (!why.empty()) return absl::StrCat(NameOf(a.warp), " ", why);
    ++a.pc;
    return "";
  }

  // Triggers the cp.async.mbarrier.arrive arrivals whose copies have all landed.
  bool FireAsyncArrivals() {
    for (size_t i = 0; i < async_arrivals_.size();) {
      const AsyncArrival& aa = async_arrivals_[i];
      if (!Landed(actors_[aa.actor], aa.groups)) {
        ++i;
        continue;
      }
      if (!barriers_[aa.barrier].Arrive(aa.threads).empty()) return false;
      async_arrivals_[i] = async_arrivals_.back();
      async_arrivals_.pop_back();
    }
    return true;
  }

  std::string Land(int index) {
    Copy& copy = copies_[index];
    copy.landed = true;
    for (size_t i = 0; i < in_flight_.size(); ++i) {
      if (in_flight_[i] == index) {
        in_flight_[i] = in_flight_.back();
        in_flight_.pop_back();
        break;
      }
    }
    std::string why;
    for (int part = copy.part == kAllParts ? 0 : copy.part;
         part < (copy.part == kAllParts ? kParts : copy.part + 1) && why.empty(); ++part) {
      why = Write(copy.tile, part, copy.block);
    }
    if (!why.empty()) return absl::StrCat("a copy landing: ", why);
    if (copy.barrier >= 0) {
      MBarrier& b = barriers_[copy.barrier];
      --b.tx;
      b.MaybeComplete();
    }
    return FireAsyncArrivals() ? "" : "a cp.async arrival past the phase's count";
  }

  std::string Write(int tile, int part, int block) {
    if (blocks_[tile][part] >= 0 && reads_left_[tile][part] > 0) {
      return absl::StrCat("block ", block, " written over block ", blocks_[tile][part], " of ",
                          kTileNames[tile], " part ", part, " with ", reads_left_[tile][part],
                          " reads of it to come");
    }
    blocks_[tile][part] = block;
    reads_left_[tile][part] = ReadersOf(tile);
    return "";
  }

  std::string Read(const Op& op) {
    for (int part = 0; part < kParts; ++part) {
      if (blocks_[op.target][part] != op.value) {
        return absl::StrCat(op.kind == Op::kBeginRead ? "began" : "ended", " reading block ",
                            op.value, " of ", kTileNames[op.target], " whose part ", part,
                            " holds block ", blocks_[op.target][part]);
      }
      if (op.kind == Op::kEndRead && ReadersOf(op.target) > 0) --reads_left_[op.target][part];
    }
    return "";
  }

  MBarrier barriers_[kBarriers];
  NamedBarrier named_[kNamedBarriers];
  int blocks_[kTiles][kParts];  // the block each part holds (-1: none yet)
  int reads_left_[kTiles][kParts] = {};
  std::vector<Actor> actors_;
  std::vector<Copy> copies_;
  std::vector<int> in_flight_;  // copies not landed
  std::vector<AsyncArrival> async_arrivals_;
  const int max_stall_;
  std::mt19937 rng_;
};

// Which configurations a sweep runs, and how long a ready warp may be passed over.
struct Sweep {
  int max_stall = kMaxStall;
  bool tma_only = false;
  bool ping_pong_only = false;
  bool cp_async_only = false;
};

// Interleavings of each configuration: the kernel's TMA hang first shows at 5 blocks,
// seed 48; the whole file runs in about 3.5 s.
constexpr int kSeeds = 100;

// The first failure over many interleavings of every configuration, or "".
template <class S>
std::string FirstFailureOf(const Sweep& sweep) {
  struct BiasCase {
    BiasCopy copy;
    int stages;
  };
  constexpr BiasCase kBiasCases[] = {
      {BiasCopy::kNone, 1}, {BiasCopy::kRows, 1}, {BiasCopy::kRows, 2}, {BiasCopy::kTiles, 2}};
  for (bool tma : {false, true}) {
    if (sweep.tma_only && !tma) continue;
    if (sweep.cp_async_only && tma) continue;
    for (int blocks : {0, 1, 2, 3, 5, 8}) {
      for (const BiasCase& bias : kBiasCases) {
        if (bias.copy == BiasCopy::kTiles && !tma) continue;  // bias tiles come by TMA
        for (bool short_tail : {false, true}) {
          if (short_tail && !tma) continue;  // by cp.async every V is copied by threads
          for (bool ping_pong : {false, true}) {
            if (sweep.ping_pong_only && !ping_pong) continue;
            const Config c{blocks,      tma,       short_tail,     bias.copy,
                           bias.stages, ping_pong, sweep.max_stall};
            for (uint32_t seed = 0; seed < kSeeds; ++seed) {
              const std::string why = Cta<S>(c).Run(seed);
              if (!why.empty()) {
                return absl::StrCat(
                    tma ? "TMA" : "cp.async", ", ", blocks, " blocks",
                    short_tail ? " (the last V by threads)" : "", ", ", NameOf(bias.copy),
                    bias.copy == BiasCopy::kNone ? ""
                                                 : absl::StrCat(" in ", bias.stages, " stages"),
                    ping_pong ? ", ping-pong" : "", ", ",
                    sweep.max_stall == kMaxStall ? "fair scheduling" : "unbounded stalls",
                    ", seed ", seed, ": ", why);
              }
            }
          }
        }
      }
    }
  }
  return "";
}

// The schedule with kLeaderAloneWaits on (ws_schedule.h): with TMA thread 0 alone waits on the
// K and V empty barriers, the others meet it at kVFreeBarrier before copying a last V.
struct LeaderAloneWaits : WsSchedule {
  static bool WaitsForEmpty(int n, bool tma, bool leader) {
    return n >= kStages && (leader || !tma);
  }
  static bool SyncsVFree(int n, bool tma, bool v_by_threads) {
    return tma && v_by_threads && n >= kStages;
  }
};

TEST(WsScheduleTest, EveryInterleavingFinishesAndReadsItsOwnBlockUnderFairScheduling) {
  EXPECT_EQ(FirstFailureOf<WsSchedule>({kMaxStall}), "");
  EXPECT_EQ(FirstFailureOf<LeaderAloneWaits>({kMaxStall}), "");
}

TEST(WsScheduleTest, EveryInterleavingFinishesAndReadsItsOwnBlockWhenWarpsSleep) {
  EXPECT_EQ(FirstFailureOf<WsSchedule>({kUnboundedStall, false, false, true}), "");  // cp.async
  EXPECT_EQ(FirstFailureOf<LeaderAloneWaits>({kUnboundedStall}), "");
}

// The kernel's TMA path (kLeaderAloneWaits off): every producer thread waits on the K and V
// empty barriers, though only thread 0 copies. Fair scheduling hides the hazard; a producer warp
// that sleeps through two releases of a stage waits on a parity come round again, for a
// completion that never comes.
TEST(WsScheduleTest, TheKernelsTmaPathHangsOnlyWhenAWarpSleeps) {
  EXPECT_EQ(FirstFailureOf<WsSchedule>({kMaxStall, true}), "");
  const std::string why = FirstFailureOf<WsSchedule>({kUnboundedStall, true});
  RecordProperty("hangs", why);
  EXPECT_NE(why.find("deadlock:"), std::string::npos) << why;
  EXPECT_NE(why.find(" empty "), std::string::npos) << why;  // a producer warp's wait
  EXPECT_EQ(why.find("producer warp 0 waits for parity"), std::string::npos) << why;
}

// The same model must catch a schedule with one rule wrong.
struct EmptyWaitedOneUseLate : WsSchedule {
  static uint32_t EmptyParity(int n) { return FullParity(n); }
};
struct NoWaitForEmpty : WsSchedule {
  static bool WaitsForEmpty(int, bool, bool) { return false; }
};
struct NoVFreeBarrier : LeaderAloneWaits {  // the others copy a last V without waiting
  static bool SyncsVFree(int, bool, bool) { return false; }
};
struct ProducerBarriersOfOneWarp : WsSchedule {  // kVFreeBarrier and kVLandedBarrier
  static constexpr int kProducerThreads = 32;
};
struct VLandedOnATurnBarrier : WsSchedule {
  static constexpr int kVLandedBarrier = 1;
};
struct BiasRefilledEarly : WsSchedule {
  static bool WaitsForBiasEmpty(int, int) { return false; }
};
struct BiasEmptyWaitedOneUseLate : WsSchedule {
  static uint32_t BiasEmptyParity(int n, int stages) { return BiasFullParity(n, stages); }
};
struct BiasInOneStageAlways : WsSchedule {  // two tiles, but waits as if there were one
  static bool WaitsForBiasEmpty(int n, int) { return n >= 1; }
  static uint32_t BiasEmptyParity(int n, int stages) { return BiasFullParity(n - 1, stages); }
};
struct FullWaitedAUseEarly : WsSchedule {
  static uint32_t FullParity(int n) { return static_cast<uint32_t>((n / kStages + 1) % 2); }
};
struct LastTurnPassed : WsSchedule {
  static bool PassesTurn(int, bool) { return true; }
};
struct NoFirstTurn : WsSchedule {
  static bool GivesFirstTurn(int) { return false; }
};

// The producer's named barriers exist only with TMA; the turns only where the consumers take
// them.
constexpr Sweep kEverySweep{};
constexpr Sweep kTmaSweep{kMaxStall, true, false};
constexpr Sweep kPingPongSweep{kMaxStall, false, true};
constexpr Sweep kTmaPingPongSweep{kMaxStall, true, true};

struct BrokenCase {
  const char* name;
  std::string (*first_failure)(const Sweep&);  // under fair scheduling: the kernel's own
                                               // TMA schedule hangs without it
  Sweep sweep;
};

class WsScheduleBrokenTest : public testing::TestWithParam<BrokenCase> {};

TEST_P(WsScheduleBrokenTest, IsCaught) {
  const std::string why = GetParam().first_failure(GetParam().sweep);
  EXPECT_NE(why, "");
  RecordProperty("caught", why);
}

INSTANTIATE_TEST_SUITE_P(
    Broken, WsScheduleBrokenTest,
    testing::Values(
        BrokenCase{"EmptyWaitedOneUseLate", &FirstFailureOf<EmptyWaitedOneUseLate>, kEverySweep},
        BrokenCase{"NoWaitForEmpty", &FirstFailureOf<NoWaitForEmpty>, kEverySweep},
        BrokenCase{"NoVFreeBarrier", &FirstFailureOf<NoVFreeBarrier>, kTmaSweep},
        BrokenCase{"ProducerBarriersOfOneWarp", &FirstFailureOf<ProducerBarriersOfOneWarp>,
                   kTmaSweep},
        BrokenCase{"VLandedOnATurnBarrier", &FirstFailureOf<VLandedOnATurnBarrier>,
                   kTmaPingPongSweep},
        BrokenCase{"BiasRefilledEarly", &FirstFailureOf<BiasRefilledEarly>, kEverySweep},
        BrokenCase{"BiasEmptyWaitedOneUseLate", &FirstFailureOf<BiasEmptyWaitedOneUseLate>,
                   kEverySweep},
        BrokenCase{"BiasInOneStageAlways", &FirstFailureOf<BiasInOneStageAlways>, kEverySweep},
        BrokenCase{"FullWaitedAUseEarly", &FirstFailureOf<FullWaitedAUseEarly>, kEverySweep},
        BrokenCase{"LastTurnPassed", &FirstFailureOf<LastTurnPassed>, kPingPongSweep},
        BrokenCase{"NoFirstTurn", &FirstFailureOf<NoFirstTurn>, kPingPongSweep}),
    [](const testing::TestParamInfo<BrokenCase>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace attnd::kernels::cuda::fused
