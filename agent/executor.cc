#include "portolan/executor.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
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
#include "attempt_records.h"
#include "job_init.h"
#include "portolan/files.h"
#include "portolan/log.h"
#include "portolan/strings.h"

namespace portolan::agent {
namespace {

std::string SignalName(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev ? absl::StrCat("SIG", abbrev) : absl::StrCat("signal ", sig);
}

// PATH lookup done before fork: the child must only call async-signal-safe
// functions, and a missing program must be reported as the job's failure.
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

bool WriteFile(const std::string& path, const std::string& value) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC | O_CREAT, 0644);
  if (fd < 0) return false;
  bool ok = write(fd, value.data(), value.size()) == static_cast<ssize_t>(value.size());
  close(fd);
  return ok;
}

// set_mempolicy(2) mode; <numaif.h> comes with libnuma, which we do not need.
constexpr int kMpolBind = 2;

using job_init::ChildError;

// Environment variables that select GPUs, by hwloc OS device name prefix.
void GpuEnv(const std::vector<std::string>& names, bool machine_has_gpus,
            std::map<std::string, std::string>& env) {
  std::vector<std::string> cuda, rocm, ze;
  for (const std::string& n : names) {
    auto digits = n.substr(n.find_first_of("0123456789") == std::string::npos
                               ? n.size()
                               : n.find_first_of("0123456789"));
    if (n.rfind("cuda", 0) == 0 || n.rfind("nvml", 0) == 0) cuda.push_back(digits);
    if (n.rfind("rsmi", 0) == 0) rocm.push_back(digits);
    if (n.rfind("ze", 0) == 0 || n.rfind("levelzero", 0) == 0) ze.push_back(digits);
  }
  if (!names.empty()) env["PORTOLAN_GPUS"] = absl::StrJoin(names, ",");
  if (machine_has_gpus || !cuda.empty()) env["CUDA_VISIBLE_DEVICES"] = absl::StrJoin(cuda, ",");
  if (machine_has_gpus || !rocm.empty()) env["ROCR_VISIBLE_DEVICES"] = absl::StrJoin(rocm, ",");
  if (!ze.empty()) env["ZE_AFFINITY_MASK"] = absl::StrJoin(ze, ",");
}

uint64_t FileSize(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

// A descriptor for exactly this process (not whatever later gets its pid):
// for signals and to see it end even when another process reaps it.
int PidfdOpen(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }
bool PidfdSignal(int pidfd, int sig) {
  return syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) == 0;
}
// The process behind `pidfd` has ended (it may still be a zombie).
bool Exited(int pidfd) {
  pollfd p{pidfd, POLLIN, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & (POLLIN | POLLHUP)) != 0;
}

absl::Time FileMtime(const std::string& path, absl::Time fallback) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return fallback;
  return absl::TimeFromTimespec(st.st_mtim);
}

std::string Runtime(absl::Duration ran) {
  ran = absl::Trunc(ran, absl::Milliseconds(1));
  return ran < absl::Milliseconds(1) ? "<1ms" : absl::FormatDuration(ran);
}

}  // namespace

Executor::Executor(ExecutorOptions options, Clock* clock, UpdateFn on_update)
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
  monitor_ = std::thread([this] { Monitor(); });
}

Executor::~Executor() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  monitor_.join();
  if (init_fd_ >= 0) close(init_fd_);
  std::lock_guard<std::mutex> lock(mu_);
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

v1::JobUpdate Executor::Failed(const v1::Job& job, const std::string& message) const {
  v1::JobUpdate u;
  u.set_job_id(job.id());
  u.set_attempt(job.attempt());
  u.set_state(v1::Job::failed);
  u.set_exit_code(127);
  u.set_message(message);
  *u.mutable_time() = ToProto(clock_->Now());
  return u;
}

bool Executor::Start(const v1::Job& job) {
  const Key key{job.id(), job.attempt()};
  std::string dir = absl::StrCat(options_.work_root, "/", job.id(), "-", job.attempt());
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (procs_.contains(key)) return false;
    Proc& p = procs_[key];
    p.job = job;
    p.dir = dir;
  }
  // Everything taken for the attempt, given back if it cannot start.
  std::unique_ptr<JobCgroup> cg;
  std::optional<uid_t> dynamic_uid;
  auto fail = [&](const std::string& msg) {
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
      std::lock_guard<std::mutex> lock(mu_);
      Proc& p = procs_[key];
      if (records_) (void)records_->Remove(job.id(), job.attempt());
      p.finished = true;
      p.final_state = v1::Job::failed;
      p.exit_code = 127;
    }
    start_errors_.fetch_add(1);
    spdlog::warn("job {} attempt {} cannot start: {}", job.id(), job.attempt(), msg);
    on_update_(u);
    return true;
  };

  // Identity: the tenant's account, a uid of the attempt's own, or --run-as.
  int run_uid = options_.run_uid;
  int run_gid = options_.run_gid;
  std::string identity;
  if (auto it = options_.tenant_users.find(job.tenant()); it != options_.tenant_users.end()) {
    run_uid = static_cast<int>(it->second.first);
    run_gid = static_cast<int>(it->second.second);
    identity = absl::StrCat("; as tenant account uid ", run_uid);
  } else if (options_.uids) {
    dynamic_uid = options_.uids->Acquire();
    if (!dynamic_uid) {
      return fail(absl::StrCat("no free uid in --job-uid-range ", options_.uids->first(), "-",
                               options_.uids->last(), " (", options_.uids->in_use(),
                               " jobs hold one)"));
    }
    run_uid = run_gid = static_cast<int>(*dynamic_uid);
    identity = absl::StrCat("; as uid ", run_uid);
  }

  // <dir> belongs to the agent (mode 0711: the job may pass, not list); its
  // logs are the agent's (0600), written by the job only through the file
  // descriptors it is given; <dir>/work is the job's own, mode 0700.
  std::error_code ec;
  std::filesystem::create_directories(dir + "/work", ec);
  if (ec) return fail(absl::StrCat("cannot create working directory ", dir, ": ", ec.message()));
  if (chmod(dir.c_str(), run_uid >= 0 ? 0711 : 0700) != 0) {
    return fail(absl::StrCat("cannot set the mode of ", dir, ": ", strerror(errno)));
  }
  if (run_uid >= 0) {
    if (chown((dir + "/work").c_str(), run_uid, run_gid) != 0) {
      return fail(
          absl::StrCat("cannot hand ", dir, "/work to uid ", run_uid, ": ", strerror(errno)));
    }
  }
  if (chmod((dir + "/work").c_str(), 0700) != 0) {
    return fail(absl::StrCat("cannot set the mode of ", dir, "/work: ", strerror(errno)));
  }

  // Environment: only what the job asked for, plus what we set on purpose.
  std::map<std::string, std::string> env(job.env().begin(), job.env().end());
  env["PORTOLAN_JOB_ID"] = job.id();
  env["PORTOLAN_JOB_NAME"] = job.name();
  env["PORTOLAN_JOB_ATTEMPT"] = absl::StrCat(job.attempt());
  env["PORTOLAN_TENANT"] = job.tenant();
  env["PORTOLAN_WORKDIR"] = dir + "/work";
  env["PORTOLAN_CPUS"] = absl::StrCat(job.resources().cpus());
  env["PORTOLAN_MEMORY_MB"] = absl::StrCat(job.resources().memory_mb());
  if (!env.contains("PATH")) env["PATH"] = options_.default_path;

  // Binding: the allocated PUs and NUMA nodes that exist on this machine.
  const v1::Allocation& alloc = job.allocation();
  std::vector<uint32_t> bind_pus, bind_nodes;
  for (uint32_t pu : alloc.pus()) {
    if (options_.machine_pus.empty() ||
        std::find(options_.machine_pus.begin(), options_.machine_pus.end(), pu) !=
            options_.machine_pus.end()) {
      bind_pus.push_back(pu);
    }
  }
  for (uint32_t n : alloc.numa_nodes()) {
    if (options_.machine_numa_nodes.empty() ||
        std::find(options_.machine_numa_nodes.begin(), options_.machine_numa_nodes.end(), n) !=
            options_.machine_numa_nodes.end()) {
      bind_nodes.push_back(n);
    }
  }
  std::string binding;
  if (alloc.pus_size() > 0) {
    const std::string allocated = FormatIdList({alloc.pus().begin(), alloc.pus().end()});
    env["PORTOLAN_CPUS_ALLOCATED"] = allocated;
    env["PORTOLAN_NUMA_NODES"] =
        FormatIdList({alloc.numa_nodes().begin(), alloc.numa_nodes().end()});
    if (bind_pus.empty()) {
      binding = absl::StrCat("; not bound: none of the allocated PUs ", allocated,
                             " exists on this machine (emulated topology)");
    } else if (bind_pus.size() < static_cast<size_t>(alloc.pus_size())) {
      binding =
          absl::StrCat("; allocated PUs ", allocated, " of an emulated topology; bound to PUs ",
                       FormatIdList(bind_pus), ", those present on this machine");
    } else {
      binding = absl::StrCat("; bound to PUs ", allocated);
    }
    if (!bind_pus.empty() && !bind_nodes.empty()) {
      absl::StrAppend(&binding, ", memory on NUMA node(s) ", FormatIdList(bind_nodes));
    }
  }
  GpuEnv({alloc.gpu_ids().begin(), alloc.gpu_ids().end()}, options_.machine_has_gpus, env);
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  for (uint32_t pu : bind_pus) {
    if (pu < CPU_SETSIZE) CPU_SET(pu, &cpus);
  }
  std::vector<unsigned long> nodemask(4, 0);  // 256 NUMA nodes
  uint32_t max_node = 0;
  for (uint32_t n : bind_nodes) {
    if (n < nodemask.size() * 64) {
      nodemask[n / 64] |= 1UL << (n % 64);
      max_node = std::max(max_node, n);
    }
  }
  const bool bind_cpu = !bind_pus.empty();
  const bool bind_mem = bind_cpu && !bind_nodes.empty();

  // The attempt's cgroup, with the allocation as its limits.
  if (options_.cgroups) {
    CgroupLimits limits;
    limits.cpus = bind_pus;
    limits.mems = bind_cpu ? bind_nodes : std::vector<uint32_t>{};
    limits.memory_bytes =
        (int64_t{job.resources().memory_mb()} << 20) * (100 + options_.memory_slack_percent) / 100;
    limits.pids_max = options_.pids_max;
    auto created = options_.cgroups->Create(absl::StrCat(job.id(), "-", job.attempt()), limits);
    if (!created.ok()) return fail(std::string(created.status().message()));
    cg = std::move(*created);
    std::vector<std::string> lim;
    if (options_.cgroups->memory() && limits.memory_bytes > 0)
      lim.push_back(absl::StrCat("memory ", limits.memory_bytes >> 20, " MiB"));
    if (options_.cgroups->cpuset() && !limits.cpus.empty())
      lim.push_back(absl::StrCat("cpus ", FormatIdList(limits.cpus)));
    if (options_.cgroups->pids() && limits.pids_max > 0)
      lim.push_back(absl::StrCat("pids ", limits.pids_max));
    absl::StrAppend(&binding, "; cgroup ", options_.cgroups->version(),
                    lim.empty() ? "" : absl::StrCat(" (", absl::StrJoin(lim, ", "), ")"));
  }
  absl::StrAppend(&binding, identity);
  if (!env.contains("HOME")) env["HOME"] = dir + "/work";

  const std::string program = Resolve(job.command(0), env["PATH"]);
  if (program.empty()) {
    return fail(absl::StrCat("executable '", job.command(0), "' not found in PATH=", env["PATH"]));
  }
  const bool supervised = !options_.job_init.empty();
  const bool sandbox = supervised && options_.sandbox;
  if (sandbox) absl::StrAppend(&binding, "; sandboxed");

  std::vector<std::string> env_strings;
  for (const auto& [k, v] : env) env_strings.push_back(absl::StrCat(k, "=", v));
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  const std::string workdir = dir + "/work";

  int out_fd = open((dir + "/stdout.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int err_fd = open((dir + "/stderr.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int pipe_fds[2] = {-1, -1};
  // Where the supervisor writes how the program ended: a file, so that it
  // outlives this process.
  int status_fd =
      supervised ? open((dir + "/status").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)
                 : -1;
  // A descriptor number the sandboxed child re-opens its working directory
  // on (in its own mount namespace: a bind source must be a mount there), to
  // bind it back in once the state directory is hidden.
  int work_fd = sandbox ? open("/dev/null", O_RDONLY | O_CLOEXEC) : -1;
  auto close_all = [&] {
    for (int fd : {out_fd, err_fd, null_fd, pipe_fds[0], pipe_fds[1], status_fd, work_fd})
      if (fd >= 0) close(fd);
  };
  if (out_fd < 0 || err_fd < 0 || null_fd < 0 || pipe2(pipe_fds, O_CLOEXEC) != 0 ||
      (supervised && status_fd < 0) || (sandbox && work_fd < 0)) {
    std::string err = strerror(errno);
    close_all();
    return fail(absl::StrCat("cannot set up output files in ", dir, ": ", err));
  }

  // argv: the program's, or portolan-job-init's with the program's after it.
  std::vector<std::string> args;
  if (supervised) {
    args = {options_.job_init, absl::StrCat(status_fd), absl::StrCat(pipe_fds[1]), program};
  }
  args.insert(args.end(), job.command().begin(), job.command().end());
  std::vector<char*> argv;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  const char* exec_path = program.c_str();
  const int init_fd = init_fd_;
  if (supervised && init_fd < 0) {
    close_all();
    return fail(absl::StrCat("cannot open the job init ", options_.job_init));
  }
  // Recorded before it starts: if this process dies from here on, the next
  // one finds the attempt's cgroup and uid and cleans them up.
  absl::Status recorded;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Proc& p = procs_[key];
    p.uid = run_uid;
    p.supervised = supervised;
    p.sandboxed = sandbox;
    p.cgroup_name = cg ? absl::StrCat(job.id(), "-", job.attempt()) : "";
    p.started = clock_->Now();
    if (records_) recorded = records_->Put(Record(p));
  }
  if (!recorded.ok()) {
    close_all();
    return fail(absl::StrCat("cannot record the attempt durably: ", recorded.message()));
  }

  // Mount plan for the sandbox, built here: the child may not allocate.
  // Overmounted in order: private /tmp, /var/tmp and /dev/shm, then the
  // hidden paths (the state directory among them); a path an earlier one
  // already hid is skipped. Then the working directory is bound back in at
  // its own path (from a descriptor opened before anything was hidden), so
  // PORTOLAN_WORKDIR is the same inside and out.
  std::vector<std::string> mkdirs;
  const std::string work_fd_path = absl::StrCat("/proc/self/fd/", work_fd);
  if (sandbox) {
    std::string at;
    for (absl::string_view part : absl::StrSplit(workdir, '/', absl::SkipEmpty())) {
      at = absl::StrCat(at, "/", part);
      mkdirs.push_back(at);
    }
  }
  std::vector<const char*> hide_c, ro_c, mkdir_c;
  if (sandbox) {
    for (const auto& d : options_.hide) hide_c.push_back(d.c_str());
    for (const auto& d : options_.read_only) ro_c.push_back(d.c_str());
  }
  for (auto& d : mkdirs) mkdir_c.push_back(d.c_str());
  const std::vector<int> join_fds = cg ? cg->join_fds() : std::vector<int>{};

  pid_t pid;
  if (sandbox) {
    // Raw clone (like fork, plus namespaces): the child is the init of a new
    // PID namespace. From here to exec only raw system calls in the child.
    pid = static_cast<pid_t>(
        syscall(SYS_clone, CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD,
                nullptr, nullptr, nullptr, 0));
  } else {
    pid = fork();
  }
  if (pid == 0) {
    // Child: async-signal-safe calls only. A session of its own: no signal
    // of the agent's terminal or process group reaches the job, and nothing
    // ties it to the agent process, which it may outlive.
    setsid();
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, nullptr);
    signal(SIGPIPE, SIG_DFL);
    // The agent's umask (077) is for its own files; jobs get the usual one,
    // and the directories made below must be passable.
    umask(022);
    ChildError ce{0, 0};
    auto die = [&](int step) {
      ce = {step, errno};
      (void)!write(pipe_fds[1], &ce, sizeof ce);
      _exit(127);
    };
    for (int fd : join_fds) {
      if (write(fd, "0\n", 2) != 2) die(job_init::kCgroup);
    }
    if (bind_cpu && sched_setaffinity(0, sizeof cpus, &cpus) != 0) die(job_init::kAffinity);
    // Memory binding is best effort: containers often forbid it.
    if (bind_mem) (void)syscall(SYS_set_mempolicy, kMpolBind, nodemask.data(), max_node + 2);
    if (sandbox) {
      constexpr unsigned long kNoSuidDev = MS_NOSUID | MS_NODEV;
      if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) die(job_init::kMounts);
      if (mount("proc", "/proc", "proc", kNoSuidDev | MS_NOEXEC, nullptr) != 0)
        die(job_init::kMounts);
      for (const char* d : ro_c) {
        if (mount(d, d, nullptr, MS_BIND | MS_REC, nullptr) != 0 ||
            mount(nullptr, d, nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_REC, nullptr) != 0)
          die(job_init::kMounts);
      }
      const int wd = open(workdir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (wd < 0 || dup3(wd, work_fd, O_CLOEXEC) < 0) die(job_init::kMounts);
      close(wd);
      struct stat st;
      for (const char* t : {"/tmp", "/var/tmp", "/dev/shm"}) {
        if (stat(t, &st) == 0 && mount("tmpfs", t, "tmpfs", kNoSuidDev, "mode=1777") != 0)
          die(job_init::kMounts);
      }
      for (const char* d : hide_c) {
        if (stat(d, &st) == 0 &&
            mount("tmpfs", d, "tmpfs", kNoSuidDev | MS_NOEXEC, "mode=0755,size=64k") != 0)
          die(job_init::kMounts);
      }
      for (const char* d : mkdir_c) {
        if (mkdir(d, 0755) != 0 && errno != EEXIST) die(job_init::kMounts);
      }
      if (mount(work_fd_path.c_str(), workdir.c_str(), nullptr, MS_BIND, nullptr) != 0)
        die(job_init::kMounts);
    }
    // Drop to the job's identity last, after what needs the agent's
    // privileges. Raw system calls: after a raw clone glibc's set*id would
    // try to reach the parent's other threads.
    if (run_uid >= 0 && (syscall(SYS_setgroups, 0, nullptr) != 0 ||
                         syscall(SYS_setresgid, run_gid, run_gid, run_gid) != 0 ||
                         syscall(SYS_setresuid, run_uid, run_uid, run_uid) != 0)) {
      die(job_init::kIdentity);
    }
    // No setuid program brings privileges back.
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) die(job_init::kIdentity);
    if (chdir(workdir.c_str()) != 0 || dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 ||
        dup2(err_fd, 2) < 0) {
      die(job_init::kWorkdir);
    }
    // Nothing of the agent's reaches the job: not its connection to the
    // scheduler (which would outlive the agent in the job and hide its
    // death), not its listeners or log files. Marked close-on-exec, since
    // some are still needed until the exec.
    (void)syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
    if (supervised) {
      // The init keeps these two across its exec; it closes them for the program.
      fcntl(pipe_fds[1], F_SETFD, 0);
      fcntl(status_fd, F_SETFD, 0);
      syscall(SYS_execveat, init_fd, "", argv.data(), envp.data(), AT_EMPTY_PATH);
      die(job_init::kInit);
    }
    execve(exec_path, argv.data(), envp.data());
    die(job_init::kExec);
  }
  int fork_errno = errno;
  if (cg) cg->CloseJoinFds();
  for (int* fd : {&out_fd, &err_fd, &null_fd, &pipe_fds[1], &status_fd, &work_fd}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
  if (pid < 0) {
    close_all();
    return fail(absl::StrCat(sandbox ? "clone" : "fork", " failed: ", strerror(fork_errno)));
  }
  ChildError ce{0, 0};
  ssize_t n;
  do {
    n = read(pipe_fds[0], &ce, sizeof ce);
  } while (n < 0 && errno == EINTR);
  close(pipe_fds[0]);
  pipe_fds[0] = -1;
  if (n > 0) {
    waitpid(pid, nullptr, 0);
    close_all();
    switch (ce.step) {
      case job_init::kAffinity:
        return fail(
            absl::StrCat("cannot bind to PUs ", FormatIdList(bind_pus), ": ", strerror(ce.err)));
      case job_init::kWorkdir:
        return fail(
            absl::StrCat("cannot enter working directory ", workdir, ": ", strerror(ce.err)));
      case job_init::kCgroup:
        return fail(absl::StrCat("cannot join ", cg->Describe(), ": ", strerror(ce.err)));
      case job_init::kIdentity:
        return fail(absl::StrCat("cannot switch to uid ", run_uid, " gid ", run_gid, ": ",
                                 strerror(ce.err)));
      case job_init::kMounts:
        return fail(absl::StrCat("cannot set up the job's mount namespace: ", strerror(ce.err)));
      case job_init::kInit:
        return fail(absl::StrCat("cannot execute the job init ", options_.job_init, ": ",
                                 strerror(ce.err)));
      default:
        return fail(absl::StrCat("cannot execute '", program, "': ", strerror(ce.err)));
    }
  }

  const absl::Time now = clock_->Now();
  // The supervisor's pid and start time go into the record before `running`
  // is reported: from then on a restarted agent finds it.
  absl::Status recorded_pid;
  {
    std::lock_guard<std::mutex> lock(mu_);
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
    close_all();
    return fail(absl::StrCat("cannot record the attempt durably: ", recorded_pid.message()));
  }
  spdlog::info("job {} attempt {} started: pid {} in {}{}", job.id(), job.attempt(), pid, workdir,
               binding);
  v1::JobUpdate u;
  u.set_job_id(job.id());
  u.set_attempt(job.attempt());
  u.set_state(v1::Job::running);
  u.set_message(absl::StrCat("started as pid ", pid, binding));
  *u.mutable_time() = ToProto(now);
  on_update_(u);
  {
    std::lock_guard<std::mutex> lock(mu_);
    procs_[key].start_reported = true;
  }
  cv_.notify_all();
  return true;
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

void Executor::Terminate(Proc& p, const std::string& why) {
  if (p.finished || p.pid <= 0 || p.kill_at != absl::InfiniteFuture()) return;
  spdlog::info("job {} attempt {}: {}; sending SIGTERM to {} {}", p.job.id(), p.job.attempt(), why,
               p.sandboxed    ? "its init, which forwards it to every process of the job, pid"
               : p.supervised ? "its supervisor, which forwards it to the job's process group, pid"
                              : "process group",
               p.pid);
  Signal(p, SIGTERM);
  p.kill_at = clock_->Now() + options_.kill_grace;
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
  *r.mutable_started_at() = ToProto(p.started);
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

v1::JobUpdate Executor::Ended(Proc& p, int status, absl::Time ended_at) {
  const uint64_t oom_kills = p.cgroup ? p.cgroup->OomKills() : 0;
  CleanUp(p);
  p.finished = true;
  v1::JobUpdate u;
  u.set_job_id(p.job.id());
  u.set_attempt(p.job.attempt());
  *u.mutable_time() = ToProto(clock_->Now());
  const std::string runtime = Runtime(ended_at - p.started);
  if (WIFEXITED(status)) {
    u.set_exit_code(WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    u.set_signal(WTERMSIG(status));
    u.set_exit_code(128 + WTERMSIG(status));
  }
  const bool oom = oom_kills > 0;
  if (oom) oom_kills_.fetch_add(1);
  if (p.cancel_requested) {
    u.set_state(v1::Job::cancelled);
    u.set_message(absl::StrCat("cancelled (", p.cancel_reason, ") after ", runtime));
  } else if (p.timed_out) {
    u.set_state(v1::Job::failed);
    u.set_message(absl::StrCat("exceeded max_runtime_s=", p.job.max_runtime_s(), "; stopped after ",
                               runtime));
  } else if (oom) {
    u.set_state(v1::Job::failed);
    const int64_t limit_mb =
        int64_t{p.job.resources().memory_mb()} * (100 + options_.memory_slack_percent) / 100;
    u.set_message(absl::StrCat(
        "out of memory (limit ", limit_mb, " MiB): the kernel's OOM killer ended ", oom_kills,
        oom_kills == 1 ? " process" : " processes", " of the job after ", runtime,
        WIFSIGNALED(status) ? "" : absl::StrCat("; exit code ", u.exit_code())));
  } else if (u.signal() != 0) {
    u.set_state(v1::Job::failed);
    u.set_message(absl::StrCat("killed by ", SignalName(u.signal()), " after ", runtime));
  } else if (u.exit_code() == 0) {
    u.set_state(v1::Job::succeeded);
    u.set_message(absl::StrCat("exited with code 0 after ", runtime));
  } else {
    u.set_state(v1::Job::failed);
    u.set_message(absl::StrCat("exited with code ", u.exit_code(), " after ", runtime));
  }
  if (!p.own_child) absl::StrAppend(u.mutable_message(), " (re-adopted after an agent restart)");
  p.final_state = u.state();
  p.exit_code = u.exit_code();
  *u.mutable_logs() = Tail(p);
  spdlog::info("job {} attempt {}: {}", p.job.id(), p.job.attempt(), u.message());
  return u;
}

v1::JobUpdate Executor::Lost(Proc& p, const std::string& why) {
  CleanUp(p);
  p.finished = true;
  v1::JobUpdate u;
  u.set_job_id(p.job.id());
  u.set_attempt(p.job.attempt());
  *u.mutable_time() = ToProto(clock_->Now());
  u.set_state(p.cancel_requested ? v1::Job::cancelled : v1::Job::lost);
  u.set_message(why);
  p.final_state = u.state();
  *u.mutable_logs() = Tail(p);
  spdlog::warn("job {} attempt {}: {}", p.job.id(), p.job.attempt(), why);
  return u;
}

void Executor::Cancel(const std::string& job_id, uint32_t attempt, const std::string& reason) {
  std::optional<v1::JobUpdate> unknown;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = procs_.find({job_id, attempt});
    if (it == procs_.end()) {
      v1::JobUpdate u;
      u.set_job_id(job_id);
      u.set_attempt(attempt);
      u.set_state(v1::Job::cancelled);
      u.set_message(absl::StrCat("cancelled before it started here (", reason, ")"));
      *u.mutable_time() = ToProto(clock_->Now());
      unknown = u;
    } else if (!it->second.finished) {
      it->second.cancel_requested = true;
      it->second.cancel_reason = reason;
      SaveRecord(it->second);
      Terminate(it->second, absl::StrCat("cancel: ", reason));
    }
  }
  if (unknown) on_update_(*unknown);
  cv_.notify_all();
}

void Executor::Forget(const std::string& job_id, uint32_t attempt) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = procs_.find({job_id, attempt});
  if (it != procs_.end() && it->second.finished) {
    if (records_) {
      if (absl::Status st = records_->Remove(job_id, attempt); !st.ok()) {
        spdlog::warn("job {} attempt {}: {}", job_id, attempt, st.message());
      }
    }
    procs_.erase(it);
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
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const v1::AttemptRecord& r : records) {
      const Key key{r.job().id(), r.job().attempt()};
      if (procs_.contains(key)) continue;
      Proc& p = procs_[key];
      p.job = r.job();
      p.dir = r.dir();
      p.uid = r.uid();
      p.supervised = true;
      p.sandboxed = r.sandboxed();
      p.started = FromProto(r.started_at());
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
      bool alive = false;
      if (r.pid() > 0 && r.boot_id() == boot_id_ && r.pid_start_ticks() != 0 &&
          ProcessStartTicks(r.pid()) == r.pid_start_ticks()) {
        p.pidfd = PidfdOpen(r.pid());
        alive =
            p.pidfd >= 0 && ProcessStartTicks(r.pid()) == r.pid_start_ticks() && !Exited(p.pidfd);
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
        spdlog::info("{}: re-adopted (supervisor pid {}, running for {}{})", what, p.pid,
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
      } else if (r.pid() == 0) {
        updates.push_back(Lost(p,
                               "the agent stopped while it was starting the attempt; whatever "
                               "of it had started was killed"));
      } else if (p.stopped_by_exit) {
        updates.push_back(Lost(p, "stopped as the agent shut down (--stop-jobs-on-exit)"));
      } else if (auto status = ReadExitStatus(p.dir + "/status")) {
        updates.push_back(Ended(p, *status, FileMtime(p.dir + "/status", clock_->Now())));
        absl::StrAppend(updates.back().mutable_message(), "; it ended while the agent was down");
      } else {
        updates.push_back(
            Lost(p, absl::StrCat("its supervisor (pid ", r.pid(),
                                 ") ended while the agent was down without saying how the program "
                                 "ended: it was killed from outside the agent")));
      }
    }
    // What no record accounts for: job cgroups, then processes under job
    // uids. Before registering, so that the scheduler can trust that what
    // this agent does not report does not run here.
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
  for (const v1::JobUpdate& u : updates) on_update_(u);
  cv_.notify_all();
  return out;
}

std::vector<v1::AgentJobStatus> Executor::Jobs() const {
  std::lock_guard<std::mutex> lock(mu_);
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
  std::lock_guard<std::mutex> lock(mu_);
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
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const auto& [key, p] : procs_) n += p.finished ? 0 : 1;
  return n;
}

v1::LogTail Executor::Tail(const Proc& p) const {
  v1::LogTail t;
  t.set_job_id(p.job.id());
  bool trunc = false;
  t.set_stdout(ReadTail(p.dir + "/stdout.log", options_.log_tail_bytes, &trunc));
  t.set_stdout_truncated(trunc);
  t.set_stderr(ReadTail(p.dir + "/stderr.log", options_.log_tail_bytes, &trunc));
  t.set_stderr_truncated(trunc);
  return t;
}

std::vector<v1::LogTail> Executor::ChangedLogs() {
  std::lock_guard<std::mutex> lock(mu_);
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
  std::unique_lock<std::mutex> lock(mu_);
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
      lock.unlock();
      for (const auto& u : updates) on_update_(u);
      lock.lock();
      continue;
    }
    cv_.wait_for(lock, absl::ToChronoMilliseconds(options_.poll_interval));
  }
}

v1::Isolation DescribeIsolation(const ExecutorOptions& o) {
  v1::Isolation iso;
  iso.set_uid_per_job(o.uids != nullptr);
  const bool sandbox = o.sandbox && !o.job_init.empty();
  iso.set_pid_ns(sandbox);
  iso.set_mount_ns(sandbox);
  if (o.cgroups == nullptr) {
    iso.set_cgroup(v1::Isolation::none);
  } else {
    iso.set_cgroup(o.cgroups->version() == "v2" ? v1::Isolation::v2 : v1::Isolation::v1);
    iso.set_memory_limit(o.cgroups->memory());
    iso.set_cpuset(o.cgroups->cpuset());
    iso.set_pids_limit(o.cgroups->pids() && o.pids_max > 0);
  }
  iso.set_tree_kill(sandbox || (o.cgroups != nullptr && o.cgroups->freezer()));
  std::string user;
  if (o.uids) {
    user = absl::StrCat("per-job uid ", o.uids->first(), "-", o.uids->last());
  } else if (o.run_uid >= 0) {
    user = absl::StrCat("uid ", o.run_uid);
  } else {
    user = absl::StrCat("the agent's uid ", geteuid());
  }
  if (!o.tenant_users.empty()) {
    absl::StrAppend(&user, "; ", o.tenant_users.size(), " tenant(s) as their own accounts");
  }
  iso.set_user(user);
  return iso;
}

std::string IsolationSummary(const v1::Isolation& iso) {
  std::vector<std::string> have, lack;
  (iso.uid_per_job() ? have : lack).push_back("a uid per job");
  (iso.pid_ns() ? have : lack).push_back("PID namespace");
  (iso.mount_ns() ? have : lack).push_back("mount namespace");
  if (iso.cgroup() == v1::Isolation::v1 || iso.cgroup() == v1::Isolation::v2) {
    have.push_back(absl::StrCat("cgroup ", v1::Isolation::Cgroup_Name(iso.cgroup())));
  } else {
    lack.push_back("cgroup");
  }
  (iso.memory_limit() ? have : lack).push_back("memory limit");
  (iso.cpuset() ? have : lack).push_back("cpuset");
  (iso.pids_limit() ? have : lack).push_back("pids limit");
  (iso.tree_kill() ? have : lack).push_back("whole-tree kill");
  return absl::StrCat("jobs as ", iso.user(), "; ", absl::StrJoin(have, ", "),
                      lack.empty() ? "" : absl::StrCat("; without ", absl::StrJoin(lack, ", ")));
}

}  // namespace portolan::agent
