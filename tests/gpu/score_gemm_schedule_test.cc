// The score GEMM kernel's synchronisation (kernels/cuda/score_gemm/score_gemm_schedule.h, the
// schedule score_gemm_kernel.cuh follows) run on the host, without a device: the producer thread
// and the two consumer warpgroups' eight warps, each a program of the waits, arrivals, copies,
// wgmma issues and waits the kernel makes (Produce, MainLoop, ReleaseStage and the consumer loop
// of ScoreGemmKernel, op for op, with the ScoreGemmSchedule calls the kernel makes), interleaved
// at random with the landing of the TMA copies and the completion of the wgmma groups in flight,
// against models of
//   mbarriers      a full and an empty barrier per stage, arrival counts as the kernel
//                  initialises them (full: 1, the producer's arrive.expect_tx; empty:
//                  kEmptyArrivals), transaction counts (a stage's A and B boxes, each landing on
//                  its own), phase parities (try_wait.parity(p) passes iff the phase in progress
//                  has the other parity: a fresh barrier passes parity 1 at once);
//   named barriers bar.sync / bar.arrive generations of 256 threads (the turns), per warp: a
//                  warp arrives with its 32 threads, as the hardware counts them (finer than the
//                  warpgroup acting as one, which it contains);
//   wgmma groups   a warpgroup's wgmmas of a step, committed as one group by each of its four
//                  warps, complete at any time once all four warps committed them, in issue
//                  order; wgmma.wait_group N passes once all but the warp's newest N groups
//                  completed. A warp reads the stage from its issue until its own wait_group has
//                  seen the group complete: the model does not count on one warp's wait covering
//                  the other warps' share of the warpgroup's wgmmas.
// A stage holds what the copies wrote (local tile i, step kk, per box); a warp issuing a step
// must find both boxes of that step there and still find them when its read ends, and no copy may
// land on a stage while a warp's read of its previous contents has not ended (the copy for step
// g + kStages landing before every warp of the consumer was past its wgmma wait for step g). Every
// interleaving must finish (no deadlock, no copy or wgmma group in flight at exit, no named barrier
// generation half-arrived: an arrival no wait meets, no mbarrier with a phase half-arrived), and
// every local tile i must be stored exactly once, by each warp of warpgroup ConsumerOf(i), from its
// k_steps steps in order. Copies and wgmma groups complete at any time; warps run fairly
// (kMaxStall) and then with no bound at all (a warp may sleep through any number of steps): unlike
// the fused kernels' schedules (ws_schedule_test.cc, wide_schedule_test.cc) no waiter here can
// sleep through two phases of its barrier, so both must pass. Schedules with one rule broken are
// run too, and must be caught.
#include "kernels/cuda/score_gemm/score_gemm_schedule.h"

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/gpu/barrier_model.h"

namespace attnd::kernels::cuda::score_gemm {
namespace {

// The model's own counts (the schedule's are what is tested): ScoreGemmKernel's 384 threads are
// the producer's warpgroup (thread 0 alone works) and two consumer warpgroups of four warps.
constexpr int kConsumerGroups = 2;
constexpr int kWarpsPerGroup = 4;
constexpr int kConsumerWarps = kConsumerGroups * kWarpsPerGroup;
constexpr int kActors = kConsumerWarps + 1;  // 0-7: the consumer warps, 8: the producer thread
constexpr int kNamedBarriers = 16;
constexpr int kTurnThreads = 256;  // MainLoop's bar.sync / bar.arrive count
constexpr int kFullArrivals = 1;   // ScoreGemmKernel's mbarrier.init of a full barrier
constexpr int kParts = 2;          // a stage: A's box, then B's (two TMA copies, one barrier)
constexpr const char* kPartNames[kParts] = {"A", "B"};
constexpr int kMaxKSteps = 64;  // a stage's contents: local tile i, step kk as i·64 + kk
constexpr int kNothing = -1;

int Contents(int64_t tile, int kk) { return static_cast<int>(tile) * kMaxKSteps + kk; }
std::string NameOfContents(int contents) {
  if (contents < 0) return "nothing";
  return absl::StrCat("tile ", contents / kMaxKSteps, " step ", contents % kMaxKSteps);
}

// Events a warp ready to run may be passed over: fair warp scheduling, short of a step of a
// warpgroup (about 20 events of this model). Copies and wgmma groups may complete arbitrarily
// late.
constexpr int kMaxStall = 16;
constexpr int kUnboundedStall = 1 << 30;

// What the kernel does around the schedule's functions (score_gemm_kernel.cuh), as variants: the
// kernel's are the defaults; the others are broken kernels the model must catch.
enum class Release {
  kAfterWgmmaWait,   // the kernel: step kk - 1's stage after Wait<1>, the last after Wait<0>
  kBeforeWgmmaWait,  // step kk - 1's stage before Wait<1>, the last before Wait<0>
  kOnIssue,          // each step's stage right after its wgmmas are committed
};
struct Kernel {
  Release release = Release::kAfterWgmmaWait;
  bool takes_turns = true;       // MainLoop's bar.sync and bar.arrive
  bool gives_first_turn = true;  // warpgroup 1's bar.arrive before its tiles
};

struct Config {
  int local_tiles = 1;  // the CTA's: LocalTiles(tiles, blockIdx.x, gridDim.x)
  int k_steps = 1;
  int max_stall = kMaxStall;
  Kernel kernel = {};
};

using MBarrier = ::attnd::kernels::schedule_model::MBarrierModel;
using NamedBarrier = ::attnd::kernels::schedule_model::NamedBarrierModel<kConsumerWarps>;

struct Op {
  enum Kind {
    kWait,         // mbarrier try_wait loop: target barrier, value parity
    kArrive,       // mbarrier.arrive (lane 0 of a warp, or the producer thread): target barrier
    kTma,          // arrive.expect_tx on target barrier, then the boxes of value into stage aux
    kIssue,        // the warp's wgmmas of value from stage target, then wgmma.commit_group
    kWaitGroup,    // wgmma.wait_group value
    kSync,         // bar.sync: target named barrier, value threads
    kArriveNamed,  // bar.arrive
    kStore,        // the epilogue of local tile value
  };
  Kind kind;
  int target = 0;
  int value = 0;
  int aux = 0;
};

// Barriers: stage s's full barrier is s, its empty barrier kStages + s.
template <class S>
int FullOf(int stage) {
  return stage;
}
template <class S>
int EmptyOf(int stage) {
  return S::kStages + stage;
}

// Produce: thread 0 of warpgroup 0, every step of every local tile in the CTA's order.
template <class S>
std::vector<Op> ProducerProgram(const Config& c) {
  std::vector<Op> ops;
  for (int64_t i = 0; i < c.local_tiles; ++i) {
    for (int kk = 0; kk < c.k_steps; ++kk) {
      const int64_t g = S::Step(i, c.k_steps, kk);
      const int stage = S::Stage(g);
      if (S::WaitsForEmpty(g)) {
        ops.push_back({Op::kWait, EmptyOf<S>(stage), static_cast<int>(S::EmptyParity(g))});
      }
      ops.push_back({Op::kTma, FullOf<S>(stage), Contents(i, kk), stage});
    }
  }
  return ops;
}

// One warp of consumer warpgroup cw: ScoreGemmKernel's loop over its tiles, MainLoop (with
// ReleaseStage's arrival by lane 0) and the epilogue's stores.
template <class S>
std::vector<Op> ConsumerProgram(const Config& c, int cw) {
  std::vector<Op> ops;
  const Kernel& kernel = c.kernel;
  const int64_t local_tiles = c.local_tiles;
  const auto release = [&](int64_t g) { ops.push_back({Op::kArrive, EmptyOf<S>(S::Stage(g)), 1}); };
  if (kernel.takes_turns && kernel.gives_first_turn && cw == 1 && local_tiles > 0) {
    ops.push_back({Op::kArriveNamed, S::TurnBarrier(0), kTurnThreads});
  }
  for (int64_t i = cw; i < local_tiles; i += S::kConsumers) {
    const bool passes_turn = S::PassesTurnAfter(i, local_tiles);
    if (kernel.takes_turns) ops.push_back({Op::kSync, S::TurnBarrier(cw), kTurnThreads});
    for (int kk = 0; kk < c.k_steps; ++kk) {
      const int64_t g = S::Step(i, c.k_steps, kk);
      const int stage = S::Stage(g);
      ops.push_back({Op::kWait, FullOf<S>(stage), static_cast<int>(S::FullParity(g))});
      ops.push_back({Op::kIssue, stage, Contents(i, kk)});  // the wgmmas, then Commit
      switch (kernel.release) {
        case Release::kAfterWgmmaWait:
          if (kk > 0) {
            ops.push_back({Op::kWaitGroup, 0, 1});  // step kk - 1's group has read its stage
            release(g - 1);
          }
          break;
        case Release::kBeforeWgmmaWait:
          if (kk > 0) {
            release(g - 1);
            ops.push_back({Op::kWaitGroup, 0, 1});
          }
          break;
        case Release::kOnIssue:
          release(g);
          if (kk > 0) ops.push_back({Op::kWaitGroup, 0, 1});
          break;
      }
    }
    if (kernel.takes_turns && passes_turn) {
      ops.push_back({Op::kArriveNamed, S::TurnBarrier(1 - cw), kTurnThreads});
    }
    const int64_t last = S::Step(i, c.k_steps, c.k_steps - 1);
    switch (kernel.release) {
      case Release::kAfterWgmmaWait:
        ops.push_back({Op::kWaitGroup, 0, 0});
        release(last);
        break;
      case Release::kBeforeWgmmaWait:
        release(last);
        ops.push_back({Op::kWaitGroup, 0, 0});
        break;
      case Release::kOnIssue:
        ops.push_back({Op::kWaitGroup, 0, 0});
        break;
    }
    ops.push_back({Op::kStore, 0, static_cast<int>(i)});
  }
  return ops;
}

// A box in flight: part of stage `stage`, completing a transaction on `barrier`.
struct Copy {
  int stage = 0;
  int part = 0;
  int contents = 0;
  int barrier = 0;
  int speed = 1;  // its weight in the choice of the next event
};

// One step's wgmmas of a consumer warpgroup: one group, committed by each of its warps.
struct Group {
  int stage = 0;
  int contents = 0;
  int committed = 0;  // warps that committed it
  int speed = 1;
};

struct Actor {
  std::string name;
  int warpgroup = 0;  // consumer warps: 0 or 1
  std::vector<Op> program;
  size_t pc = 0;
  int joined_generation = -1;   // inside a kSync: the generation it arrived in
  size_t issued = 0;            // groups this warp committed
  size_t waited = 0;            // its first groups whose completion its wait_group has seen
  std::vector<int> reads = {};  // what its groups since its last store read
  int speed = 1;                // its weight in the choice of the next event
  int ready_since = -1;         // the event from which it could have run
};

// One CTA's run under one random interleaving.
template <class S>
class Cta {
 public:
  explicit Cta(const Config& c) : config_(c) {
    barriers_.resize(2 * S::kStages);
    for (int s = 0; s < S::kStages; ++s) {
      barriers_[FullOf<S>(s)].expected = kFullArrivals;
      barriers_[EmptyOf<S>(s)].expected = S::kEmptyArrivals;
    }
    for (MBarrier& b : barriers_) b.pending = b.expected;
    contents_.assign(S::kStages * kParts, kNothing);
    reads_left_.assign(S::kStages * kParts, 0);
    for (int w = 0; w < kConsumerWarps; ++w) {
      const int cw = w / kWarpsPerGroup;
      actors_.push_back({absl::StrCat("consumer ", cw, " warp ", w % kWarpsPerGroup), cw,
                         ConsumerProgram<S>(c, cw)});
    }
    actors_.push_back({"the producer", 0, ProducerProgram<S>(c)});
    stores_.assign(static_cast<size_t>(c.local_tiles) * kConsumerWarps, 0);
  }

  // "" or what went wrong. Each warp, copy and wgmma group gets a random speed, so that one
  // lagging far behind the others (a copy landing late, a warp stalled) is as likely as an even
  // interleaving.
  std::string Run(uint32_t seed) {
    rng_.seed(seed);
    if (const std::string why = CheckPrograms(); !why.empty()) return why;
    for (Actor& a : actors_) a.speed = RandomSpeed();
    std::vector<int> events;  // actors >= 0, kActors + warpgroup: its oldest group, ~copy
    std::vector<int> weights;
    for (int step = 0;; ++step) {
      events.clear();
      weights.clear();
      int total = 0;
      int starved = -1;  // the actor ready the longest, once past max_stall
      bool all_done = true;
      for (int i = 0; i < kActors; ++i) {
        Actor& a = actors_[i];
        if (a.pc < a.program.size()) all_done = false;
        if (!Ready(a)) {
          a.ready_since = -1;
          continue;
        }
        if (a.ready_since < 0) a.ready_since = step;
        if (step - a.ready_since > config_.max_stall &&
            (starved < 0 || a.ready_since < actors_[starved].ready_since)) {
          starved = i;
        }
        events.push_back(i);
        weights.push_back(total += a.speed);
      }
      for (int cw = 0; cw < kConsumerGroups; ++cw) {
        if (next_done_[cw] >= groups_[cw].size()) continue;
        const Group& group = groups_[cw][next_done_[cw]];
        if (all_done) {
          return absl::StrCat("the CTA exits with consumer ", cw, "'s wgmmas of ",
                              NameOfContents(group.contents), " in flight");
        }
        if (group.committed < kWarpsPerGroup) continue;
        events.push_back(kActors + cw);
        weights.push_back(total += group.speed);
      }
      for (size_t i = 0; i < in_flight_.size(); ++i) {
        if (all_done) {
          return absl::StrCat("the CTA exits with a copy of ",
                              NameOfContents(in_flight_[i].contents), " in flight");
        }
        events.push_back(~static_cast<int>(i));
        weights.push_back(total += in_flight_[i].speed);
      }
      if (events.empty()) break;
      int e = starved;
      if (e < 0) {
        const int pick = static_cast<int>(rng_() % static_cast<uint32_t>(total));
        size_t k = 0;
        while (weights[k] <= pick) ++k;
        e = events[k];
      }
      std::string why;
      if (e < 0) {
        why = Land(~e);
      } else if (e >= kActors) {
        why = Complete(e - kActors);
      } else {
        actors_[e].ready_since = -1;
        why = Step(actors_[e]);
      }
      if (!why.empty()) return why;
    }
    return AtExit();
  }

 private:
  int RandomSpeed() {
    constexpr int kSpeeds[] = {1, 8, 64};
    return kSpeeds[rng_() % 3];
  }

  // A broken schedule's stage or barrier out of range is a failure, not a crash.
  std::string CheckPrograms() const {
    for (const Actor& a : actors_) {
      for (const Op& op : a.program) {
        const bool bad = ((op.kind == Op::kWait || op.kind == Op::kArrive || op.kind == Op::kTma) &&
                          (op.target < 0 || op.target >= 2 * S::kStages)) ||
                         (op.kind == Op::kTma && (op.aux < 0 || op.aux >= S::kStages)) ||
                         (op.kind == Op::kIssue && (op.target < 0 || op.target >= S::kStages)) ||
                         ((op.kind == Op::kSync || op.kind == Op::kArriveNamed) &&
                          (op.target <= 0 || op.target >= kNamedBarriers));
        if (bad) return absl::StrCat(a.name, " names a stage or barrier out of range");
      }
    }
    return "";
  }

  bool Ready(const Actor& a) const {
    if (a.pc >= a.program.size()) return false;
    const Op& op = a.program[a.pc];
    switch (op.kind) {
      case Op::kWait:
        return barriers_[op.target].TryWait(static_cast<uint32_t>(op.value));
      case Op::kWaitGroup:  // all but the newest `value` of its groups completed
        return a.issued <= static_cast<size_t>(op.value) ||
               next_done_[a.warpgroup] >= a.issued - op.value;
      case Op::kSync:
        return a.joined_generation < 0 || named_[op.target].generation > a.joined_generation;
      default:
        return true;
    }
  }

  // What an actor stuck at its next op waits for.
  std::string Blocked(const Actor& a) const {
    const Op& op = a.program[a.pc];
    switch (op.kind) {
      case Op::kWait:
        return absl::StrCat(" waits for parity ", op.value, " of ",
                            op.target < S::kStages ? "full " : "empty ", op.target % S::kStages,
                            " (", barriers_[op.target].completed, " phases completed)");
      case Op::kWaitGroup:
        return absl::StrCat(" waits for its wgmma groups (", op.value, " left pending)");
      case Op::kSync:
        return absl::StrCat(" waits at named barrier ", op.target);
      default:
        return absl::StrCat(" at op ", a.pc);
    }
  }

  std::string Step(Actor& a) {
    const Op& op = a.program[a.pc];
    std::string why;
    switch (op.kind) {
      case Op::kWait:
        break;
      case Op::kWaitGroup:
        why = EndReads(a, a.issued > static_cast<size_t>(op.value) ? a.issued - op.value : 0);
        break;
      case Op::kArrive:
        why = barriers_[op.target].Arrive();
        break;
      case Op::kTma: {  // arrive.expect_tx of both boxes' bytes, then the boxes
        MBarrier& b = barriers_[op.target];
        b.tx += kParts;
        why = b.Arrive();
        for (int part = 0; part < kParts; ++part) {
          in_flight_.push_back({op.aux, part, op.value, op.target, RandomSpeed()});
        }
        break;
      }
      case Op::kIssue:
        why = Issue(a, op.target, op.value);
        break;
      case Op::kSync:
      case Op::kArriveNamed: {
        if (op.kind == Op::kSync && a.joined_generation >= 0) {  // released
          a.joined_generation = -1;
          break;
        }
        const int warp = static_cast<int>(&a - actors_.data());
        int joined = 0;
        why = named_[op.target].Join(a.name, op.target, warp, op.value, &joined);
        if (!why.empty()) return why;
        if (op.kind == Op::kSync) {
          a.joined_generation = joined;
          return "";  // the same op again, to leave once the generation completes
        }
        break;
      }
      case Op::kStore:
        why = Store(a, op.value);
        break;
    }
    if (!why.empty()) return absl::StrCat(a.name, ": ", why);
    ++a.pc;
    return "";
  }

  // The warp's wgmmas of a step: they read the stage from now until their group completes.
  std::string Issue(Actor& a, int stage, int contents) {
    for (int part = 0; part < kParts; ++part) {
      const int held = contents_[stage * kParts + part];
      if (held != contents) {
        return absl::StrCat("began reading ", NameOfContents(contents), " from stage ", stage,
                            " whose ", kPartNames[part], " box holds ", NameOfContents(held));
      }
    }
    std::vector<Group>& groups = groups_[a.warpgroup];
    const size_t index = a.issued++;
    a.reads.push_back(contents);
    if (index == groups.size()) {
      groups.push_back({stage, contents, 1, RandomSpeed()});
      return "";
    }
    Group& group = groups[index];
    if (group.stage != stage || group.contents != contents) {
      return absl::StrCat("committed ", NameOfContents(contents), " as a group its warpgroup's ",
                          "other warps committed with ", NameOfContents(group.contents));
    }
    ++group.committed;
    return "";
  }

  // The oldest group of consumer cw completes: the hardware's reads of the stage are over.
  std::string Complete(int cw) {
    const Group& group = groups_[cw][next_done_[cw]++];
    for (int part = 0; part < kParts; ++part) {
      const int slot = group.stage * kParts + part;
      if (contents_[slot] != group.contents) {
        return absl::StrCat("consumer ", cw, "'s wgmmas of ", NameOfContents(group.contents),
                            " completed reading stage ", group.stage, " whose ", kPartNames[part],
                            " box holds ", NameOfContents(contents_[slot]));
      }
    }
    return "";
  }

  // The warp's wait_group has seen its first `groups` groups complete: its reads of them end.
  std::string EndReads(Actor& a, size_t groups) {
    for (; a.waited < groups; ++a.waited) {
      const Group& group = groups_[a.warpgroup][a.waited];
      for (int part = 0; part < kParts; ++part) {
        const int slot = group.stage * kParts + part;
        if (contents_[slot] != group.contents) {
          return absl::StrCat("ended reading ", NameOfContents(group.contents), " from stage ",
                              group.stage, " whose ", kPartNames[part], " box holds ",
                              NameOfContents(contents_[slot]));
        }
        --reads_left_[slot];
      }
    }
    return "";
  }

  std::string Land(int index) {
    const Copy copy = in_flight_[index];
    in_flight_[index] = in_flight_.back();
    in_flight_.pop_back();
    const int slot = copy.stage * kParts + copy.part;
    if (contents_[slot] != kNothing && reads_left_[slot] > 0) {
      return absl::StrCat("a copy landing: ", kPartNames[copy.part], " box of ",
                          NameOfContents(copy.contents), " written over ",
                          NameOfContents(contents_[slot]), " in stage ", copy.stage, " with ",
                          reads_left_[slot], " warps' reads of it to end");
    }
    contents_[slot] = copy.contents;
    reads_left_[slot] = kWarpsPerGroup;  // the consumer warpgroup's
    MBarrier& b = barriers_[copy.barrier];
    --b.tx;
    b.MaybeComplete();
    return "";
  }

  // The epilogue of local tile `tile`: its accumulators are the groups since the last store.
  std::string Store(Actor& a, int tile) {
    if (a.waited < a.issued) {
      return absl::StrCat("stored tile ", tile, " with wgmmas still in flight");
    }
    std::vector<int> want;
    for (int kk = 0; kk < config_.k_steps; ++kk) want.push_back(Contents(tile, kk));
    if (a.reads != want) {
      std::string got;
      for (int r : a.reads) absl::StrAppend(&got, " ", NameOfContents(r), ";");
      return absl::StrCat("stored tile ", tile, " from", got);
    }
    a.reads.clear();
    if (tile < 0 || tile >= config_.local_tiles) {
      return absl::StrCat("stored tile ", tile, " of ", config_.local_tiles);
    }
    ++stores_[static_cast<size_t>(tile) * kConsumerWarps + (&a - actors_.data())];
    return "";
  }

  std::string AtExit() const {
    std::string stuck;
    for (const Actor& a : actors_) {
      if (a.pc < a.program.size()) absl::StrAppend(&stuck, " ", a.name, Blocked(a), ";");
    }
    if (!stuck.empty()) return "deadlock:" + stuck;
    for (int id = 0; id < kNamedBarriers; ++id) {
      if (named_[id].arrived != 0) {
        return absl::StrCat("named barrier ", id, " ended with ", named_[id].arrived,
                            " threads in an incomplete generation: an arrival no wait meets");
      }
    }
    for (int b = 0; b < 2 * S::kStages; ++b) {
      if (barriers_[b].pending != barriers_[b].expected || barriers_[b].tx != 0) {
        return absl::StrCat(b < S::kStages ? "full " : "empty ", b % S::kStages, " ended with ",
                            barriers_[b].expected - barriers_[b].pending, " of ",
                            barriers_[b].expected, " arrivals and ", barriers_[b].tx,
                            " boxes pending in an incomplete phase");
      }
    }
    for (int tile = 0; tile < config_.local_tiles; ++tile) {
      for (int w = 0; w < kConsumerWarps; ++w) {
        const int want = w / kWarpsPerGroup == S::ConsumerOf(tile) ? 1 : 0;
        const int got = stores_[static_cast<size_t>(tile) * kConsumerWarps + w];
        if (got != want) {
          return absl::StrCat("tile ", tile, " stored ", got, " times by ", actors_[w].name,
                              " (ConsumerOf: ", S::ConsumerOf(tile), ")");
        }
      }
    }
    return "";
  }

  const Config config_;
  std::vector<MBarrier> barriers_;  // full 0 .. kStages - 1, then empty
  NamedBarrier named_[kNamedBarriers];
  std::vector<int> contents_;    // [stage·kParts + part]: what the box holds
  std::vector<int> reads_left_;  // warps whose reads of it have not ended
  std::vector<Actor> actors_;
  std::vector<Group> groups_[kConsumerGroups];  // in issue order
  size_t next_done_[kConsumerGroups] = {};      // the oldest group not completed
  std::vector<Copy> in_flight_;
  std::vector<int> stores_;  // [tile·kConsumerWarps + warp]
  std::mt19937 rng_;
};

// Interleavings of each configuration (35 of them, 0 to 91 steps): 3500 a sweep, the whole file
// about 0.5 s (-O1).
constexpr uint32_t kSeeds = 100;

// The first failure over many interleavings of every configuration, or "".
template <class S>
std::string FirstFailureOf(int max_stall, const Kernel& kernel = Kernel{}) {
  for (int local_tiles : {0, 1, 2, 3, 7}) {
    for (int k_steps : {1, 2, 5, 6, 7, 8, 13}) {  // around kStages = 6 and twice it
      const Config c{local_tiles, k_steps, max_stall, kernel};
      for (uint32_t seed = 0; seed < kSeeds; ++seed) {
        const std::string why = Cta<S>(c).Run(seed);
        if (!why.empty()) {
          return absl::StrCat(local_tiles, " tiles of ", k_steps, " steps, ",
                              max_stall == kMaxStall ? "fair scheduling" : "unbounded stalls",
                              ", seed ", seed, ": ", why);
        }
      }
    }
  }
  return "";
}

// Every output tile belongs to exactly one (CTA, local tile) pair, for grids of any size (the
// launch takes min(tiles, SMs) CTAs; larger grids leave CTAs without tiles, which must work too).
TEST(ScoreGemmScheduleTest, EveryTileHasExactlyOneOwner) {
  using S = ScoreGemmSchedule;
  for (int64_t ctas : {1, 3, 132}) {
    for (int64_t tiles : {1, 5, 132, 133, 1000}) {
      std::vector<int> owners(tiles, 0);
      for (int64_t cta = 0; cta < ctas; ++cta) {
        const int64_t local_tiles = S::LocalTiles(tiles, cta, ctas);
        ASSERT_GE(local_tiles, 0) << ctas << " CTAs, " << tiles << " tiles, CTA " << cta;
        for (int64_t local = 0; local < local_tiles; ++local) {
          const int64_t t = S::GlobalTile(local, cta, ctas);
          ASSERT_TRUE(t >= 0 && t < tiles) << ctas << " CTAs, " << tiles << " tiles: CTA " << cta
                                           << "'s tile " << local << " is " << t;
          ++owners[t];
        }
      }
      for (int64_t t = 0; t < tiles; ++t) {
        EXPECT_EQ(owners[t], 1) << ctas << " CTAs, " << tiles << " tiles: tile " << t;
      }
    }
  }
}

TEST(ScoreGemmScheduleTest, EveryInterleavingFinishesAndReadsItsOwnStepUnderFairScheduling) {
  EXPECT_EQ(FirstFailureOf<ScoreGemmSchedule>(kMaxStall), "");
}

// A warp that sleeps through any number of steps: every waiter's barrier is kept from completing
// its next phase by the waiter's own later arrival (a consumer warp's release, the producer's
// copy), so no wait sees its parity come round again.
TEST(ScoreGemmScheduleTest, EveryInterleavingFinishesAndReadsItsOwnStepWhenWarpsSleep) {
  EXPECT_EQ(FirstFailureOf<ScoreGemmSchedule>(kUnboundedStall), "");
}

// The same model must catch a schedule (or a kernel around it) with one rule wrong. Broken cases
// run under fair scheduling; each names what its failure must say. Schedules first: the
// ScoreGemmSchedule functions the kernel calls, one overridden.
struct NoWaitForEmpty : ScoreGemmSchedule {  // the producer refills a stage without waiting
  static bool WaitsForEmpty(int64_t) { return false; }
};
struct EmptyWaitedOneUseLate : ScoreGemmSchedule {  // parity 1 passes a fresh barrier at once
  static uint32_t EmptyParity(int64_t g) { return FullParity(g); }
};
struct FullWaitedWithTheWrongParity : ScoreGemmSchedule {
  static uint32_t FullParity(int64_t g) { return static_cast<uint32_t>((g / kStages + 1) & 1); }
};
// Caught first at exit, a release left over in a phase (1 tile of 1 step); without that check,
// as a copy landing over a step one warp has not finished reading (1 tile of 7 steps).
struct EmptyCountsThreeWarps : ScoreGemmSchedule {
  static constexpr int kEmptyArrivals = 3;
};
struct LastTurnPassed : ScoreGemmSchedule {  // the other warpgroup has no tile to wait with
  static bool PassesTurnAfter(int64_t, int64_t) { return true; }
};
struct TurnsOnOneBarrier : ScoreGemmSchedule {  // a pass can meet its passer's next take
  static int TurnBarrier(int) { return 1; }
};

// Kernels around the schedule with one rule wrong. The turns are not only for the overlap of
// epilogue and main loop: a warpgroup takes tile i's turn once the other has waited for every
// step of tile i - 1, so every earlier use of a stage has completed its full barrier's phase
// before tile i waits on it. Without them (kTurnsNotTaken), and with k_steps not a multiple of
// kStages, warpgroup 1 can wait for a stage's second use (parity 1) on a barrier that has not yet
// completed the first (phase 0 in progress), and passes at once (2 tiles of 5 steps: tile 1's
// step 1 is the CTA's step 6, stage 0's second use, while step 0 has not landed).
constexpr Kernel kTheKernel{};
constexpr Kernel kTurnsNotTaken{Release::kAfterWgmmaWait, false, true};
constexpr Kernel kNoFirstTurn{Release::kAfterWgmmaWait, true, false};
constexpr Kernel kReleasedOnIssue{Release::kOnIssue, true, true};
constexpr Kernel kReleasedBeforeWgmmaWait{Release::kBeforeWgmmaWait, true, true};

struct BrokenCase {
  const char* name;
  std::string (*first_failure)(int, const Kernel&);
  Kernel kernel;
  const char* says;  // part of the failure
};

class ScoreGemmScheduleBrokenTest : public testing::TestWithParam<BrokenCase> {};

TEST_P(ScoreGemmScheduleBrokenTest, IsCaught) {
  const std::string why = GetParam().first_failure(kMaxStall, GetParam().kernel);
  EXPECT_NE(why.find(GetParam().says), std::string::npos) << why;
  RecordProperty("caught", why);
}

INSTANTIATE_TEST_SUITE_P(
    Broken, ScoreGemmScheduleBrokenTest,
    testing::Values(
        BrokenCase{"NoWaitForEmpty", &FirstFailureOf<NoWaitForEmpty>, kTheKernel, "written over"},
        BrokenCase{"EmptyWaitedOneUseLate", &FirstFailureOf<EmptyWaitedOneUseLate>, kTheKernel,
                   "written over"},
        BrokenCase{"FullWaitedWithTheWrongParity", &FirstFailureOf<FullWaitedWithTheWrongParity>,
                   kTheKernel, "began reading"},
        BrokenCase{"EmptyCountsThreeWarps", &FirstFailureOf<EmptyCountsThreeWarps>, kTheKernel,
                   "in an incomplete phase"},
        BrokenCase{"LastTurnPassed", &FirstFailureOf<LastTurnPassed>, kTheKernel,
                   "an arrival no wait meets"},
        BrokenCase{"TurnsOnOneBarrier", &FirstFailureOf<TurnsOnOneBarrier>, kTheKernel,
                   "arrived twice in a generation"},
        BrokenCase{"ReleasedOnIssue", &FirstFailureOf<ScoreGemmSchedule>, kReleasedOnIssue,
                   "written over"},
        BrokenCase{"ReleasedBeforeWgmmaWait", &FirstFailureOf<ScoreGemmSchedule>,
                   kReleasedBeforeWgmmaWait, "written over"},
        BrokenCase{"TurnsNotTaken", &FirstFailureOf<ScoreGemmSchedule>, kTurnsNotTaken,
                   "began reading"},
        BrokenCase{"NoFirstTurn", &FirstFailureOf<ScoreGemmSchedule>, kNoFirstTurn,
                   "deadlock: consumer 0 warp 0 waits at named barrier 1"}),
    [](const testing::TestParamInfo<BrokenCase>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace attnd::kernels::cuda::score_gemm
