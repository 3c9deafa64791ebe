// Soak: a live attnd under mixed load for a set time, whose resident memory must not grow by
// more than 32 MiB after warm-up and whose per-request state (queue depth, in-flight gauge,
// workspace in use) must be back at 0 afterwards. The load, all at once:
//   - clients with jittered shapes (lengths, heads, head dims, dtypes, masks, LSE);
//   - clients whose calls are cancelled at a random moment or whose deadline is too short;
//   - attnctl processes SIGKILLed at a random moment of their call;
//   - bad requests (mismatched shapes, wrong byte counts, zero dims).
// ATTND_SOAK_SECONDS sets the time (default 30, CI); e.g. ATTND_SOAK_SECONDS=3600 for the long
// run. ATTND_TEST_LEAK_BYTES_PER_REQUEST in the environment reaches attnd (a build with
// ATTND_TEST_HOOKS) and makes it leak that much per request: the soak must then fail
// (docs/reliability.md records that run).
#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "attnd/v1/attention.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "tests/common/requests.h"
#include "tests/integration/server_process.h"

namespace attnd::testing {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kMaxGrowthBytes = 32 * kMiB;

absl::Duration SoakTime() {
  int seconds = 30;
  if (const char* env = std::getenv("ATTND_SOAK_SECONDS"); env != nullptr) {
    if (!absl::SimpleAtoi(env, &seconds) || seconds < 5) seconds = 30;
  }
  return absl::Seconds(seconds);
}

// A random valid problem: B 1-2, Mq 1-200, Mk 1-400, H 1-4 (GQA when even), D 8-64, any dtype,
// sometimes causal, key padding or LSE. At most ~0.4 MiB a tensor.
v1::AttendRequest Jittered(std::mt19937* rng, const std::string& id) {
  auto pick = [rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(*rng); };
  client::RequestSpec spec;
  spec.batch = pick(1, 2);
  spec.q_len = pick(1, 200);
  spec.kv_len = pick(1, 400);
  spec.heads = pick(1, 4);
  spec.kv_heads = spec.heads % 2 == 0 && pick(0, 1) == 1 ? spec.heads / 2 : spec.heads;
  spec.head_dim = std::vector<int>{8, 16, 31, 64}[pick(0, 3)];
  spec.v_head_dim = pick(0, 3) == 0 ? 16 : spec.head_dim;
  spec.dtype = std::vector<v1::DType>{v1::DTYPE_F32, v1::DTYPE_F16, v1::DTYPE_BF16}[pick(0, 2)];
  spec.causal = pick(0, 2) == 0 ? v1::CAUSAL_BOTTOM_RIGHT : v1::CAUSAL_NONE;
  spec.random_kv_lengths = pick(0, 3) == 0;
  spec.return_lse = pick(0, 1) == 1;
  return MakeRequest(spec, static_cast<uint32_t>((*rng)()), id);
}

// A request attnd must refuse INVALID_ARGUMENT: one of a few ways to be malformed.
v1::AttendRequest Malformed(std::mt19937* rng) {
  v1::AttendRequest request = MakeRequest(SmallSpec(), static_cast<uint32_t>((*rng)()), "bad");
  switch ((*rng)() % 4) {
    case 0:
      request.mutable_k()->mutable_data()->resize(request.k().data().size() - 4);
      break;
    case 1:
      request.mutable_q()->set_shape(3, 17);  // head dim of q differs from k's
      break;
    case 2:
      request.mutable_v()->set_shape(0, 0);
      break;
    default:
      request.mutable_q()->clear_data();
      break;
  }
  return request;
}

struct Counts {
  std::atomic<int64_t> ok{0};
  std::atomic<int64_t> refused{0};    // the bad requests, answered INVALID_ARGUMENT
  std::atomic<int64_t> cancelled{0};  // cancelled or past their deadline
  std::atomic<int64_t> killed{0};     // attnctl processes killed mid-call
  std::atomic<int64_t> other{0};      // anything else: a failure
};

// One client thread until `stop`: kind 0 jittered calls, 1 cancelled or too-short calls,
// 2 malformed calls, 3 attnctl processes killed mid-call.
void Client(const ServerProcess& server, int kind, uint32_t seed, const std::atomic<bool>& stop,
            Counts* counts) {
  std::mt19937 rng(seed);
  auto stub = v1::Attention::NewStub(
      grpc::CreateChannel(server.target(), grpc::InsecureChannelCredentials()));
  for (int i = 0; !stop.load(); ++i) {
    if (kind == 3) {
      const pid_t pid = SpawnCommand({ATTNCTL_BINARY, "--target", server.target(), "attend",
                                      "--batch", "1", "--q-len", absl::StrCat(1 + rng() % 300),
                                      "--kv-len", absl::StrCat(1 + rng() % 600), "--heads", "4",
                                      "--head-dim", "64", "--seed", absl::StrCat(rng() % 1000)});
      absl::SleepFor(absl::Milliseconds(20 + rng() % 150));
      KillAndReap(pid);
      ++counts->killed;
      continue;
    }
    grpc::ClientContext context;
    v1::AttendResponse response;
    const v1::AttendRequest request =
        kind == 2 ? Malformed(&rng) : Jittered(&rng, absl::StrCat("soak", kind, "-", i));
    context.set_deadline(
        absl::ToChronoTime(absl::Now() + (kind == 1 && i % 2 == 0 ? absl::Microseconds(rng() % 3000)
                                                                  : absl::Seconds(30))));
    std::thread canceller;
    if (kind == 1 && i % 2 == 1) {
      canceller = std::thread([&context, delay = rng() % 5000] {
        absl::SleepFor(absl::Microseconds(delay));
        context.TryCancel();
      });
    }
    const grpc::Status status = stub->Attend(&context, request, &response);
    if (canceller.joinable()) canceller.join();
    switch (status.error_code()) {
      case grpc::StatusCode::OK:
        ++counts->ok;
        break;
      case grpc::StatusCode::INVALID_ARGUMENT:
        (kind == 2 ? counts->refused : counts->other)++;
        break;
      case grpc::StatusCode::CANCELLED:
      case grpc::StatusCode::DEADLINE_EXCEEDED:
        (kind == 1 ? counts->cancelled : counts->other)++;
        break;
      default:
        ++counts->other;
        std::fprintf(stderr, "unexpected %d: %s\n", static_cast<int>(status.error_code()),
                     status.error_message().c_str());
    }
  }
}

TEST(SoakTest, ResidentMemoryAndPoolReturnToBaselineUnderMixedLoad) {
  const absl::Duration total = SoakTime();
  const absl::Duration warm_up = std::max(absl::Seconds(5), total / 5);
  absl::StatusOr<std::unique_ptr<ServerProcess>> started = ServerProcess::Start(
      "scheduler:\n  workers: 2\n  max_queue_requests: 64\n  max_queue_delay_us: 2000\n");
  ASSERT_TRUE(started.ok()) << started.status();
  const ServerProcess& server = **started;
  const int64_t at_start = *server.RssBytes();

  std::atomic<bool> stop{false};
  Counts counts;
  std::vector<std::thread> clients;
  // Two jittered, one cancelling, one malformed, one killing attnctl processes.
  const std::vector<int> kinds = {0, 0, 1, 2, 3};
  for (size_t i = 0; i < kinds.size(); ++i) {
    clients.emplace_back(Client, std::cref(server), kinds[i], 1234 + static_cast<uint32_t>(i),
                         std::cref(stop), &counts);
  }
  absl::SleepFor(warm_up);
  const int64_t after_warm_up = *server.RssBytes();
  const int64_t ok_at_warm_up = counts.ok.load();
  absl::SleepFor(total - warm_up);
  stop = true;
  for (std::thread& t : clients) t.join();

  std::string why;
  EXPECT_TRUE(WaitForBaseline(server, absl::Seconds(30), &why)) << why;
  const int64_t at_end = *server.RssBytes();
  const int64_t growth = at_end - after_warm_up;
  std::printf(
      "soak %.0f s (warm-up %.0f s): %lld ok (%lld after warm-up), %lld malformed refused, "
      "%lld cancelled or expired, %lld clients killed, %lld unexpected; RSS start %.1f MiB, "
      "after warm-up %.1f MiB, end %.1f MiB: growth %+.1f MiB (limit 32)\n",
      absl::ToDoubleSeconds(total), absl::ToDoubleSeconds(warm_up),
      static_cast<long long>(counts.ok.load()),
      static_cast<long long>(counts.ok.load() - ok_at_warm_up),
      static_cast<long long>(counts.refused.load()),
      static_cast<long long>(counts.cancelled.load()), static_cast<long long>(counts.killed.load()),
      static_cast<long long>(counts.other.load()), at_start / double(kMiB),
      after_warm_up / double(kMiB), at_end / double(kMiB), growth / double(kMiB));
  RecordProperty("rss_growth_bytes", std::to_string(growth));
  if (!kSanitizedBuild) {
    EXPECT_LE(growth, kMaxGrowthBytes) << "attnd's resident memory grew after warm-up";
  }
  EXPECT_EQ(counts.other.load(), 0);
  EXPECT_GT(counts.ok.load() - ok_at_warm_up, 0);
  EXPECT_GT(counts.refused.load(), 0);
  EXPECT_GT(counts.killed.load(), 0);
  // Still serving.
  auto stub = v1::Attention::NewStub(
      grpc::CreateChannel(server.target(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  v1::AttendResponse response;
  EXPECT_TRUE(stub->Attend(&context, MakeRequest(SmallSpec(), 7), &response).ok());
}

}  // namespace
}  // namespace attnd::testing
