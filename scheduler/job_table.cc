// SPDX-License-Identifier: Apache-2.0
#include "portolan/scheduler/job_table.h"

#include <cstdint>

#include "absl/time/time.h"
#include "portolan/base/strings.h"
#include "portolan/scheduler/core.h"
#include "portolan/simulate/simulate.h"

namespace portolan::scheduler {

v1::Job& JobTable::Add(v1::Job job, std::shared_ptr<const simulate::JobSpec> spec) {
  std::string id = job.id();
  Rec& rec = recs_[id];
  rec.tenant = job.tenant();
  rec.submitted_ns = absl::ToUnixNanos(base::FromProto(job.submitted_at()));
  rec.seq = ++next_seq_;  // jobs are added in submit (or load) order
  ++counts_[{job.state(), rec.tenant}];
  order_.emplace(rec.submitted_ns, id);
  // An array job is never queued itself: its tasks are.
  if (job.state() == v1::Job::queued && !IsArrayJob(job)) Enqueue(job.priority(), rec, id);
  if (!job.idempotency_key().empty()) idempotency_[{job.tenant(), job.idempotency_key()}] = id;
  rec.spec = spec ? std::move(spec) : simulate::Spec(job);
  rec.job = std::make_unique<v1::Job>(std::move(job));
  return *rec.job;
}

void JobTable::Enqueue(int priority, const Rec& rec, const std::string& id) {
  queue_.emplace(-priority, rec.seq, id);
  tenant_queues_[{-priority, rec.tenant}].emplace(-priority, rec.seq, id);
}

void JobTable::Dequeue(int priority, const Rec& rec, const std::string& id) {
  const QueueKey key{-priority, rec.seq, id};
  queue_.erase(key);
  auto it = tenant_queues_.find({-priority, rec.tenant});
  if (it == tenant_queues_.end()) return;
  it->second.erase(key);
  if (it->second.empty()) tenant_queues_.erase(it);
}

void JobTable::AddEnded(store::JobSummary&& e) {
  Rec& rec = recs_[e.id];
  rec.tenant = std::move(e.tenant);
  rec.submitted_ns = e.submitted_ns;
  rec.ended_state = e.state;
  ++counts_[{e.state, rec.tenant}];
  if (!e.idempotency_key.empty()) idempotency_[{rec.tenant, std::move(e.idempotency_key)}] = e.id;
  order_.emplace(e.submitted_ns, std::move(e.id));
}

JobTable::Rec* JobTable::Find(const std::string& id) {
  auto it = recs_.find(id);
  return it == recs_.end() ? nullptr : &it->second;
}

const JobTable::Rec* JobTable::Find(const std::string& id) const {
  auto it = recs_.find(id);
  return it == recs_.end() ? nullptr : &it->second;
}

v1::Job* JobTable::Held(const std::string& id) {
  Rec* rec = Find(id);
  return rec == nullptr ? nullptr : rec->job.get();
}

void JobTable::OnTransition(const v1::Job& job, v1::Job::State to) {
  const Rec& rec = recs_.at(job.id());
  if (job.state() == v1::Job::queued && to != v1::Job::queued)
    Dequeue(job.priority(), rec, job.id());
  if (to == v1::Job::queued && job.state() != v1::Job::queued && !IsArrayJob(job))
    Enqueue(job.priority(), rec, job.id());
  if (to != job.state()) {
    auto old = counts_.find({job.state(), rec.tenant});
    if (old != counts_.end() && --old->second == 0) counts_.erase(old);
    ++counts_[{to, rec.tenant}];
  }
}

void JobTable::DropEnded() {
  for (const std::string& id : ended_) {
    auto it = recs_.find(id);
    if (it == recs_.end() || !it->second.job || !IsTerminal(it->second.job->state())) continue;
    it->second.ended_state = it->second.job->state();
    it->second.job.reset();
    it->second.spec.reset();
  }
  ended_.clear();
}

int64_t JobTable::OldestWaitingNs() const {
  // Within a priority the queue is in submit order, so the oldest waiting
  // job is the first of one of the priority levels.
  int64_t oldest = INT64_MAX;
  for (auto it = queue_.begin(); it != queue_.end();
       it = queue_.lower_bound({std::get<0>(*it) + 1, INT64_MIN, ""})) {
    oldest = std::min(oldest, recs_.at(std::get<2>(*it)).submitted_ns);
  }
  return oldest;
}

std::string JobTable::ByIdempotencyKey(const std::string& tenant, const std::string& key) const {
  auto it = idempotency_.find({tenant, key});
  return it == idempotency_.end() ? "" : it->second;
}

}  // namespace portolan::scheduler
