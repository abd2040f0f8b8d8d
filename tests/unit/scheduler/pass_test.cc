// SPDX-License-Identifier: Apache-2.0
// The scheduling pass after jobs end (Core::BeginPass, FillQueue's window):
// it may stop once no agent has a free PU and add only the first waiting
// jobs of each tenant, and must still place what a pass over every waiting
// job would, in the same order.
#include <gtest/gtest.h>

#include "core_fixture.h"

namespace portolan::scheduler {
namespace {

class PassTest : public CoreTest {
 protected:
  std::string SubmitAs(const std::string& tenant, v1::Job spec = {}) {
    if (spec.command().empty()) spec = Spec(2);
    spec.set_tenant(tenant);
    auto r = core->Submit(std::move(spec));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->first.id() : "";
  }
  v1::Job::State State(const std::string& id) { return core->GetJob(id)->state(); }
  std::string Agent(const std::string& id) { return core->GetJob(id)->allocation().agent(); }
};

// A tenant's long backlog is cut to its first jobs; another tenant's single
// job is still in the window and, with the smaller share, goes first.
TEST_F(PassTest, TheWindowKeepsEachTenantsFirstJobsSoFairShareStillDecides) {
  auto link = Register("a1", 4);
  std::vector<std::string> acme;
  for (int i = 0; i < 3 * Core::kQueueWindowSlack; ++i) acme.push_back(SubmitAs("acme"));
  ASSERT_EQ(State(acme[0]), v1::Job::placed);
  ASSERT_EQ(State(acme[1]), v1::Job::placed);
  ASSERT_EQ(State(acme[2]), v1::Job::queued);
  const std::string beta = SubmitAs("beta");
  ASSERT_EQ(State(beta), v1::Job::queued);
  core->Tick();  // a full pass (the registration asked for one): nothing fits
  Update("a1", link.get(), acme[0], v1::Job::running);
  Update("a1", link.get(), acme[0], v1::Job::succeeded);
  // acme holds half the cluster, beta nothing: beta's job goes first,
  // although 190 of acme's jobs were submitted before it.
  EXPECT_EQ(State(beta), v1::Job::placed) << core->GetJob(beta)->reason();
  EXPECT_EQ(State(acme[2]), v1::Job::queued);
}

// The window's list of a tenant is visited to its end with PUs still free
// (its first jobs wait for a dependency): the pass goes on over every
// waiting job, and the tenant's next job is placed at once.
TEST_F(PassTest, WhenTheWindowRunsOutWithPusFreeAFullPassPlacesTheRest) {
  auto l1 = Register("a1", 2);
  auto l2 = Register("a2", 2);
  const std::string other = SubmitAs("globex");
  const std::string dep = SubmitAs("acme");
  ASSERT_EQ(State(other), v1::Job::placed);
  ASSERT_EQ(State(dep), v1::Job::placed);
  const std::string other_agent = Agent(other);
  std::vector<std::string> blocked;
  for (int i = 0; i < Core::kQueueWindowSlack + 4; ++i) {
    v1::Job j = Spec(2);
    v1::Dependency* d = j.add_depends_on();
    d->set_job(dep);
    d->set_condition(v1::Dependency::succeeded);
    blocked.push_back(SubmitAs("acme", j));
  }
  const std::string free_job = SubmitAs("acme");
  ASSERT_EQ(State(free_job), v1::Job::queued);
  core->Tick();
  auto* link = other_agent == "a1" ? l1.get() : l2.get();
  Update(other_agent, link, other, v1::Job::running);
  Update(other_agent, link, other, v1::Job::succeeded);
  EXPECT_EQ(State(free_job), v1::Job::placed) << core->GetJob(free_job)->reason();
  EXPECT_EQ(Agent(free_job), other_agent);
  EXPECT_EQ(State(blocked.back()), v1::Job::queued);
}

}  // namespace
}  // namespace portolan::scheduler
