#include "server/metrics/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <limits>
#include <sstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/metrics/text_format.h"

namespace attnd::server::metrics::internal {
namespace {

std::string ReadFile(const char* path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

void Add(std::map<std::string, std::string>* out, const std::string& name, const char* type,
         const char* help, double value) {
  (*out)[name] = absl::StrCat("# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n", name,
                              " ", FormatValue(value), "\n");
}

// Seconds since the epoch at boot, from /proc/stat's btime line; 0 when unreadable.
double BootTime() {
  for (absl::string_view line : absl::StrSplit(ReadFile("/proc/stat"), '\n')) {
    double btime = 0;
    if (absl::ConsumePrefix(&line, "btime ") && absl::SimpleAtod(line, &btime)) return btime;
  }
  return 0;
}

int CountOpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int count = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count - 1;  // not the descriptor opendir itself holds
}

}  // namespace

std::map<std::string, std::string> RenderProcessMetrics() {
  std::map<std::string, std::string> out;
  // /proc/self/stat: "pid (comm) state ..." where comm may hold spaces; fields after ')' start
  // at field 3 (state), so field n is at index n - 3.
  const std::string stat = ReadFile("/proc/self/stat");
  const size_t paren = stat.rfind(')');
  if (paren != std::string::npos && paren + 2 < stat.size()) {
    const std::vector<std::string> fields =
        absl::StrSplit(stat.substr(paren + 2), ' ', absl::SkipEmpty());
    const auto field = [&](int n, double* value) {
      const size_t index = static_cast<size_t>(n - 3);
      return index < fields.size() && absl::SimpleAtod(fields[index], value);
    };
    const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
    const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
    double utime = 0, stime = 0, start = 0, vsize = 0, rss = 0;
    if (field(14, &utime) && field(15, &stime)) {
      Add(&out, "process_cpu_seconds_total", "counter",
          "Total user and system CPU time spent in seconds.", (utime + stime) / ticks);
    }
    if (field(22, &start)) {
      const double boot = BootTime();
      if (boot > 0) {
        Add(&out, "process_start_time_seconds", "gauge",
            "Start time of the process since unix epoch in seconds.", boot + start / ticks);
      }
    }
    if (field(23, &vsize)) {
      Add(&out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", vsize);
    }
    if (field(24, &rss)) {
      Add(&out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
          rss * page);
    }
  }
  const int open_fds = CountOpenFds();
  if (open_fds >= 0) {
    Add(&out, "process_open_fds", "gauge", "Number of open file descriptors.", open_fds);
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    Add(&out, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
        limit.rlim_cur == RLIM_INFINITY ? std::numeric_limits<double>::infinity()
                                        : static_cast<double>(limit.rlim_cur));
  }
  return out;
}

}  // namespace attnd::server::metrics::internal
