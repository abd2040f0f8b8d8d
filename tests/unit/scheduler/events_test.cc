// SPDX-License-Identifier: Apache-2.0
#include "portolan/scheduler/events.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "absl/strings/match.h"

namespace portolan::scheduler {
namespace {

v1::Event Job(const std::string& id, const std::string& tenant) {
  v1::Job j;
  j.set_id(id);
  j.set_tenant(tenant);
  j.set_state(v1::Job::queued);
  return JobChanged(j, absl::UnixEpoch());
}

std::vector<std::string> JobIds(const std::vector<v1::Event>& events) {
  std::vector<std::string> out;
  for (const v1::Event& e : events) out.push_back(e.has_reset() ? "reset" : e.job().id());
  return out;
}

auto All() {
  return [](const v1::Event&) { return true; };
}

TEST(EventHubTest, SubscribersGetWhatTheirFilterTakesInOrderAndAreWokenOnce) {
  EventHub hub;
  int acme_wakes = 0, all_wakes = 0;
  auto acme = hub.Subscribe([](const v1::Event& e) { return e.job().tenant() == "acme"; },
                            hub.last_seq(), [&] { ++acme_wakes; });
  auto all = hub.Subscribe(All(), hub.last_seq(), [&] { ++all_wakes; });
  hub.Publish(Job("j1", "acme"));
  hub.Publish(Job("j2", "globex"));
  hub.Publish(Job("j3", "acme"));
  // Woken when the queue went from empty to not: once each.
  EXPECT_EQ(acme_wakes, 1);
  EXPECT_EQ(all_wakes, 1);
  EXPECT_EQ(JobIds(acme->Take()), (std::vector<std::string>{"j1", "j3"}));
  const auto got = all->Take();
  EXPECT_EQ(JobIds(got), (std::vector<std::string>{"j1", "j2", "j3"}));
  EXPECT_EQ(got[0].seq(), 1u);
  EXPECT_EQ(got[2].seq(), 3u);
  EXPECT_TRUE(acme->Take().empty());
  hub.Publish(Job("j4", "acme"));
  EXPECT_EQ(acme_wakes, 2);
  EXPECT_EQ(hub.last_seq(), 4u);
}

TEST(EventHubTest, AReconnectGetsWhatItMissedOrAResetWhenThatIsGone) {
  EventHub hub(EventHub::Options{.history = 3, .max_queue = 100});
  for (int i = 1; i <= 5; ++i) hub.Publish(Job("j" + std::to_string(i), "acme"));
  // Held: 3, 4, 5. After 3: 4 and 5.
  auto resumed = hub.Subscribe(All(), 3, [] {});
  EXPECT_EQ(JobIds(resumed->Take()), (std::vector<std::string>{"j4", "j5"}));
  // After 1: event 2 is gone: a reset, then 3, 4, 5.
  auto late = hub.Subscribe(All(), 1, [] {});
  const auto got = late->Take();
  EXPECT_EQ(JobIds(got), (std::vector<std::string>{"reset", "j3", "j4", "j5"}));
  EXPECT_TRUE(absl::StrContains(got[0].reset(), "events 2 to 2 are no longer held"))
      << got[0].reset();
  EXPECT_EQ(got[0].seq(), 2u);
  // Up to date: nothing.
  auto current = hub.Subscribe(All(), 5, [] {});
  EXPECT_TRUE(current->Take().empty());
}

TEST(EventHubTest, ASlowSubscriberLosesItsBacklogAndIsToldNotTheOthers) {
  EventHub hub(EventHub::Options{.history = 10, .max_queue = 4});
  auto slow = hub.Subscribe(All(), 0, [] {});
  auto fast = hub.Subscribe(All(), 0, [] {});
  for (int i = 1; i <= 6; ++i) {
    hub.Publish(Job("j" + std::to_string(i), "acme"));
    EXPECT_EQ(fast->Take().size(), 1u) << i;
  }
  // 4 queued, the 5th overflowed (all dropped), the 6th queued after the reset.
  const auto got = slow->Take();
  EXPECT_EQ(JobIds(got), (std::vector<std::string>{"reset", "j6"}));
  EXPECT_TRUE(absl::StrContains(got[0].reset(), "read too slowly")) << got[0].reset();
  EXPECT_EQ(got[0].seq(), 5u);
}

TEST(EventHubTest, NoWakeAfterTheSubscriptionIsGoneEvenWithPublishersRunning) {
  EventHub hub;
  std::atomic<bool> stop{false};
  std::thread publisher([&] {
    for (int i = 0; !stop; ++i) hub.Publish(Job("j" + std::to_string(i), "acme"));
  });
  std::vector<std::shared_ptr<std::atomic<int>>> late_wakes;
  for (int round = 0; round < 200; ++round) {
    auto alive = std::make_shared<std::atomic<bool>>(true);
    auto late = late_wakes.emplace_back(std::make_shared<std::atomic<int>>(0));
    {
      auto sub = hub.Subscribe(All(), hub.last_seq(), [alive, late] {
        if (!*alive) ++*late;
      });
      sub->Take();
    }
    *alive = false;
    std::this_thread::yield();
  }
  stop = true;
  publisher.join();
  for (size_t i = 0; i < late_wakes.size(); ++i) EXPECT_EQ(late_wakes[i]->load(), 0) << i;
}

TEST(EventHubTest, ChangedLinksAreTheNewAndTheDifferentOnes) {
  v1::Policy before, after;
  auto* l1 = before.add_links();
  l1->set_id("a");
  l1->set_rtt_ms(10);
  auto* l2 = before.add_links();
  l2->set_id("b");
  *after.add_links() = *l1;
  auto* b2 = after.add_links();
  *b2 = *l2;
  b2->set_up(false);
  after.add_links()->set_id("c");
  std::vector<std::string> ids;
  for (const v1::Link& l : ChangedLinks(&before, after)) ids.push_back(l.id());
  EXPECT_EQ(ids, (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(ChangedLinks(nullptr, after).size(), 3u);
}

}  // namespace
}  // namespace portolan::scheduler
