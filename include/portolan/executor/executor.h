// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <sys/types.h>

#include <atomic>

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "portolan/base/clock.h"
#include "portolan/executor/attempt_gc.h"
#include "portolan/executor/cgroup.h"
#include "portolan/executor/isolation.h"
#include "portolan/v1/agent.pb.h"
#include "portolan/v1/job.pb.h"
#include "portolan/v1/topology.pb.h"
#include "portolan/v1/wire.pb.h"

namespace portolan::executor {

class AttemptRecords;
struct SpawnPlan;
namespace job_init {
struct ChildError;
}

// An attempt's directory, <work_root>/<job>-<attempt>: the agent's (0711),
// holding the job's own <dir>/work (where $PORTOLAN_INPUTS and
// $PORTOLAN_OUTPUTS lie) and its logs.
std::string AttemptDir(const std::string& work_root, const std::string& job_id, uint32_t attempt);
// Its name under work_root, "<job>-<attempt>" (what AttemptDirGc removes).
std::string AttemptDirName(const std::string& job_id, uint32_t attempt);

struct ExecutorOptions {
  std::string work_root;                          // each attempt gets <work_root>/<job>-<attempt>/
  absl::Duration kill_grace = absl::Seconds(10);  // SIGTERM, then SIGKILL after this
  size_t log_tail_bytes = 64 * 1024;              // tail of stdout/stderr sent to the scheduler
  std::string default_path = "/usr/local/bin:/usr/bin:/bin";
  // The monitor wakes when an attempt's process exits (its pidfd) and at
  // least this often (deadlines, attempts adopted without a pidfd, cgroups
  // still waiting for removal).
  absl::Duration poll_interval = absl::Milliseconds(20);
  // The PUs and NUMA nodes that really exist here (and the agent may use).
  // Allocations are bound to their intersection with these; with an emulated
  // topology larger than the machine the rest is recorded but not bound.
  // Empty: bind exactly what is allocated.
  std::vector<uint32_t> machine_pus;
  std::vector<uint32_t> machine_numa_nodes;
  // The agent has GPUs: jobs allotted none get CUDA_VISIBLE_DEVICES="" etc.
  bool machine_has_gpus = false;
  // The machine's GPUs as discovered (names, vendors, PCI bus ids): jobs'
  // CUDA_VISIBLE_DEVICES and the like are numbered by bus id among them.
  std::vector<v1::Gpu> machine_gpus;
  // With the sandbox: the GPUs' device nodes (NvidiaDeviceNodes), each
  // overmounted in the jobs not given that GPU by `deny_source`, an empty
  // file only root may open; so a job cannot reach another's GPU by
  // ignoring CUDA_VISIBLE_DEVICES. Without the sandbox only the variables
  // select GPUs.
  std::vector<GpuNode> gpu_nodes;
  std::string deny_source;
  // Each attempt gets a cgroup here with its allocation as limits (cpuset,
  // memory, pids) and is killed through it as a whole tree; null: none.
  std::shared_ptr<CgroupDriver> cgroups;
  int64_t pids_max = 4096;       // pids.max of each job's cgroup; 0: no limit
  int memory_slack_percent = 0;  // memory limit = requested memory_mb * (100 + this) / 100
  // Identities. A job of a tenant in `tenant_users` runs as that account;
  // otherwise, with `uids`, as a uid of its own (gid the same number);
  // otherwise as run_uid/run_gid (the agent's own identity when -1).
  std::map<std::string, std::pair<uid_t, gid_t>> tenant_users;
  std::shared_ptr<UidPool> uids;
  int run_uid = -1;
  int run_gid = -1;
  // portolan-job-init: each attempt's supervisor (agent/job_init.h). It
  // holds the program's exit status in a file, so attempts do not depend on
  // the agent process. "": the program is the agent's own child (unit tests;
  // attempts cannot then be re-adopted).
  std::string job_init;
  // Sandbox (needs job_init): new PID, mount, IPC and UTS namespaces per
  // attempt with the init as PID 1, its own /proc, private /tmp, /var/tmp and
  // /dev/shm, `hide` overmounted by empty tmpfs (the agent's state directory
  // always, with the job's own working directory mounted back in),
  // `read_only` remounted read-only.
  bool sandbox = false;
  std::vector<std::string> hide;
  std::vector<std::string> read_only;
  // Durable attempt records here (agent/attempt_records.h; needs job_init):
  // Recover() re-adopts what an earlier run of the agent started. "": none.
  std::string records_dir;
  // The destructor leaves running attempts running, for the next agent
  // process to re-adopt (the agent's default: a restart or an upgrade does
  // not touch jobs). false: it stops them (SIGTERM, SIGKILL after
  // kill_grace) and the next run reports them lost.
  bool keep_running_on_exit = false;
  // An ended attempt's directory (logs, working directory) stays this long
  // after the scheduler has its end, and at most this many stay, the newest
  // (AttemptDirGc; 0: no limit by count).
  absl::Duration keep_attempt_dirs = absl::Hours(24);
  size_t keep_attempt_dirs_max = 10000;
};

// What Executor::Recover found.
struct Recovery {
  int adopted = 0;              // attempts still running, watched again
  int ended = 0;                // attempts that ended while no agent watched them, reported now
  int killed_uids = 0;          // job uids with processes no record accounts for, killed
  int killed_cgroups = 0;       // job cgroups no record accounts for, killed and removed
  size_t old_attempt_dirs = 0;  // ended attempts' directories an earlier run left (AttemptDirGc)
  std::vector<std::string> problems;  // records that could not be read
};

// What the executor enforces with these options, for the agent's
// registration and for `GET /v1/agents/{id}`.
v1::Isolation DescribeIsolation(const ExecutorOptions& options);
// "per-job uid 200000-265535, PID and mount namespaces, cgroup v1 (memory,
// cpuset, pids), whole-tree kill" for logs; names what is missing too.
std::string IsolationSummary(const v1::Isolation& iso);

// Runs jobs as real processes. A job with an allocation is bound to its
// PUs (sched_setaffinity) and NUMA nodes (set_mempolicy MPOL_BIND) before it
// execs, and sees its GPUs through CUDA_VISIBLE_DEVICES / ROCR_VISIBLE_DEVICES
// / ZE_AFFINITY_MASK and PORTOLAN_GPUS. Each attempt runs in its own process group,
// in its own working directory, with stdout/stderr in files beside it, and
// an environment made only of the job's `env` plus PORTOLAN_* variables, HOME
// and PATH. Isolation as ExecutorOptions says: the attempt's own identity,
// its own namespaces under portolan-job-init, its own cgroup with its limits.
// Limits: max_runtime_s (SIGTERM, SIGKILL to the whole tree after the grace
// period), cancel (same sequence), memory (an OOM kill is reported as "out of
// memory (limit N MiB)"), pids.
//
// State changes are reported through the UpdateFn, called from the
// executor's monitor thread (or from Start for jobs that cannot start); it
// must not call back into the executor. All methods are thread-safe. The
// destructor kills every job still running and waits for it.
class Executor {
 public:
  using UpdateFn = std::function<void(const v1::JobUpdate&)>;

  Executor(ExecutorOptions options, base::Clock* clock, UpdateFn on_update);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Call once, before the first Start. Reads the attempt records: an attempt
  // whose supervisor still runs (same pid, same start time, same boot) is
  // adopted and watched as if this process had started it; one that ended
  // meanwhile is reported with its exit status and output (or as lost when
  // nothing says how it ended). Then kills whatever no record accounts for:
  // processes under the job uid range and job cgroups. Fails only when the
  // records cannot be used at all (a newer format): the agent must not start.
  absl::StatusOr<Recovery> Recover();

  // Starts attempt `job.attempt()` of `job`. Returns false (and does nothing)
  // when that attempt is already known here: resent Assigns start nothing.
  bool Start(const v1::Job& job);
  // Stops a running job; a job not known here gets a `cancelled` update.
  // `grace` > 0 overrides --kill-grace for this stop (SIGTERM to SIGKILL).
  void Cancel(const std::string& job_id, uint32_t attempt, const std::string& reason,
              absl::Duration grace = absl::ZeroDuration());
  // Drops a finished job from memory once its final update was acknowledged.
  void Forget(const std::string& job_id, uint32_t attempt);

  // Running jobs and finished ones not yet forgotten (for Register).
  std::vector<v1::AgentJobStatus> Jobs() const;
  // Tails of running jobs whose output grew since the last call.
  std::vector<v1::LogTail> ChangedLogs();
  size_t running() const;
  // PUs allocated to the running jobs (their allocation, or cpus without one).
  uint32_t allocated_pus() const;
  // Jobs that could not be started (exec failure, bad directory, ...).
  uint64_t start_errors() const { return start_errors_.load(); }
  // Jobs whose processes the kernel's OOM killer killed in their cgroup.
  uint64_t oom_kills() const { return oom_kills_.load(); }
  // The removal of ended attempts' directories; null without a work_root.
  const AttemptDirGc* attempt_dirs() const { return dir_gc_.get(); }

 private:
  struct Proc {
    v1::Job job;
    std::string dir;
    pid_t pid = 0;
    absl::Time started;
    absl::Time deadline = absl::InfiniteFuture();  // max_runtime_s
    absl::Time kill_at = absl::InfiniteFuture();   // SIGKILL after SIGTERM
    bool finished = false;
    // Set once the `running` update has been handed to on_update. Until then
    // the monitor leaves the process alone, so a job that exits at once is
    // never reported finished before it is reported started.
    bool start_reported = false;
    bool cancel_requested = false;
    bool timed_out = false;
    std::string cancel_reason;
    v1::Job::State final_state = v1::Job::state_unspecified;
    int exit_code = 0;
    uint64_t reported_log_bytes = 0;
    std::unique_ptr<JobCgroup> cgroup;  // null when none
    int uid = -1;                       // the job's identity; released when it ends
    bool dynamic_uid = false;           // from options_.uids
    bool supervised = false;            // pid is portolan-job-init, which forks the program
    bool sandboxed = false;             // ... and PID 1 of the job's namespace
    bool own_child = false;             // started by this process (else adopted: another reaps it)
    bool killed = false;                // SIGKILLed by us (an adopted init that wrote no status)
    bool stopped_by_exit = false;       // stopped as the agent shut down (--stop-jobs-on-exit)
    int pidfd = -1;                     // the supervisor (or program), for exit and signals
    uint64_t start_ticks = 0;  // its start time (/proc/PID/stat), which with the pid names it
    std::string cgroup_name;
  };
  using Key = std::pair<std::string, uint32_t>;

  // Start's parts: the attempt's identity (a uid taken from the pool is
  // returned in `dynamic_uid`), its cgroup, what a failed child reported.
  // `described` gets what the `running` event says of each.
  absl::Status PlanIdentity(const v1::Job& job, SpawnPlan& plan, std::optional<uid_t>& dynamic_uid,
                            std::string& described);
  absl::StatusOr<std::unique_ptr<JobCgroup>> CreateCgroup(const v1::Job& job, const SpawnPlan& plan,
                                                          std::string& described);
  std::string DescribeChildError(const job_init::ChildError& ce, const SpawnPlan& plan,
                                 const JobCgroup* cg) const;
  // The attempt could not start: gives back its cgroup and uid, reports it
  // failed with `msg`. Returns true (Start's answer: the Assign was taken).
  bool FailStart(const v1::Job& job, std::unique_ptr<JobCgroup>& cg,
                 std::optional<uid_t>& dynamic_uid, const std::string& msg);
  // The attempt's program runs: records its supervisor, then reports it
  // running.
  bool Launched(const v1::Job& job, pid_t pid, const std::string& workdir,
                const std::string& described, std::unique_ptr<JobCgroup>& cg,
                std::optional<uid_t>& dynamic_uid);
  // For a record without a pid (the agent stopped between starting the
  // supervisor and recording it): finds the supervisor by the status file it
  // holds open and sets p.pid and p.start_ticks. False if none holds it.
  bool FindUnrecorded(Proc& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Recover's last step: kills what no record accounts for.
  void KillUnaccounted(const std::set<std::string>& kept_cgroups, Recovery& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Monitor();
  void Wake();  // the monitor looks at procs_ again now
  // Sends `sig` to the attempt: its supervisor (which forwards it), or the
  // program's process group without one.
  void Signal(Proc& p, int sig) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The attempt's record, as it is now.
  v1::AttemptRecord Record(const Proc& p) const;
  void SaveRecord(const Proc& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The final update of an attempt whose program ended with wait `status`.
  v1::JobUpdate Ended(Proc& p, int status, absl::Time ended_at) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::JobUpdate Lost(Proc& p, const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Stops every running attempt and waits for it (the destructor without
  // keep_running_on_exit).
  void StopAll() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Terminate(Proc& p, const std::string& why, absl::Duration grace = absl::ZeroDuration())
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void KillTree(Proc& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After the job's main process ended: no process of it remains, its
  // cgroup goes and its uid returns to the pool.
  void CleanUp(Proc& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::LogTail Tail(const Proc& p) const;
  v1::JobUpdate Failed(const v1::Job& job, const std::string& message) const;

  const ExecutorOptions options_;
  base::Clock* const clock_;
  const UpdateFn on_update_;

  mutable absl::Mutex mu_;
  std::atomic<uint64_t> start_errors_{0};
  std::atomic<uint64_t> oom_kills_{0};
  int init_fd_ = -1;                         // options_.job_init, opened O_PATH
  std::unique_ptr<AttemptRecords> records_;  // null without options_.records_dir
  std::unique_ptr<AttemptDirGc> dir_gc_;     // null without options_.work_root
  const std::string boot_id_;
  // Cgroups of ended jobs whose last processes had not yet left them.
  std::vector<std::unique_ptr<JobCgroup>> to_remove_ ABSL_GUARDED_BY(mu_);
  int wake_fd_ = -1;  // an eventfd that wakes the monitor (Wake())
  std::map<Key, Proc> procs_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread monitor_;
};

}  // namespace portolan::executor
