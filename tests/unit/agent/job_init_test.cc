// SPDX-License-Identifier: Apache-2.0
// portolan-job-init on its own, as the agent starts it: STATUS_FD ERROR_FD
// PROGRAM ARGV0 [ARGS...]. On x86-64 it is the freestanding build (no libc);
// the sanitizer build tests the libc one.
#include "agent/executor/job_init.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "portolan/base/files.h"

namespace portolan::executor::job_init {
namespace {

extern "C" char** environ;

class JobInitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("job_init_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    ASSERT_EQ(pipe2(error_pipe_, O_CLOEXEC), 0);
    status_fd_ = open((dir_ / "status").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ASSERT_GE(status_fd_, 0);
  }
  void TearDown() override {
    if (error_pipe_[0] >= 0) close(error_pipe_[0]);
    if (error_pipe_[1] >= 0) close(error_pipe_[1]);
    if (status_fd_ >= 0) close(status_fd_);
    std::filesystem::remove_all(dir_);
  }

  // Starts the init on `program` with `args` (argv[0] first), its status
  // file and error pipe at descriptors 3 and 4 (not close-on-exec), in a
  // session of its own as the agent starts an unsandboxed job.
  pid_t Start(const std::string& program, std::vector<std::string> args) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, status_fd_, 3);
    posix_spawn_file_actions_adddup2(&fa, error_pipe_[1], 4);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
    std::vector<std::string> all = {PORTOLAN_JOB_INIT, "3", "4", program};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    EXPECT_EQ(posix_spawn(&pid, PORTOLAN_JOB_INIT, &fa, &attr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(error_pipe_[1]);
    error_pipe_[1] = -1;
    return pid;
  }
  // What the error pipe carried once every copy of its write end closed.
  std::string ErrorPipe() {
    std::string out;
    char buf[64];
    ssize_t n;
    while ((n = read(error_pipe_[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }
  // The init's exit code; -1 (and its process group killed) when it has
  // not ended within 10 s.
  static int ExitCode(pid_t pid) {
    int st = 0;
    for (int i = 0; i < 1000; ++i) {
      const pid_t r = waitpid(pid, &st, WNOHANG);
      if (r == pid) {
        EXPECT_TRUE(WIFEXITED(st)) << st;
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
      }
      EXPECT_EQ(r, 0);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill(-pid, SIGKILL);
    waitpid(pid, &st, 0);
    ADD_FAILURE() << "portolan-job-init " << pid << " did not end within 10 s";
    return -1;
  }
  std::string StatusFile() const { return base::ReadSmallFile((dir_ / "status").string()); }

  std::filesystem::path dir_;
  int error_pipe_[2] = {-1, -1};
  int status_fd_ = -1;
};

TEST_F(JobInitTest, RecordsTheProgramsWaitStatusAndExitsWithItsCode) {
  const pid_t init = Start("/bin/sh", {"sh", "-c", "exit 3"});
  EXPECT_EQ(ErrorPipe(), "");  // exec succeeded: EOF without a record
  EXPECT_EQ(ExitCode(init), 3);
  EXPECT_EQ(StatusFile(), std::to_string(3 << 8) + "\n");
}

TEST_F(JobInitTest, PassesArgumentsAndEnvironmentThrough) {
  setenv("PORTOLAN_JOB_INIT_TEST", "through", 1);
  const std::string out = (dir_ / "out").string();
  const pid_t init = Start(
      "/bin/sh",
      {"sh", "-c", "printf '%s %s' \"$0\" \"$PORTOLAN_JOB_INIT_TEST\" > \"$1\"", "zero", out});
  unsetenv("PORTOLAN_JOB_INIT_TEST");
  EXPECT_EQ(ExitCode(init), 0);
  EXPECT_EQ(base::ReadSmallFile(out), "zero through");
  EXPECT_EQ(StatusFile(), "0\n");
}

TEST_F(JobInitTest, AProgramThatCannotBeExecutedIsReportedOnTheErrorPipe) {
  const pid_t init = Start((dir_ / "no-such-program").string(), {"x"});
  const std::string record = ErrorPipe();
  ASSERT_EQ(record.size(), sizeof(ChildError));
  ChildError ce;
  memcpy(&ce, record.data(), sizeof ce);
  EXPECT_EQ(ce.step, Step::kExec);
  EXPECT_EQ(ce.err, ENOENT);
  EXPECT_EQ(ExitCode(init), 127);
  EXPECT_EQ(StatusFile(), std::to_string(127 << 8) + "\n");
}

TEST_F(JobInitTest, ForwardsSigtermToTheJobsProcessGroup) {
  // The program (and a child of its own in the same group) trap TERM; the
  // init leads the group and must pass the signal on, not die of it.
  const std::string ready = (dir_ / "ready").string();
  const pid_t init =
      Start("/bin/sh", {"sh", "-c",
                        "trap 'exit 7' TERM; (trap 'exit 0' TERM; while :; do sleep 0.05; done) & "
                        "touch \"$0\"; while :; do sleep 0.05; done",
                        ready});
  for (int i = 0; i < 400 && !std::filesystem::exists(ready); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(std::filesystem::exists(ready));
  ASSERT_EQ(kill(init, SIGTERM), 0);
  EXPECT_EQ(ExitCode(init), 7);
  EXPECT_EQ(StatusFile(), std::to_string(7 << 8) + "\n");
}

TEST_F(JobInitTest, AProgramKilledByASignalEndsTheInitWith128PlusIt) {
  const pid_t init = Start("/bin/sh", {"sh", "-c", "kill -KILL $$"});
  EXPECT_EQ(ExitCode(init), 128 + SIGKILL);
  EXPECT_EQ(StatusFile(), std::to_string(SIGKILL) + "\n");
}

TEST_F(JobInitTest, RefusesToRunWithoutItsDescriptors) {
  const pid_t init = Start("/bin/true", {});  // no ARGV0: too few arguments
  EXPECT_EQ(ExitCode(init), 2);
  EXPECT_EQ(StatusFile(), "");
}

}  // namespace
}  // namespace portolan::executor::job_init
