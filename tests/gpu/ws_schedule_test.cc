// The warp-specialised kernel's synchronisation (kernels/cuda/fused/ws_schedule.h, the schedule
// wgmma_ws_kernel.cuh follows) run on the host, without a device: the producer's four warps and
// the consumers' eight, each a program of the waits, arrivals, copies and GEMM reads the kernel
// makes, interleaved at random against models of mbarriers (phase parities) and named barriers
// (bar.sync / bar.arrive generations). Every interleaving must finish (no deadlock), every read
// of a tile must see the block it wants from issue to completion (no copy lands in a tile a GEMM
// or the bias read still uses), and every barrier must end with no generation half-arrived.
// Schedules with one parity or turn rule broken are run too, and must be caught.
#include "kernels/cuda/fused/ws_schedule.h"

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace attnd::kernels::cuda::fused {
namespace {

constexpr int kProducerWarps = 4;
constexpr int kConsumerWarps = 8;  // two warpgroups of four

// mbarrier: `expected` arrivals complete a phase; try_wait(parity) passes once the phase of that
// parity has completed, i.e. while the current phase's parity differs.
struct MBarrier {
  int expected = 0;
  int pending = 0;
  int completed = 0;
  void Arrive() {
    if (--pending == 0) {
      ++completed;
      pending = expected;
    }
  }
  bool TryWait(uint32_t parity) const { return static_cast<uint32_t>(completed % 2) != parity; }
};

// Named barrier of 256 threads: a generation completes when 8 warps have arrived (bar.sync waits
// for it, bar.arrive does not).
struct NamedBarrier {
  std::vector<bool> arrived = std::vector<bool>(kConsumerWarps, false);
  int count = 0;
  int generation = 0;
};

// Tiles: one value per producer warp (its part of the copy), the block it holds.
enum Tile : int { kQ = 0, kK0, kK1, kV0, kV1, kBias0, kBias1, kTiles };
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

struct Op {
  enum Kind { kWait, kArrive, kWrite, kBeginRead, kEndRead, kSyncNamed, kArriveNamed } kind;
  int target = 0;  // barrier, tile or named barrier id
  int value = 0;   // parity, or the block written / expected
};

struct Actor {
  std::string name;
  int warp = 0;  // producer warp, or consumer warp
  std::vector<Op> program;
  size_t pc = 0;
  int joined_generation = -1;  // inside a kSyncNamed: the generation it arrived in
};

struct Config {
  int blocks = 1;
  bool biased = false;
  bool ping_pong = false;
  int bias_stages = 1;  // WsShape::kBiasStages: 1 or 2
};

template <class S>
std::vector<Op> ProducerProgram(const Config& c) {
  std::vector<Op> ops;
  if (c.blocks == 0) return ops;
  ops.push_back({Op::kWrite, kQ, 0});
  for (int n = 0; n < c.blocks; ++n) {
    const int stage = S::Stage(n);
    if (c.biased) {
      // The copy lands, then the arrival it triggers (cp.async.mbarrier.arrive) and the plain
      // one: one arrival in this model.
      const int bs = S::BiasStage(n, c.bias_stages);
      if (S::WaitsForBiasEmpty(n, c.bias_stages)) {
        ops.push_back({Op::kWait, kBiasEmpty0 + bs, int(S::BiasEmptyParity(n, c.bias_stages))});
      }
      ops.push_back({Op::kWrite, kBias0 + bs, n});
      ops.push_back({Op::kArrive, kBiasFull0 + bs, 0});
    }
    if (S::WaitsForEmpty(n)) ops.push_back({Op::kWait, kKEmpty0 + stage, int(S::EmptyParity(n))});
    ops.push_back({Op::kWrite, kK0 + stage, n});
    if (S::WaitsForEmpty(n)) ops.push_back({Op::kWait, kVEmpty0 + stage, int(S::EmptyParity(n))});
    ops.push_back({Op::kWrite, kV0 + stage, n});
    if (n == 0) ops.push_back({Op::kArrive, kQFull, 0});
    ops.push_back({Op::kArrive, kKFull0 + stage, 0});
    ops.push_back({Op::kArrive, kVFull0 + stage, 0});
  }
  return ops;
}

template <class S>
std::vector<Op> ConsumerProgram(const Config& c, int cw) {
  std::vector<Op> ops;
  const int n_blocks = c.blocks;
  if (n_blocks == 0) return ops;
  const auto take_turn = [&] {
    if (c.ping_pong) ops.push_back({Op::kSyncNamed, S::TurnBarrier(cw), 0});
  };
  const auto pass_turn = [&](bool last) {
    if (c.ping_pong && S::PassesTurn(cw, last)) {
      ops.push_back({Op::kArriveNamed, S::TurnBarrier(1 - cw), 0});
    }
  };
  const auto start_scores = [&](int n) {
    if (!c.biased) return;
    const int bs = S::BiasStage(n, c.bias_stages);
    ops.push_back({Op::kWait, kBiasFull0 + bs, int(S::BiasFullParity(n, c.bias_stages))});
    ops.push_back({Op::kBeginRead, kBias0 + bs, n});
    ops.push_back({Op::kEndRead, kBias0 + bs, n});
    ops.push_back({Op::kArrive, kBiasEmpty0 + bs, 0});
  };
  if (c.ping_pong && S::GivesFirstTurn(cw)) {
    ops.push_back({Op::kArriveNamed, S::TurnBarrier(1 - cw), 0});
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
  ops.push_back({Op::kArrive, kKEmpty0 + S::Stage(0), 0});
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
    ops.push_back({Op::kArrive, kKEmpty0 + stage, 0});
    ops.push_back({Op::kEndRead, kV0 + prev, n - 1});  // wgmma.wait_group 0
    ops.push_back({Op::kArrive, kVEmpty0 + prev, 0});
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

// Runs one random interleaving; returns "" or what went wrong.
template <class S>
std::string Simulate(const Config& c, uint32_t seed) {
  std::vector<MBarrier> barriers(kBarriers);
  for (int b = 0; b < kBarriers; ++b) {
    const bool empty = (b >= kKEmpty0 && b <= kVEmpty1) || b == kBiasEmpty0 || b == kBiasEmpty1;
    barriers[b].expected = barriers[b].pending = empty ? kConsumerWarps : kProducerWarps;
  }
  std::vector<NamedBarrier> named(3);
  // tiles[t][w]: the block producer warp w last copied into tile t (-1: none yet).
  std::vector<std::vector<int>> tiles(kTiles, std::vector<int>(kProducerWarps, -1));
  std::vector<Actor> actors;
  for (int w = 0; w < kProducerWarps; ++w) {
    actors.push_back({absl::StrCat("producer warp ", w), w, ProducerProgram<S>(c)});
  }
  for (int w = 0; w < kConsumerWarps; ++w) {
    actors.push_back({absl::StrCat("consumer warp ", w), w, ConsumerProgram<S>(c, w / 4)});
  }
  const auto tile_holds = [&](int t, int block) {
    for (int w = 0; w < kProducerWarps; ++w) {
      if (tiles[t][w] != block) return false;
    }
    return true;
  };
  // Whether actor a's next op can run now (waits that have not passed cannot).
  const auto ready = [&](const Actor& a) {
    if (a.pc >= a.program.size()) return false;
    const Op& op = a.program[a.pc];
    if (op.kind == Op::kWait) return barriers[op.target].TryWait(uint32_t(op.value));
    if (op.kind == Op::kSyncNamed && a.joined_generation >= 0) {
      return named[op.target].generation > a.joined_generation;
    }
    return true;
  };
  std::mt19937 rng(seed);
  for (;;) {
    std::vector<int> runnable;
    bool all_done = true;
    for (size_t i = 0; i < actors.size(); ++i) {
      if (actors[i].pc < actors[i].program.size()) all_done = false;
      if (ready(actors[i])) runnable.push_back(static_cast<int>(i));
    }
    if (all_done) break;
    if (runnable.empty()) {
      std::string stuck = "deadlock:";
      for (const Actor& a : actors) {
        if (a.pc < a.program.size()) {
          absl::StrAppend(&stuck, " ", a.name, " at op ", a.pc, " (kind ", a.program[a.pc].kind,
                          ", target ", a.program[a.pc].target, ");");
        }
      }
      return stuck;
    }
    Actor& a = actors[runnable[rng() % runnable.size()]];
    const Op& op = a.program[a.pc];
    switch (op.kind) {
      case Op::kWait:
        break;
      case Op::kArrive:
        barriers[op.target].Arrive();
        break;
      case Op::kWrite:
        tiles[op.target][a.warp] = op.value;
        break;
      case Op::kBeginRead:
      case Op::kEndRead:
        if (!tile_holds(op.target, op.value)) {
          return absl::StrCat(a.name, (op.kind == Op::kBeginRead ? " began" : " ended"),
                              " reading tile ", op.target, " for block ", op.value,
                              " while it held another block's copy");
        }
        break;
      case Op::kSyncNamed:
      case Op::kArriveNamed: {
        if (op.kind == Op::kSyncNamed && a.joined_generation >= 0) {  // released
          a.joined_generation = -1;
          break;
        }
        NamedBarrier& nb = named[op.target];
        if (nb.arrived[a.warp]) {
          return absl::StrCat(a.name, " arrived twice in one generation of named barrier ",
                              op.target);
        }
        nb.arrived[a.warp] = true;
        const int joined = nb.generation;
        if (++nb.count == kConsumerWarps) {
          nb.count = 0;
          ++nb.generation;
          nb.arrived.assign(kConsumerWarps, false);
        }
        if (op.kind == Op::kSyncNamed) {
          a.joined_generation = joined;
          continue;  // the same op again once the generation completes
        }
        break;
      }
    }
    ++a.pc;
  }
  for (int id = 1; id <= 2; ++id) {
    if (named[id].count != 0) {
      return absl::StrCat("named barrier ", id, " ended with ", named[id].count,
                          " warps arrived in an incomplete generation");
    }
  }
  return "";
}

// The first failure over many interleavings of every configuration, or "".
template <class S>
std::string FirstFailure(bool ping_pong_only = false) {
  for (int blocks : {0, 1, 2, 3, 4, 5, 8}) {
    for (int bias_stages : {0, 1, 2}) {  // 0: no bias
      for (bool ping_pong : {false, true}) {
        if (ping_pong_only && !ping_pong) continue;
        const Config c{blocks, bias_stages > 0, ping_pong, bias_stages > 0 ? bias_stages : 1};
        for (uint32_t seed = 0; seed < 300; ++seed) {
          const std::string why = Simulate<S>(c, seed);
          if (!why.empty()) {
            return absl::StrCat(blocks, " blocks, bias stages ", bias_stages, ", ping-pong ",
                                ping_pong, ", seed ", seed, ": ", why);
          }
        }
      }
    }
  }
  return "";
}

TEST(WsScheduleTest, EveryInterleavingFinishesAndReadsItsOwnBlock) {
  EXPECT_EQ(FirstFailure<WsSchedule>(), "");
}

// The same model must catch a schedule with one rule wrong.
struct EmptyWaitedOneUseLate : WsSchedule {
  static uint32_t EmptyParity(int n) { return FullParity(n); }
};
struct NoWaitForEmpty : WsSchedule {
  static bool WaitsForEmpty(int) { return false; }
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

TEST(WsScheduleTest, BrokenSchedulesAreCaught) {
  EXPECT_NE(FirstFailure<EmptyWaitedOneUseLate>(), "");
  EXPECT_NE(FirstFailure<NoWaitForEmpty>(), "");
  EXPECT_NE(FirstFailure<BiasRefilledEarly>(), "");
  EXPECT_NE(FirstFailure<BiasEmptyWaitedOneUseLate>(), "");
  EXPECT_NE(FirstFailure<BiasInOneStageAlways>(), "");
  EXPECT_NE(FirstFailure<FullWaitedAUseEarly>(), "");
  EXPECT_NE(FirstFailure<LastTurnPassed>(true), "");
  EXPECT_NE(FirstFailure<NoFirstTurn>(true), "");
}

}  // namespace
}  // namespace attnd::kernels::cuda::fused
