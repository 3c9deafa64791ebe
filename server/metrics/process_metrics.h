// The standard process_* metrics (as Prometheus' own clients export them), read from /proc/self
// at every render. Internal to server/metrics.
#ifndef ATTND_SERVER_METRICS_PROCESS_METRICS_H_
#define ATTND_SERVER_METRICS_PROCESS_METRICS_H_

#include <map>
#include <string>

namespace attnd::server::metrics::internal {

// Metric name → its rendered family (HELP, TYPE, sample): process_cpu_seconds_total,
// process_resident_memory_bytes, process_virtual_memory_bytes, process_start_time_seconds,
// process_open_fds, process_max_fds. A value that cannot be read is left out.
std::map<std::string, std::string> RenderProcessMetrics();

}  // namespace attnd::server::metrics::internal

#endif  // ATTND_SERVER_METRICS_PROCESS_METRICS_H_
