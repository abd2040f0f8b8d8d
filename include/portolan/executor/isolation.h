// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "portolan/v1/topology.pb.h"

namespace portolan::executor {

// One uid (and the gid of the same number) per job attempt, taken from a
// range no account uses, like systemd's DynamicUser: two jobs never share an
// identity, so neither can read the other's files, signal or trace its
// processes or read its /proc/PID/environ. Never-used uids are handed out
// first, then released ones oldest first, so a uid is reused as late as
// possible. Thread-safe.
class UidPool {
 public:
  // [first, last]. Fails when the range is empty, includes uid 0, overlaps a
  // user or group known to NSS, or overlaps the range of another live agent
  // on this host (each holds a lock file <lock_dir>/uids-FIRST-LAST while it
  // runs; lock_dir "" skips that check). Errors name the culprit.
  static absl::StatusOr<std::unique_ptr<UidPool>> Create(uid_t first, uid_t last,
                                                         const std::string& lock_dir);
  ~UidPool();

  // A free uid, or nullopt when all are in use.
  std::optional<uid_t> Acquire();
  // Gives `uid` back; call once no process runs as it any more.
  void Release(uid_t uid);
  // Marks `uid` in use: an attempt an earlier run of the agent started, and
  // this one re-adopted. False when it is outside the range or held already.
  bool Claim(uid_t uid);
  bool Held(uid_t uid) const;
  bool Contains(uid_t uid) const { return uid >= first_ && uid <= last_; }
  uid_t first() const { return first_; }
  uid_t last() const { return last_; }
  size_t in_use() const;

 private:
  UidPool(uid_t first, uid_t last) : first_(first), last_(last), next_(first) {}
  int lock_fd_ = -1;
  std::string lock_path_;
  const uid_t first_;
  const uid_t last_;
  mutable absl::Mutex mu_;
  uid_t next_ ABSL_GUARDED_BY(mu_);  // first never-used uid
  std::deque<uid_t> released_ ABSL_GUARDED_BY(mu_);
  std::set<uid_t> held_ ABSL_GUARDED_BY(mu_);
};

// "200000-265535" -> {200000, 265535}.
absl::StatusOr<std::pair<uid_t, uid_t>> ParseUidRange(const std::string& text);

// SIGKILL to every process running as `uid` (a helper process, sharing this
// one's memory until it exits, takes the uid and kills -1, which the kernel applies atomically to
// all of them, so none can fork away). For job uids only, never for accounts people log in with.
void KillAllOfUid(uid_t uid);

// The uids in [first, last] that some process runs as, from `proc` (/proc).
std::set<uid_t> UidsInUse(const std::string& proc, uid_t first, uid_t last);

// Processes whose real uid lies in [first, last], read from `proc` (/proc):
// leftovers of an earlier run of the agent, before the pool reuses the uids.
std::vector<pid_t> ProcessesInUidRange(const std::string& proc, uid_t first, uid_t last);

// What the kernel lets the agent use for a job sandbox, found by starting a
// child in new PID, mount, IPC and UTS namespaces that mounts a private /proc
// and /tmp. `why` says what failed when not.
struct SandboxSupport {
  bool namespaces = false;
  std::string why;
};
SandboxSupport ProbeSandbox();

// The job init program beside the agent binary (or in ../lib/portolan/), ""
// when not found.
std::string FindJobInit();

// A GPU's device node, which a job not given the GPU may not open.
struct GpuNode {
  std::string bus_id;  // as allocations name the GPU (topology::GpuId)
  std::string name;    // hwloc's name (older allocations use it)
  std::string path;    // e.g. /dev/nvidia0
};

// The device nodes of the machine's NVIDIA GPUs: <dev_dir>/nvidia<minor>,
// the minor read from the driver's <proc_dir>/<bus id>/information ("Device
// Minor: N"; the node numbers need not follow bus order). GPUs the driver
// does not list (no driver loaded, an emulated topology) are left out.
std::vector<GpuNode> NvidiaDeviceNodes(const std::vector<v1::Gpu>& gpus,
                                       const std::string& proc_dir = "/proc/driver/nvidia/gpus",
                                       const std::string& dev_dir = "/dev");

// "/dev/nvidia0 (0000:3b:00.0), ..." for the agent's log.
std::string DescribeGpuNodes(const std::vector<GpuNode>& nodes);

// Makes `path`, an empty file only root may open (mode 0), which overmounts
// the device nodes of GPUs a job was not given; returns `path`.
absl::StatusOr<std::string> MakeDenySource(const std::string& path);

}  // namespace portolan::executor
