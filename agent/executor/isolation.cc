// SPDX-License-Identifier: Apache-2.0
#include "portolan/executor/isolation.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/executor/process_handles.h"

namespace portolan::executor {

UidPool::~UidPool() {
  if (lock_fd_ >= 0) {
    unlink(lock_path_.c_str());
    close(lock_fd_);
  }
}

absl::StatusOr<std::unique_ptr<UidPool>> UidPool::Create(uid_t first, uid_t last,
                                                         const std::string& lock_dir) {
  if (first == 0 || last < first) {
    return absl::InvalidArgumentError(
        absl::StrCat("uid range ", first, "-", last, " is empty or includes root"));
  }
  // Accounts and groups NSS can list (local files; directories that allow
  // enumeration). A job must not get the identity of someone's files.
  setpwent();
  while (struct passwd* pw = getpwent()) {
    if (pw->pw_uid >= first && pw->pw_uid <= last) {
      std::string name = pw->pw_name;
      uid_t uid = pw->pw_uid;
      endpwent();
      return absl::FailedPreconditionError(absl::StrCat("uid range ", first, "-", last,
                                                        " includes user ", name, " (uid ", uid,
                                                        "); choose a range no account uses"));
    }
  }
  endpwent();
  setgrent();
  while (struct group* gr = getgrent()) {
    if (gr->gr_gid >= first && gr->gr_gid <= last) {
      std::string name = gr->gr_name;
      gid_t gid = gr->gr_gid;
      endgrent();
      return absl::FailedPreconditionError(absl::StrCat("uid range ", first, "-", last,
                                                        " includes group ", name, " (gid ", gid,
                                                        "); job gids equal their uids"));
    }
  }
  endgrent();
  std::unique_ptr<UidPool> pool(new UidPool(first, last));
  if (lock_dir.empty()) return pool;
  // Claim the range on this host: our lock file, held while we run, and
  // no live lock of another agent overlapping it.
  std::error_code ec;
  std::filesystem::create_directories(lock_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create ", lock_dir, ": ", ec.message()));
  }
  pool->lock_path_ = absl::StrCat(lock_dir, "/uids-", first, "-", last);
  pool->lock_fd_ = open(pool->lock_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (pool->lock_fd_ < 0 || flock(pool->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (pool->lock_fd_ >= 0) close(pool->lock_fd_);
    pool->lock_fd_ = -1;
    return absl::FailedPreconditionError(
        absl::StrCat("uid range ", first, "-", last, " is held by another agent on this host (",
                     pool->lock_path_, ": ", err == EWOULDBLOCK ? "locked" : strerror(err),
                     "); give each agent its own --job-uid-range"));
  }
  for (const auto& entry : std::filesystem::directory_iterator(lock_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (entry.path() == pool->lock_path_ || name.rfind("uids-", 0) != 0) continue;
    auto range = ParseUidRange(name.substr(5));
    if (!range.ok() || range->second < first || range->first > last) continue;
    int fd = open(entry.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    const bool held = flock(fd, LOCK_SH | LOCK_NB) != 0;
    close(fd);
    if (held) {
      return absl::FailedPreconditionError(
          absl::StrCat("uid range ", first, "-", last, " overlaps ", range->first, "-",
                       range->second, ", held by another agent on this host (",
                       entry.path().string(), "); give each agent its own --job-uid-range"));
    }
    std::filesystem::remove(entry.path(), ec);  // left by an agent that is gone
  }
  return pool;
}

std::optional<uid_t> UidPool::Acquire() {
  absl::MutexLock lock(&mu_);
  // Never-used uids first, so that a uid is reused as late as possible.
  while (next_ <= last_ && next_ >= first_) {
    const uid_t uid = next_;
    next_ = next_ == last_ ? first_ - 1 : next_ + 1;  // first_ - 1: all handed out once
    if (held_.insert(uid).second) return uid;
  }
  while (!released_.empty()) {
    const uid_t uid = released_.front();
    released_.pop_front();
    if (held_.insert(uid).second) return uid;
  }
  return std::nullopt;
}

void UidPool::Release(uid_t uid) {
  absl::MutexLock lock(&mu_);
  if (held_.erase(uid) > 0) released_.push_back(uid);
}

bool UidPool::Claim(uid_t uid) {
  if (!Contains(uid)) return false;
  absl::MutexLock lock(&mu_);
  return held_.insert(uid).second;
}

bool UidPool::Held(uid_t uid) const {
  absl::MutexLock lock(&mu_);
  return held_.contains(uid);
}

size_t UidPool::in_use() const {
  absl::MutexLock lock(&mu_);
  return held_.size();
}

absl::StatusOr<std::pair<uid_t, uid_t>> ParseUidRange(const std::string& text) {
  std::pair<std::string, std::string> parts = absl::StrSplit(text, '-');
  uint32_t a = 0, b = 0;
  if (!absl::SimpleAtoi(parts.first, &a) || !absl::SimpleAtoi(parts.second, &b) || a == 0 ||
      b < a) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", text, "': expected FIRST-LAST with 0 < FIRST <= LAST, e.g. 200000-265535"));
  }
  return std::make_pair(static_cast<uid_t>(a), static_cast<uid_t>(b));
}

namespace {

// The helper of KillAllOfUid. Raw syscalls only: it may share the agent's
// memory and runs with every signal blocked. kill(-1) as the uid reaches
// exactly its processes (and not this helper).
[[noreturn]] void KillAsUid(uid_t uid) {
  if (syscall(SYS_setresgid, uid, uid, uid) != 0 || syscall(SYS_setresuid, uid, uid, uid) != 0)
    _exit(1);
  for (int i = 0; i < 100; ++i) {
    if (kill(-1, SIGKILL) != 0 && errno == ESRCH) _exit(0);
  }
  _exit(0);
}

[[maybe_unused]] int KillAsUidMain(void* uid) { KillAsUid(*static_cast<const uid_t*>(uid)); }

}  // namespace

void KillAllOfUid(uid_t uid) {
  if (uid == 0) return;
#if defined(__SANITIZE_ADDRESS__)
  const pid_t pid = fork();
  if (pid == 0) KillAsUid(uid);
#else
  // As the executor starts a job's child (spawn.cc, StartChild): on a stack
  // of its own in this process's memory, this thread waiting until it exits.
  // A fork copied the agent's page tables at every end of an unsandboxed
  // job, which made it the largest part of the agent's time there
  // (docs/performance.md).
  const pid_t pid = CloneSharingMemory(KillAsUidMain, &uid, SIGCHLD, 64 * 1024);
#endif
  if (pid > 0) {
    while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
}

namespace {

// Calls fn(pid, uid) for each process of `proc` whose real uid is in [first, last].
template <typename Fn>
void ScanUidRange(const std::string& proc, uid_t first, uid_t last, Fn fn) {
  DIR* d = opendir(proc.c_str());
  if (d == nullptr) return;
  while (dirent* e = readdir(d)) {
    int pid = 0;
    if (!absl::SimpleAtoi(e->d_name, &pid) || pid <= 0) continue;
    struct stat st;
    if (stat(absl::StrCat(proc, "/", e->d_name).c_str(), &st) != 0) continue;
    if (st.st_uid >= first && st.st_uid <= last) fn(static_cast<pid_t>(pid), st.st_uid);
  }
  closedir(d);
}

}  // namespace

std::set<uid_t> UidsInUse(const std::string& proc, uid_t first, uid_t last) {
  std::set<uid_t> out;
  ScanUidRange(proc, first, last, [&](pid_t, uid_t uid) { out.insert(uid); });
  return out;
}

std::vector<pid_t> ProcessesInUidRange(const std::string& proc, uid_t first, uid_t last) {
  std::vector<pid_t> out;
  ScanUidRange(proc, first, last, [&](pid_t pid, uid_t) { out.push_back(pid); });
  return out;
}

SandboxSupport ProbeSandbox() {
  SandboxSupport out;
  if (geteuid() != 0) {
    out.why = "the agent does not run as root";
    return out;
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    out.why = strerror(errno);
    return out;
  }
  const long pid =
      syscall(SYS_clone, CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD,
              nullptr, nullptr, nullptr, 0);
  if (pid == 0) {
    // What a job's sandbox does: private mounts, its own /proc and /tmp.
    int step = 0;
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      step = 1;
    } else if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
      step = 2;
    } else if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") != 0) {
      step = 3;
    } else if (getpid() != 1) {
      step = 4;
    }
    int report[2] = {step, errno};
    if (step != 0) (void)!write(fds[1], report, sizeof report);
    _exit(step);
  }
  const int clone_errno = errno;
  close(fds[1]);
  if (pid < 0) {
    close(fds[0]);
    out.why =
        absl::StrCat("clone with new PID, mount, IPC and UTS namespaces: ", strerror(clone_errno));
    return out;
  }
  int report[2] = {0, 0};
  const ssize_t n = read(fds[0], report, sizeof report);
  close(fds[0]);
  int status = 0;
  while (waitpid(static_cast<pid_t>(pid), &status, 0) < 0 && errno == EINTR) {
  }
  if (n == sizeof report) {
    static const char* kWhat[] = {"", "making mounts private", "mounting a private /proc",
                                  "mounting a private /tmp", "becoming PID 1"};
    out.why = absl::StrCat(kWhat[report[0] < 5 ? report[0] : 0], ": ", strerror(report[1]));
    return out;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    out.why = "the probe process failed";
    return out;
  }
  out.namespaces = true;
  return out;
}

std::string FindJobInit() {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  for (const std::filesystem::path& p :
       {self.parent_path() / "portolan-job-init",
        self.parent_path().parent_path() / "lib" / "portolan" / "portolan-job-init"}) {
    if (access(p.c_str(), X_OK) == 0) return p.string();
  }
  return "";
}

std::vector<GpuNode> NvidiaDeviceNodes(const std::vector<v1::Gpu>& gpus,
                                       const std::string& proc_dir, const std::string& dev_dir) {
  std::vector<GpuNode> out;
  for (const v1::Gpu& g : gpus) {
    if (g.pci_bus_id().empty()) continue;
    std::ifstream info(absl::StrCat(proc_dir, "/", g.pci_bus_id(), "/information"));
    std::string line;
    while (std::getline(info, line)) {
      if (line.rfind("Device Minor:", 0) != 0) continue;
      int minor = -1;
      if (absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(13)), &minor) && minor >= 0)
        out.push_back({g.pci_bus_id(), g.name(), absl::StrCat(dev_dir, "/nvidia", minor)});
      break;
    }
  }
  return out;
}

std::string DescribeGpuNodes(const std::vector<GpuNode>& nodes) {
  std::vector<std::string> out;
  for (const GpuNode& n : nodes) out.push_back(absl::StrCat(n.path, " (", n.bus_id, ")"));
  return absl::StrJoin(out, ", ");
}

absl::StatusOr<std::string> MakeDenySource(const std::string& path) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0);
  if (fd < 0 || fchmod(fd, 0) != 0) {
    const int err = errno;
    if (fd >= 0) close(fd);
    return absl::InternalError(absl::StrCat("cannot make ", path, ": ", strerror(err)));
  }
  close(fd);
  return path;
}

}  // namespace portolan::executor
