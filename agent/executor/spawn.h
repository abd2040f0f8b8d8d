// SPDX-License-Identifier: Apache-2.0
#pragma once

// How an attempt's processes start (the executor's lower half). Everything
// is worked out before the clone, because the child may only make
// async-signal-safe calls: it allocates nothing and reads only the plan. The
// child then joins the attempt's cgroup, binds itself to its PUs and NUMA
// nodes, sets up the sandbox's mounts, takes the job's identity and execs
// portolan-job-init (or the program); whatever fails on the way is reported
// on the error pipe as a job_init::ChildError.

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "agent/executor/job_init.h"
#include "portolan/executor/isolation.h"
#include "portolan/v1/job.pb.h"
#include "portolan/v1/topology.pb.h"

namespace portolan::executor {

// The allocated PUs and NUMA nodes that exist on this machine (an emulated
// topology may be larger), and how the binding reads in the job's events.
struct Binding {
  std::vector<uint32_t> pus;
  std::vector<uint32_t> nodes;
  std::string text;  // "; bound to PUs 0-3, memory on NUMA node(s) 0", or why not
};
// `machine_pus` / `machine_nodes` empty: everything allocated exists.
Binding PlanBinding(const v1::Allocation& alloc, const std::vector<uint32_t>& machine_pus,
                    const std::vector<uint32_t>& machine_nodes);

// The job's environment: only its `env`, plus PORTOLAN_* (job, attempt,
// tenant, working directory, resources, allocation, GPUs), GPU visibility
// variables, and PATH and HOME where the job sets none. The visibility
// variables number the allocated GPUs as their runtimes do, by PCI bus id
// among `machine_gpus` of the same vendor (CUDA_DEVICE_ORDER=PCI_BUS_ID is
// set with CUDA_VISIBLE_DEVICES); on a GPU machine a job allotted none gets
// them empty.
std::map<std::string, std::string> JobEnvironment(const v1::Job& job, const std::string& workdir,
                                                  const std::string& default_path,
                                                  bool machine_has_gpus,
                                                  const std::vector<v1::Gpu>& machine_gpus = {});

// The nodes of the GPUs `alloc` does not give the job.
std::vector<std::string> DeniedDevices(const v1::Allocation& alloc,
                                       const std::vector<GpuNode>& nodes);

// Creates <dir> (the agent's: 0711 when the job runs as another uid, else
// 0700) and <dir>/work (the job's: owned by `uid`/`gid` when >= 0, 0700).
absl::Status MakeAttemptDirs(const std::string& dir, int uid, int gid);
// A job with outputs: <workdir>/outputs/<path> for each, the job's own
// (uid/gid; 0700), where it writes what the agent keeps if it succeeds.
absl::Status MakeOutputDirs(const v1::Job& job, const std::string& workdir, int uid, int gid);

// `program` looked up in `path` (colon-separated) when it has no '/'; "" if
// not found. Done before the fork, so that a missing program is the job's
// failure with a clear message.
std::string Resolve(const std::string& program, const std::string& path);

// What the child does, and the descriptors it needs (owned: the destructor
// closes whatever is still open).
struct SpawnPlan {
  SpawnPlan() = default;
  SpawnPlan(const SpawnPlan&) = delete;
  SpawnPlan& operator=(const SpawnPlan&) = delete;
  ~SpawnPlan();

  std::string workdir;               // the job's working directory
  std::string program;               // resolved
  std::vector<std::string> command;  // argv of the program
  std::map<std::string, std::string> env;
  int uid = -1;  // -1: keep the agent's identity
  int gid = -1;
  std::vector<uint32_t> bind_pus;  // empty: not bound
  std::vector<uint32_t> bind_nodes;
  std::vector<int> join_fds;  // cgroup.procs files to join (the cgroup owns them)
  // portolan-job-init, opened O_PATH (not owned); -1: exec the program directly.
  int init_fd = -1;
  std::string init_path;               // its argv[0]
  bool sandbox = false;                // new PID, mount, IPC and UTS namespaces; needs init_fd
  std::vector<std::string> hide;       // overmounted by an empty tmpfs
  std::vector<std::string> read_only;  // remounted read-only
  // Device nodes of GPUs the job was not given, overmounted by `deny_source`
  // (an empty file no one but root may open), so that a job ignoring
  // CUDA_VISIBLE_DEVICES still cannot reach them.
  std::vector<std::string> deny_devices;
  std::string deny_source;

  // Opens <dir>/stdout.log, stderr.log, status (with an init), /dev/null and
  // the error pipe.
  absl::Status OpenFiles(const std::string& dir);

  int out_fd = -1;
  int err_fd = -1;
  int null_fd = -1;
  int status_fd = -1;
  int error_pipe[2] = {-1, -1};
  int work_fd = -1;  // a descriptor number the sandboxed child reopens its workdir on
};

// Starts the child (clone with CLONE_VM | CLONE_VFORK, into new namespaces
// when plan.sandbox; see StartChild in spawn.cc), and in the parent closes the child's ends of the
// descriptors. Returns the child's pid, or -1 with errno set.
pid_t Spawn(SpawnPlan& plan);

// Waits for the child to exec: EOF on the error pipe (nullopt), or the step
// that failed and its errno (the child has then exited with 127).
std::optional<job_init::ChildError> AwaitExec(SpawnPlan& plan);

}  // namespace portolan::executor
