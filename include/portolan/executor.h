#pragma once

#include <sys/types.h>

#include <atomic>

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "portolan/cgroup.h"
#include "portolan/clock.h"
#include "portolan/isolation.h"
#include "portolan/v1/agent.pb.h"
#include "portolan/v1/job.pb.h"
#include "portolan/v1/wire.pb.h"

namespace portolan::agent {

struct ExecutorOptions {
  std::string work_root;                          // each attempt gets <work_root>/<job>-<attempt>/
  absl::Duration kill_grace = absl::Seconds(10);  // SIGTERM, then SIGKILL after this
  size_t log_tail_bytes = 64 * 1024;              // tail of stdout/stderr sent to the scheduler
  std::string default_path = "/usr/local/bin:/usr/bin:/bin";
  absl::Duration poll_interval = absl::Milliseconds(20);
  // The PUs and NUMA nodes that really exist here (and the agent may use).
  // Allocations are bound to their intersection with these; with an emulated
  // topology larger than the machine the rest is recorded but not bound.
  // Empty: bind exactly what is allocated.
  std::vector<uint32_t> machine_pus;
  std::vector<uint32_t> machine_numa_nodes;
  // The agent has GPUs: jobs allotted none get CUDA_VISIBLE_DEVICES="" etc.
  bool machine_has_gpus = false;
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
  // Sandbox: new PID, mount, IPC and UTS namespaces per attempt, with
  // `job_init` (portolan-job-init) as PID 1, its own /proc, private /tmp,
  // /var/tmp and /dev/shm, `hide` overmounted by empty tmpfs (the agent's
  // state directory always, with the job's own working directory mounted
  // back in), `read_only` remounted read-only. Off when `job_init` is "".
  std::string job_init;
  std::vector<std::string> hide;
  std::vector<std::string> read_only;
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

  Executor(ExecutorOptions options, Clock* clock, UpdateFn on_update);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Starts attempt `job.attempt()` of `job`. Returns false (and does nothing)
  // when that attempt is already known here: resent Assigns start nothing.
  bool Start(const v1::Job& job);
  // Stops a running job; a job not known here gets a `cancelled` update.
  void Cancel(const std::string& job_id, uint32_t attempt, const std::string& reason);
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
    bool sandboxed = false;             // pid is portolan-job-init, PID 1 of the job's namespace
    int status_fd = -1;                 // where the init writes the program's wait status
  };
  using Key = std::pair<std::string, uint32_t>;

  void Monitor();
  void Terminate(Proc& p, const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void KillTree(Proc& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After the job's main process ended: no process of it remains, its
  // cgroup goes and its uid returns to the pool.
  void CleanUp(Proc& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::LogTail Tail(const Proc& p) const;
  v1::JobUpdate Failed(const v1::Job& job, const std::string& message) const;

  const ExecutorOptions options_;
  Clock* const clock_;
  const UpdateFn on_update_;

  mutable std::mutex mu_;
  std::atomic<uint64_t> start_errors_{0};
  std::atomic<uint64_t> oom_kills_{0};
  int init_fd_ = -1;  // options_.job_init, opened O_PATH
  // Cgroups of ended jobs whose last processes had not yet left them.
  std::vector<std::unique_ptr<JobCgroup>> to_remove_ ABSL_GUARDED_BY(mu_);
  std::condition_variable cv_;
  std::map<Key, Proc> procs_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread monitor_;
};

}  // namespace portolan::agent
