// SPDX-License-Identifier: Apache-2.0
#include <gtest/gtest.h>

#include <sqlite3.h>
#include <unistd.h>
#include "absl/strings/str_cat.h"

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "portolan/base/strings.h"
#include "portolan/store/store.h"

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
    auto s = store::OpenSqliteStore(dir);
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
  auto s = store::OpenSqliteStore(dir);
  ASSERT_TRUE(s.ok());
  auto jobs = (*s)->LoadJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_TRUE(jobs->active.empty());
  ASSERT_EQ(jobs->ended.size(), 1u);
  EXPECT_EQ(jobs->ended[0].id, "job-1");
  EXPECT_EQ(jobs->ended[0].state, v1::Job::succeeded);
  auto job = (*s)->GetJob("job-1");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state(), v1::Job::succeeded);
  EXPECT_EQ(job->command(0), "/bin/true");
  EXPECT_EQ((*s)->GetJob("job-2").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*s)->LoadAgents()->at(0).site(), "hongkong-1");
  EXPECT_EQ((*s)->GetLogs("job-1")->stdout(), "hello\n");
  EXPECT_EQ((*s)->GetLogs("job-2").status().code(), absl::StatusCode::kNotFound);
  std::filesystem::remove_all(dir);
}

TEST(SqliteStoreTest, LoadsManyJobsInSubmitOrder) {
  // More records than one decoding chunk (2,048), stored out of submit
  // order, with ties on the submit time broken by id.
  std::string dir = TempDir();
  constexpr int kJobs = 5000;
  {
    auto s = store::OpenSqliteStore(dir);
    ASSERT_TRUE(s.ok());
    for (int i = kJobs - 1; i >= 0; --i) {
      v1::Job j;
      j.set_id(absl::StrCat("job-", i % 2 == 0 ? "b" : "a", i));
      j.set_tenant("t");
      j.mutable_submitted_at()->set_seconds(1000 + i / 2);  // pairs share a time
      j.add_command(absl::StrCat("/bin/", i));
      ASSERT_TRUE((*s)->PutJob(j).ok());
    }
  }
  auto s = store::OpenSqliteStore(dir);
  ASSERT_TRUE(s.ok());
  auto loaded = (*s)->LoadJobs();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const std::vector<v1::Job>& jobs = loaded->active;
  ASSERT_EQ(jobs.size(), static_cast<size_t>(kJobs));
  EXPECT_TRUE(loaded->ended.empty());
  for (int i = 0; i < kJobs; i += 2) {
    // Same second: "job-a<odd>" sorts before "job-b<even>".
    EXPECT_EQ(jobs[i].id(), absl::StrCat("job-a", i + 1)) << i;
    EXPECT_EQ(jobs[i + 1].id(), absl::StrCat("job-b", i)) << i;
    EXPECT_EQ(jobs[i + 1].command(0), absl::StrCat("/bin/", i));
  }
  std::filesystem::remove_all(dir);
}

// Ended jobs come back as summaries (from the index, not their records) and
// the rest whole; either is readable by id.
TEST(SqliteStoreTest, LoadsEndedJobsAsSummariesAndTheRestWhole) {
  std::string dir = TempDir();
  const std::vector<v1::Job::State> states = {
      v1::Job::queued, v1::Job::placed,    v1::Job::running, v1::Job::succeeded,
      v1::Job::failed, v1::Job::cancelled, v1::Job::lost,    v1::Job::unschedulable};
  {
    auto s = store::OpenSqliteStore(dir);
    ASSERT_TRUE(s.ok());
    for (size_t i = 0; i < states.size(); ++i) {
      v1::Job j;
      j.set_id(absl::StrCat("job-", i));
      j.set_tenant(i % 2 == 0 ? "acme" : "globex");
      j.set_state(states[i]);
      j.mutable_submitted_at()->set_seconds(100 + i);
      j.mutable_submitted_at()->set_nanos(7);
      if (i >= 6) j.set_idempotency_key(absl::StrCat("key-", i));
      j.add_command(absl::StrCat("/bin/", i));
      ASSERT_TRUE((*s)->PutJob(j).ok());
    }
  }
  auto s = store::OpenSqliteStore(dir);
  ASSERT_TRUE(s.ok());
  auto jobs = (*s)->LoadJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->active.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(jobs->active[i].id(), absl::StrCat("job-", i));
    EXPECT_EQ(jobs->active[i].command(0), absl::StrCat("/bin/", i));
  }
  ASSERT_EQ(jobs->ended.size(), 5u);
  std::map<std::string, store::JobSummary> ended;
  for (const store::JobSummary& e : jobs->ended) ended[e.id] = e;
  for (size_t i = 3; i < states.size(); ++i) {
    const std::string id = absl::StrCat("job-", i);
    ASSERT_TRUE(ended.contains(id)) << id;
    EXPECT_EQ(ended[id].state, states[i]) << id;
    EXPECT_EQ(ended[id].tenant, i % 2 == 0 ? "acme" : "globex") << id;
    EXPECT_EQ(ended[id].submitted_ns, (100 + static_cast<int64_t>(i)) * 1'000'000'000 + 7) << id;
    EXPECT_EQ(ended[id].idempotency_key, i >= 6 ? absl::StrCat("key-", i) : "") << id;
    auto job = (*s)->GetJob(id);
    ASSERT_TRUE(job.ok()) << job.status();
    EXPECT_EQ(job->command(0), absl::StrCat("/bin/", i));
  }
  std::filesystem::remove_all(dir);
}

TEST(SqliteStoreTest, UndecodableJobRecordIsNamed) {
  std::string dir = TempDir();
  {
    auto s = store::OpenSqliteStore(dir);
    ASSERT_TRUE(s.ok());
    for (int i = 0; i < 3000; ++i) {
      v1::Job j;
      j.set_id(absl::StrCat("job-", i));
      ASSERT_TRUE((*s)->PutJob(j).ok());
    }
  }
  sqlite3* db;
  ASSERT_EQ(sqlite3_open((dir + "/portolan.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE jobs SET data = x'ffffffff' WHERE id = 'job-2500'", nullptr,
                         nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto s = store::OpenSqliteStore(dir);
  ASSERT_TRUE(s.ok());
  auto jobs = (*s)->LoadJobs();
  EXPECT_EQ(jobs.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(jobs.status().message().find("job-2500"), std::string::npos) << jobs.status();
  std::filesystem::remove_all(dir);
}

// A long list of ids is read on a connection of its own while writes go on;
// ids never stored are skipped.
TEST(SqliteStoreTest, ReadsManyJobsByIdWhileWritesGoOn) {
  const std::string dir = TempDir();
  auto s = store::OpenSqliteStore(dir);
  ASSERT_TRUE(s.ok()) << s.status();
  std::vector<std::string> ids;
  for (int i = 0; i < 700; ++i) {
    v1::Job j;
    j.set_id(absl::StrCat("job-", i));
    j.set_tenant("acme");
    j.set_state(v1::Job::succeeded);
    ASSERT_TRUE((*s)->PutJob(j).ok());
    if (i % 2 == 0) ids.push_back(j.id());
  }
  ids.push_back("job-never");
  std::thread writer([&] {
    for (int i = 700; i < 900; ++i) {
      v1::Job j;
      j.set_id(absl::StrCat("job-", i));
      EXPECT_TRUE((*s)->PutJob(j).ok());
    }
  });
  std::map<std::string, v1::Job::State> read;
  ASSERT_TRUE((*s)->ReadJobs(ids, [&](v1::Job j) { read[j.id()] = j.state(); }).ok());
  writer.join();
  EXPECT_EQ(read.size(), 350u);
  EXPECT_EQ(read.count("job-never"), 0u);
  EXPECT_EQ(read["job-698"], v1::Job::succeeded);
  std::filesystem::remove_all(dir);
}

TEST(SqliteStoreTest, RefusesForeignDatabase) {
  std::string dir = TempDir();
  std::filesystem::create_directories(dir);
  sqlite3* db;
  sqlite3_open((dir + "/portolan.db").c_str(), &db);
  sqlite3_exec(db, "CREATE TABLE other(x)", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  auto s = store::OpenSqliteStore(dir);
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
  auto s = store::OpenSqliteStore(dir);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("portolan.db"), absl::string_view::npos) << s.status();
  std::filesystem::remove_all(dir);
}

TEST(SqliteStoreTest, MigratesAVersionOneDatabaseKeepingItsJobs) {
  std::string dir = TempDir();
  std::filesystem::create_directories(dir);
  sqlite3* db;
  sqlite3_open((dir + "/portolan.db").c_str(), &db);
  v1::Job j;
  j.set_id("job-old");
  j.set_tenant("acme");
  std::string blob = j.SerializeAsString();
  sqlite3_exec(
      db,
      "CREATE TABLE jobs (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, state INTEGER NOT NULL,"
      " submitted_ns INTEGER NOT NULL, data BLOB NOT NULL);"
      "CREATE TABLE agents (id TEXT PRIMARY KEY, site TEXT NOT NULL, data BLOB NOT NULL);"
      "CREATE TABLE job_logs (job_id TEXT PRIMARY KEY, data BLOB NOT NULL);"
      "PRAGMA user_version=1;",
      nullptr, nullptr, nullptr);
  sqlite3_stmt* st;
  sqlite3_prepare_v2(db, "INSERT INTO jobs VALUES ('job-old', 'acme', 1, 0, ?)", -1, &st, nullptr);
  sqlite3_bind_blob(st, 1, blob.data(), blob.size(), SQLITE_TRANSIENT);
  ASSERT_EQ(sqlite3_step(st), SQLITE_DONE);
  sqlite3_finalize(st);
  // An ended job submitted with an idempotency key: schema 3 indexes the key
  // beside the record, copied from the record by the migration.
  v1::Job done;
  done.set_id("job-done");
  done.set_tenant("acme");
  done.set_state(v1::Job::succeeded);
  done.set_idempotency_key("order-7");
  done.mutable_submitted_at()->set_seconds(5);
  blob = done.SerializeAsString();
  sqlite3_prepare_v2(db, "INSERT INTO jobs VALUES ('job-done', 'acme', 4, 5000000000, ?)", -1, &st,
                     nullptr);
  sqlite3_bind_blob(st, 1, blob.data(), blob.size(), SQLITE_TRANSIENT);
  ASSERT_EQ(sqlite3_step(st), SQLITE_DONE);
  sqlite3_finalize(st);
  sqlite3_close(db);

  auto s = store::OpenSqliteStore(dir);
  ASSERT_TRUE(s.ok()) << s.status();
  auto jobs = (*s)->LoadJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->active.size(), 1u);
  EXPECT_EQ(jobs->active[0].id(), "job-old");
  ASSERT_EQ(jobs->ended.size(), 1u);
  EXPECT_EQ(jobs->ended[0].id, "job-done");
  EXPECT_EQ(jobs->ended[0].idempotency_key, "order-7");
  EXPECT_EQ(jobs->ended[0].submitted_ns, 5'000'000'000);
  EXPECT_EQ((*s)->GetJob("job-done")->idempotency_key(), "order-7");
  v1::Tenant t;
  t.set_id("acme");
  t.set_ciio(true);
  ASSERT_TRUE((*s)->PutTenant(t).ok());
  EXPECT_TRUE((*s)->LoadTenants()->at(0).ciio());
  std::filesystem::remove_all(dir);
}

TEST(SqliteStoreTest, PolicyLedgerAuditAndDecisionsPersist) {
  std::string dir = TempDir();
  {
    auto s = store::OpenSqliteStore(dir);
    ASSERT_TRUE(s.ok());
    for (int i = 1; i <= 2; ++i) {
      v1::PolicyVersion v;
      v.set_version("v" + std::to_string(i));
      v.mutable_policy()->add_jurisdictions("CN");
      ASSERT_TRUE((*s)->PutPolicyVersion(v).ok());
    }
    v1::LedgerEntry e;
    e.set_tenant("acme");
    e.set_year(2026);
    e.set_origin("CN");
    e.set_subjects(60000);
    ASSERT_TRUE((*s)->PutLedgerEntry(e).ok());
    e.set_subjects(110000);  // same key: replaced
    ASSERT_TRUE((*s)->PutLedgerEntry(e).ok());
    for (const char* job : {"j1", "j2", "j3"}) {
      v1::AuditRecord r;
      r.set_job(job);
      r.set_tenant(std::string(job) == "j2" ? "globex" : "acme");
      ASSERT_TRUE((*s)->AppendAudit(r).ok());
    }
    v1::Decision d;
    d.set_feasible(true);
    d.mutable_placement()->set_site("singapore-1");
    ASSERT_TRUE((*s)->PutDecision("j1", d).ok());
  }
  auto s = store::OpenSqliteStore(dir);
  ASSERT_TRUE(s.ok());
  auto versions = (*s)->LoadPolicyVersions();
  ASSERT_EQ(versions->size(), 2u);
  EXPECT_EQ(versions->back().version(), "v2");
  ASSERT_EQ((*s)->LoadLedger()->size(), 1u);
  EXPECT_EQ((*s)->LoadLedger()->at(0).subjects(), 110000u);
  auto acme = (*s)->ListAudit("acme", "", 10);
  ASSERT_EQ(acme->size(), 2u);
  EXPECT_EQ(acme->at(0).job(), "j3");  // newest first
  EXPECT_EQ((*s)->ListAudit("", "", 1)->size(), 1u);
  EXPECT_EQ((*s)->ListAudit("", "j2", 10)->at(0).tenant(), "globex");
  EXPECT_EQ((*s)->GetDecision("j1")->placement().site(), "singapore-1");
  EXPECT_EQ((*s)->GetDecision("j9").status().code(), absl::StatusCode::kNotFound);
  std::filesystem::remove_all(dir);
}

// Schema 3 kept one ledger row per destination; schema 4 keeps one per
// origin over all destinations, rebuilt from the audit trail.
TEST(SqliteStoreTest, Schema4RebuildsTheLedgerPerOriginFromTheAuditTrail) {
  std::string dir = TempDir();
  auto at = [](int y, int m, int d) {
    return base::ToProto(absl::FromCivil(absl::CivilDay(y, m, d), absl::UTCTimeZone()));
  };
  {
    auto s = store::OpenSqliteStore(dir);
    ASSERT_TRUE(s.ok());
    struct R {
      const char* tenant;
      const char* dataset;
      const char* origin;
      const char* to;
      uint32_t subjects, sensitive;
      int year;
    };
    for (const R& r : {R{"acme", "a1", "CN", "SG", 40000, 0, 2026},
                       R{"acme", "a2", "CN", "HK", 40000, 100, 2026},
                       R{"acme", "a1", "CN", "JP", 40000, 0, 2026},  // re-used: once
                       R{"acme", "e1", "EU", "SG", 60000, 0, 2026},  // its own origin
                       R{"acme", "g1", "CN", "SG", 0, 0, 2026},      // non-personal: no row
                       R{"acme", "old", "CN", "SG", 70000, 0, 2025},
                       R{"globex", "b1", "CN", "HK", 1000, 0, 2026}}) {
      v1::AuditRecord a;
      a.set_tenant(r.tenant);
      a.set_job("j");
      a.set_dataset(r.dataset);
      a.set_origin(r.origin);
      a.set_to_jurisdiction(r.to);
      a.set_subjects(r.subjects);
      a.set_sensitive_subjects(r.sensitive);
      *a.mutable_time() = at(r.year, 6, 1);
      ASSERT_TRUE((*s)->AppendAudit(a).ok());
    }
  }
  // Back to schema 3 as an earlier version left it: per-destination rows,
  // and no table of a later schema.
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir + "/portolan.db").c_str(), &db), SQLITE_OK);
    const char* sql =
        "DROP TABLE dataset_versions;"
        "DROP TABLE ledger;"
        "CREATE TABLE ledger (tenant TEXT NOT NULL, year INTEGER NOT NULL, jurisdiction TEXT NOT "
        "NULL, data BLOB NOT NULL, PRIMARY KEY (tenant, year, jurisdiction));"
        "INSERT INTO ledger VALUES ('acme', 2026, 'SG', x'');"
        "PRAGMA user_version=3;";
    ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  auto s = store::OpenSqliteStore(dir);
  ASSERT_TRUE(s.ok()) << s.status();
  auto ledger = (*s)->LoadLedger();
  ASSERT_TRUE(ledger.ok());
  std::map<std::string, v1::LedgerEntry> by;
  for (const auto& e : *ledger) by[absl::StrCat(e.tenant(), "/", e.year(), "/", e.origin())] = e;
  ASSERT_EQ(by.size(), 4u);
  EXPECT_EQ(by["acme/2026/CN"].subjects(), 80000u) << "a1 once, a2; g1 has no subjects";
  EXPECT_EQ(by["acme/2026/CN"].sensitive_subjects(), 100u);
  EXPECT_EQ(by["acme/2026/CN"].datasets_size(), 2);
  EXPECT_EQ(by["acme/2026/EU"].subjects(), 60000u);
  EXPECT_EQ(by["acme/2025/CN"].subjects(), 70000u);
  EXPECT_EQ(by["globex/2026/CN"].subjects(), 1000u);
  // New writes use the new key.
  v1::LedgerEntry e = by["acme/2026/CN"];
  e.set_subjects(90000);
  ASSERT_TRUE((*s)->PutLedgerEntry(e).ok());
  EXPECT_EQ((*s)->LoadLedger()->size(), 4u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace portolan

namespace portolan {
namespace {

v1::Job SmallJob(const std::string& id, v1::Job::State state) {
  v1::Job j;
  j.set_id(id);
  j.set_tenant("acme");
  j.set_state(state);
  j.add_command("/bin/true");
  return j;
}

// The core's agent-message path: a thread's writes staged, then one commit;
// other threads write as usual meanwhile.
TEST(SqliteStoreTest, DeferredWritesAreStagedThenCommittedAsOne) {
  std::string dir = TempDir();
  std::vector<size_t> commits;  // writes per commit
  std::mutex mu;
  auto s = store::OpenSqliteStore(dir, 0, [&](double, size_t writes) {
    std::lock_guard<std::mutex> l(mu);
    commits.push_back(writes);
  });
  ASSERT_TRUE(s.ok()) << s.status();
  store::Store& st = **s;
  st.BeginDeferred();
  ASSERT_TRUE(st.PutJob(SmallJob("job-1", v1::Job::queued)).ok());
  ASSERT_TRUE(st.PutJob(SmallJob("job-1", v1::Job::running)).ok());
  v1::Agent a;
  a.set_id("a1");
  a.set_site("hongkong-1");
  ASSERT_TRUE(st.PutAgent(a).ok());
  EXPECT_EQ(st.GetJob("job-1").status().code(), absl::StatusCode::kNotFound)
      << "staged, not yet written";
  std::thread other([&] { EXPECT_TRUE(st.PutJob(SmallJob("job-2", v1::Job::queued)).ok()); });
  other.join();
  EXPECT_TRUE(st.GetJob("job-2").ok()) << "another thread's write is not held back";
  {
    std::lock_guard<std::mutex> l(mu);
    EXPECT_EQ(commits, std::vector<size_t>{1});
  }
  ASSERT_TRUE(st.CommitDeferred().ok());
  {
    std::lock_guard<std::mutex> l(mu);
    EXPECT_EQ(commits.size(), 2u) << "the three staged writes went in one commit";
  }
  EXPECT_EQ(st.GetJob("job-1")->state(), v1::Job::running);
  EXPECT_EQ(st.LoadAgents()->size(), 1u);
  EXPECT_TRUE(st.CommitDeferred().ok()) << "nothing staged: nothing to do";
  ASSERT_TRUE(st.PutJob(SmallJob("job-3", v1::Job::queued)).ok());
  EXPECT_TRUE(st.GetJob("job-3").ok()) << "after the scope, writes go through at once";
  std::filesystem::remove_all(dir);
}

// A batch the database refuses (here: over the size cap) is written record
// by record, so what fits is kept and the error names what did not.
TEST(SqliteStoreTest, AFailedDeferredBatchKeepsWhatCanBeWritten) {
  std::string dir = TempDir();
  auto s = store::OpenSqliteStore(dir, 1);
  ASSERT_TRUE(s.ok()) << s.status();
  store::Store& st = **s;
  st.BeginDeferred();
  ASSERT_TRUE(st.PutJob(SmallJob("job-a", v1::Job::succeeded)).ok());
  v1::JobLogs big;
  big.set_job_id("job-a");
  big.set_stdout(std::string(3 << 20, 'x'));  // 3 MiB against a 1 MiB cap
  ASSERT_TRUE(st.PutLogs(big).ok());
  ASSERT_TRUE(st.PutJob(SmallJob("job-b", v1::Job::queued)).ok());
  absl::Status committed = st.CommitDeferred();
  EXPECT_FALSE(committed.ok());
  EXPECT_NE(committed.message().find("store logs"), std::string::npos) << committed;
  EXPECT_EQ(st.GetJob("job-a")->state(), v1::Job::succeeded);
  EXPECT_EQ(st.GetJob("job-b")->state(), v1::Job::queued);
  EXPECT_EQ(st.GetLogs("job-a").status().code(), absl::StatusCode::kNotFound);
  std::filesystem::remove_all(dir);
}

// PutJobAsync: many threads' jobs, each `done` called once with OK only
// after its record is durable, in fewer commits than writes; a store
// destroyed with writes queued commits them and calls every `done` first.
TEST(SqliteStoreTest, AsyncJobWritesAreDurableWhenDoneIsCalledAndShareCommits) {
  std::string dir = TempDir();
  constexpr int kThreads = 8, kEach = 50;
  std::atomic<size_t> commits{0};
  std::mutex mu;
  std::vector<std::string> failed, missing;
  std::atomic<int> done{0};
  {
    auto s = store::OpenSqliteStore(dir, 0, [&](double, size_t) { commits.fetch_add(1); });
    ASSERT_TRUE(s.ok()) << s.status();
    store::Store& st = **s;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kEach; ++i) {
          const std::string id = absl::StrCat("job-", t, "-", i);
          st.PutJobAsync(SmallJob(id, v1::Job::queued), [&, id](absl::Status written) {
            std::lock_guard<std::mutex> l(mu);
            if (!written.ok()) failed.push_back(absl::StrCat(id, ": ", written.message()));
            // Readable from the moment `done` runs.
            if (!st.GetJob(id).ok()) missing.push_back(id);
            done.fetch_add(1);
          });
        }
      });
    }
    for (auto& th : threads) th.join();
    // Queued writes still pending are committed as the store goes.
  }
  EXPECT_EQ(done.load(), kThreads * kEach);
  EXPECT_TRUE(failed.empty()) << failed.front();
  EXPECT_TRUE(missing.empty()) << missing.size() << " not readable in their done, e.g. "
                               << missing.front();
  EXPECT_LT(commits.load(), static_cast<size_t>(kThreads * kEach)) << "no write shared a commit";
  auto again = store::OpenSqliteStore(dir);
  ASSERT_TRUE(again.ok()) << again.status();
  auto jobs = (*again)->LoadJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_EQ(jobs->active.size(), static_cast<size_t>(kThreads * kEach));
  std::filesystem::remove_all(dir);
}

// A queued job the database refuses gets the error in its `done`, and the
// jobs queued with it are still written.
TEST(SqliteStoreTest, AnAsyncJobWriteThatFailsGetsItsErrorAndTheOthersAreKept) {
  std::string dir = TempDir();
  auto s = store::OpenSqliteStore(dir, 1);
  ASSERT_TRUE(s.ok()) << s.status();
  store::Store& st = **s;
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, absl::Status> results;
  v1::Job big = SmallJob("job-big", v1::Job::queued);
  (*big.mutable_env())["PAD"] = std::string(3 << 20, 'x');  // 3 MiB against a 1 MiB cap
  for (const v1::Job& j :
       {SmallJob("job-a", v1::Job::queued), big, SmallJob("job-b", v1::Job::queued)}) {
    st.PutJobAsync(j, [&, id = j.id()](absl::Status written) {
      std::lock_guard<std::mutex> l(mu);
      results[id] = written;
      cv.notify_all();
    });
  }
  {
    std::unique_lock<std::mutex> l(mu);
    ASSERT_TRUE(cv.wait_for(l, std::chrono::seconds(30), [&] { return results.size() == 3; }));
  }
  EXPECT_TRUE(results["job-a"].ok()) << results["job-a"];
  EXPECT_TRUE(results["job-b"].ok()) << results["job-b"];
  EXPECT_FALSE(results["job-big"].ok());
  EXPECT_TRUE(st.GetJob("job-a").ok());
  EXPECT_TRUE(st.GetJob("job-b").ok());
  EXPECT_EQ(st.GetJob("job-big").status().code(), absl::StatusCode::kNotFound);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace portolan
