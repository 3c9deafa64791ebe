// attnd: exact, memory-efficient attention as a gRPC service.
//
//   attnd [--config FILE] [--listen ADDR] [--metrics-listen ADDR] [--backend auto|cpu|cuda]
//         [--log-level debug|info|warning|error] [--tls-cert-file F --tls-key-file F]
//         [--tls-client-ca-file F] [--auth-token-file F]
//
// Start-up errors (bad config, no such backend, an address in use) exit 2 with one line on
// stderr naming the key or address. SIGTERM/SIGINT drain: health NOT_SERVING, in-flight requests
// finish, exit 0 (1 when the drain could not finish within server.drain_timeout_seconds).
// A fatal device error (a sticky CUDA error) turns health NOT_SERVING, answers in-flight and
// queued requests UNAVAILABLE and exits 3, so that the orchestrator restarts the process.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/config/config.h"
#include "server/executor/fatal_device_error.h"
#include "server/faults/fault_injector.h"
#include "server/logging/logging.h"
#include "server/metrics/metrics.h"
#include "server/service/server.h"
#include "server/service/server_info.h"

extern char** environ;

namespace attnd::server {
namespace {

using logging::F;

constexpr int kExitStartupError = 2;
constexpr int kExitDeviceError = 3;
// How long answers to in-flight requests may take to leave after a fatal device error.
constexpr absl::Duration kDeviceErrorGrace = absl::Seconds(5);

constexpr char kUsage[] =
    "usage: attnd [--config FILE] [--listen ADDR] [--metrics-listen ADDR]\n"
    "             [--backend auto|cpu|cuda] [--log-level debug|info|warning|error]\n"
    "             [--tls-cert-file FILE --tls-key-file FILE] [--tls-client-ca-file FILE]\n"
    "             [--auth-token-file FILE] [--help] [--version]\n"
    "\n"
    "Serves exact attention over gRPC (attnd.v1.Attention, health, reflection) and Prometheus\n"
    "metrics over HTTP (/metrics).\n"
    "\n"
    "  --config FILE         YAML config (default: $ATTND_CONFIG, else built-in defaults)\n"
    "  --listen ADDR         gRPC host:port (server.listen)\n"
    "  --metrics-listen ADDR metrics host:port (metrics.listen)\n"
    "  --backend KIND        auto, cpu or cuda (backend.kind)\n"
    "  --log-level LEVEL     debug, info, warning or error (logging.level)\n"
    "  --tls-cert-file FILE  PEM certificate chain; with --tls-key-file turns TLS on\n"
    "                        (server.tls_cert_file)\n"
    "  --tls-key-file FILE   PEM private key of that certificate (server.tls_key_file)\n"
    "  --tls-client-ca-file FILE\n"
    "                        PEM CAs whose client certificates are required: mutual TLS\n"
    "                        (server.tls_client_ca_file)\n"
    "  --health-listen ADDR  with TLS, a plaintext host:port for health probes only\n"
    "                        (server.health_listen)\n"
    "  --auth-token-file FILE\n"
    "                        bearer tokens, one per line; attnd.v1 calls then need\n"
    "                        \"authorization: Bearer <token>\" (server.auth_token_file)\n"
    "\n"
    "ATTND_<SECTION>_<KEY> environment variables override the file and the flags, e.g.\n"
    "ATTND_SERVER_LISTEN=0.0.0.0:50051. SIGTERM drains and exits 0.\n";

struct Flags {
  std::string config_path;
  bool config_given = false;
  std::map<std::string, std::string> overrides;  // config key path → value
  bool help = false;
  bool version = false;
};

// Parses argv; on an error returns the message.
std::optional<std::string> ParseFlags(int argc, char** argv, Flags* flags) {
  const std::map<std::string, std::string> value_flags = {
      {"--listen", "server.listen"},
      {"--metrics-listen", "metrics.listen"},
      {"--backend", "backend.kind"},
      {"--log-level", "logging.level"},
      {"--tls-cert-file", "server.tls_cert_file"},
      {"--tls-key-file", "server.tls_key_file"},
      {"--tls-client-ca-file", "server.tls_client_ca_file"},
      {"--health-listen", "server.health_listen"},
      {"--auth-token-file", "server.auth_token_file"},
  };
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      flags->help = true;
      continue;
    }
    if (arg == "--version") {
      flags->version = true;
      continue;
    }
    std::string name = arg;
    std::optional<std::string> value;
    if (const size_t eq = arg.find('='); absl::StartsWith(arg, "--") && eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    const bool known = name == "--config" || value_flags.count(name) > 0;
    if (!known) return absl::StrCat("unknown argument '", arg, "'");
    if (!value.has_value()) {
      if (i + 1 >= argc) return absl::StrCat(name, " needs a value");
      value = argv[++i];
    }
    if (name == "--config") {
      flags->config_path = *value;
      flags->config_given = true;
    } else {
      flags->overrides[value_flags.at(name)] = *value;
    }
  }
  return std::nullopt;
}

// "host:port" with the bound port in place of the configured one ("0.0.0.0:0" → "0.0.0.0:4242").
std::string BoundAddress(const std::string& listen, int port) {
  const size_t colon = listen.rfind(':');
  const std::string host = colon == std::string::npos ? listen : listen.substr(0, colon);
  return absl::StrCat(host, ":", port);
}

// What the gRPC port's security is, and warnings for setups that are probably mistakes.
void LogSecurity(const service::Server& server) {
  const security::TlsSummary& tls = server.tls();
  if (tls.mode != "off") {
    logging::Log(
        logging::Level::kInfo, "tls",
        {F("mode", tls.mode), F("subject", tls.subject),
         F("not_after", absl::FormatTime(absl::RFC3339_sec, tls.not_after, absl::UTCTimeZone())),
         F("client_cas", tls.client_cas)});
    if (tls.not_after < absl::Now() + absl::Hours(24 * 7)) {
      logging::Log(logging::Level::kWarning, "tls_certificate_expiring",
                   {F("subject", tls.subject),
                    F("not_after",
                      absl::FormatTime(absl::RFC3339_sec, tls.not_after, absl::UTCTimeZone()))});
    }
  }
  if (server.auth_tokens() > 0) {
    logging::Log(logging::Level::kInfo, "auth", {F("tokens", server.auth_tokens())});
    if (tls.mode == "off") {
      logging::Log(logging::Level::kWarning, "auth_without_tls",
                   {F("hint",
                      "bearer tokens cross the network in plaintext; set "
                      "server.tls_cert_file or terminate TLS in front of attnd")});
    }
  }
}

int StartupError(const std::string& message) {
  std::fprintf(stderr, "attnd: %s\n", message.c_str());
  return kExitStartupError;
}

int Main(int argc, char** argv) {
  // Every thread started from here on inherits this mask, so SIGTERM and SIGINT reach only the
  // sigwait below: nothing runs in a signal handler. SIGUSR1 is how a worker thread that met a
  // fatal device error wakes it.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  Flags flags;
  if (std::optional<std::string> error = ParseFlags(argc, argv, &flags)) {
    return StartupError(absl::StrCat(*error, " (see attnd --help)"));
  }
  if (flags.help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (flags.version) {
    std::printf("attnd %s\n%s\n", service::Version(), service::BuildString().c_str());
    return 0;
  }
  if (!flags.config_given) {
    if (const char* env = std::getenv("ATTND_CONFIG"); env != nullptr && *env != '\0') {
      flags.config_path = env;
    }
  }

  absl::StatusOr<Config> config = LoadConfig(flags.config_path, flags.overrides, environ);
  if (!config.ok()) return StartupError(std::string(config.status().message()));
  logging::Level level = logging::Level::kInfo;
  if (!logging::ParseLevel(config->logging.level, &level)) {
    return StartupError(absl::StrCat("logging.level = \"", config->logging.level,
                                     "\": must be debug, info, warning or error"));
  }
  logging::Configure(level, config->logging.format != "text");

#ifdef ATTND_TEST_HOOKS
  // Fault injection for the reliability tests (server/faults); release images are built without
  // ATTND_TEST_HOOKS, so there these variables mean nothing.
  std::unique_ptr<faults::ScriptedFaults> test_faults;
  {
    absl::StatusOr<std::optional<faults::FaultSpec>> spec = faults::FaultSpecFromEnvironment();
    if (!spec.ok()) return StartupError(std::string(spec.status().message()));
    if (spec->has_value()) {
      test_faults = std::make_unique<faults::ScriptedFaults>(**spec);
      faults::Install(test_faults.get());
      const char* text = std::getenv("ATTND_TEST_FAULTS");
      logging::Log(logging::Level::kWarning, "test_faults_enabled",
                   {F("faults", text != nullptr ? text : ""),
                    F("leak_bytes_per_request", (*spec)->leak_bytes_per_request)});
    }
  }
#endif

  metrics::Registry registry;
  std::unique_ptr<metrics::HttpExporter> exporter;
  if (config->metrics.enabled) {
    absl::StatusOr<std::unique_ptr<metrics::HttpExporter>> started =
        metrics::HttpExporter::Start(config->metrics.listen, &registry);
    if (!started.ok()) {
      return StartupError(absl::StrCat("metrics.listen = \"", config->metrics.listen,
                                       "\": ", started.status().message()));
    }
    exporter = *std::move(started);
  }

  // Set before the devices exist: an error met while serving reaches main through it.
  service::Server* serving = nullptr;
  absl::Mutex serving_mu;
  executor::SetFatalDeviceErrorHandler(
      [&serving, &serving_mu](const std::string&, const absl::Status&) {
        {
          absl::MutexLock lock(&serving_mu);
          if (serving != nullptr) serving->SetNotServing();
        }
        kill(getpid(), SIGUSR1);  // blocked everywhere: sigwait below takes it
      });
  absl::StatusOr<std::unique_ptr<service::Server>> server =
      service::Server::Start(*config, &registry);
  if (!server.ok()) {
    executor::SetFatalDeviceErrorHandler(nullptr);
    return StartupError(std::string(server.status().message()));
  }
  {
    absl::MutexLock lock(&serving_mu);
    serving = server->get();
  }

  const std::string listen = BoundAddress(config->server.listen, (*server)->port());
  const std::string metrics_listen =
      exporter != nullptr ? BoundAddress(config->metrics.listen, exporter->port()) : "";
  const std::string health_listen =
      (*server)->health_port() != 0
          ? BoundAddress(config->server.health_listen, (*server)->health_port())
          : "";
  LogSecurity(**server);
  logging::Log(
      logging::Level::kInfo, "serving",
      {F("listen", listen), F("metrics_listen", metrics_listen), F("backend", (*server)->backend()),
       F("tls", (*server)->tls().mode), F("auth", (*server)->auth_tokens() > 0 ? "token" : "off"),
       F("health_listen", health_listen), F("version", service::Version()),
       F("pid", static_cast<int64_t>(getpid()))});

  int signal_number = 0;
  for (;;) {
    sigwait(&stop_signals, &signal_number);
    if (signal_number != SIGUSR1) break;
    if (executor::FatalDeviceErrorHappened()) {
      (*server)->FailFast(kDeviceErrorGrace);
      logging::Log(logging::Level::kError, "exit",
                   {F("code", kExitDeviceError), F("clean", false),
                    F("reason", std::string(executor::FirstFatalDeviceError().message()))});
      // The device's context is poisoned: tearing its executors down would only fail.
      std::_Exit(kExitDeviceError);
    }
    // A SIGUSR1 from outside: not ours to act on.
  }
  logging::Log(logging::Level::kInfo, "signal",
               {F("signal", signal_number == SIGTERM ? "SIGTERM" : "SIGINT"),
                F("drain_timeout_seconds", config->server.drain_timeout_seconds)});
  const bool clean = (*server)->Drain(absl::Seconds(config->server.drain_timeout_seconds));
  {
    absl::MutexLock lock(&serving_mu);
    serving = nullptr;
  }
  server->reset();
  exporter.reset();
  const int code = clean ? 0 : 1;
  logging::Log(clean ? logging::Level::kInfo : logging::Level::kError, "exit",
               {F("code", code), F("clean", clean)});
  return code;
}

}  // namespace
}  // namespace attnd::server

int main(int argc, char** argv) { return attnd::server::Main(argc, argv); }
