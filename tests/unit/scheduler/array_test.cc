// SPDX-License-Identifier: Apache-2.0
// Job arrays in the core: tasks made a window at a time under the array's
// parallelism, the array job's state and counts, cancel of all, the task
// listing, a task's own restart policy, recovery.
#include <gtest/gtest.h>

#include <set>

#include "core_fixture.h"
#include "portolan/scheduler/arrays.h"

namespace portolan::scheduler {
namespace {

class ArrayTest : public CoreTest {
 protected:
  v1::Job Array(uint32_t count, uint32_t parallelism, int cpus = 1) {
    v1::Job j = Spec(cpus);
    j.mutable_array()->set_count(count);
    j.mutable_array()->set_parallelism(parallelism);
    return j;
  }
  // The tasks of `array` on `agent` in state `s`, by index.
  std::vector<std::string> TasksIn(const std::string& array, v1::Job::State s) {
    std::vector<std::string> out;
    auto list = core->ListTasks(array, 1000, "");
    EXPECT_TRUE(list.ok()) << list.status();
    for (const v1::Job& t : list->tasks()) {
      if (t.state() == s) out.push_back(t.id());
    }
    return out;
  }
  // Runs each placed task on `agent` to `outcome`.
  int Finish(const std::string& agent, const FakeLink* link, const std::string& array,
             v1::Job::State outcome) {
    int n = 0;
    for (const std::string& id : TasksIn(array, v1::Job::placed)) {
      Update(agent, link, id, v1::Job::running, core->GetJob(id)->attempt());
      Update(agent, link, id, outcome, core->GetJob(id)->attempt(),
             outcome == v1::Job::failed ? 1 : 0);
      ++n;
    }
    core->Tick();
    return n;
  }
};

TEST_F(ArrayTest, TasksRunUnderTheParallelismAndTheArrayFollowsThem) {
  auto link = Register("a1", 8);
  auto sub = core->Submit(Array(10, 3));
  ASSERT_TRUE(sub.ok()) << sub.status();
  const std::string id = sub->first.id();
  EXPECT_EQ(sub->first.state(), v1::Job::running);
  EXPECT_EQ(sub->first.task_counts().at("placed"), 3u);
  EXPECT_EQ(sub->first.task_counts().at("pending"), 7u);
  EXPECT_EQ(TasksIn(id, v1::Job::placed),
            (std::vector<std::string>{id + "[0]", id + "[1]", id + "[2]"}));
  // A task is a job: its index, count and array.
  v1::Job t2 = *core->GetJob(id + "[2]");
  EXPECT_EQ(t2.array_job(), id);
  EXPECT_EQ(t2.array_index(), 2u);
  EXPECT_EQ(t2.array().count(), 10u);
  // The Assign carries them to the agent (which sets PORTOLAN_ARRAY_*).
  EXPECT_EQ(link->Assigns().back().assign().job().array_index(), 2u);
  // Never more than 3 at once, every index once.
  std::set<std::string> seen;
  for (int round = 0; round < 10 && core->GetJob(id)->state() == v1::Job::running; ++round) {
    auto placed = TasksIn(id, v1::Job::placed);
    EXPECT_LE(placed.size(), 3u);
    for (const std::string& t : placed) EXPECT_TRUE(seen.insert(t).second) << t;
    Finish("a1", link.get(), id, v1::Job::succeeded);
  }
  EXPECT_EQ(seen.size(), 10u);
  v1::Job done = *core->GetJob(id);
  EXPECT_EQ(done.state(), v1::Job::succeeded) << done.reason();
  EXPECT_EQ(done.task_counts().at("succeeded"), 10u);
  EXPECT_EQ(done.reason(), "10 task(s): 10 succeeded");
  // Tasks are listed under their array only.
  auto listed = core->ListJobs({});
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->jobs_size(), 1);
  EXPECT_EQ(listed->jobs(0).id(), id);
}

TEST_F(ArrayTest, AFailedTaskRetriesAloneAndTheArrayFailsIfItNeverSucceeds) {
  auto link = Register("a1", 8);
  v1::Job spec = Array(2, 0);
  spec.mutable_restart()->set_policy(v1::RestartPolicy::on_failure);
  spec.mutable_restart()->set_max_attempts(2);
  const std::string id = core->Submit(spec)->first.id();
  Update("a1", link.get(), id + "[0]", v1::Job::running);
  Update("a1", link.get(), id + "[0]", v1::Job::succeeded);
  Update("a1", link.get(), id + "[1]", v1::Job::running);
  Update("a1", link.get(), id + "[1]", v1::Job::failed, 1, 1);
  EXPECT_EQ(core->GetJob(id + "[1]")->state(), v1::Job::queued);  // its own retry
  EXPECT_EQ(core->GetJob(id + "[0]")->state(), v1::Job::succeeded);
  clock.Advance(absl::Seconds(5));
  core->Tick();
  ASSERT_EQ(core->GetJob(id + "[1]")->state(), v1::Job::placed);
  Update("a1", link.get(), id + "[1]", v1::Job::running, 2);
  Update("a1", link.get(), id + "[1]", v1::Job::failed, 2, 1);
  v1::Job done = *core->GetJob(id);
  EXPECT_EQ(done.state(), v1::Job::failed);
  EXPECT_EQ(done.reason(), "2 task(s): 1 succeeded, 1 failed");
}

TEST_F(ArrayTest, CancelStopsEveryTaskAndNoneStartsAfter) {
  auto link = Register("a1", 2);
  const std::string id = core->Submit(Array(6, 0))->first.id();
  EXPECT_EQ(TasksIn(id, v1::Job::placed).size(), 2u);
  auto cancelled = core->Cancel(id);
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_TRUE(cancelled->cancel_requested());
  EXPECT_EQ(cancelled->state(), v1::Job::running);  // two still stop on the agent
  EXPECT_EQ(cancelled->task_counts().at("cancelled"), 4u);
  // The agent confirms; nothing new is placed in the freed room.
  for (const std::string& t : TasksIn(id, v1::Job::placed)) {
    Update("a1", link.get(), t, v1::Job::cancelled);
  }
  core->Tick();
  v1::Job done = *core->GetJob(id);
  EXPECT_EQ(done.state(), v1::Job::cancelled) << done.reason();
  EXPECT_EQ(done.task_counts().at("cancelled"), 6u);
  EXPECT_TRUE(TasksIn(id, v1::Job::placed).empty());
}

TEST_F(ArrayTest, TheTaskListingPagesAndShowsTasksNotStartedYet) {
  Register("a1", 2);
  const std::string id = core->Submit(Array(2500, 0))->first.id();
  auto page = core->ListTasks(id, 1000, "");
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->tasks_size(), 1000);
  EXPECT_EQ(page->tasks(0).state(), v1::Job::placed);
  EXPECT_EQ(page->tasks(999).state(), v1::Job::queued);
  EXPECT_EQ(page->next_page_token(), "1000");
  auto last = core->ListTasks(id, 1000, "2000");
  ASSERT_EQ(last->tasks_size(), 500);
  EXPECT_EQ(last->tasks(499).id(), id + "[2499]");
  EXPECT_EQ(last->tasks(499).reason(), "not started yet");
  EXPECT_EQ(last->next_page_token(), "");
  // At most a window of tasks is made at once.
  EXPECT_EQ(core->GetJob(id)->task_counts().at("pending"), 2500u - kArrayWindow - 0u);
  EXPECT_EQ(codec::StatusField(core->ListTasks(id, 0, "").status()), "page_size");
  EXPECT_EQ(core->ListTasks(id + "[0]", 10, "").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ArrayTest, WindowAfterWindowEveryTaskIsPlacedWhenThereIsRoom) {
  Register("big", 3000);  // 3,000 PUs, 16 GiB
  v1::Job spec = Array(3000, 0);
  spec.mutable_resources()->set_memory_mb(4);
  const std::string id = core->Submit(spec)->first.id();
  EXPECT_EQ(core->GetJob(id)->task_counts().at("placed"), kArrayWindow);
  // Each tick makes and places the next window; no task has to end first.
  for (int i = 0; i < 5; ++i) core->Tick();
  v1::Job a = *core->GetJob(id);
  EXPECT_EQ(a.task_counts().at("placed"), 3000u) << a.reason();
  EXPECT_EQ(a.task_counts().size(), 1u);
  // Task 1 shared task 0's decision: its explanation is that decision, with
  // its own PUs.
  auto first = core->Explain(id + "[0]");
  auto second = core->Explain(id + "[1]");
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->shared_with(), "");
  EXPECT_EQ(second->shared_with(), id + "[0]");
  EXPECT_EQ(second->sites_size(), first->sites_size());
  EXPECT_GT(second->sites_size(), 0);
  EXPECT_EQ(second->placement().agent(), "big");
  ASSERT_EQ(second->placement().cpus_size(), 1);
  EXPECT_NE(second->placement().cpus(0), first->placement().cpus(0));
  EXPECT_EQ(core->GetJob(id + "[1]")->allocation().pus(0), second->placement().cpus(0));
}

TEST_F(ArrayTest, ARestartedSchedulerGoesOnWithTheArray) {
  auto link = Register("a1", 8);
  const std::string id = core->Submit(Array(5, 2))->first.id();
  Update("a1", link.get(), id + "[0]", v1::Job::running);
  Update("a1", link.get(), id + "[0]", v1::Job::succeeded);
  core->Tick();
  // [0] succeeded, [1] and [2] placed, [3] and [4] pending.
  Core restarted(opts, &store, &clock, &registry);
  ASSERT_TRUE(restarted.Recover().ok());
  v1::Job a = *restarted.GetJob(id);
  EXPECT_EQ(a.state(), v1::Job::running);
  EXPECT_EQ(a.task_counts().at("succeeded"), 1u);
  EXPECT_EQ(a.task_counts().at("placed"), 2u);
  EXPECT_EQ(a.task_counts().at("pending"), 2u);
}

TEST_F(ArrayTest, ArraySpecsAreChecked) {
  v1::Job j = Array(0, 0);
  EXPECT_EQ(codec::StatusField(core->Submit(j).status()), "array.count");
  j = Array(kMaxArrayCount + 1, 0);
  EXPECT_EQ(codec::StatusField(core->Submit(j).status()), "array.count");
  std::string array;
  uint32_t index = 0;
  EXPECT_TRUE(ParseTaskId("job-1[12]", &array, &index));
  EXPECT_EQ(array, "job-1");
  EXPECT_EQ(index, 12u);
  EXPECT_FALSE(ParseTaskId("job-1", &array, &index));
  EXPECT_FALSE(ParseTaskId("[3]", &array, &index));
  EXPECT_FALSE(ParseTaskId("job[x]", &array, &index));
}

}  // namespace
}  // namespace portolan::scheduler
