// SPDX-License-Identifier: Apache-2.0
// The cumulative ledger with real placements through the running daemons
// (regulations.md section 1, Counting): exports of one origin count together
// across destinations, jobs and days, per tenant and calendar year; foreign
// data never counts toward CN thresholds; a dataset counts once; the totals
// survive a scheduler restart and start again on 1 January (the scheduler's
// clock is started just before midnight with --clock-start).
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "harness.h"
#include "portolan/codec/codec.h"
#include "portolan/v1/api.pb.h"
#include "portolan/v1/ledger.pb.h"
#include "portolan/v1/policy.pb.h"

namespace portolan::testing {
namespace {

using std::chrono::seconds;

// A job of `tenant` exporting one dataset to `site` (pinned).
std::string Export(const std::string& tenant, const std::string& site, const std::string& dataset,
                   const std::string& origin, int subjects, int sensitive = 0) {
  const std::string cats =
      sensitive > 0 ? R"(["personal", "sensitive_personal"])" : R"(["personal"])";
  return absl::StrCat(R"({"name": "x", "tenant": ")", tenant,
                      R"(", "command": ["/bin/true"], "resources": {"cpus": 1, "memory_mb": 64},
      "placement": {"sites": [")",
                      site, R"("]}, "datasets": [{"id": ")", dataset, R"(", "origin": ")", origin,
                      R"(", "location": "lingang-idc-1", "categories": )", cats,
                      R"(, "subjects": )", subjects, R"(, "sensitive_subjects": )", sensitive,
                      "}]}");
}

class LedgerIT : public ::testing::Test {
 protected:
  void SetUp() override {
    Start("2026-12-30T23:50:00Z");  // the restart below moves to the next day
    c.StartAgent("lg1", "lingang-idc-1");
    c.StartAgent("sg1", "singapore-1");
    c.StartAgent("hk1", "hongkong-1");
    c.StartAgent("ty1", "tokyo-1");
    ASSERT_TRUE(WaitFor([&] { return c.client().ListAgents()->agents_size() == 4; }, seconds(20)));
    // Tenants: sc holds a standard contract to anywhere; eu holds SCCs for SG.
    Call<v1::Tenant>(
        c, "PUT", "/v1/tenants/sc",
        R"({"instruments": [{"type": "cn_standard_contract", "from": "CN", "to": "*"}]})");
    Call<v1::Tenant>(c, "PUT", "/v1/tenants/eu",
                     R"({"instruments": [{"type": "eu_scc", "from": "EU", "to": "SG"}]})");
  }
  // The same RPC port on a restart, so that the agents find it again.
  void Start(const std::string& clock) { c.StartScheduler(c.rpc_port(), {"--clock-start", clock}); }

  // Submits; the final state and the job.
  v1::Job Run(const std::string& body) {
    v1::Job j = Call<v1::Job>(c, "POST", "/v1/jobs", body, 201);
    EXPECT_TRUE(WaitFor(
        [&] {
          auto g = c.client().GetJob(j.id());
          return g.ok() && (g->state() == v1::Job::succeeded || g->state() == v1::Job::failed ||
                            g->state() == v1::Job::unschedulable);
        },
        seconds(30)));
    return *c.client().GetJob(j.id());
  }
  void Placed(const std::string& body) {
    v1::Job j = Run(body);
    EXPECT_EQ(j.state(), v1::Job::succeeded) << j.reason();
  }
  // Refused by residency, the rule and the arithmetic in the reason.
  void Refused(const std::string& body, const std::string& rule, const std::string& says) {
    v1::Job j = Run(body);
    EXPECT_EQ(j.state(), v1::Job::unschedulable) << j.reason();
    EXPECT_NE(j.reason().find(rule), std::string::npos) << j.reason();
    EXPECT_NE(j.reason().find(says), std::string::npos) << j.reason();
  }
  v1::Decision Plan(const std::string& body) {
    return Call<v1::Decision>(c, "POST", "/v1/plan", body);
  }
  Cluster c;
};

TEST_F(LedgerIT, SequencesAcrossDestinationsTenantsRestartAndTheYearEnd) {
  // Split across destinations: 40,000 to SG, 40,000 to HK, then 30,000 to
  // Tokyo makes 110,000 this year: a standard contract is needed anywhere.
  Placed(Export("acme", "singapore-1", "a1", "CN", 40000));
  Placed(Export("acme", "hongkong-1", "a2", "CN", 40000));
  Refused(Export("acme", "tokyo-1", "a3", "CN", 30000), "cn-pi-100k-1m",
          "this year 80,000 + this job 30,000 = 110,000 >= 100,000");
  // The same data staying in CN is no export: unpinned, it goes home.
  std::string home = Export("acme", "lingang-idc-1", "a3", "CN", 30000);
  EXPECT_EQ(Plan(home).placement().site(), "lingang-idc-1");
  // A re-used dataset counts once: a1 again to Tokyo adds nothing.
  Placed(Export("acme", "tokyo-1", "a1", "CN", 40000));

  // Tenants are separate: globex starts from zero.
  Placed(Export("globex", "hongkong-1", "g1", "CN", 90000));

  // Foreign-origin exports never count toward CN thresholds.
  Placed(Export("eu", "singapore-1", "e1", "EU", 60000));
  Placed(Export("eu", "hongkong-1", "e2", "CN", 60000));
  // The ledger as GET /v1/tenants/{id}/ledger shows it: per origin, all
  // destinations together, each dataset once.
  v1::ListLedgerResponse acme = Call<v1::ListLedgerResponse>(c, "GET", "/v1/tenants/acme/ledger");
  ASSERT_EQ(acme.entries_size(), 1);
  EXPECT_EQ(acme.entries(0).origin(), "CN");
  EXPECT_EQ(acme.entries(0).year(), 2026);
  EXPECT_EQ(acme.entries(0).subjects(), 80000u);
  EXPECT_EQ(acme.entries(0).datasets_size(), 2);
  v1::ListLedgerResponse eu = Call<v1::ListLedgerResponse>(c, "GET", "/v1/tenants/eu/ledger");
  ASSERT_EQ(eu.entries_size(), 2);  // CN and EU apart
  EXPECT_EQ(eu.entries(0).origin(), "CN");
  EXPECT_EQ(eu.entries(1).origin(), "EU");
  auto globex = c.ClientWith(Cluster::kGlobexToken);
  std::string body;
  EXPECT_EQ(*globex->Raw("GET", "/v1/tenants/acme/ledger", "", &body), 403) << body;
  EXPECT_EQ(*globex->Raw("GET", "/v1/tenants/globex/ledger", "", &body), 200) << body;

  // SPI crossing 10,000: 6,000 then 5,000 more under a standard contract.
  Placed(Export("sc", "singapore-1", "s1", "CN", 0, 6000));
  Refused(Export("sc", "hongkong-1", "s2", "CN", 0, 5000), "cn-spi-10k",
          "this year 6,000 + this job 5,000 = 11,000 >= 10,000");
  // 900,000 + 200,000: from contract to assessment.
  Placed(Export("sc", "singapore-1", "p1", "CN", 900000));
  Refused(Export("sc", "tokyo-1", "p2", "CN", 200000), "cn-pi-1m",
          "this year 900,000 + this job 200,000 = 1,100,000 >= 1,000,000");

  // The audit trail has every export; the refused ones are not in it.
  auto audit = Call<v1::ListAuditResponse>(c, "GET", "/v1/audit?limit=100");
  EXPECT_EQ(audit.records_size(), 8) << codec::ToJson(audit);

  // A scheduler restart on the next day keeps the totals (store schema 4 ledger).
  c.StopScheduler();
  Start("2026-12-31T23:59:57Z");
  ASSERT_TRUE(WaitFor(
      [&] {
        auto a = c.client().ListAgents();
        int ready = 0;
        for (const auto& x : a->agents()) ready += x.state() == v1::Agent::ready;
        return ready == 4;
      },
      seconds(20)));
  v1::Decision after = Plan(Export("acme", "tokyo-1", "a3", "CN", 30000));
  EXPECT_FALSE(after.feasible());
  EXPECT_NE(after.reason().find("110,000"), std::string::npos) << after.reason();

  // 1 January: a new year's ledger, without a restart.
  ASSERT_TRUE(WaitFor([&] { return Plan(Export("acme", "tokyo-1", "a3", "CN", 30000)).feasible(); },
                      seconds(15)))
      << "the year did not turn (clock started at 23:59:57): "
      << Plan(Export("acme", "tokyo-1", "a3", "CN", 30000)).reason();
  Placed(Export("acme", "tokyo-1", "a3", "CN", 30000));
  v1::Decision d = Plan(Export("acme", "hongkong-1", "a4", "CN", 60000));
  EXPECT_TRUE(d.feasible()) << d.reason();
  EXPECT_NE(d.placement().compliance(0).basis().find("this year 30,000 + this job 60,000"),
            std::string::npos)
      << d.placement().compliance(0).basis();
}

TEST_F(LedgerIT, AGrowingTotalMakesARunningJobAViolationAndExpiriesAreListed) {
  // A long job exports 60,000 to SG with no instrument needed.
  v1::Job longjob =
      Call<v1::Job>(c, "POST", "/v1/jobs",
                    absl::StrReplaceAll(Export("sc", "singapore-1", "l1", "CN", 60000),
                                        {{R"(["/bin/true"])", R"(["/bin/sleep", "30"])"}}),
                    201);
  ASSERT_TRUE(WaitForState(c.client(), longjob.id(), v1::Job::running));
  EXPECT_EQ(
      Call<v1::ListViolationsResponse>(c, "GET", "/v1/compliance/violations").violations_size(), 0);
  // The tenant's contract is replaced by one that covers Hong Kong only;
  // a second export of 60,000 to HK under it puts the year at 120,000: the
  // running SG job now needs a contract that covers SG, which it lacks.
  Call<v1::Tenant>(c, "PUT", "/v1/tenants/sc",
                   R"({"instruments": [{"type": "cn_standard_contract", "from": "CN", "to": "HK",
                       "reference": "SC-HK-1", "expires": "2027-01-20"}]})");
  Placed(Export("sc", "hongkong-1", "l2", "CN", 60000));
  auto v = Call<v1::ListViolationsResponse>(c, "GET", "/v1/compliance/violations");
  ASSERT_EQ(v.violations_size(), 1) << codec::ToJson(v);
  EXPECT_EQ(v.violations(0).job(), longjob.id());
  EXPECT_EQ(v.violations(0).site(), "singapore-1");
  EXPECT_EQ(v.violations(0).rule(), "cn-pi-100k-1m");
  EXPECT_EQ(v.violations(0).action(), "report");
  auto job = *c.client().GetJob(longjob.id());
  EXPECT_EQ(job.state(), v1::Job::running) << "on_violation: report leaves it running";
  EXPECT_NE(job.events().rbegin()->message().find("compliance: no longer allowed at singapore-1"),
            std::string::npos);
  // The tenant's own token sees it; another tenant's does not.
  auto acme = c.ClientWith(Cluster::kAcmeToken);
  std::string out;
  ASSERT_EQ(*acme->Raw("GET", "/v1/compliance/violations", "", &out), 200);
  EXPECT_EQ(out.find(longjob.id()), std::string::npos) << out;
  // The metric counts it.
  std::string metrics;
  ASSERT_EQ(*c.client().Raw("GET", "/metrics", "", &metrics), 200);
  EXPECT_NE(metrics.find(R"(portolan_compliance_violations{tenant="sc",rule="cn-pi-100k-1m"} 1)"),
            std::string::npos);
  EXPECT_NE(
      metrics.find(
          R"(portolan_instrument_expiry_seconds{tenant="sc",type="cn_standard_contract",reference="SC-HK-1"})"),
      std::string::npos);
  // Expiring within 30 days (the clock is at the year end): the HK contract.
  auto expiring = Call<v1::ListTenantsResponse>(c, "GET", "/v1/tenants?expiring_within_days=30");
  ASSERT_EQ(expiring.tenants_size(), 1) << codec::ToJson(expiring);
  EXPECT_EQ(expiring.tenants(0).instruments(0).reference(), "SC-HK-1");
  EXPECT_EQ(
      Call<v1::ListTenantsResponse>(c, "GET", "/v1/tenants?expiring_within_days=5").tenants_size(),
      0);
  Call<v1::ErrorResponse>(c, "GET", "/v1/tenants?expiring_within_days=soon", "", 400);
  // Given a contract for SG again, the violation clears.
  Call<v1::Tenant>(
      c, "PUT", "/v1/tenants/sc",
      R"({"instruments": [{"type": "cn_standard_contract", "from": "CN", "to": "*"}]})");
  EXPECT_EQ(
      Call<v1::ListViolationsResponse>(c, "GET", "/v1/compliance/violations").violations_size(), 0);
  (void)c.client().Cancel(longjob.id());
  EXPECT_TRUE(WaitForState(c.client(), longjob.id(), v1::Job::cancelled));
}

}  // namespace
}  // namespace portolan::testing
