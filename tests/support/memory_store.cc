// SPDX-License-Identifier: Apache-2.0
#include "memory_store.h"

#include <algorithm>

#include "portolan/base/strings.h"

namespace portolan::testing {
namespace {

// As the real store decides what is ended and in which order jobs load.
bool Ended(v1::Job::State s) {
  return s == v1::Job::succeeded || s == v1::Job::failed || s == v1::Job::cancelled ||
         s == v1::Job::lost || s == v1::Job::unschedulable;
}
int64_t SubmittedNs(const v1::Job& j) {
  return absl::ToUnixNanos(base::FromProto(j.submitted_at()));
}

}  // namespace

absl::Status MemoryStore::PutJob(const v1::Job& job) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!fail_with_.ok()) return fail_with_;
  job.SerializeToString(&jobs_[job.id()]);
  ++job_writes_;
  return absl::OkStatus();
}
absl::StatusOr<store::StoredJobs> MemoryStore::LoadJobs() {
  std::lock_guard<std::mutex> lock(mu_);
  store::StoredJobs out;
  for (const auto& [id, bytes] : jobs_) {
    v1::Job j;
    j.ParseFromString(bytes);
    if (!Ended(j.state())) {
      out.active.push_back(std::move(j));
      continue;
    }
    store::JobSummary& e = out.ended.emplace_back();
    e.id = j.id();
    e.tenant = j.tenant();
    e.idempotency_key = j.idempotency_key();
    e.submitted_ns = SubmittedNs(j);
    e.state = j.state();
  }
  std::sort(out.active.begin(), out.active.end(), [](const v1::Job& a, const v1::Job& b) {
    return std::make_pair(SubmittedNs(a), a.id()) < std::make_pair(SubmittedNs(b), b.id());
  });
  return out;
}
absl::StatusOr<v1::Job> MemoryStore::GetJob(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  ++job_reads_;
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("no job ", id, " stored"));
  v1::Job j;
  j.ParseFromString(it->second);
  return j;
}
absl::Status MemoryStore::ReadJobs(const std::vector<std::string>& ids,
                                   const std::function<void(v1::Job)>& fn) {
  std::vector<v1::Job> found;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const std::string& id : ids) {
      auto it = jobs_.find(id);
      if (it != jobs_.end()) found.emplace_back().ParseFromString(it->second);
    }
  }
  for (v1::Job& j : found) fn(std::move(j));
  return absl::OkStatus();
}
absl::Status MemoryStore::PutAgent(const v1::Agent& agent) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!fail_with_.ok()) return fail_with_;
  agents_[agent.id()] = agent;
  return absl::OkStatus();
}
absl::StatusOr<std::vector<v1::Agent>> MemoryStore::LoadAgents() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<v1::Agent> out;
  for (const auto& [id, a] : agents_) out.push_back(a);
  return out;
}
absl::Status MemoryStore::PutLogs(const v1::JobLogs& logs) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!fail_with_.ok()) return fail_with_;
  logs_[logs.job_id()] = logs;
  return absl::OkStatus();
}
absl::StatusOr<v1::JobLogs> MemoryStore::GetLogs(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = logs_.find(job_id);
  if (it == logs_.end())
    return absl::NotFoundError(absl::StrCat("no output recorded for job ", job_id));
  return it->second;
}
absl::Status MemoryStore::PutDecision(const std::string& job_id, const v1::Decision& d) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!fail_with_.ok()) return fail_with_;
  d.SerializeToString(&decisions_[job_id]);
  return absl::OkStatus();
}
absl::StatusOr<v1::Decision> MemoryStore::GetDecision(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = decisions_.find(job_id);
  if (it == decisions_.end())
    return absl::NotFoundError(absl::StrCat("no decision stored for job ", job_id));
  v1::Decision d;
  d.ParseFromString(it->second);
  return d;
}
absl::Status MemoryStore::PutTenant(const v1::Tenant& t) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!fail_with_.ok()) return fail_with_;
  tenants_[t.id()] = t;
  return absl::OkStatus();
}
absl::StatusOr<std::vector<v1::Tenant>> MemoryStore::LoadTenants() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<v1::Tenant> out;
  for (const auto& [id, t] : tenants_) out.push_back(t);
  return out;
}
absl::Status MemoryStore::PutDatasetVersion(const v1::RegisteredDataset& d) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!fail_with_.ok()) return fail_with_;
  datasets_[{d.id(), d.version()}] = d;
  return absl::OkStatus();
}
absl::StatusOr<std::vector<v1::RegisteredDataset>> MemoryStore::LoadDatasetVersions() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<v1::RegisteredDataset> out;
  for (const auto& [key, d] : datasets_) out.push_back(d);
  return out;
}
absl::Status MemoryStore::PutPolicyVersion(const v1::PolicyVersion& v) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!fail_with_.ok()) return fail_with_;
  versions_.push_back(v);
  return absl::OkStatus();
}
absl::StatusOr<std::vector<v1::PolicyVersion>> MemoryStore::LoadPolicyVersions() {
  std::lock_guard<std::mutex> lock(mu_);
  return versions_;
}
absl::Status MemoryStore::PutLedgerEntry(const v1::LedgerEntry& e) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!fail_with_.ok()) return fail_with_;
  ledger_[absl::StrCat(e.tenant(), "/", e.year(), "/", e.origin())] = e;
  return absl::OkStatus();
}
absl::StatusOr<std::vector<v1::LedgerEntry>> MemoryStore::LoadLedger() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<v1::LedgerEntry> out;
  for (const auto& [k, e] : ledger_) out.push_back(e);
  return out;
}
absl::Status MemoryStore::AppendAudit(const v1::AuditRecord& r) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!fail_with_.ok()) return fail_with_;
  audit_.push_back(r);
  return absl::OkStatus();
}
absl::StatusOr<std::vector<v1::AuditRecord>> MemoryStore::ListAudit(const std::string& tenant,
                                                                    const std::string& job,
                                                                    int limit) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<v1::AuditRecord> out;
  for (auto it = audit_.rbegin(); it != audit_.rend() && static_cast<int>(out.size()) < limit;
       ++it) {
    if (!tenant.empty() && it->tenant() != tenant) continue;
    if (!job.empty() && it->job() != job) continue;
    out.push_back(*it);
  }
  return out;
}
void MemoryStore::FailWritesWith(absl::Status status) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_with_ = std::move(status);
}
size_t MemoryStore::job_writes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return job_writes_;
}
size_t MemoryStore::job_reads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return job_reads_;
}

}  // namespace portolan::testing
