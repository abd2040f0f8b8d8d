// SPDX-License-Identifier: Apache-2.0
// The site's cache of staged inputs on real directories: within its bound
// nothing goes; over it the entries used longest ago go first, whole, never
// the one just kept; a use (TouchCacheEntry) makes an entry the newest.
#include "portolan/agent/staging_cache.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace portolan::agent {
namespace {

namespace fs = std::filesystem;

class StagingCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = (fs::temp_directory_path() /
             absl::StrCat("staging-cache-", getpid(), "-",
                          ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                .string();
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // <root>/<dataset>/v<version> holding `bytes` bytes of data, last used
  // `age_s` seconds ago; with its digest file unless `digest` is false.
  std::string Entry(const std::string& dataset, int version, size_t bytes, int age_s,
                    bool digest = true) {
    const std::string e = absl::StrCat(root_, "/", dataset, "/v", version);
    fs::create_directories(e + "/data/sub");
    std::ofstream(e + "/data/sub/part") << std::string(bytes, 'x');
    if (digest) std::ofstream(e + "/digest") << bytes << " " << std::string(64, 'a') << "\n";
    struct timespec times[2];
    clock_gettime(CLOCK_REALTIME, &times[0]);
    times[0].tv_sec -= age_s;
    times[1] = times[0];
    EXPECT_EQ(utimensat(AT_FDCWD, e.c_str(), times, 0), 0);
    return e;
  }

  std::string root_;
};

TEST_F(StagingCacheTest, WithinItsBoundOrUnboundedNothingGoes) {
  const std::string a = Entry("orders", 1, 1000, 300), b = Entry("reads", 4, 2000, 200);
  CacheTrim t = TrimCache(root_, 3000, b);
  EXPECT_EQ(t.entries_removed, 0u);
  EXPECT_EQ(t.bytes_kept, 3000u);
  t = TrimCache(root_, 0, b);  // no bound
  EXPECT_EQ(t.entries_removed, 0u);
  EXPECT_EQ(t.bytes_kept, 3000u);
  EXPECT_TRUE(fs::exists(a));
  EXPECT_TRUE(fs::exists(b));
}

TEST_F(StagingCacheTest, OverItsBoundTheLeastRecentlyUsedGoFirstAndWhole) {
  const std::string oldest = Entry("orders", 1, 1000, 300);
  const std::string older = Entry("reads", 4, 1000, 200);
  const std::string newer = Entry("logs", 2, 1000, 100);
  const std::string kept = Entry("images", 7, 1000, 0);
  const CacheTrim t = TrimCache(root_, 2500, kept);
  EXPECT_EQ(t.entries_removed, 2u);
  EXPECT_EQ(t.bytes_removed, 2000u);
  EXPECT_EQ(t.bytes_kept, 2000u);
  EXPECT_FALSE(fs::exists(oldest));
  EXPECT_FALSE(fs::exists(older));
  EXPECT_TRUE(fs::exists(newer + "/data/sub/part"));
  EXPECT_TRUE(fs::exists(kept + "/data/sub/part"));
  // Nothing of the removed entries is left beside them (no .gone-* either).
  EXPECT_TRUE(fs::is_empty(root_ + "/orders"));
  EXPECT_TRUE(fs::is_empty(root_ + "/reads"));
}

TEST_F(StagingCacheTest, TheEntryJustKeptStaysEvenAloneOverTheBound) {
  const std::string other = Entry("orders", 1, 100, 0);
  const std::string big = Entry("reads", 4, 5000, 600);  // made from an old copy: old mtime
  const CacheTrim t = TrimCache(root_, 1000, big);
  EXPECT_TRUE(fs::exists(big));
  EXPECT_FALSE(fs::exists(other));
  EXPECT_EQ(t.entries_removed, 1u);
  EXPECT_EQ(t.bytes_kept, 5000u);
}

TEST_F(StagingCacheTest, AUseMakesAnEntryTheNewest) {
  const std::string used = Entry("orders", 1, 1000, 300);
  const std::string idle = Entry("reads", 4, 1000, 100);
  TouchCacheEntry(used);
  const std::string kept = Entry("logs", 2, 1000, 0);
  TrimCache(root_, 2000, kept);
  EXPECT_TRUE(fs::exists(used));
  EXPECT_FALSE(fs::exists(idle));
}

TEST_F(StagingCacheTest, AnEntryWithoutItsDigestIsMeasuredStagesInProgressStayAndHalfRemovalsGo) {
  const std::string measured = Entry("orders", 1, 1500, 300, /*digest=*/false);
  // A stage filling its copy aside (agent/staging.cc's .new-*): not an entry.
  fs::create_directories(root_ + "/reads/.new-c1/data");
  std::ofstream(root_ + "/reads/.new-c1/data/part") << std::string(4000, 'y');
  // What a removal the agent stopped in left: goes.
  fs::create_directories(root_ + "/orders/.gone-c2/data");
  const std::string kept = Entry("logs", 2, 100, 0);
  const CacheTrim t = TrimCache(root_, 1000, kept);
  EXPECT_FALSE(fs::exists(root_ + "/orders/.gone-c2"));
  EXPECT_EQ(t.entries_removed, 1u);
  EXPECT_EQ(t.bytes_removed, 1500u);
  EXPECT_FALSE(fs::exists(measured));
  EXPECT_TRUE(fs::exists(root_ + "/reads/.new-c1/data/part"));
}

}  // namespace
}  // namespace portolan::agent
