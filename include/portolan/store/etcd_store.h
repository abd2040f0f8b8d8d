// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "portolan/etcd/client.h"
#include "portolan/store/store.h"

namespace portolan::store {

// The Store in an etcd cluster, for several schedulers of which one leads
// (docs/architecture.md, "State in etcd", has the key layout). Records are
// the schema's protobuf messages, stored whole as values under `prefix`.
// Writes are group-committed: all writes waiting when a commit starts become
// etcd transactions within `limits` (etcd refuses more than 128 operations or
// 1.5 MiB per request by default), so a batch is one transaction unless it is
// larger than that. A record larger than max_txn_bytes is refused alone.
//
// Thread-safe. `client` must outlive the store.
struct EtcdStoreLimits {
  int max_ops_per_txn = 120;
  size_t max_txn_bytes = 1 << 20;
};

class EtcdStore : public Store {
 public:
  static absl::StatusOr<std::unique_ptr<EtcdStore>> Open(etcd::Client* client, std::string prefix,
                                                         CommitObserver on_commit = nullptr,
                                                         EtcdStoreLimits limits = {});

  // From now on every write is a transaction that applies only while `key`
  // still has create revision `revision` (the leader key of this scheduler's
  // leadership; etcd::Election::fence()); otherwise it fails with
  // Unavailable ("fenced: ...") and nothing of it is written. Revision 0: no fence.
  virtual void SetFence(const std::string& key, int64_t revision) = 0;
};

}  // namespace portolan::store
