// SPDX-License-Identifier: Apache-2.0
// Agent restarts keep running jobs (issue 17): the real scheduler and agent
// binaries, real job processes, the agent killed with SIGKILL or stopped with
// SIGTERM mid-job and started again with the same command line. Each job
// writes "start N" / "end N" (N = its attempt) to a trace file, so the tests
// see how many attempts ran and whether two ever overlapped.
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "harness.h"

namespace portolan::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A TTL long enough that no restart here makes the scheduler give up on the
// agent: what is tested is the agent's re-adoption, not the restart policy.
const std::vector<std::string> kSlowTtl = {
    "--agent-ttl-ms", "8000", "--restart-backoff-ms", "200", "--restart-backoff-max-ms", "400"};

std::string ReadAll(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// `sh -c` writing "start N", sleeping, writing "end N" to `trace`, and
// printing "out N" (its output must survive the restart too).
v1::Job TracedJob(const std::string& trace, double sleep_s, int exit_code = 0,
                  const std::string& tag = "") {
  v1::Job j =
      JobSpec({"/bin/sh", "-c",
               absl::StrCat("echo start ", tag, "$PORTOLAN_JOB_ATTEMPT >> ", trace, "; sleep ",
                            sleep_s, "; echo end ", tag, "$PORTOLAN_JOB_ATTEMPT >> ", trace,
                            "; echo out $PORTOLAN_JOB_ATTEMPT; exit ", exit_code)});
  j.mutable_restart()->set_policy(v1::RestartPolicy::on_agent_loss);
  j.mutable_restart()->set_max_attempts(3);
  return j;
}

class AgentRestartIT : public ::testing::Test {
 public:
  void SetUp() override {
    c.StartScheduler(0, kSlowTtl);
    agent = c.StartAgent(kId, "lingang-idc-1");
    trace = c.SharedDir() + "/trace";
    // Jobs run as uids of their own: the file is everyone's to append to.
    std::ofstream(trace).flush();
    std::filesystem::permissions(
        trace, std::filesystem::perms::all & ~std::filesystem::perms::owner_exec &
                   ~std::filesystem::perms::group_exec & ~std::filesystem::perms::others_exec);
  }
  // Stops the agent with `sig`, waits until the scheduler saw the
  // connection go, and starts it again with the same command line.
  void Restart(int sig) {
    agent->Signal(sig);
    ASSERT_GE(agent->Wait(seconds(20)), 0) << "agent did not exit on signal " << sig;
    ASSERT_TRUE(WaitFor(
        [&] {
          auto a = c.client().GetAgent(kId);
          return a.ok() && !a->connected();
        },
        seconds(10)));
    agent = c.StartAgent(kId, "lingang-idc-1");
  }
  std::string AgentLog() const { return ReadAll(c.dir() + "/agent-" + kId + ".log"); }

  static constexpr const char* kId = "r1";
  Cluster c;
  Process* agent = nullptr;
  std::string trace;
};

void RunsOnceAcross(AgentRestartIT& t, Cluster& c, const std::string& trace, int sig) {
  auto job = c.client().Submit(TracedJob(trace, 3));
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(WaitFor([&] { return ReadAll(trace) == "start 1\n"; }, seconds(20)));
  const pid_t pid = PrintedPid(c.client(), job->id());
  ASSERT_GT(pid, 0);
  t.Restart(sig);
  EXPECT_EQ(kill(pid, 0), 0) << "the job's supervisor died with the agent";
  ASSERT_TRUE(WaitForState(c.client(), job->id(), v1::Job::succeeded, seconds(30)))
      << c.SchedulerLog();
  EXPECT_EQ(ReadAll(trace), "start 1\nend 1\n") << "one attempt, run once";
  auto j = c.client().GetJob(job->id());
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->attempts_size(), 1);
  EXPECT_EQ(j->attempt(), 1u);
  EXPECT_NE(j->reason().find("re-adopted after an agent restart"), std::string::npos)
      << j->reason();
  EXPECT_EQ(c.client().Logs(job->id())->stdout(), "out 1\n");
}

TEST_F(AgentRestartIT, KillNineDuringAJobLeavesItRunningAndItSucceedsOnce) {
  RunsOnceAcross(*this, c, trace, SIGKILL);
  EXPECT_NE(AgentLog().find("1 running job attempt(s) re-adopted"), std::string::npos);
}

TEST_F(AgentRestartIT, SigtermLeavesJobsRunningForTheNextAgentProcess) {
  RunsOnceAcross(*this, c, trace, SIGTERM);
  EXPECT_NE(AgentLog().find("leaving running jobs running"), std::string::npos);
}

TEST_F(AgentRestartIT, AgentRestartWhileTheSchedulerIsAlsoDown) {
  auto job = c.client().Submit(TracedJob(trace, 4));
  ASSERT_TRUE(job.ok());
  ASSERT_TRUE(WaitFor([&] { return ReadAll(trace) == "start 1\n"; }, seconds(20)));
  const uint16_t rpc = c.rpc_port();
  c.KillScheduler();
  agent->Signal(SIGKILL);
  ASSERT_GE(agent->Wait(seconds(20)), 0);
  // The agent comes back first and waits for the scheduler.
  std::vector<std::string> flags = kSlowTtl;
  agent = nullptr;
  c.StartScheduler(rpc, flags);
  agent = c.StartAgent(kId, "lingang-idc-1");
  ASSERT_TRUE(WaitForState(c.client(), job->id(), v1::Job::succeeded, seconds(30)))
      << c.SchedulerLog();
  EXPECT_EQ(ReadAll(trace), "start 1\nend 1\n");
  EXPECT_EQ(c.client().GetJob(job->id())->attempts_size(), 1);
  EXPECT_EQ(c.client().Logs(job->id())->stdout(), "out 1\n");
}

TEST_F(AgentRestartIT, AJobThatEndedWhileTheAgentWasDownIsReportedWithItsExitCode) {
  auto job = c.client().Submit(TracedJob(trace, 1, 7));
  ASSERT_TRUE(job.ok());
  // Reported running before the agent dies (the job may start writing first).
  ASSERT_TRUE(WaitForState(c.client(), job->id(), v1::Job::running, seconds(20)));
  ASSERT_TRUE(WaitFor([&] { return ReadAll(trace) == "start 1\n"; }, seconds(20)));
  agent->Signal(SIGKILL);
  ASSERT_GE(agent->Wait(seconds(20)), 0);
  ASSERT_TRUE(WaitFor([&] { return ReadAll(trace) == "start 1\nend 1\n"; }, seconds(20)));
  EXPECT_EQ(c.client().GetJob(job->id())->state(), v1::Job::running) << "nobody told it yet";
  agent = c.StartAgent(kId, "lingang-idc-1");
  ASSERT_TRUE(WaitForState(c.client(), job->id(), v1::Job::failed, seconds(20)))
      << c.SchedulerLog();
  auto j = c.client().GetJob(job->id());
  EXPECT_EQ(j->exit_code(), 7);
  EXPECT_EQ(j->attempts_size(), 1);
  EXPECT_NE(j->reason().find("exited with code 7"), std::string::npos) << j->reason();
  EXPECT_NE(j->reason().find("while the agent was down"), std::string::npos) << j->reason();
  EXPECT_EQ(c.client().Logs(job->id())->stdout(), "out 1\n");
  EXPECT_NE(AgentLog().find("1 that ended meanwhile"), std::string::npos);
}

TEST_F(AgentRestartIT, AnOrphanWhoseRecordIsGoneIsKilledBeforeAttemptTwoStarts) {
  auto job = c.client().Submit(TracedJob(trace, 4));
  ASSERT_TRUE(job.ok());
  ASSERT_TRUE(WaitFor([&] { return ReadAll(trace) == "start 1\n"; }, seconds(20)));
  const pid_t orphan = PrintedPid(c.client(), job->id());
  ASSERT_GT(orphan, 0);
  agent->Signal(SIGKILL);
  ASSERT_GE(agent->Wait(seconds(20)), 0);
  // The agent's memory of the attempt is gone; its processes are not.
  const std::string records = c.dir() + "/agent-" + std::string(kId) + "/attempts";
  int removed = 0;
  for (const auto& e : std::filesystem::directory_iterator(records)) {
    std::filesystem::remove(e.path());
    ++removed;
  }
  ASSERT_EQ(removed, 1);
  ASSERT_EQ(kill(orphan, 0), 0);
  agent = c.StartAgent(kId, "lingang-idc-1");
  // Killed before the agent registered, so before attempt 2 could be assigned.
  EXPECT_TRUE(WaitFor([&] { return kill(orphan, 0) != 0; }, seconds(5)));
  ASSERT_TRUE(WaitForState(c.client(), job->id(), v1::Job::succeeded, seconds(30)))
      << c.SchedulerLog();
  EXPECT_EQ(ReadAll(trace), "start 1\nstart 2\nend 2\n") << "attempt 1 never finished";
  auto j = c.client().GetJob(job->id());
  ASSERT_EQ(j->attempts_size(), 2);
  EXPECT_EQ(j->attempts(0).outcome(), v1::Job::lost);
  EXPECT_NE(j->attempts(0).reason().find("it does not run there"), std::string::npos)
      << j->attempts(0).reason();
  const std::string log = AgentLog();
  EXPECT_TRUE(log.find("no attempt record accounts for") != std::string::npos) << log;
}

TEST_F(AgentRestartIT, StopJobsOnExitStopsThemAndTheRestartPolicyRunsTheNextAttempt) {
  const std::vector<std::string> flags = {"--stop-jobs-on-exit"};
  auto restart_with_flag = [&] {
    agent->Signal(SIGTERM);
    ASSERT_GE(agent->Wait(seconds(20)), 0);
    ASSERT_TRUE(WaitFor([&] { return !c.client().GetAgent(kId)->connected(); }, seconds(10)));
    agent = c.StartAgent(kId, "lingang-idc-1", "pack:1 numa:1(memory=16GiB) core:4 pu:2", flags);
  };
  restart_with_flag();
  auto job = c.client().Submit(TracedJob(trace, 3));
  ASSERT_TRUE(job.ok());
  ASSERT_TRUE(WaitFor([&] { return ReadAll(trace) == "start 1\n"; }, seconds(20)));
  const pid_t pid = PrintedPid(c.client(), job->id());
  ASSERT_GT(pid, 0);
  restart_with_flag();
  EXPECT_NE(kill(pid, 0), 0) << "attempt 1 survived --stop-jobs-on-exit";
  ASSERT_TRUE(WaitForState(c.client(), job->id(), v1::Job::succeeded, seconds(30)))
      << c.SchedulerLog();
  EXPECT_EQ(ReadAll(trace), "start 1\nstart 2\nend 2\n");
  auto j = c.client().GetJob(job->id());
  ASSERT_EQ(j->attempts_size(), 2);
  EXPECT_EQ(j->attempts(0).outcome(), v1::Job::lost);
  EXPECT_NE(j->attempts(0).reason().find("--stop-jobs-on-exit"), std::string::npos)
      << j->attempts(0).reason();
}

// Twenty kill -9 / restart cycles at random moments under a stream of short
// jobs: every job succeeds, its program ran to its end exactly once, and an
// attempt that did not finish (the agent died while starting it) never ran
// beside the next.
TEST_F(AgentRestartIT, TwentyKillNineCyclesUnderAStreamOfShortJobsRunEachJobOnce) {
  std::mt19937 rng(::testing::UnitTest::GetInstance()->random_seed());
  std::uniform_int_distribution<int> pause_ms(50, 400);
  std::vector<std::string> ids;
  for (int cycle = 0; cycle < 20; ++cycle) {
    for (int k = 0; k < 3; ++k) {
      auto job = c.client().Submit(TracedJob(trace, 0.3, 0, absl::StrCat("j", ids.size(), "-")));
      ASSERT_TRUE(job.ok()) << job.status();
      ids.push_back(job->id());
    }
    std::this_thread::sleep_for(milliseconds(pause_ms(rng)));
    Restart(SIGKILL);
  }
  for (const std::string& id : ids) {
    ASSERT_TRUE(WaitFor(
        [&] {
          auto j = c.client().GetJob(id);
          return j.ok() && (j->state() == v1::Job::succeeded || j->state() == v1::Job::failed ||
                            j->state() == v1::Job::lost || j->state() == v1::Job::cancelled);
        },
        seconds(60)))
        << id << "\n"
        << c.SchedulerLog();
  }
  // trace lines: "start jK-N" / "end jK-N".
  std::map<std::string, std::vector<std::string>> lines;
  for (absl::string_view line : absl::StrSplit(ReadAll(trace), '\n', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    ASSERT_EQ(f.size(), 2u) << line;
    std::vector<std::string> tag = absl::StrSplit(f[1], '-');
    lines[tag[0]].push_back(absl::StrCat(f[0], " ", tag[1]));
  }
  int extra_attempts = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    auto j = c.client().GetJob(ids[i]);
    ASSERT_TRUE(j.ok());
    EXPECT_EQ(j->state(), v1::Job::succeeded) << ids[i] << ": " << j->reason();
    const std::vector<std::string>& l = lines[absl::StrCat("j", i)];
    // Exactly one end, of the last attempt, right after its start; earlier
    // attempts (if any) only started, and their starts come first.
    ASSERT_GE(l.size(), 2u) << ids[i] << " " << j->DebugString() << "\ntrace:\n" << ReadAll(trace);
    EXPECT_EQ(l.back(), absl::StrCat("end ", j->attempt())) << ids[i];
    EXPECT_EQ(l[l.size() - 2], absl::StrCat("start ", j->attempt())) << ids[i];
    for (size_t k = 0; k + 2 < l.size(); ++k) EXPECT_TRUE(l[k].starts_with("start ")) << ids[i];
    for (const v1::Attempt& a : j->attempts()) {
      if (a.number() == j->attempt()) continue;
      ++extra_attempts;
      EXPECT_EQ(a.outcome(), v1::Job::lost);
      EXPECT_FALSE(a.fate_unknown()) << ids[i] << ": the agent never stayed away past its TTL";
    }
  }
  std::printf(
      "%zu jobs across 20 agent kill -9 / restart cycles: all ran to the end once; %d "
      "attempt(s) cut short while being started and rerun\n",
      ids.size(), extra_attempts);
}

// Ended attempts' directories do not pile up (--attempt-dir-keep-max,
// --attempt-dir-keep-hours): the newest stay for operators, the rest go, and
// what an earlier agent process left goes once due.
TEST_F(AgentRestartIT, EndedAttemptsDirectoriesGoByCountAndAgeAcrossARestart) {
  const std::string jobs_dir = c.dir() + "/agent-" + kId + "/jobs";
  auto ended_dirs = [&] {
    std::set<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(jobs_dir))
      names.insert(e.path().filename().string());
    return names;
  };
  agent->Signal(SIGTERM);
  ASSERT_GE(agent->Wait(seconds(20)), 0);
  agent = c.StartAgent(kId, "lingang-idc-1", "pack:1 numa:1(memory=16GiB) core:4 pu:2",
                       {"--attempt-dir-keep-max", "2"});
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    auto job = c.client().Submit(JobSpec({"/bin/sh", "-c", absl::StrCat("echo run ", i)}));
    ASSERT_TRUE(job.ok()) << job.status();
    ASSERT_TRUE(WaitForState(c.client(), job->id(), v1::Job::succeeded, seconds(30)));
    ids.push_back(job->id());
  }
  // The two newest stay, with their logs; the two oldest go.
  const std::set<std::string> newest = {ids[2] + "-1", ids[3] + "-1"};
  EXPECT_TRUE(WaitFor([&] { return ended_dirs() == newest; }, seconds(10)))
      << absl::StrJoin(ended_dirs(), " ");
  EXPECT_EQ(ReadAll(jobs_dir + "/" + ids[3] + "-1/stdout.log"), "run 3\n");
  // The scheduler kept what it was told: the log tail of a removed one.
  EXPECT_EQ(c.client().Logs(ids[0])->stdout(), "run 0\n");

  // A restarted agent told to keep none removes its predecessor's leftovers.
  agent->Signal(SIGTERM);
  ASSERT_GE(agent->Wait(seconds(20)), 0);
  agent = c.StartAgent(kId, "lingang-idc-1", "pack:1 numa:1(memory=16GiB) core:4 pu:2",
                       {"--attempt-dir-keep-hours", "0"});
  EXPECT_TRUE(WaitFor([&] { return ended_dirs().empty(); }, seconds(10)))
      << absl::StrJoin(ended_dirs(), " ");
}

}  // namespace
}  // namespace portolan::testing
