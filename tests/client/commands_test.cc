// attnctl's subcommands end to end against the in-process fake server: what they print, the
// files they write and their exit codes. (tests/integration runs the binary against attnd.)
#include "client/attnctl/commands.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/str_split.h"
#include "client/npy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/cpu_attention.h"
#include "tests/client/fake_server.h"
#include "wire/request_codec.h"

namespace attnd::attnctl {
namespace {

using ::testing::HasSubstr;

// Answers as attnd would: the float64 reference, rounded to the request's dtype.
void ReferenceAnswer(const v1::AttendRequest& request, v1::AttendResponse* response) {
  absl::StatusOr<wire::DecodedRequest> decoded =
      wire::DecodeRequest(request, kernels::ProblemLimits());
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  const kernels::AttentionProblem& p = decoded->problem;
  std::string out(decoded->out_bytes(), '\0');
  std::vector<float> lse(p.lse_elements());
  ASSERT_TRUE(kernels::RunReference(p, wire::TensorsFor(*decoded, out.data(), lse.data())).ok());
  response->set_request_id(request.request_id());
  response->mutable_out()->set_dtype(request.q().dtype());
  for (int64_t d : wire::OutShape(p)) response->mutable_out()->add_shape(d);
  response->mutable_out()->set_data(out);
  if (p.return_lse) {
    response->mutable_lse()->set_dtype(v1::DTYPE_F32);
    for (int64_t d : wire::LseShape(p)) response->mutable_lse()->add_shape(d);
    response->mutable_lse()->set_data(
        std::string(reinterpret_cast<const char*>(lse.data()), lse.size() * 4));
  }
  v1::Execution* e = response->mutable_execution();
  e->set_variant(v1::VARIANT_REFERENCE);
  e->set_device("fake:0");
  e->set_batch_size(1);
  e->set_compute_seconds(0.002);
  e->set_queue_seconds(0.0005);
  e->set_plan_reason("the test's reference");
}

struct CommandRun {
  int exit_code;
  std::string out, err;
};

CommandRun Attnctl(const testing::FakeServer& server, const std::string& line) {
  std::vector<std::string> args = {"--target", server.address(), "--timeout", "20s"};
  for (absl::string_view a : absl::StrSplit(line, ' ', absl::SkipEmpty())) args.emplace_back(a);
  absl::StatusOr<CommandLine> cl = ParseCommandLine(args);
  EXPECT_TRUE(cl.ok()) << cl.status();
  if (!cl.ok()) return {kExitUsage, "", ""};
  std::ostringstream out, err;
  int code = kExitUsage;
  switch (cl->command) {
    case Command::kInfo:
      code = RunInfo(*cl, out, err);
      break;
    case Command::kHealth:
      code = RunHealth(*cl, out, err);
      break;
    case Command::kAttend:
      code = RunAttend(*cl, out, err);
      break;
    case Command::kLoad:
      code = RunLoad(*cl, out, err);
      break;
    case Command::kHelp:
      break;
  }
  return {code, out.str(), err.str()};
}

constexpr char kShape[] =
    " --batch 2 --q-len 9 --kv-len 13 --heads 4 --kv-heads 2 --head-dim 8 --seed 3";

TEST(Commands, MixedLengthsSpreadEvenlyOverTheRangeInASeededOrder) {
  std::vector<int64_t> lengths = MixedLengths(64, 2048, 32, 7);
  ASSERT_EQ(lengths.size(), 32u);
  EXPECT_EQ(lengths, MixedLengths(64, 2048, 32, 7));
  EXPECT_NE(lengths, MixedLengths(64, 2048, 32, 8));
  std::sort(lengths.begin(), lengths.end());
  EXPECT_EQ(lengths.front(), 64);
  EXPECT_EQ(lengths.back(), 2048);
  EXPECT_EQ(lengths[1], 64 + 1984 / 31);
  EXPECT_EQ(MixedLengths(5, 9, 1, 0), std::vector<int64_t>{9});
}

TEST(Commands, InfoTextAndJson) {
  testing::FakeServer server;
  CommandRun text = Attnctl(server, "info");
  EXPECT_EQ(text.exit_code, kExitOk) << text.err;
  EXPECT_THAT(text.out, HasSubstr("attnd fake-1.0, backend cpu"));
  EXPECT_THAT(text.out, HasSubstr("cpu:0"));
  EXPECT_THAT(text.out, HasSubstr("variants      cpu_chunked"));
  CommandRun json = Attnctl(server, "info --json");
  EXPECT_EQ(json.exit_code, kExitOk) << json.err;
  EXPECT_THAT(json.out, HasSubstr("\"version\": \"fake-1.0\""));
  EXPECT_THAT(json.out, HasSubstr("\"backend\": \"cpu\""));
}

TEST(Commands, AttendCheckPassesOnTheReference) {
  testing::FakeServer server;
  server.service().set_answer(ReferenceAnswer);
  for (const char* dtype : {"f32", "f16", "bf16"}) {
    CommandRun r =
        Attnctl(server, std::string("attend") + kShape + " --causal bottom-right --bias" +
                            " --lse --check --dtype " + dtype);
    EXPECT_EQ(r.exit_code, kExitOk) << dtype << "\n" << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr("ran      variant reference"));
    EXPECT_THAT(r.out, HasSubstr("device fake:0"));
    EXPECT_THAT(r.out, HasSubstr("plan     the test's reference"));
    EXPECT_THAT(r.out, HasSubstr("queue 0.500 ms, compute 2.000 ms"));
    EXPECT_THAT(r.out, HasSubstr("check PASSED"));
  }
}

TEST(Commands, AttendCheckFailsOnAWrongAnswer) {
  testing::FakeServer server;  // answers with q itself: right shape, wrong values
  CommandRun r = Attnctl(server, std::string("attend") + kShape + " --check");
  EXPECT_EQ(r.exit_code, kExitCheckFailed) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("check FAILED"));
}

TEST(Commands, AttendWritesOutputAndLse) {
  testing::FakeServer server;
  server.service().set_answer(ReferenceAnswer);
  const std::string out_path = ::testing::TempDir() + "/attnctl_commands_out.npy";
  const std::string lse_path = ::testing::TempDir() + "/attnctl_commands_lse.npy";
  CommandRun r = Attnctl(server, std::string("attend") + kShape + " --dtype bf16 --v-head-dim 5" +
                                     " --out " + out_path + " --lse-out " + lse_path);
  ASSERT_EQ(r.exit_code, kExitOk) << r.out << r.err;
  absl::StatusOr<client::NpyArray> out = client::ReadNpy(out_path);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->dtype, v1::DTYPE_BF16);
  EXPECT_EQ(out->shape, (std::vector<int64_t>{2, 9, 4, 5}));
  absl::StatusOr<client::NpyArray> lse = client::ReadNpy(lse_path);
  ASSERT_TRUE(lse.ok()) << lse.status();
  EXPECT_EQ(lse->dtype, v1::DTYPE_F32);
  EXPECT_EQ(lse->shape, (std::vector<int64_t>{2, 4, 9}));
  std::remove(out_path.c_str());
  std::remove(lse_path.c_str());
}

TEST(Commands, ServerErrorExitsOneWithTheCode) {
  testing::FakeServer server;
  server.service().set_fail_every(1);
  CommandRun r = Attnctl(server, std::string("attend") + kShape);
  EXPECT_EQ(r.exit_code, kExitError);
  EXPECT_THAT(r.err, HasSubstr("attnctl: Attend: RESOURCE_EXHAUSTED: queue is full"));
}

TEST(Commands, LoadPrintsAndWritesTheSummary) {
  testing::FakeServer server;
  server.service().set_fail_every(5);
  const std::string json_path = ::testing::TempDir() + "/attnctl_commands_load.json";
  CommandRun r = Attnctl(server, std::string("load") + kShape +
                                     " --concurrency 64 --requests 500 --json " + json_path);
  EXPECT_EQ(r.exit_code, kExitOk) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("requests    500 (ok 400, errors 100)"));
  EXPECT_THAT(r.out, HasSubstr("RESOURCE_EXHAUSTED 100"));
  EXPECT_THAT(r.err, HasSubstr("concurrency 64, closed loop"));
  std::ifstream file(json_path);
  std::stringstream json;
  json << file.rdbuf();
  EXPECT_THAT(json.str(), HasSubstr("\"ok\": 400"));
  EXPECT_THAT(json.str(), HasSubstr("\"errors\": {\"RESOURCE_EXHAUSTED\": 100}"));
  EXPECT_THAT(json.str(), HasSubstr("\"concurrency\": 64"));
  std::remove(json_path.c_str());
}

TEST(Commands, LoadWhereEveryRequestFailsExitsOne) {
  testing::FakeServer server;
  server.service().set_fail_every(1);
  CommandRun r = Attnctl(server, std::string("load") + kShape + " --concurrency 2 --requests 10");
  EXPECT_EQ(r.exit_code, kExitError);
  EXPECT_THAT(r.err, HasSubstr("every request failed"));
}

}  // namespace
}  // namespace attnd::attnctl
