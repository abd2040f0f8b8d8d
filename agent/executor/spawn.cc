// SPDX-License-Identifier: Apache-2.0
#include "agent/executor/spawn.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/executor/process_handles.h"
#include "portolan/base/strings.h"

namespace portolan::executor {
namespace {

using job_init::ChildError;
using job_init::Step;

// set_mempolicy(2) mode; <numaif.h> comes with libnuma, which we do not need.
constexpr int kMpolBind = 2;

// Environment variables that select GPUs, by hwloc OS device name prefix.
// The runtime family of a GPU (its OS device name, else its vendor).
enum class GpuFamily { kCuda, kRocm, kLevelZero, kOther };
GpuFamily FamilyOf(const std::string& name, const std::string& vendor) {
  if (name.rfind("cuda", 0) == 0 || name.rfind("nvml", 0) == 0) return GpuFamily::kCuda;
  if (name.rfind("rsmi", 0) == 0) return GpuFamily::kRocm;
  if (name.rfind("ze", 0) == 0 || name.rfind("levelzero", 0) == 0) return GpuFamily::kLevelZero;
  if (vendor == "nvidia") return GpuFamily::kCuda;
  if (vendor == "amd") return GpuFamily::kRocm;
  if (vendor == "intel") return GpuFamily::kLevelZero;
  return GpuFamily::kOther;
}

// The index the runtime gives `name`'s device when it numbers devices by PCI
// bus id (CUDA with CUDA_DEVICE_ORDER=PCI_BUS_ID, which the job gets; NVML,
// ROCm and Level Zero do so by default): its rank by bus id among the
// machine's GPUs of its family. Without the machine's GPU (`self` null: an
// emulated topology) or a bus id, the number in hwloc's name: for OpenCL's
// "openclPdD" the device's index D within its platform (NVIDIA's platform
// lists devices in CUDA's default order).
std::string RuntimeIndex(const std::string& name, const v1::Gpu* self,
                         const std::vector<v1::Gpu>& machine) {
  if (self != nullptr && !self->pci_bus_id().empty()) {
    const GpuFamily family = FamilyOf(self->name(), self->vendor());
    int rank = 0;
    for (const v1::Gpu& g : machine) {
      if (FamilyOf(g.name(), g.vendor()) == family && !g.pci_bus_id().empty() &&
          g.pci_bus_id() < self->pci_bus_id())
        ++rank;
    }
    return absl::StrCat(rank);
  }
  size_t digits = name.find_first_of("0123456789");
  if (name.rfind("opencl", 0) == 0 && name.rfind('d') != std::string::npos)
    digits = name.find_first_of("0123456789", name.rfind('d'));
  return digits == std::string::npos ? "" : name.substr(digits);
}

// PORTOLAN_GPUS and each runtime's visibility variable for the allocated GPUs.
void GpuEnv(const std::vector<std::string>& names, const std::vector<v1::Gpu>& machine,
            bool machine_has_gpus, std::map<std::string, std::string>& env) {
  std::vector<std::string> cuda, rocm, ze;
  for (const std::string& n : names) {
    // Allocations name a GPU by its PCI bus id (older ones by hwloc's name).
    const auto it = std::find_if(machine.begin(), machine.end(), [&](const v1::Gpu& m) {
      return m.pci_bus_id() == n || m.name() == n;
    });
    const v1::Gpu* self = it == machine.end() ? nullptr : &*it;
    switch (FamilyOf(n, self == nullptr ? "" : self->vendor())) {
      case GpuFamily::kCuda:
        cuda.push_back(RuntimeIndex(n, self, machine));
        break;
      case GpuFamily::kRocm:
        rocm.push_back(RuntimeIndex(n, self, machine));
        break;
      case GpuFamily::kLevelZero:
        ze.push_back(RuntimeIndex(n, self, machine));
        break;
      case GpuFamily::kOther:
        break;
    }
  }
  if (!names.empty()) env["PORTOLAN_GPUS"] = absl::StrJoin(names, ",");
  if (machine_has_gpus || !cuda.empty()) {
    env["CUDA_VISIBLE_DEVICES"] = absl::StrJoin(cuda, ",");
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID";
  }
  if (machine_has_gpus || !rocm.empty()) env["ROCR_VISIBLE_DEVICES"] = absl::StrJoin(rocm, ",");
  if (!ze.empty()) env["ZE_AFFINITY_MASK"] = absl::StrJoin(ze, ",");
}

std::vector<uint32_t> Present(const google::protobuf::RepeatedField<uint32_t>& allocated,
                              const std::vector<uint32_t>& machine) {
  std::vector<uint32_t> out;
  for (uint32_t id : allocated) {
    if (machine.empty() || std::find(machine.begin(), machine.end(), id) != machine.end()) {
      out.push_back(id);
    }
  }
  return out;
}

// What the child reads: raw pointers into data the parent built before the
// fork and keeps alive until the child has exec'd.
struct Child {
  const SpawnPlan* plan;
  char* const* argv;
  char* const* envp;
  const cpu_set_t* cpus;
  bool bind_cpu;
  bool bind_mem;
  const unsigned long* nodemask;
  unsigned long max_node;
  const std::vector<const char*>* hide;
  const std::vector<const char*>* read_only;
  const std::vector<const char*>* mkdirs;
  const std::vector<const char*>* deny;
  const char* work_fd_path;
};

[[noreturn]] void Die(const Child& c, Step step) {
  ChildError ce{step, errno};
  (void)!write(c.plan->error_pipe[1], &ce, sizeof ce);
  _exit(127);
}

// The sandbox's mount namespace: private propagation, its own /proc, the
// read-only paths, private /tmp, /var/tmp and /dev/shm, the hidden paths
// (the state directory among them) and the working directory bound back in
// at its own path from a descriptor opened before anything was hidden.
void MountSandbox(const Child& c) {
  const SpawnPlan& p = *c.plan;
  constexpr unsigned long kNoSuidDev = MS_NOSUID | MS_NODEV;
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) Die(c, Step::kMounts);
  if (mount("proc", "/proc", "proc", kNoSuidDev | MS_NOEXEC, nullptr) != 0) Die(c, Step::kMounts);
  // Before anything is hidden: the source lies in the agent's state directory.
  for (const char* d : *c.deny) {
    if (mount(p.deny_source.c_str(), d, nullptr, MS_BIND, nullptr) != 0) Die(c, Step::kMounts);
  }
  for (const char* d : *c.read_only) {
    if (mount(d, d, nullptr, MS_BIND | MS_REC, nullptr) != 0 ||
        mount(nullptr, d, nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_REC, nullptr) != 0)
      Die(c, Step::kMounts);
  }
  const int wd = open(p.workdir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (wd < 0 || dup3(wd, p.work_fd, O_CLOEXEC) < 0) Die(c, Step::kMounts);
  close(wd);
  struct stat st;
  for (const char* t : {"/tmp", "/var/tmp", "/dev/shm"}) {
    if (stat(t, &st) == 0 && mount("tmpfs", t, "tmpfs", kNoSuidDev, "mode=1777") != 0)
      Die(c, Step::kMounts);
  }
  for (const char* d : *c.hide) {
    if (stat(d, &st) == 0 &&
        mount("tmpfs", d, "tmpfs", kNoSuidDev | MS_NOEXEC, "mode=0755,size=64k") != 0)
      Die(c, Step::kMounts);
  }
  for (const char* d : *c.mkdirs) {
    if (mkdir(d, 0755) != 0 && errno != EEXIST) Die(c, Step::kMounts);
  }
  if (mount(c.work_fd_path, p.workdir.c_str(), nullptr, MS_BIND, nullptr) != 0)
    Die(c, Step::kMounts);
}

// The child, from fork (or clone) to exec: async-signal-safe calls only.
[[noreturn]] void RunChild(const Child& c) {
  const SpawnPlan& p = *c.plan;
  // A session of its own: no signal of the agent's terminal or process
  // group reaches the job, and nothing ties it to the agent process, which
  // it may outlive.
  setsid();
  // Every signal the agent handles goes back to its default before any is
  // unblocked: the child may share the agent's memory until it execs, and an
  // agent handler run here would act on the agent's state (what posix_spawn
  // does too). The parent blocked all signals around the clone.
  for (int sig = 1; sig < NSIG; ++sig) {
    struct sigaction sa;
    if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, nullptr, &sa) != 0) continue;
    if (sig == SIGPIPE || (sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN)) {
      sa.sa_handler = SIG_DFL;
      sa.sa_flags = 0;
      sigaction(sig, &sa, nullptr);
    }
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  // The agent's umask (077) is for its own files; jobs get the usual one,
  // and the directories the sandbox makes must be passable.
  umask(022);
  for (int fd : p.join_fds) {
    if (write(fd, "0\n", 2) != 2) Die(c, Step::kCgroup);
  }
  if (c.bind_cpu && sched_setaffinity(0, sizeof *c.cpus, c.cpus) != 0) Die(c, Step::kAffinity);
  // Memory binding is best effort: containers often forbid it.
  if (c.bind_mem) (void)syscall(SYS_set_mempolicy, kMpolBind, c.nodemask, c.max_node + 2);
  if (p.sandbox) MountSandbox(c);
  // Drop to the job's identity last, after what needs the agent's
  // privileges. Raw system calls: after a raw clone glibc's set*id would try
  // to reach the parent's other threads.
  if (p.uid >= 0 && (syscall(SYS_setgroups, 0, nullptr) != 0 ||
                     syscall(SYS_setresgid, p.gid, p.gid, p.gid) != 0 ||
                     syscall(SYS_setresuid, p.uid, p.uid, p.uid) != 0)) {
    Die(c, Step::kIdentity);
  }
  // No setuid program brings privileges back.
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) Die(c, Step::kIdentity);
  if (chdir(p.workdir.c_str()) != 0 || dup2(p.null_fd, 0) < 0 || dup2(p.out_fd, 1) < 0 ||
      dup2(p.err_fd, 2) < 0) {
    Die(c, Step::kWorkdir);
  }
  // Nothing of the agent's reaches the job: not its connection to the
  // scheduler (which would outlive the agent in the job and hide its death),
  // not its listeners or log files. Marked close-on-exec, since some are
  // still needed until the exec.
  (void)syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
  if (p.init_fd >= 0) {
    // The init keeps these two across its exec; it closes them for the program.
    fcntl(p.error_pipe[1], F_SETFD, 0);
    fcntl(p.status_fd, F_SETFD, 0);
    syscall(SYS_execveat, p.init_fd, "", c.argv, c.envp, AT_EMPTY_PATH);
    Die(c, Step::kInit);
  }
  execve(p.program.c_str(), c.argv, c.envp);
  Die(c, Step::kExec);
}

[[maybe_unused]] int ChildMain(void* child) { RunChild(*static_cast<const Child*>(child)); }

// Starts the child. It runs on a stack of its own in the agent's memory
// (CLONE_VM) while the calling thread waits (CLONE_VFORK) until it has exec'd
// or died, as posix_spawn does: no copy of the agent's page tables, no
// copy-on-write faults and TLB shootdowns in the agent's threads afterwards,
// which made fork the largest part of an attempt's start (docs/performance.md).
// The child only makes system calls that act on itself (raw set*id, its own
// descriptors, namespaces and signal dispositions), so sharing the memory
// changes nothing the agent sees. Under ASan, whose checks do not expect code
// on a foreign stack, the child is a plain fork (clone, for the sandbox).
pid_t StartChild(const Child& child, bool sandbox) {
  const int namespaces = sandbox ? CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS : 0;
#if defined(__SANITIZE_ADDRESS__)
  // Raw clone (like fork, plus namespaces): the child is the init of a new
  // PID namespace. From here to exec only raw system calls in the child.
  const pid_t pid = sandbox ? static_cast<pid_t>(syscall(SYS_clone, namespaces | SIGCHLD, nullptr,
                                                         nullptr, nullptr, 0))
                            : fork();
  if (pid == 0) RunChild(child);
  return pid;
#else
  return CloneSharingMemory(ChildMain, const_cast<Child*>(&child), namespaces | SIGCHLD,
                            256 * 1024);
#endif
}

}  // namespace

Binding PlanBinding(const v1::Allocation& alloc, const std::vector<uint32_t>& machine_pus,
                    const std::vector<uint32_t>& machine_nodes) {
  Binding b;
  b.pus = Present(alloc.pus(), machine_pus);
  b.nodes = Present(alloc.numa_nodes(), machine_nodes);
  if (alloc.pus_size() == 0) return b;
  const std::string allocated = base::FormatIdList({alloc.pus().begin(), alloc.pus().end()});
  if (b.pus.empty()) {
    b.text = absl::StrCat("; not bound: none of the allocated PUs ", allocated,
                          " exists on this machine (emulated topology)");
  } else if (b.pus.size() < static_cast<size_t>(alloc.pus_size())) {
    b.text = absl::StrCat("; allocated PUs ", allocated, " of an emulated topology; bound to PUs ",
                          base::FormatIdList(b.pus), ", those present on this machine");
  } else {
    b.text = absl::StrCat("; bound to PUs ", allocated);
  }
  if (!b.pus.empty() && !b.nodes.empty()) {
    absl::StrAppend(&b.text, ", memory on NUMA node(s) ", base::FormatIdList(b.nodes));
  }
  return b;
}

std::map<std::string, std::string> JobEnvironment(const v1::Job& job, const std::string& workdir,
                                                  const std::string& default_path,
                                                  bool machine_has_gpus,
                                                  const std::vector<v1::Gpu>& machine_gpus) {
  std::map<std::string, std::string> env(job.env().begin(), job.env().end());
  env["PORTOLAN_JOB_ID"] = job.id();
  env["PORTOLAN_JOB_NAME"] = job.name();
  env["PORTOLAN_JOB_ATTEMPT"] = absl::StrCat(job.attempt());
  env["PORTOLAN_TENANT"] = job.tenant();
  if (!job.array_job().empty() && job.has_gang()) {  // a member of a gang
    env["PORTOLAN_GANG_JOB_ID"] = job.array_job();
    env["PORTOLAN_GANG_INDEX"] = absl::StrCat(job.array_index());
    env["PORTOLAN_GANG_SIZE"] = absl::StrCat(job.gang().tasks());
    env["PORTOLAN_GANG_MEMBERS"] = absl::StrJoin(job.gang_members(), ",");
  } else if (!job.array_job().empty()) {  // a task of an array
    env["PORTOLAN_ARRAY_JOB_ID"] = job.array_job();
    env["PORTOLAN_ARRAY_INDEX"] = absl::StrCat(job.array_index());
    env["PORTOLAN_ARRAY_COUNT"] = absl::StrCat(job.array().count());
  }
  env["PORTOLAN_WORKDIR"] = workdir;
  if (!job.outputs().empty()) env["PORTOLAN_OUTPUTS"] = workdir + "/outputs";
  env["PORTOLAN_CPUS"] = absl::StrCat(job.resources().cpus());
  env["PORTOLAN_MEMORY_MB"] = absl::StrCat(job.resources().memory_mb());
  if (!env.contains("PATH")) env["PATH"] = default_path;
  if (!env.contains("HOME")) env["HOME"] = workdir;
  const v1::Allocation& alloc = job.allocation();
  if (alloc.pus_size() > 0) {
    env["PORTOLAN_CPUS_ALLOCATED"] = base::FormatIdList({alloc.pus().begin(), alloc.pus().end()});
    env["PORTOLAN_NUMA_NODES"] =
        base::FormatIdList({alloc.numa_nodes().begin(), alloc.numa_nodes().end()});
  }
  GpuEnv({alloc.gpu_ids().begin(), alloc.gpu_ids().end()}, machine_gpus, machine_has_gpus, env);
  return env;
}

absl::Status MakeAttemptDirs(const std::string& dir, int uid, int gid) {
  // <dir> belongs to the agent (0711: the job may pass, not list); its logs
  // are the agent's (0600), written by the job only through the descriptors
  // it is given; <dir>/work is the job's own, 0700.
  auto err = [&](const std::string& what) {
    return absl::FailedPreconditionError(absl::StrCat(what, ": ", strerror(errno)));
  };
  // Two mkdirs in the usual case (the attempt is new, its parent exists);
  // create_directories would stat every level of the path first.
  if (mkdir(dir.c_str(), 0700) != 0 || mkdir((dir + "/work").c_str(), 0700) != 0) {
    std::error_code ec;
    std::filesystem::create_directories(dir + "/work", ec);
    if (ec) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot create working directory ", dir, ": ", ec.message()));
    }
  }
  if (chmod(dir.c_str(), uid >= 0 ? 0711 : 0700) != 0) {
    return err(absl::StrCat("cannot set the mode of ", dir));
  }
  if (uid >= 0 && chown((dir + "/work").c_str(), uid, gid) != 0) {
    return err(absl::StrCat("cannot hand ", dir, "/work to uid ", uid));
  }
  if (chmod((dir + "/work").c_str(), 0700) != 0) {
    return err(absl::StrCat("cannot set the mode of ", dir, "/work"));
  }
  return absl::OkStatus();
}

absl::Status MakeOutputDirs(const v1::Job& job, const std::string& workdir, int uid, int gid) {
  namespace fs = std::filesystem;
  const fs::path root = fs::path(workdir) / "outputs";
  for (const v1::JobOutput& out : job.outputs()) {
    // The path was checked at submit; every level below <workdir> is the job's.
    const fs::path p = root / (out.path().empty() ? out.id() : out.path());
    std::error_code ec;
    fs::create_directories(p, ec);
    if (ec)
      return absl::FailedPreconditionError(
          absl::StrCat("cannot create output directory ", p.string(), ": ", ec.message()));
  }
  if (!job.outputs().empty() && uid >= 0) {
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (lchown(it->path().c_str(), uid, gid) != 0)
        return absl::FailedPreconditionError(
            absl::StrCat("cannot hand ", it->path().string(), " to uid ", uid));
    }
    if (lchown(root.c_str(), uid, gid) != 0)
      return absl::FailedPreconditionError(
          absl::StrCat("cannot hand ", root.string(), " to uid ", uid));
  }
  return absl::OkStatus();
}

std::string Resolve(const std::string& program, const std::string& path) {
  if (program.find('/') != std::string::npos) return program;
  for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
    std::string candidate = absl::StrCat(dir, "/", program);
    struct stat st;
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return "";
}

SpawnPlan::~SpawnPlan() {
  for (int fd : {out_fd, err_fd, null_fd, status_fd, error_pipe[0], error_pipe[1], work_fd}) {
    if (fd >= 0) close(fd);
  }
}

absl::Status SpawnPlan::OpenFiles(const std::string& dir) {
  constexpr int kOut = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
  out_fd = open((dir + "/stdout.log").c_str(), kOut, 0600);
  err_fd = open((dir + "/stderr.log").c_str(), kOut, 0600);
  null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  // Where the supervisor writes how the program ended: a file, so that it
  // outlives the agent process.
  if (init_fd >= 0) status_fd = open((dir + "/status").c_str(), kOut, 0600);
  // A descriptor number the sandboxed child reopens its working directory on
  // (in its own mount namespace: a bind source must be a mount there), to
  // bind it back in once the state directory is hidden.
  if (sandbox) work_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (out_fd < 0 || err_fd < 0 || null_fd < 0 || pipe2(error_pipe, O_CLOEXEC) != 0 ||
      (init_fd >= 0 && status_fd < 0) || (sandbox && work_fd < 0)) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot set up output files in ", dir, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

pid_t Spawn(SpawnPlan& plan) {
  // argv: the program's, or portolan-job-init's with the program's after it.
  std::vector<std::string> args;
  if (plan.init_fd >= 0) {
    args = {plan.init_path, absl::StrCat(plan.status_fd), absl::StrCat(plan.error_pipe[1]),
            plan.program};
  }
  args.insert(args.end(), plan.command.begin(), plan.command.end());
  std::vector<char*> argv;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : plan.env) env_strings.push_back(absl::StrCat(k, "=", v));
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  for (uint32_t pu : plan.bind_pus) {
    if (pu < CPU_SETSIZE) CPU_SET(pu, &cpus);
  }
  std::vector<unsigned long> nodemask(4, 0);  // 256 NUMA nodes
  unsigned long max_node = 0;
  for (uint32_t n : plan.bind_nodes) {
    if (n < nodemask.size() * 64) {
      nodemask[n / 64] |= 1UL << (n % 64);
      max_node = std::max<unsigned long>(max_node, n);
    }
  }

  // The sandbox's mount plan: the directories down to the working directory
  // (made in the child once the state directory is hidden) and C strings.
  std::vector<std::string> mkdirs;
  std::vector<const char*> hide, read_only, mkdir_c, deny;
  if (plan.sandbox) {
    for (const auto& d : plan.deny_devices) deny.push_back(d.c_str());
    std::string at;
    for (absl::string_view part : absl::StrSplit(plan.workdir, '/', absl::SkipEmpty())) {
      at = absl::StrCat(at, "/", part);
      mkdirs.push_back(at);
    }
    for (const auto& d : plan.hide) hide.push_back(d.c_str());
    for (const auto& d : plan.read_only) read_only.push_back(d.c_str());
  }
  for (const auto& d : mkdirs) mkdir_c.push_back(d.c_str());
  const std::string work_fd_path = absl::StrCat("/proc/self/fd/", plan.work_fd);

  const Child child{&plan,
                    argv.data(),
                    envp.data(),
                    &cpus,
                    !plan.bind_pus.empty(),
                    !plan.bind_pus.empty() && !plan.bind_nodes.empty(),
                    nodemask.data(),
                    max_node,
                    &hide,
                    &read_only,
                    &mkdir_c,
                    &deny,
                    work_fd_path.c_str()};
  const pid_t pid = StartChild(child, plan.sandbox);
  const int saved = errno;
  for (int* fd : {&plan.out_fd, &plan.err_fd, &plan.null_fd, &plan.error_pipe[1], &plan.status_fd,
                  &plan.work_fd}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
  errno = saved;
  return pid;
}

std::optional<ChildError> AwaitExec(SpawnPlan& plan) {
  ChildError ce{Step::kExec, 0};
  ssize_t n;
  do {
    n = read(plan.error_pipe[0], &ce, sizeof ce);
  } while (n < 0 && errno == EINTR);
  close(plan.error_pipe[0]);
  plan.error_pipe[0] = -1;
  if (n > 0) return ce;
  return std::nullopt;
}

std::vector<std::string> DeniedDevices(const v1::Allocation& alloc,
                                       const std::vector<GpuNode>& nodes) {
  std::vector<std::string> out;
  for (const GpuNode& n : nodes) {
    const bool given =
        std::any_of(alloc.gpu_ids().begin(), alloc.gpu_ids().end(),
                    [&](const std::string& id) { return id == n.bus_id || id == n.name; });
    if (!given) out.push_back(n.path);
  }
  return out;
}

}  // namespace portolan::executor
