// The table of every config key: its path, how its value is parsed and checked, and where it
// lives in `Config`. The YAML reader, the flag and environment overrides and ConfigToYaml all
// walk this one table, so a key is declared once. Internal to server/config.
#ifndef ATTND_SERVER_CONFIG_CONFIG_SCHEMA_H_
#define ATTND_SERVER_CONFIG_CONFIG_SCHEMA_H_

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/config/config.h"

namespace attnd::server::config_internal {

enum class ValueKind {
  kInt,       // decimal integer in [min, max]
  kDouble,    // finite number in [min, max] ((min, max] when min_exclusive)
  kBool,      // true/false (also yes/no, on/off, 1/0)
  kByteSize,  // integer or number with a unit (ParseByteSize), in [min, max]
  kEnum,      // one of `choices`
  kListen,    // "host:port", port in [0, 65535]
  kIntList,   // YAML sequence of integers, or "0,1,3" from a flag or variable; each in [min, max]
  kPath,      // a file path, or "" for none; no control characters
};

using FieldRef = std::variant<int64_t*, int*, double*, bool*, std::string*, std::vector<int>*>;

struct KeySpec {
  absl::string_view section;
  absl::string_view key;
  ValueKind kind;
  double min = 0;
  double max = 0;
  bool min_exclusive = false;
  std::vector<absl::string_view> choices;  // kEnum
  bool empty_ok = false;                   // kListen: "" (none) is a value too
  FieldRef (*field)(Config&) = nullptr;

  std::string Path() const;     // "scheduler.max_queue_requests"
  std::string EnvName() const;  // "ATTND_SCHEDULER_MAX_QUEUE_REQUESTS"
};

// Every key, grouped by section, in the order of config/attnd.yaml.
const std::vector<KeySpec>& Keys();
// The distinct section names, in order.
std::vector<absl::string_view> Sections();
// nullptr when `path` names no key.
const KeySpec* FindKey(absl::string_view path);

// Parses `text` (a YAML scalar, a flag's value or a variable's value) as `spec`'s value and stores
// it in `config`. The error message names the value and the allowed values, not the key: the
// caller prefixes the key path and where the value came from.
absl::Status SetFromString(const KeySpec& spec, absl::string_view text, Config* config);
// Stores a list (YAML sequence) value; only for kIntList.
absl::Status SetIntList(const KeySpec& spec, const std::vector<std::string>& items, Config* config);
// What the key accepts, for messages: "an integer in [1, 1048576]", "one of auto|cpu|cuda".
std::string Expected(const KeySpec& spec);
// The value as a YAML scalar or flow sequence, read back by SetFromString / SetIntList.
std::string FormatValue(const KeySpec& spec, const Config& config);

// The closest of `candidates` to `name` when it is a likely typo (edit distance <= 3), else "".
std::string Suggest(absl::string_view name, const std::vector<std::string>& candidates);

}  // namespace attnd::server::config_internal

#endif  // ATTND_SERVER_CONFIG_CONFIG_SCHEMA_H_
