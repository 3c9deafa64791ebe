#include "server/config/config.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "yaml-cpp/yaml.h"

namespace attnd::server {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

// A null-terminated environ array built from strings.
class FakeEnviron {
 public:
  explicit FakeEnviron(std::vector<std::string> entries) : entries_(std::move(entries)) {
    for (std::string& entry : entries_) pointers_.push_back(entry.data());
    pointers_.push_back(nullptr);
  }
  char** get() { return pointers_.data(); }

 private:
  std::vector<std::string> entries_;
  std::vector<char*> pointers_;
};

// Writes `text` to a fresh temporary file, removed on destruction.
class TempFile {
 public:
  explicit TempFile(const std::string& text) {
    char name[] = "/tmp/attnd_config_test_XXXXXX";
    const int fd = mkstemp(name);
    EXPECT_GE(fd, 0);
    close(fd);
    path_ = name;
    std::ofstream(path_) << text;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string ErrorOf(const std::string& yaml) {
  absl::StatusOr<Config> config = ParseConfig(yaml);
  EXPECT_FALSE(config.ok()) << "accepted:\n" << yaml;
  if (config.ok()) return "";
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(config.status().message());
}

TEST(ConfigTest, EmptyDocumentGivesDefaults) {
  for (const std::string yaml : {"", "# only a comment\n", "server:\n", "---\n"}) {
    absl::StatusOr<Config> config = ParseConfig(yaml);
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(ConfigToYaml(*config), ConfigToYaml(Config{}));
  }
  Config defaults;
  EXPECT_EQ(defaults.server.listen, "0.0.0.0:50051");
  EXPECT_EQ(defaults.scheduler.max_queue_requests, 256);
  EXPECT_EQ(defaults.logging.format, "json");
}

TEST(ConfigTest, FullValidFileSetsEveryKey) {
  const std::string yaml = R"(
server:
  listen: "127.0.0.1:6000"
  max_message_bytes: 64MiB
  drain_timeout_seconds: 2.5
  max_concurrent_streams: 17
  handshake_timeout_seconds: 2.5
  keepalive_min_ping_interval_seconds: 0.5
  keepalive_permit_without_calls: true
  tls_cert_file: /etc/attnd/tls/tls.crt
  tls_key_file: "/etc/attnd/tls/tls.key"
  tls_client_ca_file: '/etc/attnd/client ca/ca.crt'
  health_listen: "0.0.0.0:50052"
  auth_token_file: /var/run/secrets/attnd/tokens
  auth_token_reload_seconds: 0
metrics:
  enabled: false
  listen: "[::1]:9999"
backend:
  kind: cpu
  devices: [0, 3]
  cpu_threads: 7
memory:
  host_budget_bytes: 256MiB
  host_fraction: 0.25
  device_fraction: 0.75
  device_bytes: 1.5GiB
  safety_margin_bytes: 512KB
scheduler:
  max_queue_requests: 33
  priority_levels: 4
  max_queue_delay_us: 1500
  max_batch_requests: 8
  max_batch_tokens: 65536
  default_timeout_seconds: 12
  workers: 3
planner:
  min_q_chunk: 8
  min_kv_chunk: 32
  max_q_chunk: 512
  max_kv_chunk: 2048
limits:
  max_batch: 64
  max_seq_len: 4096
  max_heads: 128
  max_head_dim: 256
  max_tensor_elements: 1000000
  max_tokens: 8192
logging:
  level: debug
  format: text
)";
  absl::StatusOr<Config> parsed = ParseConfig(yaml);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const Config& c = *parsed;
  EXPECT_EQ(c.server.listen, "127.0.0.1:6000");
  EXPECT_EQ(c.server.max_message_bytes, 64 << 20);
  EXPECT_DOUBLE_EQ(c.server.drain_timeout_seconds, 2.5);
  EXPECT_EQ(c.server.max_concurrent_streams, 17);
  EXPECT_DOUBLE_EQ(c.server.handshake_timeout_seconds, 2.5);
  EXPECT_DOUBLE_EQ(c.server.keepalive_min_ping_interval_seconds, 0.5);
  EXPECT_TRUE(c.server.keepalive_permit_without_calls);
  EXPECT_EQ(c.server.tls_cert_file, "/etc/attnd/tls/tls.crt");
  EXPECT_EQ(c.server.tls_key_file, "/etc/attnd/tls/tls.key");
  EXPECT_EQ(c.server.tls_client_ca_file, "/etc/attnd/client ca/ca.crt");
  EXPECT_EQ(c.server.health_listen, "0.0.0.0:50052");
  EXPECT_EQ(c.server.auth_token_file, "/var/run/secrets/attnd/tokens");
  EXPECT_DOUBLE_EQ(c.server.auth_token_reload_seconds, 0);
  EXPECT_FALSE(c.metrics.enabled);
  EXPECT_EQ(c.metrics.listen, "[::1]:9999");
  EXPECT_EQ(c.backend.kind, "cpu");
  EXPECT_EQ(c.backend.devices, (std::vector<int>{0, 3}));
  EXPECT_EQ(c.backend.cpu_threads, 7);
  EXPECT_EQ(c.memory.host_budget_bytes, 256 << 20);
  EXPECT_DOUBLE_EQ(c.memory.host_fraction, 0.25);
  EXPECT_DOUBLE_EQ(c.memory.device_fraction, 0.75);
  EXPECT_EQ(c.memory.device_bytes, 3 * (int64_t{1} << 29));
  EXPECT_EQ(c.memory.safety_margin_bytes, 512000);
  EXPECT_EQ(c.scheduler.max_queue_requests, 33);
  EXPECT_EQ(c.scheduler.priority_levels, 4);
  EXPECT_EQ(c.scheduler.max_queue_delay_us, 1500);
  EXPECT_EQ(c.scheduler.max_batch_requests, 8);
  EXPECT_EQ(c.scheduler.max_batch_tokens, 65536);
  EXPECT_DOUBLE_EQ(c.scheduler.default_timeout_seconds, 12);
  EXPECT_EQ(c.scheduler.workers, 3);
  EXPECT_EQ(c.planner.min_q_chunk, 8);
  EXPECT_EQ(c.planner.min_kv_chunk, 32);
  EXPECT_EQ(c.planner.max_q_chunk, 512);
  EXPECT_EQ(c.planner.max_kv_chunk, 2048);
  EXPECT_EQ(c.limits.max_batch, 64);
  EXPECT_EQ(c.limits.max_seq_len, 4096);
  EXPECT_EQ(c.limits.max_heads, 128);
  EXPECT_EQ(c.limits.max_head_dim, 256);
  EXPECT_EQ(c.limits.max_tensor_elements, 1000000);
  EXPECT_EQ(c.limits.max_tokens, 8192);
  EXPECT_EQ(c.logging.level, "debug");
  EXPECT_EQ(c.logging.format, "text");
  // The effective config reads back to the same values.
  absl::StatusOr<Config> again = ParseConfig(ConfigToYaml(c));
  ASSERT_TRUE(again.ok()) << again.status() << "\n" << ConfigToYaml(c);
  EXPECT_EQ(ConfigToYaml(*again), ConfigToYaml(c));
}

TEST(ConfigTest, ConfigToYamlRoundTripsRandomValues) {
  std::mt19937_64 rng(20261123);
  for (int trial = 0; trial < 50; ++trial) {
    Config c;
    c.server.max_message_bytes = std::uniform_int_distribution<int64_t>(1024, INT32_MAX)(rng);
    c.server.drain_timeout_seconds = std::uniform_real_distribution<double>(0, 3600)(rng);
    c.memory.host_fraction = std::uniform_real_distribution<double>(0.001, 1)(rng);
    c.memory.device_bytes = std::uniform_int_distribution<int64_t>(0, int64_t{1} << 45)(rng);
    c.scheduler.max_queue_requests = std::uniform_int_distribution<int64_t>(1, 1 << 20)(rng);
    c.backend.devices = {static_cast<int>(rng() % 8), static_cast<int>(rng() % 8) + 8};
    absl::StatusOr<Config> again = ParseConfig(ConfigToYaml(c));
    ASSERT_TRUE(again.ok()) << again.status() << "\n" << ConfigToYaml(c);
    EXPECT_EQ(again->server.max_message_bytes, c.server.max_message_bytes);
    EXPECT_EQ(again->server.drain_timeout_seconds, c.server.drain_timeout_seconds);
    EXPECT_EQ(again->memory.host_fraction, c.memory.host_fraction);
    EXPECT_EQ(again->memory.device_bytes, c.memory.device_bytes);
    EXPECT_EQ(again->scheduler.max_queue_requests, c.scheduler.max_queue_requests);
    EXPECT_EQ(again->backend.devices, c.backend.devices);
  }
}

TEST(ConfigTest, SecurityOffByDefault) {
  const Config c;
  EXPECT_TRUE(c.server.tls_cert_file.empty());
  EXPECT_TRUE(c.server.tls_key_file.empty());
  EXPECT_TRUE(c.server.tls_client_ca_file.empty());
  EXPECT_TRUE(c.server.auth_token_file.empty());
}

TEST(ConfigTest, PathsRoundTripWithQuotesAndBackslashes) {
  Config c;
  c.server.tls_cert_file = "/odd dir/\"quoted\"\\back.crt";
  c.server.tls_key_file = "relative/key.pem";
  absl::StatusOr<Config> again = ParseConfig(ConfigToYaml(c));
  ASSERT_TRUE(again.ok()) << again.status() << "\n" << ConfigToYaml(c);
  EXPECT_EQ(again->server.tls_cert_file, c.server.tls_cert_file);
  EXPECT_EQ(again->server.tls_key_file, c.server.tls_key_file);
}

TEST(ConfigTest, TlsFilesComeTogether) {
  EXPECT_THAT(ErrorOf("server:\n  tls_cert_file: a.crt\n"),
              HasSubstr("server.tls_cert_file is set but server.tls_key_file is not"));
  EXPECT_THAT(ErrorOf("server:\n  tls_key_file: a.key\n"),
              HasSubstr("server.tls_key_file is set but server.tls_cert_file is not"));
  EXPECT_THAT(ErrorOf("server:\n  tls_client_ca_file: ca.crt\n"),
              HasSubstr("server.tls_client_ca_file is set but server.tls_cert_file is not"));
  EXPECT_TRUE(ParseConfig("server:\n  tls_cert_file: a.crt\n  tls_key_file: a.key\n"
                          "  tls_client_ca_file: ca.crt\n")
                  .ok());
}

TEST(ConfigTest, HealthListenOnlyWithTlsAndOnItsOwnPort) {
  EXPECT_THAT(ErrorOf("server:\n  health_listen: 0.0.0.0:50052\n"),
              HasSubstr("server.health_listen is set but TLS is off"));
  const std::string tls = "server:\n  tls_cert_file: a.crt\n  tls_key_file: a.key\n";
  EXPECT_THAT(ErrorOf(tls + "  listen: 0.0.0.0:50051\n  health_listen: 0.0.0.0:50051\n"),
              HasSubstr("is also server.listen"));
  EXPECT_THAT(ErrorOf(tls + "  health_listen: nohost\n"), HasSubstr("server.health_listen"));
  absl::StatusOr<Config> config = ParseConfig(tls + "  health_listen: \"\"\n");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server.health_listen, "");
}

TEST(ConfigTest, LimitKeysRefuseOutOfRange) {
  EXPECT_THAT(ErrorOf("server:\n  handshake_timeout_seconds: 0\n"),
              AllOf(HasSubstr("server.handshake_timeout_seconds"), HasSubstr("(0, 3600]")));
  EXPECT_THAT(ErrorOf("server:\n  keepalive_min_ping_interval_seconds: -1\n"),
              HasSubstr("server.keepalive_min_ping_interval_seconds"));
  EXPECT_THAT(
      ErrorOf("server:\n  keepalive_permit_without_calls: maybe\n"),
      AllOf(HasSubstr("server.keepalive_permit_without_calls"), HasSubstr("true or false")));
  EXPECT_THAT(ErrorOf("limits:\n  max_tokens: 0\n"),
              AllOf(HasSubstr("limits.max_tokens"), HasSubstr("out of range")));
}

TEST(LoadConfigTest, SecurityKeysFromFlagsAndEnvironment) {
  FakeEnviron env({"ATTND_SERVER_AUTH_TOKEN_FILE=/run/secrets/tokens",
                   "ATTND_SERVER_TLS_KEY_FILE=/env/tls.key"});
  absl::StatusOr<Config> config = LoadConfig(
      "", {{"server.tls_cert_file", "/flag/tls.crt"}, {"server.tls_key_file", "/flag/tls.key"}},
      env.get());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server.tls_cert_file, "/flag/tls.crt");
  EXPECT_EQ(config->server.tls_key_file, "/env/tls.key");  // the variable wins
  EXPECT_EQ(config->server.auth_token_file, "/run/secrets/tokens");
}

TEST(ConfigTest, UnknownKeyNamesFullPath) {
  const std::string message = ErrorOf("scheduler:\n  max_queue_requets: 5\n");
  EXPECT_THAT(message, HasSubstr("scheduler.max_queue_requets: unknown key"));
  EXPECT_THAT(message, HasSubstr("did you mean max_queue_requests?"));
}

TEST(ConfigTest, UnknownSectionNamed) {
  const std::string message = ErrorOf("schedulr:\n  workers: 2\n");
  EXPECT_THAT(message, HasSubstr("schedulr: unknown section"));
  EXPECT_THAT(message, HasSubstr("did you mean scheduler?"));
}

TEST(ConfigTest, BadTypeNamesKeyValueAndRange) {
  EXPECT_THAT(ErrorOf("scheduler:\n  max_queue_requests: lots\n"),
              AllOf(HasSubstr("scheduler.max_queue_requests"), HasSubstr("\"lots\""),
                    HasSubstr("an integer in [1, 1048576]")));
  EXPECT_THAT(ErrorOf("server:\n  drain_timeout_seconds: soon\n"),
              AllOf(HasSubstr("server.drain_timeout_seconds"), HasSubstr("\"soon\""),
                    HasSubstr("[0, 3600]")));
  EXPECT_THAT(
      ErrorOf("metrics:\n  enabled: maybe\n"),
      AllOf(HasSubstr("metrics.enabled"), HasSubstr("\"maybe\""), HasSubstr("true or false")));
  EXPECT_THAT(ErrorOf("scheduler:\n  workers: [1, 2]\n"),
              AllOf(HasSubstr("scheduler.workers"), HasSubstr("got a list")));
  EXPECT_THAT(ErrorOf("backend:\n  devices: [0, x]\n"),
              AllOf(HasSubstr("backend.devices"), HasSubstr("\"x\"")));
  EXPECT_THAT(ErrorOf("server: 5\n"), HasSubstr("server: expected a map of keys"));
  EXPECT_THAT(ErrorOf("- a\n- b\n"), HasSubstr("top level must be a map"));
}

TEST(ConfigTest, OutOfRangeNamesKeyValueAndRange) {
  EXPECT_THAT(ErrorOf("scheduler:\n  max_queue_requests: 0\n"),
              HasSubstr("scheduler.max_queue_requests: value 0 out of range [1, 1048576]"));
  EXPECT_THAT(ErrorOf("memory:\n  host_fraction: 0\n"),
              HasSubstr("memory.host_fraction: value 0 out of range (0, 1]"));
  EXPECT_THAT(ErrorOf("memory:\n  device_fraction: 1.5\n"),
              HasSubstr("memory.device_fraction: value 1.5 out of range (0, 1]"));
  EXPECT_THAT(ErrorOf("backend:\n  devices: [0, 5000]\n"),
              HasSubstr("backend.devices: value 5000 out of range [0, 1023]"));
  EXPECT_THAT(ErrorOf("planner:\n  min_q_chunk: 64\n  max_q_chunk: 32\n"),
              HasSubstr("planner.min_q_chunk (64) is greater than planner.max_q_chunk (32)"));
}

TEST(ConfigTest, BadEnumNamesChoices) {
  EXPECT_THAT(
      ErrorOf("backend:\n  kind: gpu\n"),
      AllOf(HasSubstr("backend.kind"), HasSubstr("\"gpu\""), HasSubstr("one of auto|cpu|cuda")));
  EXPECT_THAT(ErrorOf("logging:\n  level: verbose\n"),
              AllOf(HasSubstr("logging.level"), HasSubstr("debug|info|warning|error")));
  EXPECT_THAT(ErrorOf("logging:\n  format: xml\n"),
              AllOf(HasSubstr("logging.format"), HasSubstr("json|text")));
  // Case does not matter; the canonical spelling is stored.
  absl::StatusOr<Config> config = ParseConfig("backend:\n  kind: CPU\n");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->backend.kind, "cpu");
}

TEST(ConfigTest, BadListenAddressNamed) {
  for (const std::string bad :
       {"50051", ":50051", "0.0.0.0:", "0.0.0.0:port", "::1:80", "[::1:80", "host name:80"}) {
    EXPECT_THAT(ErrorOf(absl::StrCat("server:\n  listen: \"", bad, "\"\n")),
                AllOf(HasSubstr("server.listen"), HasSubstr("host:port")))
        << bad;
  }
  EXPECT_THAT(ErrorOf("metrics:\n  listen: \"0.0.0.0:70000\"\n"),
              AllOf(HasSubstr("metrics.listen"), HasSubstr("port 70000"), HasSubstr("[0, 65535]")));
  for (const std::string good : {"0.0.0.0:0", "localhost:8080", "[::]:50051", "[::1]:1"}) {
    absl::StatusOr<Config> config =
        ParseConfig(absl::StrCat("server:\n  listen: \"", good, "\"\n"));
    EXPECT_TRUE(config.ok()) << good << ": " << config.status();
  }
  EXPECT_THAT(ErrorOf("server:\n  listen: \"127.0.0.1:7000\"\nmetrics:\n  listen: "
                      "\"127.0.0.1:7000\"\n"),
              HasSubstr("metrics.listen: \"127.0.0.1:7000\" is also server.listen"));
}

TEST(ConfigTest, BadByteSizeNamed) {
  EXPECT_THAT(
      ErrorOf("memory:\n  host_budget_bytes: 12XB\n"),
      AllOf(HasSubstr("memory.host_budget_bytes"), HasSubstr("\"12XB\""), HasSubstr("byte size")));
  EXPECT_THAT(ErrorOf("server:\n  max_message_bytes: 4GiB\n"),
              AllOf(HasSubstr("server.max_message_bytes: value 4GiB (4294967296 bytes) out of "
                              "range [1024, 2147483647]")));
  EXPECT_THAT(ErrorOf("memory:\n  device_bytes: -5\n"), HasSubstr("memory.device_bytes"));
}

TEST(ConfigTest, ParseByteSizeUnits) {
  EXPECT_EQ(*ParseByteSize("1048576"), 1048576);
  EXPECT_EQ(*ParseByteSize("256MiB"), int64_t{256} << 20);
  EXPECT_EQ(*ParseByteSize("1GiB"), int64_t{1} << 30);
  EXPECT_EQ(*ParseByteSize("512KB"), 512000);
  EXPECT_EQ(*ParseByteSize("512kib"), 512 * 1024);
  EXPECT_EQ(*ParseByteSize("2 G"), 2000000000);
  EXPECT_EQ(*ParseByteSize("4Ki"), 4096);
  EXPECT_EQ(*ParseByteSize("1.5GiB"), 3 * (int64_t{1} << 29));
  EXPECT_EQ(*ParseByteSize("7B"), 7);
  EXPECT_EQ(*ParseByteSize("2TiB"), int64_t{2} << 40);
  for (const char* bad : {"", "MiB", "-1", "1.2.3MiB", "10 parsecs", "99999999999999TiB"}) {
    EXPECT_FALSE(ParseByteSize(bad).ok()) << bad;
  }
}

TEST(ConfigTest, AllErrorsReportedTogether) {
  const std::string message =
      ErrorOf("scheduler:\n  workers: 0\n  bogus: 1\nlogging:\n  level: loud\n");
  EXPECT_THAT(message, AllOf(HasSubstr("scheduler.workers"), HasSubstr("scheduler.bogus"),
                             HasSubstr("logging.level")));
}

TEST(ConfigTest, DuplicateKeyRefused) {
  EXPECT_THAT(ErrorOf("scheduler:\n  workers: 2\n  workers: 3\n"),
              HasSubstr("scheduler.workers: duplicate key"));
}

TEST(ConfigTest, YamlSyntaxErrorHasLine) {
  EXPECT_THAT(ErrorOf("server:\n  listen: [unclosed\n"), HasSubstr("YAML syntax error at line"));
}

TEST(LoadConfigTest, MissingFileIsNotFound) {
  absl::StatusOr<Config> config = LoadConfig("/nonexistent/attnd.yaml", {}, nullptr);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(config.status().message(), HasSubstr("/nonexistent/attnd.yaml"));
}

TEST(LoadConfigTest, FileErrorNamesFileAndKey) {
  TempFile file("scheduler:\n  workers: 0\n");
  absl::StatusOr<Config> config = LoadConfig(file.path(), {}, nullptr);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(),
              AllOf(HasSubstr(file.path()), HasSubstr("scheduler.workers: value 0")));
}

TEST(LoadConfigTest, FlagsOverrideFileAndEnvOverridesFlags) {
  TempFile file(
      "server:\n  listen: \"127.0.0.1:1111\"\nscheduler:\n  max_queue_requests: 10\n"
      "  workers: 2\nbackend:\n  kind: cuda\n");
  const std::map<std::string, std::string> flags = {{"server.listen", "127.0.0.1:2222"},
                                                    {"scheduler.max_queue_requests", "20"},
                                                    {"backend.devices", "1,2"}};
  {
    absl::StatusOr<Config> config = LoadConfig(file.path(), flags, nullptr);
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->server.listen, "127.0.0.1:2222");   // flag over file
    EXPECT_EQ(config->scheduler.max_queue_requests, 20);  // flag over file
    EXPECT_EQ(config->scheduler.workers, 2);              // file over default
    EXPECT_EQ(config->backend.kind, "cuda");              // file
    EXPECT_EQ(config->backend.devices, (std::vector<int>{1, 2}));
  }
  FakeEnviron env({"PATH=/usr/bin", "ATTND_SCHEDULER_MAX_QUEUE_REQUESTS=30",
                   "ATTND_SERVER_LISTEN=127.0.0.1:3333", "ATTND_BACKEND_DEVICES=[4]",
                   "ATTND_METRICS_ENABLED=false", "ATTND_CONFIG=/ignored/path.yaml",
                   "ATTND_MEMORY_HOST_BUDGET_BYTES=2GiB"});
  absl::StatusOr<Config> config = LoadConfig(file.path(), flags, env.get());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server.listen, "127.0.0.1:3333");  // env over flag
  EXPECT_EQ(config->scheduler.max_queue_requests, 30);
  EXPECT_EQ(config->backend.devices, (std::vector<int>{4}));
  EXPECT_FALSE(config->metrics.enabled);
  EXPECT_EQ(config->memory.host_budget_bytes, int64_t{2} << 30);
  EXPECT_EQ(config->scheduler.workers, 2);  // untouched by flags and env
}

TEST(LoadConfigTest, NoPathMeansDefaultsPlusOverrides) {
  FakeEnviron env({"ATTND_LOGGING_FORMAT=text"});
  absl::StatusOr<Config> config = LoadConfig("", {{"logging.level", "error"}}, env.get());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->logging.level, "error");
  EXPECT_EQ(config->logging.format, "text");
  EXPECT_EQ(config->server.listen, Config{}.server.listen);
}

TEST(LoadConfigTest, UnknownEnvironmentVariableRefused) {
  FakeEnviron env({"ATTND_SCHEDULER_MAX_QUEUE_REQUETS=5", "ATTND_CONFIG=/x.yaml"});
  absl::StatusOr<Config> config = LoadConfig("", {}, env.get());
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      config.status().message(),
      AllOf(HasSubstr("ATTND_SCHEDULER_MAX_QUEUE_REQUETS"), HasSubstr("names no config key"),
            HasSubstr("did you mean ATTND_SCHEDULER_MAX_QUEUE_REQUESTS?")));
  EXPECT_THAT(config.status().message(), ::testing::Not(HasSubstr("ATTND_CONFIG")));
}

TEST(LoadConfigTest, UnknownVariableInASectionOrNearAKeyRefused) {
  for (const char* entry :
       {"ATTND_SERVER_PORT=1", "ATTND_METRIC_LISTEN=127.0.0.1:1", "ATTND_LOGGING_LEVL=info"}) {
    FakeEnviron env({entry});
    absl::StatusOr<Config> config = LoadConfig("", {}, env.get());
    ASSERT_FALSE(config.ok()) << entry;
    EXPECT_THAT(config.status().message(), HasSubstr("names no config key")) << entry;
  }
}

TEST(LoadConfigTest, ScriptVariablesIgnored) {
  FakeEnviron env({"ATTND_CONFIG=/x.yaml", "ATTND_BUILD_DIR=build", "ATTND_CUDA=OFF",
                   "ATTND_BUILD_TYPE=Release", "ATTND_SCHEDULER_WORKERS=3"});
  absl::StatusOr<Config> config = LoadConfig("", {}, env.get());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->scheduler.workers, 3);
}

TEST(LoadConfigTest, BadEnvironmentValueNamesKeyAndVariable) {
  FakeEnviron env({"ATTND_SCHEDULER_WORKERS=-1"});
  absl::StatusOr<Config> config = LoadConfig("", {}, env.get());
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(),
              HasSubstr("scheduler.workers (from ATTND_SCHEDULER_WORKERS): value -1 out of range "
                        "[1, 256]"));
}

TEST(LoadConfigTest, UnknownOrBadFlagRefused) {
  absl::StatusOr<Config> config = LoadConfig("", {{"server.lisen", "127.0.0.1:1"}}, nullptr);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), AllOf(HasSubstr("server.lisen (flag): unknown key"),
                                               HasSubstr("did you mean server.listen?")));
  config = LoadConfig("", {{"backend.kind", "tpu"}}, nullptr);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(),
              AllOf(HasSubstr("backend.kind (flag)"), HasSubstr("\"tpu\"")));
}

TEST(DefaultConfigFileTest, ParsesToStructDefaults) {
  absl::StatusOr<Config> config = LoadConfig(ATTND_DEFAULT_CONFIG_PATH, {}, nullptr);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(ConfigToYaml(*config), ConfigToYaml(Config{}));
}

TEST(DefaultConfigFileTest, WritesEveryKeyWithAComment) {
  const YAML::Node root = YAML::LoadFile(ATTND_DEFAULT_CONFIG_PATH);
  for (const std::string& path : ConfigKeyPaths()) {
    const size_t dot = path.find('.');
    const std::string section = path.substr(0, dot);
    const std::string key = path.substr(dot + 1);
    EXPECT_TRUE(root[section] && root[section][key]) << path << " missing from attnd.yaml";
  }
  // Every key line carries a comment.
  std::ifstream file(ATTND_DEFAULT_CONFIG_PATH);
  std::string line;
  int key_lines = 0;
  while (std::getline(file, line)) {
    if (line.rfind("  ", 0) != 0) continue;  // keys are indented under their section
    ++key_lines;
    EXPECT_NE(line.find(" # "), std::string::npos) << "no comment: " << line;
  }
  EXPECT_EQ(key_lines, static_cast<int>(ConfigKeyPaths().size()));
}

}  // namespace
}  // namespace attnd::server
