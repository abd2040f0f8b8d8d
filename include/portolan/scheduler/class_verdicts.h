// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <map>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"

namespace portolan::scheduler {

// The decision classes (placement::DecisionClass) that found no room since
// the scheduler's state last changed, with the decision that said so.
//
// Why: a burst of identical submits that cannot be placed (a site without
// agents, a full cluster) would otherwise decide each job again and keep a
// serialized decision per job, though nothing that decision reads has
// changed since its twin's. A job of a remembered class waits with the
// remembered decision (shared, as within one pass) and its reason.
//
// What "nothing changed" means is the scheduler's own signal: every change
// that can let a waiting job be placed (a job ended, an agent joined or came
// back, a policy, tenant, cordon or new day) requests a pass, and the owner
// calls Forget() there. The remaining inputs are part of the key or checked
// here: the tenant's quota-closed sites (in the key), the UTC day and an age
// of at most kMaxAge (so a verdict is never older than a full pass would
// make it). Changes that only take room away (a placement, more exports in
// the ledger) cannot make a class that found no room fit.
//
// Not thread-safe: Core keeps it under its mutex.
class ClassVerdicts {
 public:
  using Kept = std::shared_ptr<const std::string>;
  struct Verdict {
    Kept decision;       // the serialized v1::Decision
    std::string reason;  // the job's waiting reason
  };
  // As long as a verdict may be reused: Core's full pass interval.
  static constexpr absl::Duration kMaxAge = absl::Seconds(1);
  // Past this many classes, all are forgotten (a bound, not a working size).
  static constexpr size_t kMaxClasses = 4096;

  // The key of `decision_class` for a tenant whose quota closes the sites
  // `closed` (site -> why; QuotaVerdict::closed_sites): the class itself when
  // none is closed. A class is a serialized message, and no serialized
  // message continues a shorter one with a 0 byte (that would be a tag of
  // field number 0), so one class with sites is never another class's key.
  static std::string Key(const std::string& decision_class,
                         const std::map<std::string, std::string>& closed) {
    std::string key = decision_class;
    for (const auto& [site, why] : closed) {
      key.push_back('\0');
      key += site;
    }
    return key;
  }

  void Remember(const std::string& decision_class, const std::map<std::string, std::string>& closed,
                Kept decision, std::string reason, absl::Time now) {
    if (classes_.size() >= kMaxClasses) classes_.clear();
    classes_.insert_or_assign(Key(decision_class, closed),
                              Entry{{std::move(decision), std::move(reason)}, now, Day(now)});
  }
  // The verdict remembered for the class and closed sites, or nullptr when
  // none is, or it is from another UTC day or older than kMaxAge at `now`.
  const Verdict* Find(const std::string& decision_class,
                      const std::map<std::string, std::string>& closed, absl::Time now) const {
    if (classes_.empty()) return nullptr;  // the common case: no key is made
    // Without closed sites the key is the class: looked up without a copy.
    auto it = closed.empty() ? classes_.find(absl::string_view(decision_class))
                             : classes_.find(Key(decision_class, closed));
    if (it == classes_.end()) return nullptr;
    const Entry& e = it->second;
    if (now - e.made >= kMaxAge || now < e.made || Day(now) != e.day) return nullptr;
    return &e.verdict;
  }
  void Forget() { classes_.clear(); }
  size_t size() const { return classes_.size(); }

 private:
  struct Entry {
    Verdict verdict;
    absl::Time made;
    absl::CivilDay day;
  };
  static absl::CivilDay Day(absl::Time t) { return absl::ToCivilDay(t, absl::UTCTimeZone()); }
  absl::flat_hash_map<std::string, Entry> classes_;
};

}  // namespace portolan::scheduler
