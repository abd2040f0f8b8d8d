// SPDX-License-Identifier: Apache-2.0
#include "portolan/scheduler/arrays.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "portolan/scheduler/core.h"

namespace portolan::scheduler {

bool IsArrayJob(const v1::Job& job) {
  return (job.has_array() || job.has_gang()) && job.array_job().empty();
}

std::string TaskId(const std::string& array, uint32_t index) {
  return absl::StrCat(array, "[", index, "]");
}

bool ParseTaskId(const std::string& id, std::string* array, uint32_t* index) {
  if (id.empty() || id.back() != ']') return false;
  const size_t open = id.rfind('[');
  if (open == std::string::npos || open == 0) return false;
  if (!absl::SimpleAtoi(absl::string_view(id).substr(open + 1, id.size() - open - 2), index))
    return false;
  *array = id.substr(0, open);
  return true;
}

uint32_t ArrayTable::Array::live() const {
  uint32_t n = 0;
  for (const auto& [s, k] : states) {
    if (!IsTerminal(s)) n += k;
  }
  return n;
}

ArrayTable::Array& ArrayTable::Add(const v1::Job& job) {
  Array& a = arrays_[job.id()];
  a.id = job.id();
  a.count = job.has_gang() ? job.gang().tasks() : job.array().count();
  a.parallelism = job.has_gang() ? 0 : job.array().parallelism();
  a.cancelled = job.cancel_requested();
  a.made.assign(a.count, false);
  return a;
}

ArrayTable::Array* ArrayTable::Find(const std::string& id) {
  auto it = arrays_.find(id);
  return it == arrays_.end() ? nullptr : &it->second;
}

void ArrayTable::OnTask(Array& a, uint32_t index, v1::Job::State from, v1::Job::State to) {
  if (index >= a.count) return;
  if (from == v1::Job::state_unspecified) {
    if (a.made[index]) return;  // already counted
    a.made[index] = true;
    ++a.made_count;
    while (a.next < a.count && a.made[a.next]) ++a.next;
  } else if (auto it = a.states.find(from); it != a.states.end() && --it->second == 0) {
    a.states.erase(it);
  }
  ++a.states[to];
}

std::vector<uint32_t> ArrayTable::Take(Array& a, uint32_t n) {
  std::vector<uint32_t> out;
  for (uint32_t i = a.next; i < a.count && out.size() < n; ++i) {
    if (!a.made[i]) out.push_back(i);
  }
  return out;
}

google::protobuf::Map<std::string, uint32_t> ArrayTable::Counts(const Array& a) {
  google::protobuf::Map<std::string, uint32_t> out;
  for (const auto& [s, k] : a.states) out[StateName(s)] = k;
  if (a.pending() > 0) out["pending"] = a.pending();
  return out;
}

}  // namespace portolan::scheduler
