// SPDX-License-Identifier: Apache-2.0
// Workload management in the core: dependencies between jobs, tenant quotas
// (tenant-wide and per site) and fair-share weights.
#include <gtest/gtest.h>

#include "core_fixture.h"
#include "portolan/scheduler/quota.h"

namespace portolan::scheduler {
namespace {

class WorkloadTest : public CoreTest {
 protected:
  std::string SubmitId(v1::Job spec) {
    auto r = core->Submit(std::move(spec));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->first.id() : "";
  }
  v1::Job After(const std::string& dep, v1::Dependency::Condition c = v1::Dependency::succeeded) {
    v1::Job j = Spec(2);
    v1::Dependency* d = j.add_depends_on();
    d->set_job(dep);
    d->set_condition(c);
    return j;
  }
  v1::Job::State State(const std::string& id) { return core->GetJob(id)->state(); }
  std::string Reason(const std::string& id) { return core->GetJob(id)->reason(); }
  void SetTenant(const std::string& yaml) {
    v1::Tenant t;
    ASSERT_TRUE(codec::ParseYaml(yaml, &t).ok()) << yaml;
    auto r = core->PutTenant(t.id(), t);
    ASSERT_TRUE(r.ok()) << r.status();
  }
};

TEST_F(WorkloadTest, DependentWaitsForItsDependencyThenRuns) {
  auto link = Register("a1", 8);
  const std::string a = SubmitId(Spec(2));
  ASSERT_EQ(State(a), v1::Job::placed);
  const std::string b = SubmitId(After(a));
  EXPECT_EQ(State(b), v1::Job::queued);
  EXPECT_EQ(Reason(b), "waiting for " + a + " (placed)");
  // The explanation of a job that waits before any decision is its reason.
  EXPECT_EQ(core->Explain(b)->reason(), Reason(b));
  Update("a1", link.get(), a, v1::Job::running);
  core->Tick();
  EXPECT_EQ(Reason(b), "waiting for " + a + " (running)");
  Update("a1", link.get(), a, v1::Job::succeeded);
  core->Tick();
  EXPECT_EQ(State(b), v1::Job::placed) << Reason(b);
}

TEST_F(WorkloadTest, DependentIsUnschedulableWhenItsDependencyFails) {
  auto link = Register("a1", 8);
  const std::string a = SubmitId(Spec(2));
  const std::string needs_success = SubmitId(After(a));
  const std::string any_end = SubmitId(After(a, v1::Dependency::finished));
  Update("a1", link.get(), a, v1::Job::running);
  Update("a1", link.get(), a, v1::Job::failed, 1, 3);
  core->Tick();
  EXPECT_EQ(State(a), v1::Job::failed);
  EXPECT_EQ(State(needs_success), v1::Job::unschedulable);
  EXPECT_EQ(Reason(needs_success), "dependency " + a +
                                       " ended failed; this job needs it to succeed (depends_on "
                                       "condition succeeded)");
  EXPECT_EQ(State(any_end), v1::Job::placed) << Reason(any_end);
  // Depending on an ended job: met or not at once.
  EXPECT_EQ(State(SubmitId(After(a))), v1::Job::unschedulable);
  EXPECT_EQ(State(SubmitId(After(a, v1::Dependency::finished))), v1::Job::placed);
}

TEST_F(WorkloadTest, DependenciesMustNameTheTenantsOwnExistingJobsOnce) {
  Register("a1", 8);
  v1::Job other = Spec(1);
  other.set_tenant("globex");
  const std::string globex_job = SubmitId(other);
  v1::Job acme = Spec(1);
  acme.set_tenant("acme");
  const std::string acme_job = SubmitId(acme);
  struct Case {
    std::vector<std::string> deps;
    std::string field, message;
  } cases[] = {
      {{"job-nope"}, "depends_on[0].job", "no job 'job-nope' of tenant acme"},
      {{acme_job, globex_job}, "depends_on[1].job", "no job '" + globex_job + "' of tenant acme"},
      {{acme_job, acme_job}, "depends_on[1].job", "listed twice"},
      {{""}, "depends_on[0].job", "a job id is required"},
  };
  for (const Case& c : cases) {
    v1::Job j = Spec(1);
    j.set_tenant("acme");
    for (const std::string& d : c.deps) j.add_depends_on()->set_job(d);
    auto r = core->Submit(j);
    ASSERT_FALSE(r.ok()) << c.field;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(codec::StatusField(r.status()), c.field);
    EXPECT_NE(r.status().message().find(c.message), std::string::npos) << r.status();
    // plan answers the same.
    EXPECT_EQ(codec::StatusField(core->Plan(j).status()), c.field);
  }
  v1::Job fine = Spec(1);
  fine.set_tenant("acme");
  fine.add_depends_on()->set_job(acme_job);
  auto r = core->Submit(fine);
  ASSERT_TRUE(r.ok()) << r.status();
  // The condition defaults to succeeded.
  EXPECT_EQ(r->first.depends_on(0).condition(), v1::Dependency::succeeded);
}

TEST_F(WorkloadTest, ATenantAtQuotaWaitsWhileOthersRun) {
  auto link = Register("a1", 16);
  SetTenant("{id: acme, quota: {cpus: 4}}");
  std::vector<std::string> acme;
  for (int i = 0; i < 3; ++i) {
    v1::Job j = Spec(2);
    j.set_tenant("acme");
    acme.push_back(SubmitId(j));
  }
  EXPECT_EQ(State(acme[0]), v1::Job::placed);
  EXPECT_EQ(State(acme[1]), v1::Job::placed);
  EXPECT_EQ(State(acme[2]), v1::Job::queued);
  EXPECT_EQ(Reason(acme[2]), "quota: tenant acme uses 4 of 4 cpus (this job asks 2)");
  // plan says the same; another tenant is not held back.
  v1::Job probe = Spec(2);
  probe.set_tenant("acme");
  EXPECT_EQ(core->Plan(probe)->reason(), Reason(acme[2]));
  v1::Job globex = Spec(2);
  globex.set_tenant("globex");
  EXPECT_EQ(State(SubmitId(globex)), v1::Job::placed);

  v1::TenantUsage u = core->Usage("acme");
  EXPECT_EQ(u.used().cpus(), 4);
  EXPECT_EQ(u.used().memory_mb(), 256);
  EXPECT_EQ(u.quota().cpus(), 4);
  EXPECT_EQ(u.jobs_holding(), 2u);
  EXPECT_EQ(u.jobs_waiting(), 1u);
  EXPECT_EQ(u.jobs_waiting_for_quota(), 1u);
  EXPECT_EQ(u.sites().at("lingang-idc-1").cpus(), 4);

  // One of acme's jobs ends: the waiting one takes its place.
  Update("a1", link.get(), acme[0], v1::Job::running);
  Update("a1", link.get(), acme[0], v1::Job::succeeded);
  core->Tick();
  EXPECT_EQ(State(acme[2]), v1::Job::placed) << Reason(acme[2]);
  EXPECT_EQ(core->Usage("acme").used().cpus(), 4);

  // A job larger than the quota waits too (an admin may raise the quota).
  v1::Job big = Spec(6);
  big.set_tenant("acme");
  const std::string b = SubmitId(big);
  EXPECT_EQ(State(b), v1::Job::queued);
  EXPECT_EQ(Reason(b), "quota: the job asks 6 cpus, more than tenant acme's quota of 4");
  SetTenant("{id: acme, quota: {cpus: 10}}");
  core->Tick();
  EXPECT_EQ(State(b), v1::Job::placed) << Reason(b);
}

TEST_F(WorkloadTest, ASiteQuotaSendsJobsToOtherSitesOrKeepsThemWaiting) {
  Register("lg", 8, {}, "lingang-idc-1");
  SetTenant("{id: acme, quota: {sites: {lingang-idc-1: {cpus: 2}}}}");
  v1::Job j = Spec(2);
  j.set_tenant("acme");
  j.mutable_placement()->add_sites("lingang-idc-1");
  const std::string first = SubmitId(j);
  EXPECT_EQ(State(first), v1::Job::placed);
  // Only Lingang is asked for and its quota is used: waiting, not unschedulable.
  const std::string second = SubmitId(j);
  EXPECT_EQ(State(second), v1::Job::queued);
  EXPECT_NE(Reason(second).find("waiting for quota"), std::string::npos) << Reason(second);
  EXPECT_NE(Reason(second).find("quota: tenant acme uses 2 of 2 cpus at site lingang-idc-1"),
            std::string::npos)
      << Reason(second);
  // Without the site restriction, Singapore takes it once an agent is there.
  v1::Job anywhere = Spec(2);
  anywhere.set_tenant("acme");
  const std::string third = SubmitId(anywhere);
  EXPECT_EQ(State(third), v1::Job::queued);
  Register("sg", 8, {}, "singapore-1");
  EXPECT_EQ(State(third), v1::Job::placed) << Reason(third);
  EXPECT_EQ(core->GetJob(third)->allocation().site(), "singapore-1");
  EXPECT_EQ(State(second), v1::Job::queued);
}

TEST_F(WorkloadTest, WeightsShareTheClusterInProportion) {
  SetTenant("{id: heavy, weight: 3}");
  for (int i = 0; i < 10; ++i) {
    for (const char* tenant : {"heavy", "light"}) {
      v1::Job j = Spec(1);
      j.mutable_resources()->set_memory_mb(16);
      j.set_tenant(tenant);
      SubmitId(j);
    }
  }
  Register("a1", 8);
  core->Tick();
  EXPECT_EQ(core->Usage("heavy").used().cpus(), 6);
  EXPECT_EQ(core->Usage("light").used().cpus(), 2);
}

TEST_F(WorkloadTest, TenantProfilesRefuseBadQuotasAndWeights) {
  // The REST body's parser refuses negative numbers already (the proto's
  // minimum); the core checks again for callers that build the message.
  v1::Tenant t;
  EXPECT_FALSE(codec::ParseYaml("{id: acme, weight: -1}", &t).ok());
  auto refused = [&](const v1::Tenant& t, const std::string& field) {
    auto r = core->PutTenant("acme", t);
    ASSERT_FALSE(r.ok()) << field;
    EXPECT_EQ(codec::StatusField(r.status()), field) << r.status();
  };
  t.set_id("acme");
  t.set_weight(-1);
  refused(t, "weight");
  t.set_weight(2);
  t.mutable_quota()->set_cpus(-1);
  refused(t, "quota");
  ASSERT_TRUE(codec::ParseYaml("{id: acme, quota: {sites: {atlantis: {cpus: 1}}}}", &t).ok());
  refused(t, "quota.sites.atlantis");
}

TEST(UsageTableTest, HoldIsIdempotentAndDropReturnsEverything) {
  UsageTable u;
  v1::Resources r;
  r.set_cpus(2);
  r.set_memory_mb(100);
  u.Hold("j1", "acme", "s1", r);
  u.Hold("j1", "acme", "s1", r);  // recovered again: not counted twice
  u.Hold("j2", "acme", "s2", r);
  EXPECT_EQ(u.Of("acme").total.cpus(), 4);
  EXPECT_EQ(u.Of("acme").sites.at("s1").cpus(), 2);
  EXPECT_EQ(u.Of("acme").jobs, 2u);
  u.Drop("j1");
  u.Drop("j1");
  u.Drop("never-held");
  EXPECT_EQ(u.Of("acme").total.cpus(), 2);
  u.Drop("j2");
  EXPECT_EQ(u.Of("acme").jobs, 0u);
  EXPECT_TRUE(u.tenants().empty());
}

}  // namespace
}  // namespace portolan::scheduler
