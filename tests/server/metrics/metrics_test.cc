#include "server/metrics/metrics.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attnd::server::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// The registry's own families come first: every one here sorts before "process_".
std::string RegistryPart(const Registry& registry) {
  const std::string text = registry.Render();
  return text.substr(0, text.find("# HELP process_"));
}

// The value of the sample line that starts with `series` + " ", or NaN.
double SampleValue(const std::string& text, const std::string& series) {
  const std::string key = "\n" + series + " ";
  const size_t at = ("\n" + text).find(key);
  if (at == std::string::npos) return std::nan("");
  return std::strtod(text.c_str() + at + key.size() - 1, nullptr);
}

TEST(MetricsTextTest, CountersAndGaugesWithLabelsAndEscaping) {
  Registry registry;
  registry
      .GetCounter("attnd_requests_total", "Requests by method and code.",
                  {{"method", "Attend"}, {"code", "OK"}})
      ->Increment(3);
  Counter* odd = registry.GetCounter("attnd_requests_total", "ignored: first help wins",
                                     {{"method", "Attend"}, {"code", "quote\"back\\slash\nnl"}});
  odd->Increment(1.25);
  odd->Increment(-7);  // counters never go down
  Gauge* depth = registry.GetGauge("attnd_queue_depth", "Help with \\ and\nnew line.");
  depth->Set(17);
  depth->Add(-4.5);
  EXPECT_EQ(RegistryPart(registry),
            "# HELP attnd_queue_depth Help with \\\\ and\\nnew line.\n"
            "# TYPE attnd_queue_depth gauge\n"
            "attnd_queue_depth 12.5\n"
            "# HELP attnd_requests_total Requests by method and code.\n"
            "# TYPE attnd_requests_total counter\n"
            "attnd_requests_total{method=\"Attend\",code=\"OK\"} 3\n"
            "attnd_requests_total{method=\"Attend\",code=\"quote\\\"back\\\\slash\\nnl\"} 1.25\n");
}

TEST(MetricsTextTest, HistogramBucketsAreCumulativeWithInf) {
  Registry registry;
  Histogram* h = registry.GetHistogram("attnd_compute_duration_seconds", "Compute time.",
                                       {1, 0.125}, {{"variant", "cpu_chunked"}});
  h->Observe(0.0625);
  h->Observe(1);  // a value on a bound counts in that bound's bucket
  h->Observe(4);
  h->Observe(0.5);
  EXPECT_EQ(RegistryPart(registry),
            "# HELP attnd_compute_duration_seconds Compute time.\n"
            "# TYPE attnd_compute_duration_seconds histogram\n"
            "attnd_compute_duration_seconds_bucket{variant=\"cpu_chunked\",le=\"0.125\"} 1\n"
            "attnd_compute_duration_seconds_bucket{variant=\"cpu_chunked\",le=\"1\"} 3\n"
            "attnd_compute_duration_seconds_bucket{variant=\"cpu_chunked\",le=\"+Inf\"} 4\n"
            "attnd_compute_duration_seconds_sum{variant=\"cpu_chunked\"} 5.5625\n"
            "attnd_compute_duration_seconds_count{variant=\"cpu_chunked\"} 4\n");
}

TEST(MetricsTextTest, HistogramWithoutLabelsAndValueFormats) {
  Registry registry;
  Histogram* h =
      registry.GetHistogram("attnd_batch_size", "Requests per batch.", ExponentialBuckets(1, 2, 3));
  EXPECT_EQ(h->bounds(), (std::vector<double>{1, 2, 4}));
  h->Observe(3);
  registry.GetGauge("attnd_a", "Big and small.", {{"k", "big"}})->Set(1e300);
  registry.GetGauge("attnd_a", "Big and small.", {{"k", "inf"}})->Set(-INFINITY);
  registry.GetGauge("attnd_a", "Big and small.", {{"k", "small"}})->Set(0.1);
  EXPECT_EQ(RegistryPart(registry),
            "# HELP attnd_a Big and small.\n"
            "# TYPE attnd_a gauge\n"
            "attnd_a{k=\"big\"} 1e+300\n"
            "attnd_a{k=\"inf\"} -Inf\n"
            "attnd_a{k=\"small\"} 0.1\n"
            "# HELP attnd_batch_size Requests per batch.\n"
            "# TYPE attnd_batch_size histogram\n"
            "attnd_batch_size_bucket{le=\"1\"} 0\n"
            "attnd_batch_size_bucket{le=\"2\"} 0\n"
            "attnd_batch_size_bucket{le=\"4\"} 1\n"
            "attnd_batch_size_bucket{le=\"+Inf\"} 1\n"
            "attnd_batch_size_sum 3\n"
            "attnd_batch_size_count 1\n");
}

TEST(MetricsTest, HistogramMatchesDirectCountOnRandomValues) {
  std::mt19937 rng(7);
  std::lognormal_distribution<double> dist(-3, 2);
  const std::vector<double> bounds = ExponentialBuckets(0.001, 4, 8);
  Histogram h(bounds);
  std::vector<double> values(1000);
  for (double& v : values) {
    v = dist(rng);
    h.Observe(v);
  }
  std::vector<uint64_t> cumulative;
  double sum = 0;
  uint64_t count = 0;
  h.Snapshot(&cumulative, &sum, &count);
  ASSERT_EQ(cumulative.size(), bounds.size() + 1);
  double expected_sum = 0;
  for (double v : values) expected_sum += v;
  EXPECT_NEAR(sum, expected_sum, 1e-9 * expected_sum);
  EXPECT_EQ(count, values.size());
  for (size_t i = 0; i < bounds.size(); ++i) {
    const uint64_t expected =
        std::count_if(values.begin(), values.end(), [&](double v) { return v <= bounds[i]; });
    EXPECT_EQ(cumulative[i], expected) << "le=" << bounds[i];
  }
  EXPECT_EQ(cumulative.back(), values.size());
}

TEST(MetricsTest, SameNameAndLabelsGiveSameChild) {
  Registry registry;
  Counter* a = registry.GetCounter("attnd_x_total", "X.", {{"k", "1"}});
  EXPECT_EQ(a, registry.GetCounter("attnd_x_total", "X.", {{"k", "1"}}));
  EXPECT_NE(a, registry.GetCounter("attnd_x_total", "X.", {{"k", "2"}}));
}

TEST(MetricsTest, MisuseGivesUsableHiddenChild) {
  Registry registry;
  registry.GetCounter("attnd_x_total", "X.", {{"k", "1"}})->Increment(2);
  // Wrong type, wrong label names, bad names: usable objects, never rendered.
  Gauge* clash = registry.GetGauge("attnd_x_total", "X.", {{"k", "1"}});
  ASSERT_NE(clash, nullptr);
  clash->Set(99);
  registry.GetCounter("attnd_x_total", "X.", {{"other", "1"}})->Increment(55);
  registry.GetCounter("9bad name", "X.")->Increment(1);
  registry.GetHistogram("attnd_h", "H.", {1}, {{"le", "x"}})->Observe(1);
  const std::string text = RegistryPart(registry);
  EXPECT_EQ(text,
            "# HELP attnd_x_total X.\n# TYPE attnd_x_total counter\nattnd_x_total{k=\"1\"} 2\n");
}

TEST(MetricsTest, CollectHooksRunAtEveryRender) {
  Registry registry;
  int calls = 0;
  registry.AddCollectHook([&] {
    ++calls;
    // A hook may create and set metrics.
    registry.GetGauge("attnd_renders", "Renders so far.")->Set(calls);
  });
  registry.Render();
  const std::string text = registry.Render();
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(SampleValue(text, "attnd_renders"), 2);
}

TEST(MetricsTest, ConcurrentUpdatesAreNotLost) {
  Registry registry;
  Counter* counter = registry.GetCounter("attnd_c_total", "C.");
  Histogram* histogram = registry.GetHistogram("attnd_h", "H.", {0.5});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5000; ++i) {
        counter->Increment(0.5);
        histogram->Observe(0.25);
        registry.GetGauge("attnd_g", "G.", {{"t", "x"}})->Add(1);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(counter->Value(), 10000);
  EXPECT_EQ(registry.GetGauge("attnd_g", "G.", {{"t", "x"}})->Value(), 20000);
  const std::string text = registry.Render();
  EXPECT_EQ(SampleValue(text, "attnd_h_count"), 20000);
  EXPECT_EQ(SampleValue(text, "attnd_h_bucket{le=\"0.5\"}"), 20000);
}

TEST(ProcessMetricsTest, PresentAndSane) {
  Registry registry;
  const std::string before = registry.Render();
  const double rss = SampleValue(before, "process_resident_memory_bytes");
  const double vsize = SampleValue(before, "process_virtual_memory_bytes");
  const double cpu = SampleValue(before, "process_cpu_seconds_total");
  const double start = SampleValue(before, "process_start_time_seconds");
  const double open_fds = SampleValue(before, "process_open_fds");
  const double max_fds = SampleValue(before, "process_max_fds");
  EXPECT_GT(rss, 1 << 20);
  EXPECT_LT(rss, 64.0 * (1 << 30));
  EXPECT_GE(vsize, rss);
  EXPECT_GE(cpu, 0);
  const double now = static_cast<double>(std::time(nullptr));
  EXPECT_LE(start, now + 1);
  EXPECT_GT(start, now - 86400);
  EXPECT_GE(open_fds, 3);  // stdin, stdout, stderr
  EXPECT_GE(max_fds, open_fds);
  EXPECT_THAT(before, HasSubstr("# TYPE process_cpu_seconds_total counter\n"));
  EXPECT_THAT(before, HasSubstr("# TYPE process_open_fds gauge\n"));

  // Opening descriptors shows up at the next render.
  std::vector<int> fds;
  for (int i = 0; i < 5; ++i) fds.push_back(open("/dev/null", O_RDONLY));
  EXPECT_EQ(SampleValue(registry.Render(), "process_open_fds"), open_fds + 5);
  for (int fd : fds) close(fd);
}

// --- promtool --------------------------------------------------------------------------------

// Runs `promtool check metrics` on `text` (its stdin); returns its exit code, output in *output.
int PromtoolCheck(const std::string& text, std::string* output) {
  char path[] = "/tmp/attnd_metrics_test_XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) return -1;
  close(fd);
  std::ofstream(path) << text;
  const std::string command = std::string("promtool check metrics < ") + path + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return -1;
  char buf[512];
  while (size_t n = fread(buf, 1, sizeof(buf), pipe)) output->append(buf, n);
  const int status = pclose(pipe);
  std::remove(path);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(PromtoolTest, EveryMetricTypePassesCheckMetrics) {
  constexpr const char* kPromtool = "/usr/bin/promtool";
  if (access(kPromtool, X_OK) != 0) GTEST_SKIP() << kPromtool << " not installed";
  Registry registry;
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> uniform(0.001, 3);
  for (const char* code : {"OK", "INVALID_ARGUMENT", "weird \"code\"\n\\"}) {
    registry
        .GetCounter("attnd_requests_total", "Requests by method and status code.",
                    {{"method", "Attend"}, {"code", code}})
        ->Increment(1 + rng() % 100);
  }
  registry.GetGauge("attnd_queue_depth", "Requests waiting in the queue.")->Set(3);
  registry
      .GetGauge("attnd_build_info", "Build information.",
                {{"version", "0.1.0"}, {"backend", "cpu"}, {"cuda", "none"}})
      ->Set(1);
  Histogram* duration = registry.GetHistogram(
      "attnd_request_duration_seconds", "Request latency.\nSecond line with \\ backslash.",
      ExponentialBuckets(0.001, 2, 12), {{"method", "Attend"}});
  Histogram* chunks = registry.GetHistogram("attnd_chunk_tokens", "Chunk sizes.",
                                            ExponentialBuckets(16, 2, 8), {{"axis", "q"}});
  for (int i = 0; i < 200; ++i) {
    duration->Observe(uniform(rng));
    chunks->Observe(16 * uniform(rng) * 100);
  }
  std::string output;
  const std::string text = registry.Render();
  EXPECT_EQ(PromtoolCheck(text, &output), 0) << output << "\n--- input ---\n" << text;
  EXPECT_EQ(output, "") << "promtool reported lint problems";
}

TEST(PromtoolTest, RejectsBrokenInputSoTheCheckMeansSomething) {
  if (access("/usr/bin/promtool", X_OK) != 0) GTEST_SKIP() << "promtool not installed";
  std::string output;
  EXPECT_NE(PromtoolCheck("# TYPE x counter\nx{a=\"unterminated} 1\n", &output), 0) << output;
}

// --- HttpExporter ----------------------------------------------------------------------------

struct HttpResponse {
  int status = 0;
  std::string headers;
  std::string body;
};

// A minimal HTTP/1.1 GET over a raw socket to 127.0.0.1:port.
HttpResponse HttpGet(int port, const std::string& path) {
  HttpResponse response;
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return response;
  }
  const std::string request =
      "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  EXPECT_EQ(send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  std::string raw;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) raw.append(buf, static_cast<size_t>(n));
  close(fd);
  const size_t split = raw.find("\r\n\r\n");
  if (split == std::string::npos) return response;
  response.headers = raw.substr(0, split);
  response.body = raw.substr(split + 4);
  std::sscanf(raw.c_str(), "HTTP/1.%*d %d", &response.status);
  return response;
}

TEST(HttpExporterTest, ServesMetricsOnPickedPortAnd404Elsewhere) {
  Registry registry;
  registry.GetCounter("attnd_requests_total", "Requests.", {{"code", "OK"}})->Increment(42);
  absl::StatusOr<std::unique_ptr<HttpExporter>> exporter =
      HttpExporter::Start("127.0.0.1:0", &registry);
  ASSERT_TRUE(exporter.ok()) << exporter.status();
  const int port = (*exporter)->port();
  ASSERT_GT(port, 0);

  HttpResponse metrics = HttpGet(port, "/metrics");
  EXPECT_EQ(metrics.status, 200) << metrics.headers;
  EXPECT_THAT(metrics.headers, HasSubstr("Content-Type: text/plain; version=0.0.4"));
  EXPECT_THAT(metrics.body, StartsWith("# HELP attnd_requests_total Requests.\n"));
  EXPECT_THAT(metrics.body, HasSubstr("attnd_requests_total{code=\"OK\"} 42\n"));
  EXPECT_THAT(metrics.body, HasSubstr("process_resident_memory_bytes "));

  EXPECT_EQ(HttpGet(port, "/").status, 404);
  EXPECT_EQ(HttpGet(port, "/metricsx").status, 404);
  EXPECT_EQ(HttpGet(port, "/metrics/extra").status, 404);

  // The port is taken while the exporter lives, and free after.
  absl::StatusOr<std::unique_ptr<HttpExporter>> second =
      HttpExporter::Start("127.0.0.1:" + std::to_string(port), &registry);
  EXPECT_FALSE(second.ok());
  exporter->reset();
  EXPECT_EQ(HttpGet(port, "/metrics").status, 0);  // connection refused
}

TEST(HttpExporterTest, BadListenAddressRefused) {
  Registry registry;
  for (const char* bad : {"nonsense", "127.0.0.1:99999", "[::1x]:9464", "not-an-ip:9464"}) {
    absl::StatusOr<std::unique_ptr<HttpExporter>> exporter = HttpExporter::Start(bad, &registry);
    EXPECT_FALSE(exporter.ok()) << bad;
    EXPECT_EQ(exporter.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace attnd::server::metrics
