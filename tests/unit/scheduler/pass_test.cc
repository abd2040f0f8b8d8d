// SPDX-License-Identifier: Apache-2.0
// The scheduling pass after jobs end (Core::BeginPass, FillQueue's window):
// it may stop once no agent has a free PU and add only the first waiting
// jobs of each tenant, and must still place what a pass over every waiting
// job would, in the same order. And the verdicts of decision classes that
// found no room (ClassVerdicts), reused by their twins until a change.
#include <gtest/gtest.h>

#include "core_fixture.h"
#include "portolan/base/strings.h"
#include "portolan/scheduler/class_verdicts.h"

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

absl::Time DecidedAt(Core& core, const std::string& id) {
  auto d = core.Explain(id);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? base::FromProto(d->decided_at()) : absl::InfinitePast();
}

// A twin of a job that found no room waits with that job's decision (one
// copy, made when that job was decided) instead of a decision of its own,
// until something requests a pass, the verdict ages past kMaxAge, or the
// twin differs in shape.
TEST_F(PassTest, TwinsOfAJobThatFoundNoRoomShareItsDecisionUntilSomethingChanges) {
  Register("small", 8);
  ASSERT_EQ(core->Submit(Spec(6))->first.state(), v1::Job::placed);
  const std::string first = SubmitAs("acme", Spec(4));
  const absl::Time decided = DecidedAt(*core, first);
  clock.Advance(absl::Milliseconds(100));
  const std::string twin = SubmitAs("acme", Spec(4));
  EXPECT_EQ(State(twin), v1::Job::queued);
  EXPECT_EQ(core->GetJob(twin)->reason(), core->GetJob(first)->reason());
  EXPECT_NE(core->GetJob(twin)->reason().find("1 insufficient_cpus"), std::string::npos)
      << core->GetJob(twin)->reason();
  EXPECT_EQ(DecidedAt(*core, twin), decided);
  // Another shape, or another tenant, is decided on its own.
  EXPECT_EQ(DecidedAt(*core, SubmitAs("acme", Spec(3))), clock.Now());
  EXPECT_EQ(DecidedAt(*core, SubmitAs("globex", Spec(4))), clock.Now());

  // A cordon requests a pass: the next twin is decided afresh and sees it.
  ASSERT_EQ(core->SetAgentMode("small", "cordon")->state(), v1::Agent::cordoned);
  clock.Advance(absl::Milliseconds(100));
  const std::string after = SubmitAs("acme", Spec(4));
  EXPECT_EQ(DecidedAt(*core, after), clock.Now());
  EXPECT_NE(core->GetJob(after)->reason().find("1 cordoned"), std::string::npos)
      << core->GetJob(after)->reason();
  clock.Advance(ClassVerdicts::kMaxAge - absl::Milliseconds(1));
  EXPECT_EQ(DecidedAt(*core, SubmitAs("acme", Spec(4))), DecidedAt(*core, after));
  clock.Advance(absl::Milliseconds(1));  // as old as kMaxAge: decided again
  EXPECT_EQ(DecidedAt(*core, SubmitAs("acme", Spec(4))), clock.Now());

  // Once the agent takes work again, every waiting job is placed or decided
  // again: none is left with a verdict from before.
  core->SetAgentMode("small", "uncordon").IgnoreError();
  core->Tick();
  for (const std::string& id : {first, twin, after}) {
    EXPECT_EQ(State(id), v1::Job::queued);
    EXPECT_EQ(DecidedAt(*core, id), clock.Now()) << id;
    EXPECT_EQ(core->GetJob(id)->reason().find("cordoned"), std::string::npos)
        << core->GetJob(id)->reason();
  }
}

TEST(ClassVerdictsTest, KeysHoldTheQuotaClosedSitesAndVerdictsExpireByAgeAndDay) {
  ClassVerdicts v;
  // Half a second before midnight UTC.
  const absl::Time t =
      absl::FromCivil(absl::CivilSecond(2026, 12, 6, 23, 59, 59), absl::UTCTimeZone()) +
      absl::Milliseconds(500);
  const std::map<std::string, std::string> open, closed{{"hongkong-1", "quota"}};
  EXPECT_NE(ClassVerdicts::Key("class", open), ClassVerdicts::Key("class", closed));
  v.Remember("class", open, std::make_shared<const std::string>("d"), "why", t);
  ASSERT_NE(v.Find("class", open, t), nullptr);
  EXPECT_EQ(*v.Find("class", open, t)->decision, "d");
  EXPECT_EQ(v.Find("class", open, t)->reason, "why");
  EXPECT_EQ(v.Find("class", closed, t), nullptr);
  EXPECT_EQ(v.Find("class", open, t + absl::Milliseconds(500)), nullptr);  // the next UTC day
  EXPECT_EQ(v.Find("class", open, t - absl::Seconds(1)), nullptr);         // made after `now`
  v.Remember("class", open, std::make_shared<const std::string>("d"), "why",
             t - absl::Milliseconds(600));
  EXPECT_NE(v.Find("class", open, t - absl::Milliseconds(1)), nullptr);
  EXPECT_EQ(v.Find("class", open, t + ClassVerdicts::kMaxAge), nullptr);
  v.Forget();
  EXPECT_EQ(v.Find("class", open, t - absl::Milliseconds(1)), nullptr);
  for (size_t i = 0; i < ClassVerdicts::kMaxClasses; ++i)
    v.Remember(absl::StrCat("c", i), open, nullptr, "", t);
  EXPECT_EQ(v.size(), ClassVerdicts::kMaxClasses);
  v.Remember("one more", open, nullptr, "", t);  // past the bound: the rest are forgotten
  EXPECT_EQ(v.size(), 1u);
}

}  // namespace
}  // namespace portolan::scheduler
