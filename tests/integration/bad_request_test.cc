// Malformed requests over the wire: each is answered INVALID_ARGUMENT naming the field, costs
// the server no allocation proportional to its declared shape, and the next good request works.
#include <functional>
#include <memory>

#include "client/client.h"
#include "client/tensor_gen.h"
#include "gtest/gtest.h"
#include "tests/common/reference_check.h"
#include "tests/integration/server_process.h"

namespace attnd::testing {
namespace {

struct BadCase {
  std::string name;
  std::function<void(v1::AttendRequest*)> mutate;
  std::string field;  // must appear in the error message
};

class BadRequestTest : public ::testing::TestWithParam<BadCase> {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
    client_ = client::Client::Create(server_->target(), client::ClientOptions())->release();
  }
  static void TearDownTestSuite() {
    delete client_;
    delete server_;
  }
  static v1::AttendRequest Good() {
    client::RequestSpec s;
    s.batch = 2;
    s.q_len = 9;
    s.kv_len = 13;
    s.heads = 4;
    s.kv_heads = 2;
    s.head_dim = 8;
    s.seed = 5;
    s.request_id = "good";
    return *client::GenerateRequest(s);
  }
  static ServerProcess* server_;
  static client::Client* client_;
};
ServerProcess* BadRequestTest::server_ = nullptr;
client::Client* BadRequestTest::client_ = nullptr;

TEST_P(BadRequestTest, InvalidArgumentNamingTheFieldThenServerStillServes) {
  const absl::StatusOr<int64_t> rss_before = server_->PeakRssBytes();
  v1::AttendRequest bad = Good();
  GetParam().mutate(&bad);
  absl::StatusOr<v1::AttendResponse> response = client_->Attend(bad, absl::Seconds(10));
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument) << response.status();
  EXPECT_NE(response.status().message().find(GetParam().field), std::string::npos)
      << response.status().message();
  // Nothing was allocated for the declared shape (absurd ones would need terabytes).
  const absl::StatusOr<int64_t> rss_after = server_->PeakRssBytes();
  ASSERT_TRUE(rss_before.ok() && rss_after.ok());
  EXPECT_LT(*rss_after - *rss_before, 64 << 20);

  v1::AttendRequest good = Good();
  absl::StatusOr<v1::AttendResponse> ok = client_->Attend(good, absl::Seconds(10));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_TRUE(MatchesReference(good, *ok));
}

void SetShape(v1::Tensor* t, std::vector<int64_t> shape) {
  t->clear_shape();
  for (int64_t d : shape) t->add_shape(d);
}

INSTANTIATE_TEST_SUITE_P(
    Matrix, BadRequestTest,
    ::testing::Values(
        BadCase{"WrongRank",
                [](v1::AttendRequest* r) {
                  SetShape(r->mutable_q(), {2, 9, 32});
                },
                "q.shape"},
        BadCase{"ZeroDim", [](v1::AttendRequest* r) { r->mutable_q()->set_shape(1, 0); },
                "q.shape[1] (Mq) = 0"},
        BadCase{"NegativeDim", [](v1::AttendRequest* r) { r->mutable_k()->set_shape(2, -2); },
                "k.shape[2] (Hkv) = -2"},
        BadCase{"ElementCountOverflowsInt64",
                [](v1::AttendRequest* r) {
                  SetShape(r->mutable_v(), {1 << 20, 1 << 20, 1 << 20, 1 << 20});
                },
                "overflows int64"},
        BadCase{"AbsurdShapeTinyPayload",
                [](v1::AttendRequest* r) {
                  SetShape(r->mutable_q(), {2, int64_t{1} << 30, 4, 8});
                },
                "q.shape"},
        BadCase{"DataOneByteShort",
                [](v1::AttendRequest* r) { r->mutable_q()->mutable_data()->pop_back(); }, "q.data"},
        BadCase{"DataOneByteLong",
                [](v1::AttendRequest* r) { r->mutable_v()->mutable_data()->push_back('\1'); },
                "v.data"},
        BadCase{"DTypeMismatch",
                [](v1::AttendRequest* r) { r->mutable_v()->set_dtype(v1::DTYPE_BF16); }, "v.dtype"},
        BadCase{"HeadsNotDivisible",
                [](v1::AttendRequest* r) {
                  std::mt19937_64 rng(1);
                  client::FillRandomTensor(v1::DTYPE_F32, {2, 13, 3, 8}, &rng, r->mutable_k());
                  client::FillRandomTensor(v1::DTYPE_F32, {2, 13, 3, 8}, &rng, r->mutable_v());
                },
                "(Hkv) = 3"},
        BadCase{"BiasWrongShape",
                [](v1::AttendRequest* r) {
                  std::mt19937_64 rng(2);
                  client::FillRandomTensor(v1::DTYPE_F32, {2, 4, 9, 12}, &rng, r->mutable_bias());
                },
                "bias.shape[3] = 12"},
        BadCase{"KvLengthOutOfRange",
                [](v1::AttendRequest* r) {
                  r->add_kv_lengths(13);
                  r->add_kv_lengths(14);
                },
                "kv_lengths[1] = 14"},
        BadCase{"MissingValue", [](v1::AttendRequest* r) { r->clear_v(); }, "v: missing"}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace attnd::testing
