// SPDX-License-Identifier: Apache-2.0
// The cumulative export ledger (residency.h, Ledger).
#include "portolan/residency/residency.h"

#include "portolan/base/strings.h"

namespace portolan::residency {

Ledger::Ledger(const Ledger& other) {
  absl::MutexLock lock(&other.mu_);
  entries_ = other.entries_;
  counted_ = other.counted_;
}

Ledger::Totals Ledger::Get(const std::string& tenant, int year, const std::string& origin) const {
  absl::MutexLock lock(&mu_);
  Totals t;
  auto it = entries_.find(Key{tenant, year, origin});
  if (it == entries_.end()) return t;
  t.subjects = it->second.subjects();
  t.sensitive_subjects = it->second.sensitive_subjects();
  return t;
}

bool Ledger::Counted(const std::string& tenant, int year, const std::string& origin,
                     const std::string& dataset) const {
  absl::MutexLock lock(&mu_);
  auto c = counted_.find(Key{tenant, year, origin});
  return c != counted_.end() && c->second.contains(dataset);
}

bool Ledger::Record(const std::string& tenant, int year, const std::string& origin,
                    const std::string& dataset, uint32_t subjects, uint32_t sensitive) {
  absl::MutexLock lock(&mu_);
  Key k{tenant, year, origin};
  if (!counted_[k].insert(dataset).second) return false;
  changes_.fetch_add(1, std::memory_order_release);
  v1::LedgerEntry& e = entries_[k];
  e.set_tenant(tenant);
  e.set_year(year);
  e.set_origin(origin);
  e.set_subjects(e.subjects() + subjects);
  e.set_sensitive_subjects(e.sensitive_subjects() + sensitive);
  e.add_datasets(dataset);
  return true;
}

bool Ledger::Forget(const std::string& tenant, int year, const std::string& origin,
                    const std::string& dataset, uint32_t subjects, uint32_t sensitive) {
  absl::MutexLock lock(&mu_);
  Key k{tenant, year, origin};
  auto c = counted_.find(k);
  if (c == counted_.end() || c->second.erase(dataset) == 0) return false;
  changes_.fetch_add(1, std::memory_order_release);
  v1::LedgerEntry& e = entries_[k];
  e.set_subjects(e.subjects() >= subjects ? e.subjects() - subjects : 0);
  e.set_sensitive_subjects(e.sensitive_subjects() >= sensitive ? e.sensitive_subjects() - sensitive
                                                               : 0);
  auto* ds = e.mutable_datasets();
  for (int i = ds->size(); i-- > 0;) {
    if (ds->Get(i) == dataset) {
      ds->DeleteSubrange(i, 1);
      break;
    }
  }
  return true;
}

uint64_t Ledger::NextInstance() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

void Ledger::Load(const v1::LedgerEntry& entry) {
  absl::MutexLock lock(&mu_);
  changes_.fetch_add(1, std::memory_order_release);
  Key k{entry.tenant(), entry.year(), entry.origin()};
  entries_[k] = entry;
  auto& c = counted_[k];
  c.insert(entry.datasets().begin(), entry.datasets().end());
}

v1::LedgerEntry Ledger::Entry(const std::string& tenant, int year,
                              const std::string& origin) const {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find({tenant, year, origin});
  if (it != entries_.end()) return it->second;
  v1::LedgerEntry e;
  e.set_tenant(tenant);
  e.set_year(year);
  e.set_origin(origin);
  return e;
}

v1::AuditRecord NewAuditRecord(absl::string_view kind, absl::Time now, const v1::Job* job,
                               const v1::Dataset* ds) {
  v1::AuditRecord rec;
  rec.set_id(base::NewId("audit"));
  *rec.mutable_time() = base::ToProto(now);
  rec.set_kind(std::string(kind));
  if (job != nullptr) {
    rec.set_job(job->id());
    rec.set_tenant(job->tenant());
  }
  if (ds != nullptr) {
    rec.set_dataset(ds->id());
    rec.set_origin(ds->origin());
    rec.set_from_site(ds->location());
  }
  return rec;
}

}  // namespace portolan::residency
