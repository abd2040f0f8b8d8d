// SPDX-License-Identifier: Apache-2.0
// Job arrays in the core: tasks made a window at a time, the array job's
// state and counts following its tasks, cancel of all, the task listing.
// Part of Core (portolan/scheduler/core.h), under its lock.
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "portolan/base/log.h"
#include "portolan/base/strings.h"
#include "portolan/codec/codec.h"
#include "portolan/scheduler/core.h"

namespace portolan::scheduler {

void Core::MakeTasks() {
  for (auto& [id, a] : arrays_.all()) {
    if (a.cancelled || a.pending() == 0) continue;
    v1::Job* parent = jobs_.Held(id);
    if (parent == nullptr) continue;
    const uint32_t live = a.live();
    const uint32_t queued = a.Count(v1::Job::queued);
    uint32_t n = std::min(a.pending(), kArrayWindow > queued ? kArrayWindow - queued : 0u);
    if (a.parallelism > 0) n = std::min(n, a.parallelism > live ? a.parallelism - live : 0u);
    if (n == 0) continue;
    // Shared by the tasks: the spec is what decisions and simulations read
    // (resources, topology, data, placement), the same for every task.
    const std::shared_ptr<const simulate::JobSpec> spec = jobs_.Find(id)->spec;
    // What every task copies: the array job without its history and counts
    // (moved out for the copy and back, not copied and cleared).
    v1::Job tmpl;
    {
      google::protobuf::RepeatedPtrField<v1::JobEvent> events;
      google::protobuf::Map<std::string, uint32_t> counts;
      events.Swap(parent->mutable_events());
      counts.swap(*parent->mutable_task_counts());
      tmpl = *parent;
      events.Swap(parent->mutable_events());
      counts.swap(*parent->mutable_task_counts());
    }
    tmpl.clear_cancel_requested();
    tmpl.clear_reason();
    for (uint32_t index : ArrayTable::Take(a, n)) {
      v1::Job task = tmpl;
      task.set_id(TaskId(id, index));
      task.set_array_job(id);
      task.set_array_index(index);
      task.set_state(v1::Job::queued);
      task.set_reason("waiting for placement");
      v1::JobEvent* ev = task.add_events();
      *ev->mutable_time() = base::ToProto(clock_->Now());
      ev->set_state(v1::Job::queued);
      ev->set_message(absl::StrCat("task ", index, " of array ", id));
      // Stored at its first transition: a task that has not started is
      // made again after a restart, as it would be now.
      const v1::Job& made = jobs_.Add(std::move(task), spec);
      IndexDependencies(made);
      ArrayTable::OnTask(a, index, v1::Job::state_unspecified, v1::Job::queued);
    }
  }
}

bool Core::ArraysWantTasks() {
  for (auto& [id, a] : arrays_.all()) {
    if (a.cancelled || a.pending() == 0) continue;
    if (a.Count(v1::Job::queued) >= kArrayWindow) continue;
    if (a.parallelism == 0 || a.live() < a.parallelism) return true;
  }
  return false;
}

void Core::OnTaskTransition(const v1::Job& task, v1::Job::State from) {
  ArrayTable::Array* a = arrays_.Find(task.array_job());
  if (a == nullptr) return;
  ArrayTable::OnTask(*a, task.array_index(), from, task.state());
  if (IsTerminal(task.state())) RequestPass(true);  // room for the next task
  if (placing_gang_ != a->id) UpdateArray(*a);      // a gang being placed: once, when all are
}

void Core::UpdateArray(ArrayTable::Array& a) {
  v1::Job* parent = jobs_.Held(a.id);
  if (parent == nullptr) return;
  const uint32_t live = a.live();
  const uint32_t ok = a.Count(v1::Job::succeeded);
  std::vector<std::string> parts;
  for (const auto& [s, k] : a.states) parts.push_back(absl::StrCat(k, " ", StateName(s)));
  if (a.pending() > 0 && !a.cancelled) parts.push_back(absl::StrCat(a.pending(), " pending"));
  const std::string summary = absl::StrCat(
      a.count, " task(s): ", parts.empty() ? "none started" : absl::StrJoin(parts, ", "));
  v1::Job::State to;
  if (live == 0 && (a.pending() == 0 || a.cancelled)) {
    to = ok == a.count ? v1::Job::succeeded : a.cancelled ? v1::Job::cancelled : v1::Job::failed;
  } else if (a.Count(v1::Job::placed) + a.Count(v1::Job::staging) + a.Count(v1::Job::running) > 0) {
    to = v1::Job::running;
  } else {
    to = v1::Job::queued;
  }
  if (to == parent->state()) {
    parent->set_reason(summary);  // kept in memory; stored with the next change
    return;
  }
  *parent->mutable_task_counts() = ArrayTable::Counts(a);
  const std::string id = a.id;
  if (IsTerminal(to)) arrays_.Erase(id);  // `a` is gone from here on
  Transition(*parent, to, summary);
}

absl::Status Core::CancelArray(v1::Job& parent) {
  ArrayTable::Array* a = arrays_.Find(parent.id());
  if (a == nullptr) return absl::OkStatus();
  a->cancelled = true;
  parent.set_cancel_requested(true);
  Note(parent, "cancel requested: no further task starts; stopping the tasks that run");
  for (uint32_t i = 0; i < a->count; ++i) {
    if (!a->made[i]) continue;
    v1::Job* task = jobs_.Held(TaskId(parent.id(), i));
    if (task == nullptr || IsTerminal(task->state())) continue;
    if (task->state() == v1::Job::queued) {
      Transition(*task, v1::Job::cancelled, "cancelled with its array before placement");
    } else if (preempted_.erase(task->id()) + gang_stopping_.erase(task->id()) > 0) {
      Note(*task, "cancel of its array or gang requested while it stops");
    } else {
      RequestStop(*task,
                  absl::StrCat("cancel of array ", parent.id(), " requested; stopping it on agent ",
                               task->allocation().agent()),
                  "cancelled by request");
    }
    a = arrays_.Find(parent.id());  // UpdateArray may have ended it
    if (a == nullptr) return absl::OkStatus();
  }
  UpdateArray(*a);
  return absl::OkStatus();
}

void Core::RecoverArrays() {
  for (const auto& [ns, id] : jobs_.order()) {
    const v1::Job* job = jobs_.Held(id);
    if (job != nullptr && IsArrayJob(*job) && !IsTerminal(job->state())) arrays_.Add(*job);
  }
  if (arrays_.all().empty()) return;
  std::string array;
  uint32_t index = 0;
  for (const auto& [ns, id] : jobs_.order()) {
    if (!ParseTaskId(id, &array, &index)) continue;
    if (ArrayTable::Array* a = arrays_.Find(array))
      ArrayTable::OnTask(*a, index, v1::Job::state_unspecified, jobs_.Find(id)->state());
  }
  std::vector<std::string> ids;
  for (const auto& [id, a] : arrays_.all()) ids.push_back(id);
  for (const std::string& id : ids) {
    if (ArrayTable::Array* a = arrays_.Find(id)) UpdateArray(*a);
  }
}

absl::StatusOr<v1::ListTasksResponse> Core::ListTasks(const std::string& id, int page_size,
                                                      const std::string& page_token) {
  if (page_size < 1 || page_size > 1000)
    return codec::InvalidField("page_size", "page_size must be 1-1000");
  uint32_t start = 0;
  if (!page_token.empty() && !absl::SimpleAtoi(page_token, &start)) {
    return codec::InvalidField("page_token",
                               "malformed page_token; pass next_page_token back unchanged");
  }
  auto parent = ReadJob(id);
  if (!parent.ok()) return parent.status();
  if (!IsArrayJob(*parent)) {
    return codec::FieldError(absl::StatusCode::kNotFound, "id",
                             absl::StrCat("job ", id, " is not an array or gang job"));
  }
  v1::ListTasksResponse out;
  std::vector<std::pair<int, std::string>> ended;  // read from the store
  const uint32_t count = parent->has_gang() ? parent->gang().tasks() : parent->array().count();
  const uint32_t end = std::min<uint64_t>(count, uint64_t{start} + page_size);
  {
    absl::MutexLock lock(&mu_);
    for (uint32_t i = start; i < end; ++i) {
      const std::string tid = TaskId(id, i);
      const JobTable::Rec* rec = jobs_.Find(tid);
      v1::Job* t = out.add_tasks();
      if (rec != nullptr && rec->job) {
        *t = *rec->job;
        t->clear_events();  // GET /v1/jobs/{task} has them
        continue;
      }
      if (rec != nullptr) {
        ended.emplace_back(out.tasks_size() - 1, tid);
        continue;
      }
      t->set_id(tid);
      t->set_tenant(parent->tenant());
      t->set_name(parent->name());
      t->set_array_job(id);
      t->set_array_index(i);
      if (parent->cancel_requested()) {
        t->set_state(v1::Job::cancelled);
        t->set_reason("the array was cancelled before this task started");
      } else {
        t->set_state(v1::Job::queued);
        t->set_reason("not started yet");
      }
    }
  }
  for (const auto& [index, tid] : ended) {
    auto job = ReadEnded(tid);
    if (!job.ok()) return job.status();
    job->clear_events();
    out.mutable_tasks(index)->Swap(&*job);
  }
  if (end < count) out.set_next_page_token(absl::StrCat(end));
  return out;
}

}  // namespace portolan::scheduler
