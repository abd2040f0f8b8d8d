#include "portolan/executor.h"

#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
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

std::string ReadSmallFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// set_mempolicy(2) mode; <numaif.h> comes with libnuma, which we do not need.
constexpr int kMpolBind = 2;

// Child-side failure report: which step failed, and errno.
struct ChildError {
  int step;  // 1 affinity, 2 working directory / stdio, 3 exec
  int err;
};

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

}  // namespace

Executor::Executor(ExecutorOptions options, Clock* clock, UpdateFn on_update)
    : options_(std::move(options)), clock_(clock), on_update_(std::move(on_update)) {
  monitor_ = std::thread([this] { Monitor(); });
}

Executor::~Executor() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    for (auto& [key, p] : procs_) {
      if (!p.finished && p.pid > 0) kill(-p.pid, SIGKILL);
    }
  }
  cv_.notify_all();
  monitor_.join();
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [key, p] : procs_) {
    if (!p.finished && p.pid > 0) waitpid(p.pid, nullptr, 0);
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
  auto fail = [&](const std::string& msg) {
    v1::JobUpdate u = Failed(job, msg);
    {
      std::lock_guard<std::mutex> lock(mu_);
      Proc& p = procs_[key];
      p.finished = true;
      p.final_state = v1::Job::failed;
      p.exit_code = 127;
    }
    start_errors_.fetch_add(1);
    spdlog::warn("job {} attempt {} cannot start: {}", job.id(), job.attempt(), msg);
    on_update_(u);
    return true;
  };

  std::error_code ec;
  std::filesystem::create_directories(dir + "/work", ec);
  if (ec) return fail(absl::StrCat("cannot create working directory ", dir, ": ", ec.message()));
  if (options_.run_uid >= 0) {
    // The job's own directory, private to its user: jobs never share one.
    if (chown((dir + "/work").c_str(), options_.run_uid, options_.run_gid) != 0 ||
        chmod((dir + "/work").c_str(), 0700) != 0) {
      return fail(absl::StrCat("cannot hand ", dir, "/work to uid ", options_.run_uid, ": ",
                               strerror(errno)));
    }
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
  const int run_uid = options_.run_uid;
  const int run_gid = options_.run_gid;
  const bool bind_cpu = !bind_pus.empty();
  const bool bind_mem = bind_cpu && !bind_nodes.empty();

  // cgroup v2: one cgroup per attempt with the allocation as its limits.
  std::string cgroup;
  int cgroup_procs_fd = -1;
  if (!options_.cgroup_root.empty()) {
    cgroup = absl::StrCat(options_.cgroup_root, "/", job.id(), "-", job.attempt());
    std::error_code mk;
    std::filesystem::create_directories(cgroup, mk);
    bool ok = !mk;
    if (ok && !bind_pus.empty())
      ok = WriteFile(cgroup + "/cpuset.cpus", FormatIdList(bind_pus) + "\n");
    if (ok && !bind_nodes.empty())
      ok = WriteFile(cgroup + "/cpuset.mems", FormatIdList(bind_nodes) + "\n");
    if (ok && job.resources().memory_mb() > 0) {
      ok = WriteFile(cgroup + "/memory.max",
                     absl::StrCat(int64_t{job.resources().memory_mb()} << 20, "\n"));
    }
    if (ok)
      cgroup_procs_fd =
          open((cgroup + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC | O_CREAT, 0644);
    if (!ok || cgroup_procs_fd < 0) {
      std::string why = mk ? mk.message() : strerror(errno);
      return fail(absl::StrCat("cannot set up cgroup ", cgroup, ": ", why));
    }
    absl::StrAppend(&binding, "; cgroup ", cgroup, " (memory.max ", job.resources().memory_mb(),
                    " MiB)");
  }
  if (!env.contains("HOME")) env["HOME"] = dir + "/work";

  const std::string program = Resolve(job.command(0), env["PATH"]);
  if (program.empty()) {
    return fail(absl::StrCat("executable '", job.command(0), "' not found in PATH=", env["PATH"]));
  }

  std::vector<std::string> env_strings;
  for (const auto& [k, v] : env) env_strings.push_back(absl::StrCat(k, "=", v));
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args(job.command().begin(), job.command().end());
  std::vector<char*> argv;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  const std::string workdir = dir + "/work";

  int out_fd = open((dir + "/stdout.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  int err_fd = open((dir + "/stderr.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int pipe_fds[2] = {-1, -1};
  if (out_fd < 0 || err_fd < 0 || null_fd < 0 || pipe2(pipe_fds, O_CLOEXEC) != 0) {
    std::string err = strerror(errno);
    for (int fd : {out_fd, err_fd, null_fd, pipe_fds[0], pipe_fds[1]})
      if (fd >= 0) close(fd);
    return fail(absl::StrCat("cannot set up output files in ", dir, ": ", err));
  }

  pid_t pid = fork();
  if (pid == 0) {
    // Child: async-signal-safe calls only.
    setpgid(0, 0);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, nullptr);
    signal(SIGPIPE, SIG_DFL);
    ChildError ce{0, 0};
    if (cgroup_procs_fd >= 0 && write(cgroup_procs_fd, "0\n", 2) != 2) {
      ce = {4, errno};
    } else if (bind_cpu && sched_setaffinity(0, sizeof cpus, &cpus) != 0) {
      ce = {1, errno};
    } else {
      // Memory binding is best effort: containers often forbid it.
      if (bind_mem) (void)syscall(SYS_set_mempolicy, kMpolBind, nodemask.data(), max_node + 2);
      // Drop to the job user last, after what needs the agent's privileges.
      if (run_uid >= 0 &&
          (setgroups(0, nullptr) != 0 || setgid(run_gid) != 0 || setuid(run_uid) != 0)) {
        ce = {5, errno};
        (void)!write(pipe_fds[1], &ce, sizeof ce);
        _exit(127);
      }
      if (chdir(workdir.c_str()) != 0 || dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 ||
          dup2(err_fd, 2) < 0) {
        ce = {2, errno};
      } else {
        execve(program.c_str(), argv.data(), envp.data());
        ce = {3, errno};
      }
    }
    (void)!write(pipe_fds[1], &ce, sizeof ce);
    _exit(127);
  }
  int fork_errno = errno;
  if (cgroup_procs_fd >= 0) close(cgroup_procs_fd);
  close(out_fd);
  close(err_fd);
  close(null_fd);
  close(pipe_fds[1]);
  if (pid < 0) {
    close(pipe_fds[0]);
    return fail(absl::StrCat("fork failed: ", strerror(fork_errno)));
  }
  setpgid(pid, pid);  // also in the parent: no window where kill(-pid) misses
  ChildError ce{0, 0};
  ssize_t n;
  do {
    n = read(pipe_fds[0], &ce, sizeof ce);
  } while (n < 0 && errno == EINTR);
  close(pipe_fds[0]);
  if (n > 0) {
    waitpid(pid, nullptr, 0);
    switch (ce.step) {
      case 1:
        return fail(
            absl::StrCat("cannot bind to PUs ", FormatIdList(bind_pus), ": ", strerror(ce.err)));
      case 2:
        return fail(
            absl::StrCat("cannot enter working directory ", workdir, ": ", strerror(ce.err)));
      case 4:
        return fail(absl::StrCat("cannot join cgroup ", cgroup, ": ", strerror(ce.err)));
      case 5:
        return fail(absl::StrCat("cannot switch to uid ", run_uid, " gid ", run_gid, ": ",
                                 strerror(ce.err)));
      default:
        return fail(absl::StrCat("cannot execute '", program, "': ", strerror(ce.err)));
    }
  }

  const absl::Time now = clock_->Now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    Proc& p = procs_[key];
    p.pid = pid;
    p.started = now;
    p.cgroup = cgroup;
    if (job.max_runtime_s() > 0) p.deadline = now + absl::Seconds(job.max_runtime_s());
  }
  spdlog::info("job {} attempt {} started: pid {} in {}", job.id(), job.attempt(), pid, workdir);
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

void Executor::Terminate(Proc& p, const std::string& why) {
  if (p.finished || p.pid <= 0 || p.kill_at != absl::InfiniteFuture()) return;
  spdlog::info("job {} attempt {}: {}; sending SIGTERM to process group {}", p.job.id(),
               p.job.attempt(), why, p.pid);
  kill(-p.pid, SIGTERM);
  p.kill_at = clock_->Now() + options_.kill_grace;
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
      Terminate(it->second, absl::StrCat("cancel: ", reason));
    }
  }
  if (unknown) on_update_(*unknown);
  cv_.notify_all();
}

void Executor::Forget(const std::string& job_id, uint32_t attempt) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = procs_.find({job_id, attempt});
  if (it != procs_.end() && it->second.finished) procs_.erase(it);
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
      siginfo_t info{};
      // WNOWAIT: see the exit but keep the zombie, so the process group id
      // cannot be reused while we clean up what the job left behind.
      if (waitid(P_PID, p.pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == p.pid) {
        kill(-p.pid, SIGKILL);  // stray children of the job
        int status = 0;
        waitpid(p.pid, &status, 0);
        p.finished = true;
        v1::JobUpdate u;
        u.set_job_id(key.first);
        u.set_attempt(key.second);
        *u.mutable_time() = ToProto(now);
        const absl::Duration ran = absl::Trunc(now - p.started, absl::Milliseconds(1));
        const std::string runtime =
            ran < absl::Milliseconds(1) ? "<1ms" : absl::FormatDuration(ran);
        if (WIFEXITED(status)) {
          u.set_exit_code(WEXITSTATUS(status));
        } else if (WIFSIGNALED(status)) {
          u.set_signal(WTERMSIG(status));
          u.set_exit_code(128 + WTERMSIG(status));
        }
        bool oom = false;
        if (!p.cgroup.empty()) {
          // memory.events: "oom_kill N" counts kills by the OOM killer in this cgroup.
          std::string events = ReadSmallFile(p.cgroup + "/memory.events");
          size_t at = events.find("oom_kill ");
          oom = at != std::string::npos && std::atoi(events.c_str() + at + 9) > 0;
          rmdir(p.cgroup.c_str());  // empty now: every process of the job is gone
        }
        if (p.cancel_requested) {
          u.set_state(v1::Job::cancelled);
          u.set_message(absl::StrCat("cancelled (", p.cancel_reason, ") after ", runtime));
        } else if (p.timed_out) {
          u.set_state(v1::Job::failed);
          u.set_message(absl::StrCat("exceeded max_runtime_s=", p.job.max_runtime_s(),
                                     "; stopped after ", runtime));
        } else if (oom) {
          u.set_state(v1::Job::failed);
          u.set_message(absl::StrCat("killed by the OOM killer: the job exceeded memory.max (",
                                     p.job.resources().memory_mb(), " MiB) after ", runtime));
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
        p.final_state = u.state();
        p.exit_code = u.exit_code();
        *u.mutable_logs() = Tail(p);
        spdlog::info("job {} attempt {}: {}", key.first, key.second, u.message());
        updates.push_back(std::move(u));
        continue;
      }
      if (now >= p.deadline && !p.timed_out && !p.cancel_requested) {
        p.timed_out = true;
        Terminate(p, absl::StrCat("max_runtime_s=", p.job.max_runtime_s(), " reached"));
      }
      if (now >= p.kill_at) {
        spdlog::warn("job {} attempt {} still running {} after SIGTERM; sending SIGKILL", key.first,
                     key.second, absl::FormatDuration(options_.kill_grace));
        kill(-p.pid, SIGKILL);
        p.kill_at = absl::InfiniteFuture();
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

absl::StatusOr<std::string> PrepareCgroupRoot(const std::string& cgroup_fs,
                                              const std::string& name) {
  const std::string controllers = ReadSmallFile(cgroup_fs + "/cgroup.controllers");
  if (controllers.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(cgroup_fs, " is not a cgroup v2 hierarchy"));
  }
  for (const char* c : {"cpuset", "memory"}) {
    if (controllers.find(c) == std::string::npos) {
      return absl::FailedPreconditionError(
          absl::StrCat("the ", c, " controller is not available in ", cgroup_fs,
                       " (cgroup.controllers: ", controllers.substr(0, 80), ")"));
    }
  }
  const std::string root = cgroup_fs + "/" + name;
  std::error_code ec;
  std::filesystem::create_directories(root, ec);
  if (ec)
    return absl::FailedPreconditionError(absl::StrCat("cannot create ", root, ": ", ec.message()));
  for (const std::string& dir : {cgroup_fs, root}) {
    if (!WriteFile(dir + "/cgroup.subtree_control", "+cpuset +memory\n")) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot enable cpuset and memory in ", dir,
                       "/cgroup.subtree_control: ", strerror(errno)));
    }
  }
  return root;
}

}  // namespace portolan::agent
