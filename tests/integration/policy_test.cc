// SPDX-License-Identifier: Apache-2.0
// The policy engine against running daemons: residency, tenants, hot policy
// changes, cable cuts, explanations and the audit trail.
#include <gtest/gtest.h>

#include "harness.h"
#include "portolan/codec/codec.h"
#include "portolan/v1/api.pb.h"
#include "portolan/v1/policy.pb.h"

namespace portolan::testing {
namespace {

using std::chrono::seconds;

const v1::SiteDecision* SiteOf(const v1::Decision& d, const std::string& site) {
  for (const auto& s : d.sites()) {
    if (s.site() == site) return &s;
  }
  return nullptr;
}

const char* kCnPersonalJob =
    R"({"name": "genome-align", "tenant": "acme", "kind": "data_processing",
  "command": ["/bin/echo", "aligned"], "resources": {"cpus": 2, "memory_mb": 256},
  "datasets": [{"id": "reads-2026q3", "origin": "CN", "location": "lingang-idc-1", "size_gb": 500,
                "categories": ["personal"], "subjects": 250000, "sector": "biomedicine"}]})";

class PolicyIT : public ::testing::Test {
 protected:
  void SetUp() override {
    c.StartScheduler();
    c.StartAgent("lg1", "lingang-idc-1");
    c.StartAgent("sg1", "singapore-1", "pack:1 numa:1(memory=64GiB) core:16 pu:2");
    c.StartAgent("hk1", "hongkong-1", "pack:1 numa:1(memory=64GiB) core:16 pu:2");
  }
  Cluster c;
};

TEST_F(PolicyIT, CnPersonalDataStaysInCnUntilTheTenantHoldsAContract) {
  // Submitted: residency leaves only CN sites; the job runs on the CN agent.
  v1::Job job = Call<v1::Job>(c, "POST", "/v1/jobs", kCnPersonalJob, 201);
  ASSERT_TRUE(WaitFor(
      [&] {
        auto j = c.client().GetJob(job.id());
        return j.ok() && j->state() == v1::Job::succeeded;
      },
      seconds(20)));
  EXPECT_EQ(c.client().GetJob(job.id())->allocation().site(), "lingang-idc-1");
  v1::Decision why = Call<v1::Decision>(c, "GET", "/v1/jobs/" + job.id() + "/explanation");
  EXPECT_TRUE(why.feasible());
  EXPECT_EQ(why.placement().compliance(0).rule(), "same-regime");
  const v1::SiteDecision* sg = SiteOf(why, "singapore-1");
  ASSERT_NE(sg, nullptr);
  EXPECT_FALSE(sg->residency().allowed());
  EXPECT_EQ(sg->residency().rule(), "cn-pi-100k-1m");
  EXPECT_EQ(sg->agents().considered(), 1u);
  EXPECT_EQ(why.agents().rejected().at("residency"), 2u) << "the SG and HK agents";
  EXPECT_EQ(why.sites_size(), 9) << "every catalogue site is explained";

  // A plan pinned to Singapore is refused, naming the rule and the instruments.
  std::string pinned = kCnPersonalJob;
  pinned.replace(pinned.find("\"datasets\""), 0, R"("placement": {"sites": ["singapore-1"]}, )");
  v1::Decision plan = Call<v1::Decision>(c, "POST", "/v1/plan", pinned);
  EXPECT_FALSE(plan.feasible());
  EXPECT_TRUE(plan.unschedulable());
  EXPECT_NE(plan.reason().find("cn_standard_contract or cn_pi_certification"), std::string::npos)
      << plan.reason();

  // The tenant gets a standard contract: the same plan now goes to Singapore.
  Call<v1::Tenant>(c, "PUT", "/v1/tenants/acme",
                   R"({"registered_zones": ["hongqiao"], "ciio": false, "instruments": [
                       {"type": "cn_standard_contract", "from": "CN", "to": "*", "expires": "2099-12-31"}]})");
  plan = Call<v1::Decision>(c, "POST", "/v1/plan", pinned);
  ASSERT_TRUE(plan.feasible()) << plan.reason();
  EXPECT_EQ(plan.placement().site(), "singapore-1");
  EXPECT_EQ(plan.placement().compliance(0).instrument(), "cn_standard_contract");
  EXPECT_EQ(c.client().ListJobs()->jobs_size(), 1) << "plan stores nothing";

  // Submitted for real, it runs there and the transfer is audited.
  v1::Job abroad = Call<v1::Job>(c, "POST", "/v1/jobs", pinned, 201);
  ASSERT_TRUE(WaitFor(
      [&] {
        auto j = c.client().GetJob(abroad.id());
        return j.ok() && j->state() == v1::Job::succeeded;
      },
      seconds(20)));
  v1::ListAuditResponse audit = Call<v1::ListAuditResponse>(c, "GET", "/v1/audit?tenant=acme");
  ASSERT_EQ(audit.records_size(), 1);
  EXPECT_EQ(audit.records(0).job(), abroad.id());
  EXPECT_EQ(audit.records(0).to_site(), "singapore-1");
  EXPECT_EQ(audit.records(0).instrument(), "cn_standard_contract");
}

TEST_F(PolicyIT, PolicyPutChangesTheNextDecisionWithoutRestart) {
  std::string to_hk =
      R"({"tenant": "acme", "command": ["/bin/true"], "resources": {"cpus": 1, "memory_mb": 64},
    "placement": {"sites": ["hongkong-1"]},
    "datasets": [{"id": "small", "origin": "CN", "categories": ["personal"], "subjects": 500}]})";
  v1::Decision before = Call<v1::Decision>(c, "POST", "/v1/plan", to_hk);
  ASSERT_TRUE(before.feasible()) << before.reason();
  EXPECT_EQ(before.placement().compliance(0).rule(), "cn-pi-under-100k");
  v1::Policy p = Call<v1::Policy>(c, "GET", "/v1/policy");
  EXPECT_EQ(p.version(), "v1");
  for (auto& r : *p.mutable_rules()) {
    if (r.id() == "cn-pi-under-100k") r.set_effect(v1::Rule::deny);
  }
  v1::PolicyVersion v = Call<v1::PolicyVersion>(c, "PUT", "/v1/policy", codec::ToJson(p));
  EXPECT_EQ(v.version(), "v2");
  EXPECT_EQ(v.summary(), "rules: +0 -0 ~1");
  v1::Decision after = Call<v1::Decision>(c, "POST", "/v1/plan", to_hk);
  EXPECT_FALSE(after.feasible());
  EXPECT_EQ(after.policy_version(), "v2");
  EXPECT_EQ(SiteOf(after, "hongkong-1")->residency().rule(), "cn-pi-under-100k");

  // An invalid policy is refused with the field, and v2 stays.
  p.mutable_links(0)->set_rtt_ms(-3);
  v1::ErrorResponse err = Call<v1::ErrorResponse>(c, "PUT", "/v1/policy", codec::ToJson(p), 400);
  EXPECT_EQ(err.error().field(), "links[0].rtt_ms");
  v1::ValidationResult vr =
      Call<v1::ValidationResult>(c, "POST", "/v1/policy:validate", codec::ToJson(p));
  EXPECT_FALSE(vr.valid());
  EXPECT_EQ(Call<v1::Policy>(c, "GET", "/v1/policy").version(), "v2");
  v1::ListPolicyVersionsResponse versions =
      Call<v1::ListPolicyVersionsResponse>(c, "GET", "/v1/policy/versions");
  ASSERT_EQ(versions.versions_size(), 2);
  EXPECT_EQ(versions.versions(0).version(), "v2");
  EXPECT_FALSE(versions.versions(0).has_policy()) << "the list leaves the bodies out";
  // Each version with its whole policy: what v2 changed can be read off.
  v1::PolicyVersion v1_body = Call<v1::PolicyVersion>(c, "GET", "/v1/policy/versions/v1");
  v1::PolicyVersion v2_body = Call<v1::PolicyVersion>(c, "GET", "/v1/policy/versions/v2");
  auto effect = [](const v1::Policy& pol) {
    for (const auto& r : pol.rules()) {
      if (r.id() == "cn-pi-under-100k") return r.effect();
    }
    return v1::Rule::effect_unspecified;
  };
  EXPECT_NE(effect(v1_body.policy()), v1::Rule::deny);
  EXPECT_EQ(effect(v2_body.policy()), v1::Rule::deny);
  EXPECT_EQ(v2_body.summary(), "rules: +0 -0 ~1");
  v1::ErrorResponse missing = Call<v1::ErrorResponse>(c, "GET", "/v1/policy/versions/v9", "", 404);
  EXPECT_EQ(missing.error().field(), "version");
}

TEST_F(PolicyIT, CableCutReroutesAndShowsInTheNetwork) {
  auto rtt = [&](const v1::NetworkView& n, const std::string& a, const std::string& b) {
    for (const auto& e : n.matrix()) {
      if (e.from() == a && e.to() == b) return e.rtt_ms();
    }
    return -2.0;
  };
  v1::NetworkView before = Call<v1::NetworkView>(c, "GET", "/v1/network");
  EXPECT_EQ(rtt(before, "lingang-idc-1", "singapore-1"), 65);
  v1::Link cut = Call<v1::Link>(c, "PUT", "/v1/network/links/sjc2-lg1-sin", R"({"up": false})");
  EXPECT_FALSE(cut.up());
  v1::NetworkView after = Call<v1::NetworkView>(c, "GET", "/v1/network");
  EXPECT_EQ(rtt(after, "lingang-idc-1", "singapore-1"), 72.5);
  // A job limited to 70 ms from Lingang can no longer use Singapore.
  v1::Decision d =
      Call<v1::Decision>(c, "POST", "/v1/plan",
                         R"({"command": ["/bin/true"], "resources": {"cpus": 1, "memory_mb": 64},
                                          "placement": {"sites": ["singapore-1"], "max_rtt_ms": {"lingang-idc-1": 70}}})");
  EXPECT_FALSE(d.feasible());
  EXPECT_NE(d.reason().find("RTT to lingang-idc-1 is 72.5 ms, limit 70 ms"), std::string::npos)
      << d.reason();
  Call<v1::ErrorResponse>(c, "PUT", "/v1/network/links/no-such-cable", R"({"up": false})", 404);
  // Measured RTT from heartbeats shows beside the configured model.
  ASSERT_TRUE(
      WaitFor([&] { return Call<v1::NetworkView>(c, "GET", "/v1/network").measured_size() == 3; },
              seconds(20)));
}

TEST_F(PolicyIT, UnknownSitesAndLocationsAreRefusedWithTheField) {
  auto err = Call<v1::ErrorResponse>(
      c, "POST", "/v1/jobs",
      R"({"command": ["/bin/true"], "resources": {"cpus": 1, "memory_mb": 1},
                                         "placement": {"sites": ["atlantis-1"]}})",
      400);
  EXPECT_EQ(err.error().field(), "placement.sites[0]");
  EXPECT_NE(err.error().message().find("atlantis-1"), std::string::npos);
  err = Call<v1::ErrorResponse>(
      c, "POST", "/v1/plan",
      R"({"command": ["/bin/true"], "resources": {"cpus": 1, "memory_mb": 1},
                                    "datasets": [{"id": "d", "location": "moon-base"}]})",
      400);
  EXPECT_EQ(err.error().field(), "datasets[0].location");
  err = Call<v1::ErrorResponse>(c, "PUT", "/v1/tenants/acme",
                                R"({"instruments": [{"type": "napkin"}]})", 400);
  EXPECT_EQ(err.error().field(), "instruments[0].type");
  Call<v1::ErrorResponse>(c, "GET", "/v1/tenants/nobody", "", 404);
  v1::ListSitesResponse sites = Call<v1::ListSitesResponse>(c, "GET", "/v1/sites");
  EXPECT_EQ(sites.sites_size(), 9);
}

}  // namespace
}  // namespace portolan::testing
