// SPDX-License-Identifier: Apache-2.0
#include "portolan/scheduler/core.h"

#include <cmath>
#include <limits>

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>

#include "../../support/prometheus_text.h"
#include "core_fixture.h"
#include "portolan/codec/codec.h"
#include "portolan/scheduler/metrics.h"

namespace portolan::scheduler {
namespace {

TEST_F(CoreTest, JobWaitsWithReasonUntilAnAgentFits) {
  Register("small", 8);
  auto first = core->Submit(Spec(6));
  EXPECT_EQ(first->first.state(), v1::Job::placed);
  auto job = core->Submit(Spec(4));
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->first.state(), v1::Job::queued);
  EXPECT_NE(job->first.reason().find("0/1 agents at 2 allowed site(s): 1 insufficient_cpus"),
            std::string::npos)
      << job->first.reason();
  auto explain = core->Explain(job->first.id());
  ASSERT_TRUE(explain.ok());
  EXPECT_EQ(explain->agents().rejected().at("insufficient_cpus"), 1u);
  auto big = Register("big", 8);
  ASSERT_EQ(big->Assigns().size(), 1u);
  EXPECT_EQ(big->Assigns()[0].assign().job().id(), job->first.id());
  EXPECT_EQ(core->GetJob(job->first.id())->state(), v1::Job::placed);
}

TEST_F(CoreTest, JobNoAgentCouldEverRunIsUnschedulable) {
  Register("small", 2);
  auto job = core->Submit(Spec(4));
  EXPECT_EQ(job->first.state(), v1::Job::unschedulable);
  EXPECT_NE(
      job->first.reason().find("could ever run it (small: the machine has 2 PUs, the job needs 4)"),
      std::string::npos)
      << job->first.reason();
}

TEST_F(CoreTest, FullLifecycleAndResourcesReturn) {
  auto link = Register("a1", 4);
  auto j1 = core->Submit(Spec(4));
  auto j2 = core->Submit(Spec(4));
  const std::string id1 = j1->first.id(), id2 = j2->first.id();
  EXPECT_EQ(core->GetJob(id1)->state(), v1::Job::placed);
  EXPECT_EQ(core->GetJob(id2)->state(), v1::Job::queued);
  Update("a1", link.get(), id1, v1::Job::running);
  EXPECT_EQ(core->GetJob(id1)->state(), v1::Job::running);
  Update("a1", link.get(), id1, v1::Job::succeeded);
  auto done = core->GetJob(id1);
  EXPECT_EQ(done->state(), v1::Job::succeeded);
  ASSERT_EQ(done->events_size(), 4);  // queued, placed, running, succeeded
  EXPECT_TRUE(done->has_finished_at());
  // Capacity came back, so the second job is placed.
  EXPECT_EQ(core->GetJob(id2)->state(), v1::Job::placed);
  // Every JobUpdate was acknowledged with its seq.
  EXPECT_EQ(link->Find([](const auto& e) { return e.has_ack(); }).size(), 2u);
}

TEST_F(CoreTest, UnacknowledgedAssignIsResentUntilAcked) {
  auto link = Register("a1");
  auto job = core->Submit(Spec());
  ASSERT_EQ(link->Assigns().size(), 1u);
  const uint64_t seq = link->Assigns()[0].seq();
  EXPECT_NE(seq, 0u);
  clock.Advance(absl::Seconds(3));
  core->Tick();
  ASSERT_EQ(link->Assigns().size(), 2u);
  EXPECT_EQ(link->Assigns()[1].seq(), seq);  // same message, same seq
  Ack("a1", link.get(), seq);
  clock.Advance(absl::Seconds(3));
  core->Tick();
  EXPECT_EQ(link->Assigns().size(), 2u);
}

TEST_F(CoreTest, SilentAgentIsAskedToStopItsJobsAndLostOnlyAfterAnotherTtl) {
  auto link = Register("a1");
  auto job = core->Submit(Spec());
  Update("a1", link.get(), job->first.id(), v1::Job::running);
  clock.Advance(absl::Seconds(10));
  core->Tick();
  EXPECT_EQ(core->GetAgent("a1")->state(), v1::Agent::ready);
  EXPECT_TRUE(link->Cancels().empty());
  // Past the TTL, still connected: it may still run the job. Kill-and-confirm.
  clock.Advance(absl::Seconds(6));
  core->Tick();
  EXPECT_EQ(core->GetAgent("a1")->state(), v1::Agent::ready);
  ASSERT_EQ(link->Cancels().size(), 1u);
  EXPECT_EQ(link->Cancels()[0].cancel().attempt(), 1u);
  auto asked = core->GetJob(job->first.id());
  EXPECT_EQ(asked->state(), v1::Job::running) << "nothing restarts before it confirms";
  EXPECT_NE(asked->events().rbegin()->message().find("asked it to stop attempt 1"),
            std::string::npos)
      << asked->events().rbegin()->message();
  EXPECT_TRUE(link->closed.empty());
  // No confirmation within another TTL: lost, and the attempt's fate unknown.
  clock.Advance(absl::Seconds(16));
  core->Tick();
  EXPECT_EQ(core->GetAgent("a1")->state(), v1::Agent::lost);
  auto lost = core->GetJob(job->first.id());
  EXPECT_EQ(lost->state(), v1::Job::lost);
  EXPECT_NE(lost->reason().find("no heartbeat"), std::string::npos) << lost->reason();
  EXPECT_NE(lost->reason().find("did not confirm"), std::string::npos) << lost->reason();
  ASSERT_EQ(lost->attempts_size(), 1);
  EXPECT_TRUE(lost->attempts(0).fate_unknown());
  EXPECT_FALSE(link->closed.empty());
}

TEST_F(CoreTest, SilentAgentThatConfirmsTheStopGetsTheJobRestartedAtOnce) {
  auto link = Register("a1", 4);
  v1::Job spec = Spec(2);
  spec.mutable_restart()->set_policy(v1::RestartPolicy::on_agent_loss);
  auto job = core->Submit(spec);
  Update("a1", link.get(), job->first.id(), v1::Job::running);
  clock.Advance(absl::Seconds(16));
  core->Tick();
  ASSERT_EQ(link->Cancels().size(), 1u);
  // The agent wakes up, stops the attempt as asked and says so.
  Update("a1", link.get(), job->first.id(), v1::Job::cancelled, 1, 143);
  auto j = core->GetJob(job->first.id());
  EXPECT_EQ(j->state(), v1::Job::queued) << j->reason();
  ASSERT_EQ(j->attempts_size(), 1);
  EXPECT_EQ(j->attempts(0).outcome(), v1::Job::lost);
  EXPECT_FALSE(j->attempts(0).fate_unknown());
  EXPECT_NE(j->attempts(0).reason().find("confirmed stopped there"), std::string::npos)
      << j->attempts(0).reason();
  EXPECT_EQ(core->GetAgent("a1")->state(), v1::Agent::ready);
}

TEST_F(CoreTest, AnAgentBackFromLostConfirmsHowTheAttemptOfUnknownFateEnded) {
  auto link = Register("a1");
  v1::Job spec = Spec(2);
  spec.mutable_restart()->set_policy(v1::RestartPolicy::never);
  auto job = core->Submit(spec);
  Update("a1", link.get(), job->first.id(), v1::Job::running);
  core->OnDisconnect("a1", link.get());
  clock.Advance(absl::Seconds(16));
  core->Tick();
  auto lost = core->GetJob(job->first.id());
  ASSERT_EQ(lost->state(), v1::Job::lost);
  EXPECT_TRUE(lost->attempts(0).fate_unknown());
  EXPECT_NE(lost->reason().find("may still be running there"), std::string::npos) << lost->reason();
  // It comes back still running the attempt: told to stop it, and its word
  // on how it ended is recorded on the attempt.
  v1::AgentJobStatus still;
  still.set_job_id(job->first.id());
  still.set_attempt(1);
  still.set_state(v1::Job::running);
  auto back = Register("a1", 8, {still});
  ASSERT_EQ(back->Cancels().size(), 1u);
  Update("a1", back.get(), job->first.id(), v1::Job::cancelled, 1, 143);
  auto j = core->GetJob(job->first.id());
  EXPECT_EQ(j->state(), v1::Job::lost);
  EXPECT_FALSE(j->attempts(0).fate_unknown());
  EXPECT_NE(j->attempts(0).reason().find("confirmed attempt 1 ended there: cancelled"),
            std::string::npos)
      << j->attempts(0).reason();
}

TEST_F(CoreTest, AnAttemptTheAgentReportsLostFollowsTheRestartPolicy) {
  auto link = Register("a1");
  v1::Job spec = Spec(2);
  spec.mutable_restart()->set_policy(v1::RestartPolicy::on_agent_loss);
  auto job = core->Submit(spec);
  Update("a1", link.get(), job->first.id(), v1::Job::running);
  Update("a1", link.get(), job->first.id(), v1::Job::lost);
  auto j = core->GetJob(job->first.id());
  EXPECT_EQ(j->state(), v1::Job::queued) << j->reason();
  EXPECT_EQ(j->attempts(0).outcome(), v1::Job::lost);
}

TEST_F(CoreTest, CancelQueuedIsImmediateRunningGoesThroughAgent) {
  auto queued = core->Submit(Spec());
  auto c = core->Cancel(queued->first.id());
  EXPECT_EQ(c->state(), v1::Job::cancelled);
  EXPECT_EQ(core->Cancel(queued->first.id()).status().code(),
            absl::StatusCode::kFailedPrecondition);

  auto link = Register("a1");
  auto job = core->Submit(Spec());
  Update("a1", link.get(), job->first.id(), v1::Job::running);
  auto r = core->Cancel(job->first.id());
  EXPECT_EQ(r->state(), v1::Job::running);
  EXPECT_TRUE(r->cancel_requested());
  ASSERT_EQ(link->Cancels().size(), 1u);
  EXPECT_EQ(link->Cancels()[0].cancel().job_id(), job->first.id());
  // The process died of SIGTERM: reported failed, recorded as cancelled.
  Update("a1", link.get(), job->first.id(), v1::Job::failed, 1, 143);
  EXPECT_EQ(core->GetJob(job->first.id())->state(), v1::Job::cancelled);
}

TEST_F(CoreTest, ReRegistrationReconcilesJobs) {
  auto link = Register("a1");
  auto kept = core->Submit(Spec(1));
  auto forgotten = core->Submit(Spec(1));
  for (const auto& e : link->Assigns()) Ack("a1", link.get(), e.seq());
  Update("a1", link.get(), kept->first.id(), v1::Job::running);
  Update("a1", link.get(), forgotten->first.id(), v1::Job::running);
  core->OnDisconnect("a1", link.get());
  v1::AgentJobStatus still;
  still.set_job_id(kept->first.id());
  still.set_attempt(1);
  still.set_state(v1::Job::running);
  v1::AgentJobStatus stranger;
  stranger.set_job_id("job-unknown");
  stranger.set_attempt(1);
  stranger.set_state(v1::Job::running);
  auto link2 = Register("a1", 8, {still, stranger});
  EXPECT_EQ(core->GetJob(kept->first.id())->state(), v1::Job::running);
  EXPECT_EQ(core->GetJob(forgotten->first.id())->state(), v1::Job::lost);
  ASSERT_EQ(link2->Cancels().size(), 1u);
  EXPECT_EQ(link2->Cancels()[0].cancel().job_id(), "job-unknown");
  EXPECT_TRUE(link2->sent[0].has_register_ack());  // the ack goes first
}

TEST_F(CoreTest, StoreFailureRefusesSubmitAndKeepsNothing) {
  store.FailWritesWith(absl::UnavailableError("disk full"));
  auto r = core->Submit(Spec());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  store.FailWritesWith(absl::OkStatus());
  EXPECT_EQ(core->ListJobs({})->jobs_size(), 0);
}

TEST_F(CoreTest, IdempotencyKeyReturnsTheSameJob) {
  v1::Job s = Spec();
  s.set_idempotency_key("k1");
  auto a = core->Submit(s);
  auto b = core->Submit(s);
  EXPECT_TRUE(a->second);
  EXPECT_FALSE(b->second);
  EXPECT_EQ(a->first.id(), b->first.id());
  s.set_tenant("other");
  EXPECT_NE(core->Submit(s)->first.id(), a->first.id());
}

TEST_F(CoreTest, TheSameIdempotencyKeyOnADifferentJobIsAConflict) {
  v1::Job s = Spec();
  s.set_idempotency_key("k1");
  auto a = core->Submit(s);
  ASSERT_TRUE(a.ok());
  v1::Job other = s;
  other.set_name("something-else");
  other.mutable_resources()->set_cpus(4);
  auto b = core->Submit(other);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(codec::StatusErrorCode(b.status()), "idempotency_conflict");
  EXPECT_EQ(codec::StatusField(b.status()), "idempotency_key");
  EXPECT_NE(b.status().message().find(a->first.id()), std::string::npos) << b.status();
  EXPECT_NE(b.status().message().find("name"), std::string::npos) << b.status();
  // The defaults the first submit filled in are not a difference.
  EXPECT_TRUE(core->Submit(s).ok());
}

TEST_F(CoreTest, ContractLimitsNameTheField) {
  struct Case {
    std::function<void(v1::Job&)> change;
    std::string field;
  };
  const std::vector<Case> cases = {
      {[](v1::Job& j) { (*j.mutable_env())["PORTOLAN_JOB_ID"] = "x"; }, "env.PORTOLAN_JOB_ID"},
      {[](v1::Job& j) { (*j.mutable_env())["BIG"] = std::string(70000, 'x'); }, "env"},
      {[](v1::Job& j) {
         for (int i = 0; i < 65; ++i) j.add_datasets()->set_id("d" + std::to_string(i));
       },
       "datasets"},
      {[](v1::Job& j) {
         j.add_datasets()->set_id("d");
         j.add_datasets()->set_id("d");
       },
       "datasets[1].id"},
      {[](v1::Job& j) { j.add_datasets()->set_id("a\nb"); }, "datasets[0].id"},
      {[](v1::Job& j) {
         auto* d = j.add_datasets();
         d->set_id("d");
         d->set_size_gb(1e308);
       },
       "datasets[0].size_gb"},
      {[](v1::Job& j) {
         auto* d = j.add_datasets();
         d->set_id("d");
         d->set_size_gb(std::nan(""));
       },
       "datasets[0].size_gb"},
      {[](v1::Job& j) {
         for (int i = 0; i < 65; ++i) j.mutable_placement()->add_sites("s" + std::to_string(i));
       },
       "placement.sites"},
      {[](v1::Job& j) { j.mutable_placement()->add_avoid_sites("bad site"); },
       "placement.avoid_sites[0]"},
      {[](v1::Job& j) { (*j.mutable_placement()->mutable_max_rtt_ms())["singapore-1"] = 0; },
       "placement.max_rtt_ms.singapore-1"},
      {[](v1::Job& j) { (*j.mutable_placement()->mutable_agent_labels())["k"] = "a\x1b[2J"; },
       "placement.agent_labels.k"},
      {[](v1::Job& j) { j.set_idempotency_key("a\r\nb"); }, "idempotency_key"},
      {[](v1::Job& j) { j.set_command(0, std::string(200 * 1024, 'x')); }, "command[0]"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].field);
    v1::Job j = Spec();
    cases[i].change(j);
    auto r = core->Submit(j);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(codec::StatusField(r.status()), cases[i].field) << r.status();
  }
}

TEST_F(CoreTest, UnplaceableJobsOfOneTenantNeverHoldUpAnother) {
  auto l = Register("a1", 4);
  v1::Job filler = Spec(4);
  filler.set_tenant("filler");
  const std::string filler_id = core->Submit(filler)->first.id();
  ASSERT_EQ(core->GetJob(filler_id)->state(), v1::Job::placed);
  v1::Job small = Spec(1);
  small.set_tenant("other");
  const std::string small_id = core->Submit(small)->first.id();
  EXPECT_EQ(core->GetJob(small_id)->state(), v1::Job::queued);
  // 10,000 jobs at the top priority that no agent can take (pinned to a site
  // with none), in 5,000 distinct shapes so no two share a decision.
  for (int i = 0; i < 10000; ++i) {
    v1::Job hog = Spec(1);
    hog.set_tenant("hog");
    hog.set_priority(1000);
    hog.mutable_resources()->set_memory_mb(1 + i % 5000);
    hog.mutable_placement()->add_sites("singapore-1");
    ASSERT_TRUE(core->Submit(hog).ok());
  }
  const auto started = std::chrono::steady_clock::now();
  Update("a1", l.get(), filler_id, v1::Job::succeeded);  // capacity frees: a full pass
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  EXPECT_EQ(core->GetJob(small_id)->state(), v1::Job::placed) << core->GetJob(small_id)->reason();
  std::printf("full pass over 10,000 unplaceable jobs of one tenant placed another's in %.1f ms\n",
              ms);
  auto hogs = core->ListJobs(JobFilter{.state = "queued", .tenant = "hog", .page_size = 5});
  ASSERT_TRUE(hogs.ok());
  ASSERT_EQ(hogs->jobs_size(), 5);
  EXPECT_FALSE(hogs->jobs(0).reason().empty());
}

TEST_F(CoreTest, ValidationNamesTheField) {
  v1::Job j = Spec();
  j.clear_command();
  EXPECT_EQ(codec::StatusField(core->Submit(j).status()), "command");
  j = Spec(0);
  EXPECT_EQ(codec::StatusField(core->Submit(j).status()), "resources.cpus");
  j = Spec();
  j.mutable_resources()->set_memory_mb(-5);
  EXPECT_EQ(codec::StatusField(core->Submit(j).status()), "resources.memory_mb");
  j = Spec();
  j.set_state(v1::Job::running);
  EXPECT_EQ(codec::StatusField(core->Submit(j).status()), "state");
  j = Spec();
  (*j.mutable_env())["A=B"] = "x";
  EXPECT_EQ(codec::StatusField(core->Submit(j).status()), "env.A=B");
}

TEST_F(CoreTest, ListFiltersAndPaginatesNewestFirst) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    clock.Advance(absl::Seconds(1));
    ids.push_back(core->Submit(Spec())->first.id());
  }
  JobFilter f;
  f.page_size = 2;
  auto p1 = core->ListJobs(f);
  ASSERT_EQ(p1->jobs_size(), 2);
  EXPECT_EQ(p1->jobs(0).id(), ids[4]);
  f.page_token = p1->next_page_token();
  auto p2 = core->ListJobs(f);
  EXPECT_EQ(p2->jobs(0).id(), ids[2]);
  f.page_token = p2->next_page_token();
  auto p3 = core->ListJobs(f);
  ASSERT_EQ(p3->jobs_size(), 1);
  EXPECT_TRUE(p3->next_page_token().empty());
  core->Cancel(ids[0]).IgnoreError();
  JobFilter by_state;
  by_state.state = "cancelled";
  EXPECT_EQ(core->ListJobs(by_state)->jobs_size(), 1);
  by_state.state = "nonsense";
  EXPECT_EQ(codec::StatusField(core->ListJobs(by_state).status()), "state");
}

TEST_F(CoreTest, RefusesAgentWithoutProcessingUnits) {
  auto link = std::make_shared<FakeLink>();
  v1::Register reg;
  reg.set_agent_id("bad");
  reg.set_site("x");
  EXPECT_FALSE(core->OnRegister(reg, link, "peer"));
  ASSERT_EQ(link->sent.size(), 1u);
  EXPECT_FALSE(link->sent[0].register_ack().accepted());
  EXPECT_NE(link->sent[0].register_ack().reason().find("processing units"), std::string::npos);
}

TEST_F(CoreTest, RefusesImplausibleOrInconsistentTopologies) {
  auto try_register = [&](auto mutate) {
    auto link = std::make_shared<FakeLink>();
    v1::Register reg;
    reg.set_agent_id("odd");
    reg.set_site("lingang-idc-1");
    v1::Topology* t = reg.mutable_topology();
    t->set_pus(2);
    t->set_memory_mb(1024);
    t->add_cores()->add_pus(0);
    t->mutable_cores(0)->add_pus(1);
    mutate(*t);
    EXPECT_FALSE(core->OnRegister(reg, link, "peer"));
    return link->sent.empty() ? std::string() : link->sent[0].register_ack().reason();
  };
  EXPECT_NE(try_register([](v1::Topology& t) { t.set_memory_mb(100u << 20); }).find("implausible"),
            std::string::npos);
  EXPECT_NE(try_register([](v1::Topology& t) { t.set_pus(64); }).find("inconsistent"),
            std::string::npos);
  // A PU OS index of 4 billion would size the scheduler's per-PU tables.
  EXPECT_NE(try_register([](v1::Topology& t) {
              t.mutable_cores(0)->set_pus(1, 4000000000u);
            }).find("above the highest supported OS index 65534"),
            std::string::npos);
  EXPECT_EQ(core->GetAgent("odd").status().code(), absl::StatusCode::kNotFound);
}

// An ended job's record leaves memory at the next Tick once stored; every
// read path then gets it from the store, and a restart loads only its summary.
TEST_F(CoreTest, EndedJobsAreReadFromTheStoreOnceDropped) {
  auto link = Register("a1", 4);
  v1::Job spec = Spec(4);
  spec.set_tenant("acme");
  spec.set_idempotency_key("once");
  const std::string done = core->Submit(spec)->first.id();
  clock.Advance(absl::Seconds(1));  // listed newest first
  const std::string waiting = core->Submit(Spec(4))->first.id();
  Update("a1", link.get(), done, v1::Job::running);
  Update("a1", link.get(), done, v1::Job::succeeded);
  ASSERT_EQ(core->GetJob(waiting)->state(), v1::Job::placed);
  EXPECT_EQ(core->GetJob(done)->state(), v1::Job::succeeded);
  EXPECT_EQ(store.job_reads(), 0u) << "held until the next Tick";
  core->Tick();

  auto job = core->GetJob(done);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(store.job_reads(), 1u);
  EXPECT_EQ(job->state(), v1::Job::succeeded);
  EXPECT_EQ(job->events_size(), 4);
  EXPECT_TRUE(job->has_finished_at());
  EXPECT_EQ(core->GetJob(waiting)->state(), v1::Job::placed);
  EXPECT_EQ(store.job_reads(), 1u) << "a job still running is read from memory";

  auto list = core->ListJobs({});
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->jobs_size(), 2);
  EXPECT_EQ(list->jobs(0).id(), waiting);
  EXPECT_EQ(list->jobs(1).id(), done);
  EXPECT_EQ(list->jobs(1).events_size(), 4);
  auto succeeded = core->ListJobs({.state = "succeeded"});
  ASSERT_EQ(succeeded->jobs_size(), 1);
  EXPECT_EQ(succeeded->jobs(0).id(), done);
  auto page = core->ListJobs({.page_size = 1});
  ASSERT_EQ(page->jobs_size(), 1);
  auto next = core->ListJobs({.page_size = 1, .page_token = page->next_page_token()});
  ASSERT_EQ(next->jobs_size(), 1);
  EXPECT_EQ(next->jobs(0).id(), done);

  auto again = core->Submit(spec);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->second);
  EXPECT_EQ(again->first.id(), done);
  EXPECT_EQ(again->first.state(), v1::Job::succeeded);
  auto cancel = core->Cancel(done);
  EXPECT_EQ(cancel.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(cancel.status().message().find("already ended (succeeded)"), std::string::npos);
  // A late duplicate of the final report is acknowledged and changes nothing.
  const size_t writes = store.job_writes();
  Update("a1", link.get(), done, v1::Job::failed);
  EXPECT_EQ(store.job_writes(), writes);
  EXPECT_EQ(core->GetJob(done)->state(), v1::Job::succeeded);

  Core restarted(opts, &store, &clock, &registry);
  ASSERT_TRUE(restarted.Recover().ok());
  EXPECT_EQ(restarted.GetJob(done)->events_size(), 4);
  EXPECT_EQ(restarted.ListJobs({.state = "succeeded"})->jobs(0).id(), done);
  auto after = restarted.Submit(spec);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_FALSE(after->second) << "the idempotency key of an ended job survives a restart";
  EXPECT_EQ(after->first.id(), done);
}

// If the final state could not be stored, memory is the only current copy
// of the job, so its record stays held.
TEST_F(CoreTest, AnEndedJobWhoseFinalWriteFailedStaysInMemory) {
  auto link = Register("a1", 4);
  const std::string id = core->Submit(Spec(4))->first.id();
  Update("a1", link.get(), id, v1::Job::running);
  store.FailWritesWith(absl::UnavailableError("disk full"));
  Update("a1", link.get(), id, v1::Job::succeeded);
  core->Tick();
  auto job = core->GetJob(id);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state(), v1::Job::succeeded);
  EXPECT_EQ(store.job_reads(), 0u);
}

// portolan_jobs is kept as jobs change (a scrape walks no jobs): it must
// match the jobs themselves through placement, ending, dropping and a
// restart; the oldest waiting job is found across priorities.
TEST_F(CoreTest, JobGaugesFollowEveryChangeAndARestart) {
  auto scrape = [](metrics::Registry& r) {
    auto ex = test_support::ParsePrometheusText(r.Render());
    EXPECT_TRUE(ex.ok()) << ex.error;
    return ex;
  };
  metrics::Registry registry1;
  SchedulerMetrics m1(registry1);
  core->AttachMetrics(&m1);
  auto link = Register("a1", 4);
  auto submit = [&](const std::string& tenant, int cpus, int priority) {
    v1::Job j = Spec(cpus);
    j.set_tenant(tenant);
    j.set_priority(priority);
    auto r = core->Submit(j);
    EXPECT_TRUE(r.ok()) << r.status();
    clock.Advance(absl::Seconds(10));
    return r->first.id();
  };
  const std::string run = submit("acme", 4, 0);     // placed (the agent is full)
  const std::string old = submit("acme", 4, 0);     // queued, t = 10 s
  const std::string urgent = submit("beta", 4, 5);  // queued first, t = 20 s
  v1::Job never = Spec(64);
  never.set_tenant("beta");
  ASSERT_TRUE(core->Submit(never).ok());  // unschedulable
  auto ex = scrape(registry1);
  EXPECT_EQ(ex.Value("portolan_jobs", {{"state", "placed"}, {"tenant", "acme"}}), 1);
  EXPECT_EQ(ex.Value("portolan_jobs", {{"state", "queued"}, {"tenant", "acme"}}), 1);
  EXPECT_EQ(ex.Value("portolan_jobs", {{"state", "queued"}, {"tenant", "beta"}}), 1);
  EXPECT_EQ(ex.Value("portolan_jobs", {{"state", "unschedulable"}, {"tenant", "beta"}}), 1);
  EXPECT_EQ(ex.Value("portolan_queue_depth"), 2);
  // Now 30 s; the older of the two waiting jobs was submitted at 10 s.
  EXPECT_EQ(ex.Value("portolan_oldest_waiting_job_age_seconds"), 20);

  Update("a1", link.get(), run, v1::Job::running);
  Update("a1", link.get(), run, v1::Job::succeeded);  // `urgent` is placed next
  core->Tick();                                       // and `run` dropped
  ASSERT_TRUE(core->Cancel(old).ok());
  ex = scrape(registry1);
  EXPECT_EQ(ex.Value("portolan_jobs", {{"state", "succeeded"}, {"tenant", "acme"}}), 1);
  EXPECT_EQ(ex.Value("portolan_jobs", {{"state", "cancelled"}, {"tenant", "acme"}}), 1);
  EXPECT_EQ(ex.Value("portolan_jobs", {{"state", "placed"}, {"tenant", "beta"}}), 1);
  EXPECT_TRUE(std::isnan(ex.Value("portolan_jobs", {{"state", "placed"}, {"tenant", "acme"}})))
      << "a state with no jobs left is not reported";
  EXPECT_TRUE(std::isnan(ex.Value("portolan_jobs", {{"state", "queued"}, {"tenant", "acme"}})));
  EXPECT_EQ(ex.Value("portolan_queue_depth"), 0);
  EXPECT_EQ(ex.Value("portolan_oldest_waiting_job_age_seconds"), 0);
  EXPECT_EQ(core->GetJob(urgent)->state(), v1::Job::placed);

  Core restarted(opts, &store, &clock, &registry);
  ASSERT_TRUE(restarted.Recover().ok());
  metrics::Registry registry2;
  SchedulerMetrics m2(registry2);
  restarted.AttachMetrics(&m2);
  auto after = scrape(registry2);
  for (const char* state : {"succeeded", "cancelled", "placed", "unschedulable"}) {
    EXPECT_EQ(after.Sum("portolan_jobs", {{"state", state}}),
              ex.Sum("portolan_jobs", {{"state", state}}))
        << state;
  }
  EXPECT_EQ(after.Sum("portolan_jobs"), 4);
}

TEST_F(CoreTest, RecoverRestoresJobsAndAccounting) {
  auto link = Register("a1", 4);
  auto running = core->Submit(Spec(4));
  Update("a1", link.get(), running->first.id(), v1::Job::running);
  auto waiting = core->Submit(Spec(4));
  Core restarted(opts, &store, &clock, &registry);
  {
    absl::Status st = restarted.Recover();
    ASSERT_TRUE(st.ok()) << st;
  }
  EXPECT_TRUE(restarted.has_policy());
  EXPECT_EQ(restarted.GetPolicy()->version(), "v1");
  EXPECT_EQ(restarted.GetJob(running->first.id())->state(), v1::Job::running);
  EXPECT_EQ(restarted.GetJob(waiting->first.id())->state(), v1::Job::queued);
  auto agent = restarted.GetAgent("a1");
  EXPECT_FALSE(agent->connected());
  EXPECT_EQ(agent->allocated().cpus(), 4);
}

v1::Job PersonalDataJob(int subjects) {
  v1::Job j;
  EXPECT_TRUE(
      codec::ParseYaml(
          "{tenant: acme, command: [/bin/true], resources: {cpus: 1, memory_mb: 64}, datasets: "
          "[{id: reads, "
          "origin: CN, location: lingang-idc-1, size_gb: 10, categories: [personal], subjects: " +
              std::to_string(subjects) + "}]}",
          &j)
          .ok());
  return j;
}

TEST_F(CoreTest, PlanStoresNothingAndTenantInstrumentOpensSingapore) {
  Register("lg1", 8);
  Register("sg1", 8, {}, "singapore-1");
  v1::Job j = PersonalDataJob(250000);
  j.mutable_placement()->add_sites("singapore-1");
  auto plan = core->Plan(j);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_FALSE(plan->feasible());
  EXPECT_TRUE(plan->unschedulable());
  EXPECT_EQ(plan->policy_version(), "v1");
  EXPECT_EQ(core->ListJobs({})->jobs_size(), 0) << "plan must not store a job";
  v1::Tenant t;
  ASSERT_TRUE(
      codec::ParseYaml(
          "{instruments: [{type: cn_standard_contract, from: CN, to: '*', expires: '2099-01-01'}]}",
          &t)
          .ok());
  ASSERT_TRUE(core->PutTenant("acme", t).ok());
  plan = core->Plan(j);
  ASSERT_TRUE(plan->feasible()) << plan->reason();
  EXPECT_EQ(plan->placement().site(), "singapore-1");
  EXPECT_EQ(plan->placement().compliance(0).instrument(), "cn_standard_contract");
}

// What is already running stays compliant: a change that forbids a running
// job's placement is a violation (reported, or stopped when the policy says).
TEST_F(CoreTest, APolicyThatForbidsARunningPlacementReportsOrStopsIt) {
  // Ten seconds before midnight (the agent's heartbeat TTL is 15 s).
  clock.Set(absl::FromCivil(absl::CivilSecond(2026, 9, 21, 23, 59, 50), absl::UTCTimeZone()));
  core->Tick();
  auto sg = Register("sg1", 8, {}, "singapore-1");
  v1::Tenant t;
  ASSERT_TRUE(
      codec::ParseYaml("{instruments: [{type: cn_standard_contract, from: CN, to: SG, expires: "
                       "'2026-09-21'}]}",
                       &t)
          .ok());
  ASSERT_TRUE(core->PutTenant("acme", t).ok());
  auto job = core->Submit(PersonalDataJob(120000));
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_EQ(job->first.state(), v1::Job::placed) << job->first.reason();
  Update("sg1", sg.get(), job->first.id(), v1::Job::running);
  EXPECT_EQ(core->Violations("").violations_size(), 0);

  // The contract is valid through 21 September; on the 22nd it has expired.
  clock.Advance(absl::Seconds(11));
  core->Tick();
  v1::ListViolationsResponse v = core->Violations("");
  ASSERT_EQ(v.violations_size(), 1);
  EXPECT_EQ(v.violations(0).job(), job->first.id());
  EXPECT_EQ(v.violations(0).rule(), "cn-pi");
  EXPECT_NE(v.violations(0).reason().find("expired on 2026-09-21"), std::string::npos)
      << v.violations(0).reason();
  EXPECT_EQ(v.violations(0).action(), "report");
  EXPECT_EQ(core->Violations("globex").violations_size(), 0);
  v1::Job running = *core->GetJob(job->first.id());
  EXPECT_EQ(running.state(), v1::Job::running);
  EXPECT_NE(running.events().rbegin()->message().find("new day"), std::string::npos);
  EXPECT_EQ(sg->Cancels().size(), 0u) << "report does not stop it";
  // A second check keeps the first 'since' and adds no second event.
  const int events = running.events_size();
  clock.Advance(absl::Seconds(5));
  v1::Policy same;
  ASSERT_TRUE(codec::ParseYaml(kPolicy, &same).ok());
  ASSERT_TRUE(core->ApplyPolicy(same, "test").ok());
  EXPECT_EQ(core->Violations("").violations(0).since().seconds(),
            v.violations(0).since().seconds());
  EXPECT_EQ(core->GetJob(job->first.id())->events_size(), events);

  // The policy now says stop: the job is stopped on its agent.
  v1::Policy p;
  ASSERT_TRUE(codec::ParseYaml(kPolicy, &p).ok());
  p.set_on_violation(v1::Policy::stop);
  ASSERT_TRUE(core->ApplyPolicy(p, "test").ok());
  ASSERT_EQ(sg->Cancels().size(), 1u);
  EXPECT_EQ(sg->Cancels()[0].cancel().job_id(), job->first.id());
  EXPECT_EQ(core->Violations("").violations(0).action(), "stop");
  Update("sg1", sg.get(), job->first.id(), v1::Job::cancelled);
  core->Tick();
  EXPECT_EQ(core->Violations("").violations_size(), 0) << "ended jobs leave the list";
}

TEST_F(CoreTest, TenantZonesMustBeZonesThePolicyKnows) {
  v1::Tenant t;
  ASSERT_TRUE(codec::ParseYaml("{registered_zones: [lingnag]}", &t).ok());
  auto bad = core->PutTenant("acme", t);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(codec::StatusField(bad.status()), "registered_zones[0]");
  EXPECT_NE(bad.status().message().find("unknown zone 'lingnag'"), std::string::npos)
      << bad.status();
  v1::Policy p;
  ASSERT_TRUE(codec::ParseYaml(kPolicy, &p).ok());
  ASSERT_TRUE(codec::ParseYaml("{id: lingnag}", p.add_zones()).ok());
  ASSERT_TRUE(core->ApplyPolicy(p, "test").ok());
  EXPECT_TRUE(core->PutTenant("acme", t).ok()) << "declared in the policy's zones";
}

TEST_F(CoreTest, ARenewedInstrumentClearsTheViolation) {
  auto sg = Register("sg1", 8, {}, "singapore-1");
  v1::Tenant t;
  ASSERT_TRUE(
      codec::ParseYaml("{instruments: [{type: cn_standard_contract, from: CN, to: SG}]}", &t).ok());
  ASSERT_TRUE(core->PutTenant("acme", t).ok());
  auto job = core->Submit(PersonalDataJob(120000));
  ASSERT_EQ(job->first.state(), v1::Job::placed);
  v1::Tenant none;
  ASSERT_TRUE(core->PutTenant("acme", none).ok());
  ASSERT_EQ(core->Violations("acme").violations_size(), 1);
  ASSERT_TRUE(core->PutTenant("acme", t).ok());
  EXPECT_EQ(core->Violations("acme").violations_size(), 0);
  EXPECT_NE(core->GetJob(job->first.id())->events().rbegin()->message().find("allowed again"),
            std::string::npos);
}

TEST_F(CoreTest, CrossBorderPlacementIsAuditedAndCountedInTheLedger) {
  Register("sg1", 8, {}, "singapore-1");
  v1::Tenant t;
  ASSERT_TRUE(
      codec::ParseYaml("{instruments: [{type: cn_standard_contract, from: CN, to: SG}]}", &t).ok());
  ASSERT_TRUE(core->PutTenant("acme", t).ok());
  auto job = core->Submit(PersonalDataJob(120000));
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->first.state(), v1::Job::placed) << job->first.reason();
  auto audit = core->Audit("acme", "", 10);
  ASSERT_EQ(audit->records_size(), 1);
  const v1::AuditRecord& r = audit->records(0);
  EXPECT_EQ(r.dataset(), "reads");
  EXPECT_EQ(r.from_site(), "lingang-idc-1");
  EXPECT_EQ(r.to_site(), "singapore-1");
  EXPECT_EQ(r.rule(), "cn-pi");
  EXPECT_EQ(r.instrument(), "cn_standard_contract");
  auto ledger = store.LoadLedger();
  ASSERT_EQ(ledger->size(), 1u);
  EXPECT_EQ((*ledger)[0].subjects(), 120000u);
  EXPECT_EQ((*ledger)[0].origin(), "CN") << "one ledger per origin, whatever the destination";
  auto explain = core->Explain(job->first.id());
  ASSERT_TRUE(explain.ok());
  EXPECT_EQ(explain->placement().site(), "singapore-1");
}

TEST_F(CoreTest, JobNamingUnknownSitesIsRefusedWithTheField) {
  v1::Job j = PersonalDataJob(1);
  j.mutable_placement()->add_sites("atlantis-1");
  EXPECT_EQ(codec::StatusField(core->Submit(j).status()), "placement.sites[0]");
  j = PersonalDataJob(1);
  j.mutable_datasets(0)->set_location("mars-1");
  EXPECT_EQ(codec::StatusField(core->Submit(j).status()), "datasets[0].location");
  j = PersonalDataJob(1);
  j.mutable_datasets(0)->set_origin("XX");
  EXPECT_EQ(codec::StatusField(core->Plan(j).status()), "datasets[0].origin");
  j = PersonalDataJob(1);
  (*j.mutable_placement()->mutable_max_rtt_ms())["nowhere"] = 10;
  EXPECT_EQ(codec::StatusField(core->Submit(j).status()), "placement.max_rtt_ms.nowhere");
}

TEST_F(CoreTest, BadPolicyIsRejectedAndTheRunningOneStays) {
  v1::Policy bad;
  ASSERT_TRUE(codec::ParseYaml(kPolicy, &bad).ok());
  bad.mutable_links(0)->set_b("nowhere");
  auto v = core->ApplyPolicy(bad, "test");
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(codec::StatusField(v.status()), "links[0].b");
  EXPECT_EQ(core->GetPolicy()->version(), "v1");
  v1::ValidationResult r = core->ValidatePolicy(bad);
  EXPECT_FALSE(r.valid());
  ASSERT_EQ(r.errors_size(), 1);
  EXPECT_NE(r.errors(0).find("unknown site 'nowhere'"), std::string::npos);
}

TEST_F(CoreTest, CutLinkIsANewVersionAndChangesTheNetwork) {
  auto before = core->Network();
  auto link = core->UpdateLink(
      "sjc2",
      [] {
        v1::LinkUpdate u;
        u.set_up(false);
        return u;
      }(),
      "ops");
  ASSERT_TRUE(link.ok()) << link.status();
  EXPECT_FALSE(link->up());
  auto after = core->Network();
  for (const auto& e : after->matrix()) EXPECT_EQ(e.rtt_ms(), -1) << e.from() << "->" << e.to();
  auto versions = core->PolicyVersions();
  ASSERT_EQ(versions->versions_size(), 2);
  EXPECT_EQ(versions->versions(0).summary(), "link sjc2 down");
  EXPECT_EQ(versions->versions(0).applied_by(), "ops");
  EXPECT_EQ(core->UpdateLink("nope", {}, "ops").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(CoreTest, HeartbeatRttThatIsNotANumberIsIgnored) {
  auto link = Register("a1", 8);
  for (double bad : {std::nan(""), std::numeric_limits<double>::infinity(), -5.0, 1e300}) {
    v1::Envelope hb;
    hb.set_seq(++agent_seq);
    hb.mutable_heartbeat()->set_measured_rtt_ms(bad);
    core->OnMessage("a1", link.get(), hb);
    EXPECT_EQ(core->GetAgent("a1")->measured_rtt_ms(), 0.0) << bad;
  }
  v1::Envelope hb;
  hb.set_seq(++agent_seq);
  hb.mutable_heartbeat()->set_measured_rtt_ms(34.5);
  core->OnMessage("a1", link.get(), hb);
  EXPECT_EQ(core->GetAgent("a1")->measured_rtt_ms(), 34.5);
}

TEST_F(CoreTest, HeartbeatWithAChangedTopologyRebuildsTheAgent) {
  auto link = Register("a1", 8);
  auto job = core->Submit(Spec(2));
  Update("a1", link.get(), job->first.id(), v1::Job::running);
  EXPECT_EQ(core->GetAgent("a1")->capacity().cpus(), 8);
  // Half the machine goes away (cores offlined): the running job keeps its PUs.
  v1::Envelope hb;
  hb.set_seq(++agent_seq);
  v1::Topology* t = hb.mutable_heartbeat()->mutable_topology();
  *t = core->GetAgent("a1")->topology();
  t->mutable_cores()->DeleteSubrange(4, 4);
  t->set_pus(4);
  core->OnMessage("a1", link.get(), hb);
  auto a = core->GetAgent("a1");
  EXPECT_EQ(a->capacity().cpus(), 4);
  EXPECT_EQ(a->allocated().cpus(), 2);
  EXPECT_EQ(a->pu_jobs().size(), 2u);
  EXPECT_EQ(a->topology().cores_size(), 4);
  // An unusable topology in a heartbeat is ignored; the agent keeps the last good one.
  v1::Envelope bad;
  bad.set_seq(++agent_seq);
  *bad.mutable_heartbeat()->mutable_topology() = a->topology();
  bad.mutable_heartbeat()->mutable_topology()->mutable_cores(0)->set_pus(0, 70000);
  core->OnMessage("a1", link.get(), bad);
  EXPECT_EQ(core->GetAgent("a1")->capacity().cpus(), 4);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(core->GetAgent("a1")->topology(),
                                                                 a->topology()));
}

TEST_F(CoreTest, AgentTopologyIsKeptWholeForTheApiAndTheStore) {
  auto link = Register("a1", 8);
  auto got = core->GetAgent("a1");
  ASSERT_TRUE(got.ok());
  const v1::Topology sent = got->topology();
  // What Register (the fixture) sent: one NUMA node, 8 single-PU cores.
  EXPECT_EQ(sent.pus(), 8u);
  EXPECT_EQ(sent.memory_mb(), 16384u);
  ASSERT_EQ(sent.numa_nodes_size(), 1);
  EXPECT_EQ(sent.numa_nodes(0).memory_mb(), 16384u);
  ASSERT_EQ(sent.cores_size(), 8);
  EXPECT_EQ(sent.cores(5).index(), 5u);
  ASSERT_EQ(sent.cores(5).pus_size(), 1);
  EXPECT_EQ(sent.cores(5).pus(0), 5u);
  auto listed = core->ListAgents();
  ASSERT_EQ(listed.agents_size(), 1);
  EXPECT_TRUE(
      google::protobuf::util::MessageDifferencer::Equals(listed.agents(0).topology(), sent));
  // The stored form carries it too: a restarted core has it back.
  Core restarted(opts, &store, &clock, &registry);
  ASSERT_TRUE(restarted.Recover().ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
      restarted.GetAgent("a1")->topology(), sent));
  EXPECT_EQ(restarted.GetAgent("a1")->capacity().cpus(), 8);
}

TEST_F(CoreTest, OnAgentLossRetriesElsewhereAfterBackoffAndNeverEndsLost) {
  auto l1 = Register("a1", 4);
  v1::Job retry = Spec(2);
  retry.mutable_restart()->set_policy(v1::RestartPolicy::on_agent_loss);
  retry.mutable_restart()->set_max_attempts(2);
  v1::Job once = Spec(2);
  once.mutable_restart()->set_policy(v1::RestartPolicy::never);
  auto r = core->Submit(retry);
  auto o = core->Submit(once);
  Update("a1", l1.get(), r->first.id(), v1::Job::running);
  Update("a1", l1.get(), o->first.id(), v1::Job::running);
  auto l2 = Register("a2", 4);
  clock.Advance(absl::Seconds(16));  // a1 falls silent; a2 keeps heartbeating
  v1::Envelope hb;
  hb.mutable_heartbeat();
  core->OnMessage("a2", l2.get(), hb);
  core->Tick();
  // Asked to stop its attempts; it never answers, so after another TTL ...
  EXPECT_EQ(core->GetJob(r->first.id())->state(), v1::Job::running);
  clock.Advance(absl::Seconds(16));
  core->OnMessage("a2", l2.get(), hb);
  core->Tick();
  EXPECT_EQ(core->GetJob(o->first.id())->state(), v1::Job::lost);
  auto waiting = core->GetJob(r->first.id());
  EXPECT_EQ(waiting->state(), v1::Job::queued);
  EXPECT_NE(waiting->reason().find("retrying (attempt 2 of 2) after 1s"), std::string::npos)
      << waiting->reason();
  EXPECT_TRUE(l2->Assigns().empty()) << "not before the backoff";
  clock.Advance(absl::Milliseconds(1100));
  core->OnMessage("a2", l2.get(), hb);
  core->Tick();
  ASSERT_EQ(l2->Assigns().size(), 1u);
  EXPECT_EQ(l2->Assigns()[0].assign().job().attempt(), 2u);
  auto placed = core->GetJob(r->first.id());
  EXPECT_EQ(placed->allocation().agent(), "a2");
  ASSERT_EQ(placed->attempts_size(), 2);
  EXPECT_EQ(placed->attempts(0).outcome(), v1::Job::lost);
  EXPECT_EQ(placed->attempts(0).allocation().agent(), "a1");
  // A late update from the first attempt is ignored; the second attempt finishes.
  Update("a2", l2.get(), r->first.id(), v1::Job::succeeded, 1);
  EXPECT_EQ(core->GetJob(r->first.id())->state(), v1::Job::placed);
  Update("a2", l2.get(), r->first.id(), v1::Job::succeeded, 2);
  EXPECT_EQ(core->GetJob(r->first.id())->state(), v1::Job::succeeded);
}

TEST_F(CoreTest, OnFailureRetriesFailuresUntilAttemptsRunOut) {
  auto l = Register("a1", 4);
  v1::Job j = Spec(1);
  j.mutable_restart()->set_policy(v1::RestartPolicy::on_failure);
  j.mutable_restart()->set_max_attempts(2);
  auto job = core->Submit(j);
  Update("a1", l.get(), job->first.id(), v1::Job::failed, 1, 3);
  EXPECT_EQ(core->GetJob(job->first.id())->state(), v1::Job::queued);
  clock.Advance(absl::Seconds(2));
  core->Tick();
  EXPECT_EQ(core->GetJob(job->first.id())->attempt(), 2u);
  Update("a1", l.get(), job->first.id(), v1::Job::failed, 2, 3);
  auto done = core->GetJob(job->first.id());
  EXPECT_EQ(done->state(), v1::Job::failed);
  EXPECT_NE(done->reason().find("no attempts left"), std::string::npos) << done->reason();
  EXPECT_EQ(done->attempts_size(), 2);
  EXPECT_EQ(done->exit_code(), 3);
}

TEST_F(CoreTest, FairShareServesTheTenantWithTheSmallestShareFirst) {
  auto l = Register("a1", 4);
  std::vector<std::string> big;
  for (int i = 0; i < 20; ++i) {
    v1::Job j = Spec(1);
    j.set_tenant("burst");
    big.push_back(core->Submit(j)->first.id());
  }
  std::vector<std::string> small;
  for (int i = 0; i < 3; ++i) {
    v1::Job j = Spec(1);
    j.set_tenant("late");
    small.push_back(core->Submit(j)->first.id());
  }
  // burst holds all 4 PUs. As PUs free up, late (the smaller share) gets them
  // until both hold 2; from then on each keeps its half.
  auto state = [&](const std::string& id) { return core->GetJob(id)->state(); };
  Update("a1", l.get(), big[0], v1::Job::succeeded);
  EXPECT_EQ(state(small[0]), v1::Job::placed)
      << core->GetJob(small[0])->reason() << " / big0: " << core->GetJob(big[0])->state() << " "
      << core->GetJob(big[0])->reason();
  Update("a1", l.get(), big[1], v1::Job::succeeded);
  EXPECT_EQ(state(small[1]), v1::Job::placed);
  Update("a1", l.get(), big[2], v1::Job::succeeded);
  EXPECT_EQ(state(small[2]), v1::Job::queued) << "2 PUs each: burst's turn";
  EXPECT_EQ(state(big[4]), v1::Job::placed);
  Update("a1", l.get(), small[0], v1::Job::succeeded);
  EXPECT_EQ(state(small[2]), v1::Job::placed) << "late's PU goes back to late";
  int burst_started = 0;
  for (const auto& id : big) burst_started += state(id) != v1::Job::queued ? 1 : 0;
  EXPECT_EQ(burst_started, 5) << "late's 3 jobs all started while 15 of burst's still wait";
}

TEST_F(CoreTest, CordonedAndDrainingAgentsTakeNoNewWork) {
  Register("a1", 4);
  ASSERT_EQ(core->SetAgentMode("a1", "cordon")->state(), v1::Agent::cordoned);
  auto job = core->Submit(Spec(1));
  EXPECT_EQ(job->first.state(), v1::Job::queued);
  EXPECT_NE(job->first.reason().find("1 cordoned"), std::string::npos) << job->first.reason();
  ASSERT_EQ(core->SetAgentMode("a1", "drain")->state(), v1::Agent::draining);
  core->Tick();
  EXPECT_EQ(core->GetJob(job->first.id())->state(), v1::Job::queued);
  core->SetAgentMode("a1", "uncordon").IgnoreError();
  core->Tick();
  EXPECT_EQ(core->GetJob(job->first.id())->state(), v1::Job::placed);
  EXPECT_EQ(core->SetAgentMode("ghost", "cordon").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(CoreTest, TenantProfileIsValidated) {
  v1::Tenant t;
  t.add_instruments()->set_type("magic");
  EXPECT_EQ(codec::StatusField(core->PutTenant("acme", t).status()), "instruments[0].type");
  t.mutable_instruments(0)->set_type("cn_standard_contract");
  t.mutable_instruments(0)->set_to("ZZ");
  EXPECT_EQ(codec::StatusField(core->PutTenant("acme", t).status()), "instruments[0].to");
  t.mutable_instruments(0)->set_to("SG");
  t.mutable_instruments(0)->set_expires("next year");
  EXPECT_EQ(codec::StatusField(core->PutTenant("acme", t).status()), "instruments[0].expires");
  t.set_id("other");
  EXPECT_EQ(codec::StatusField(core->PutTenant("acme", t).status()), "id");
  EXPECT_EQ(core->GetTenant("acme").status().code(), absl::StatusCode::kNotFound);
}

// One pass placing several jobs on one machine: each decision sees what the
// ones before it took, down to the NUMA node (the placement views' copies of
// the machine's counts are refreshed after each placement).
TEST_F(CoreTest, APassSeesEachOfItsPlacementsDownToTheNumaNode) {
  ApplyPolicyWithTopologyPlugins();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {  // submitted before any agent: placed in one pass
    v1::Job j = Spec(5);
    j.mutable_topology()->set_numa(v1::TopologyRequest::single);
    auto s = core->Submit(j);
    ASSERT_TRUE(s.ok()) << s.status();
    ids.push_back(s->first.id());
  }
  // Two NUMA nodes of 8 single-PU cores: room for two of the three, one
  // per node; the third fits the free total (6 PUs) but no single node.
  auto link = Register("two-nodes", 16, {}, "lingang-idc-1", 2);
  EXPECT_EQ(link->Assigns().size(), 2u);
  auto a = core->GetJob(ids[0]), b = core->GetJob(ids[1]), c = core->GetJob(ids[2]);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->state(), v1::Job::placed) << a->reason();
  EXPECT_EQ(b->state(), v1::Job::placed) << b->reason();
  ASSERT_EQ(a->allocation().numa_nodes_size(), 1);
  ASSERT_EQ(b->allocation().numa_nodes_size(), 1);
  EXPECT_NE(a->allocation().numa_nodes(0), b->allocation().numa_nodes(0));
  EXPECT_EQ(c->state(), v1::Job::queued);
  EXPECT_NE(c->reason().find("numa_single_no_fit"), std::string::npos) << c->reason();
  EXPECT_EQ(c->reason().find("internal"), std::string::npos) << c->reason();
}

}  // namespace
}  // namespace portolan::scheduler
