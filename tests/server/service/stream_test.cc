// AttendStream in-process: several requests answered by id (failures in-stream), ping-pong use,
// a cancelled stream, and a drain with streams open.
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/reference_check.h"
#include "tests/common/requests.h"
#include "tests/server/service/test_server.h"

namespace attnd::testing {
namespace {

using ::testing::HasSubstr;

using Stream = grpc::ClientReaderWriter<v1::AttendRequest, v1::AttendResponse>;

TEST(AttendStreamTest, AnswersEveryRequestByIdWithFailuresInStream) {
  auto test = StartTestServer();
  ASSERT_NE(test, nullptr);
  grpc::ClientContext context;
  context.set_deadline(In(std::chrono::seconds(60)));
  std::unique_ptr<Stream> stream = test->stub->AttendStream(&context);

  std::map<std::string, v1::AttendRequest> sent;
  for (int i = 0; i < 6; ++i) {
    client::RequestSpec spec = SmallSpec();
    spec.q_len = 5 + 7 * i;
    spec.kv_len = 9 + 5 * i;
    spec.dtype = i % 2 == 0 ? v1::DTYPE_F32 : v1::DTYPE_F16;
    v1::AttendRequest request = MakeRequest(spec, 100 + i, "s" + std::to_string(i));
    request.set_priority(i % 2);
    ASSERT_TRUE(stream->Write(request));
    sent[request.request_id()] = std::move(request);
  }
  client::RequestSpec bad_spec = SmallSpec();
  bad_spec.kv_heads = 3;  // does not divide 4 query heads
  ASSERT_TRUE(stream->Write(MakeRequest(bad_spec, 200, "bad")));
  ASSERT_TRUE(stream->WritesDone());

  std::map<std::string, v1::AttendResponse> answers;
  v1::AttendResponse response;
  while (stream->Read(&response)) {
    EXPECT_EQ(answers.count(response.request_id()), 0u) << "answered twice";
    answers[response.request_id()] = response;
  }
  grpc::Status status = stream->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();

  ASSERT_EQ(answers.size(), 7u);
  for (const auto& [id, request] : sent) {
    ASSERT_EQ(answers.count(id), 1u) << id;
    const v1::AttendResponse& answer = answers[id];
    EXPECT_FALSE(answer.has_status()) << id << ": " << answer.status().message();
    EXPECT_TRUE(MatchesReference(request, answer));
  }
  const v1::AttendResponse& bad = answers["bad"];
  EXPECT_EQ(bad.status().code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_THAT(bad.status().message(), HasSubstr("k.shape"));
  EXPECT_FALSE(bad.has_out());

  const std::string metrics = test->registry.Render();
  EXPECT_THAT(metrics, HasSubstr("attnd_requests_total{method=\"AttendStream\",code=\"OK\"} 6"));
  EXPECT_THAT(
      metrics,
      HasSubstr("attnd_requests_total{method=\"AttendStream\",code=\"INVALID_ARGUMENT\"} 1"));
}

TEST(AttendStreamTest, PipeliningFarAheadIsHeldBackNotRefused) {
  server::Config config = TestConfig();
  config.scheduler.max_queue_requests = 2;  // also the stream's unanswered-request limit
  auto test = StartTestServer(config);
  ASSERT_NE(test, nullptr);
  grpc::ClientContext context;
  context.set_deadline(In(std::chrono::seconds(60)));
  std::unique_ptr<Stream> stream = test->stub->AttendStream(&context);
  std::map<std::string, v1::AttendRequest> sent;
  std::thread writer([&] {
    for (int i = 0; i < 12; ++i) {
      client::RequestSpec spec = SmallSpec();
      spec.q_len = 64;
      spec.kv_len = 96;
      v1::AttendRequest request = MakeRequest(spec, 700 + i, "q" + std::to_string(i));
      EXPECT_TRUE(stream->Write(request));
      sent[request.request_id()] = std::move(request);
    }
    EXPECT_TRUE(stream->WritesDone());
  });
  std::vector<v1::AttendResponse> answers;
  v1::AttendResponse response;
  while (stream->Read(&response)) answers.push_back(response);
  writer.join();
  EXPECT_TRUE(stream->Finish().ok());
  ASSERT_EQ(answers.size(), 12u);
  for (const v1::AttendResponse& answer : answers) {
    EXPECT_FALSE(answer.has_status()) << answer.request_id() << ": " << answer.status().message();
    EXPECT_TRUE(MatchesReference(sent[answer.request_id()], answer));
  }
}

TEST(AttendStreamTest, PingPongOnOneStream) {
  auto test = StartTestServer();
  ASSERT_NE(test, nullptr);
  grpc::ClientContext context;
  context.set_deadline(In(std::chrono::seconds(60)));
  std::unique_ptr<Stream> stream = test->stub->AttendStream(&context);
  for (int i = 0; i < 4; ++i) {
    const v1::AttendRequest request = MakeRequest(SmallSpec(), 300 + i, "p" + std::to_string(i));
    ASSERT_TRUE(stream->Write(request));
    v1::AttendResponse response;
    ASSERT_TRUE(stream->Read(&response));
    EXPECT_EQ(response.request_id(), request.request_id());
    EXPECT_TRUE(MatchesReference(request, response));
  }
  ASSERT_TRUE(stream->WritesDone());
  v1::AttendResponse extra;
  EXPECT_FALSE(stream->Read(&extra));
  EXPECT_TRUE(stream->Finish().ok());
}

TEST(AttendStreamTest, CancelledStreamLeavesTheServerServing) {
  auto test = StartTestServer();
  ASSERT_NE(test, nullptr);
  {
    grpc::ClientContext context;
    std::unique_ptr<Stream> stream = test->stub->AttendStream(&context);
    client::RequestSpec spec = SmallSpec();
    spec.q_len = 200;
    spec.kv_len = 300;
    for (int i = 0; i < 8; ++i) {
      ASSERT_TRUE(stream->Write(MakeRequest(spec, 400 + i, "c" + std::to_string(i))));
    }
    context.TryCancel();
    v1::AttendResponse response;
    while (stream->Read(&response)) {
    }
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  const v1::AttendRequest request = MakeRequest(SmallSpec(), 500, "after");
  grpc::ClientContext context;
  context.set_deadline(In(std::chrono::seconds(60)));
  v1::AttendResponse response;
  grpc::Status status = test->stub->Attend(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(MatchesReference(request, response));
  // Every stream reactor finished: the drain has nothing left to wait for.
  EXPECT_TRUE(test->server->Drain(absl::Seconds(20)));
}

TEST(AttendStreamTest, DrainFinishesAnIdleOpenStream) {
  auto test = StartTestServer();
  ASSERT_NE(test, nullptr);
  grpc::ClientContext context;
  context.set_deadline(In(std::chrono::seconds(60)));
  std::unique_ptr<Stream> stream = test->stub->AttendStream(&context);
  const v1::AttendRequest request = MakeRequest(SmallSpec(), 600, "before-drain");
  ASSERT_TRUE(stream->Write(request));
  v1::AttendResponse response;
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_TRUE(MatchesReference(request, response));

  // The client keeps the stream open and idle; the drain ends it cleanly, well before its
  // timeout.
  bool clean = false;
  std::thread drain([&] { clean = test->server->Drain(absl::Seconds(30)); });
  EXPECT_FALSE(stream->Read(&response));
  grpc::Status status = stream->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  drain.join();
  EXPECT_TRUE(clean);
}

}  // namespace
}  // namespace attnd::testing
