// The host models of Hopper's CTA barriers that the schedule tests (ws_schedule_test.cc,
// wide_schedule_test.cc, score_gemm_schedule_test.cc) run the kernels' schedules against.
#ifndef ATTND_TESTS_GPU_BARRIER_MODEL_H_
#define ATTND_TESTS_GPU_BARRIER_MODEL_H_

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"

namespace attnd::kernels::schedule_model {

// mbarrier: a phase completes once its arrivals are all in and the bytes announced by
// arrive.expect_tx (the copies, which the tests count in `tx`) have landed; try_wait(parity)
// passes once the phase of that parity has completed, i.e. while the current phase's parity
// differs (so a fresh barrier passes parity 1 at once).
struct MBarrierModel {
  int expected = 0;  // arrivals a phase takes
  int pending = 0;   // arrivals the current phase still takes
  int tx = 0;        // copies announced to the current phase and not yet landed
  int completed = 0;

  // `threads` arrivals; "" or why that is wrong.
  std::string Arrive(int threads = 1) {
    for (int i = 0; i < threads; ++i) {
      if (pending == 0) return "an arrival past the phase's count";
      --pending;
      MaybeComplete();
    }
    return "";
  }
  void MaybeComplete() {
    if (pending == 0 && tx == 0) {
      ++completed;
      pending = expected;
    }
  }
  bool TryWait(uint32_t parity) const { return static_cast<uint32_t>(completed % 2) != parity; }
};

// Named barrier (bar.sync / bar.arrive of `threads` threads): a generation completes when that
// many arrived; a warp arrives with its 32, at most once a generation. kWarps: the CTA's warps.
template <int kWarps>
struct NamedBarrierModel {
  int threads = 0;  // of the generation in progress
  int arrived = 0;
  int generation = 0;
  bool warp_arrived[kWarps] = {};

  // Warp `warp` (called `who`) joins barrier `id` counting `count` threads; sets *joined to the
  // generation it joined. "" or why that is wrong.
  std::string Join(const std::string& who, int id, int warp, int count, int* joined) {
    if (arrived > 0 && threads != count) {
      return absl::StrCat(who, " joined named barrier ", id, " with ", count,
                          " threads while a generation of ", threads, " was open");
    }
    if (warp_arrived[warp]) {
      return absl::StrCat(who, " arrived twice in a generation of named barrier ", id);
    }
    *joined = generation;
    threads = count;
    warp_arrived[warp] = true;
    arrived += 32;
    if (arrived == threads) *this = NamedBarrierModel{0, 0, generation + 1};
    return "";
  }
};

}  // namespace attnd::kernels::schedule_model

#endif  // ATTND_TESTS_GPU_BARRIER_MODEL_H_
