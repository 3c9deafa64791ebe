// The host's memory as Linux reports it in /proc/meminfo.
#ifndef ATTND_SERVER_EXECUTOR_MEMINFO_H_
#define ATTND_SERVER_EXECUTOR_MEMINFO_H_

#include <cstdint>
#include <functional>
#include <string_view>

#include "absl/status/statusor.h"

namespace attnd::server::executor {

struct MemInfo {
  int64_t total_bytes = 0;      // MemTotal
  int64_t available_bytes = 0;  // MemAvailable
};

// Parses /proc/meminfo text ("MemTotal:  16318512 kB" lines). INVALID_ARGUMENT when MemTotal
// or MemAvailable is missing or malformed.
absl::StatusOr<MemInfo> ParseMemInfo(std::string_view text);

// Reads and parses /proc/meminfo.
absl::StatusOr<MemInfo> ReadProcMemInfo();

// Where an executor reads the host's memory from (tests give a fake one).
using MemInfoSource = std::function<absl::StatusOr<MemInfo>()>;

}  // namespace attnd::server::executor

#endif  // ATTND_SERVER_EXECUTOR_MEMINFO_H_
