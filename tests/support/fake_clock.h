// SPDX-License-Identifier: Apache-2.0
#pragma once

// A Clock for tests (kept out of production code).
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "portolan/base/clock.h"

namespace portolan::testing {

// A clock that only moves when told to. Thread-safe.
class FakeClock : public base::Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1'790'000'000)) : now_(start) {}
  absl::Time Now() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    std::lock_guard<std::mutex> lock(mu_);
    now_ += d;
  }
  void Set(absl::Time t) {
    std::lock_guard<std::mutex> lock(mu_);
    now_ = t;
  }

 private:
  mutable std::mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace portolan::testing
