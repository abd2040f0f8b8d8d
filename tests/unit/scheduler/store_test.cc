#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>

#include "portolan/store.h"

namespace portolan {
namespace {

std::string TempDir() {
  std::string d = std::filesystem::temp_directory_path() /
                  ("portolan-store-" + std::to_string(getpid()) + "-" +
                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(d);
  return d;
}

TEST(SqliteStoreTest, RoundTripsAcrossReopen) {
  std::string dir = TempDir();
  {
    auto s = OpenSqliteStore(dir);
    ASSERT_TRUE(s.ok()) << s.status();
    v1::Job j;
    j.set_id("job-1");
    j.set_tenant("acme");
    j.set_state(v1::Job::queued);
    j.add_command("/bin/true");
    ASSERT_TRUE((*s)->PutJob(j).ok());
    j.set_state(v1::Job::succeeded);
    ASSERT_TRUE((*s)->PutJob(j).ok());
    v1::Agent a;
    a.set_id("a1");
    a.set_site("hongkong-1");
    ASSERT_TRUE((*s)->PutAgent(a).ok());
    v1::JobLogs l;
    l.set_job_id("job-1");
    l.set_stdout("hello\n");
    ASSERT_TRUE((*s)->PutLogs(l).ok());
  }
  auto s = OpenSqliteStore(dir);
  ASSERT_TRUE(s.ok());
  auto jobs = (*s)->LoadJobs();
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ((*jobs)[0].state(), v1::Job::succeeded);
  EXPECT_EQ((*s)->LoadAgents()->at(0).site(), "hongkong-1");
  EXPECT_EQ((*s)->GetLogs("job-1")->stdout(), "hello\n");
  EXPECT_EQ((*s)->GetLogs("job-2").status().code(), absl::StatusCode::kNotFound);
  std::filesystem::remove_all(dir);
}

TEST(SqliteStoreTest, RefusesForeignDatabase) {
  std::string dir = TempDir();
  std::filesystem::create_directories(dir);
  sqlite3* db;
  sqlite3_open((dir + "/portolan.db").c_str(), &db);
  sqlite3_exec(db, "CREATE TABLE other(x)", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  auto s = OpenSqliteStore(dir);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("not a Portolan state database"), absl::string_view::npos)
      << s.status();
  std::filesystem::remove_all(dir);
}

TEST(SqliteStoreTest, RefusesCorruptFile) {
  std::string dir = TempDir();
  std::filesystem::create_directories(dir);
  FILE* f = fopen((dir + "/portolan.db").c_str(), "w");
  fputs("this is not sqlite at all, just some text that is long enough to matter........", f);
  fclose(f);
  auto s = OpenSqliteStore(dir);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("portolan.db"), absl::string_view::npos) << s.status();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace portolan
