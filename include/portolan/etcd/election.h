// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "portolan/base/clock.h"
#include "portolan/etcd/client.h"

namespace portolan::etcd {

struct ElectionOptions {
  // The leader key; its value is `value` of the member holding it.
  std::string key;
  std::string value;
  // The leader's lease: a leader that stops renewing it (dead, paused, cut
  // off from etcd) loses the key this long after its last renewal.
  absl::Duration ttl = absl::Seconds(5);
};

// The key's holder as etcd has it.
struct Leader {
  std::string value;
  int64_t create_revision = 0;  // the fence of that leadership
  int64_t lease = 0;
};

// Leader election on one etcd key held under a lease, after etcd's own
// concurrency recipe: a candidate creates the key only if it does not exist
// (a transaction comparing its create revision with 0), attached to its
// lease; the leader renews the lease every ttl/3; when it stops, etcd deletes
// the key at the lease's end and the next Campaign of a standby wins.
//
// Fencing: the key's create revision is unique to one leadership. The store
// makes every write a transaction that compares it (EtcdStore::SetFence), so
// a leader that was paused or cut off past its lease — and so replaced —
// cannot write anything once the new leader has the key, whatever it
// believes. Leading() is the local, time-based view (stop acting before the
// lease can have ended); the fence is what makes it safe when that is wrong.
//
// Thread-safe. `client` and `clock` must outlive the election.
class Election {
 public:
  Election(Client* client, base::Clock* clock, ElectionOptions options);

  // One attempt: true when this member holds the key now (it may have held it
  // already). With another leader in place, false and nothing changes.
  absl::StatusOr<bool> Campaign();
  // Renews the lease while leading; false once leadership is lost (the lease
  // ended or the key is no longer ours), after which Leading() is false.
  absl::StatusOr<bool> Renew();
  // Gives the key up now (revokes the lease), so a standby need not wait
  // for the lease to run out.
  absl::Status Resign();

  // Whether this member leads and its lease cannot have ended yet: counted
  // from when the last renewal was sent, by the local clock.
  bool Leading();
  // The create revision of the key while this member leads; 0 otherwise.
  int64_t fence();

  // The current holder of the key; NotFound when there is none.
  absl::StatusOr<Leader> Current();

  const ElectionOptions& options() const { return options_; }

 private:
  void LoseLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Client* const client_;
  base::Clock* const clock_;
  const ElectionOptions options_;
  absl::Mutex mu_;
  int64_t lease_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t fence_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time valid_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace portolan::etcd
