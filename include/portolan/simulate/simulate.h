// SPDX-License-Identifier: Apache-2.0
#pragma once

// Policy what-if: every job of a snapshot decided twice, under the policy in
// force and under a candidate (another policy, links changed, tenant
// profiles changed), and the differences summed up for an admin. Pure
// computation over what the caller copied; the scheduler (Core::Simulate)
// takes the snapshot and serves POST /v1/policy:simulate.
//
// Each job is decided alone on the snapshot, exactly as `plan` would decide
// it (placement::Engine::Decide on the same input): the simulation says where
// each job may and would go, not the order in which one scheduling pass
// would fill the cluster. Jobs alike in all a decision reads
// (placement::DecisionClass) are decided once per side.
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "portolan/placement/placement.h"
#include "portolan/policy/policy.h"
#include "portolan/residency/residency.h"
#include "portolan/topology/allocator.h"
#include "portolan/v1/simulate.pb.h"

namespace portolan::simulate {

// One side of the comparison. Pointers outlive Run.
struct Side {
  const policy::CompiledPolicy* policy = nullptr;
  const placement::Engine* engine = nullptr;
  // Tenant profiles by id; a tenant absent here has no profile.
  const std::map<std::string, v1::Tenant>* tenants = nullptr;
};

// Agents as placement sees them, owning what the views point to. Not
// thread-safe while being filled; read-only afterwards.
class AgentSet {
 public:
  // `topo` null: only the counts of `free` are checked (as for an agent
  // whose hardware is unknown).
  void Add(v1::Agent agent, v1::Resources free, std::unique_ptr<topology::AgentTopology> topo);
  const std::map<std::string, std::vector<placement::AgentView>>& by_site() const {
    return by_site_;
  }
  size_t size() const { return agents_.size(); }

 private:
  std::deque<v1::Agent> agents_;  // a deque: views keep pointing at its elements
  std::vector<std::unique_ptr<topology::AgentTopology>> topos_;
  std::map<std::string, std::vector<placement::AgentView>> by_site_;
};

// What a decision reads of a job with its id, tenant, priority and submit
// time, and its placement::DecisionClass: fixed once the job is submitted, so
// the scheduler makes it once per job and a snapshot shares it.
struct JobSpec {
  v1::Job job;
  std::string decision_class;
};
std::shared_ptr<const JobSpec> Spec(const v1::Job& job);

struct Job {
  // The tasks of an array share their array job's spec (same shape, same
  // data), so a task's own id is kept here; empty: spec->job.id().
  std::string id;
  const std::string& Id() const { return id.empty() ? spec->job.id() : id; }
  std::shared_ptr<const JobSpec> spec;
  v1::Job::State state = v1::Job::state_unspecified;
  std::string site, agent;  // where a placed or running job is
  // Decided on Input::empty (history with capacity: ignore) rather than
  // Input::current.
  bool on_empty = false;
};

struct Input {
  std::vector<Job> jobs;
  AgentSet current;  // the agents with their free capacity at the snapshot
  AgentSet empty;    // the same agents with nothing allocated (for on_empty jobs)
  const residency::Ledger* ledger = nullptr;
  absl::CivilDay today;
  Side base;       // the policy, network and tenants in force
  Side candidate;  // what the admin proposes
};

struct Options {
  // Past it, Run stops and returns DeadlineExceeded.
  absl::Time deadline = absl::InfiniteFuture();
  uint32_t max_changes = 1000;  // listed; the summary counts all
  // Threads deciding. Run does all its work on threads of lowered priority:
  // with `idle`, SCHED_IDLE (they run only when no other thread of the
  // machine wants the CPU: a simulation then takes next to nothing from
  // serving, and on a saturated machine waits, bounded by its deadline);
  // else their nice value raised by `nice` (a small share even then).
  int threads = 1;
  bool idle = false;
  int nice = 0;
  // When set, run first on Run's lowered thread to add jobs (the scheduler
  // reads the history from its store there: decoding 100,000 records is a
  // second of CPU that serving should not lose). Its error is Run's.
  std::function<absl::Status(std::vector<Job>& jobs)> load;
  // When set, called once per job (from Run's own thread, after deciding) with
  // both decisions: for tests that compare them with `plan`.
  std::function<void(const Job& job, const v1::Decision& base, const v1::Decision& candidate)>
      on_decisions;
};

// Decides every job of `in` under both sides and returns the jobs treated
// differently, with the summary (SimulateResponse minus what only the
// caller knows: policy_version, snapshot_at, elapsed_ms, warnings).
// DeadlineExceeded when the deadline passes first.
absl::StatusOr<v1::SimulateResponse> Run(Input& in, const Options& options);

}  // namespace portolan::simulate
