// Reading the config: YAML file, then flags, then ATTND_* variables, every value checked against
// the key table in config_schema.cc. All errors of one load are reported together, each naming
// its key path.
#include "server/config/config.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "server/config/config_schema.h"
#include "yaml-cpp/yaml.h"

namespace attnd::server {
namespace {

using config_internal::FindKey;
using config_internal::Keys;
using config_internal::KeySpec;
using config_internal::ValueKind;

std::string DidYouMean(absl::string_view name, const std::vector<std::string>& candidates) {
  const std::string suggestion = config_internal::Suggest(name, candidates);
  return suggestion.empty() ? "" : absl::StrCat(" (did you mean ", suggestion, "?)");
}

std::vector<std::string> SectionNames() {
  std::vector<std::string> names;
  for (absl::string_view section : config_internal::Sections()) names.emplace_back(section);
  return names;
}

std::vector<std::string> KeysOfSection(absl::string_view section) {
  std::vector<std::string> keys;
  for (const KeySpec& spec : Keys()) {
    if (spec.section == section) keys.emplace_back(spec.key);
  }
  return keys;
}

const char* NodeKind(const YAML::Node& node) {
  if (node.IsNull()) return "null";
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a map";
  return "a scalar";
}

// Stores one YAML value; the message does not name the key (the caller does).
absl::Status ApplyNode(const KeySpec& spec, const YAML::Node& node, Config* config) {
  if (spec.kind == ValueKind::kIntList && (node.IsNull() || node.IsSequence())) {
    std::vector<std::string> items;
    for (const YAML::Node& item : node) {
      if (!item.IsScalar()) {
        return absl::InvalidArgumentError(absl::StrCat("expected ", config_internal::Expected(spec),
                                                       ", got ", NodeKind(item), " in the list"));
      }
      items.push_back(item.Scalar());
    }
    return config_internal::SetIntList(spec, items, config);
  }
  if (!node.IsScalar()) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected ", config_internal::Expected(spec), ", got ", NodeKind(node)));
  }
  return config_internal::SetFromString(spec, node.Scalar(), config);
}

// Applies a YAML document to `config`, appending one message per problem to `errors`.
void ApplyYaml(const std::string& yaml_text, Config* config, std::vector<std::string>* errors) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    errors->push_back(absl::StrCat("YAML syntax error at line ", e.mark.line + 1, ", column ",
                                   e.mark.column + 1, ": ", e.msg));
    return;
  }
  if (!root || root.IsNull()) return;  // empty document: the defaults
  if (!root.IsMap()) {
    errors->push_back(absl::StrCat("the top level must be a map of sections (",
                                   absl::StrJoin(SectionNames(), ", "), "), got ", NodeKind(root)));
    return;
  }
  const std::vector<std::string> sections = SectionNames();
  std::set<std::string> seen;
  for (const auto& section_entry : root) {
    const std::string section = section_entry.first.Scalar();
    if (!seen.insert(section).second) {
      errors->push_back(absl::StrCat(section, ": duplicate section"));
      continue;
    }
    if (std::find(sections.begin(), sections.end(), section) == sections.end()) {
      errors->push_back(absl::StrCat(section, ": unknown section", DidYouMean(section, sections),
                                     "; sections are ", absl::StrJoin(sections, ", ")));
      continue;
    }
    const YAML::Node& body = section_entry.second;
    if (body.IsNull()) continue;  // "server:" with nothing under it
    if (!body.IsMap()) {
      errors->push_back(absl::StrCat(section, ": expected a map of keys, got ", NodeKind(body)));
      continue;
    }
    for (const auto& key_entry : body) {
      const std::string key = key_entry.first.Scalar();
      const std::string path = absl::StrCat(section, ".", key);
      if (!seen.insert(path).second) {
        errors->push_back(absl::StrCat(path, ": duplicate key"));
        continue;
      }
      const KeySpec* spec = FindKey(path);
      if (spec == nullptr) {
        errors->push_back(
            absl::StrCat(path, ": unknown key", DidYouMean(key, KeysOfSection(section))));
        continue;
      }
      absl::Status status = ApplyNode(*spec, key_entry.second, config);
      if (!status.ok()) errors->push_back(absl::StrCat(path, ": ", status.message()));
    }
  }
}

std::vector<std::string> AllPaths() {
  std::vector<std::string> paths;
  for (const KeySpec& spec : Keys()) paths.push_back(spec.Path());
  return paths;
}

void ApplyFlags(const std::map<std::string, std::string>& flags, Config* config,
                std::vector<std::string>* errors) {
  for (const auto& [path, value] : flags) {
    const KeySpec* spec = FindKey(path);
    if (spec == nullptr) {
      errors->push_back(absl::StrCat(path, " (flag): unknown key", DidYouMean(path, AllPaths())));
      continue;
    }
    absl::Status status = config_internal::SetFromString(*spec, value, config);
    if (!status.ok()) errors->push_back(absl::StrCat(path, " (flag): ", status.message()));
  }
}

// "ATTND_SCHEDULER_..." and the like: a variable in the config's namespace.
bool NamesConfigSection(absl::string_view variable) {
  for (absl::string_view section : config_internal::Sections()) {
    if (absl::StartsWith(variable, absl::AsciiStrToUpper(absl::StrCat("ATTND_", section, "_")))) {
      return true;
    }
  }
  return false;
}

// Variables that name a section (ATTND_SCHEDULER_*) or come within a typo of a key's variable
// must name a key; other ATTND_* variables belong to the build and run scripts (ATTND_BUILD_DIR,
// ATTND_CUDA, ATTND_CONFIG, ...) and are left alone, so exporting them cannot stop the server.
void ApplyEnvironment(char** environ, Config* config, std::vector<std::string>* errors) {
  if (environ == nullptr) return;
  std::vector<std::string> env_names;
  for (const KeySpec& spec : Keys()) env_names.push_back(spec.EnvName());
  // Applied in name order, so the result does not depend on the order of `environ`.
  std::map<std::string, std::string> variables;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const absl::string_view text(*entry);
    if (!absl::StartsWith(text, "ATTND_")) continue;
    const size_t equals = text.find('=');
    if (equals == absl::string_view::npos) continue;
    const std::string name(text.substr(0, equals));
    variables[name] = std::string(text.substr(equals + 1));
  }
  for (const auto& [name, value] : variables) {
    const KeySpec* spec = nullptr;
    for (const KeySpec& candidate : Keys()) {
      if (candidate.EnvName() == name) spec = &candidate;
    }
    if (spec == nullptr) {
      if (!NamesConfigSection(name) && config_internal::Suggest(name, env_names).empty()) {
        continue;  // a tool's own variable (ATTND_BUILD_DIR, ATTND_CUDA, ...), not config
      }
      errors->push_back(absl::StrCat(
          name, ": environment variable names no config key", DidYouMean(name, env_names),
          "; config variables are ATTND_<SECTION>_<KEY>, e.g. ATTND_SERVER_LISTEN"));
      continue;
    }
    absl::Status status = config_internal::SetFromString(*spec, value, config);
    if (!status.ok()) {
      errors->push_back(absl::StrCat(spec->Path(), " (from ", name, "): ", status.message()));
    }
  }
}

// Rules that tie keys together, checked once every source is applied.
void CheckConsistency(const Config& config, std::vector<std::string>* errors) {
  const kernels::PlannerConfig& planner = config.planner;
  if (planner.min_q_chunk > planner.max_q_chunk) {
    errors->push_back(absl::StrCat("planner.min_q_chunk (", planner.min_q_chunk,
                                   ") is greater than planner.max_q_chunk (", planner.max_q_chunk,
                                   ")"));
  }
  if (planner.min_kv_chunk > planner.max_kv_chunk) {
    errors->push_back(absl::StrCat("planner.min_kv_chunk (", planner.min_kv_chunk,
                                   ") is greater than planner.max_kv_chunk (", planner.max_kv_chunk,
                                   ")"));
  }
  if (config.memory.safety_margin_bytes >= config.memory.host_budget_bytes) {
    errors->push_back(absl::StrCat(
        "memory.safety_margin_bytes (", config.memory.safety_margin_bytes,
        ") must be less than memory.host_budget_bytes (", config.memory.host_budget_bytes, ")"));
  }
  const ServerSection& server = config.server;
  if (server.tls_cert_file.empty() != server.tls_key_file.empty()) {
    errors->push_back(
        absl::StrCat(server.tls_cert_file.empty() ? "server.tls_key_file" : "server.tls_cert_file",
                     " is set but ",
                     server.tls_cert_file.empty() ? "server.tls_cert_file" : "server.tls_key_file",
                     " is not; TLS needs both the certificate and its private key"));
  }
  if (!server.tls_client_ca_file.empty() && server.tls_cert_file.empty()) {
    errors->push_back(
        "server.tls_client_ca_file is set but server.tls_cert_file is not; mutual TLS needs the "
        "server's own certificate and key too");
  }
  if (!server.health_listen.empty()) {
    if (server.tls_cert_file.empty()) {
      errors->push_back(
          "server.health_listen is set but TLS is off: probes reach health on server.listen; "
          "a second plaintext port is only for TLS servers");
    }
    if (server.health_listen == server.listen && !absl::EndsWith(server.listen, ":0")) {
      errors->push_back(absl::StrCat("server.health_listen: \"", server.health_listen,
                                     "\" is also server.listen; give health its own port"));
    }
  }
  if (config.metrics.enabled && config.metrics.listen == config.server.listen &&
      !absl::EndsWith(config.metrics.listen, ":0")) {
    errors->push_back(absl::StrCat("metrics.listen: \"", config.metrics.listen,
                                   "\" is also server.listen; give metrics its own port"));
  }
}

absl::Status Result(const std::string& prefix, const std::vector<std::string>& errors) {
  if (errors.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(prefix, absl::StrJoin(errors, "; ")));
}

}  // namespace

absl::StatusOr<Config> ParseConfig(const std::string& yaml_text) {
  Config config;
  std::vector<std::string> errors;
  ApplyYaml(yaml_text, &config, &errors);
  CheckConsistency(config, &errors);
  absl::Status status = Result("config: ", errors);
  if (!status.ok()) return status;
  return config;
}

absl::StatusOr<Config> LoadConfig(const std::string& path,
                                  const std::map<std::string, std::string>& flag_overrides,
                                  char** environ) {
  Config config;
  if (!path.empty()) {
    std::ifstream file(path);
    if (!file) {
      return absl::NotFoundError(
          absl::StrCat("config file ", path, ": cannot read: ", std::strerror(errno)));
    }
    std::stringstream text;
    text << file.rdbuf();
    std::vector<std::string> errors;
    ApplyYaml(text.str(), &config, &errors);
    absl::Status status = Result(absl::StrCat("config file ", path, ": "), errors);
    if (!status.ok()) return status;
  }
  std::vector<std::string> errors;
  ApplyFlags(flag_overrides, &config, &errors);
  ApplyEnvironment(environ, &config, &errors);
  CheckConsistency(config, &errors);
  absl::Status status = Result("config: ", errors);
  if (!status.ok()) return status;
  return config;
}

std::string ConfigToYaml(const Config& config) {
  std::string out;
  absl::string_view section;
  for (const KeySpec& spec : Keys()) {
    if (spec.section != section) {
      section = spec.section;
      absl::StrAppend(&out, section, ":\n");
    }
    absl::StrAppend(&out, "  ", spec.key, ": ", config_internal::FormatValue(spec, config), "\n");
  }
  return out;
}

std::vector<std::string> ConfigKeyPaths() { return AllPaths(); }

absl::StatusOr<int64_t> ParseByteSize(std::string_view raw_text) {
  const absl::string_view raw(raw_text.data(), raw_text.size());
  const absl::string_view text = absl::StripAsciiWhitespace(raw);
  size_t digits = 0;
  while (digits < text.size() && (absl::ascii_isdigit(text[digits]) || text[digits] == '.')) {
    ++digits;
  }
  const absl::string_view number = text.substr(0, digits);
  const std::string unit = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text.substr(digits)));
  const auto invalid = [&] {
    return absl::InvalidArgumentError(absl::StrCat("\"", raw, "\" is not a byte size"));
  };
  if (number.empty()) return invalid();
  static const std::pair<absl::string_view, double> kUnits[] = {{"", 1},
                                                                {"b", 1},
                                                                {"k", 1e3},
                                                                {"kb", 1e3},
                                                                {"m", 1e6},
                                                                {"mb", 1e6},
                                                                {"g", 1e9},
                                                                {"gb", 1e9},
                                                                {"t", 1e12},
                                                                {"tb", 1e12},
                                                                {"ki", 1024},
                                                                {"kib", 1024},
                                                                {"mi", 1 << 20},
                                                                {"mib", 1 << 20},
                                                                {"gi", 1 << 30},
                                                                {"gib", 1 << 30},
                                                                {"ti", 1099511627776.0},
                                                                {"tib", 1099511627776.0}};
  double multiplier = 0;
  for (const auto& [name, factor] : kUnits) {
    if (unit == name) multiplier = factor;
  }
  if (multiplier == 0) return invalid();
  if (number.find('.') == absl::string_view::npos) {
    int64_t value = 0;
    const int64_t factor = static_cast<int64_t>(multiplier);
    if (!absl::SimpleAtoi(number, &value) || value > INT64_MAX / factor) return invalid();
    return value * factor;
  }
  double value = 0;
  if (!absl::SimpleAtod(number, &value)) return invalid();
  const double bytes = std::round(value * multiplier);
  if (!(bytes < 9.2e18)) return invalid();
  return static_cast<int64_t>(bytes);
}

}  // namespace attnd::server
