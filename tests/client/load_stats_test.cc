#include "client/attnctl/load_stats.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attnd::attnctl {
namespace {

using ::testing::HasSubstr;

std::vector<double> OneTo(int n) {
  std::vector<double> v(n);
  std::iota(v.begin(), v.end(), 1.0);
  return v;
}

TEST(Percentile, NearestRankOnKnownSamples) {
  const std::vector<double> hundred = OneTo(100);
  EXPECT_EQ(Percentile(hundred, 50), 50);
  EXPECT_EQ(Percentile(hundred, 90), 90);
  EXPECT_EQ(Percentile(hundred, 99), 99);
  EXPECT_EQ(Percentile(hundred, 99.9), 100);
  EXPECT_EQ(Percentile(hundred, 100), 100);
  EXPECT_EQ(Percentile(hundred, 0), 1);

  const std::vector<double> thousand = OneTo(1000);
  EXPECT_EQ(Percentile(thousand, 99.9), 999);
  EXPECT_EQ(Percentile(thousand, 50), 500);

  // Ten samples: p50 is the 5th, p90 the 9th, p99 and p99.9 the 10th.
  const std::vector<double> ten = {1, 2, 3, 4, 5, 6, 7, 8, 9, 1000};
  EXPECT_EQ(Percentile(ten, 50), 5);
  EXPECT_EQ(Percentile(ten, 90), 9);
  EXPECT_EQ(Percentile(ten, 99), 1000);

  EXPECT_EQ(Percentile({7.5}, 50), 7.5);
  EXPECT_EQ(Percentile({7.5}, 99.9), 7.5);
  EXPECT_EQ(Percentile({}, 50), 0);
}

TEST(Summary, SortsAndSummarises) {
  std::vector<double> samples = OneTo(1000);
  std::shuffle(samples.begin(), samples.end(), std::mt19937_64(3));
  LatencySummary s = SummarizeLatencies(samples);
  EXPECT_EQ(s.count, 1000);
  EXPECT_EQ(s.p50, 500);
  EXPECT_EQ(s.p90, 900);
  EXPECT_EQ(s.p99, 990);
  EXPECT_EQ(s.p999, 999);
  EXPECT_EQ(s.max, 1000);
  EXPECT_EQ(s.min, 1);
  EXPECT_DOUBLE_EQ(s.mean, 500.5);

  LatencySummary empty = SummarizeLatencies({});
  EXPECT_EQ(empty.count, 0);
  EXPECT_EQ(empty.max, 0);
}

LoadReport SampleReport() {
  LoadReport r;
  r.requests = 120;
  r.ok = 100;
  r.errors = {{"RESOURCE_EXHAUSTED", 15}, {"DEADLINE_EXCEEDED", 5}};
  r.duration_s = 4;
  r.latency = SummarizeLatencies(OneTo(100));
  r.concurrency = 8;
  r.shape.batch = 2;
  r.shape.q_len = 128;
  r.shape.kv_len = 256;
  r.shape.heads = 8;
  r.shape.head_dim = 64;
  r.shape.dtype = v1::DTYPE_F16;
  FinishReport(&r);
  return r;
}

TEST(Report, ThroughputCountsSuccessfulRequests) {
  LoadReport r = SampleReport();
  EXPECT_DOUBLE_EQ(r.throughput_rps, 25.0);
  LoadReport zero;
  FinishReport(&zero);
  EXPECT_EQ(zero.throughput_rps, 0);
}

TEST(Report, TextHasEveryFigure) {
  const std::string text = FormatReportText(SampleReport());
  for (const char* part :
       {"requests    120 (ok 100, errors 20)", "throughput  25.0 req/s", "p50 50.000", "p90 90.000",
        "p99 99.000", "p99.9 100.000", "max 100.000", "RESOURCE_EXHAUSTED 15",
        "DEADLINE_EXCEEDED 5", "concurrency 8, closed loop", "B=2 Mq=128 Mk=256 Hq=8 Hkv=8"}) {
    EXPECT_THAT(text, HasSubstr(part));
  }
}

TEST(Report, JsonHasEveryKey) {
  const std::string json = FormatReportJson(SampleReport());
  for (const char* key : {"\"requests\": 120",
                          "\"ok\": 100",
                          "\"errors\": {\"DEADLINE_EXCEEDED\": 5, \"RESOURCE_EXHAUSTED\": 15}",
                          "\"duration_s\": 4",
                          "\"throughput_rps\": 25",
                          "\"latency_ms\": {\"p50\": 50",
                          "\"p90\": 90",
                          "\"p99\": 99",
                          "\"p999\": 100",
                          "\"max\": 100",
                          "\"mean\": 50.5",
                          "\"concurrency\": 8",
                          "\"target_rps\": 0",
                          "\"shape\": {\"batch\": 2",
                          "\"q_len\": 128",
                          "\"kv_len\": 256",
                          "\"heads\": 8",
                          "\"kv_heads\": 8",
                          "\"head_dim\": 64",
                          "\"v_head_dim\": 64",
                          "\"dtype\": \"f16\"",
                          "\"layout\": \"bmhk\"",
                          "\"causal\": \"none\"",
                          "\"bias\": false",
                          "\"lse\": false"}) {
    EXPECT_THAT(json, HasSubstr(key));
  }
  // Balanced braces, no trailing commas.
  EXPECT_EQ(std::count(json.begin(), json.end(), '{'), std::count(json.begin(), json.end(), '}'));
  EXPECT_EQ(json.find(",}"), std::string::npos);
  EXPECT_EQ(json.find(", }"), std::string::npos);
}

TEST(Report, JsonWithoutErrorsOrSamples) {
  LoadReport r;
  r.shape.batch = 1;
  const std::string json = FormatReportJson(r);
  EXPECT_THAT(json, HasSubstr("\"errors\": {}"));
  EXPECT_THAT(json, HasSubstr("\"p50\": 0"));
}

TEST(Json, Quotes) { EXPECT_EQ(JsonQuote("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\""); }

TEST(Progress, Line) {
  EXPECT_EQ(FormatProgress(3.04, 1234, 411.25, 2),
            "[    3.0s] done 1234  rate 411.2 req/s  errors 2");
}

}  // namespace
}  // namespace attnd::attnctl
