// attnctl's command line: global flags, a subcommand (info, health, attend, load) and its flags.
// Parsing is a pure function of the argument list, so every error is unit-testable.
//
// Flags take `--name value` or `--name=value`; booleans take no value. Global flags may appear
// anywhere. Errors name the flag and the value, e.g. "--concurrency = 0 must be in [1, 4096]".
#ifndef ATTND_CLIENT_ATTNCTL_FLAGS_H_
#define ATTND_CLIENT_ATTNCTL_FLAGS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "attnd/v1/attention.pb.h"

namespace attnd::attnctl {

// Process exit codes.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;        // an RPC, file or server error
inline constexpr int kExitUsage = 2;        // bad command line
inline constexpr int kExitCheckFailed = 3;  // --check: error beyond the dtype's tolerance

enum class Command { kHelp, kInfo, kHealth, kAttend, kLoad };

struct GlobalFlags {
  std::string target = "127.0.0.1:50051";
  absl::Duration timeout = absl::Seconds(60);  // per RPC
  std::string load_balancing;                  // --lb: "" or round_robin
  int64_t max_message_bytes = int64_t{256} << 20;
  // TLS: on with --tls or any --tls-* file; files are read when the client is made.
  bool tls = false;
  std::string tls_ca;           // PEM CAs to trust (default: the system's)
  std::string tls_cert;         // mutual TLS: client certificate chain (with tls_key)
  std::string tls_key;          // mutual TLS: its private key
  std::string tls_server_name;  // name to verify the server's certificate against
  std::string token_file;       // bearer token file (first non-blank, non-'#' line)
};

// The problem, as attend and load take it: shape flags (optional when .npy files give the
// shapes) and options.
struct ProblemFlags {
  std::optional<int64_t> batch, q_len, kv_len, heads, kv_heads, head_dim, v_head_dim;
  v1::DType dtype = v1::DTYPE_F32;
  bool dtype_given = false;
  v1::Layout layout = v1::LAYOUT_BMHK;
  v1::Causal causal = v1::CAUSAL_NONE;
  std::optional<std::pair<int64_t, int64_t>> window;  // left, right; -1 = unbounded
  bool bias = false;
  std::vector<int64_t> bias_shape;  // empty: [B, Hq, Mq, Mk]
  std::vector<int64_t> kv_lengths;
  bool random_kv_lengths = false;
  bool lse = false;
  std::optional<double> scale;
  v1::Variant variant = v1::VARIANT_AUTO;
  int64_t q_chunk = 0;
  int64_t kv_chunk = 0;
  int32_t priority = 0;
  uint64_t seed = 0;
  // .npy inputs; q, k and v come together.
  std::string q_file, k_file, v_file, bias_file;
};

struct AttendFlags {
  ProblemFlags problem;
  std::string out_file;  // --out: the output as .npy
  std::string lse_file;  // --lse-out: the LSE as .npy (implies --lse)
  bool check = false;
};

struct LoadFlags {
  ProblemFlags problem;
  int concurrency = 1;
  std::optional<absl::Duration> duration;  // exactly one of duration and requests
  int64_t requests = 0;
  double rps = 0;  // 0: closed loop (each worker sends as soon as its last call returns)
  int channels = 1;
  std::string json_file;
  bool echo = false;  // --echo: call Echo (the wire alone) instead of Attend
  // --mixed-lengths MIN-MAX: a mixed stream of `mix_requests` requests (--mix-requests) whose
  // Mq = Mk lengths are spread evenly over [MIN, MAX], sent in a shuffled, seeded order.
  std::optional<std::pair<int64_t, int64_t>> mixed_lengths;
  int mix_requests = 32;
};

struct CommandLine {
  GlobalFlags global;
  Command command = Command::kHelp;
  bool info_json = false;
  std::string health_service;  // health --service: "" = the server as a whole
  AttendFlags attend;
  LoadFlags load;
};

// `args` excludes the program name. INVALID_ARGUMENT with a message for the user.
absl::StatusOr<CommandLine> ParseCommandLine(const std::vector<std::string>& args);

// --help text.
std::string UsageText();

// Parses "f32", "f16", "bf16" and "f32"-style names of the other enums.
bool ParseDTypeName(absl::string_view name, v1::DType* dtype);
std::string DTypeName(v1::DType dtype);        // "f32", "f16", "bf16"
std::string VariantName(v1::Variant variant);  // "cpu_chunked"
std::string CausalName(v1::Causal causal);     // "none", "top-left", "bottom-right"
std::string LayoutName(v1::Layout layout);     // "bmhk", "bhmk"

}  // namespace attnd::attnctl

#endif  // ATTND_CLIENT_ATTNCTL_FLAGS_H_
