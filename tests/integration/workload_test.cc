// SPDX-License-Identifier: Apache-2.0
// Workload management through the real daemons: dependencies between jobs,
// tenant quotas with their usage and metrics.
#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "harness.h"
#include "portolan/base/strings.h"
#include "portolan/codec/codec.h"
#include "portolan/v1/policy.pb.h"

namespace portolan::testing {
namespace {

using std::chrono::seconds;

v1::Job After(v1::Job spec, const std::string& dep, const char* condition = "succeeded") {
  v1::Dependency* d = spec.add_depends_on();
  d->set_job(dep);
  v1::Dependency::Condition c = v1::Dependency::condition_unspecified;
  EXPECT_TRUE(v1::Dependency::Condition_Parse(condition, &c));
  d->set_condition(c);
  return spec;
}

// B after A starts only once A has ended; when A fails, what needs it to
// succeed becomes unschedulable and what needs it to finish runs.
TEST(WorkloadIT, DependentsStartAfterTheirDependencyAndAFailureStrandsThem) {
  Cluster c;
  c.StartScheduler();
  c.StartAgent("lg1", "lingang-idc-1");
  auto& api = c.client();
  auto a = api.Submit(JobSpec({"/bin/sh", "-c", "sleep 1"}, 1, "acme"));
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = api.Submit(After(JobSpec({"/bin/true"}, 1, "acme"), a->id()));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->state(), v1::Job::queued);
  EXPECT_TRUE(b->reason().starts_with("waiting for " + a->id() + " ("));
  ASSERT_TRUE(WaitForState(api, a->id(), v1::Job::running));
  // While A runs, B says so (and its explanation too).
  ASSERT_TRUE(WaitFor(
      [&] { return api.GetJob(b->id())->reason() == "waiting for " + a->id() + " (running)"; },
      seconds(10)))
      << api.GetJob(b->id())->reason();
  EXPECT_EQ(api.Explain(b->id())->reason(), "waiting for " + a->id() + " (running)");
  ASSERT_TRUE(WaitForState(api, b->id(), v1::Job::succeeded)) << c.SchedulerLog();
  auto done_a = api.GetJob(a->id());
  auto done_b = api.GetJob(b->id());
  EXPECT_GE(base::FromProto(done_b->started_at()), base::FromProto(done_a->finished_at()));

  // A failing dependency.
  auto f = api.Submit(JobSpec({"/bin/sh", "-c", "sleep 1; exit 3"}, 1, "acme"));
  ASSERT_TRUE(f.ok());
  auto needs_ok = api.Submit(After(JobSpec({"/bin/true"}, 1, "acme"), f->id()));
  auto needs_end = api.Submit(After(JobSpec({"/bin/true"}, 1, "acme"), f->id(), "finished"));
  ASSERT_TRUE(needs_ok.ok() && needs_end.ok());
  ASSERT_TRUE(WaitForState(api, needs_ok->id(), v1::Job::unschedulable)) << c.SchedulerLog();
  EXPECT_EQ(api.GetJob(needs_ok->id())->reason(),
            "dependency " + f->id() +
                " ended failed; this job needs it to succeed (depends_on condition succeeded)");
  EXPECT_TRUE(WaitForState(api, needs_end->id(), v1::Job::succeeded));

  // The CLI's --depends-on.
  auto [rc, text] =
      Cli(c, absl::StrCat("submit --tenant acme --depends-on ", f->id(), ":finished -- /bin/true"));
  EXPECT_EQ(rc, 0) << text;
  std::tie(rc, text) = Cli(c, "submit --depends-on job-x:sometimes -- /bin/true", true);
  EXPECT_NE(rc, 0);
  EXPECT_NE(text.find("--depends-on takes JOB[:succeeded|finished]"), std::string::npos) << text;
}

// Unknown jobs and other tenants' jobs are refused with 400 naming the field.
TEST(WorkloadIT, DependenciesOnUnknownOrOtherTenantsJobsAreRefused) {
  Cluster c;
  c.StartScheduler();
  c.StartAgent("lg1", "lingang-idc-1");
  auto globex = c.ClientWith(Cluster::kGlobexToken)->Submit(JobSpec({"/bin/true"}, 1, "globex"));
  ASSERT_TRUE(globex.ok()) << globex.status();
  auto acme = c.ClientWith(Cluster::kAcmeToken);
  for (const std::string& dep : {std::string("job-000000000000"), globex->id()}) {
    std::string out;
    auto code = acme->Raw(
        "POST", "/v1/jobs",
        absl::StrCat(R"({"command": ["/bin/true"], "resources": {"cpus": 1, "memory_mb": 16},
                         "depends_on": [{"job": ")",
                     dep, R"("}]})"),
        &out);
    ASSERT_TRUE(code.ok());
    EXPECT_EQ(*code, 400) << out;
    EXPECT_NE(out.find(R"("field":"depends_on[0].job")"), std::string::npos) << out;
    EXPECT_NE(out.find("no job '" + dep + "' of tenant acme"), std::string::npos) << out;
  }
}

// A tenant at its quota waits with the reason while another tenant's jobs
// run; its usage (REST, metrics) shows it; it goes on when a job ends.
TEST(WorkloadIT, ATenantAtQuotaWaitsWhileAnotherTenantsJobsRun) {
  Cluster c;
  c.StartScheduler();
  c.StartAgent("lg1", "lingang-idc-1");
  auto& admin = c.client();
  Call<v1::Tenant>(c, "PUT", "/v1/tenants/acme", R"({"id": "acme", "quota": {"cpus": 2}})");
  auto acme = c.ClientWith(Cluster::kAcmeToken);
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    auto j = acme->Submit(JobSpec({"/bin/sleep", "300"}, 1, "acme"));
    ASSERT_TRUE(j.ok()) << j.status();
    ids.push_back(j->id());
  }
  ASSERT_TRUE(WaitForState(admin, ids[0], v1::Job::running));
  ASSERT_TRUE(WaitForState(admin, ids[1], v1::Job::running));
  EXPECT_EQ(admin.GetJob(ids[2])->state(), v1::Job::queued);
  EXPECT_EQ(admin.GetJob(ids[2])->reason(),
            "quota: tenant acme uses 2 of 2 cpus (this job asks 1)");
  auto g = c.ClientWith(Cluster::kGlobexToken)->Submit(JobSpec({"/bin/true"}, 1, "globex"));
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE(WaitForState(admin, g->id(), v1::Job::succeeded));
  EXPECT_EQ(admin.GetJob(ids[2])->state(), v1::Job::queued);

  auto u = acme->TenantUsage("acme");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->used().cpus(), 2);
  EXPECT_EQ(u->quota().cpus(), 2);
  EXPECT_EQ(u->jobs_holding(), 2u);
  EXPECT_EQ(u->jobs_waiting_for_quota(), 1u);
  EXPECT_EQ(acme->TenantUsage("globex").status().code(), absl::StatusCode::kPermissionDenied);
  std::string metrics;
  ASSERT_EQ(*admin.Raw("GET", "/metrics", "", &metrics), 200);
  EXPECT_NE(metrics.find(R"(portolan_tenant_used{tenant="acme",resource="cpus"} 2)"),
            std::string::npos);
  EXPECT_NE(metrics.find(R"(portolan_tenant_quota{tenant="acme",resource="cpus"} 2)"),
            std::string::npos);
  auto [rc, text] = Cli(c, "tenant usage acme");
  EXPECT_EQ(rc, 0) << text;
  EXPECT_NE(text.find("1 for quota"), std::string::npos) << text;

  ASSERT_TRUE(admin.Cancel(ids[0]).ok());
  EXPECT_TRUE(WaitForState(admin, ids[2], v1::Job::running)) << admin.GetJob(ids[2])->reason();
  for (const std::string& id : {ids[1], ids[2]}) (void)admin.Cancel(id);
  for (const std::string& id : {ids[1], ids[2]}) WaitForState(admin, id, v1::Job::cancelled);
}

// An array of 1,000 trivial tasks on two agents completes with every index
// run exactly once, each seeing its index and the count.
TEST(WorkloadIT, AnArrayOfAThousandTasksRunsEveryIndexOnce) {
  Cluster c;
  // Not a test of agent loss: on a loaded machine (ASan beside other tests)
  // an agent starved of CPU for the default 1.5 s was taken as lost with 40
  // of its tasks.
  c.StartScheduler(0, {"--agent-ttl-ms", "10000"});
  c.StartAgent("lg1", "lingang-idc-1");
  c.StartAgent("lg2", "lingang-idc-1");
  const std::string dir = c.SharedDir();
#ifdef __SANITIZE_ADDRESS__
  // Each task is a process: 200 took 26 s under ASan at -O1 alone, over 120 s
  // at -O0 beside other tests in CI.
  const uint32_t kTasks = 200;
  const auto kDeadline = seconds(240);
#else
  const uint32_t kTasks = 1000;  // ~13 s
  const auto kDeadline = seconds(120);
#endif
  v1::Job spec = JobSpec({"/bin/sh", "-c",
                          "echo \"$PORTOLAN_ARRAY_COUNT $PORTOLAN_ARRAY_JOB_ID\" >> " + dir +
                              "/$PORTOLAN_ARRAY_INDEX"},
                         1, "acme");
  spec.mutable_array()->set_count(kTasks);
  auto& api = c.client();
  auto a = api.Submit(spec);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(WaitFor([&] { return InState(api, a->id(), v1::Job::succeeded); }, kDeadline))
      << api.GetJob(a->id())->reason();
  auto done = api.GetJob(a->id());
  EXPECT_EQ(done->task_counts().at("succeeded"), kTasks);
  EXPECT_EQ(done->task_counts().size(), 1u);
  for (uint32_t i = 0; i < kTasks; ++i) {
    std::ifstream f(dir + "/" + std::to_string(i));
    std::string line, extra;
    ASSERT_TRUE(std::getline(f, line)) << "index " << i << " never ran";
    EXPECT_EQ(line, absl::StrCat(kTasks, " ", a->id())) << i;
    EXPECT_FALSE(std::getline(f, extra)) << "index " << i << " ran twice";
  }
  // The listing pages through all of them; a task is a job of its own.
  auto page = api.ListTasks(a->id(), 1000);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->tasks_size(), static_cast<int>(kTasks));
  const uint32_t last = kTasks - 1;
  EXPECT_EQ(page->tasks(last).id(), absl::StrCat(a->id(), "[", last, "]"));
  EXPECT_EQ(page->tasks(last).state(), v1::Job::succeeded);
  EXPECT_EQ(api.GetJob(a->id() + "[7]")->array_index(), 7u);
}

// The CLI's --array with a parallelism; cancel of the array stops its tasks.
TEST(WorkloadIT, TheCliSubmitsAnArrayAndCancelStopsAllItsTasks) {
  Cluster c;
  c.StartScheduler();
  c.StartAgent("lg1", "lingang-idc-1");
  auto [rc, text] = Cli(c, "-o json submit --array 0-9%3 --tenant acme -- /bin/sleep 300");
  ASSERT_EQ(rc, 0) << text;
  v1::Job a;
  ASSERT_TRUE(codec::ParseJson(text, &a).ok()) << text;
  EXPECT_EQ(a.array().count(), 10u);
  EXPECT_EQ(a.array().parallelism(), 3u);
  auto& api = c.client();
  ASSERT_TRUE(WaitForState(api, a.id() + "[2]", v1::Job::running));
  EXPECT_EQ(api.GetJob(a.id())->task_counts().at("pending"), 7u);
  std::tie(rc, text) = Cli(c, "tasks " + a.id() + " --limit 4");
  EXPECT_EQ(rc, 0) << text;
  EXPECT_NE(text.find(a.id() + "[3]"), std::string::npos) << text;
  EXPECT_NE(text.find("not started yet"), std::string::npos) << text;
  EXPECT_NE(text.find("--page-token 4"), std::string::npos) << text;
  std::tie(rc, text) = Cli(c, "submit --array 1-10 -- /bin/true", true);
  EXPECT_NE(rc, 0);
  EXPECT_NE(text.find("tasks are numbered from 0"), std::string::npos) << text;

  ASSERT_TRUE(api.Cancel(a.id()).ok());
  ASSERT_TRUE(WaitForState(api, a.id(), v1::Job::cancelled)) << api.GetJob(a.id())->reason();
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(api.GetJob(a.id() + "[" + std::to_string(i) + "]")->state(), v1::Job::cancelled);
  auto tasks = api.ListTasks(a.id());
  ASSERT_TRUE(tasks.ok());
  EXPECT_EQ(tasks->tasks(9).state(), v1::Job::cancelled);
}

// A job of higher priority that finds no room stops exactly the running job
// of lower priority whose PUs it needs (SIGTERM, the scheduler's grace, then
// SIGKILL); that job is requeued with the event "preempted by job-…" and
// succeeds later. Jobs of a site the preemptor's data may not go to are never
// stopped for it.
TEST(WorkloadIT, AHighPriorityJobPreemptsExactlyTheJobThatFreesItsPus) {
  Cluster c;
  c.StartScheduler(0, {"--preempt-grace-s", "2"});
  c.StartAgent("lg1", "lingang-idc-1", "pack:1 numa:1(memory=16GiB) core:4 pu:1");
  auto& api = c.client();
  auto start = [&](int cpus, int priority, const std::string& script) {
    v1::Job j = JobSpec({"/bin/sh", "-c", script}, cpus, "acme");
    j.set_priority(priority);
    auto r = api.Submit(j);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->id() : std::string();
  };
  // 4 PUs: two of priority 0 (2 PUs and 1) and one of priority 1 (1 PU).
  // The victim's first attempt is stopped; its second runs 2 s and succeeds.
  const std::string victim = start(2, 0,
                                   "if [ \"$PORTOLAN_JOB_ATTEMPT\" = 1 ]; then sleep 300; "
                                   "else sleep 2; fi");
  const std::string low = start(1, 0, "sleep 300");
  const std::string higher = start(1, 1, "sleep 300");
  for (const auto& id : {victim, low, higher})
    ASSERT_TRUE(WaitForState(api, id, v1::Job::running)) << c.SchedulerLog();

  v1::Job urgent = JobSpec({"/bin/sh", "-c", "sleep 1"}, 2, "acme");
  urgent.set_priority(5);
  auto plan = api.Plan(urgent);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_NE(plan->reason().find("would preempt: " + victim + " on agent lg1"), std::string::npos)
      << plan->reason();
  auto u = api.Submit(urgent);
  ASSERT_TRUE(u.ok()) << u.status();
  ASSERT_TRUE(WaitForState(api, u->id(), v1::Job::succeeded)) << c.SchedulerLog();
  ASSERT_TRUE(WaitForState(api, victim, v1::Job::succeeded)) << c.SchedulerLog();
  auto v = api.GetJob(victim);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->attempt(), 2u);
  bool preempted = false, requeued = false;
  for (const auto& ev : v->events()) {
    preempted |= ev.message().starts_with("preempted by job " + u->id());
    requeued |= ev.message().find("requeued") != std::string::npos;
  }
  EXPECT_TRUE(preempted && requeued) << v->DebugString();
  // The victim was placed again only after the preemptor had its room.
  auto pre = api.GetJob(u->id());
  ASSERT_EQ(v->attempts_size(), 2);
  EXPECT_GE(base::FromProto(v->attempts(1).placed_at()), base::FromProto(pre->finished_at()))
      << v->DebugString() << pre->DebugString();
  for (const auto& id : {low, higher}) {
    auto j = api.GetJob(id);
    EXPECT_EQ(j->state(), v1::Job::running) << id;
    EXPECT_EQ(j->attempt(), 1u) << id;
  }

  // Singapore (4 PUs) is full of priority-0 work. A job of priority 1 for 4
  // PUs could have them there by preempting it, but it carries CN personal
  // data of 150,000 people, which may not go to Singapore without a standard
  // contract (acme has none); in Lingang only `low` is of lower priority and
  // frees too little. So it waits and stops nothing.
  c.StartAgent("sg1", "singapore-1", "pack:1 numa:1(memory=16GiB) core:4 pu:1");
  const std::string sg_low = [&] {
    v1::Job j = JobSpec({"/bin/sleep", "300"}, 4, "acme");
    j.mutable_placement()->add_sites("singapore-1");
    auto r = api.Submit(j);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->id() : std::string();
  }();
  ASSERT_TRUE(WaitForState(api, sg_low, v1::Job::running)) << c.SchedulerLog();
  v1::Job cn_data = JobSpec({"/bin/true"}, 4, "acme");
  cn_data.set_priority(1);
  v1::Dataset* d = cn_data.add_datasets();
  d->set_id("customers");
  d->set_origin("CN");
  d->set_location("lingang-idc-1");
  d->add_categories(v1::Dataset::personal);
  d->set_subjects(150000);
  plan = api.Plan(cn_data);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->reason().find("would preempt"), std::string::npos) << plan->reason();
  // Without the data, the same job would preempt in Singapore.
  v1::Job no_data = cn_data;
  no_data.clear_datasets();
  EXPECT_NE(api.Plan(no_data)->reason().find("would preempt: " + sg_low + " on agent sg1"),
            std::string::npos)
      << api.Plan(no_data)->reason();
  auto q = api.Submit(cn_data);
  ASSERT_TRUE(q.ok()) << q.status();
  std::this_thread::sleep_for(seconds(1));
  EXPECT_EQ(api.GetJob(q->id())->state(), v1::Job::queued) << api.GetJob(q->id())->reason();
  for (const auto& id : {low, higher, sg_low}) {
    EXPECT_EQ(api.GetJob(id)->state(), v1::Job::running) << id;
    EXPECT_FALSE(api.GetJob(id)->cancel_requested()) << id;
  }
  (void)api.Cancel(q->id());
  for (const auto& id : {low, higher, sg_low}) (void)api.Cancel(id);
  for (const auto& id : {low, higher, sg_low}) WaitForState(api, id, v1::Job::cancelled);
}

// A 3-member gang kept to one site, on a site with room for only 2, stays
// queued with its reason; when room appears all 3 start together, each with
// its index, the gang's size and every member's host.
TEST(WorkloadIT, AGangStartsWholeOnceOneSiteHasRoomForAllMembers) {
  Cluster c;
  c.StartScheduler();
  c.StartAgent("lg1", "lingang-idc-1", "pack:1 numa:1(memory=16GiB) core:4 pu:1");
  auto& api = c.client();
  v1::Job spec = JobSpec(
      {"/bin/sh", "-c", "echo \"$PORTOLAN_GANG_INDEX/$PORTOLAN_GANG_SIZE $PORTOLAN_GANG_MEMBERS\""},
      2, "acme");
  spec.mutable_gang()->set_tasks(3);
  spec.mutable_gang()->set_colocate(v1::GangSpec::site);
  spec.mutable_placement()->add_sites("lingang-idc-1");
  auto g = api.Submit(spec);
  ASSERT_TRUE(g.ok()) << g.status();
  const std::string reason =
      "waiting: gang of 3 (colocate: site): at most 2 of 3 members fit in one site "
      "(lingang-idc-1)";
  ASSERT_TRUE(WaitFor([&] { return api.GetJob(g->id())->reason() == reason; }, seconds(10)))
      << api.GetJob(g->id())->reason();
  EXPECT_EQ(api.Explain(g->id())->reason(), reason);
  // plan of the same gang says the same, and `portolan plan` prints it.
  const std::string file = c.dir() + "/gang.json";
  std::ofstream(file) << codec::ToJson(spec);
  auto [rc, text] = Cli(c, "plan " + file, true);
  EXPECT_EQ(rc, 1) << "no placement now: " << text;
  EXPECT_NE(text.find(reason), std::string::npos) << text;
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto tasks = api.ListTasks(g->id(), 10, "");
  ASSERT_TRUE(tasks.ok()) << tasks.status();
  ASSERT_EQ(tasks->tasks_size(), 3);
  for (const auto& t : tasks->tasks()) EXPECT_EQ(t.state(), v1::Job::queued) << t.id();

  const absl::Time room = absl::Now();
  c.StartAgent("lg2", "lingang-idc-1", "pack:1 numa:1(memory=16GiB) core:4 pu:1");
  ASSERT_TRUE(WaitForState(api, g->id(), v1::Job::succeeded, seconds(30))) << c.SchedulerLog();
  tasks = api.ListTasks(g->id(), 10, "");
  ASSERT_TRUE(tasks.ok());
  for (int i = 0; i < 3; ++i) {
    const v1::Job& t = tasks->tasks(i);
    EXPECT_EQ(t.state(), v1::Job::succeeded);
    ASSERT_EQ(t.attempts_size(), 1) << t.id();
    EXPECT_GE(base::FromProto(t.attempts(0).placed_at()), room) << t.id();
    auto logs = api.Logs(t.id());
    ASSERT_TRUE(logs.ok()) << logs.status();
    EXPECT_EQ(logs->stdout(), absl::StrCat(i, "/3 127.0.0.1,127.0.0.1,127.0.0.1\n")) << t.id();
  }
  // With room for all three (the gang has ended), plan lists each member.
  std::tie(rc, text) = Cli(c, "plan " + file);
  EXPECT_EQ(rc, 0) << text;
  EXPECT_NE(text.find("gang: 0"), std::string::npos) << text;
  EXPECT_EQ(absl::StrContains(text, "2    agent lg"), true) << text;
  // The CLI's --gang.
  std::tie(rc, text) = Cli(c, "submit --tenant acme --gang 2:site -- /bin/true");
  EXPECT_EQ(rc, 0) << text;
  std::tie(rc, text) = Cli(c, "submit --gang 2:nowhere -- /bin/true", true);
  EXPECT_NE(rc, 0);
  EXPECT_NE(text.find("--gang takes N[:site|any][@MAX_RTT_MS]"), std::string::npos) << text;
}

}  // namespace
}  // namespace portolan::testing
