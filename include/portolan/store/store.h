// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "portolan/v1/agent.pb.h"
#include "portolan/v1/dataset.pb.h"
#include "portolan/v1/job.pb.h"
#include "portolan/v1/policy.pb.h"

namespace portolan::store {

// What a store keeps beside each job record: enough to index a job that has
// ended without holding its record in memory.
struct JobSummary {
  std::string id;
  std::string tenant;
  std::string idempotency_key;
  int64_t submitted_ns = 0;
  v1::Job::State state = v1::Job::state_unspecified;
};

// Every stored job, as the scheduler needs it at start-up. A long history is
// mostly ended jobs, and reading and holding each whole (about 3.4 KiB in
// memory) was most of a restart with 1,000,000 jobs; ended jobs are read back
// one by one when asked for (Store::GetJob).
struct StoredJobs {
  // Jobs not ended (queued, placed, running; and records without a state),
  // whole, in submit order: submitted_at, then id.
  std::vector<v1::Job> active;
  // Ended jobs (succeeded, failed, cancelled, lost, unschedulable): their
  // summaries only, in no particular order.
  std::vector<JobSummary> ended;
};

// Durable state of the scheduler. Records are the protobuf messages of the
// schema, stored whole; implementations index what they need. A Put returns
// only once the record is durable (it survives a process crash).
//
// The scheduler keeps its working set in memory and writes through; Load* are
// used at start-up. Implementations are thread-safe. The interface is small on
// purpose so a replicated (etcd-backed) store can implement it later.
class Store {
 public:
  virtual ~Store() = default;

  virtual absl::Status PutJob(const v1::Job& job) = 0;
  // PutJob without waiting: `done` gets what PutJob would have returned,
  // once the record is durable (or the write failed). For a caller that has
  // other work than waiting (the REST handlers of submits), and so that
  // writes from many callers share one commit. `done` may run on the calling
  // thread (this default) or on a thread of the store's, with no lock of the
  // store held; it may take the caller's locks, but it delays the writes
  // queued after it, so it should be short. Calls made while `done` runs are
  // fine. Every `done` is called before the store is destroyed.
  virtual void PutJobAsync(const v1::Job& job, std::function<void(absl::Status)> done) {
    done(PutJob(job));
  }
  virtual absl::StatusOr<StoredJobs> LoadJobs() = 0;
  // One job's latest record; NotFound when it was never stored.
  virtual absl::StatusOr<v1::Job> GetJob(const std::string& id) = 0;
  // The latest records of `ids`, each passed to `fn` (ids never stored are
  // skipped), for reading many ended jobs at once (a policy what-if over a
  // history). Reads in batches, so writers wait for at most one batch; `fn`
  // runs without the store's locks.
  virtual absl::Status ReadJobs(const std::vector<std::string>& ids,
                                const std::function<void(v1::Job)>& fn) = 0;

  virtual absl::Status PutAgent(const v1::Agent& agent) = 0;
  virtual absl::StatusOr<std::vector<v1::Agent>> LoadAgents() = 0;

  virtual absl::Status PutLogs(const v1::JobLogs& logs) = 0;
  // NotFound when no output was ever recorded for the job.
  virtual absl::StatusOr<v1::JobLogs> GetLogs(const std::string& job_id) = 0;

  // The placement decision of a job (the latest one stored).
  virtual absl::Status PutDecision(const std::string& job_id, const v1::Decision& decision) = 0;
  virtual absl::StatusOr<v1::Decision> GetDecision(const std::string& job_id) = 0;

  virtual absl::Status PutTenant(const v1::Tenant& tenant) = 0;
  virtual absl::StatusOr<std::vector<v1::Tenant>> LoadTenants() = 0;

  // The dataset registry: every version of every dataset, append-only
  // (a version is never rewritten). Load returns them ordered by id, then
  // version.
  virtual absl::Status PutDatasetVersion(const v1::RegisteredDataset& dataset) = 0;
  virtual absl::StatusOr<std::vector<v1::RegisteredDataset>> LoadDatasetVersions() = 0;

  // Policy history, oldest first; the last one is in force.
  virtual absl::Status PutPolicyVersion(const v1::PolicyVersion& version) = 0;
  virtual absl::StatusOr<std::vector<v1::PolicyVersion>> LoadPolicyVersions() = 0;

  virtual absl::Status PutLedgerEntry(const v1::LedgerEntry& entry) = 0;
  virtual absl::StatusOr<std::vector<v1::LedgerEntry>> LoadLedger() = 0;

  // Cross-border placements, append-only. ListAudit returns the newest
  // `limit` records matching the non-empty filters, newest first.
  virtual absl::Status AppendAudit(const v1::AuditRecord& record) = 0;
  virtual absl::StatusOr<std::vector<v1::AuditRecord>> ListAudit(const std::string& tenant,
                                                                 const std::string& job,
                                                                 int limit) = 0;

  // Deferred writes, for a caller that holds back everything depending on
  // them until they are durable (the core while it handles one agent
  // message: the transitions it reports, the placements it sends). After
  // BeginDeferred() the calling thread's Put*/Append* are staged and return
  // OK at once, not yet durable; CommitDeferred() writes them all in one
  // commit (one fsync instead of one per write) and returns its status; a
  // failed batch is retried write by write, so one refused record does not
  // take the others with it, and the first error is returned. Other threads
  // write as usual meanwhile. Stores that cannot defer write at once (this
  // default) and have nothing to commit.
  virtual void BeginDeferred() {}
  virtual absl::Status CommitDeferred() { return absl::OkStatus(); }
};

// SQLite in WAL mode under `dir` (created if missing) as `portolan.db`.
// Refuses to open a file that is not a Portolan database. `max_mb` > 0 caps
// the database size: writes past it fail as a full disk would (Unavailable).
// `on_commit`, when set, is called after every commit (from the committing
// thread, without locks held) with its duration and number of writes.
using CommitObserver = std::function<void(double seconds, size_t writes)>;
absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& dir, int max_mb = 0,
                                                       CommitObserver on_commit = nullptr);

}  // namespace portolan::store
