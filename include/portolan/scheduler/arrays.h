// SPDX-License-Identifier: Apache-2.0
#pragma once

// Job arrays: one submitted job (the array job, never queued itself) stands
// for `count` tasks <id>[0] ... <id>[count-1]. Tasks are made lazily, a
// window at a time (ArrayTable::Take), so an array of 100,000 costs one
// record until its tasks start; each task is then a job of its own. This
// table keeps, per array job not yet ended, which indexes have a task and the
// tasks' states. Part of Core and guarded by Core's mutex; not thread-safe
// by itself.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/container/node_hash_map.h"
#include "portolan/v1/job.pb.h"

namespace portolan::scheduler {

// An array or gang job as submitted (has `array` or `gang`, is not itself a
// task). A gang is kept as an array whose tasks (its members, at most
// kMaxGangTasks, so one window) are all made at once and placed together
// (gangs.cc).
bool IsArrayJob(const v1::Job& job);
// "<array>[<index>]"; and back (false when `id` is not a task id).
std::string TaskId(const std::string& array, uint32_t index);
bool ParseTaskId(const std::string& id, std::string* array, uint32_t* index);

class ArrayTable {
 public:
  struct Array {
    std::string id;
    uint32_t count = 0;
    uint32_t parallelism = 0;  // 0: no limit
    bool cancelled = false;    // no further task starts
    std::vector<bool> made;    // index -> a task exists (in memory or stored)
    uint32_t made_count = 0;
    uint32_t next = 0;                          // every index below has a task
    std::map<v1::Job::State, uint32_t> states;  // of the tasks made
    uint32_t Count(v1::Job::State s) const {
      auto it = states.find(s);
      return it == states.end() ? 0 : it->second;
    }
    uint32_t pending() const { return count - made_count; }
    // Tasks made that have not ended.
    uint32_t live() const;
  };

  Array& Add(const v1::Job& array_job);
  Array* Find(const std::string& id);
  void Erase(const std::string& id) { arrays_.erase(id); }
  absl::node_hash_map<std::string, Array>& all() { return arrays_; }

  // Task `index` of `a` moved from `from` (state_unspecified: just made) to `to`.
  static void OnTask(Array& a, uint32_t index, v1::Job::State from, v1::Job::State to);
  // Up to `n` indexes without a task, lowest first (marked made by OnTask).
  static std::vector<uint32_t> Take(Array& a, uint32_t n);
  // Tasks by state name, and "pending" for those not made yet.
  static google::protobuf::Map<std::string, uint32_t> Counts(const Array& a);

 private:
  absl::node_hash_map<std::string, Array> arrays_;
};

}  // namespace portolan::scheduler
