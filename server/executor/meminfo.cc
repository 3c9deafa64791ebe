#include "server/executor/meminfo.h"

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace attnd::server::executor {
namespace {

// "  16318512 kB" → bytes.
bool ParseKilobytes(absl::string_view value, int64_t* bytes) {
  value = absl::StripAsciiWhitespace(value);
  if (!absl::ConsumeSuffix(&value, "kB")) return false;
  value = absl::StripAsciiWhitespace(value);
  int64_t kilobytes = 0;
  if (!absl::SimpleAtoi(value, &kilobytes) || kilobytes < 0) return false;
  if (kilobytes > INT64_MAX / 1024) return false;
  *bytes = kilobytes * 1024;
  return true;
}

}  // namespace

absl::StatusOr<MemInfo> ParseMemInfo(std::string_view text_view) {
  // (Debian's Abseil has its own string_view type.)
  const absl::string_view text(text_view.data(), text_view.size());
  MemInfo info;
  bool have_total = false;
  bool have_available = false;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(line, ':');
    if (kv.first == "MemTotal") {
      if (!ParseKilobytes(kv.second, &info.total_bytes)) {
        return absl::InvalidArgumentError(absl::StrCat("meminfo: bad MemTotal line '", line, "'"));
      }
      have_total = true;
    } else if (kv.first == "MemAvailable") {
      if (!ParseKilobytes(kv.second, &info.available_bytes)) {
        return absl::InvalidArgumentError(
            absl::StrCat("meminfo: bad MemAvailable line '", line, "'"));
      }
      have_available = true;
    }
  }
  if (!have_total || !have_available) {
    return absl::InvalidArgumentError("meminfo: MemTotal or MemAvailable missing");
  }
  return info;
}

absl::StatusOr<MemInfo> ReadProcMemInfo() {
  std::ifstream file("/proc/meminfo");
  if (!file) return absl::UnavailableError("cannot open /proc/meminfo");
  std::stringstream text;
  text << file.rdbuf();
  return ParseMemInfo(text.str());
}

}  // namespace attnd::server::executor
