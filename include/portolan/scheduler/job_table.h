// SPDX-License-Identifier: Apache-2.0
#pragma once

// The scheduler's job table, one of the parts of Core: every job it
// knows, with the indexes kept beside the records — the queue of waiting
// jobs, the submit order for listing, counts by (state, tenant) for the
// metrics, and idempotency keys. Part of Core and guarded by Core's mutex
// (see core.h for why there is one lock); not thread-safe by itself.
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/node_hash_map.h"
#include "portolan/simulate/simulate.h"
#include "portolan/store/store.h"
#include "portolan/v1/job.pb.h"

namespace portolan::scheduler {

class JobTable {
 public:
  struct Rec {
    // The whole job while it can still change. Once it has ended and its
    // final record is durable, the record is dropped (DropEnded, at the next
    // Tick) and read back from the store when asked for, so a long history
    // costs about 280 bytes a job in memory, indexes included (1,000,000
    // jobs: 280 MiB resident, tests/bench/recovery.sh), and is not decoded
    // at start-up.
    std::unique_ptr<v1::Job> job;
    // What a decision reads of the job (simulate::Spec), fixed at submit and
    // shared with what-if snapshots, which copy this pointer rather than the
    // fields under the core's lock (with a backlog of 50,000 jobs, copying
    // the fields cut durable submits to a quarter while simulations ran back
    // to back: tests/bench/simulate_bench.sh). Held while `job` is.
    std::shared_ptr<const simulate::JobSpec> spec;
    std::string tenant;
    int64_t submitted_ns = 0;
    int64_t seq = 0;  // submit (or load) order: FIFO among equal priorities
    v1::Job::State ended_state = v1::Job::state_unspecified;  // set when `job` is dropped
    v1::Job::State state() const { return job ? job->state() : ended_state; }
  };
  // -priority, submit sequence (FIFO even when timestamps tie), id.
  using QueueKey = std::tuple<int, int64_t, std::string>;
  using OrderKey = std::pair<int64_t, std::string>;  // submitted ns, id

  void Reserve(size_t n) { recs_.reserve(n); }
  size_t size() const { return recs_.size(); }

  // Adds a job with its whole record (in submit or load order), or an ended
  // one by its summary only. `spec` is simulate::Spec(job), made here when
  // not given (Submit makes it before it takes the lock).
  v1::Job& Add(v1::Job job, std::shared_ptr<const simulate::JobSpec> spec = nullptr);
  void AddEnded(store::JobSummary&& summary);

  // The record of `id`, or null.
  Rec* Find(const std::string& id);
  const Rec* Find(const std::string& id) const;
  bool Contains(const std::string& id) const { return recs_.contains(id); }
  // The whole record of a job that must be held (it has not ended).
  v1::Job& Live(const std::string& id) { return *recs_.at(id).job; }
  // The held record of `id`, or null (unknown, or ended and dropped).
  v1::Job* Held(const std::string& id);

  // Keeps the indexes right when `job` moves to `to` (call before changing
  // the job's state): the queue, and the counts by state.
  void OnTransition(const v1::Job& job, v1::Job::State to);
  // `id` ended and its final record is stored: drop it at the next DropEnded.
  void MarkEnded(const std::string& id) { ended_.push_back(id); }
  void DropEnded();

  // The waiting jobs, by priority then submit order.
  const std::set<QueueKey>& queue() const { return queue_; }
  // The same jobs by (-priority, tenant), each list in submit order.
  using TenantQueues = std::map<std::pair<int, std::string>, std::set<QueueKey>>;
  const TenantQueues& tenant_queues() const { return tenant_queues_; }
  // The submit time of the oldest waiting job (ns since the epoch), or
  // INT64_MAX when none waits.
  int64_t OldestWaitingNs() const;
  // Jobs by (state, tenant).
  const std::map<std::pair<v1::Job::State, std::string>, int64_t>& counts() const {
    return counts_;
  }
  // Submit order, for listing newest first.
  const absl::btree_set<OrderKey>& order() const { return order_; }

  // The job an earlier submit with (tenant, key) created, or "".
  std::string ByIdempotencyKey(const std::string& tenant, const std::string& key) const;

 private:
  // Node maps: growing one moves pointers only. A flat map moved every
  // record under the lock each time it doubled, which at 458,000 jobs
  // stalled all submits for about half a second (rest_wrk.sh: max 496 ms,
  // p99 60.8 ms; with node maps 138.6 and 19.0 ms).
  absl::node_hash_map<std::string, Rec> recs_;
  std::vector<std::string> ended_;  // ended, record still held
  void Enqueue(int priority, const Rec& rec, const std::string& id);
  void Dequeue(int priority, const Rec& rec, const std::string& id);
  std::set<QueueKey> queue_;
  TenantQueues tenant_queues_;
  int64_t next_seq_ = 0;
  absl::btree_set<OrderKey> order_;
  std::map<std::pair<v1::Job::State, std::string>, int64_t> counts_;
  std::map<std::pair<std::string, std::string>, std::string> idempotency_;
};

}  // namespace portolan::scheduler
