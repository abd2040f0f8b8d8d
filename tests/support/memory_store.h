// SPDX-License-Identifier: Apache-2.0
#pragma once

// Test doubles of the scheduler's seams, linked only into tests.
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "portolan/store/store.h"

namespace portolan::testing {

// A volatile Store for tests (kept out of production code). Optionally fails every write with
// `fail_with` (set it to simulate a full or broken disk).
class MemoryStore : public store::Store {
 public:
  absl::Status PutJob(const v1::Job& job) override;
  absl::StatusOr<store::StoredJobs> LoadJobs() override;
  absl::StatusOr<v1::Job> GetJob(const std::string& id) override;
  absl::Status ReadJobs(const std::vector<std::string>& ids,
                        const std::function<void(v1::Job)>& fn) override;
  absl::Status PutAgent(const v1::Agent& agent) override;
  absl::StatusOr<std::vector<v1::Agent>> LoadAgents() override;
  absl::Status PutLogs(const v1::JobLogs& logs) override;
  absl::StatusOr<v1::JobLogs> GetLogs(const std::string& job_id) override;
  absl::Status PutDecision(const std::string& job_id, const v1::Decision& decision) override;
  absl::StatusOr<v1::Decision> GetDecision(const std::string& job_id) override;
  absl::Status PutTenant(const v1::Tenant& tenant) override;
  absl::StatusOr<std::vector<v1::Tenant>> LoadTenants() override;
  absl::Status PutDatasetVersion(const v1::RegisteredDataset& dataset) override;
  absl::StatusOr<std::vector<v1::RegisteredDataset>> LoadDatasetVersions() override;
  absl::Status PutPolicyVersion(const v1::PolicyVersion& version) override;
  absl::StatusOr<std::vector<v1::PolicyVersion>> LoadPolicyVersions() override;
  absl::Status PutLedgerEntry(const v1::LedgerEntry& entry) override;
  absl::StatusOr<std::vector<v1::LedgerEntry>> LoadLedger() override;
  absl::Status AppendAudit(const v1::AuditRecord& record) override;
  absl::StatusOr<std::vector<v1::AuditRecord>> ListAudit(const std::string& tenant,
                                                         const std::string& job,
                                                         int limit) override;

  void FailWritesWith(absl::Status status);
  size_t job_writes() const;
  size_t job_reads() const;  // GetJob calls

 private:
  mutable std::mutex mu_;
  // Jobs and decisions, the records written most, are kept encoded as the
  // real stores keep them: a write costs an encoding (which the benchmarks
  // built on this store then count, as they would with SQLite or etcd) and
  // a read a decoding.
  std::map<std::string, std::string> jobs_;
  std::map<std::string, v1::Agent> agents_;
  std::map<std::string, v1::JobLogs> logs_;
  std::map<std::string, std::string> decisions_;
  std::map<std::string, v1::Tenant> tenants_;
  std::map<std::pair<std::string, uint64_t>, v1::RegisteredDataset> datasets_;
  std::vector<v1::PolicyVersion> versions_;
  std::map<std::string, v1::LedgerEntry> ledger_;
  std::vector<v1::AuditRecord> audit_;
  absl::Status fail_with_;
  size_t job_writes_ = 0;
  size_t job_reads_ = 0;
};

}  // namespace portolan::testing
