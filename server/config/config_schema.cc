#include "server/config/config_schema.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace attnd::server::config_internal {
namespace {

constexpr double kInt32Max = 2147483647.0;
constexpr double kPiB = 1125899906842624.0;  // 2^50: the largest byte size we take
constexpr double kTwo62 = 4611686018427387904.0;

#define ATTND_FIELD(member) [](Config& c) -> FieldRef { return &c.member; }

KeySpec Numeric(absl::string_view section, absl::string_view key, ValueKind kind, double min,
                double max, FieldRef (*field)(Config&), bool min_exclusive = false) {
  KeySpec spec;
  spec.section = section;
  spec.key = key;
  spec.kind = kind;
  spec.min = min;
  spec.max = max;
  spec.min_exclusive = min_exclusive;
  spec.field = field;
  return spec;
}

KeySpec Other(absl::string_view section, absl::string_view key, ValueKind kind,
              FieldRef (*field)(Config&), std::vector<absl::string_view> choices = {}) {
  KeySpec spec;
  spec.section = section;
  spec.key = key;
  spec.kind = kind;
  spec.choices = std::move(choices);
  spec.field = field;
  return spec;
}

KeySpec OptionalListen(absl::string_view section, absl::string_view key,
                       FieldRef (*field)(Config&)) {
  KeySpec spec = Other(section, key, ValueKind::kListen, field);
  spec.empty_ok = true;
  return spec;
}

std::vector<KeySpec> BuildKeys() {
  using K = ValueKind;
  return {
      Other("server", "listen", K::kListen, ATTND_FIELD(server.listen)),
      Numeric("server", "max_message_bytes", K::kByteSize, 1024, kInt32Max,
              ATTND_FIELD(server.max_message_bytes)),
      Numeric("server", "drain_timeout_seconds", K::kDouble, 0, 3600,
              ATTND_FIELD(server.drain_timeout_seconds)),
      Numeric("server", "max_concurrent_streams", K::kInt, 1, 1 << 20,
              ATTND_FIELD(server.max_concurrent_streams)),
      Numeric("server", "handshake_timeout_seconds", K::kDouble, 0, 3600,
              ATTND_FIELD(server.handshake_timeout_seconds), /*min_exclusive=*/true),
      Numeric("server", "keepalive_min_ping_interval_seconds", K::kDouble, 0, 86400,
              ATTND_FIELD(server.keepalive_min_ping_interval_seconds)),
      Other("server", "keepalive_permit_without_calls", K::kBool,
            ATTND_FIELD(server.keepalive_permit_without_calls)),
      Other("server", "tls_cert_file", K::kPath, ATTND_FIELD(server.tls_cert_file)),
      Other("server", "tls_key_file", K::kPath, ATTND_FIELD(server.tls_key_file)),
      Other("server", "tls_client_ca_file", K::kPath, ATTND_FIELD(server.tls_client_ca_file)),
      OptionalListen("server", "health_listen", ATTND_FIELD(server.health_listen)),
      Other("server", "auth_token_file", K::kPath, ATTND_FIELD(server.auth_token_file)),
      Numeric("server", "auth_token_reload_seconds", K::kDouble, 0, 86400,
              ATTND_FIELD(server.auth_token_reload_seconds)),

      Other("metrics", "enabled", K::kBool, ATTND_FIELD(metrics.enabled)),
      Other("metrics", "listen", K::kListen, ATTND_FIELD(metrics.listen)),

      Other("backend", "kind", K::kEnum, ATTND_FIELD(backend.kind), {"auto", "cpu", "cuda"}),
      Numeric("backend", "devices", K::kIntList, 0, 1023, ATTND_FIELD(backend.devices)),
      Numeric("backend", "cpu_threads", K::kInt, 0, 4096, ATTND_FIELD(backend.cpu_threads)),

      Numeric("memory", "host_budget_bytes", K::kByteSize, 1 << 20, kPiB,
              ATTND_FIELD(memory.host_budget_bytes)),
      Numeric("memory", "host_fraction", K::kDouble, 0, 1, ATTND_FIELD(memory.host_fraction),
              /*min_exclusive=*/true),
      Numeric("memory", "device_fraction", K::kDouble, 0, 1, ATTND_FIELD(memory.device_fraction),
              /*min_exclusive=*/true),
      Numeric("memory", "device_bytes", K::kByteSize, 0, kPiB, ATTND_FIELD(memory.device_bytes)),
      Numeric("memory", "safety_margin_bytes", K::kByteSize, 0, kPiB,
              ATTND_FIELD(memory.safety_margin_bytes)),

      Numeric("scheduler", "max_queue_requests", K::kInt, 1, 1 << 20,
              ATTND_FIELD(scheduler.max_queue_requests)),
      Numeric("scheduler", "priority_levels", K::kInt, 1, 16,
              ATTND_FIELD(scheduler.priority_levels)),
      Numeric("scheduler", "max_queue_delay_us", K::kInt, 0, 10'000'000,
              ATTND_FIELD(scheduler.max_queue_delay_us)),
      Numeric("scheduler", "max_batch_requests", K::kInt, 1, 4096,
              ATTND_FIELD(scheduler.max_batch_requests)),
      Numeric("scheduler", "max_batch_tokens", K::kInt, 1, kTwo62,
              ATTND_FIELD(scheduler.max_batch_tokens)),
      Numeric("scheduler", "default_timeout_seconds", K::kDouble, 0, 86400,
              ATTND_FIELD(scheduler.default_timeout_seconds), /*min_exclusive=*/true),
      Numeric("scheduler", "workers", K::kInt, 1, 256, ATTND_FIELD(scheduler.workers)),
      Other("scheduler", "ragged_launch", K::kBool, ATTND_FIELD(scheduler.ragged_launch)),

      Numeric("planner", "min_q_chunk", K::kInt, 1, 1 << 20, ATTND_FIELD(planner.min_q_chunk)),
      Numeric("planner", "min_kv_chunk", K::kInt, 1, 1 << 20, ATTND_FIELD(planner.min_kv_chunk)),
      Numeric("planner", "max_q_chunk", K::kInt, 1, 1 << 20, ATTND_FIELD(planner.max_q_chunk)),
      Numeric("planner", "max_kv_chunk", K::kInt, 1, 1 << 20, ATTND_FIELD(planner.max_kv_chunk)),

      Numeric("limits", "max_batch", K::kInt, 1, kInt32Max, ATTND_FIELD(limits.max_batch)),
      Numeric("limits", "max_seq_len", K::kInt, 1, kInt32Max, ATTND_FIELD(limits.max_seq_len)),
      Numeric("limits", "max_heads", K::kInt, 1, 1 << 20, ATTND_FIELD(limits.max_heads)),
      Numeric("limits", "max_head_dim", K::kInt, 1, 1 << 16, ATTND_FIELD(limits.max_head_dim)),
      Numeric("limits", "max_tensor_elements", K::kInt, 1, kTwo62,
              ATTND_FIELD(limits.max_tensor_elements)),
      Numeric("limits", "max_tokens", K::kInt, 1, kTwo62, ATTND_FIELD(limits.max_tokens)),

      Other("logging", "level", K::kEnum, ATTND_FIELD(logging.level),
            {"debug", "info", "warning", "error"}),
      Other("logging", "format", K::kEnum, ATTND_FIELD(logging.format), {"json", "text"}),
  };
}

#undef ATTND_FIELD

// Shortest text that reads back to the same double.
std::string FormatDouble(double value) {
  char buf[32];
  if (value == std::floor(value) && std::fabs(value) < 1e15) {  // integers without exponent
    std::snprintf(buf, sizeof(buf), "%.0f", value);
    return buf;
  }
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, value);
    if (std::strtod(buf, nullptr) == value) break;
  }
  return buf;
}

std::string FormatBound(const KeySpec& spec, double bound) {
  if (spec.kind == ValueKind::kDouble) return FormatDouble(bound);
  return absl::StrCat(static_cast<int64_t>(bound));
}

std::string Range(const KeySpec& spec) {
  return absl::StrCat(spec.min_exclusive ? "(" : "[", FormatBound(spec, spec.min), ", ",
                      FormatBound(spec, spec.max), "]");
}

bool InRange(const KeySpec& spec, double value) {
  const bool above_min = spec.min_exclusive ? value > spec.min : value >= spec.min;
  return above_min && value <= spec.max;
}

absl::Status Bad(const KeySpec& spec, absl::string_view text) {
  return absl::InvalidArgumentError(
      absl::StrCat("expected ", Expected(spec), ", got \"", absl::CHexEscape(text), "\""));
}

absl::Status OutOfRange(const KeySpec& spec, absl::string_view text) {
  return absl::InvalidArgumentError(absl::StrCat("value ", text, " out of range ", Range(spec)));
}

absl::Status ParseInt(const KeySpec& spec, absl::string_view text, int64_t* out) {
  int64_t value = 0;
  if (!absl::SimpleAtoi(text, &value)) return Bad(spec, text);
  if (!InRange(spec, static_cast<double>(value))) return OutOfRange(spec, text);
  *out = value;
  return absl::OkStatus();
}

absl::Status CheckListen(const KeySpec& spec, absl::string_view text) {
  const size_t colon = text.rfind(':');
  if (colon == absl::string_view::npos) return Bad(spec, text);
  const absl::string_view host = text.substr(0, colon);
  const absl::string_view port = text.substr(colon + 1);
  if (host.empty() || port.empty() || port.size() > 5) return Bad(spec, text);
  if (!std::all_of(port.begin(), port.end(), [](char c) { return absl::ascii_isdigit(c); })) {
    return Bad(spec, text);
  }
  if (std::stoi(std::string(port)) > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("port ", port, " of \"", text, "\" out of range [0, 65535]"));
  }
  if (host.front() == '[') {  // IPv6 literal: [::], [::1]
    if (host.size() < 3 || host.back() != ']') return Bad(spec, text);
    for (char c : host.substr(1, host.size() - 2)) {
      if (!absl::ascii_isxdigit(c) && c != ':' && c != '.' && c != '%') return Bad(spec, text);
    }
    return absl::OkStatus();
  }
  for (char c : host) {  // name or IPv4 address
    if (!absl::ascii_isalnum(c) && c != '.' && c != '-' && c != '_') return Bad(spec, text);
  }
  return absl::OkStatus();
}

}  // namespace

std::string KeySpec::Path() const { return absl::StrCat(section, ".", key); }

std::string KeySpec::EnvName() const {
  return absl::AsciiStrToUpper(absl::StrCat("ATTND_", section, "_", key));
}

const std::vector<KeySpec>& Keys() {
  static const std::vector<KeySpec>* const keys = new std::vector<KeySpec>(BuildKeys());
  return *keys;
}

std::vector<absl::string_view> Sections() {
  std::vector<absl::string_view> sections;
  for (const KeySpec& spec : Keys()) {
    if (sections.empty() || sections.back() != spec.section) sections.push_back(spec.section);
  }
  return sections;
}

const KeySpec* FindKey(absl::string_view path) {
  for (const KeySpec& spec : Keys()) {
    if (spec.Path() == path) return &spec;
  }
  return nullptr;
}

std::string Expected(const KeySpec& spec) {
  switch (spec.kind) {
    case ValueKind::kInt:
      return absl::StrCat("an integer in ", Range(spec));
    case ValueKind::kDouble:
      return absl::StrCat("a number in ", Range(spec));
    case ValueKind::kBool:
      return "true or false";
    case ValueKind::kByteSize:
      return absl::StrCat("a byte size in ", Range(spec),
                          " (an integer, or a number with a unit: 512KB, 256MiB, 1GiB)");
    case ValueKind::kEnum:
      return absl::StrCat("one of ", absl::StrJoin(spec.choices, "|"));
    case ValueKind::kListen:
      return absl::StrCat(
          "host:port with port in [0, 65535] (e.g. \"0.0.0.0:50051\", \"[::]:50051\")",
          spec.empty_ok ? ", or \"\" for none" : "");
    case ValueKind::kIntList:
      return absl::StrCat("a list of integers, each in ", Range(spec));
    case ValueKind::kPath:
      return "a file path, or \"\" for none";
  }
  return "";
}

absl::Status SetFromString(const KeySpec& spec, absl::string_view raw, Config* config) {
  const absl::string_view text = absl::StripAsciiWhitespace(raw);
  const FieldRef field = spec.field(*config);
  switch (spec.kind) {
    case ValueKind::kInt: {
      int64_t value = 0;
      absl::Status status = ParseInt(spec, text, &value);
      if (!status.ok()) return status;
      if (auto* p = std::get_if<int*>(&field)) {
        **p = static_cast<int>(value);
      } else {
        *std::get<int64_t*>(field) = value;
      }
      return absl::OkStatus();
    }
    case ValueKind::kDouble: {
      double value = 0;
      if (!absl::SimpleAtod(text, &value) || !std::isfinite(value)) return Bad(spec, text);
      if (!InRange(spec, value)) return OutOfRange(spec, text);
      *std::get<double*>(field) = value;
      return absl::OkStatus();
    }
    case ValueKind::kBool: {
      const std::string lower = absl::AsciiStrToLower(text);
      if (lower == "true" || lower == "yes" || lower == "on" || lower == "1") {
        *std::get<bool*>(field) = true;
      } else if (lower == "false" || lower == "no" || lower == "off" || lower == "0") {
        *std::get<bool*>(field) = false;
      } else {
        return Bad(spec, text);
      }
      return absl::OkStatus();
    }
    case ValueKind::kByteSize: {
      absl::StatusOr<int64_t> value = ParseByteSize(std::string_view(text.data(), text.size()));
      if (!value.ok()) return Bad(spec, text);
      if (!InRange(spec, static_cast<double>(*value))) {
        return absl::InvalidArgumentError(
            absl::StrCat("value ", text, " (", *value, " bytes) out of range ", Range(spec)));
      }
      *std::get<int64_t*>(field) = *value;
      return absl::OkStatus();
    }
    case ValueKind::kEnum:
      for (absl::string_view choice : spec.choices) {
        if (absl::EqualsIgnoreCase(choice, text)) {
          *std::get<std::string*>(field) = std::string(choice);
          return absl::OkStatus();
        }
      }
      return Bad(spec, text);
    case ValueKind::kListen: {
      if (text.empty() && spec.empty_ok) {
        std::get<std::string*>(field)->clear();
        return absl::OkStatus();
      }
      absl::Status status = CheckListen(spec, text);
      if (!status.ok()) return status;
      *std::get<std::string*>(field) = std::string(text);
      return absl::OkStatus();
    }
    case ValueKind::kIntList: {
      // From a flag or a variable: "0,1,3", "[0, 1]" or "" (empty list).
      absl::string_view list = text;
      if (absl::ConsumePrefix(&list, "[") && !absl::ConsumeSuffix(&list, "]")) {
        return Bad(spec, text);
      }
      std::vector<std::string> items;
      if (!absl::StripAsciiWhitespace(list).empty()) {
        items = absl::StrSplit(list, ',');
      }
      return SetIntList(spec, items, config);
    }
    case ValueKind::kPath:
      // Surrounding whitespace is dropped as for every kind; control characters are refused.
      if (std::any_of(text.begin(), text.end(), [](char c) { return absl::ascii_iscntrl(c); })) {
        return Bad(spec, text);
      }
      *std::get<std::string*>(field) = std::string(text);
      return absl::OkStatus();
  }
  return absl::InternalError("unhandled value kind");
}

absl::Status SetIntList(const KeySpec& spec, const std::vector<std::string>& items,
                        Config* config) {
  std::vector<int> values;
  for (const std::string& item : items) {
    const absl::string_view text = absl::StripAsciiWhitespace(item);
    int64_t value = 0;
    if (!absl::SimpleAtoi(text, &value)) return Bad(spec, text);
    if (!InRange(spec, static_cast<double>(value))) return OutOfRange(spec, text);
    values.push_back(static_cast<int>(value));
  }
  *std::get<std::vector<int>*>(spec.field(*config)) = std::move(values);
  return absl::OkStatus();
}

std::string FormatValue(const KeySpec& spec, const Config& config) {
  const FieldRef field = spec.field(const_cast<Config&>(config));  // read only
  switch (spec.kind) {
    case ValueKind::kInt:
      if (auto* p = std::get_if<int*>(&field)) return absl::StrCat(**p);
      return absl::StrCat(*std::get<int64_t*>(field));
    case ValueKind::kDouble:
      return FormatDouble(*std::get<double*>(field));
    case ValueKind::kBool:
      return *std::get<bool*>(field) ? "true" : "false";
    case ValueKind::kByteSize: {
      const int64_t value = *std::get<int64_t*>(field);
      if (value == 0) return "0";
      constexpr std::pair<int64_t, const char*> kUnits[] = {
          {int64_t{1} << 40, "TiB"}, {1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}};
      for (const auto& [size, unit] : kUnits) {
        if (value % size == 0) return absl::StrCat(value / size, unit);
      }
      return absl::StrCat(value);
    }
    case ValueKind::kEnum:
      return *std::get<std::string*>(field);
    case ValueKind::kListen:
      return absl::StrCat("\"", *std::get<std::string*>(field), "\"");
    case ValueKind::kIntList:
      return absl::StrCat("[", absl::StrJoin(*std::get<std::vector<int>*>(field), ", "), "]");
    case ValueKind::kPath:  // a double-quoted YAML scalar: only \ and " need escaping
      return absl::StrCat(
          "\"",
          absl::StrReplaceAll(*std::get<std::string*>(field), {{"\\", "\\\\"}, {"\"", "\\\""}}),
          "\"");
  }
  return "";
}

std::string Suggest(absl::string_view name, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = 4;  // only suggest close matches
  for (const std::string& candidate : candidates) {
    // Levenshtein distance, one row at a time.
    std::vector<size_t> row(candidate.size() + 1);
    for (size_t j = 0; j < row.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= name.size(); ++i) {
      size_t diagonal = row[0];
      row[0] = i;
      for (size_t j = 1; j <= candidate.size(); ++j) {
        const size_t substitute = diagonal + (name[i - 1] == candidate[j - 1] ? 0 : 1);
        diagonal = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, substitute});
      }
    }
    if (row.back() < best_distance) {
      best_distance = row.back();
      best = candidate;
    }
  }
  return best;
}

}  // namespace attnd::server::config_internal
