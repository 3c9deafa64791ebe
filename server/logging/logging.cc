#include "server/logging/logging.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace attnd::server::logging {
namespace {

std::atomic<int> g_min_level{static_cast<int>(Level::kInfo)};
std::atomic<bool> g_json{true};
absl::Mutex g_write_mu(absl::kConstInit);

// "2026-11-23T13:00:00.123Z" (UTC, milliseconds).
std::string Timestamp() {
  const auto now = std::chrono::system_clock::now();
  const int64_t ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

const char* LevelName(Level level, bool upper) {
  switch (level) {
    case Level::kDebug:
      return upper ? "DEBUG" : "debug";
    case Level::kInfo:
      return upper ? "INFO" : "info";
    case Level::kWarning:
      return upper ? "WARNING" : "warning";
    case Level::kError:
      return upper ? "ERROR" : "error";
  }
  return "?";
}

// A JSON string literal, quotes included (RFC 8259: ", \ and control characters escaped).
void AppendJsonString(std::string_view text, std::string* out) {
  out->push_back('"');
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          *out += buf;
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

// Text values: bare when they are one plain word, else quoted with the JSON escapes, so a line
// never breaks and `key=value` pairs stay unambiguous.
void AppendTextValue(std::string_view text, std::string* out) {
  bool plain = !text.empty();
  for (unsigned char c : text) {
    if (c <= 0x20 || c == 0x7f || c == '"' || c == '=' || c == '\\') plain = false;
  }
  if (plain) {
    out->append(text);
  } else {
    AppendJsonString(text, out);
  }
}

std::string FieldKey(const std::string& key) {
  if (key == "ts" || key == "level" || key == "event") return "_" + key;
  return key;
}

std::string FormatLine(Level level, std::string_view event, std::initializer_list<Field> fields,
                       bool json) {
  std::string line;
  line.reserve(128);
  if (json) {
    absl::StrAppend(&line, "{\"ts\":\"", Timestamp(), "\",\"level\":\"", LevelName(level, false),
                    "\",\"event\":");
    AppendJsonString(event, &line);
    for (const Field& field : fields) {
      line.push_back(',');
      AppendJsonString(FieldKey(field.key), &line);
      line.push_back(':');
      if (field.quoted) {
        AppendJsonString(field.value, &line);
      } else {
        line += field.value;
      }
    }
    line += "}\n";
  } else {
    absl::StrAppend(&line, Timestamp(), " ", LevelName(level, true), " ");
    AppendTextValue(event, &line);
    for (const Field& field : fields) {
      line.push_back(' ');
      AppendTextValue(FieldKey(field.key), &line);
      line.push_back('=');
      AppendTextValue(field.value, &line);
    }
    line += "\n";
  }
  return line;
}

void WriteAll(const std::string& line) {
  absl::MutexLock lock(&g_write_mu);
  size_t written = 0;
  while (written < line.size()) {
    const ssize_t n = ::write(STDERR_FILENO, line.data() + written, line.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // stderr closed or full: drop the line, never block the caller's work
    written += static_cast<size_t>(n);
  }
}

}  // namespace

Field F(std::string key, std::string_view value) {
  return Field{std::move(key), std::string(value), true};
}
Field F(std::string key, const char* value) {
  return Field{std::move(key), value != nullptr ? value : "", true};
}
Field F(std::string key, int64_t value) {
  return Field{std::move(key), std::to_string(value), false};
}
Field F(std::string key, int value) { return Field{std::move(key), std::to_string(value), false}; }
Field F(std::string key, double value) {
  if (std::isnan(value)) return Field{std::move(key), "NaN", true};
  if (std::isinf(value)) return Field{std::move(key), value > 0 ? "+Inf" : "-Inf", true};
  char buf[32];  // shortest text that reads back to `value`
  if (value == std::floor(value) && std::fabs(value) < 1e15) {  // integers without exponent
    std::snprintf(buf, sizeof(buf), "%.0f", value);
    return Field{std::move(key), buf, false};
  }
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, value);
    if (std::strtod(buf, nullptr) == value) break;
  }
  return Field{std::move(key), buf, false};
}
Field F(std::string key, bool value) {
  return Field{std::move(key), value ? "true" : "false", false};
}

void Configure(Level min_level, bool json) {
  g_min_level.store(static_cast<int>(min_level));
  g_json.store(json);
}

bool ParseLevel(std::string_view name, Level* level) {
  const std::string lower = absl::AsciiStrToLower(absl::string_view(name.data(), name.size()));
  if (lower == "debug") {
    *level = Level::kDebug;
  } else if (lower == "info") {
    *level = Level::kInfo;
  } else if (lower == "warning" || lower == "warn") {
    *level = Level::kWarning;
  } else if (lower == "error") {
    *level = Level::kError;
  } else {
    return false;
  }
  return true;
}

bool Enabled(Level level) { return static_cast<int>(level) >= g_min_level.load(); }

void Log(Level level, std::string_view event, std::initializer_list<Field> fields) {
  if (!Enabled(level)) return;
  WriteAll(FormatLine(level, event, fields, g_json.load()));
}

}  // namespace attnd::server::logging
