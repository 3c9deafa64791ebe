// Isolation on the CPU backend: requests whose inputs hold NaN and Inf, batched with clean ones
// (they share a batch key, so the batcher runs them together), leave every clean output
// bit-identical to the same request run alone on an unbatched server. The same on a GPU is
// CudaExecutorTest.NonFiniteRequestsInABatchLeaveCleanOnesBitIdentical.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "server/faults/fault_injector.h"
#include "tests/common/requests.h"
#include "tests/server/service/test_server.h"

namespace attnd::testing {
namespace {

grpc::Status Call(TestServer& test, const v1::AttendRequest& request,
                  v1::AttendResponse* response) {
  grpc::ClientContext context;
  context.set_deadline(In(std::chrono::seconds(120)));
  return test.stub->Attend(&context, request, response);
}

TEST(IsolationTest, NonFiniteRequestsBatchedWithCleanOnesLeaveCleanOutputsBitIdentical) {
  // The first launch stalls 1 s (server/faults), so everything sent meanwhile queues and then
  // leaves the queue as batches.
  server::faults::FaultSpec spec;
  spec.slow_kernel_ms = 1000;
  spec.slow_kernels = 1;
  server::faults::ScriptedFaults faults(spec);
  server::faults::ScopedFaultInjector scoped(&faults);

  server::Config on = TestConfig();
  on.scheduler.max_batch_requests = 16;
  auto batched = StartTestServer(on);
  ASSERT_NE(batched, nullptr);
  std::thread holder([&] {
    v1::AttendResponse response;
    EXPECT_TRUE(Call(*batched, MakeRequest(SmallSpec(), 1, "holder"), &response).ok());
  });
  while (faults.launches() < 1) absl::SleepFor(absl::Milliseconds(5));

  // Even: clean; odd: the same shape with NaN and Inf in q, k and v. All f32 SmallSpec
  // variations of one key, so they batch together.
  constexpr int kRequests = 10;
  std::vector<v1::AttendRequest> requests;
  for (int i = 0; i < kRequests; ++i) {
    client::RequestSpec s = SmallSpec();
    s.q_len = 5 + i;
    v1::AttendRequest r = MakeRequest(s, 100 + i, "r" + std::to_string(i));
    if (i % 2 == 1) PoisonWithNonFinite(&r, 7 + i);
    requests.push_back(std::move(r));
  }
  std::vector<v1::AttendResponse> responses(kRequests);
  std::vector<grpc::Status> statuses(kRequests);
  std::vector<std::thread> callers;
  for (int i = 0; i < kRequests; ++i) {
    callers.emplace_back([&, i] { statuses[i] = Call(*batched, requests[i], &responses[i]); });
  }
  for (std::thread& t : callers) t.join();
  holder.join();

  server::Config off = TestConfig();
  off.scheduler.max_batch_requests = 1;
  auto unbatched = StartTestServer(off);
  ASSERT_NE(unbatched, nullptr);
  int largest_batch = 0;
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(statuses[i].ok()) << i << ": " << statuses[i].error_message();
    if (i % 2 == 1) {
      // The poison did reach the poisoned request's own output (f32: NaN rows).
      const std::string& out = responses[i].out().data();
      bool non_finite = false;
      for (size_t at = 0; at + 4 <= out.size() && !non_finite; at += 4) {
        float x;
        std::memcpy(&x, out.data() + at, 4);
        non_finite = !std::isfinite(x);
      }
      EXPECT_TRUE(non_finite) << "poisoned request " << i;
      continue;
    }
    largest_batch = std::max(largest_batch, responses[i].execution().batch_size());
    v1::AttendResponse alone;
    ASSERT_TRUE(Call(*unbatched, requests[i], &alone).ok());
    EXPECT_EQ(alone.execution().batch_size(), 1);
    EXPECT_EQ(responses[i].out().data(), alone.out().data()) << "clean request " << i;
    EXPECT_EQ(responses[i].lse().data(), alone.lse().data()) << "clean request " << i;
  }
  // The clean requests ran in batches that held poisoned ones.
  EXPECT_GE(largest_batch, 4);
  RecordProperty("largest_batch", std::to_string(largest_batch));
}

}  // namespace
}  // namespace attnd::testing
