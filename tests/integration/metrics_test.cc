// attnd's /metrics, live: every metric DESIGN.md lists is exported, `promtool check metrics`
// accepts the text, and a real Prometheus server on loopback scrapes it (up == 1 and
// attnd_requests_total visible through its query API).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "client/client.h"
#include "client/tensor_gen.h"
#include "gtest/gtest.h"
#include "tests/integration/server_process.h"

namespace attnd::testing {
namespace {

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    auto client = *client::Client::Create(server_->target(), client::ClientOptions());
    client::RequestSpec s;
    s.q_len = 33;
    s.kv_len = 65;
    s.heads = 2;
    s.head_dim = 16;
    for (int i = 0; i < 3; ++i) {
      s.seed = i;
      ASSERT_TRUE(client->Attend(*client::GenerateRequest(s), absl::Seconds(30)).ok());
    }
    v1::AttendRequest bad = *client::GenerateRequest(s);
    bad.mutable_q()->mutable_data()->pop_back();
    EXPECT_FALSE(client->Attend(bad, absl::Seconds(30)).ok());
  }
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(MetricsTest, ExportsTheDesignedMetrics) {
  absl::StatusOr<std::string> text = HttpGet(server_->metrics_address(), "/metrics");
  ASSERT_TRUE(text.ok()) << text.status();
  for (const char* name :
       {"attnd_requests_total", "attnd_request_duration_seconds_bucket",
        "attnd_queue_duration_seconds_bucket", "attnd_compute_duration_seconds_bucket",
        "attnd_batch_size_bucket", "attnd_queue_depth", "attnd_inflight_requests",
        "attnd_plans_total", "attnd_chunk_tokens_bucket", "attnd_oom_retries_total",
        "attnd_device_memory_free_bytes", "attnd_pool_reserved_bytes", "attnd_pool_used_bytes",
        "attnd_bytes_received_total", "attnd_bytes_sent_total", "attnd_build_info",
        "process_resident_memory_bytes", "process_cpu_seconds_total"}) {
    EXPECT_NE(text->find(absl::StrCat("\n", name)), std::string::npos) << name;
  }
  EXPECT_EQ(MetricValue(*text, "attnd_requests_total", {"code=\"OK\""}), 3);
  EXPECT_EQ(MetricValue(*text, "attnd_requests_total", {"code=\"INVALID_ARGUMENT\""}), 1);
  EXPECT_EQ(MetricValue(*text, "attnd_plans_total", {"variant=\"cpu_chunked\""}), 3);
  EXPECT_GT(MetricValue(*text, "attnd_bytes_received_total"), 3 * 3 * 33 * 2 * 16 * 4 - 1);
  EXPECT_EQ(MetricValue(*text, "attnd_request_duration_seconds_count"), 4);
  EXPECT_EQ(MetricValue(*text, "attnd_build_info", {"backend=\"cpu\""}), 1);
  EXPECT_FALSE(HttpGet(server_->metrics_address(), "/nothing").ok());
}

TEST_F(MetricsTest, PromtoolAcceptsTheLiveText) {
  if (access("/usr/bin/promtool", X_OK) != 0) GTEST_SKIP() << "promtool is not installed";
  absl::StatusOr<std::string> text = HttpGet(server_->metrics_address(), "/metrics");
  ASSERT_TRUE(text.ok()) << text.status();
  CommandResult result = RunCommand({"promtool", "check", "metrics"}, *text);
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(result.output.find("error"), std::string::npos) << result.output;
}

// Minimal URL encoding for PromQL in a query string.
std::string UrlEncode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '_' || c == '-' || c == '.') {
      out += static_cast<char>(c);
    } else {
      out += absl::StrCat("%", absl::Hex(c, absl::kZeroPad2));
    }
  }
  return out;
}

TEST_F(MetricsTest, RealPrometheusScrapesAttnd) {
  if (access("/usr/bin/prometheus", X_OK) != 0) GTEST_SKIP() << "prometheus is not installed";
  char dir_template[] = "/tmp/attnd-prometheus-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  {
    std::ofstream config(dir + "/prometheus.yml");
    config << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
           << "scrape_configs:\n  - job_name: attnd\n    static_configs:\n"
           << "      - targets: ['" << server_->metrics_address() << "']\n";
  }
  const int port = FreeLoopbackPort();
  const std::string web = absl::StrCat("127.0.0.1:", port);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string config_flag = "--config.file=" + dir + "/prometheus.yml";
    const std::string storage_flag = "--storage.tsdb.path=" + dir + "/data";
    const std::string web_flag = "--web.listen-address=" + web;
    freopen((dir + "/prometheus.log").c_str(), "w", stderr);
    execl("/usr/bin/prometheus", "prometheus", config_flag.c_str(), storage_flag.c_str(),
          web_flag.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  bool up = false, requests_visible = false;
  std::string last;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline && !(up && requests_visible)) {
    absl::SleepFor(absl::Milliseconds(500));
    absl::StatusOr<std::string> up_json =
        HttpGet(web, "/api/v1/query?query=" + UrlEncode("up{job=\"attnd\"}"));
    if (up_json.ok()) {
      last = *up_json;
      up = up_json->find("\"value\":[") != std::string::npos &&
           up_json->find(",\"1\"]") != std::string::npos;
    }
    absl::StatusOr<std::string> req_json =
        HttpGet(web, "/api/v1/query?query=" + UrlEncode("attnd_requests_total{code=\"OK\"}"));
    if (req_json.ok()) {
      requests_visible = req_json->find("attnd_requests_total") != std::string::npos &&
                         req_json->find(",\"3\"]") != std::string::npos;
      if (!requests_visible) last = *req_json;
    }
  }
  kill(pid, SIGTERM);
  int status;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(up) << last;
  EXPECT_TRUE(requests_visible) << last;
  RunCommand({"rm", "-rf", dir});
}

}  // namespace
}  // namespace attnd::testing
