// Structured logs: one line per event on stderr, as JSON or as text.
//
//   Log(Level::kInfo, "server_started", {F("listen", address), F("port", port)});
//
//   json:
//   {"ts":"2026-11-23T13:00:00.123Z","level":"info","event":"server_started","listen":"0.0.0.0:50051","port":50051}
//   text: 2026-11-23T13:00:00.123Z INFO server_started listen=0.0.0.0:50051 port=50051
//
// Thread-safe: each line is written whole, by one write, under a lock. Before Configure the level
// is info and the format JSON. Field keys "ts", "level" and "event" are written as "_ts", ...
#ifndef ATTND_SERVER_LOGGING_LOGGING_H_
#define ATTND_SERVER_LOGGING_LOGGING_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>

namespace attnd::server::logging {

enum class Level { kDebug, kInfo, kWarning, kError };

// `quoted`: a string (escaped and quoted in JSON); otherwise a number or bool written as is.
struct Field {
  std::string key;
  std::string value;
  bool quoted = true;
};

Field F(std::string key, std::string_view value);  // string field
Field F(std::string key, const char* value);
Field F(std::string key, int64_t value);
Field F(std::string key, int value);
Field F(std::string key,
        double value);  // NaN and infinities become the strings "NaN", "+Inf", "-Inf"
Field F(std::string key, bool value);
// Any other integer type (size_t, uint32_t, long long, ...), so F("bytes", v.size()) is not
// ambiguous.
template <typename T,
          typename = std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>>>
Field F(std::string key, T value) {
  return Field{std::move(key), std::to_string(value), false};
}

// Lines below `min_level` are dropped; `json` picks the format.
void Configure(Level min_level, bool json);
// "debug", "info", "warning" (or "warn"), "error", any case. False (and *level untouched) else.
bool ParseLevel(std::string_view name, Level* level);
// Whether a line at `level` would be written (to skip building expensive fields).
bool Enabled(Level level);
void Log(Level level, std::string_view event, std::initializer_list<Field> fields = {});

}  // namespace attnd::server::logging

#endif  // ATTND_SERVER_LOGGING_LOGGING_H_
