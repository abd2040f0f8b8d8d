// SPDX-License-Identifier: Apache-2.0
// Gangs in the core: all members placed at once or none, kept at one site or
// within an RTT bound, failing and restarting whole; what a waiting gang says.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "absl/strings/match.h"
#include "core_fixture.h"

namespace portolan::scheduler {
namespace {

class GangTest : public CoreTest {
 protected:
  // A gang of `tasks` members of 2 PUs each.
  v1::Job Gang(uint32_t tasks, v1::GangSpec::Colocate colocate, double max_rtt_ms = 0) {
    v1::Job j = Spec(2);
    j.mutable_gang()->set_tasks(tasks);
    j.mutable_gang()->set_colocate(colocate);
    j.mutable_gang()->set_max_rtt_ms(max_rtt_ms);
    return j;
  }
  std::string SubmitId(const v1::Job& spec) {
    auto r = core->Submit(spec);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->first.id() : "";
  }
  v1::Job Get(const std::string& id) { return *core->GetJob(id); }
  std::string Member(const std::string& gang, int i) {
    return gang + "[" + std::to_string(i) + "]";
  }
  std::vector<v1::Job> Members(const std::string& gang) {
    auto r = core->ListTasks(gang, 100, "");
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? std::vector<v1::Job>(r->tasks().begin(), r->tasks().end())
                  : std::vector<v1::Job>{};
  }
  int Placed(const std::string& gang) {
    int n = 0;
    for (const v1::Job& m : Members(gang)) n += m.state() == v1::Job::placed;
    return n;
  }
};

TEST_F(GangTest, AColocatedGangWaitsUntilOneSiteHoldsAllThenStartsTogether) {
  auto lg1 = Register("lg1", 4);
  auto sg1 = Register("sg1", 4, {}, "singapore-1");
  const std::string g = SubmitId(Gang(3, v1::GangSpec::site));
  // Room for two members in each site, none for three in one.
  core->Tick();
  EXPECT_EQ(Placed(g), 0);
  EXPECT_TRUE(lg1->Assigns().empty());
  EXPECT_TRUE(sg1->Assigns().empty());
  const std::string reason =
      "waiting: gang of 3 (colocate: site): at most 2 of 3 members fit in one site "
      "(lingang-idc-1)";
  EXPECT_EQ(Get(g).state(), v1::Job::queued);
  EXPECT_EQ(Get(g).reason(), reason);
  EXPECT_EQ(Get(Member(g, 2)).reason(), reason);
  EXPECT_EQ(core->Explain(g)->reason(), reason);
  // Room appears in Lingang: all three are placed there in one pass.
  auto lg2 = Register("lg2", 4);
  core->Tick();
  EXPECT_EQ(Placed(g), 3);
  EXPECT_EQ(lg1->Assigns().size() + lg2->Assigns().size(), 3u);
  EXPECT_TRUE(sg1->Assigns().empty());
  for (const v1::Job& m : Members(g)) {
    EXPECT_EQ(m.allocation().site(), "lingang-idc-1");
    EXPECT_EQ(m.gang_members_size(), 3);
    EXPECT_EQ(m.gang_members(0), "127.0.0.1");
  }
  EXPECT_EQ(Get(g).state(), v1::Job::running);  // an array job is running while tasks are placed
}

// plan of a gang decides the whole gang, as a pass would, and places nothing.
TEST_F(GangTest, PlanOfAGangSaysWhereEveryMemberWouldGoOrWhyItWouldWait) {
  auto lg1 = Register("lg1", 4);
  auto sg1 = Register("sg1", 4, {}, "singapore-1");
  auto plan = core->Plan(Gang(3, v1::GangSpec::site));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_FALSE(plan->feasible());
  EXPECT_EQ(plan->reason(),
            "waiting: gang of 3 (colocate: site): at most 2 of 3 members fit in one site "
            "(lingang-idc-1)");
  EXPECT_EQ(plan->gang_members_size(), 0);

  plan = core->Plan(Gang(3, v1::GangSpec::any));
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_TRUE(plan->feasible()) << plan->reason();
  ASSERT_EQ(plan->gang_members_size(), 3);
  std::map<std::string, int> per_agent;
  for (const auto& m : plan->gang_members()) {
    EXPECT_EQ(m.cpus_size(), 2) << m.agent();
    ++per_agent[m.agent()];
  }
  EXPECT_EQ(per_agent, (std::map<std::string, int>{{"lg1", 2}, {"sg1", 1}}));
  EXPECT_EQ(plan->placement().agent(), plan->gang_members(0).agent());
  // The members' PUs on one agent are distinct: held while planning.
  std::set<uint32_t> lg1_pus;
  for (const auto& m : plan->gang_members()) {
    if (m.agent() == "lg1") lg1_pus.insert(m.cpus().begin(), m.cpus().end());
  }
  EXPECT_EQ(lg1_pus.size(), 4u);
  // Nothing was placed or held: a gang of 4 on 8 free PUs still fits.
  EXPECT_TRUE(lg1->Assigns().empty());
  plan = core->Plan(Gang(4, v1::GangSpec::any));
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->feasible()) << plan->reason();
  EXPECT_EQ(plan->gang_members_size(), 4);
}

TEST_F(GangTest, MembersAtDifferentSitesStayWithinMaxRtt) {
  Register("lg1", 4);
  Register("sg1", 4, {}, "singapore-1");
  // Lingang and Singapore are 65 ms apart: too far for 10 ms.
  const std::string near = SubmitId(Gang(3, v1::GangSpec::any, 10));
  core->Tick();
  EXPECT_EQ(Placed(near), 0);
  EXPECT_TRUE(absl::StrContains(Get(near).reason(),
                                "at most 2 of 3 members fit within 10 ms RTT of each other"))
      << Get(near).reason();
  ASSERT_TRUE(core->Cancel(near).ok());
  const std::string far = SubmitId(Gang(3, v1::GangSpec::any, 100));
  core->Tick();
  ASSERT_EQ(Placed(far), 3) << Get(far).reason();
  std::set<std::string> sites;
  for (const v1::Job& m : Members(far)) sites.insert(m.allocation().site());
  EXPECT_EQ(sites.size(), 2u);
}

TEST_F(GangTest, AFailedMemberStopsTheOthersAndTheGangRestartsWhole) {
  auto link = Register("lg1", 8);
  v1::Job spec = Gang(2, v1::GangSpec::site);
  spec.mutable_restart()->set_policy(v1::RestartPolicy::on_failure);
  spec.mutable_restart()->set_max_attempts(2);
  const std::string g = SubmitId(spec);
  const std::string m0 = Member(g, 0), m1 = Member(g, 1);
  ASSERT_EQ(Placed(g), 2) << Get(g).reason();
  Update("lg1", link.get(), m0, v1::Job::running);
  Update("lg1", link.get(), m1, v1::Job::running);
  // Member 0 fails: member 1 is stopped; both wait to restart together.
  Update("lg1", link.get(), m0, v1::Job::failed, 1, 3);
  ASSERT_EQ(link->Cancels().size(), 1u);
  EXPECT_EQ(link->Cancels()[0].cancel().job_id(), m1);
  EXPECT_EQ(Get(m0).state(), v1::Job::queued);
  clock.Advance(absl::Seconds(5));
  core->Tick();
  EXPECT_EQ(Get(m0).state(), v1::Job::queued) << "placed without member 1";
  EXPECT_TRUE(absl::StrContains(Get(m0).reason(), "waiting for gang members to stop: " + m1));
  // Once it has stopped (its backoff has passed too), both are placed again.
  Update("lg1", link.get(), m1, v1::Job::cancelled);
  core->Tick();
  ASSERT_EQ(Placed(g), 2);
  const v1::Job requeued = Get(m1);
  bool restarts = false;
  for (const auto& ev : requeued.events()) {
    restarts |= ev.state() == v1::Job::queued &&
                absl::StrContains(ev.message(), "stopped: gang member " + m0 + " failed") &&
                absl::StrContains(ev.message(), "the gang restarts");
  }
  EXPECT_TRUE(restarts) << requeued.DebugString();
  EXPECT_EQ(Get(m0).attempt(), 2u);
  EXPECT_EQ(Get(m1).attempt(), 2u);
  // Its last attempt: a failed member fails the whole gang.
  Update("lg1", link.get(), m0, v1::Job::running, 2);
  Update("lg1", link.get(), m1, v1::Job::running, 2);
  Update("lg1", link.get(), m1, v1::Job::failed, 2, 1);
  Update("lg1", link.get(), m0, v1::Job::cancelled, 2);
  EXPECT_EQ(Get(m1).state(), v1::Job::failed);
  EXPECT_EQ(Get(m0).state(), v1::Job::failed);
  EXPECT_TRUE(absl::StrContains(Get(m0).reason(), "stopped: gang member " + m1 + " failed"))
      << Get(m0).reason();
  EXPECT_EQ(Get(g).state(), v1::Job::failed);
}

TEST_F(GangTest, AGangWhoseDependencyFailsEndsWhole) {
  auto link = Register("lg1", 8);
  const std::string dep = SubmitId(Spec(8));
  v1::Job spec = Gang(2, v1::GangSpec::site);
  spec.add_depends_on()->set_job(dep);
  const std::string g = SubmitId(spec);
  EXPECT_EQ(Placed(g), 0);
  Update("lg1", link.get(), dep, v1::Job::running);
  Update("lg1", link.get(), dep, v1::Job::failed, 1, 2);
  core->Tick();
  for (const v1::Job& m : Members(g)) EXPECT_EQ(m.state(), v1::Job::unschedulable) << m.id();
  EXPECT_EQ(Get(g).state(), v1::Job::failed) << Get(g).reason();
}

TEST_F(GangTest, BadGangsAreRefusedNamingTheField) {
  Register("lg1", 8);
  struct Case {
    std::function<void(v1::Job&)> edit;
    std::string field;
  } cases[] = {
      {[](v1::Job& j) { j.mutable_gang()->set_tasks(1); }, "gang.tasks"},
      {[](v1::Job& j) { j.mutable_gang()->set_tasks(kMaxGangTasks + 1); }, "gang.tasks"},
      {[](v1::Job& j) { j.mutable_gang()->set_max_rtt_ms(-1); }, "gang.max_rtt_ms"},
      {[](v1::Job& j) { j.mutable_array()->set_count(4); }, "gang"},
      {[](v1::Job& j) { j.add_gang_members("x"); }, "array_job"},
  };
  for (const Case& c : cases) {
    v1::Job j = Gang(2, v1::GangSpec::any);
    c.edit(j);
    auto r = core->Submit(j);
    ASSERT_FALSE(r.ok()) << c.field;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(codec::StatusField(r.status()), c.field) << r.status();
  }
  // A member alone cannot be cancelled; cancelling the gang stops every member.
  const std::string g = SubmitId(Gang(2, v1::GangSpec::any));
  ASSERT_EQ(Placed(g), 2);
  auto one = core->Cancel(Member(g, 1));
  EXPECT_EQ(one.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(one.status().message(), "cancel " + g)) << one.status();
  ASSERT_TRUE(core->Cancel(g).ok());
  for (const v1::Job& m : Members(g)) EXPECT_TRUE(m.cancel_requested()) << m.id();
}

// Members are placed one after another on tentative commits; each decision
// sees the members before it down to the NUMA node. Two agents of two
// 8-PU nodes, three members of 5 PUs in one node each: the third cannot go
// where the first two went (6 PUs left there, 3 a node) and goes to the
// other agent.
TEST_F(GangTest, EachMemberSeesTheNodesTheMembersBeforeItTook) {
  ApplyPolicyWithTopologyPlugins();
  auto lg1 = Register("lg1", 16, {}, "lingang-idc-1", 2);
  auto lg2 = Register("lg2", 16, {}, "lingang-idc-1", 2);
  v1::Job gang = Gang(3, v1::GangSpec::site);
  gang.mutable_resources()->set_cpus(5);
  gang.mutable_topology()->set_numa(v1::TopologyRequest::single);
  const std::string g = SubmitId(gang);
  core->Tick();
  EXPECT_EQ(Placed(g), 3) << Get(g).reason();
  std::map<std::string, std::set<uint32_t>> nodes;  // agent -> NUMA nodes its members hold
  for (const v1::Job& m : Members(g)) {
    ASSERT_EQ(m.allocation().numa_nodes_size(), 1) << m.id();
    EXPECT_TRUE(nodes[m.allocation().agent()].insert(m.allocation().numa_nodes(0)).second)
        << m.id() << " shares a node with another member";
  }
  EXPECT_EQ(nodes.size(), 2u);
}

}  // namespace
}  // namespace portolan::scheduler
