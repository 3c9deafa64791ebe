// attnctl against a real attnd: info, health, attend --check in each dtype, and a short load run
// with its JSON summary. And its refusals: bad flags exit non-zero with a message.
#include <fstream>
#include <memory>
#include <sstream>

#include "gtest/gtest.h"
#include "tests/integration/server_process.h"

namespace attnd::testing {
namespace {

class AttnctlTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
  }
  static void TearDownTestSuite() { delete server_; }
  static CommandResult Attnctl(std::vector<std::string> args) {
    std::vector<std::string> argv = {ATTNCTL_BINARY, "--target", server_->target()};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, "", absl::Seconds(120));
  }
  static ServerProcess* server_;
};
ServerProcess* AttnctlTest::server_ = nullptr;

TEST_F(AttnctlTest, InfoJson) {
  CommandResult r = Attnctl({"info", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("\"backend\""), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("cpu"), std::string::npos) << r.output;
}

TEST_F(AttnctlTest, HealthIsServing) {
  // What the container image's HEALTHCHECK runs.
  CommandResult r = Attnctl({"--timeout", "3s", "health"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "SERVING\n");
  r = Attnctl({"health", "--service", "attnd.v1.Attention"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "SERVING\n");
  // gRPC's health service answers NOT_FOUND for a service it was never told about.
  r = Attnctl({"health", "--service", "no.such.Service"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("NOT_FOUND"), std::string::npos) << r.output;
}

TEST_F(AttnctlTest, HealthFailsWithNoServer) {
  CommandResult r =
      RunCommand({ATTNCTL_BINARY, "--target", "127.0.0.1:" + std::to_string(FreeLoopbackPort()),
                  "--timeout", "2s", "health"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("UNAVAILABLE"), std::string::npos) << r.output;
}

TEST_F(AttnctlTest, AttendCheckPassesInEveryDtype) {
  for (const std::string dtype : {"f32", "f16", "bf16"}) {
    CommandResult r = Attnctl({"attend", "--batch", "2", "--q-len", "97", "--kv-len", "130",
                               "--heads", "4", "--kv-heads", "2", "--head-dim", "59", "--dtype",
                               dtype, "--causal", "bottom-right", "--bias", "--check"});
    EXPECT_EQ(r.exit_code, 0) << dtype << ":\n" << r.output;
    EXPECT_NE(r.output.find("cpu_chunked"), std::string::npos) << r.output;
  }
}

TEST_F(AttnctlTest, LoadWritesItsSummary) {
  const std::string json_path = ::testing::TempDir() + "/attnctl-load.json";
  CommandResult r =
      Attnctl({"load", "--concurrency", "4", "--requests", "40", "--batch", "1", "--q-len", "64",
               "--kv-len", "64", "--heads", "2", "--head-dim", "32", "--json", json_path});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("p99"), std::string::npos) << r.output;
  std::ifstream in(json_path);
  std::stringstream json;
  json << in.rdbuf();
  for (const char* key : {"\"throughput_rps\"", "\"p50\"", "\"p999\"", "\"max\"", "\"ok\""}) {
    EXPECT_NE(json.str().find(key), std::string::npos) << key << " in " << json.str();
  }
  EXPECT_NE(json.str().find("\"ok\": 40"), std::string::npos) << json.str();
}

TEST_F(AttnctlTest, RefusesBadFlags) {
  CommandResult r = Attnctl({"load", "--concurrency", "0", "--requests", "1"});
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("concurrency"), std::string::npos) << r.output;
  r = Attnctl({"attend", "--dtype", "f64"});
  EXPECT_NE(r.exit_code, 0) << r.output;
}

TEST_F(AttnctlTest, ServerErrorsExitNonZeroWithTheCode) {
  // Hq = 4 is not a multiple of Hkv = 3: the server's INVALID_ARGUMENT reaches the user.
  CommandResult r = Attnctl({"attend", "--batch", "1", "--q-len", "4", "--kv-len", "4", "--heads",
                             "4", "--kv-heads", "3", "--head-dim", "8"});
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("INVALID_ARGUMENT"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace attnd::testing
