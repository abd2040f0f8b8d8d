// SPDX-License-Identifier: Apache-2.0
#include <sqlite3.h>
#include <sys/stat.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "portolan/base/log.h"
#include "portolan/base/strings.h"
#include "portolan/store/store.h"
#include "scheduler/store/group_commit.h"
#include "scheduler/store/sqlite_schema.h"
#include "scheduler/store/sqlite_util.h"

namespace portolan::store {
namespace {

// Job states from succeeded (4) up are final (job.proto): such a job is
// loaded as a summary. The SQL below says the same with `state >= 4`.
constexpr int kFirstEndedState = v1::Job::succeeded;
static_assert(v1::Job::failed > kFirstEndedState && v1::Job::cancelled > kFirstEndedState &&
              v1::Job::lost > kFirstEndedState && v1::Job::unschedulable > kFirstEndedState &&
              v1::Job::queued < kFirstEndedState && v1::Job::placed < kFirstEndedState &&
              v1::Job::running < kFirstEndedState);

// The jobs table's state column, which only tells live from ended: staging
// (9, added later) is live, so it is stored as placed; the record keeps the
// true state.
int StateColumn(v1::Job::State s) { return s == v1::Job::staging ? v1::Job::placed : s; }

int64_t SubmittedNs(const v1::Job& j) {
  return absl::ToUnixNanos(base::FromProto(j.submitted_at()));
}

class SqliteStore : public Store {
  // One write: a statement, its text parameters ?1..?n and the serialized
  // message as the last parameter.
  struct Staged {
    const char* sql;
    std::vector<std::string> params;
    std::string data;
    absl::string_view what;
  };

 public:
  SqliteStore(sqlite3* db, CommitObserver on_commit)
      : commits_(
            "store", [this](const std::vector<const Op*>& batch) { return RunBatch(batch); },
            std::move(on_commit)),
        db_(db) {}
  ~SqliteStore() override {
    queued_.Stop();  // commits what is queued first
    for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
    sqlite3_close(db_);
    sqlite3_close(reader_);
  }

  absl::Status Init(const std::string& path) { return MigrateSchema(db_, path); }

  absl::Status PutJob(const v1::Job& job) override {
    const Staged w = JobWrite(job);
    return Write(w.sql, w.params, job, w.what);
  }

  // Queued for the store's commit thread, which writes everything queued
  // meanwhile in one group commit (with whatever other threads write then),
  // then calls each `done` in order.
  void PutJobAsync(const v1::Job& job, std::function<void(absl::Status)> done) override {
    Staged w = JobWrite(job);
    w.data = job.SerializeAsString();
    queued_.Push(Queued{std::move(w), std::move(done)});
  }

  // At start-up this is most of the scheduler's recovery time with a long
  // history (tests/bench/recovery.sh), so: ended jobs come from the covering
  // index jobs_summary, without reading their records; the records of the
  // others are read in index order (ORDER BY submitted_ns had SQLite sort
  // every record, blobs included, through temporary files), decoded by
  // worker threads while this one reads, and put in submit order in memory.
  absl::StatusOr<StoredJobs> LoadJobs() override {
    std::lock_guard<std::mutex> lock(mu_);
    StoredJobs out;
    absl::Status st =
        Query("SELECT id, tenant, state, submitted_ns, idempotency_key FROM jobs WHERE state >= 4",
              [&](sqlite3_stmt* s) {
                JobSummary& j = out.ended.emplace_back();
                j.id = Text(s, 0);
                j.tenant = Text(s, 1);
                j.state = static_cast<v1::Job::State>(sqlite3_column_int(s, 2));
                j.submitted_ns = sqlite3_column_int64(s, 3);
                j.idempotency_key = Text(s, 4);
              });
    if (!st.ok()) return st;
    auto active = LoadActiveJobs();
    if (!active.ok()) return active.status();
    out.active = std::move(*active);
    return out;
  }

  absl::StatusOr<v1::Job> GetJob(const std::string& id) override {
    auto rows = Read<v1::Job>("SELECT data FROM jobs WHERE id = ?1", {id});
    if (!rows.ok()) return rows.status();
    if (rows->empty()) return absl::NotFoundError(absl::StrCat("no job ", id, " stored"));
    return std::move(rows->front());
  }

  // On a connection of its own: in WAL mode a reader and the writer do not
  // wait for each other, so reading a long history (a policy what-if reads
  // 100,000 jobs) holds up no commit. Records are decoded outside its lock.
  absl::Status ReadJobs(const std::vector<std::string>& ids,
                        const std::function<void(v1::Job)>& fn) override {
    constexpr size_t kBatch = 256;
    std::vector<std::string> blobs;
    for (size_t at = 0; at < ids.size(); at += kBatch) {
      blobs.clear();
      {
        std::lock_guard<std::mutex> lock(read_mu_);
        sqlite3_stmt* s = nullptr;
        if (sqlite3_prepare_v2(reader_, "SELECT data FROM jobs WHERE id = ?1", -1, &s, nullptr) !=
            SQLITE_OK)
          return SqliteError(reader_, "read jobs");
        for (size_t i = at; i < std::min(ids.size(), at + kBatch); ++i) {
          sqlite3_reset(s);
          sqlite3_bind_text(s, 1, ids[i].data(), ids[i].size(), SQLITE_TRANSIENT);
          const int rc = sqlite3_step(s);
          if (rc == SQLITE_ROW) {
            blobs.emplace_back(static_cast<const char*>(sqlite3_column_blob(s, 0)),
                               sqlite3_column_bytes(s, 0));
          } else if (rc != SQLITE_DONE) {
            absl::Status st = SqliteError(reader_, "read jobs");
            sqlite3_finalize(s);
            return st;
          }
        }
        sqlite3_finalize(s);
      }
      for (const std::string& b : blobs) {
        v1::Job j;
        if (!j.ParseFromString(b)) return absl::DataLossError("a job record does not decode");
        fn(std::move(j));
      }
    }
    return absl::OkStatus();
  }

  // The reading connection of ReadJobs (read-only, same file).
  absl::Status OpenReader(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &reader_, SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX,
                        nullptr) != SQLITE_OK) {
      return absl::FailedPreconditionError(absl::StrCat(
          path,
          ": cannot open for reading: ", reader_ ? sqlite3_errmsg(reader_) : "out of memory"));
    }
    sqlite3_busy_timeout(reader_, 5000);
    return absl::OkStatus();
  }

  absl::Status PutAgent(const v1::Agent& agent) override {
    return Write("INSERT OR REPLACE INTO agents (id, site, data) VALUES (?1, ?2, ?3)",
                 {agent.id(), agent.site()}, agent, "store agent");
  }

  absl::StatusOr<std::vector<v1::Agent>> LoadAgents() override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<v1::Agent> out;
    absl::Status bad;
    absl::Status st = Query("SELECT id, data FROM agents ORDER BY id", [&](sqlite3_stmt* s) {
      v1::Agent a;
      if (!a.ParseFromArray(sqlite3_column_blob(s, 1), sqlite3_column_bytes(s, 1))) {
        bad = absl::DataLossError("agent record does not decode");
        return;
      }
      out.push_back(std::move(a));
    });
    if (!st.ok()) return st;
    if (!bad.ok()) return bad;
    return out;
  }

  absl::Status PutLogs(const v1::JobLogs& logs) override {
    return Write("INSERT OR REPLACE INTO job_logs (job_id, data) VALUES (?1, ?2)", {logs.job_id()},
                 logs, "store logs");
  }

  absl::Status PutDecision(const std::string& job_id, const v1::Decision& d) override {
    return Write("INSERT OR REPLACE INTO decisions (job_id, data) VALUES (?1, ?2)", {job_id}, d,
                 "store decision");
  }
  absl::StatusOr<v1::Decision> GetDecision(const std::string& job_id) override {
    auto rows = Read<v1::Decision>("SELECT data FROM decisions WHERE job_id = ?1", {job_id});
    if (!rows.ok()) return rows.status();
    if (rows->empty())
      return absl::NotFoundError(absl::StrCat("no decision stored for job ", job_id));
    return rows->front();
  }
  absl::Status PutTenant(const v1::Tenant& t) override {
    return Write("INSERT OR REPLACE INTO tenants (id, data) VALUES (?1, ?2)", {t.id()}, t,
                 "store tenant");
  }
  absl::StatusOr<std::vector<v1::Tenant>> LoadTenants() override {
    return Read<v1::Tenant>("SELECT data FROM tenants ORDER BY id", {});
  }
  absl::Status PutDatasetVersion(const v1::RegisteredDataset& d) override {
    return Write("INSERT INTO dataset_versions (id, version, tenant, data) VALUES (?1, ?2, ?3, ?4)",
                 {d.id(), absl::StrCat(d.version()), d.tenant()}, d, "store dataset version");
  }
  absl::StatusOr<std::vector<v1::RegisteredDataset>> LoadDatasetVersions() override {
    return Read<v1::RegisteredDataset>("SELECT data FROM dataset_versions ORDER BY id, version",
                                       {});
  }
  absl::Status PutPolicyVersion(const v1::PolicyVersion& v) override {
    return Write("INSERT INTO policy_versions (version, data) VALUES (?1, ?2)", {v.version()}, v,
                 "store policy version");
  }
  absl::StatusOr<std::vector<v1::PolicyVersion>> LoadPolicyVersions() override {
    return Read<v1::PolicyVersion>("SELECT data FROM policy_versions ORDER BY seq", {});
  }
  absl::Status PutLedgerEntry(const v1::LedgerEntry& e) override {
    return Write(
        "INSERT OR REPLACE INTO ledger (tenant, year, origin, data) VALUES (?1, ?2, ?3, ?4)",
        {e.tenant(), absl::StrCat(e.year()), e.origin()}, e, "store ledger");
  }
  absl::StatusOr<std::vector<v1::LedgerEntry>> LoadLedger() override {
    return Read<v1::LedgerEntry>("SELECT data FROM ledger", {});
  }
  absl::Status AppendAudit(const v1::AuditRecord& r) override {
    return Write("INSERT INTO audit (tenant, job, data) VALUES (?1, ?2, ?3)", {r.tenant(), r.job()},
                 r, "store audit record");
  }
  absl::StatusOr<std::vector<v1::AuditRecord>> ListAudit(const std::string& tenant,
                                                         const std::string& job,
                                                         int limit) override {
    return Read<v1::AuditRecord>(
        "SELECT data FROM audit WHERE (?1 = '' OR tenant = ?1) AND (?2 = '' OR job = ?2) "
        "ORDER BY seq DESC LIMIT CAST(?3 AS INTEGER)",
        {tenant, job, absl::StrCat(limit)});
  }

  absl::StatusOr<v1::JobLogs> GetLogs(const std::string& job_id) override {
    auto rows = Read<v1::JobLogs>("SELECT data FROM job_logs WHERE job_id = ?1", {job_id});
    if (!rows.ok()) return rows.status();
    if (rows->empty())
      return absl::NotFoundError(absl::StrCat("no output recorded for job ", job_id));
    return rows->front();
  }

 private:
  static std::string Text(sqlite3_stmt* s, int col) { return SqliteText(s, col); }

  // The whole records of the jobs not ended, in submit order; mu_ held.
  absl::StatusOr<std::vector<v1::Job>> LoadActiveJobs() {
    int64_t count = 0;
    absl::Status st = Query("SELECT count(*) FROM jobs WHERE state < 4",
                            [&](sqlite3_stmt* s) { count = sqlite3_column_int64(s, 0); });
    if (!st.ok()) return st;
    std::vector<v1::Job> jobs(static_cast<size_t>(count));
    std::vector<int64_t> submitted(jobs.size());
    struct Chunk {
      size_t first = 0;
      std::vector<std::string> ids, blobs;
    };
    constexpr size_t kChunk = 2048;
    std::mutex qmu;
    std::condition_variable qcv;
    std::deque<Chunk> queue;
    bool reading = true;
    size_t first_bad = SIZE_MAX;
    std::string bad_id;
    auto worker = [&] {
      for (;;) {
        Chunk c;
        {
          std::unique_lock<std::mutex> q(qmu);
          qcv.wait(q, [&] { return !queue.empty() || !reading; });
          if (queue.empty()) return;
          c = std::move(queue.front());
          queue.pop_front();
        }
        qcv.notify_all();  // the reader may wait for room
        for (size_t k = 0; k < c.blobs.size(); ++k) {
          if (!jobs[c.first + k].ParseFromString(c.blobs[k])) {
            std::lock_guard<std::mutex> q(qmu);
            if (c.first + k < first_bad) {
              first_bad = c.first + k;
              bad_id = c.ids[k];
            }
          }
        }
      }
    };
    const unsigned threads = std::clamp(std::thread::hardware_concurrency(), 1u, 4u);
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t) pool.emplace_back(worker);
    size_t n = 0;
    bool overflow = false;
    Chunk chunk;
    auto hand_over = [&] {
      std::unique_lock<std::mutex> q(qmu);
      qcv.wait(q, [&] { return queue.size() < 2 * threads; });
      queue.push_back(std::move(chunk));
      q.unlock();
      qcv.notify_all();
      chunk = Chunk();
      chunk.first = n;
    };
    st = Query("SELECT id, data, submitted_ns FROM jobs WHERE state < 4", [&](sqlite3_stmt* s) {
      if (n >= jobs.size()) {
        overflow = true;
        return;
      }
      chunk.ids.push_back(Text(s, 0));
      chunk.blobs.emplace_back(static_cast<const char*>(sqlite3_column_blob(s, 1)),
                               static_cast<size_t>(sqlite3_column_bytes(s, 1)));
      submitted[n++] = sqlite3_column_int64(s, 2);
      if (chunk.blobs.size() == kChunk) hand_over();
    });
    if (!chunk.blobs.empty()) hand_over();
    {
      std::lock_guard<std::mutex> q(qmu);
      reading = false;
    }
    qcv.notify_all();
    for (auto& t : pool) t.join();
    if (!st.ok()) return st;
    if (overflow || n != jobs.size())
      return absl::InternalError("the jobs table changed while it was being read");
    if (first_bad != SIZE_MAX)
      return absl::DataLossError(absl::StrCat("job record '", bad_id, "' does not decode"));
    // Submit order: submitted_ns, then id (what ORDER BY gave before).
    std::vector<uint32_t> order(n);
    for (size_t i = 0; i < n; ++i) order[i] = static_cast<uint32_t>(i);
    std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
      if (submitted[a] != submitted[b]) return submitted[a] < submitted[b];
      return jobs[a].id() < jobs[b].id();
    });
    std::vector<v1::Job> out(n);
    for (size_t i = 0; i < n; ++i) out[i].Swap(&jobs[order[i]]);
    return out;
  }

  absl::Status Error(absl::string_view what) { return SqliteError(db_, what); }
  absl::Status Exec(const char* sql) { return SqliteExec(db_, sql); }
  template <typename F>
  absl::Status Query(const char* sql, F&& row) {
    return SqliteQuery(db_, sql, std::forward<F>(row));
  }

  // The one write path: binds text parameters ?1..?n and the serialized
  // message as the last one, and runs as part of a group commit (staged
  // instead while this thread is in a deferred scope, BeginDeferred).
  absl::Status Write(const char* sql, const std::vector<std::string>& params,
                     const google::protobuf::Message& msg, absl::string_view what) {
    std::string data = msg.SerializeAsString();
    if (deferring_threads_.load(std::memory_order_acquire) > 0) {
      std::lock_guard<std::mutex> lock(staged_mu_);
      if (auto it = staged_.find(std::this_thread::get_id()); it != staged_.end()) {
        it->second.push_back(Staged{sql, params, std::move(data), what});
        return absl::OkStatus();
      }
    }
    return Commit([&] { return Step(sql, params, data); }, what);
  }

  void BeginDeferred() override {
    std::lock_guard<std::mutex> lock(staged_mu_);
    if (staged_.try_emplace(std::this_thread::get_id()).second) deferring_threads_.fetch_add(1);
  }

  absl::Status CommitDeferred() override {
    std::vector<Staged> writes;
    {
      std::lock_guard<std::mutex> lock(staged_mu_);
      auto it = staged_.find(std::this_thread::get_id());
      if (it == staged_.end()) return absl::OkStatus();
      writes = std::move(it->second);
      staged_.erase(it);
      deferring_threads_.fetch_sub(1);
    }
    absl::Status first;
    CommitStaged(writes, "store deferred writes", [&](size_t, const absl::Status& st) {
      if (!st.ok() && first.ok()) first = st;
    });
    return first;
  }

  // Writes `writes` in one commit; when that fails, one by one, so one
  // refused record does not take the others with it. `result(i, status)` is
  // called for each write.
  template <typename F>
  void CommitStaged(const std::vector<Staged>& writes, absl::string_view what, F&& result) {
    if (writes.empty()) return;
    absl::Status st = Commit(
        [&] {
          for (const Staged& w : writes) {
            if (int rc = Step(w.sql, w.params, w.data); rc != SQLITE_DONE) return rc;
          }
          return SQLITE_DONE;
        },
        what, writes.size());
    if (st.ok() || writes.size() == 1) {
      for (size_t i = 0; i < writes.size(); ++i) result(i, st);
      return;
    }
    spdlog::warn("store: a batch of {} writes failed ({}); writing them one by one", writes.size(),
                 st.message());
    for (size_t i = 0; i < writes.size(); ++i)
      result(i, Commit([&] { return Step(writes[i].sql, writes[i].params, writes[i].data); },
                       writes[i].what));
  }

  // A batch of PutJobAsync's: one commit, then each `done`, without any
  // lock held (on queued_'s thread).
  struct Queued {
    Staged write;
    std::function<void(absl::Status)> done;
  };
  void CommitQueued(std::vector<Queued>& batch) {
    std::vector<Staged> writes;
    writes.reserve(batch.size());
    for (Queued& q : batch) writes.push_back(std::move(q.write));
    std::vector<absl::Status> results(writes.size());
    CommitStaged(writes, "store jobs", [&](size_t i, const absl::Status& st) { results[i] = st; });
    for (size_t i = 0; i < batch.size(); ++i) batch[i].done(std::move(results[i]));
  }

  // A prepared statement for `sql`, kept for reuse; mu_ must be held.
  sqlite3_stmt* Statement(const char* sql) {
    auto it = statements_.find(sql);
    if (it != statements_.end()) return it->second;
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql, -1, &s, nullptr) != SQLITE_OK) return nullptr;
    statements_.emplace(sql, s);
    return s;
  }

  // Runs `op` as part of a group commit (group_commit.h). A failed statement
  // or commit rolls the whole batch back and every write in it gets the
  // error, so nothing unacknowledged is half-kept.
  absl::Status Commit(const std::function<int()>& op, absl::string_view what, size_t records = 1) {
    return commits_.Commit(Op{&op, what}, records);
  }

  struct Op {
    const std::function<int()>* op;  // runs with mu_ held; returns an SQLite code
    absl::string_view what;
  };

  // Runs one write's statement (prepared once and kept); mu_ must be held.
  int Step(const char* sql, const std::vector<std::string>& params, const std::string& data) {
    sqlite3_stmt* s = Statement(sql);
    if (s == nullptr) return sqlite3_errcode(db_);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    int i = 1;
    for (const std::string& p : params)
      sqlite3_bind_text(s, i++, p.data(), p.size(), SQLITE_TRANSIENT);
    sqlite3_bind_blob(s, i, data.data(), data.size(), SQLITE_TRANSIENT);
    const int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc;
  }
  // The record of `job` as a write (its data still to be serialized).
  static Staged JobWrite(const v1::Job& job) {
    // state and submitted_ns are INTEGER columns: SQLite's affinity stores
    // the bound text as integers, so the index and ORDER BY stay numeric.
    // An upsert: a transition updates the row in place and leaves its
    // primary-key entry alone (INSERT OR REPLACE deleted and re-inserted both
    // the row and every index entry).
    return Staged{
        "INSERT INTO jobs (id, tenant, state, submitted_ns, idempotency_key, data) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(id) DO UPDATE SET tenant = excluded.tenant, "
        "state = excluded.state, submitted_ns = excluded.submitted_ns, "
        "idempotency_key = excluded.idempotency_key, data = excluded.data",
        {job.id(), job.tenant(), absl::StrCat(StateColumn(job.state())),
         absl::StrCat(SubmittedNs(job)), job.idempotency_key()},
        "",
        "store job"};
  }
  // Writes staged per thread in a deferred scope.
  std::mutex staged_mu_;
  std::map<std::thread::id, std::vector<Staged>> staged_;
  std::atomic<int> deferring_threads_{0};

  absl::Status RunBatch(const std::vector<const Op*>& batch) {
    std::lock_guard<std::mutex> lock(mu_);
    if (sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK)
      return Error("begin batch");
    for (const Op* p : batch) {
      int rc = (*p->op)();
      if (rc != SQLITE_DONE) {
        absl::Status st = Error(p->what);
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        return st;
      }
    }
    if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
      absl::Status st = Error("commit batch");
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      return st;
    }
    return absl::OkStatus();
  }

  GroupCommit<Op> commits_;

  BatchThread<Queued> queued_{[this](std::vector<Queued>& batch) { CommitQueued(batch); }};

  // Rows whose first column is a serialized M.
  template <typename M>
  absl::StatusOr<std::vector<M>> Read(const char* sql, const std::vector<std::string>& params) {
    std::lock_guard<std::mutex> lock(mu_);
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql, -1, &s, nullptr) != SQLITE_OK) return Error(sql);
    int i = 1;
    for (const std::string& p : params)
      sqlite3_bind_text(s, i++, p.data(), p.size(), SQLITE_TRANSIENT);
    std::vector<M> out;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      M m;
      if (!m.ParseFromArray(sqlite3_column_blob(s, 0), sqlite3_column_bytes(s, 0))) {
        sqlite3_finalize(s);
        return absl::DataLossError(
            absl::StrCat(M::descriptor()->name(), " record does not decode"));
      }
      out.push_back(std::move(m));
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) return Error(sql);
    return out;
  }

  std::mutex mu_;
  std::mutex read_mu_;         // guards reader_
  sqlite3* reader_ = nullptr;  // ReadJobs' connection
  sqlite3* db_;
  std::map<std::string, sqlite3_stmt*> statements_;  // by SQL text; guarded by mu_
};

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& dir, int max_mb,
                                                       CommitObserver on_commit) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return absl::FailedPreconditionError(absl::StrCat("state directory ", dir, ": ", ec.message()));
  if (access(dir.c_str(), W_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("state directory ", dir, " is not writable"));
  }
  std::string path = (std::filesystem::path(dir) / "portolan.db").string();
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return absl::FailedPreconditionError(absl::StrCat(path, ": cannot open: ", msg));
  }
  auto store = std::make_unique<SqliteStore>(db, std::move(on_commit));
  absl::Status st = store->Init(path);
  if (!st.ok()) return st;
  st = store->OpenReader(path);
  if (!st.ok()) return st;
  if (max_mb > 0) {
    // page_size is 4096 unless the file says otherwise; a cap below the current
    // size leaves it at the current size (SQLite never shrinks max_page_count).
    std::string pragma = absl::StrCat("PRAGMA max_page_count=", (int64_t{max_mb} << 20) / 4096);
    sqlite3_exec(db, pragma.c_str(), nullptr, nullptr, nullptr);
  }
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace portolan::store
