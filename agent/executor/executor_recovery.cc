// SPDX-License-Identifier: Apache-2.0
// The executor's memory across agent processes: attempt records, and the
// recovery that re-adopts what an earlier agent process started.
#include <signal.h>
#include <unistd.h>

#include <set>

#include "absl/strings/str_cat.h"
#include "agent/executor/attempt_records.h"
#include "agent/executor/process_handles.h"
#include "portolan/base/log.h"
#include "portolan/base/strings.h"
#include "portolan/executor/executor.h"

namespace portolan::executor {

v1::AttemptRecord Executor::Record(const Proc& p) const {
  v1::AttemptRecord r;
  r.set_format(kAttemptRecordFormat);
  *r.mutable_job() = p.job;
  r.mutable_job()->clear_events();
  r.set_dir(p.dir);
  r.set_uid(p.uid);
  r.set_dynamic_uid(options_.uids != nullptr && options_.uids->Contains(p.uid) && p.uid >= 0);
  r.set_cgroup(p.cgroup_name);
  r.set_sandboxed(p.sandboxed);
  r.set_pid(p.pid);
  r.set_pid_start_ticks(p.start_ticks);
  r.set_boot_id(boot_id_);
  *r.mutable_started_at() = base::ToProto(p.started);
  r.set_agent_version(PORTOLAN_VERSION);
  r.set_stopped_by_agent_exit(p.stopped_by_exit);
  r.set_cancel_requested(p.cancel_requested);
  r.set_cancel_reason(p.cancel_reason);
  r.set_timed_out(p.timed_out);
  return r;
}

void Executor::SaveRecord(const Proc& p) {
  if (!records_ || p.finished) return;
  if (absl::Status st = records_->Put(Record(p)); !st.ok()) {
    spdlog::error("job {} attempt {}: cannot update its record: {}", p.job.id(), p.job.attempt(),
                  st.message());
  }
}

absl::StatusOr<Recovery> Executor::Recover() {
  Recovery out;
  std::vector<v1::AttemptRecord> records;
  if (records_) {
    if (absl::Status st = records_->Init(); !st.ok()) return st;
    if (absl::Status st = records_->Load(&records, &out.problems); !st.ok()) return st;
  }
  for (const std::string& problem : out.problems) {
    spdlog::error("attempt record: {}; what it described is treated as unaccounted for", problem);
  }
  std::vector<v1::JobUpdate> updates;
  std::set<std::string> kept_cgroups;
  std::set<std::string> live;  // the attempts known now, by directory name
  {
    absl::MutexLock lock(&mu_);
    for (const v1::AttemptRecord& r : records) {
      const Key key{r.job().id(), r.job().attempt()};
      if (procs_.contains(key)) continue;
      Proc& p = procs_[key];
      p.job = r.job();
      p.dir = r.dir();
      p.uid = r.uid();
      p.supervised = true;
      p.sandboxed = r.sandboxed();
      p.started = base::FromProto(r.started_at());
      p.start_reported = true;
      p.cancel_requested = r.cancel_requested();
      p.cancel_reason = r.cancel_reason();
      p.timed_out = r.timed_out();
      p.stopped_by_exit = r.stopped_by_agent_exit();
      p.cgroup_name = r.cgroup();
      p.pid = r.pid();
      p.start_ticks = r.pid_start_ticks();
      if (!r.cgroup().empty() && options_.cgroups) {
        auto cg = options_.cgroups->Open(r.cgroup());
        if (cg.ok()) p.cgroup = std::move(*cg);
      }
      if (r.dynamic_uid() && options_.uids && options_.uids->Claim(static_cast<uid_t>(r.uid()))) {
        p.dynamic_uid = true;  // until it ends; released by CleanUp
      }
      const std::string what = absl::StrCat("job ", p.job.id(), " attempt ", p.job.attempt());
      // The same process: same boot, same pid, same start time, checked
      // again once we hold a descriptor for it (the pid could be reused in
      // between).
      const bool found = r.pid() == 0 && r.boot_id() == boot_id_ && FindUnrecorded(p);
      bool alive = false;
      if (p.pid > 0 && r.boot_id() == boot_id_ && p.start_ticks != 0 &&
          ProcessStartTicks(p.pid) == p.start_ticks) {
        p.pidfd = PidfdOpen(p.pid);
        alive = p.pidfd >= 0 && ProcessStartTicks(p.pid) == p.start_ticks && !Exited(p.pidfd);
      }
      if (alive && p.stopped_by_exit) {
        // Told to stop as the last agent shut down, and it has not yet.
        KillTree(p);
        for (int i = 0; i < 250 && !Exited(p.pidfd); ++i) usleep(20000);
        alive = false;
      }
      if (alive) {
        if (p.job.max_runtime_s() > 0)
          p.deadline = p.started + absl::Seconds(p.job.max_runtime_s());
        if (p.cgroup) kept_cgroups.insert(p.cgroup_name);
        p.reported_log_bytes = 0;  // the tail is sent again with the next heartbeat
        ++out.adopted;
        if (found) SaveRecord(p);
        spdlog::info(
            "{}: re-adopted (supervisor pid {}{}, running for {}{})", what, p.pid,
            found ? ", found by its status file: the agent had stopped before recording it" : "",
            Runtime(clock_->Now() - p.started),
            p.cancel_requested ? "; it was being cancelled" : "");
        if (p.cancel_requested || p.timed_out)
          Terminate(p, "still stopping after an agent restart");
        continue;
      }
      ++out.ended;
      if (r.boot_id() != boot_id_) {
        updates.push_back(
            Lost(p, "the machine restarted while the attempt ran; its processes are gone"));
      } else if (p.stopped_by_exit) {
        updates.push_back(Lost(p, "stopped as the agent shut down (--stop-jobs-on-exit)"));
      } else if (auto status = ReadExitStatus(p.dir + "/status")) {
        // Also when the agent stopped before recording the supervisor's pid:
        // the program ran to its end, and is not run again.
        updates.push_back(Ended(p, *status, FileMtime(p.dir + "/status", clock_->Now())));
        absl::StrAppend(updates.back().mutable_message(), "; it ended while the agent was down");
      } else if (p.pid == 0) {
        // No process holds its status file: its supervisor never started,
        // or it died unheard; what is left of it goes with the cgroup and uid.
        updates.push_back(Lost(p,
                               "the agent stopped while it was starting the attempt, before the "
                               "program ran to its end; whatever of it had started was killed"));
      } else {
        updates.push_back(
            Lost(p, absl::StrCat("its supervisor (pid ", r.pid(),
                                 ") ended while the agent was down without saying how the program "
                                 "ended: it was killed from outside the agent")));
      }
    }
    // Before registering, so that the scheduler can trust that what this
    // agent does not report does not run here.
    KillUnaccounted(kept_cgroups, out);
    for (const auto& [key, p] : procs_) live.insert(AttemptDirName(key.first, key.second));
  }
  // The directories of attempts an earlier run forgot go in time (read
  // outside the lock: the directory may hold many).
  out.old_attempt_dirs = dir_gc_ ? dir_gc_->Adopt(live) : 0;
  for (const v1::JobUpdate& u : updates) on_update_(u);
  Wake();
  return out;
}

void Executor::Forget(const std::string& job_id, uint32_t attempt) {
  absl::MutexLock lock(&mu_);
  auto it = procs_.find({job_id, attempt});
  if (it != procs_.end() && it->second.finished) {
    if (records_) {
      if (absl::Status st = records_->Remove(job_id, attempt); !st.ok()) {
        spdlog::warn("job {} attempt {}: {}", job_id, attempt, st.message());
      }
    }
    procs_.erase(it);
    // The scheduler has the attempt's end: its directory may go in time.
    if (dir_gc_) dir_gc_->Ended(AttemptDirName(job_id, attempt));
  }
}

bool Executor::FindUnrecorded(Proc& p) {
  // Several holders are a fork not yet exec'd (the supervisor's own child
  // closes its copy just before it execs the program): looked at again
  // shortly.
  const std::string status = p.dir + "/status";
  for (int i = 0; i < 50; ++i) {
    std::vector<pid_t> holders = ProcessesWithFileOpen(status);
    if (holders.empty()) return false;
    if (holders.size() == 1) {
      std::optional<uint64_t> ticks = ProcessStartTicks(holders[0]);
      if (!ticks) return false;
      p.pid = holders[0];
      p.start_ticks = *ticks;
      return true;
    }
    usleep(10000);
  }
  spdlog::warn("job {} attempt {}: several processes hold {} open; treated as unaccounted for",
               p.job.id(), p.job.attempt(), status);
  return false;
}

void Executor::KillUnaccounted(const std::set<std::string>& kept_cgroups, Recovery& out) {
  // Job cgroups, then processes under job uids, that no record accounts for.
  if (options_.cgroups) {
    for (const std::string& name : options_.cgroups->List()) {
      if (kept_cgroups.contains(name)) continue;
      auto cg = options_.cgroups->Open(name);
      if (!cg.ok()) continue;
      if (!(*cg)->Empty()) {
        ++out.killed_cgroups;
        spdlog::warn("job cgroup {} holds processes no attempt record accounts for: killing them",
                     (*cg)->Describe());
        (*cg)->KillAll();
      }
      if (!(*cg)->Remove().ok()) to_remove_.push_back(std::move(*cg));
    }
  }
  if (options_.uids) {
    for (uid_t uid : UidsInUse("/proc", options_.uids->first(), options_.uids->last())) {
      if (options_.uids->Held(uid)) continue;
      ++out.killed_uids;
      spdlog::warn(
          "processes run as job uid {}, which no attempt record accounts for: killing them", uid);
      KillAllOfUid(uid);
    }
  }
}

}  // namespace portolan::executor
