// SPDX-License-Identifier: Apache-2.0
#include "portolan/etcd/election.h"

#include "absl/strings/str_cat.h"
#include "portolan/base/log.h"

namespace portolan::etcd {

Election::Election(Client* client, base::Clock* clock, ElectionOptions options)
    : client_(client), clock_(clock), options_(std::move(options)) {}

void Election::LoseLocked() {
  fence_ = 0;
  lease_ = 0;
  valid_until_ = absl::InfinitePast();
}

absl::StatusOr<bool> Election::Campaign() {
  {
    absl::MutexLock lock(&mu_);
    if (fence_ != 0) return true;
  }
  const absl::Time sent = clock_->Now();
  auto lease = client_->GrantLease(options_.ttl);
  if (!lease.ok()) return lease.status();
  etcdserverpb::TxnRequest txn;
  etcdserverpb::Compare* cmp = txn.add_compare();
  cmp->set_key(options_.key);
  cmp->set_target(etcdserverpb::Compare::CREATE);
  cmp->set_result(etcdserverpb::Compare::EQUAL);
  cmp->set_create_revision(0);  // the key does not exist
  etcdserverpb::PutRequest* put = txn.add_success()->mutable_request_put();
  put->set_key(options_.key);
  put->set_value(options_.value);
  put->set_lease(*lease);
  txn.add_failure()->mutable_request_range()->set_key(options_.key);
  auto resp = client_->Txn(txn);
  if (!resp.ok()) {
    // It may have been applied all the same: then the key carries our lease
    // and the next Campaign finds it below... unless we revoke it now, which
    // is the simpler truth: nobody leads through this lease.
    (void)client_->RevokeLease(*lease);
    return resp.status();
  }
  int64_t fence = 0;
  if (resp->succeeded()) {
    fence = resp->header().revision();  // the put's revision is the key's create revision
  } else {
    const auto& kvs = resp->responses(0).response_range().kvs();
    if (!kvs.empty() && kvs[0].lease() == *lease) fence = kvs[0].create_revision();
  }
  if (fence == 0) {
    (void)client_->RevokeLease(*lease);
    return false;
  }
  absl::MutexLock lock(&mu_);
  lease_ = *lease;
  fence_ = fence;
  valid_until_ = sent + options_.ttl;
  spdlog::info("election: won {} (fence revision {}, lease {:x}, ttl {})", options_.key, fence,
               *lease, absl::FormatDuration(options_.ttl));
  return true;
}

absl::StatusOr<bool> Election::Renew() {
  int64_t lease;
  {
    absl::MutexLock lock(&mu_);
    if (fence_ == 0) return false;
    lease = lease_;
  }
  const absl::Time sent = clock_->Now();
  auto ttl = client_->KeepAlive(lease);
  if (!ttl.ok()) return ttl.status();  // still leading until valid_until_, perhaps
  absl::MutexLock lock(&mu_);
  if (lease_ != lease) return false;  // resigned meanwhile
  if (*ttl <= absl::ZeroDuration()) {
    spdlog::warn("election: the lease on {} ended; no longer leading", options_.key);
    LoseLocked();
    return false;
  }
  valid_until_ = sent + *ttl;
  return true;
}

absl::Status Election::Resign() {
  int64_t lease;
  {
    absl::MutexLock lock(&mu_);
    lease = lease_;
    LoseLocked();
  }
  if (lease == 0) return absl::OkStatus();
  return client_->RevokeLease(lease);
}

bool Election::Leading() {
  absl::MutexLock lock(&mu_);
  return fence_ != 0 && clock_->Now() < valid_until_;
}

int64_t Election::fence() {
  absl::MutexLock lock(&mu_);
  return fence_;
}

absl::StatusOr<Leader> Election::Current() {
  etcdserverpb::RangeRequest req;
  req.set_key(options_.key);
  auto resp = client_->Range(req);
  if (!resp.ok()) return resp.status();
  if (resp->kvs().empty()) return absl::NotFoundError("no leader");
  Leader l;
  l.value = resp->kvs(0).value();
  l.create_revision = resp->kvs(0).create_revision();
  l.lease = resp->kvs(0).lease();
  return l;
}

}  // namespace portolan::etcd
