// SPDX-License-Identifier: Apache-2.0
#include "portolan/scheduler/events.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "portolan/base/strings.h"

namespace portolan::scheduler {

struct EventHub::Subscriber {
  Filter filter;
  // Guarded by the hub's mu_.
  std::deque<v1::Event> queue;
  std::string reset;       // why events were lost, "" when none were
  uint64_t reset_seq = 0;  // the last event lost
  // Guarded by wake_mu: cleared by the subscription's destructor, so a
  // publisher that still holds this subscriber never calls into a client
  // that has gone.
  std::mutex wake_mu;
  std::function<void()> wake;
};

void EventHub::Publish(v1::Event event) {
  std::vector<std::shared_ptr<Subscriber>> to_wake;
  {
    absl::MutexLock lock(&mu_);
    event.set_seq(++seq_);
    for (const std::shared_ptr<Subscriber>& s : subscribers_) {
      if (!s->filter(event)) continue;
      const bool was_empty = s->queue.empty() && s->reset.empty();
      if (s->queue.size() >= options_.max_queue) {
        // Behind by more than we hold for it: what it has not read is
        // useless without the rest; it re-reads the lists instead.
        s->queue.clear();
        s->reset = absl::StrCat("this client read too slowly: more than ", options_.max_queue,
                                " events waited for it and were dropped");
        s->reset_seq = event.seq();
        continue;
      }
      s->queue.push_back(event);
      if (was_empty) to_wake.push_back(s);
    }
    history_.push_back(std::move(event));
    while (history_.size() > options_.history) history_.pop_front();
  }
  for (const std::shared_ptr<Subscriber>& s : to_wake) {
    std::lock_guard<std::mutex> lock(s->wake_mu);
    if (s->wake) s->wake();
  }
}

uint64_t EventHub::last_seq() const {
  absl::MutexLock lock(&mu_);
  return seq_;
}

std::unique_ptr<EventHub::Subscription> EventHub::Subscribe(Filter filter, uint64_t after,
                                                            std::function<void()> wake) {
  auto s = std::make_shared<Subscriber>();
  s->filter = std::move(filter);
  s->wake = std::move(wake);
  absl::MutexLock lock(&mu_);
  if (after < seq_) {
    const uint64_t first_held = history_.empty() ? seq_ + 1 : history_.front().seq();
    if (after + 1 < first_held) {
      s->reset =
          absl::StrCat("events ", after + 1, " to ", first_held - 1,
                       " are no longer held (the scheduler keeps the last ", options_.history, ")");
      s->reset_seq = first_held - 1;
    }
    for (const v1::Event& e : history_) {
      if (e.seq() > after && s->filter(e)) s->queue.push_back(e);
    }
  }
  subscribers_.push_back(s);
  return std::unique_ptr<Subscription>(new Subscription(this, std::move(s)));
}

EventHub::Subscription::~Subscription() {
  {
    std::lock_guard<std::mutex> lock(sub_->wake_mu);
    sub_->wake = nullptr;
  }
  absl::MutexLock lock(&hub_->mu_);
  auto& subs = hub_->subscribers_;
  subs.erase(std::remove(subs.begin(), subs.end(), sub_), subs.end());
}

std::vector<v1::Event> EventHub::Subscription::Take() {
  absl::MutexLock lock(&hub_->mu_);
  std::vector<v1::Event> out;
  out.reserve(sub_->queue.size() + 1);
  if (!sub_->reset.empty()) {
    v1::Event& r = out.emplace_back();
    r.set_seq(sub_->reset_seq);
    r.set_reset(std::move(sub_->reset));
    sub_->reset.clear();
  }
  for (v1::Event& e : sub_->queue) out.push_back(std::move(e));
  sub_->queue.clear();
  return out;
}

v1::Event JobChanged(const v1::Job& job, absl::Time now) {
  v1::Event e;
  *e.mutable_time() = base::ToProto(now);
  v1::JobChange* c = e.mutable_job();
  c->set_id(job.id());
  c->set_tenant(job.tenant());
  c->set_state(job.state());
  c->set_reason(job.reason());
  c->set_attempt(job.attempt());
  c->set_agent(job.allocation().agent());
  c->set_site(job.allocation().site());
  c->set_array_job(job.array_job());
  c->set_priority(job.priority());
  return e;
}

v1::Event AgentChanged(const v1::Agent& agent, absl::Time now) {
  v1::Event e;
  *e.mutable_time() = base::ToProto(now);
  v1::AgentChange* c = e.mutable_agent();
  c->set_id(agent.id());
  c->set_site(agent.site());
  c->set_state(agent.state());
  c->set_connected(agent.connected());
  *c->mutable_capacity() = agent.capacity();
  *c->mutable_allocated() = agent.allocated();
  c->set_jobs(static_cast<uint32_t>(agent.jobs_size()));
  return e;
}

v1::Event LinkChanged(const v1::Link& link, absl::Time now) {
  v1::Event e;
  *e.mutable_time() = base::ToProto(now);
  *e.mutable_link() = link;
  return e;
}

std::vector<v1::Link> ChangedLinks(const v1::Policy* before, const v1::Policy& after) {
  std::map<std::string, std::string> old;
  if (before != nullptr) {
    for (const v1::Link& l : before->links()) old[l.id()] = l.SerializeAsString();
  }
  std::vector<v1::Link> out;
  for (const v1::Link& l : after.links()) {
    auto it = old.find(l.id());
    if (it == old.end() || it->second != l.SerializeAsString()) out.push_back(l);
  }
  return out;
}

}  // namespace portolan::scheduler
