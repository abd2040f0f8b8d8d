// SPDX-License-Identifier: Apache-2.0
#include "portolan/executor/executor.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/executor/attempt_records.h"
#include "agent/executor/job_init.h"
#include "agent/executor/process_handles.h"
#include "agent/executor/spawn.h"
#include "portolan/base/files.h"
#include "portolan/base/log.h"
#include "portolan/base/strings.h"

namespace portolan::executor {
namespace {

uint64_t FileSize(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

}  // namespace

Executor::Executor(ExecutorOptions options, base::Clock* clock, UpdateFn on_update)
    : options_(std::move(options)),
      clock_(clock),
      on_update_(std::move(on_update)),
      boot_id_(BootId()) {
  // Exec'd by descriptor: the sandbox may hide the directory it lives in
  // (a private /tmp over an unpacked package, say).
  if (!options_.job_init.empty()) init_fd_ = open(options_.job_init.c_str(), O_PATH | O_CLOEXEC);
  if (!options_.records_dir.empty() && !options_.job_init.empty()) {
    records_ = std::make_unique<AttemptRecords>(options_.records_dir);
  }
  if (!options_.work_root.empty()) {
    dir_gc_ = std::make_unique<AttemptDirGc>(
        AttemptDirGc::Options{options_.work_root, options_.keep_attempt_dirs,
                              options_.keep_attempt_dirs_max},
        clock_);
  }
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  monitor_ = std::thread([this] { Monitor(); });
}

Executor::~Executor() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  Wake();
  monitor_.join();
  if (init_fd_ >= 0) close(init_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
  absl::MutexLock lock(&mu_);
  if (!options_.keep_running_on_exit) {
    StopAll();
    for (auto& cg : to_remove_) (void)cg->Remove();
  }
  // Kept running: their uids stay taken and their cgroups in place; the
  // records tell the next agent process about them.
  for (auto& [key, p] : procs_) {
    if (p.pidfd >= 0) close(p.pidfd);
    p.pidfd = -1;
  }
}

void Executor::StopAll() {
  std::vector<Proc*> running;
  for (auto& [key, p] : procs_) {
    if (p.finished || p.pid <= 0) continue;
    if (records_) {
      p.stopped_by_exit = true;
      SaveRecord(p);
    }
    Terminate(p, "the agent is shutting down (--stop-jobs-on-exit)");
    running.push_back(&p);
  }
  auto gone = [](Proc& p) {
    if (p.pidfd >= 0) return Exited(p.pidfd);
    siginfo_t info{};
    return waitid(P_PID, p.pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == p.pid;
  };
  const auto grace_end =
      std::chrono::steady_clock::now() + absl::ToChronoMilliseconds(options_.kill_grace);
  for (Proc* p : running) {
    while (!gone(*p) && std::chrono::steady_clock::now() < grace_end) usleep(20000);
    if (!gone(*p)) KillTree(*p);
  }
  for (Proc* p : running) {
    if (p->own_child) {
      waitpid(p->pid, nullptr, 0);
    } else {
      for (int i = 0; i < 250 && !gone(*p); ++i) usleep(20000);
    }
    CleanUp(*p);
  }
}

std::string AttemptDirName(const std::string& job_id, uint32_t attempt) {
  return absl::StrCat(job_id, "-", attempt);
}

std::string AttemptDir(const std::string& work_root, const std::string& job_id, uint32_t attempt) {
  return absl::StrCat(work_root, "/", AttemptDirName(job_id, attempt));
}

bool Executor::Start(const v1::Job& job) {
  const Key key{job.id(), job.attempt()};
  const std::string dir = AttemptDir(options_.work_root, job.id(), job.attempt());
  {
    absl::MutexLock lock(&mu_);
    if (procs_.contains(key)) return false;
    Proc& p = procs_[key];
    p.job = job;
    p.dir = dir;
  }
  // Everything taken for the attempt, given back if it cannot start.
  std::unique_ptr<JobCgroup> cg;
  std::optional<uid_t> dynamic_uid;
  auto fail = [&](const std::string& msg) { return FailStart(job, cg, dynamic_uid, msg); };

  SpawnPlan plan;
  // For the `running` event: "; bound to ...; cgroup v1 (...); as uid N; sandboxed".
  std::string identity, limits;
  if (absl::Status st = PlanIdentity(job, plan, dynamic_uid, identity); !st.ok()) {
    return fail(std::string(st.message()));
  }
  plan.workdir = dir + "/work";
  if (absl::Status st = MakeAttemptDirs(dir, plan.uid, plan.gid); !st.ok()) {
    return fail(std::string(st.message()));
  }
  if (absl::Status st = MakeOutputDirs(job, plan.workdir, plan.uid, plan.gid); !st.ok()) {
    return fail(std::string(st.message()));
  }
  plan.env = JobEnvironment(job, plan.workdir, options_.default_path, options_.machine_has_gpus,
                            options_.machine_gpus);
  const Binding binding =
      PlanBinding(job.allocation(), options_.machine_pus, options_.machine_numa_nodes);
  plan.bind_pus = binding.pus;
  plan.bind_nodes = plan.bind_pus.empty() ? std::vector<uint32_t>{} : binding.nodes;
  if (options_.cgroups) {
    auto created = CreateCgroup(job, plan, limits);
    if (!created.ok()) return fail(std::string(created.status().message()));
    cg = std::move(*created);
    plan.join_fds = cg->join_fds();
  }
  plan.program = Resolve(job.command(0), plan.env["PATH"]);
  if (plan.program.empty()) {
    return fail(
        absl::StrCat("executable '", job.command(0), "' not found in PATH=", plan.env["PATH"]));
  }
  plan.command.assign(job.command().begin(), job.command().end());
  std::string described = absl::StrCat(binding.text, limits, identity);
  const bool supervised = !options_.job_init.empty();
  if (supervised) {
    if (init_fd_ < 0) return fail(absl::StrCat("cannot open the job init ", options_.job_init));
    plan.init_fd = init_fd_;
    plan.init_path = options_.job_init;
    plan.sandbox = options_.sandbox;
    if (plan.sandbox) {
      plan.hide = options_.hide;
      plan.read_only = options_.read_only;
      if (!options_.deny_source.empty()) {
        plan.deny_devices = DeniedDevices(job.allocation(), options_.gpu_nodes);
        plan.deny_source = options_.deny_source;
      }
      absl::StrAppend(&described, "; sandboxed");
    }
  }
  if (absl::Status st = plan.OpenFiles(dir); !st.ok()) return fail(std::string(st.message()));

  // Recorded before it starts: if this process dies from here on, the next
  // one finds the attempt's cgroup and uid and cleans them up.
  absl::Status recorded;
  {
    absl::MutexLock lock(&mu_);
    Proc& p = procs_[key];
    p.uid = plan.uid;
    p.supervised = supervised;
    p.sandboxed = plan.sandbox;
    p.cgroup_name = cg ? absl::StrCat(job.id(), "-", job.attempt()) : "";
    p.started = clock_->Now();
    if (records_) recorded = records_->Put(Record(p));
  }
  if (!recorded.ok()) {
    return fail(absl::StrCat("cannot record the attempt durably: ", recorded.message()));
  }

  const pid_t pid = Spawn(plan);
  const int spawn_errno = errno;
  if (cg) cg->CloseJoinFds();
  if (pid < 0) {
    return fail(absl::StrCat(plan.sandbox ? "clone" : "fork", " failed: ", strerror(spawn_errno)));
  }
  if (std::optional<job_init::ChildError> ce = AwaitExec(plan)) {
    waitpid(pid, nullptr, 0);
    return fail(DescribeChildError(*ce, plan, cg.get()));
  }

  return Launched(job, pid, plan.workdir, described, cg, dynamic_uid);
}

bool Executor::FailStart(const v1::Job& job, std::unique_ptr<JobCgroup>& cg,
                         std::optional<uid_t>& dynamic_uid, const std::string& msg) {
  if (cg) {
    cg->CloseJoinFds();
    cg->KillAll();
    (void)cg->Remove();
  }
  if (dynamic_uid) {
    KillAllOfUid(*dynamic_uid);  // a half-started job's children, if any
    options_.uids->Release(*dynamic_uid);
  }
  v1::JobUpdate u = Failed(job, msg);
  {
    absl::MutexLock lock(&mu_);
    Proc& p = procs_[{job.id(), job.attempt()}];
    if (records_) (void)records_->Remove(job.id(), job.attempt());
    p.finished = true;
    p.final_state = v1::Job::failed;
    p.exit_code = 127;
  }
  start_errors_.fetch_add(1);
  spdlog::warn("job {} attempt {} cannot start: {}", job.id(), job.attempt(), msg);
  on_update_(u);
  return true;
}

bool Executor::Launched(const v1::Job& job, pid_t pid, const std::string& workdir,
                        const std::string& described, std::unique_ptr<JobCgroup>& cg,
                        std::optional<uid_t>& dynamic_uid) {
  const Key key{job.id(), job.attempt()};
  const absl::Time now = clock_->Now();
  // The supervisor's pid and start time go into the record before `running`
  // is reported: from then on a restarted agent finds it.
  absl::Status recorded_pid;
  {
    absl::MutexLock lock(&mu_);
    Proc& p = procs_[key];
    p.pid = pid;
    p.pidfd = PidfdOpen(pid);  // our child, not yet reaped: surely this process
    p.own_child = true;
    p.started = now;
    if (job.max_runtime_s() > 0) p.deadline = now + absl::Seconds(job.max_runtime_s());
    if (auto ticks = ProcessStartTicks(pid)) p.start_ticks = *ticks;
    if (records_) recorded_pid = records_->Put(Record(p));
    if (!recorded_pid.ok()) {
      // Not durable, so not started: a restart could not find it.
      KillTree(p);
      if (p.pidfd >= 0) close(p.pidfd);
      p.pidfd = -1;
      p.pid = 0;
    } else {
      p.cgroup = std::move(cg);
      p.dynamic_uid = dynamic_uid.has_value();
    }
  }
  if (!recorded_pid.ok()) {
    waitpid(pid, nullptr, 0);
    return FailStart(job, cg, dynamic_uid,
                     absl::StrCat("cannot record the attempt durably: ", recorded_pid.message()));
  }
  spdlog::info("job {} attempt {} started: pid {} in {}{}", job.id(), job.attempt(), pid, workdir,
               described);
  v1::JobUpdate u;
  u.set_job_id(job.id());
  u.set_attempt(job.attempt());
  u.set_state(v1::Job::running);
  u.set_message(absl::StrCat("started as pid ", pid, described));
  *u.mutable_time() = base::ToProto(now);
  on_update_(u);
  {
    absl::MutexLock lock(&mu_);
    procs_[key].start_reported = true;
  }
  Wake();
  return true;
}

absl::Status Executor::PlanIdentity(const v1::Job& job, SpawnPlan& plan,
                                    std::optional<uid_t>& dynamic_uid, std::string& described) {
  // The tenant's account, a uid of the attempt's own, or --run-as.
  plan.uid = options_.run_uid;
  plan.gid = options_.run_gid;
  if (auto it = options_.tenant_users.find(job.tenant()); it != options_.tenant_users.end()) {
    plan.uid = static_cast<int>(it->second.first);
    plan.gid = static_cast<int>(it->second.second);
    absl::StrAppend(&described, "; as tenant account uid ", plan.uid);
  } else if (options_.uids) {
    dynamic_uid = options_.uids->Acquire();
    if (!dynamic_uid) {
      return absl::ResourceExhaustedError(
          absl::StrCat("no free uid in --job-uid-range ", options_.uids->first(), "-",
                       options_.uids->last(), " (", options_.uids->in_use(), " jobs hold one)"));
    }
    plan.uid = plan.gid = static_cast<int>(*dynamic_uid);
    absl::StrAppend(&described, "; as uid ", plan.uid);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<JobCgroup>> Executor::CreateCgroup(const v1::Job& job,
                                                                  const SpawnPlan& plan,
                                                                  std::string& described) {
  // The attempt's cgroup, with the allocation as its limits.
  CgroupLimits limits;
  limits.cpus = plan.bind_pus;
  limits.mems = plan.bind_nodes;
  limits.memory_bytes =
      (int64_t{job.resources().memory_mb()} << 20) * (100 + options_.memory_slack_percent) / 100;
  limits.pids_max = options_.pids_max;
  limits.reuse_key = job.tenant();
  auto created = options_.cgroups->Create(absl::StrCat(job.id(), "-", job.attempt()), limits);
  if (!created.ok()) return created.status();
  std::vector<std::string> lim;
  if (options_.cgroups->memory() && limits.memory_bytes > 0)
    lim.push_back(absl::StrCat("memory ", limits.memory_bytes >> 20, " MiB"));
  if (options_.cgroups->cpuset() && !limits.cpus.empty())
    lim.push_back(absl::StrCat("cpus ", base::FormatIdList(limits.cpus)));
  if (options_.cgroups->pids() && limits.pids_max > 0)
    lim.push_back(absl::StrCat("pids ", limits.pids_max));
  described = absl::StrCat("; cgroup ", options_.cgroups->version(),
                           lim.empty() ? "" : absl::StrCat(" (", absl::StrJoin(lim, ", "), ")"));
  return created;
}

std::string Executor::DescribeChildError(const job_init::ChildError& ce, const SpawnPlan& plan,
                                         const JobCgroup* cg) const {
  const char* err = strerror(ce.err);
  switch (ce.step) {
    case job_init::Step::kAffinity:
      return absl::StrCat("cannot bind to PUs ", base::FormatIdList(plan.bind_pus), ": ", err);
    case job_init::Step::kWorkdir:
      return absl::StrCat("cannot enter working directory ", plan.workdir, ": ", err);
    case job_init::Step::kCgroup:
      return absl::StrCat("cannot join ", cg ? cg->Describe() : "its cgroup", ": ", err);
    case job_init::Step::kIdentity:
      return absl::StrCat("cannot switch to uid ", plan.uid, " gid ", plan.gid, ": ", err);
    case job_init::Step::kMounts:
    case job_init::Step::kNamespaces:
      return absl::StrCat("cannot set up the job's mount namespace: ", err);
    case job_init::Step::kInit:
      return absl::StrCat("cannot execute the job init ", options_.job_init, ": ", err);
    case job_init::Step::kExec:
      break;
  }
  return absl::StrCat("cannot execute '", plan.program, "': ", err);
}

void Executor::Signal(Proc& p, int sig) {
  if (!p.supervised) {
    kill(-p.pid, sig);  // the program leads its own process group
  } else if (p.pidfd >= 0) {
    PidfdSignal(p.pidfd, sig);
  } else {
    kill(p.pid, sig);
  }
}

void Executor::Terminate(Proc& p, const std::string& why, absl::Duration grace) {
  if (p.finished || p.pid <= 0 || p.kill_at != absl::InfiniteFuture()) return;
  spdlog::info("job {} attempt {}: {}; sending SIGTERM to {} {}", p.job.id(), p.job.attempt(), why,
               p.sandboxed    ? "its init, which forwards it to every process of the job, pid"
               : p.supervised ? "its supervisor, which forwards it to the job's process group, pid"
                              : "process group",
               p.pid);
  Signal(p, SIGTERM);
  p.kill_at = clock_->Now() + (grace > absl::ZeroDuration() ? grace : options_.kill_grace);
}

void Executor::KillTree(Proc& p) {
  // The init's death takes its PID namespace with it. Without one the
  // supervisor leads the job's process group: the group goes while the
  // supervisor still lives (so the group id is surely the job's). The cgroup
  // reaches processes that left the group.
  if (p.supervised && !p.sandboxed && p.pidfd >= 0 && !Exited(p.pidfd)) kill(-p.pid, SIGKILL);
  Signal(p, SIGKILL);
  p.killed = true;
  if (p.cgroup) p.cgroup->KillAll();
}

void Executor::CleanUp(Proc& p) {
  if (p.cgroup) {
    if (!p.cgroup->Empty()) p.cgroup->KillAll();
    if (!p.cgroup->Remove().ok()) to_remove_.push_back(std::move(p.cgroup));
    p.cgroup.reset();
  }
  if (p.pidfd >= 0) {
    close(p.pidfd);
    p.pidfd = -1;
  }
  if (p.dynamic_uid) {
    // In a PID namespace nothing of the job outlives its init; without one a
    // process that left the group may still run as the uid.
    if (!p.sandboxed) KillAllOfUid(static_cast<uid_t>(p.uid));
    options_.uids->Release(static_cast<uid_t>(p.uid));
    p.dynamic_uid = false;
  }
}

void Executor::Cancel(const std::string& job_id, uint32_t attempt, const std::string& reason,
                      absl::Duration grace) {
  std::optional<v1::JobUpdate> unknown;
  {
    absl::MutexLock lock(&mu_);
    auto it = procs_.find({job_id, attempt});
    if (it == procs_.end()) {
      v1::JobUpdate u;
      u.set_job_id(job_id);
      u.set_attempt(attempt);
      u.set_state(v1::Job::cancelled);
      u.set_message(absl::StrCat("cancelled before it started here (", reason, ")"));
      *u.mutable_time() = base::ToProto(clock_->Now());
      unknown = u;
    } else if (!it->second.finished) {
      it->second.cancel_requested = true;
      it->second.cancel_reason = reason;
      SaveRecord(it->second);
      Terminate(it->second, absl::StrCat("cancel: ", reason), grace);
    }
  }
  if (unknown) on_update_(*unknown);
  Wake();
}

std::vector<v1::AgentJobStatus> Executor::Jobs() const {
  absl::MutexLock lock(&mu_);
  std::vector<v1::AgentJobStatus> out;
  for (const auto& [key, p] : procs_) {
    v1::AgentJobStatus s;
    s.set_job_id(key.first);
    s.set_attempt(key.second);
    s.set_state(p.finished ? p.final_state : v1::Job::running);
    s.set_exit_code(p.exit_code);
    out.push_back(s);
  }
  return out;
}

uint32_t Executor::allocated_pus() const {
  absl::MutexLock lock(&mu_);
  uint32_t n = 0;
  for (const auto& [key, p] : procs_) {
    if (p.finished) continue;
    const v1::Allocation& a = p.job.allocation();
    n += a.pus_size() > 0 ? static_cast<uint32_t>(a.pus_size())
                          : static_cast<uint32_t>(p.job.resources().cpus());
  }
  return n;
}

size_t Executor::running() const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [key, p] : procs_) n += p.finished ? 0 : 1;
  return n;
}

std::vector<v1::LogTail> Executor::ChangedLogs() {
  absl::MutexLock lock(&mu_);
  std::vector<v1::LogTail> out;
  for (auto& [key, p] : procs_) {
    if (p.finished || p.pid <= 0) continue;
    uint64_t size = FileSize(p.dir + "/stdout.log") + FileSize(p.dir + "/stderr.log");
    if (size == p.reported_log_bytes) continue;
    p.reported_log_bytes = size;
    out.push_back(Tail(p));
  }
  return out;
}

void Executor::Monitor() {
  mu_.Lock();
  while (!stop_) {
    std::vector<v1::JobUpdate> updates;
    const absl::Time now = clock_->Now();
    for (auto& [key, p] : procs_) {
      if (p.finished || p.pid <= 0 || !p.start_reported) continue;
      // The zombie of our own child stays until waitpid below, so its pid and
      // process group id cannot be reused while we clean up after it.
      bool exited = false;
      if (p.pidfd >= 0) {
        exited = Exited(p.pidfd);
      } else {
        siginfo_t info{};
        exited =
            waitid(P_PID, p.pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == p.pid;
      }
      if (exited) {
        if (!p.sandboxed && p.own_child) kill(-p.pid, SIGKILL);  // stray children of the job
        int status = 0;
        bool known = false;
        if (p.own_child) {
          waitpid(p.pid, &status, 0);
          known = true;
        }
        if (p.supervised) {
          // The supervisor says how the program ended; nothing when it was
          // itself killed (then its own status, where we have it, says how).
          if (auto program = ReadExitStatus(p.dir + "/status")) {
            status = *program;
            known = true;
          }
        }
        if (!known && p.killed) {
          status = SIGKILL;  // as wait(2) reports a process killed by SIGKILL
          known = true;
        }
        updates.push_back(
            known ? Ended(p, status, now)
                  : Lost(p, absl::StrCat("its supervisor (pid ", p.pid,
                                         ") ended without saying how the program ended: it was "
                                         "killed from outside the agent")));
        continue;
      }
      if (now >= p.deadline && !p.timed_out && !p.cancel_requested) {
        p.timed_out = true;
        SaveRecord(p);
        Terminate(p, absl::StrCat("max_runtime_s=", p.job.max_runtime_s(), " reached"));
      }
      if (now >= p.kill_at) {
        spdlog::warn("job {} attempt {} still running {} after SIGTERM; sending SIGKILL", key.first,
                     key.second, absl::FormatDuration(options_.kill_grace));
        KillTree(p);
        p.kill_at = absl::InfiniteFuture();
      }
    }
    for (auto it = to_remove_.begin(); it != to_remove_.end();) {
      if (!(*it)->Empty()) {
        (*it)->KillAll();
        ++it;
      } else if ((*it)->Remove().ok()) {
        it = to_remove_.erase(it);
      } else {
        ++it;
      }
    }
    if (!updates.empty()) {
      mu_.Unlock();
      for (const auto& u : updates) on_update_(u);
      mu_.Lock();
      continue;
    }
    // Until a process exits, something changes (Wake) or the interval ends.
    std::vector<pollfd> fds{{wake_fd_, POLLIN, 0}};
    for (const auto& [key, p] : procs_) {
      if (!p.finished && p.pid > 0 && p.start_reported && p.pidfd >= 0)
        fds.push_back({p.pidfd, POLLIN, 0});
    }
    mu_.Unlock();
    const int timeout_ms =
        static_cast<int>(std::max<int64_t>(1, absl::ToInt64Milliseconds(options_.poll_interval)));
    // (poll skips a wake_fd_ of -1: eventfd failed, the interval alone then.)
    if (poll(fds.data(), fds.size(), timeout_ms) < 0 && errno != EINTR) {
      usleep(static_cast<useconds_t>(timeout_ms) * 1000);
    }
    if (fds[0].revents & POLLIN) {
      uint64_t n;
      (void)!read(wake_fd_, &n, sizeof n);
    }
    mu_.Lock();
  }
  mu_.Unlock();
}

void Executor::Wake() {
  const uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!write(wake_fd_, &one, sizeof one);
}

}  // namespace portolan::executor
