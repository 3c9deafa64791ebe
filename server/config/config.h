// attnd's configuration: one YAML file (config/attnd.yaml documents every key), overridden by
// command-line flags, overridden in turn by ATTND_* environment variables (for Kubernetes).
// Unknown keys and out-of-range values are refused, naming the key.
#ifndef ATTND_SERVER_CONFIG_CONFIG_H_
#define ATTND_SERVER_CONFIG_CONFIG_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/planner.h"
#include "kernels/problem.h"

namespace attnd::server {

struct ServerSection {
  std::string listen = "0.0.0.0:50051";
  int64_t max_message_bytes = 256 << 20;  // gRPC receive/send limit
  double drain_timeout_seconds = 30;      // SIGTERM: stop accepting, finish in-flight, exit 0
  int64_t max_concurrent_streams = 256;   // HTTP/2 streams per connection

  // Connection limits: a connection that has not finished its TLS handshake and HTTP/2 preface
  // by then is closed; pings closer together than the interval (or any ping while no call is
  // open, unless permitted) are strikes, and the third strike closes the connection with
  // GOAWAY ENHANCE_YOUR_CALM "too_many_pings".
  double handshake_timeout_seconds = 10;
  double keepalive_min_ping_interval_seconds = 10;
  bool keepalive_permit_without_calls = false;

  // TLS: on when tls_cert_file and tls_key_file are set (PEM); with tls_client_ca_file, clients
  // must present a certificate signed by one of its CAs (mutual TLS).
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  // With TLS on: a second, plaintext port ("host:port", "" for none) on which only
  // grpc.health.v1.Health (and reflection) answer, for Kubernetes gRPC probes, which cannot
  // speak TLS. attnd.v1 calls arriving there are refused PERMISSION_DENIED.
  std::string health_listen;

  // Bearer tokens: on when auth_token_file is set (one token per line); every attnd.v1 call
  // must carry "authorization: Bearer <token>". Re-read every auth_token_reload_seconds (0: only
  // at start). Health and reflection stay open.
  std::string auth_token_file;
  double auth_token_reload_seconds = 10;
};

struct MetricsSection {
  bool enabled = true;
  std::string listen = "0.0.0.0:9464";  // serves /metrics
};

struct BackendSection {
  std::string kind = "auto";  // auto | cpu | cuda
  std::vector<int> devices;   // CUDA device ordinals; empty = all
  int cpu_threads = 0;        // 0 = hardware concurrency
};

struct MemorySection {
  // CPU: budget = min(host_budget_bytes, host_fraction * MemAvailable) - safety_margin_bytes.
  int64_t host_budget_bytes = int64_t{1} << 30;
  double host_fraction = 0.5;
  // CUDA: pool limit = device_bytes if non-zero, else device_fraction of the card.
  double device_fraction = 0.9;
  int64_t device_bytes = 0;
  int64_t safety_margin_bytes = 64 << 20;
};

struct SchedulerSection {
  int64_t max_queue_requests = 256;     // full → RESOURCE_EXHAUSTED at once
  int priority_levels = 2;              // request priority clamped to [0, levels)
  int64_t max_queue_delay_us = 0;       // how long the batcher may hold a batch to fill it
  int64_t max_batch_requests = 16;      // 1: no batching
  int64_t max_batch_tokens = 1 << 20;   // B x max(Mq, Mk) summed over a batch
  double default_timeout_seconds = 60;  // for requests that carry no deadline
  int workers = 1;                      // executors per device (batches run at once on each)
  // A batch's compatible requests run as one ragged launch (the CPU's cpu_chunked, a GPU's
  // fused kernel; server/executor/ragged_runner.h); false: one launch per request. Off by
  // default: on the CPU it measured slower (bench/RESULTS.md, 2026-12-07: 211 against 264 req/s
  // on a mixed-length load), since a launch's members are answered only when all are done.
  bool ragged_launch = false;
};

struct LoggingSection {
  std::string level = "info";   // debug | info | warning | error
  std::string format = "json";  // json | text
};

struct Config {
  ServerSection server;
  MetricsSection metrics;
  BackendSection backend;
  MemorySection memory;
  SchedulerSection scheduler;
  kernels::PlannerConfig planner;  // forced_variant/overrides stay per request
  kernels::ProblemLimits limits;
  LoggingSection logging;
};

// Parses YAML text (an empty document gives the defaults).
absl::StatusOr<Config> ParseConfig(const std::string& yaml_text);
// Reads the file, then applies `flag_overrides` (key path → value, e.g. "server.listen"), then
// ATTND_<SECTION>_<KEY> variables from `environ` (e.g. ATTND_SERVER_LISTEN).
// An empty `path` reads no file (the defaults); `environ` may be null. A variable that starts
// with a section (ATTND_SCHEDULER_...) or is within a typo of a key's variable must name a key;
// other ATTND_* variables (ATTND_CONFIG, which main may read the path from, and the scripts'
// ATTND_BUILD_DIR, ATTND_CUDA, ...) are ignored.
// Errors: NOT_FOUND for an unreadable file; INVALID_ARGUMENT naming the key path for the rest.
absl::StatusOr<Config> LoadConfig(const std::string& path,
                                  const std::map<std::string, std::string>& flag_overrides,
                                  char** environ);

// The effective configuration as YAML, every key (for the start-up log); ParseConfig reads it
// back to an equal Config.
std::string ConfigToYaml(const Config& config);

// Every key path ("server.listen", ...), in the order of config/attnd.yaml.
std::vector<std::string> ConfigKeyPaths();

// "1048576", "512KB" (×1000), "256MiB" (×1024), "1.5GiB", "2 G", "4Ki": units B, K/KB, M/MB,
// G/GB, T/TB (powers of 1000) and Ki/KiB, Mi/MiB, Gi/GiB, Ti/TiB (powers of 1024), any case.
absl::StatusOr<int64_t> ParseByteSize(std::string_view text);

}  // namespace attnd::server

#endif  // ATTND_SERVER_CONFIG_CONFIG_H_
