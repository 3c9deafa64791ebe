// Pieces of the Prometheus text exposition format 0.0.4, shared by the registry and the
// process metrics. Internal to server/metrics.
#ifndef ATTND_SERVER_METRICS_TEXT_FORMAT_H_
#define ATTND_SERVER_METRICS_TEXT_FORMAT_H_

#include <string>
#include <string_view>

namespace attnd::server::metrics::internal {

// Label values: backslash, double quote and line feed escaped as \\, \" and \n.
std::string EscapeLabelValue(std::string_view value);
// HELP text: backslash and line feed escaped as \\ and \n.
std::string EscapeHelp(std::string_view help);
// A sample value: shortest text that reads back exactly; "+Inf", "-Inf", "NaN".
std::string FormatValue(double value);

}  // namespace attnd::server::metrics::internal

#endif  // ATTND_SERVER_METRICS_TEXT_FORMAT_H_
