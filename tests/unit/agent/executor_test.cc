// SPDX-License-Identifier: Apache-2.0
#include "portolan/executor/executor.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>

namespace portolan::executor {
namespace {

// Collects updates; waits (bounded) for a job's final one. Real processes
// take real time, so the wait is on a condition, never a fixed sleep.
class ExecutorTest : public ::testing::Test {
 protected:
  ExecutorTest() {
    root = std::filesystem::temp_directory_path() /
           ("portolan-exec-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(root);
    executor::ExecutorOptions o;
    o.work_root = root;
    o.kill_grace = absl::Milliseconds(500);
    exec =
        std::make_unique<executor::Executor>(o, base::RealClock(), [this](const v1::JobUpdate& u) {
          std::lock_guard<std::mutex> l(mu);
          updates.push_back(u);
          cv.notify_all();
        });
  }
  ~ExecutorTest() override {
    exec.reset();
    std::filesystem::remove_all(root);
  }

  v1::Job Job(const std::string& id, std::vector<std::string> cmd, uint32_t max_runtime = 0) {
    v1::Job j;
    j.set_id(id);
    j.set_name(id);
    j.set_attempt(1);
    for (auto& c : cmd) j.add_command(c);
    j.mutable_resources()->set_cpus(1);
    j.set_max_runtime_s(max_runtime);
    return j;
  }

  v1::JobUpdate Final(const std::string& id) {
    std::unique_lock<std::mutex> l(mu);
    v1::JobUpdate out;
    bool got = cv.wait_for(l, std::chrono::seconds(20), [&] {
      for (const auto& u : updates) {
        if (u.job_id() == id && u.state() != v1::Job::running) {
          out = u;
          return true;
        }
      }
      return false;
    });
    EXPECT_TRUE(got) << "no final update for " << id;
    return out;
  }

  bool SawRunning(const std::string& id) {
    std::unique_lock<std::mutex> l(mu);
    return cv.wait_for(l, std::chrono::seconds(20), [&] {
      for (const auto& u : updates)
        if (u.job_id() == id && u.state() == v1::Job::running) return true;
      return false;
    });
  }

  std::string root;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<v1::JobUpdate> updates;
  std::unique_ptr<executor::Executor> exec;
};

TEST_F(ExecutorTest, ReportsExitCodesAndOutput) {
  exec->Start(Job("ok", {"/bin/sh", "-c", "echo out; echo err >&2"}));
  exec->Start(Job("bad", {"/bin/sh", "-c", "exit 3"}));
  v1::JobUpdate ok = Final("ok");
  EXPECT_EQ(ok.state(), v1::Job::succeeded);
  EXPECT_EQ(ok.exit_code(), 0);
  EXPECT_EQ(ok.logs().stdout(), "out\n");
  EXPECT_EQ(ok.logs().stderr(), "err\n");
  v1::JobUpdate bad = Final("bad");
  EXPECT_EQ(bad.state(), v1::Job::failed);
  EXPECT_EQ(bad.exit_code(), 3);
  EXPECT_NE(bad.message().find("exited with code 3"), std::string::npos);
}

TEST_F(ExecutorTest, EnvironmentIsOnlyWhatTheJobAskedPlusPortolanVariables) {
  setenv("PORTOLAN_TEST_SECRET", "leak", 1);
  v1::Job j = Job("env", {"/usr/bin/env"});
  (*j.mutable_env())["GREETING"] = "hello";
  exec->Start(j);
  v1::JobUpdate u = Final("env");
  ASSERT_EQ(u.state(), v1::Job::succeeded);
  const std::string& out = u.logs().stdout();
  EXPECT_NE(out.find("GREETING=hello\n"), std::string::npos) << out;
  EXPECT_NE(out.find("PORTOLAN_JOB_ID=env\n"), std::string::npos) << out;
  EXPECT_NE(out.find("PATH="), std::string::npos);
  EXPECT_EQ(out.find("PORTOLAN_TEST_SECRET"), std::string::npos) << "agent environment leaked";
}

TEST_F(ExecutorTest, RunsInItsOwnWorkingDirectory) {
  exec->Start(Job("cwd", {"/bin/pwd"}));
  v1::JobUpdate u = Final("cwd");
  EXPECT_EQ(u.logs().stdout(), root + "/cwd-1/work\n");
}

TEST_F(ExecutorTest, MissingBinaryFailsWithReason) {
  exec->Start(Job("missing", {"no-such-program-xyz"}));
  v1::JobUpdate u = Final("missing");
  EXPECT_EQ(u.state(), v1::Job::failed);
  EXPECT_NE(u.message().find("not found"), std::string::npos) << u.message();
  exec->Start(Job("noexec", {"/etc/hostname"}));
  u = Final("noexec");
  EXPECT_EQ(u.state(), v1::Job::failed);
  // EACCES for most users, ENOEXEC for root: either way the job says why.
  EXPECT_NE(u.message().find("cannot execute '/etc/hostname'"), std::string::npos) << u.message();
}

TEST_F(ExecutorTest, TimeoutStopsTheJob) {
  exec->Start(Job("slow", {"/bin/sleep", "30"}, /*max_runtime=*/1));
  v1::JobUpdate u = Final("slow");
  EXPECT_EQ(u.state(), v1::Job::failed);
  EXPECT_EQ(u.signal(), SIGTERM);
  EXPECT_NE(u.message().find("max_runtime_s=1"), std::string::npos) << u.message();
}

TEST_F(ExecutorTest, CancelKillsTheProcessGroupEvenIfSigtermIsIgnored) {
  // The shell ignores TERM and starts a child; both must be gone afterwards.
  exec->Start(
      Job("stubborn", {"/bin/sh", "-c", "trap '' TERM; sleep 30 & echo $! > child.pid; wait"}));
  ASSERT_TRUE(SawRunning("stubborn"));
  std::string pidfile = root + "/stubborn-1/work/child.pid";
  // The shell creates the file before it writes the pid: wait for the pid.
  pid_t child = 0;
  for (int i = 0; i < 200 && child <= 0; ++i) {
    std::ifstream(pidfile) >> child;
    if (child <= 0) usleep(10000);
  }
  ASSERT_GT(child, 0) << "no pid in " << pidfile;
  exec->Cancel("stubborn", 1, "test");
  v1::JobUpdate u = Final("stubborn");
  EXPECT_EQ(u.state(), v1::Job::cancelled);
  EXPECT_EQ(u.signal(), SIGKILL);
  // The orphaned child may linger briefly as a zombie until init reaps it.
  auto gone = [&] {
    std::ifstream stat("/proc/" + std::to_string(child) + "/stat");
    std::string pid, comm, state;
    return !(stat >> pid >> comm >> state) || state == "Z";
  };
  for (int i = 0; i < 200 && !gone(); ++i) usleep(10000);
  EXPECT_TRUE(gone()) << "child process " << child << " survived";
}

TEST_F(ExecutorTest, DuplicateStartIsIgnoredAndUnknownCancelReportsCancelled) {
  EXPECT_TRUE(exec->Start(Job("once", {"/bin/sleep", "30"})));
  EXPECT_FALSE(exec->Start(Job("once", {"/bin/sleep", "30"})));
  EXPECT_EQ(exec->running(), 1u);
  exec->Cancel("never-seen", 1, "test");
  EXPECT_EQ(Final("never-seen").state(), v1::Job::cancelled);
  auto jobs = exec->Jobs();
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].state(), v1::Job::running);
}

TEST_F(ExecutorTest, BindsToAllocatedPusAndSetsGpuVisibility) {
  v1::Job j = Job("bound", {"/bin/sh", "-c",
                            "grep Cpus_allowed_list /proc/self/status; env | grep -E "
                            "'^(CUDA|PORTOLAN_GPUS|PORTOLAN_CPUS_ALLOCATED)' | sort"});
  j.mutable_allocation()->add_pus(0);
  j.mutable_allocation()->add_gpu_ids("cuda1");
  exec->Start(j);
  v1::JobUpdate u = Final("bound");
  ASSERT_EQ(u.state(), v1::Job::succeeded) << u.message();
  EXPECT_NE(u.logs().stdout().find("Cpus_allowed_list:\t0\n"), std::string::npos)
      << u.logs().stdout();
  EXPECT_NE(u.logs().stdout().find("CUDA_VISIBLE_DEVICES=1\n"), std::string::npos)
      << u.logs().stdout();
  EXPECT_NE(u.logs().stdout().find("PORTOLAN_GPUS=cuda1\n"), std::string::npos);
  EXPECT_NE(u.logs().stdout().find("PORTOLAN_CPUS_ALLOCATED=0\n"), std::string::npos);
}

// A job that exits at once must still be reported `running` before it is
// reported finished: the scheduler sets started_at only on `running` and
// ignores a late one after the final state. Here handing over the `running`
// update is slow (as a busy agent's send path can be), and the process has
// long exited by the time it returns.
TEST(ExecutorOrderTest, RunningIsReportedBeforeTheFinalStateOfAJobThatExitsAtOnce) {
  const std::string root = testing::TempDir() + "/portolan-exec-order-" + std::to_string(getpid());
  std::filesystem::remove_all(root);
  std::mutex mu;
  std::condition_variable cv;
  std::vector<v1::Job::State> seen;
  executor::ExecutorOptions o;
  o.work_root = root;
  o.poll_interval = absl::Milliseconds(5);
  {
    executor::Executor exec(o, base::RealClock(), [&](const v1::JobUpdate& u) {
      if (u.state() == v1::Job::running) usleep(300 * 1000);  // /bin/true is done by now
      std::lock_guard<std::mutex> l(mu);
      seen.push_back(u.state());
      cv.notify_all();
    });
    v1::Job j;
    j.set_id("quick");
    j.set_attempt(1);
    j.add_command("/bin/true");
    j.mutable_resources()->set_cpus(1);
    ASSERT_TRUE(exec.Start(j));
    std::unique_lock<std::mutex> l(mu);
    ASSERT_TRUE(cv.wait_for(l, std::chrono::seconds(20), [&] { return seen.size() == 2; }))
        << "expected two updates, got " << seen.size();
    EXPECT_EQ(seen[0], v1::Job::running);
    EXPECT_EQ(seen[1], v1::Job::succeeded);
  }
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace portolan::executor
