// The figures of `attnctl load`: latency percentiles from every sample (exact, nearest rank),
// throughput, errors by status code; as text for the terminal and as JSON.
#ifndef ATTND_CLIENT_ATTNCTL_LOAD_STATS_H_
#define ATTND_CLIENT_ATTNCTL_LOAD_STATS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "client/tensor_gen.h"

namespace attnd::attnctl {

// The nearest-rank percentile of sorted samples: the smallest sample with at least p% of the
// samples at or below it, i.e. sorted[ceil(p/100 * n) - 1] (sorted[0] for p = 0); 0 when empty.
double Percentile(const std::vector<double>& sorted, double p);

struct LatencySummary {
  int64_t count = 0;
  double p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0, mean = 0, min = 0;  // ms
};

// Sorts `samples_ms` and summarises them.
LatencySummary SummarizeLatencies(std::vector<double> samples_ms);

struct LoadReport {
  int64_t requests = 0;  // answered: ok + errors
  int64_t ok = 0;
  std::map<std::string, int64_t> errors;  // status code name ("RESOURCE_EXHAUSTED") -> count
  double duration_s = 0;                  // first send to last answer
  double throughput_rps = 0;              // ok / duration_s
  LatencySummary latency;                 // of successful requests only
  int concurrency = 0;
  double target_rps = 0;  // 0: closed loop
  client::RequestSpec shape;
  std::string method = "Attend";  // or "Echo" (load --echo)
  // A mixed stream (load --mixed-lengths): Mq = Mk spread over [min_len, max_len] across
  // `distinct_requests` requests; shape's lengths are then the largest. 0: one shape.
  int64_t min_len = 0;
  int64_t max_len = 0;
  int64_t distinct_requests = 1;
};

// Fills the derived figures: throughput from ok and duration.
void FinishReport(LoadReport* report);

// Several lines for the terminal.
std::string FormatReportText(const LoadReport& report);
// {"requests", "ok", "errors": {CODE: n}, "duration_s", "throughput_rps",
//  "latency_ms": {"p50", "p90", "p99", "p999", "max", "mean"}, "concurrency", "target_rps",
//  "method", "mixed_lengths": [min, max] or null, "distinct_requests",
//  "shape": {"batch", "q_len", "kv_len", "heads", "kv_heads", "head_dim", "v_head_dim",
//            "dtype", "layout", "causal", "bias", "lse"}}
std::string FormatReportJson(const LoadReport& report);

// The once-a-second progress line (no newline): elapsed, done, current rate, errors.
std::string FormatProgress(double elapsed_s, int64_t done, double rps, int64_t errors);

// A JSON string literal (quotes included) for `text`.
std::string JsonQuote(absl::string_view text);

}  // namespace attnd::attnctl

#endif  // ATTND_CLIENT_ATTNCTL_LOAD_STATS_H_
