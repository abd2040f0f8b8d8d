// SPDX-License-Identifier: Apache-2.0
#include "portolan/ha/member.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "portolan/base/log.h"
#include "portolan/base/strings.h"

namespace portolan::ha {
namespace {

etcd::ElectionOptions ElectionFor(const MemberOptions& o) {
  v1::ClusterMember leader = o.self;
  leader.set_role("leader");
  return {o.prefix + "/leader", leader.SerializeAsString(), o.leader_ttl};
}

}  // namespace

Member::Member(etcd::Client* client, base::Clock* clock, MemberOptions options)
    : client_(client),
      clock_(clock),
      options_(std::move(options)),
      election_(client, clock, ElectionFor(options_)) {
  absl::MutexLock lock(&mu_);
  since_ = clock_->Now();
}

Member::~Member() { Stop(); }

void Member::Start() {
  spdlog::info("high availability: member {} (REST {}, agent RPC {}) joins; leader lease {}",
               options_.self.id(), options_.self.rest_addr(), options_.self.rpc_addr(),
               absl::FormatDuration(options_.leader_ttl));
  thread_ = std::thread([this] { Run(); });
}

void Member::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return;
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
  bool resign;
  int64_t self_lease;
  {
    absl::MutexLock lock(&mu_);
    resign = won_ && !lost_;
    self_lease = self_lease_;
  }
  if (resign) {
    absl::Status st = election_.Resign();
    if (st.ok()) {
      spdlog::info("high availability: {} resigned the leadership", options_.self.id());
    } else {
      spdlog::warn(
          "high availability: resigning failed ({}); a standby takes over when the "
          "lease ends",
          st.message());
    }
  }
  if (self_lease != 0) (void)client_->RevokeLease(self_lease);  // the member record goes with it
}

void Member::Run() {
  absl::Time next_self = absl::InfinitePast();
  const absl::Duration renew_every = std::max(options_.leader_ttl / 3, absl::Milliseconds(100));
  for (;;) {
    bool won, lost;
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return;
      won = won_;
      lost = lost_;
    }
    if (clock_->Now() >= next_self) {
      KeepSelfAlive();
      next_self = clock_->Now() + renew_every;
    }
    absl::Duration wait = options_.campaign_interval;
    if (won && !lost) {
      Renew();
      wait = election_.Leading() ? renew_every : absl::Milliseconds(100);
    } else if (!lost) {
      Campaign();
    }
    absl::MutexLock lock(&mu_);
    const bool* stop = &stop_;
    mu_.AwaitWithTimeout(absl::Condition(stop), wait);
  }
}

void Member::Campaign() {
  auto won = election_.Campaign();
  if (won.ok() && *won) {
    {
      absl::MutexLock lock(&mu_);
      won_ = true;
      ++term_;
      role_ = "leader";
      since_ = clock_->Now();
      leader_ = options_.self;
      leader_.set_role("leader");
      *leader_.mutable_since() = base::ToProto(since_);
    }
    ++changes_;
    (void)PutSelf("leader");
    return;
  }
  if (!won.ok()) {
    spdlog::debug("high availability: campaign: {}", won.status().message());
    return;
  }
  auto current = election_.Current();
  absl::MutexLock lock(&mu_);
  if (current.ok()) {
    v1::ClusterMember m;
    if (m.ParseFromString(current->value)) leader_ = m;
  } else if (current.status().code() == absl::StatusCode::kNotFound) {
    leader_.Clear();
  }
}

void Member::Renew() {
  uint64_t term;
  {
    absl::MutexLock lock(&mu_);
    term = term_;
  }
  auto kept = election_.Renew();
  if (kept.ok() && *kept) return;
  if (!kept.ok() && election_.Leading()) {
    spdlog::warn("high availability: renewing the leader lease failed ({}); retrying",
                 kept.status().message());
    return;
  }
  const std::string why = kept.ok() ? "the leader lease ended (another member may lead now)"
                                    : absl::StrCat(
                                          "the leader lease could not be renewed before "
                                          "it ran out: ",
                                          kept.status().message());
  absl::MutexLock lock(&mu_);
  if (!won_ || term_ != term) return;  // the process stepped down meanwhile
  spdlog::error("high availability: {} lost the leadership: {}", options_.self.id(), why);
  lost_ = true;
  leader_.Clear();
}

void Member::StepDown() {
  {
    absl::MutexLock lock(&mu_);
    if (!won_) return;
    won_ = false;
    lost_ = false;
    role_ = "standby";
    since_ = clock_->Now();
  }
  (void)election_.Resign();  // if the key is still ours, free it
  ++changes_;
  spdlog::info("high availability: {} stands by", options_.self.id());
  (void)PutSelf("standby");
}

bool Member::WaitUntilLeading(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || (won_ && !lost_); };
  mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  return won_ && !lost_;
}

bool Member::leading() {
  {
    absl::MutexLock lock(&mu_);
    if (!won_ || lost_) return false;
  }
  return election_.Leading();
}

bool Member::lost() {
  absl::MutexLock lock(&mu_);
  return lost_;
}

v1::ClusterMember Member::leader() {
  absl::MutexLock lock(&mu_);
  return leader_;
}

absl::Status Member::PutSelf(const std::string& role) {
  int64_t lease;
  v1::ClusterMember me = options_.self;
  {
    absl::MutexLock lock(&mu_);
    lease = self_lease_;
    me.set_role(role);
    *me.mutable_since() = base::ToProto(since_);
  }
  if (lease == 0) {
    auto granted = client_->GrantLease(std::max(options_.leader_ttl, absl::Seconds(3)));
    if (!granted.ok()) return granted.status();
    lease = *granted;
    absl::MutexLock lock(&mu_);
    self_lease_ = lease;
  }
  etcdserverpb::PutRequest put;
  put.set_key(absl::StrCat(options_.prefix, "/members/", options_.self.id()));
  put.set_value(me.SerializeAsString());
  put.set_lease(lease);
  auto resp = client_->Put(put);
  return resp.ok() ? absl::OkStatus() : resp.status();
}

void Member::KeepSelfAlive() {
  int64_t lease;
  std::string role;
  {
    absl::MutexLock lock(&mu_);
    lease = self_lease_;
    role = role_;
  }
  if (lease != 0) {
    auto ttl = client_->KeepAlive(lease);
    if (!ttl.ok()) return;  // etcd away: try again next time
    if (*ttl > absl::ZeroDuration()) return;
    absl::MutexLock lock(&mu_);
    self_lease_ = 0;  // expired: a new lease and record below
  }
  absl::Status st = PutSelf(role);
  if (!st.ok()) spdlog::debug("high availability: member record: {}", st.message());
}

v1::ClusterView Member::View() {
  v1::ClusterView view;
  etcdserverpb::RangeRequest req;
  const std::string prefix = options_.prefix + "/members/";
  req.set_key(prefix);
  req.set_range_end(etcd::PrefixEnd(prefix));
  auto resp = client_->Range(req);
  if (resp.ok()) {
    for (const auto& kv : resp->kvs()) {
      v1::ClusterMember m;
      if (m.ParseFromString(kv.value())) *view.add_members() = std::move(m);
    }
  }
  auto current = election_.Current();
  if (current.ok()) {
    v1::ClusterMember m;
    if (m.ParseFromString(current->value)) view.set_leader(m.id());
  }
  v1::StoreStatus* store = view.mutable_store();
  store->set_kind("etcd");
  for (const std::string& e : client_->options().endpoints) store->add_endpoints(e);
  bool healthy = resp.ok();
  if (!resp.ok()) store->add_problems(std::string(resp.status().message()));
  for (const auto& st : client_->MemberStatus()) {
    if (st.ok()) continue;
    healthy = false;
    store->add_problems(std::string(st.status().message()));
  }
  store->set_healthy(healthy);
  return view;
}

void AddMetrics(metrics::Registry& registry, const std::atomic<Member*>* member) {
  auto* leader = registry.AddGauge("portolan_scheduler_leader",
                                   "1 while this scheduler leads (always 1 with --store sqlite).");
  auto* changes = registry.AddGauge(
      "portolan_scheduler_leadership_changes",
      "Times this scheduler became leader or stepped down since it started (set at scrape).");
  registry.OnScrape([member, leader, changes] {
    Member* m = member == nullptr ? nullptr : member->load();
    leader->With()->Set(member == nullptr || (m != nullptr && m->leading()) ? 1 : 0);
    changes->With()->Set(m == nullptr ? 0 : static_cast<double>(m->leadership_changes()));
  });
}

}  // namespace portolan::ha
