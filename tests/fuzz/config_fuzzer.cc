// libFuzzer target: bytes -> the config parser (server/config), which reads an operator's YAML
// file, flags and ATTND_* variables at start-up. Beyond "no crash, no uncaught exception, no
// sanitizer report", it checks:
//   - ParseConfig refuses with INVALID_ARGUMENT and a message, never another code;
//   - an accepted config prints (ConfigToYaml, the start-up log) to YAML that parses back to
//     the same config: print -> parse -> print is a fixed point;
//   - each line that looks like NAME=VALUE with NAME starting ATTND_ goes, as an environment
//     variable, through LoadConfig's override path; each line through ParseByteSize.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "server/config/config.h"

namespace {

using attnd::server::Config;

[[noreturn]] void Fail(const std::string& what, const std::string& input) {
  std::fprintf(stderr, "config_fuzzer: %s\ninput:\n%s\n", what.c_str(), input.c_str());
  std::abort();
}

void CheckRefusal(const absl::Status& status, const std::string& input) {
  if (status.code() != absl::StatusCode::kInvalidArgument || status.message().empty()) {
    Fail("refused with other than INVALID_ARGUMENT and a message: " + status.ToString(), input);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);

  const absl::StatusOr<Config> config = attnd::server::ParseConfig(text);
  if (config.ok()) {
    const std::string printed = attnd::server::ConfigToYaml(*config);
    const absl::StatusOr<Config> reparsed = attnd::server::ParseConfig(printed);
    if (!reparsed.ok()) {
      Fail("printed config does not parse: " + reparsed.status().ToString() + "\nprinted:\n" +
               printed,
           text);
    }
    const std::string reprinted = attnd::server::ConfigToYaml(*reparsed);
    if (reprinted != printed) {
      Fail("print -> parse -> print changed the config:\n" + printed + "---\n" + reprinted, text);
    }
  } else {
    CheckRefusal(config.status(), text);
  }

  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  std::vector<char*> environ;
  for (std::string& line : lines) {
    (void)attnd::server::ParseByteSize(line);
    if (absl::StartsWith(line, "ATTND_") && line.find('=') != std::string::npos &&
        line.find('\0') == std::string::npos) {
      environ.push_back(line.data());
    }
  }
  if (!environ.empty()) {
    environ.push_back(nullptr);
    const absl::StatusOr<Config> loaded = attnd::server::LoadConfig("", {}, environ.data());
    if (!loaded.ok()) CheckRefusal(loaded.status(), text);
  }
  return 0;
}
