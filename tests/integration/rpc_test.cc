// Every RPC of a real attnd process on loopback: Attend in each dtype and option against the
// float64 reference, AttendStream answers by request_id, GetServerInfo, the standard health
// service and server reflection.
#include <memory>
#include <set>

#include "client/client.h"
#include "client/tensor_gen.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "tests/common/probes.h"
#include "tests/common/reference_check.h"
#include "tests/integration/server_process.h"

namespace attnd::testing {
namespace {

class RpcTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
    absl::StatusOr<std::unique_ptr<client::Client>> c =
        client::Client::Create(server_->target(), client::ClientOptions());
    ASSERT_TRUE(c.ok()) << c.status();
    client_ = c->release();
  }
  static void TearDownTestSuite() {
    delete client_;
    delete server_;
  }
  static ServerProcess* server_;
  static client::Client* client_;
};
ServerProcess* RpcTest::server_ = nullptr;
client::Client* RpcTest::client_ = nullptr;

struct AttendCase {
  std::string name;
  client::RequestSpec spec;
};

class AttendTest : public RpcTest, public ::testing::WithParamInterface<AttendCase> {};

TEST_P(AttendTest, MatchesFloat64Reference) {
  client::RequestSpec spec = GetParam().spec;
  spec.seed = 1234;
  absl::StatusOr<v1::AttendRequest> request = client::GenerateRequest(spec);
  ASSERT_TRUE(request.ok()) << request.status();
  absl::StatusOr<v1::AttendResponse> response = client_->Attend(*request, absl::Seconds(60));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->request_id(), request->request_id());
  EXPECT_EQ(response->execution().variant(), v1::VARIANT_CPU_CHUNKED);
  EXPECT_GT(response->execution().q_chunk(), 0);
  EXPECT_GT(response->execution().kv_chunk(), 0);
  EXPECT_FALSE(response->execution().plan_reason().empty());
  EXPECT_GE(response->execution().compute_seconds(), 0.0);
  EXPECT_EQ(response->lse().data().empty(), !spec.return_lse);
  EXPECT_TRUE(MatchesReference(*request, *response));
}

client::RequestSpec Spec(v1::DType dtype, int64_t b, int64_t mq, int64_t mk, int64_t h, int64_t hkv,
                         int64_t d) {
  client::RequestSpec s;
  s.dtype = dtype;
  s.batch = b;
  s.q_len = mq;
  s.kv_len = mk;
  s.heads = h;
  s.kv_heads = hkv;
  s.head_dim = d;
  s.request_id = "attend-case";
  return s;
}

std::vector<AttendCase> AttendCases() {
  std::vector<AttendCase> cases;
  for (v1::DType dt : {v1::DTYPE_F32, v1::DTYPE_F16, v1::DTYPE_BF16}) {
    const std::string n = dt == v1::DTYPE_F32 ? "F32" : dt == v1::DTYPE_F16 ? "F16" : "BF16";
    cases.push_back({n + "Plain", Spec(dt, 2, 33, 47, 4, 4, 64)});
    client::RequestSpec s = Spec(dt, 2, 97, 131, 6, 2, 59);  // GQA, odd head dim
    s.causal = v1::CAUSAL_BOTTOM_RIGHT;
    s.bias = true;
    s.bias_shape = {1, 6, 97, 131};
    s.return_lse = true;
    cases.push_back({n + "GqaCausalBiasLse", s});
    s = Spec(dt, 3, 40, 65, 2, 1, 111);  // MQA, BHMK, key padding, top-left causal
    s.layout = v1::LAYOUT_BHMK;
    s.causal = v1::CAUSAL_TOP_LEFT;
    s.kv_lengths = {65, 20, 1};
    s.return_lse = true;
    cases.push_back({n + "MqaBhmkKvLengths", s});
    s = Spec(dt, 1, 1025, 1025, 1, 1, 64);  // sliding window, forced small chunks
    s.has_window = true;
    s.window_left = 100;
    s.window_right = 0;
    s.q_chunk = 96;
    s.kv_chunk = 200;
    cases.push_back({n + "WindowSmallChunks", s});
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Dtypes, AttendTest, ::testing::ValuesIn(AttendCases()),
                         [](const auto& info) { return info.param.name; });

TEST_F(RpcTest, ForcedChunksAreReported) {
  client::RequestSpec s = Spec(v1::DTYPE_F32, 1, 300, 500, 2, 2, 32);
  s.q_chunk = 64;
  s.kv_chunk = 128;
  absl::StatusOr<v1::AttendRequest> request = client::GenerateRequest(s);
  ASSERT_TRUE(request.ok());
  absl::StatusOr<v1::AttendResponse> response = client_->Attend(*request, absl::Seconds(30));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->execution().q_chunk(), 64);
  EXPECT_EQ(response->execution().kv_chunk(), 128);
  EXPECT_TRUE(MatchesReference(*request, *response));
}

TEST_F(RpcTest, ReferenceVariantOnRequest) {
  client::RequestSpec s = Spec(v1::DTYPE_BF16, 1, 17, 19, 2, 1, 24);
  s.variant = v1::VARIANT_REFERENCE;
  absl::StatusOr<v1::AttendRequest> request = client::GenerateRequest(s);
  ASSERT_TRUE(request.ok());
  absl::StatusOr<v1::AttendResponse> response = client_->Attend(*request, absl::Seconds(30));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->execution().variant(), v1::VARIANT_REFERENCE);
  EXPECT_TRUE(MatchesReference(*request, *response));
}

TEST_F(RpcTest, StreamAnswersEveryRequestById) {
  std::vector<v1::AttendRequest> requests;
  for (int i = 0; i < 6; ++i) {
    client::RequestSpec s =
        Spec(i % 2 ? v1::DTYPE_F16 : v1::DTYPE_F32, 1, 10 + i, 20 + 3 * i, 2, 1, 16);
    s.seed = 100 + i;
    s.request_id = "stream-" + std::to_string(i);
    absl::StatusOr<v1::AttendRequest> r = client::GenerateRequest(s);
    ASSERT_TRUE(r.ok());
    requests.push_back(*r);
  }
  requests[3].mutable_k()->mutable_data()->pop_back();  // one bad request mid-stream
  absl::StatusOr<std::vector<v1::AttendResponse>> responses =
      client_->AttendStream(requests, absl::Seconds(60));
  ASSERT_TRUE(responses.ok()) << responses.status();
  ASSERT_EQ(responses->size(), requests.size());
  std::set<std::string> seen;
  for (const v1::AttendResponse& r : *responses) {
    EXPECT_TRUE(seen.insert(r.request_id()).second) << "answered twice: " << r.request_id();
    const int i = std::stoi(r.request_id().substr(7));
    if (i == 3) {
      EXPECT_EQ(r.status().code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
      EXPECT_NE(r.status().message().find("k.data"), std::string::npos) << r.status().message();
    } else {
      EXPECT_EQ(r.status().code(), 0) << r.status().message();
      EXPECT_TRUE(MatchesReference(requests[i], r)) << r.request_id();
    }
  }
}

TEST_F(RpcTest, ServerInfoDescribesTheCpuBackend) {
  absl::StatusOr<v1::ServerInfo> info = client_->GetServerInfo(absl::Seconds(10));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_FALSE(info->version().empty());
  EXPECT_EQ(info->backend(), "cpu");
  ASSERT_GE(info->devices_size(), 1);
  EXPECT_EQ(info->devices(0).kind(), "cpu");
  EXPECT_GT(info->devices(0).memory_budget_bytes(), 0);
  EXPECT_EQ(info->dtypes_size(), 3);
  std::set<int> variants(info->variants().begin(), info->variants().end());
  EXPECT_TRUE(variants.count(v1::VARIANT_CPU_CHUNKED));
  EXPECT_TRUE(variants.count(v1::VARIANT_REFERENCE));
  EXPECT_GT(info->limits().max_message_bytes(), 0);
  EXPECT_GT(info->limits().max_queue_requests(), 0);
}

TEST_F(RpcTest, HealthServiceReportsServing) {
  auto channel = grpc::CreateChannel(server_->target(), grpc::InsecureChannelCredentials());
  for (const std::string service : {"", "attnd.v1.Attention"}) {
    absl::StatusOr<int> status = HealthCheck(channel, service, absl::Seconds(5));
    ASSERT_TRUE(status.ok()) << service << ": " << status.status();
    EXPECT_EQ(*status, kHealthServing) << service;
  }
}

TEST_F(RpcTest, ReflectionListsServices) {
  auto channel = grpc::CreateChannel(server_->target(), grpc::InsecureChannelCredentials());
  absl::StatusOr<std::vector<std::string>> services = ListServices(channel, absl::Seconds(5));
  ASSERT_TRUE(services.ok()) << services.status();
  std::set<std::string> names(services->begin(), services->end());
  EXPECT_TRUE(names.count("attnd.v1.Attention"));
  EXPECT_TRUE(names.count("grpc.health.v1.Health"));
}

}  // namespace
}  // namespace attnd::testing
