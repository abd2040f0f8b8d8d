// SPDX-License-Identifier: Apache-2.0
#include "portolan/network/network.h"

#include <gtest/gtest.h>

#include "default_policy.h"
#include "portolan/policy/policy.h"

namespace portolan::policy {
namespace {

network::NetworkModel WithLinkDown(const v1::Policy& p, const std::string& id) {
  std::vector<v1::Site> sites(p.sites().begin(), p.sites().end());
  std::vector<v1::Link> links(p.links().begin(), p.links().end());
  for (auto& l : links) {
    if (l.id() == id) l.set_up(false);
  }
  return network::NetworkModel(sites, links);
}

TEST(NetworkTest, DirectCableIsTheShortestPath) {
  auto p = portolan::test_support::DefaultPolicy();
  const network::NetworkModel& n = p->network();
  int lg1 = n.Index("lingang-idc-1"), sin = n.Index("singapore-1");
  EXPECT_DOUBLE_EQ(n.Rtt(lg1, sin), 65);
  EXPECT_DOUBLE_EQ(n.BottleneckGbps(lg1, sin), 100);
  EXPECT_EQ(n.PathLinks(lg1, sin), std::vector<std::string>{"sjc2-lg1-sin"});
  EXPECT_DOUBLE_EQ(n.Rtt(lg1, lg1), 0);
  EXPECT_DOUBLE_EQ(n.TransferSeconds(lg1, lg1, 500), 0);
  // 500 GB over 100 Gbps = 40 s, plus 65 ms.
  EXPECT_NEAR(n.TransferSeconds(lg1, sin, 500), 40.065, 1e-9);
}

TEST(NetworkTest, MultiHopPathTakesTheBottleneck) {
  auto p = portolan::test_support::DefaultPolicy();
  const network::NetworkModel& n = p->network();
  int hq = n.Index("hongqiao-1"), lon = n.Index("london-1");
  // Over land to Frankfurt (180) then to London (20) beats FEA via Lingang (1 + 218).
  EXPECT_DOUBLE_EQ(n.Rtt(hq, lon), 200);
  EXPECT_EQ(n.PathSites(hq, lon),
            (std::vector<std::string>{"hongqiao-1", "frankfurt-1", "london-1"}));
  EXPECT_DOUBLE_EQ(n.BottleneckGbps(hq, lon), 20);
  EXPECT_DOUBLE_EQ(n.Rtt(lon, hq), 200);  // symmetric
}

TEST(NetworkTest, CutCableForcesADetour) {
  auto p = portolan::test_support::DefaultPolicy();
  network::NetworkModel cut = WithLinkDown(p->policy(), "sjc2-lg1-sin");
  int lg1 = cut.Index("lingang-idc-1"), sin = cut.Index("singapore-1");
  // Via Lingang IDC 2 and APG (0.5 + 72) beats via Hong Kong (34 + 41).
  EXPECT_DOUBLE_EQ(cut.Rtt(lg1, sin), 72.5);
  EXPECT_EQ(cut.PathLinks(lg1, sin), (std::vector<std::string>{"sh-metro-lg1-lg2", "apg-lg2-sin"}));
  EXPECT_DOUBLE_EQ(cut.BottleneckGbps(lg1, sin), 40);
  EXPECT_NEAR(cut.TransferSeconds(lg1, sin, 500), 0.0725 + 100, 1e-9);
}

TEST(NetworkTest, CuttingEveryLinkOfASiteDisconnectsIt) {
  std::vector<v1::Site> sites(3);
  sites[0].set_id("a");
  sites[1].set_id("b");
  sites[2].set_id("c");
  std::vector<v1::Link> links(2);
  links[0].set_id("ab");
  links[0].set_a("a");
  links[0].set_b("b");
  links[0].set_rtt_ms(10);
  links[0].set_gbps(10);
  links[1].set_id("bc");
  links[1].set_a("b");
  links[1].set_b("c");
  links[1].set_rtt_ms(5);
  links[1].set_gbps(1);
  network::NetworkModel up(sites, links);
  EXPECT_DOUBLE_EQ(up.Rtt(0, 2), 15);
  EXPECT_DOUBLE_EQ(up.BottleneckGbps(0, 2), 1);
  links[1].set_up(false);
  network::NetworkModel down(sites, links);
  EXPECT_EQ(down.Rtt(0, 2), network::NetworkModel::kUnreachable);
  EXPECT_EQ(down.TransferSeconds(0, 2, 1), network::NetworkModel::kUnreachable);
  EXPECT_TRUE(down.PathSites(0, 2).empty());
  v1::NetworkView view = down.View();
  ASSERT_EQ(view.warnings_size(), 1);
  EXPECT_NE(view.warnings(0).find("site c"), std::string::npos);
}

TEST(NetworkTest, ParallelLinksUseTheFasterOne) {
  std::vector<v1::Site> sites(2);
  sites[0].set_id("a");
  sites[1].set_id("b");
  std::vector<v1::Link> links(2);
  for (int i = 0; i < 2; ++i) {
    links[i].set_id(i == 0 ? "slow" : "fast");
    links[i].set_a("a");
    links[i].set_b("b");
    links[i].set_rtt_ms(i == 0 ? 50 : 20);
    links[i].set_gbps(i == 0 ? 100 : 10);
  }
  network::NetworkModel n(sites, links);
  EXPECT_DOUBLE_EQ(n.Rtt(0, 1), 20);
  EXPECT_EQ(n.PathLinks(0, 1), std::vector<std::string>{"fast"});
}

TEST(NetworkTest, MeasuredThroughputIsWeightedShownAndUsedForTransferTime) {
  auto p = portolan::test_support::DefaultPolicy();
  const network::NetworkModel& n = p->network();
  network::MeasuredPaths m;
  const absl::Time t0 = absl::FromUnixSeconds(1'800'000'000);
  // Too small to say anything of the path, or no time: not recorded.
  EXPECT_FALSE(m.Record("lingang-idc-1", "singapore-1", 1000, 0.1, t0));
  EXPECT_FALSE(m.Record("lingang-idc-1", "singapore-1", 10 << 20, 0, t0));
  EXPECT_TRUE(m.empty());
  // 1.25 GB in 1 s = 10 Gbps; then 2.5 GB in 1 s = 20 Gbps weighs 30%.
  ASSERT_TRUE(m.Record("lingang-idc-1", "singapore-1", 1'250'000'000, 1.0, t0));
  ASSERT_TRUE(m.Record("lingang-idc-1", "singapore-1", 2'500'000'000, 1.0, t0 + absl::Seconds(5)));
  const network::MeasuredPath* path = m.Find("lingang-idc-1", "singapore-1");
  ASSERT_NE(path, nullptr);
  EXPECT_NEAR(path->gbps, 0.7 * 10 + 0.3 * 20, 1e-9);
  EXPECT_EQ(path->transfers, 2u);
  EXPECT_EQ(path->at, t0 + absl::Seconds(5));
  EXPECT_EQ(m.Find("singapore-1", "lingang-idc-1"), nullptr);  // per direction

  // 500 GB at the measured 13 Gbps instead of the configured 100.
  int lg1 = n.Index("lingang-idc-1"), sin = n.Index("singapore-1");
  EXPECT_NEAR(n.TransferSeconds(lg1, sin, 500, path->gbps), 0.065 + 500 * 8 / 13.0, 1e-9);

  // The view: the matrix entry, and the one link that alone carries it.
  v1::NetworkView v = n.View();
  m.Annotate(v);
  int entries = 0;
  for (const v1::RttEntry& e : v.matrix()) {
    if (e.measured_transfers() == 0) continue;
    ++entries;
    EXPECT_EQ(e.from(), "lingang-idc-1");
    EXPECT_EQ(e.to(), "singapore-1");
    EXPECT_NEAR(e.measured_gbps(), 13, 1e-9);
    EXPECT_DOUBLE_EQ(e.bottleneck_gbps(), 100);  // the configured figure stays
  }
  EXPECT_EQ(entries, 1);
  for (const v1::Link& l : v.links()) {
    EXPECT_EQ(l.measured_transfers(), l.id() == "sjc2-lg1-sin" ? 2u : 0u) << l.id();
  }
}

}  // namespace
}  // namespace portolan::policy
