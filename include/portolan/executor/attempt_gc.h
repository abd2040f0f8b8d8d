// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "absl/time/time.h"
#include "portolan/base/clock.h"

namespace portolan::executor {

// Removes the directories of ended attempts. <work_root>/<job>-<attempt>
// holds an attempt's logs and the job's working directory; once the
// scheduler has stored the attempt's end (with its log tail) nothing needs
// them, but operators may want to look, so each is kept for `keep_for`
// after it ended, and at most the newest `keep_max` are kept. Without this
// every job ever run stays on the agent's disk.
//
// Removal never follows a link the job left (base::RemoveTreeAt). It runs on
// a thread of its own, so a large tree never holds up a job's start or its
// end report. Thread-safe.
class AttemptDirGc {
 public:
  struct Options {
    std::string work_root;
    // How long an ended attempt's directory stays; zero: removed at once;
    // absl::InfiniteDuration(): never for its age.
    absl::Duration keep_for = absl::Hours(24);
    // At most this many ended attempts' directories stay, the newest; 0:
    // no limit.
    size_t keep_max = 10000;
    // false (tests): no thread; Collect() removes what is due.
    bool thread = true;
  };

  AttemptDirGc(Options options, base::Clock* clock);
  // Ends the thread; directories not yet due stay (the next agent process
  // adopts them, Adopt).
  ~AttemptDirGc();
  AttemptDirGc(const AttemptDirGc&) = delete;
  AttemptDirGc& operator=(const AttemptDirGc&) = delete;

  // `name` (a directory under work_root, "<job>-<attempt>") belongs to an
  // attempt that ended now and whose end the scheduler has.
  void Ended(const std::string& name);
  // At start: the directories under work_root that `live` does not name,
  // left by an earlier agent process, as ended when last modified. Returns
  // how many.
  size_t Adopt(const std::set<std::string>& live);
  // Removes what is due now (the thread calls it); returns how many
  // directories it removed.
  size_t Collect();
  uint64_t removed() const;
  size_t kept() const;

 private:
  void Loop();

  const Options options_;
  base::Clock* const clock_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  // Oldest first: (ended at, name).
  std::deque<std::pair<absl::Time, std::string>> ended_;
  uint64_t removed_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace portolan::executor
