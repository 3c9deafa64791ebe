#include "client/attnctl/load_stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/attnctl/flags.h"

namespace attnd::attnctl {
namespace {

// JSON has no NaN or infinity.
std::string JsonNumber(double value) {
  if (!std::isfinite(value)) return "null";
  return absl::StrFormat("%.6g", value);
}

}  // namespace

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const double n = static_cast<double>(sorted.size());
  // The small epsilon keeps p/100 * n from rounding up past an exact rank (99.9% of 1000).
  int64_t rank = static_cast<int64_t>(std::ceil(p / 100.0 * n - 1e-9));
  rank = std::clamp<int64_t>(rank, 1, static_cast<int64_t>(sorted.size()));
  return sorted[rank - 1];
}

LatencySummary SummarizeLatencies(std::vector<double> samples_ms) {
  LatencySummary s;
  if (samples_ms.empty()) return s;
  std::sort(samples_ms.begin(), samples_ms.end());
  s.count = static_cast<int64_t>(samples_ms.size());
  s.p50 = Percentile(samples_ms, 50);
  s.p90 = Percentile(samples_ms, 90);
  s.p99 = Percentile(samples_ms, 99);
  s.p999 = Percentile(samples_ms, 99.9);
  s.min = samples_ms.front();
  s.max = samples_ms.back();
  s.mean = std::accumulate(samples_ms.begin(), samples_ms.end(), 0.0) / s.count;
  return s;
}

void FinishReport(LoadReport* report) {
  report->throughput_rps = report->duration_s > 0 ? report->ok / report->duration_s : 0;
}

std::string FormatReportText(const LoadReport& r) {
  const client::RequestSpec& s = r.shape;
  std::string out = absl::StrFormat(
      "shape       B=%d Mq=%d Mk=%d Hq=%d Hkv=%d D=%d Dv=%d %s %s causal=%s bias=%s lse=%s\n",
      s.batch, s.q_len, s.kv_len, s.heads, s.kv_heads > 0 ? s.kv_heads : s.heads, s.head_dim,
      s.v_head_dim > 0 ? s.v_head_dim : s.head_dim, DTypeName(s.dtype), LayoutName(s.layout),
      CausalName(s.causal), s.bias ? "yes" : "no", s.return_lse ? "yes" : "no");
  if (r.max_len > 0) {
    absl::StrAppend(&out, absl::StrFormat("mixed       Mq=Mk in [%d, %d] over %d requests\n",
                                          r.min_len, r.max_len, r.distinct_requests));
  }
  if (r.method != "Attend") absl::StrAppend(&out, "method      ", r.method, "\n");
  absl::StrAppend(&out, absl::StrFormat("load        concurrency %d, %s\n", r.concurrency,
                                        r.target_rps > 0
                                            ? absl::StrFormat("open loop at %g req/s", r.target_rps)
                                            : std::string("closed loop")));
  absl::StrAppend(&out, absl::StrFormat("requests    %d (ok %d, errors %d) in %.3f s\n", r.requests,
                                        r.ok, r.requests - r.ok, r.duration_s));
  absl::StrAppend(&out, absl::StrFormat("throughput  %.1f req/s (successful)\n", r.throughput_rps));
  const LatencySummary& l = r.latency;
  absl::StrAppend(&out,
                  absl::StrFormat("latency ms  p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  "
                                  "mean %.3f\n",
                                  l.p50, l.p90, l.p99, l.p999, l.max, l.mean));
  if (r.errors.empty()) {
    absl::StrAppend(&out, "errors      none\n");
  } else {
    for (const auto& [code, n] : r.errors) {
      absl::StrAppend(&out, absl::StrFormat("errors      %s %d\n", code, n));
    }
  }
  return out;
}

std::string FormatReportJson(const LoadReport& r) {
  const client::RequestSpec& s = r.shape;
  std::string errors;
  for (const auto& [code, n] : r.errors) {
    absl::StrAppend(&errors, errors.empty() ? "" : ", ", JsonQuote(code), ": ", n);
  }
  const LatencySummary& l = r.latency;
  return absl::StrCat(
      "{\n", "  \"requests\": ", r.requests, ",\n", "  \"ok\": ", r.ok, ",\n", "  \"errors\": {",
      errors, "},\n", "  \"duration_s\": ", JsonNumber(r.duration_s), ",\n",
      "  \"throughput_rps\": ", JsonNumber(r.throughput_rps), ",\n",
      "  \"latency_ms\": {\"p50\": ", JsonNumber(l.p50), ", \"p90\": ", JsonNumber(l.p90),
      ", \"p99\": ", JsonNumber(l.p99), ", \"p999\": ", JsonNumber(l.p999),
      ", \"max\": ", JsonNumber(l.max), ", \"mean\": ", JsonNumber(l.mean), "},\n",
      "  \"concurrency\": ", r.concurrency, ",\n", "  \"target_rps\": ", JsonNumber(r.target_rps),
      ",\n", "  \"method\": ", JsonQuote(r.method), ",\n", "  \"mixed_lengths\": ",
      r.max_len > 0 ? absl::StrCat("[", r.min_len, ", ", r.max_len, "]") : std::string("null"),
      ",\n", "  \"distinct_requests\": ", r.distinct_requests, ",\n",
      "  \"shape\": {\"batch\": ", s.batch, ", \"q_len\": ", s.q_len, ", \"kv_len\": ", s.kv_len,
      ", \"heads\": ", s.heads, ", \"kv_heads\": ", s.kv_heads > 0 ? s.kv_heads : s.heads,
      ", \"head_dim\": ", s.head_dim,
      ", \"v_head_dim\": ", s.v_head_dim > 0 ? s.v_head_dim : s.head_dim,
      ", \"dtype\": ", JsonQuote(DTypeName(s.dtype)),
      ", \"layout\": ", JsonQuote(LayoutName(s.layout)),
      ", \"causal\": ", JsonQuote(CausalName(s.causal)), ", \"bias\": ", s.bias ? "true" : "false",
      ", \"lse\": ", s.return_lse ? "true" : "false", "}\n}\n");
}

std::string FormatProgress(double elapsed_s, int64_t done, double rps, int64_t errors) {
  return absl::StrFormat("[%7.1fs] done %d  rate %.1f req/s  errors %d", elapsed_s, done, rps,
                         errors);
}

std::string JsonQuote(absl::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppend(&out, absl::StrFormat("\\u%04x", static_cast<unsigned char>(c)));
        } else {
          out += c;
        }
    }
  }
  out += "\"";
  return out;
}

}  // namespace attnd::attnctl
