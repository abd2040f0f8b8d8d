// SPDX-License-Identifier: Apache-2.0
#include "portolan/metrics/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "../../support/prometheus_text.h"

namespace portolan::metrics {
namespace {

using test_support::ParsePrometheusText;

TEST(MetricsTest, RendersCountersGaugesAndHistogramsThatParseStrictly) {
  Registry r;
  auto* submits = r.AddCounter("portolan_submits_total", "Jobs accepted.", {"tenant"});
  auto* agents = r.AddGauge("portolan_agents", "Agents by site and state.", {"site", "state"});
  auto* latency = r.AddHistogram("portolan_decision_seconds", "Decision latency.", {0.001, 0.01});
  submits->With({"acme"})->Inc();
  submits->With({"acme"})->Inc(2);
  submits->With({"glo\"bex\\\n"})->Inc();
  agents->With({"hongkong-1", "ready"})->Set(3);
  latency->With()->Observe(0.0005);
  latency->With()->Observe(0.005);
  latency->With()->Observe(5);
  const std::string text = r.Render();
  auto ex = ParsePrometheusText(text);
  ASSERT_TRUE(ex.ok()) << ex.error << "\n" << text;
  EXPECT_EQ(ex.families.at("portolan_submits_total").type, "counter");
  EXPECT_EQ(ex.Value("portolan_submits_total", {{"tenant", "acme"}}), 3);
  EXPECT_EQ(ex.Value("portolan_submits_total", {{"tenant", "glo\"bex\\\n"}}), 1);
  EXPECT_EQ(ex.Value("portolan_agents", {{"site", "hongkong-1"}, {"state", "ready"}}), 3);
  EXPECT_EQ(ex.Value("portolan_decision_seconds_bucket", {{"le", "0.001"}}), 1);
  EXPECT_EQ(ex.Value("portolan_decision_seconds_bucket", {{"le", "0.01"}}), 2);
  EXPECT_EQ(ex.Value("portolan_decision_seconds_bucket", {{"le", "+Inf"}}), 3);
  EXPECT_EQ(ex.Value("portolan_decision_seconds_count"), 3);
  EXPECT_DOUBLE_EQ(ex.Value("portolan_decision_seconds_sum"), 5.0055);
}

TEST(MetricsTest, CardinalityIsBoundedByFoldingIntoOther) {
  Registry r;
  auto* f = r.AddCounter("x_total", "x", {"agent"}, /*max_series=*/3);
  for (int i = 0; i < 100; ++i) f->With({"agent-" + std::to_string(i)})->Inc();
  auto ex = ParsePrometheusText(r.Render());
  ASSERT_TRUE(ex.ok()) << ex.error;
  EXPECT_EQ(ex.families.at("x_total").samples.size(), 4u);  // 3 + _other
  EXPECT_EQ(ex.Value("x_total", {{"agent", "_other"}}), 97);
  EXPECT_EQ(ex.Sum("x_total"), 100);
}

TEST(MetricsTest, ScrapeCallbacksRefreshGaugesAndClearDropsSeries) {
  Registry r;
  auto* jobs = r.AddGauge("portolan_jobs", "Jobs by state.", {"state"});
  int queued = 5;
  r.OnScrape([&] {
    jobs->Clear();
    if (queued > 0) jobs->With({"queued"})->Set(queued);
    jobs->With({"running"})->Set(1);
  });
  auto ex = ParsePrometheusText(r.Render());
  EXPECT_EQ(ex.Value("portolan_jobs", {{"state", "queued"}}), 5);
  queued = 0;
  ex = ParsePrometheusText(r.Render());
  ASSERT_TRUE(ex.ok()) << ex.error;
  EXPECT_TRUE(std::isnan(ex.Value("portolan_jobs", {{"state", "queued"}})));
  EXPECT_EQ(ex.Value("portolan_jobs", {{"state", "running"}}), 1);
}

TEST(MetricsTest, ConcurrentIncrementsAreAllCounted) {
  Registry r;
  Counter* c = r.AddCounter("c_total", "c")->With();
  Histogram* h = r.AddHistogram("h_seconds", "h", LatencyBuckets())->With();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c->Inc();
        h->Observe(0.001);
      }
    });
  }
  for (auto& t : threads) t.join();
  auto ex = ParsePrometheusText(r.Render());
  ASSERT_TRUE(ex.ok()) << ex.error;
  EXPECT_EQ(ex.Value("c_total"), 40000);
  EXPECT_EQ(ex.Value("h_seconds_count"), 40000);
}

// The parser the tests rely on must refuse what the format forbids.
TEST(PrometheusTextParserTest, RejectsMalformedExpositions) {
  const char* bad[] = {
      "metric 1",                               // no final line feed
      "9metric 1\n",                            // bad name
      "m{9l=\"x\"} 1\n",                        // bad label name
      "m{l=x} 1\n",                             // unquoted value
      "m{l=\"a\\tb\"} 1\n",                     // bad escape
      "m 1\nm 2\n",                             // duplicate series
      "# TYPE m counter\nm -1\n",               // negative counter
      "# TYPE m gauge\n# TYPE m gauge\nm 1\n",  // TYPE twice
      "a 1\nb 1\na{x=\"1\"} 1\n",               // not contiguous
      "m one\n",                                // bad value
      "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 1\n",
      "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_count 1\nh_sum 1\n",  // no +Inf
      "# TYPE m summer\nm 1\n",                                          // unknown type
  };
  for (const char* text : bad) {
    EXPECT_FALSE(ParsePrometheusText(text).ok()) << text;
  }
  EXPECT_TRUE(ParsePrometheusText("# a comment\n# TYPE m gauge\nm{a=\"1\",} NaN 123\n\n").ok());
}

}  // namespace
}  // namespace portolan::metrics
