// SPDX-License-Identifier: Apache-2.0
#include "portolan/store/etcd_store.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "portolan/base/log.h"
#include "portolan/base/strings.h"
#include "scheduler/store/group_commit.h"

namespace portolan::store {
namespace {

bool Ended(v1::Job::State s) {
  return s == v1::Job::succeeded || s == v1::Job::failed || s == v1::Job::cancelled ||
         s == v1::Job::lost || s == v1::Job::unschedulable;
}

// One key to put (value set) or delete (value unset).
struct Mutation {
  std::string key;
  std::optional<std::string> value;
};
using Write = std::vector<Mutation>;

class EtcdStoreImpl : public EtcdStore {
 public:
  EtcdStoreImpl(etcd::Client* client, std::string prefix, CommitObserver on_commit,
                EtcdStoreLimits limits)
      : client_(client),
        limits_(limits),
        p_(std::move(prefix) + "/"),
        commits_(
            "etcd store", [this](const std::vector<const Write*>& b) { return RunBatch(b); },
            std::move(on_commit)) {}

  void SetFence(const std::string& key, int64_t revision) override {
    absl::MutexLock lock(&fence_mu_);
    fence_key_ = key;
    fence_revision_ = revision;
  }

  // --- jobs: a job not ended is jobs/active/<id>; an ended one moves to
  // jobs/ended/<id> with its summary (a Job holding only the indexed fields)
  // in jobs/summary/<id>, so a start-up reads the summaries of a long history
  // and the records of the active jobs only.
  absl::Status PutJob(const v1::Job& job) override { return Commit(JobWrite(job), "store job"); }

  // Queued for the store's commit thread (group_commit.h's BatchThread),
  // which commits the records of everything queued meanwhile in one group
  // commit (with whatever other threads write then), then calls each `done`
  // in order: the caller (a REST handler thread) does not wait for etcd, so
  // more submits share a commit than there are handler threads.
  void PutJobAsync(const v1::Job& job, std::function<void(absl::Status)> done) override {
    queued_.Push(Queued{JobWrite(job), std::move(done)});
  }

  absl::StatusOr<StoredJobs> LoadJobs() override {
    StoredJobs out;
    int64_t revision = 0;
    absl::Status st = Scan(p_ + "jobs/summary/", &revision, [&](const mvccpb::KeyValue& kv) {
      v1::Job s;
      if (!s.ParseFromString(kv.value())) return Undecodable("job summary", kv.key());
      JobSummary& j = out.ended.emplace_back();
      j.id = s.id();
      j.tenant = s.tenant();
      j.idempotency_key = s.idempotency_key();
      j.submitted_ns = absl::ToUnixNanos(base::FromProto(s.submitted_at()));
      j.state = s.state();
      return absl::OkStatus();
    });
    if (!st.ok()) return st;
    st = Scan(p_ + "jobs/active/", &revision, [&](const mvccpb::KeyValue& kv) {
      if (!out.active.emplace_back().ParseFromString(kv.value()))
        return Undecodable("job", kv.key());
      return absl::OkStatus();
    });
    if (!st.ok()) return st;
    std::sort(out.active.begin(), out.active.end(), [](const v1::Job& a, const v1::Job& b) {
      const int64_t sa = absl::ToUnixNanos(base::FromProto(a.submitted_at()));
      const int64_t sb = absl::ToUnixNanos(base::FromProto(b.submitted_at()));
      return sa != sb ? sa < sb : a.id() < b.id();
    });
    return out;
  }

  absl::StatusOr<v1::Job> GetJob(const std::string& id) override {
    std::optional<v1::Job> found;
    absl::Status st = ReadJobs({id}, [&](v1::Job j) { found = std::move(j); });
    if (!st.ok()) return st;
    if (!found) return absl::NotFoundError(absl::StrCat("no job ", id, " stored"));
    return std::move(*found);
  }

  // A job is under jobs/active/ or jobs/ended/ (PutJob moves it): both are
  // read in one transaction, 60 ids (120 ranges, under etcd's 128
  // operations) per transaction.
  absl::Status ReadJobs(const std::vector<std::string>& ids,
                        const std::function<void(v1::Job)>& fn) override {
    constexpr size_t kBatch = 60;
    for (size_t at = 0; at < ids.size(); at += kBatch) {
      etcdserverpb::TxnRequest txn;
      for (size_t i = at; i < std::min(ids.size(), at + kBatch); ++i) {
        txn.add_success()->mutable_request_range()->set_key(Key("jobs/ended/", ids[i]));
        txn.add_success()->mutable_request_range()->set_key(Key("jobs/active/", ids[i]));
      }
      auto resp = client_->Txn(txn);
      if (!resp.ok()) return resp.status();
      for (const auto& r : resp->responses()) {
        if (r.response_range().kvs().empty()) continue;
        v1::Job j;
        if (!j.ParseFromString(r.response_range().kvs(0).value()))
          return Undecodable("job", r.response_range().kvs(0).key());
        fn(std::move(j));
      }
    }
    return absl::OkStatus();
  }

  absl::Status PutAgent(const v1::Agent& a) override {
    return Put(Key("agents/", a.id()), a, "store agent");
  }
  absl::StatusOr<std::vector<v1::Agent>> LoadAgents() override {
    return LoadAll<v1::Agent>("agents/");
  }

  absl::Status PutLogs(const v1::JobLogs& logs) override {
    return Put(Key("logs/", logs.job_id()), logs, "store logs");
  }
  absl::StatusOr<v1::JobLogs> GetLogs(const std::string& job_id) override {
    return GetOne<v1::JobLogs>(Key("logs/", job_id), "no output recorded for job " + job_id);
  }

  absl::Status PutDecision(const std::string& job_id, const v1::Decision& d) override {
    return Put(Key("decisions/", job_id), d, "store decision");
  }
  absl::StatusOr<v1::Decision> GetDecision(const std::string& job_id) override {
    return GetOne<v1::Decision>(Key("decisions/", job_id), "no decision stored for job " + job_id);
  }

  absl::Status PutTenant(const v1::Tenant& t) override {
    return Put(Key("tenants/", t.id()), t, "store tenant");
  }
  absl::StatusOr<std::vector<v1::Tenant>> LoadTenants() override {
    return LoadAll<v1::Tenant>("tenants/");
  }

  // datasets/<id>/<version, 20 digits>: by id, then version, by key.
  absl::Status PutDatasetVersion(const v1::RegisteredDataset& d) override {
    return Put(absl::StrFormat("%sdatasets/%s/%020d", p_, d.id(), d.version()), d,
               "store dataset version");
  }
  absl::StatusOr<std::vector<v1::RegisteredDataset>> LoadDatasetVersions() override {
    return LoadAll<v1::RegisteredDataset>("datasets/");
  }

  // policy/<applied_at in ns, 20 digits>/<version>: oldest first by key.
  absl::Status PutPolicyVersion(const v1::PolicyVersion& v) override {
    const int64_t ns = absl::ToUnixNanos(base::FromProto(v.applied_at()));
    return Put(absl::StrFormat("%spolicy/%020d/%s", p_, ns, v.version()), v,
               "store policy version");
  }
  absl::StatusOr<std::vector<v1::PolicyVersion>> LoadPolicyVersions() override {
    return LoadAll<v1::PolicyVersion>("policy/");
  }

  absl::Status PutLedgerEntry(const v1::LedgerEntry& e) override {
    return Put(absl::StrCat(p_, "ledger/", e.tenant(), "/", e.year(), "/", e.origin()), e,
               "store ledger");
  }
  absl::StatusOr<std::vector<v1::LedgerEntry>> LoadLedger() override {
    return LoadAll<v1::LedgerEntry>("ledger/");
  }

  // audit/<now in ns, 20 digits>-<sequence, 10 digits>: newest last by key.
  absl::Status AppendAudit(const v1::AuditRecord& r) override {
    const int64_t ns = absl::ToUnixNanos(absl::Now());
    const uint64_t seq = audit_seq_.fetch_add(1);
    return Put(absl::StrFormat("%saudit/%020d-%010d", p_, ns, seq), r, "store audit record");
  }
  absl::StatusOr<std::vector<v1::AuditRecord>> ListAudit(const std::string& tenant,
                                                         const std::string& job,
                                                         int limit) override;

 private:
  std::string Key(absl::string_view kind, absl::string_view id) const {
    return absl::StrCat(p_, kind, id);
  }
  // A job's keys as PutJob describes them.
  Write JobWrite(const v1::Job& job) const {
    Write w;
    if (Ended(job.state())) {
      v1::Job summary;
      summary.set_id(job.id());
      summary.set_tenant(job.tenant());
      summary.set_idempotency_key(job.idempotency_key());
      *summary.mutable_submitted_at() = job.submitted_at();
      summary.set_state(job.state());
      w.push_back({Key("jobs/active/", job.id()), std::nullopt});
      w.push_back({Key("jobs/ended/", job.id()), job.SerializeAsString()});
      w.push_back({Key("jobs/summary/", job.id()), summary.SerializeAsString()});
    } else {
      w.push_back({Key("jobs/active/", job.id()), job.SerializeAsString()});
    }
    return w;
  }
  static absl::Status Undecodable(absl::string_view what, absl::string_view key) {
    return absl::DataLossError(absl::StrCat(what, " record '", key, "' does not decode"));
  }

  absl::Status Put(std::string key, const google::protobuf::Message& m, absl::string_view what) {
    return Commit({{std::move(key), m.SerializeAsString()}}, what);
  }
  absl::Status Commit(const Write& w, absl::string_view what) {
    if (absl::Status st = CheckSize(w, what); !st.ok()) return st;
    absl::Status st = commits_.Commit(w);
    if (!st.ok()) return absl::Status(st.code(), absl::StrCat(what, ": ", st.message()));
    return st;
  }
  // A record over the request limit is refused alone, not sent.
  absl::Status CheckSize(const Write& w, absl::string_view what) const {
    size_t bytes = 0;
    for (const Mutation& m : w) bytes += m.key.size() + (m.value ? m.value->size() : 0);
    if (bytes > limits_.max_txn_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(what, ": the record is ", bytes,
                                                       " bytes, over the store's limit of ",
                                                       limits_.max_txn_bytes));
    }
    return absl::OkStatus();
  }

  absl::Status RunBatch(const std::vector<const Write*>& batch);
  absl::Status RunTxn(const std::vector<const Mutation*>& ops);

  // Every key under `prefix`, in pages, at one revision (*revision: 0 = the
  // latest, then the one read).
  template <typename F>
  absl::Status Scan(const std::string& prefix, int64_t* revision, F&& each);

  template <typename M>
  absl::StatusOr<std::vector<M>> LoadAll(absl::string_view kind) {
    std::vector<M> out;
    int64_t revision = 0;
    absl::Status st = Scan(absl::StrCat(p_, kind), &revision, [&](const mvccpb::KeyValue& kv) {
      if (!out.emplace_back().ParseFromString(kv.value()))
        return Undecodable(M::descriptor()->name(), kv.key());
      return absl::OkStatus();
    });
    if (!st.ok()) return st;
    return out;
  }

  template <typename M>
  absl::StatusOr<M> GetOne(const std::string& key, const std::string& missing) {
    etcdserverpb::RangeRequest req;
    req.set_key(key);
    auto resp = client_->Range(req);
    if (!resp.ok()) return resp.status();
    if (resp->kvs().empty()) return absl::NotFoundError(missing);
    M m;
    if (!m.ParseFromString(resp->kvs(0).value())) return Undecodable(M::descriptor()->name(), key);
    return m;
  }

  etcd::Client* const client_;
  const EtcdStoreLimits limits_;
  const std::string p_;  // "<prefix>/"
  std::atomic<uint64_t> audit_seq_{0};
  absl::Mutex fence_mu_;
  std::string fence_key_ ABSL_GUARDED_BY(fence_mu_);
  int64_t fence_revision_ ABSL_GUARDED_BY(fence_mu_) = 0;
  GroupCommit<Write> commits_;

  // PutJobAsync's: each job's records (one job over the request limit gets
  // that error alone), then the others' in one group commit, then each
  // `done`, without any lock held (on queued_'s thread).
  struct Queued {
    Write write;
    std::function<void(absl::Status)> done;
  };
  void CommitQueued(std::vector<Queued>& batch) {
    std::vector<absl::Status> results(batch.size());
    Write all;
    size_t records = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      results[i] = CheckSize(batch[i].write, "store job");
      if (!results[i].ok()) continue;
      ++records;
      for (Mutation& m : batch[i].write) all.push_back(std::move(m));
    }
    if (!all.empty()) {
      absl::Status st = commits_.Commit(all, records);
      if (!st.ok()) st = absl::Status(st.code(), absl::StrCat("store job: ", st.message()));
      for (absl::Status& r : results) {
        if (r.ok()) r = st;
      }
    }
    for (size_t i = 0; i < batch.size(); ++i) batch[i].done(std::move(results[i]));
  }
  // Last: stopped (what is queued committed) before the members it uses go.
  BatchThread<Queued> queued_{[this](std::vector<Queued>& batch) { CommitQueued(batch); }};
};

absl::Status EtcdStoreImpl::RunBatch(const std::vector<const Write*>& batch) {
  // etcd refuses a transaction naming one key twice: the last write of a key
  // in the batch is the one that counts (writes are whole records).
  std::map<absl::string_view, const Mutation*> last;
  for (const Write* w : batch) {
    for (const Mutation& m : *w) last[m.key] = &m;
  }
  std::vector<const Mutation*> txn;
  size_t bytes = 0;
  for (const auto& [key, m] : last) {
    const size_t size = m->key.size() + (m->value ? m->value->size() : 0) + 16;
    if (!txn.empty() && (txn.size() >= static_cast<size_t>(limits_.max_ops_per_txn) ||
                         bytes + size > limits_.max_txn_bytes)) {
      absl::Status st = RunTxn(txn);
      if (!st.ok()) return st;
      txn.clear();
      bytes = 0;
    }
    txn.push_back(m);
    bytes += size;
  }
  return txn.empty() ? absl::OkStatus() : RunTxn(txn);
}

absl::Status EtcdStoreImpl::RunTxn(const std::vector<const Mutation*>& ops) {
  etcdserverpb::TxnRequest txn;
  std::string fence_key;
  int64_t fence_revision;
  {
    absl::MutexLock lock(&fence_mu_);
    fence_key = fence_key_;
    fence_revision = fence_revision_;
  }
  if (fence_revision != 0) {
    etcdserverpb::Compare* c = txn.add_compare();
    c->set_key(fence_key);
    c->set_target(etcdserverpb::Compare::CREATE);
    c->set_result(etcdserverpb::Compare::EQUAL);
    c->set_create_revision(fence_revision);
  }
  for (const Mutation* m : ops) {
    etcdserverpb::RequestOp* op = txn.add_success();
    if (m->value) {
      op->mutable_request_put()->set_key(m->key);
      op->mutable_request_put()->set_value(*m->value);
    } else {
      op->mutable_request_delete_range()->set_key(m->key);
    }
  }
  auto resp = client_->Txn(txn);
  if (!resp.ok()) return resp.status();
  if (!resp->succeeded()) {
    // Unavailable: for a client this scheduler is as good as down; the
    // leader that fenced it answers the retry.
    return absl::UnavailableError(absl::StrCat("fenced: this scheduler's leadership (", fence_key,
                                               " at revision ", fence_revision,
                                               ") has ended; another scheduler leads"));
  }
  return absl::OkStatus();
}

template <typename F>
absl::Status EtcdStoreImpl::Scan(const std::string& prefix, int64_t* revision, F&& each) {
  constexpr int64_t kPage = 2000;
  const std::string end = etcd::PrefixEnd(prefix);
  std::string from = prefix;
  for (;;) {
    etcdserverpb::RangeRequest req;
    req.set_key(from);
    req.set_range_end(end);
    req.set_limit(kPage);
    req.set_revision(*revision);
    auto resp = client_->Range(req);
    if (!resp.ok()) return resp.status();
    if (*revision == 0) *revision = resp->header().revision();
    for (const mvccpb::KeyValue& kv : resp->kvs()) {
      absl::Status st = each(kv);
      if (!st.ok()) return st;
    }
    if (!resp->more() || resp->kvs().empty()) return absl::OkStatus();
    from = resp->kvs(resp->kvs_size() - 1).key() + std::string(1, '\0');
  }
}

absl::StatusOr<std::vector<v1::AuditRecord>> EtcdStoreImpl::ListAudit(const std::string& tenant,
                                                                      const std::string& job,
                                                                      int limit) {
  // Newest first: pages of keys in descending order, filtered here (etcd
  // has no secondary index); stops as soon as `limit` records matched.
  constexpr int64_t kPage = 500;
  const std::string prefix = p_ + "audit/";
  std::string end = etcd::PrefixEnd(prefix);
  std::vector<v1::AuditRecord> out;
  int64_t revision = 0;
  while (static_cast<int>(out.size()) < limit) {
    etcdserverpb::RangeRequest req;
    req.set_key(prefix);
    req.set_range_end(end);
    req.set_limit(kPage);
    req.set_revision(revision);
    req.set_sort_order(etcdserverpb::RangeRequest::DESCEND);
    req.set_sort_target(etcdserverpb::RangeRequest::KEY);
    auto resp = client_->Range(req);
    if (!resp.ok()) return resp.status();
    if (revision == 0) revision = resp->header().revision();
    for (const mvccpb::KeyValue& kv : resp->kvs()) {
      v1::AuditRecord r;
      if (!r.ParseFromString(kv.value())) return Undecodable("audit", kv.key());
      if ((tenant.empty() || r.tenant() == tenant) && (job.empty() || r.job() == job)) {
        out.push_back(std::move(r));
        if (static_cast<int>(out.size()) >= limit) break;
      }
    }
    if (!resp->more() || resp->kvs().empty()) break;
    end = resp->kvs(resp->kvs_size() - 1).key();  // range_end is exclusive
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<EtcdStore>> EtcdStore::Open(etcd::Client* client, std::string prefix,
                                                           CommitObserver on_commit,
                                                           EtcdStoreLimits limits) {
  if (prefix.empty()) return absl::InvalidArgumentError("etcd store: empty key prefix");
  // One read says whether the cluster answers, so that a wrong address fails
  // at start-up and not at the first submit.
  etcdserverpb::RangeRequest probe;
  probe.set_key(prefix + "/");
  probe.set_count_only(true);
  auto store =
      std::make_unique<EtcdStoreImpl>(client, std::move(prefix), std::move(on_commit), limits);
  auto resp = client->Range(probe);
  if (!resp.ok()) return resp.status();
  return std::unique_ptr<EtcdStore>(std::move(store));
}

}  // namespace portolan::store
