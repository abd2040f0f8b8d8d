// SPDX-License-Identifier: Apache-2.0
// Attempt records (agent/attempt_records.h) and the executor's recovery from
// them: real files, real processes under the real portolan-job-init.
#include "agent/executor/attempt_records.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "portolan/base/files.h"
#include "portolan/executor/executor.h"

namespace portolan::executor {
namespace {

std::string TestDir(const std::string& what) {
  return (std::filesystem::temp_directory_path() /
          ("portolan-records-" + std::to_string(getpid()) + "-" + what))
      .string();
}

v1::AttemptRecord Sample(const std::string& job, uint32_t attempt) {
  v1::AttemptRecord r;
  r.set_format(kAttemptRecordFormat);
  r.mutable_job()->set_id(job);
  r.mutable_job()->set_attempt(attempt);
  r.set_dir("/somewhere/" + job);
  r.set_pid(1234);
  r.set_pid_start_ticks(99);
  r.set_boot_id("b");
  return r;
}

std::vector<v1::AttemptRecord> LoadFresh(const std::string& dir,
                                         std::vector<std::string>* problems) {
  std::vector<v1::AttemptRecord> out;
  executor::AttemptRecords records(dir);
  EXPECT_TRUE(records.Load(&out, problems).ok());
  return out;
}

TEST(AttemptRecordsTest, RoundTripThroughTheLog) {
  const std::string dir = TestDir("roundtrip");
  std::filesystem::remove_all(dir);
  {
    executor::AttemptRecords records(dir);
    ASSERT_TRUE(records.Init().ok());
    EXPECT_EQ(std::filesystem::status(dir).permissions() & std::filesystem::perms::all,
              std::filesystem::perms::owner_all);
    ASSERT_TRUE(records.Put(Sample("job-a", 1)).ok());
    ASSERT_TRUE(records.Put(Sample("job-b", 2)).ok());
    v1::AttemptRecord changed = Sample("job-a", 1);
    changed.set_pid(4321);
    ASSERT_TRUE(records.Put(changed).ok());  // replaces
    ASSERT_TRUE(records.Put(Sample("job-c", 1)).ok());
    ASSERT_TRUE(records.Remove("job-c", 1).ok());
    ASSERT_TRUE(records.Remove("job-c", 1).ok()) << "removing twice is fine";
    EXPECT_EQ(records.log_entries(), 5u) << "the second Remove of job-c wrote nothing";
  }
  EXPECT_EQ(
      std::filesystem::status(dir + "/records.log").permissions() & std::filesystem::perms::all,
      std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  std::vector<std::string> problems;
  std::vector<v1::AttemptRecord> loaded = LoadFresh(dir, &problems);
  EXPECT_TRUE(problems.empty());
  ASSERT_EQ(loaded.size(), 2u);
  EXPECT_EQ(loaded[0].job().id(), "job-a");
  EXPECT_EQ(loaded[0].pid(), 4321);
  EXPECT_EQ(loaded[1].job().id(), "job-b");
  EXPECT_EQ(loaded[1].job().attempt(), 2u);
  std::filesystem::remove_all(dir);
}

// What a process killed in the middle of a write leaves (a torn last
// entry), a damaged entry in the middle, and the one-file-per-record layout
// of agents before 0.9.
TEST(AttemptRecordsTest, TornDamagedAndLegacyRecords) {
  const std::string dir = TestDir("torn");
  std::filesystem::remove_all(dir);
  const std::string log = dir + "/records.log";
  {
    executor::AttemptRecords records(dir);
    ASSERT_TRUE(records.Init().ok());
    ASSERT_TRUE(records.Put(Sample("job-a", 1)).ok());
    ASSERT_TRUE(records.Put(Sample("job-b", 1)).ok());
  }
  const auto intact = std::filesystem::file_size(log);
  {  // a header announcing 64 bytes, then 4 of them
    const char torn[] = "P\x40\x00\x00\x00\x01\x02\x03\x04half";
    std::ofstream(log, std::ios::app | std::ios::binary).write(torn, sizeof torn - 1);
  }
  EXPECT_EQ(std::filesystem::file_size(log), intact + 13);
  std::vector<std::string> problems;
  EXPECT_EQ(LoadFresh(dir, &problems).size(), 2u);
  EXPECT_TRUE(problems.empty()) << problems[0];
  EXPECT_EQ(std::filesystem::file_size(log), intact) << "the torn entry is cut off";

  {  // one byte of job-a's record changed: it and what follows are ignored, and named
    std::fstream f(log, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(12);
    f.put('~');
  }
  problems.clear();
  EXPECT_TRUE(LoadFresh(dir, &problems).empty());
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("records.log: the entry at byte 0 is damaged"), std::string::npos)
      << problems[0];
  problems.clear();
  EXPECT_TRUE(LoadFresh(dir, &problems).empty());
  EXPECT_TRUE(problems.empty()) << "the log was rewritten without the damage";

  std::string legacy;
  ASSERT_TRUE(Sample("job-l", 1).SerializeToString(&legacy));
  std::ofstream(dir + "/job-l-1.pb") << legacy;
  std::ofstream(dir + "/garbage-1.pb") << "not a protobuf \xff\xff\xff";
  std::ofstream(dir + "/job-c-1.pb.tmp") << "a write a crash cut short";
  problems.clear();
  std::vector<v1::AttemptRecord> loaded = LoadFresh(dir, &problems);
  ASSERT_EQ(loaded.size(), 1u);
  EXPECT_EQ(loaded[0].job().id(), "job-l");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("garbage-1.pb: not a readable attempt record"), std::string::npos)
      << problems[0];
  for (const char* gone : {"/job-l-1.pb", "/garbage-1.pb", "/job-c-1.pb.tmp"})
    EXPECT_FALSE(std::filesystem::exists(dir + gone)) << gone;
  problems.clear();
  loaded = LoadFresh(dir, &problems);
  ASSERT_EQ(loaded.size(), 1u) << "the legacy record now lives in the log";
  EXPECT_EQ(loaded[0].job().id(), "job-l");
  std::filesystem::remove_all(dir);
}

TEST(AttemptRecordsTest, TheLogIsCompactedAndKeepsOnlyLiveRecords) {
  const std::string dir = TestDir("compact");
  std::filesystem::remove_all(dir);
  {
    executor::AttemptRecords records(dir);
    ASSERT_TRUE(records.Init().ok());
    for (uint32_t i = 1; i <= 3; ++i) ASSERT_TRUE(records.Put(Sample("keep", i)).ok());
    size_t most = 0;
    for (int i = 0; i < 3000; ++i) {  // as jobs start, record their pids and end
      const std::string id = "job-" + std::to_string(i);
      ASSERT_TRUE(records.Put(Sample(id, 1)).ok());
      ASSERT_TRUE(records.Put(Sample(id, 1)).ok());
      ASSERT_TRUE(records.Remove(id, 1).ok());
      most = std::max(most, records.log_entries());
    }
    EXPECT_LE(most, 1024u) << "compacted once four times the live records were in the log";
    EXPECT_LT(records.log_entries(), 1024u);
  }
  std::vector<std::string> problems;
  std::vector<v1::AttemptRecord> loaded = LoadFresh(dir, &problems);
  EXPECT_TRUE(problems.empty());
  ASSERT_EQ(loaded.size(), 3u);
  for (uint32_t i = 1; i <= 3; ++i) {
    EXPECT_EQ(loaded[i - 1].job().id(), "keep");
    EXPECT_EQ(loaded[i - 1].job().attempt(), i);
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/records.log.tmp"));
  std::filesystem::remove_all(dir);
}

TEST(AttemptRecordsTest, ARecordOfANewerFormatStopsTheLoadWithAClearMessage) {
  const std::string dir = TestDir("newer");
  std::filesystem::remove_all(dir);
  {
    executor::AttemptRecords records(dir);
    ASSERT_TRUE(records.Init().ok());
    v1::AttemptRecord r = Sample("job-n", 1);
    r.set_format(kAttemptRecordFormat + 1);
    r.set_agent_version("9.9.9");
    ASSERT_TRUE(records.Put(r).ok());
  }
  executor::AttemptRecords records(dir);
  std::vector<v1::AttemptRecord> loaded;
  std::vector<std::string> problems;
  absl::Status st = records.Load(&loaded, &problems);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("records.log holds attempt 1 of job job-n"), std::string::npos) << st;
  EXPECT_NE(st.message().find("9.9.9"), std::string::npos) << st;
  EXPECT_NE(st.message().find("understands format 1"), std::string::npos) << st;
  std::filesystem::remove_all(dir);
}

TEST(AttemptRecordsTest, StartTicksTellAProcessFromALaterOneWithTheSamePid) {
  auto self = ProcessStartTicks(getpid());
  ASSERT_TRUE(self.has_value());
  EXPECT_EQ(ProcessStartTicks(getpid()), self);
  const pid_t child = fork();
  if (child == 0) {
    pause();
    _exit(0);
  }
  auto ticks = ProcessStartTicks(child);
  ASSERT_TRUE(ticks.has_value());
  EXPECT_GE(*ticks, *self);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  EXPECT_FALSE(ProcessStartTicks(child).has_value()) << "no such process any more";
  EXPECT_FALSE(BootId().empty());
}

// The agent's reader of proc, sysfs and cgroup files (base::ReadSmallFile):
// all of a file longer than its read buffer, "" for one that cannot be read.
TEST(AttemptRecordsTest, SmallFilesAreReadWholeAndMissingOnesAreEmpty) {
  const std::string dir = TestDir("small-files");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::string text;
  for (int i = 0; text.size() < 10000; ++i) text += absl::StrCat("line ", i, "\n");
  std::ofstream(dir + "/f") << text;
  EXPECT_EQ(base::ReadSmallFile(dir + "/f"), text);
  std::ofstream(dir + "/empty");
  EXPECT_EQ(base::ReadSmallFile(dir + "/empty"), "");
  EXPECT_EQ(base::ReadSmallFile(dir + "/missing"), "");
  EXPECT_EQ(base::ReadSmallFile(dir), "") << "a directory";
  // proc files report size 0 but have content.
  EXPECT_NE(base::ReadSmallFile("/proc/self/stat").find(absl::StrCat(getpid(), " (")),
            std::string::npos);
  std::filesystem::remove_all(dir);
}

// Executors over the same state directory, one after the other, as agent
// processes across a restart.
class RecoveryTest : public ::testing::Test {
 protected:
  RecoveryTest() : root(TestDir(::testing::UnitTest::GetInstance()->current_test_info()->name())) {
    std::filesystem::remove_all(root);
  }
  ~RecoveryTest() override {
    exec.reset();
    std::filesystem::remove_all(root);
  }
  void Open(bool keep_running) {
    executor::ExecutorOptions o;
    o.work_root = root + "/jobs";
    o.records_dir = root + "/attempts";
    o.job_init = PORTOLAN_JOB_INIT;
    o.keep_running_on_exit = keep_running;
    o.kill_grace = absl::Milliseconds(300);
    exec =
        std::make_unique<executor::Executor>(o, base::RealClock(), [this](const v1::JobUpdate& u) {
          std::lock_guard<std::mutex> l(mu);
          updates.push_back(u);
          cv.notify_all();
        });
  }
  v1::Job Job(const std::string& id, const std::string& script) {
    v1::Job j;
    j.set_id(id);
    j.set_attempt(1);
    j.add_command("/bin/sh");
    j.add_command("-c");
    j.add_command(script);
    j.mutable_resources()->set_cpus(1);
    return j;
  }
  std::optional<v1::JobUpdate> Wait(const std::string& id, bool final) {
    std::unique_lock<std::mutex> l(mu);
    std::optional<v1::JobUpdate> out;
    cv.wait_for(l, std::chrono::seconds(20), [&] {
      for (const auto& u : updates) {
        if (u.job_id() == id && (u.state() != v1::Job::running) == final) {
          out = u;
          return true;
        }
      }
      return false;
    });
    return out;
  }
  pid_t Pid(const v1::JobUpdate& running) {
    // "started as pid N; ..."
    return std::stoi(running.message().substr(std::string("started as pid ").size()));
  }
  size_t Records() { return LoadRecords(root + "/attempts").size(); }

  static std::vector<v1::AttemptRecord> LoadRecords(const std::string& dir) {
    std::vector<v1::AttemptRecord> out;
    std::vector<std::string> problems;
    EXPECT_TRUE(executor::AttemptRecords(dir).Load(&out, &problems).ok());
    EXPECT_TRUE(problems.empty());
    return out;
  }
  // Rewrites every record as the agent left it between starting the
  // supervisor and recording its pid.
  void ForgetPids() {
    executor::AttemptRecords records(root + "/attempts");
    for (v1::AttemptRecord r : LoadRecords(records.dir())) {
      r.set_pid(0);
      r.set_pid_start_ticks(0);
      ASSERT_TRUE(records.Put(r).ok());
    }
  }

  // Starts `script` as attempt 1 of `id` in a new executor, waits until it
  // runs, and lets the executor go (the agent process ends) — stopping the
  // attempt first unless `keep_running`. Returns its supervisor's pid.
  pid_t StartAndLeave(const std::string& id, const std::string& script, bool keep_running) {
    Open(keep_running);
    EXPECT_TRUE(exec->Recover().ok());
    exec->Start(Job(id, script));
    auto running = Wait(id, false);
    EXPECT_TRUE(running.has_value());
    const pid_t pid = running ? Pid(*running) : 0;
    exec.reset();
    return pid;
  }
  // A record of attempt 1 of `job` in this boot, as an earlier agent left
  // it; returns the attempt's directory.
  std::string PutRecord(const std::string& job, pid_t pid, uint64_t start_ticks) {
    executor::AttemptRecords records(root + "/attempts");
    EXPECT_TRUE(records.Init().ok());
    v1::AttemptRecord r = Sample(job, 1);
    r.set_dir(root + "/jobs/" + job + "-1");
    std::filesystem::create_directories(r.dir());
    r.set_pid(pid);
    r.set_pid_start_ticks(start_ticks);
    r.set_boot_id(BootId());
    EXPECT_TRUE(records.Put(r).ok());
    return r.dir();
  }
  // Recovers in a new executor, which adopts nothing and reports `job` lost.
  std::optional<v1::JobUpdate> RecoverLost(const std::string& job) {
    Open(true);
    auto rec = exec->Recover();
    EXPECT_TRUE(rec.ok());
    if (rec.ok()) {
      EXPECT_EQ(rec->adopted, 0);
    }
    auto final = Wait(job, true);
    if (final) {
      EXPECT_EQ(final->state(), v1::Job::lost);
    }
    return final;
  }

  std::string root;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<v1::JobUpdate> updates;
  std::unique_ptr<executor::Executor> exec;
};

TEST_F(RecoveryTest, AnAttemptOutlivesItsExecutorAndIsReAdopted) {
  const pid_t pid = StartAndLeave("job-r", "sleep 0.6; echo hi; exit 3", /*keep_running=*/true);
  ASSERT_GT(pid, 0);
  EXPECT_EQ(kill(pid, 0), 0) << "the attempt's supervisor died with the executor";
  EXPECT_EQ(Records(), 1u);
  updates.clear();
  Open(true);
  auto rec = exec->Recover();
  ASSERT_TRUE(rec.ok()) << rec.status();
  EXPECT_EQ(rec->adopted, 1);
  EXPECT_EQ(rec->ended, 0);
  ASSERT_EQ(exec->Jobs().size(), 1u);
  EXPECT_EQ(exec->Jobs()[0].state(), v1::Job::running);
  EXPECT_EQ(exec->running(), 1u);
  auto final = Wait("job-r", true);
  ASSERT_TRUE(final.has_value());
  EXPECT_EQ(final->state(), v1::Job::failed);
  EXPECT_EQ(final->exit_code(), 3);
  EXPECT_NE(final->message().find("re-adopted"), std::string::npos) << final->message();
  EXPECT_EQ(final->logs().stdout(), "hi\n");
  exec->Forget("job-r", 1);
  EXPECT_EQ(Records(), 0u) << "the record goes once the end is acknowledged";
}

TEST_F(RecoveryTest, AnAttemptThatEndedMeanwhileIsReportedWithItsStatus) {
  const pid_t supervisor = StartAndLeave("job-e", "sleep 0.2; echo done", /*keep_running=*/true);
  ASSERT_GT(supervisor, 0);
  // Ended, and its supervisor said how (it stays a zombie of this test
  // process, which is what an agent's children become until init reaps them).
  const std::string status = root + "/jobs/job-e-1/status";
  for (int i = 0; i < 500 && !ReadExitStatus(status).has_value(); ++i) usleep(10000);
  ASSERT_EQ(ReadExitStatus(status), 0);
  // The supervisor writes the status just before it exits: wait until it has
  // (a zombie, or gone), or a slow machine sees it still running and the
  // agent re-adopts it instead.
  auto exited = [&] {
    std::ifstream stat("/proc/" + std::to_string(supervisor) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return true;
    const size_t paren = line.rfind(')');
    return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z';
  };
  for (int i = 0; i < 500 && !exited(); ++i) usleep(10000);
  ASSERT_TRUE(exited());
  updates.clear();
  Open(true);
  auto rec = exec->Recover();
  ASSERT_TRUE(rec.ok());
  EXPECT_EQ(rec->adopted, 0);
  EXPECT_EQ(rec->ended, 1);
  auto final = Wait("job-e", true);
  ASSERT_TRUE(final.has_value());
  EXPECT_EQ(final->state(), v1::Job::succeeded) << final->message();
  EXPECT_NE(final->message().find("while the agent was down"), std::string::npos);
  EXPECT_EQ(final->logs().stdout(), "done\n");
}

TEST(AttemptRecordsTest, ProcessesWithFileOpenFindsTheHolderByInode) {
  const std::string dir = TestDir("holders");
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/status";
  std::ofstream(path).flush();
  EXPECT_TRUE(ProcessesWithFileOpen(path).empty());
  const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  const std::vector<pid_t> holders = ProcessesWithFileOpen(path);
  EXPECT_EQ(holders, std::vector<pid_t>{getpid()});
  close(fd);
  EXPECT_TRUE(ProcessesWithFileOpen(path).empty());
  EXPECT_TRUE(ProcessesWithFileOpen(dir + "/absent").empty());
  std::filesystem::remove_all(dir);
}

// The agent stopped after starting the attempt's supervisor but before it
// recorded its pid: the next agent finds the supervisor by its status file.
TEST_F(RecoveryTest, ASupervisorWhosePidWasNotYetRecordedIsFoundAndReAdopted) {
  const pid_t pid = StartAndLeave("job-u", "sleep 0.8; echo hi; exit 3", /*keep_running=*/true);
  ASSERT_GT(pid, 0);
  ForgetPids();
  updates.clear();
  Open(true);
  auto rec = exec->Recover();
  ASSERT_TRUE(rec.ok()) << rec.status();
  EXPECT_EQ(rec->adopted, 1);
  EXPECT_EQ(rec->ended, 0);
  EXPECT_EQ(kill(pid, 0), 0) << "re-adopted, not killed";
  auto again = LoadRecords(root + "/attempts");
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].pid(), pid) << "the pid found is recorded at once";
  auto final = Wait("job-u", true);
  ASSERT_TRUE(final.has_value());
  EXPECT_EQ(final->state(), v1::Job::failed);
  EXPECT_EQ(final->exit_code(), 3);
  EXPECT_EQ(final->logs().stdout(), "hi\n");
}

// Same, but the program ran to its end before the next agent looked: it is
// reported with its status, not lost (which would run it a second time).
TEST_F(RecoveryTest, AnAttemptThatEndedBeforeItsPidWasRecordedIsReportedNotRerun) {
  ASSERT_GT(StartAndLeave("job-v", "echo done", /*keep_running=*/true), 0);
  ForgetPids();
  const std::string status = root + "/jobs/job-v-1/status";
  for (int i = 0; i < 500 && !ReadExitStatus(status).has_value(); ++i) usleep(10000);
  ASSERT_EQ(ReadExitStatus(status), 0);
  updates.clear();
  Open(true);
  auto rec = exec->Recover();
  ASSERT_TRUE(rec.ok());
  EXPECT_EQ(rec->adopted + rec->ended, 1);
  auto final = Wait("job-v", true);
  ASSERT_TRUE(final.has_value());
  EXPECT_EQ(final->state(), v1::Job::succeeded) << final->message();
  EXPECT_EQ(final->logs().stdout(), "done\n");
}

// No pid and nothing holds the status file: the supervisor never started.
TEST_F(RecoveryTest, AnAttemptWhoseSupervisorNeverStartedIsReportedLost) {
  const std::string dir = PutRecord("job-n", 0, 0);
  std::ofstream(dir + "/status").flush();
  auto final = RecoverLost("job-n");
  ASSERT_TRUE(final.has_value());
  EXPECT_NE(final->message().find("while it was starting the attempt"), std::string::npos)
      << final->message();
}

TEST_F(RecoveryTest, StopJobsOnExitStopsThemAndTheNextRunReportsThemLost) {
  const pid_t pid = StartAndLeave("job-s", "exec sleep 30", /*keep_running=*/false);
  ASSERT_GT(pid, 0);
  EXPECT_NE(kill(pid, 0), 0) << "still running after the executor stopped it";
  updates.clear();
  Open(true);
  ASSERT_TRUE(exec->Recover().ok());
  auto final = Wait("job-s", true);
  ASSERT_TRUE(final.has_value());
  EXPECT_EQ(final->state(), v1::Job::lost);
  EXPECT_NE(final->message().find("--stop-jobs-on-exit"), std::string::npos) << final->message();
}

TEST_F(RecoveryTest, APidNowUsedByAnotherProcessIsNeitherAdoptedNorKilled) {
  // A record naming this very test process, but with another start time: the
  // attempt's supervisor is gone and its pid reused.
  PutRecord("job-p", getpid(), *ProcessStartTicks(getpid()) + 1);
  auto final = RecoverLost("job-p");
  ASSERT_TRUE(final.has_value());
  EXPECT_NE(final->message().find("without saying how the program ended"), std::string::npos)
      << final->message();
  // (Had the recovery signalled the recorded pid, this test process would
  // be dead by now.)
}

TEST_F(RecoveryTest, ARecordFromAnotherBootIsReportedLost) {
  executor::AttemptRecords records(root + "/attempts");
  ASSERT_TRUE(records.Init().ok());
  v1::AttemptRecord r = Sample("job-b", 1);
  r.set_dir(root + "/jobs/job-b-1");
  r.set_boot_id("an-earlier-boot");
  ASSERT_TRUE(records.Put(r).ok());
  Open(true);
  ASSERT_TRUE(exec->Recover().ok());
  auto final = Wait("job-b", true);
  ASSERT_TRUE(final.has_value());
  EXPECT_EQ(final->state(), v1::Job::lost);
  EXPECT_NE(final->message().find("machine restarted"), std::string::npos) << final->message();
}

}  // namespace
}  // namespace portolan::executor
