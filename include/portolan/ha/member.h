// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "portolan/base/clock.h"
#include "portolan/etcd/client.h"
#include "portolan/etcd/election.h"
#include "portolan/metrics/metrics.h"
#include "portolan/v1/cluster.pb.h"

namespace portolan::ha {

struct MemberOptions {
  // The store's key prefix: the leader key is <prefix>/leader, member
  // records <prefix>/members/<id>.
  std::string prefix = "portolan";
  // This scheduler: id, advertised REST URL and agent RPC address, version.
  v1::ClusterMember self;
  // The leader's lease. A leader that stops renewing (dead, paused, cut off
  // from etcd) is replaced this long after its last renewal.
  absl::Duration leader_ttl = absl::Seconds(5);
  // How often a standby tries to take an empty leader key.
  absl::Duration campaign_interval = absl::Milliseconds(200);
};

// One scheduler's membership of a high-availability cluster on etcd: its
// member record (leased, so a dead member disappears), its campaign for the
// leader key while it stands by, the renewals while it leads, and what it
// knows of the leader. All of it runs on one thread between Start and Stop.
//
// A leadership ends for good: once lost() is true the member does not
// campaign again until StepDown() says the process has stopped acting as
// leader (closed its servers, dropped its state). Thread-safe; `client` and
// `clock` outlive the member.
class Member {
 public:
  Member(etcd::Client* client, base::Clock* clock, MemberOptions options);
  ~Member();

  void Start();
  // Stops the thread; a leader resigns, so that a standby takes over at once.
  void Stop();

  // Blocks until this member leads, the leadership is lost, or `timeout`.
  bool WaitUntilLeading(absl::Duration timeout);
  // Leading now: won, not lost, and the lease cannot have ended yet.
  bool leading();
  // The leadership held since the last StepDown has ended.
  bool lost();
  // The process no longer acts as leader: campaigning may resume.
  void StepDown();

  // The leader key and its create revision while leading (the store's fence).
  std::string leader_key() const { return options_.prefix + "/leader"; }
  int64_t fence() { return election_.fence(); }

  // The leader as last seen (empty id while nobody leads); refreshed by the
  // member's thread every campaign interval.
  v1::ClusterMember leader();
  // Every member's record from etcd, with the store's health (each etcd
  // endpoint asked); an etcd that does not answer makes it unhealthy.
  v1::ClusterView View();

  // For metrics.
  uint64_t leadership_changes() const { return changes_.load(); }
  const v1::ClusterMember& self() const { return options_.self; }

 private:
  void Run();
  void Campaign();
  void Renew();
  absl::Status PutSelf(const std::string& role);
  void KeepSelfAlive();

  etcd::Client* const client_;
  base::Clock* const clock_;
  MemberOptions options_;
  etcd::Election election_;
  std::thread thread_;
  std::atomic<uint64_t> changes_{0};

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool won_ ABSL_GUARDED_BY(mu_) = false;   // leads (or led until lost_)
  bool lost_ ABSL_GUARDED_BY(mu_) = false;  // the leadership ended; waiting for StepDown
  uint64_t term_ ABSL_GUARDED_BY(mu_) = 0;  // leaderships won so far
  v1::ClusterMember leader_ ABSL_GUARDED_BY(mu_);
  int64_t self_lease_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time since_ ABSL_GUARDED_BY(mu_);
  std::string role_ ABSL_GUARDED_BY(mu_) = "standby";
};

// Registers this scheduler's HA gauges in `registry`, read at each scrape:
// portolan_scheduler_leader (1 while it leads; with no member — SQLite —
// always 1) and portolan_scheduler_leadership_changes. `member` may hold
// null until a member is made; it must outlive the registry.
void AddMetrics(metrics::Registry& registry, const std::atomic<Member*>* member);

}  // namespace portolan::ha
