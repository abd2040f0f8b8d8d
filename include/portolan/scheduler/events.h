// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "portolan/v1/events.pb.h"
#include "portolan/v1/policy.pb.h"

namespace portolan::scheduler {

// Changes of jobs, agents and links as they happen, for GET /v1/events.
//
// The core publishes while holding its own lock, so Publish never waits for
// a reader: it appends to a bounded history and to each subscriber's bounded
// queue and wakes the subscriber. A subscriber that falls more than
// `max_queue` events behind loses them and is told so (a reset event), so a
// stalled client costs bounded memory and never slows the scheduler.
//
// Thread-safe. The hub must outlive its subscriptions.
class EventHub {
 public:
  struct Options {
    size_t history = 4096;    // events held for clients that reconnect
    size_t max_queue = 4096;  // events waiting for one subscriber
  };
  // Which events a subscriber gets. Called with the hub's lock held, from
  // the publishing thread: it must be cheap and must not call the hub.
  using Filter = std::function<bool(const v1::Event&)>;

  EventHub() : EventHub(Options{}) {}
  explicit EventHub(Options options) : options_(options) {}
  EventHub(const EventHub&) = delete;
  EventHub& operator=(const EventHub&) = delete;

  // Numbers the event (seq) and hands it to the history and every
  // subscriber whose filter takes it. `event.time` is the caller's.
  void Publish(v1::Event event);
  // The seq of the last event published (0: none yet).
  uint64_t last_seq() const;

  class Subscription;
  // Events with seq > `after` that pass `filter`: first those still in the
  // history, then every later one. When events after `after` are no longer
  // held, the first event taken is a reset. `wake` is called (from any
  // thread, never with the hub's lock held, never after the subscription is
  // destroyed) when Take has something new after having returned nothing.
  std::unique_ptr<Subscription> Subscribe(Filter filter, uint64_t after,
                                          std::function<void()> wake);

 private:
  struct Subscriber;
  const Options options_;
  mutable absl::Mutex mu_;
  uint64_t seq_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<v1::Event> history_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<Subscriber>> subscribers_ ABSL_GUARDED_BY(mu_);
};

class EventHub::Subscription {
 public:
  ~Subscription();  // unsubscribes; `wake` is not called after it returns
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  // What has arrived since the last Take, oldest first (a reset first when
  // events were dropped for this subscriber).
  std::vector<v1::Event> Take();

 private:
  friend class EventHub;
  Subscription(EventHub* hub, std::shared_ptr<Subscriber> sub) : hub_(hub), sub_(std::move(sub)) {}
  EventHub* const hub_;
  const std::shared_ptr<Subscriber> sub_;
};

// The event saying what a job, an agent or a link is now.
v1::Event JobChanged(const v1::Job& job, absl::Time now);
v1::Event AgentChanged(const v1::Agent& agent, absl::Time now);
v1::Event LinkChanged(const v1::Link& link, absl::Time now);
// The links of `after` that are new or differ from `before`'s (all of them
// when `before` is null).
std::vector<v1::Link> ChangedLinks(const v1::Policy* before, const v1::Policy& after);

}  // namespace portolan::scheduler
