// SPDX-License-Identifier: Apache-2.0
// AttemptDirGc on real directories: what is kept, for how long, what goes,
// and that removal never follows a link a job left.
#include "portolan/executor/attempt_gc.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "../../support/fake_clock.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace portolan::executor {
namespace {

namespace fs = std::filesystem;

class AttemptDirGcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = (fs::temp_directory_path() /
             absl::StrCat("attempt-gc-", getpid(), "-",
                          ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                .string();
    fs::remove_all(root_);
    fs::create_directories(root_ + "/jobs");
  }
  void TearDown() override { fs::remove_all(root_); }

  // An attempt's directory as the executor makes it, with a log and a file
  // in its working directory.
  std::string MakeAttempt(const std::string& name) {
    const std::string dir = root_ + "/jobs/" + name;
    fs::create_directories(dir + "/work/sub");
    std::ofstream(dir + "/stdout.log") << "out\n";
    std::ofstream(dir + "/work/sub/result") << "42\n";
    return dir;
  }
  AttemptDirGc::Options Opts(absl::Duration keep_for, size_t keep_max) {
    return {root_ + "/jobs", keep_for, keep_max, /*thread=*/false};
  }

  std::string root_;
  testing::FakeClock clock_;
};

TEST_F(AttemptDirGcTest, AnEndedAttemptsDirectoryStaysForTheRetentionThenGoes) {
  AttemptDirGc gc(Opts(absl::Hours(24), 0), &clock_);
  const std::string a = MakeAttempt("job-a-1");
  gc.Ended("job-a-1");
  clock_.Advance(absl::Hours(23));
  EXPECT_EQ(gc.Collect(), 0u);
  EXPECT_TRUE(fs::exists(a + "/work/sub/result"));
  EXPECT_EQ(gc.kept(), 1u);
  clock_.Advance(absl::Hours(1));
  EXPECT_EQ(gc.Collect(), 1u);
  EXPECT_FALSE(fs::exists(a));
  EXPECT_EQ(gc.removed(), 1u);
  EXPECT_EQ(gc.kept(), 0u);
}

TEST_F(AttemptDirGcTest, AtMostTheNewestKeepMaxStay) {
  AttemptDirGc gc(Opts(absl::InfiniteDuration(), 2), &clock_);
  for (const char* n : {"job-a-1", "job-b-1", "job-c-1"}) {
    MakeAttempt(n);
    gc.Ended(n);
    clock_.Advance(absl::Seconds(1));
  }
  EXPECT_EQ(gc.Collect(), 1u);
  EXPECT_FALSE(fs::exists(root_ + "/jobs/job-a-1"));
  EXPECT_TRUE(fs::exists(root_ + "/jobs/job-b-1"));
  EXPECT_TRUE(fs::exists(root_ + "/jobs/job-c-1"));
  clock_.Advance(absl::Hours(10000));  // never for their age
  EXPECT_EQ(gc.Collect(), 0u);
}

TEST_F(AttemptDirGcTest, ZeroRetentionRemovesAtOnceAndNamesThatAreNotOneEntryAreRefused) {
  AttemptDirGc gc(Opts(absl::ZeroDuration(), 0), &clock_);
  MakeAttempt("job-a-1");
  gc.Ended("job-a-1");
  gc.Ended("..");
  gc.Ended("job-a-1/work");
  gc.Ended("");
  EXPECT_EQ(gc.kept(), 1u);
  EXPECT_EQ(gc.Collect(), 1u);
  EXPECT_FALSE(fs::exists(root_ + "/jobs/job-a-1"));
  EXPECT_TRUE(fs::exists(root_ + "/jobs"));
}

TEST_F(AttemptDirGcTest, RemovalNeverFollowsALinkTheJobLeft) {
  const std::string outside = root_ + "/outside";
  fs::create_directories(outside);
  std::ofstream(outside + "/precious") << "keep me\n";
  const std::string a = MakeAttempt("job-a-1");
  fs::create_directory_symlink(outside, a + "/work/link-to-outside");
  fs::create_symlink(outside + "/precious", a + "/work/sub/link-to-file");
  AttemptDirGc gc(Opts(absl::ZeroDuration(), 0), &clock_);
  gc.Ended("job-a-1");
  EXPECT_EQ(gc.Collect(), 1u);
  EXPECT_FALSE(fs::exists(a));
  EXPECT_TRUE(fs::exists(outside + "/precious"));
}

TEST_F(AttemptDirGcTest, LeftoversOfAnEarlierAgentAreAdoptedByTheirAgeAndLiveOnesAreNot) {
  const std::string old_dir = MakeAttempt("job-old-1");
  const std::string recent = MakeAttempt("job-recent-1");
  const std::string live = MakeAttempt("job-live-1");
  std::ofstream(root_ + "/jobs/stray-file") << "not a directory\n";
  // job-old-1 was last touched two days before the (fake) now.
  const absl::Time two_days_ago = clock_.Now() - absl::Hours(48);
  const timespec times[2] = {absl::ToTimespec(two_days_ago), absl::ToTimespec(two_days_ago)};
  ASSERT_EQ(utimensat(AT_FDCWD, old_dir.c_str(), times, 0), 0);
  const timespec now[2] = {absl::ToTimespec(clock_.Now()), absl::ToTimespec(clock_.Now())};
  ASSERT_EQ(utimensat(AT_FDCWD, recent.c_str(), now, 0), 0);

  AttemptDirGc gc(Opts(absl::Hours(24), 0), &clock_);
  EXPECT_EQ(gc.Adopt({"job-live-1"}), 2u);
  EXPECT_EQ(gc.Collect(), 1u);
  EXPECT_FALSE(fs::exists(old_dir));
  EXPECT_TRUE(fs::exists(recent));
  EXPECT_TRUE(fs::exists(live));
  EXPECT_TRUE(fs::exists(root_ + "/jobs/stray-file"));
  clock_.Advance(absl::Hours(24));
  EXPECT_EQ(gc.Collect(), 1u);
  EXPECT_FALSE(fs::exists(recent));
  EXPECT_TRUE(fs::exists(live));
}

TEST_F(AttemptDirGcTest, ItsThreadRemovesWhatIsDueWithoutBeingAsked) {
  AttemptDirGc::Options o = Opts(absl::ZeroDuration(), 0);
  o.thread = true;
  AttemptDirGc gc(o, base::RealClock());
  const std::string a = MakeAttempt("job-a-1");
  gc.Ended("job-a-1");
  // The count follows the removal (after the tree is gone, as the thread
  // counts what it removed): wait for both.
  for (int i = 0; i < 500 && (fs::exists(a) || gc.removed() == 0); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_FALSE(fs::exists(a));
  EXPECT_EQ(gc.removed(), 1u);
}

}  // namespace
}  // namespace portolan::executor
