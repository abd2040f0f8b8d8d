// SPDX-License-Identifier: Apache-2.0
// Identifiers: random ones, and time-ordered ones for records the store
// keys by id.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "portolan/base/strings.h"

namespace portolan::base {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The milliseconds an ordered id carries (its top 42 bits).
int64_t MsOf(const std::string& id, const std::string& prefix) {
  return static_cast<int64_t>(std::stoull(id.substr(prefix.size() + 1), nullptr, 16) >> 22);
}

TEST(IdsTest, OrderedIdsCarryTheirTimeAndSortInTheOrderTheyWereMade) {
  const int64_t before = NowMs();
  const std::string first = NewOrderedId("job");
  ASSERT_EQ(first.size(), 4u + 16u) << first;
  EXPECT_TRUE(absl::StartsWith(first, "job-")) << first;
  EXPECT_EQ(first.find_first_not_of("0123456789abcdef", 4), std::string::npos) << first;
  // Many in the same millisecond: each larger than the one before, as
  // strings too (fixed width, most significant digit first).
  std::vector<std::string> ids{first};
  for (int i = 0; i < 20000; ++i) ids.push_back(NewOrderedId("job"));
  const int64_t after = NowMs();
  for (size_t i = 1; i < ids.size(); ++i) ASSERT_LT(ids[i - 1], ids[i]) << "at " << i;
  EXPECT_GE(MsOf(first, "job"), before);
  EXPECT_LE(MsOf(first, "job"), after);
  // Running ahead of the clock by one per id at most: 20,000 ids cannot
  // carry a time more than 20,000 / 2^22 ms past it.
  EXPECT_LE(MsOf(ids.back(), "job"), after + 1);
}

TEST(IdsTest, OrderedIdsFromManyThreadsNeverRepeat) {
  constexpr int kThreads = 8, kEach = 5000;
  std::vector<std::vector<std::string>> made(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&made, t] {
      for (int i = 0; i < kEach; ++i) made[t].push_back(NewOrderedId("audit"));
    });
  }
  for (std::thread& t : threads) t.join();
  std::set<std::string> all;
  for (const auto& ids : made) {
    for (size_t i = 1; i < ids.size(); ++i) EXPECT_LT(ids[i - 1], ids[i]);
    all.insert(ids.begin(), ids.end());
  }
  EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kEach));
}

TEST(IdsTest, RandomIdsKeepTheirShape) {
  const std::string id = NewId("session");
  ASSERT_EQ(id.size(), 8u + 12u) << id;
  EXPECT_TRUE(absl::StartsWith(id, "session-")) << id;
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef", 8), std::string::npos) << id;
  EXPECT_NE(NewId("session"), NewId("session"));
}

}  // namespace
}  // namespace portolan::base
