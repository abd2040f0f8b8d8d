// SPDX-License-Identifier: Apache-2.0
// Priority preemption in the core: which running jobs a waiting job of higher
// priority stops, how they stop (SIGTERM, grace, SIGKILL on the agent) and
// that they are requeued; what `plan` says; that residency still holds.
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "core_fixture.h"

namespace portolan::scheduler {
namespace {

class PreemptionTest : public CoreTest {
 protected:
  PreemptionTest() {
    // A grace distinct from the agent's default, to see it travel.
    opts.preempt_grace = absl::Seconds(7);
    core = std::make_unique<Core>(opts, &store, &clock, &registry);
    EXPECT_TRUE(core->Recover().ok());
    v1::Policy p;
    EXPECT_TRUE(codec::ParseYaml(kPolicy, &p).ok());
    EXPECT_TRUE(core->ApplyPolicy(p, "test").ok());
  }
  std::string Run(const std::string& agent, FakeLink* link, int cpus, int priority) {
    v1::Job j = Spec(cpus);
    j.set_priority(priority);
    auto r = core->Submit(std::move(j));
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return "";
    const std::string id = r->first.id();
    EXPECT_EQ(core->GetJob(id)->allocation().agent(), agent) << core->GetJob(id)->reason();
    Update(agent, link, id, v1::Job::running);
    return id;
  }
  std::vector<std::string> Cancelled(const FakeLink& link) {
    std::vector<std::string> ids;
    for (const auto& e : link.Cancels()) ids.push_back(e.cancel().job_id());
    return ids;
  }
  v1::Job Get(const std::string& id) { return *core->GetJob(id); }
  bool HasEvent(const std::string& id, const std::string& text) {
    const v1::Job job = Get(id);
    for (const auto& ev : job.events())
      if (absl::StrContains(ev.message(), text)) return true;
    return false;
  }
};

TEST_F(PreemptionTest, StopsExactlyTheLowestJobThatFreesEnoughPusAndRequeuesIt) {
  auto link = Register("a1", 8);
  const std::string small = Run("a1", link.get(), 2, 0);
  const std::string big = Run("a1", link.get(), 4, 0);
  const std::string mid = Run("a1", link.get(), 2, 5);
  v1::Job urgent = Spec(4);
  urgent.set_priority(10);
  // plan says what a submit would do, and does nothing.
  auto plan = core->Plan(urgent);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(absl::StrContains(plan->reason(), "would preempt: " + big + " on agent a1"))
      << plan->reason();
  EXPECT_TRUE(link->Cancels().empty());

  auto r = core->Submit(urgent);
  ASSERT_TRUE(r.ok()) << r.status();
  const std::string id = r->first.id();
  // One job of the lowest priority frees the 4 PUs: the 4-PU one, alone.
  ASSERT_EQ(Cancelled(*link), std::vector<std::string>{big});
  EXPECT_EQ(link->Cancels()[0].cancel().grace_ms(), 7000u);
  EXPECT_EQ(Get(id).state(), v1::Job::queued);
  EXPECT_EQ(Get(id).reason(), "waiting for preempted job(s) to stop: " + big);
  EXPECT_TRUE(HasEvent(big, "preempted by job " + id + " (priority 10)"));
  // Passes while it stops preempt nothing more.
  clock.Advance(absl::Seconds(1));
  core->Tick();
  EXPECT_EQ(link->Cancels().size(), 1u);

  // The agent stops it (SIGTERM); it is requeued, and the preemptor is placed
  // in the room it left before it can take that room back.
  Update("a1", link.get(), big, v1::Job::cancelled);
  core->Tick();
  EXPECT_EQ(Get(id).state(), v1::Job::placed) << Get(id).reason();
  EXPECT_EQ(Get(big).state(), v1::Job::queued) << Get(big).reason();
  EXPECT_TRUE(HasEvent(big, "preempted by job " + id)) << Get(big).DebugString();
  EXPECT_TRUE(HasEvent(big, "requeued"));
  EXPECT_EQ(Get(small).state(), v1::Job::running);
  EXPECT_EQ(Get(mid).state(), v1::Job::running);
  // A requeued victim does not preempt: it had the lower priority.
  EXPECT_EQ(link->Cancels().size(), 1u);

  // When the preemptor ends, the victim runs again (its second attempt) and
  // succeeds.
  Update("a1", link.get(), id, v1::Job::running);
  Update("a1", link.get(), id, v1::Job::succeeded);
  core->Tick();
  ASSERT_EQ(Get(big).state(), v1::Job::placed) << Get(big).reason();
  EXPECT_EQ(Get(big).attempt(), 2u);
  Update("a1", link.get(), big, v1::Job::running, 2);
  Update("a1", link.get(), big, v1::Job::succeeded, 2);
  EXPECT_EQ(Get(big).state(), v1::Job::succeeded);
}

TEST_F(PreemptionTest, NeverStopsJobsOfEqualOrHigherPriority) {
  auto link = Register("a1", 8);
  Run("a1", link.get(), 4, 5);
  Run("a1", link.get(), 4, 7);
  v1::Job same = Spec(2);
  same.set_priority(5);
  auto r = core->Submit(same);
  ASSERT_TRUE(r.ok());
  core->Tick();
  EXPECT_EQ(Get(r->first.id()).state(), v1::Job::queued);
  EXPECT_TRUE(link->Cancels().empty());
  EXPECT_FALSE(absl::StrContains(core->Plan(same)->reason(), "would preempt"));
  // Priority 0 never preempts.
  Register("a2", 2);
  v1::Job zero = Spec(4);
  EXPECT_FALSE(absl::StrContains(core->Plan(zero)->reason(), "would preempt"));
}

TEST_F(PreemptionTest, NeverCrossesAResidencyRule) {
  // Low-priority work fills Singapore; Lingang is full of more urgent work.
  auto sg = Register("sg1", 4, {}, "singapore-1");
  Run("sg1", sg.get(), 4, 0);
  auto cn = Register("cn1", 4);
  Run("cn1", cn.get(), 4, 20);
  // CN personal data, no standard contract: Singapore is not allowed.
  v1::Job j = Spec(2);
  j.set_priority(10);
  v1::Dataset* d = j.add_datasets();
  d->set_id("customers");
  d->set_origin("CN");
  d->set_location("lingang-idc-1");
  d->add_categories(v1::Dataset::personal);
  EXPECT_FALSE(absl::StrContains(core->Plan(j)->reason(), "would preempt"));
  // Without that data, the same job would preempt in Singapore.
  v1::Job no_data = j;
  no_data.clear_datasets();
  EXPECT_TRUE(absl::StrContains(core->Plan(no_data)->reason(), "would preempt"))
      << core->Plan(no_data)->reason();
  auto r = core->Submit(j);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Get(r->first.id()).state(), v1::Job::queued);
  EXPECT_TRUE(sg->Cancels().empty());
  EXPECT_TRUE(cn->Cancels().empty());
}

TEST_F(PreemptionTest, AVictimThatSucceedsOrIsCancelledMeanwhileIsNotRequeued) {
  auto link = Register("a1", 4);
  const std::string done = Run("a1", link.get(), 2, 0);
  const std::string gone = Run("a1", link.get(), 2, 0);
  v1::Job urgent = Spec(4);
  urgent.set_priority(3);
  auto r = core->Submit(urgent);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(link->Cancels().size(), 2u);
  // One finishes within its grace; the other's owner cancels it meanwhile.
  Update("a1", link.get(), done, v1::Job::succeeded);
  ASSERT_TRUE(core->Cancel(gone).ok());
  Update("a1", link.get(), gone, v1::Job::cancelled);
  core->Tick();
  EXPECT_EQ(Get(done).state(), v1::Job::succeeded);
  EXPECT_EQ(Get(gone).state(), v1::Job::cancelled);
  EXPECT_EQ(Get(r->first.id()).state(), v1::Job::placed) << Get(r->first.id()).reason();
}

// The victims' agent must take the preemptor by every filter of the policy,
// not only by its free capacity: here the site came to require PID
// namespaces after the low-priority jobs started, and only one agent has
// them. Stopping jobs on the other would free room the job may not use.
TEST_F(PreemptionTest, NeverStopsJobsOnAnAgentThePolicyWouldNotGiveTheJob) {
  auto plain = Register("a1", 4);
  const std::string on_plain = Run("a1", plain.get(), 4, 0);
  auto link = std::make_shared<FakeLink>();
  v1::Register reg = testing::SimpleRegister("a2", 4, "lingang-idc-1");
  reg.mutable_isolation()->set_pid_ns(true);
  ASSERT_TRUE(core->OnRegister(reg, link, "127.0.0.1:1"));
  const std::string on_isolated = Run("a2", link.get(), 4, 0);
  v1::Policy p;
  ASSERT_TRUE(codec::ParseYaml(kPolicy, &p).ok());
  p.mutable_sites(0)->mutable_isolation_required()->set_pid_ns(true);
  p.mutable_plugins()->add_filters("isolation");
  ASSERT_TRUE(core->ApplyPolicy(p, "test").ok());

  v1::Job urgent = Spec(4);
  urgent.set_priority(10);
  auto plan = core->Plan(urgent);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(absl::StrContains(plan->reason(), "would preempt: " + on_isolated + " on agent a2"))
      << plan->reason();
  auto r = core->Submit(urgent);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(plain->Cancels().empty()) << "a1 lacks the PID namespace the site now requires";
  EXPECT_EQ(Cancelled(*link), std::vector<std::string>{on_isolated});
  EXPECT_EQ(Get(on_plain).state(), v1::Job::running);

  // With neither agent acceptable, nothing is stopped at all.
  p.mutable_sites(0)->mutable_isolation_required()->set_mount_ns(true);
  ASSERT_TRUE(core->ApplyPolicy(p, "test").ok());
  v1::Job other = Spec(4);
  other.set_priority(20);
  auto plan2 = core->Plan(other);
  ASSERT_TRUE(plan2.ok());
  EXPECT_FALSE(absl::StrContains(plan2->reason(), "would preempt")) << plan2->reason();
}

}  // namespace
}  // namespace portolan::scheduler
