#include "agent/executor/attempt_records.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "portolan/base/files.h"

namespace portolan::executor {
namespace {

absl::Status Errno(const std::string& what) {
  return absl::FailedPreconditionError(absl::StrCat(what, ": ", strerror(errno)));
}

}  // namespace

std::string AttemptRecords::Path(const std::string& job_id, uint32_t attempt) const {
  return absl::StrCat(dir_, "/", job_id, "-", attempt, ".pb");
}

absl::Status AttemptRecords::Init() const {
  auto made = base::MakePrivateDir(dir_, 0700);
  return made.ok() ? absl::OkStatus() : made.status();
}

absl::Status AttemptRecords::Put(const v1::AttemptRecord& record) const {
  const std::string path = Path(record.job().id(), record.job().attempt());
  const std::string tmp = path + ".tmp";
  std::string bytes;
  if (!record.SerializeToString(&bytes)) {
    return absl::InternalError(absl::StrCat("cannot encode the record of ", path));
  }
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Errno(absl::StrCat("cannot create ", tmp));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::Status st = Errno(absl::StrCat("cannot write ", tmp));
      close(fd);
      unlink(tmp.c_str());
      return st;
    }
    done += static_cast<size_t>(n);
  }
  if (close(fd) != 0) {
    absl::Status st = Errno(absl::StrCat("cannot write ", tmp));
    unlink(tmp.c_str());
    return st;
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    absl::Status st = Errno(absl::StrCat("cannot rename ", tmp));
    unlink(tmp.c_str());
    return st;
  }
  return absl::OkStatus();
}

absl::Status AttemptRecords::Remove(const std::string& job_id, uint32_t attempt) const {
  const std::string path = Path(job_id, attempt);
  if (unlink(path.c_str()) != 0 && errno != ENOENT)
    return Errno(absl::StrCat("cannot remove ", path));
  return absl::OkStatus();
}

absl::Status AttemptRecords::Load(std::vector<v1::AttemptRecord>* out,
                                  std::vector<std::string>* problems) const {
  DIR* d = opendir(dir_.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return absl::OkStatus();
    return Errno(absl::StrCat("cannot read ", dir_));
  }
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > 3 && n.ends_with(".pb")) names.push_back(n);
    if (n.ends_with(".pb.tmp")) unlink((dir_ + "/" + n).c_str());  // a write a crash cut short
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) {
    const std::string path = dir_ + "/" + n;
    std::string bytes = base::ReadSmallFile(path);
    v1::AttemptRecord r;
    if (bytes.empty() || !r.ParseFromString(bytes) || r.job().id().empty() ||
        r.job().attempt() == 0) {
      problems->push_back(absl::StrCat(path, ": not a readable attempt record"));
      continue;
    }
    if (r.format() > kAttemptRecordFormat) {
      return absl::FailedPreconditionError(absl::StrCat(
          path, " is attempt record format ", r.format(), ", written by portolan-agent ",
          r.agent_version(), "; this agent (", PORTOLAN_VERSION, ") understands format ",
          kAttemptRecordFormat, " at most. Start the newer agent again, or remove ", dir_,
          " to give up the attempts it runs (their processes are then killed as unaccounted "
          "for)"));
    }
    out->push_back(std::move(r));
  }
  return absl::OkStatus();
}

std::string BootId() {
  return std::string(
      absl::StripAsciiWhitespace(base::ReadSmallFile("/proc/sys/kernel/random/boot_id")));
}

std::optional<uint64_t> ProcessStartTicks(pid_t pid, const std::string& proc) {
  if (pid <= 0) return std::nullopt;
  const std::string stat = base::ReadSmallFile(absl::StrCat(proc, "/", pid, "/stat"));
  // "pid (comm) state ppid ..." where comm may hold spaces and ')'.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::vector<absl::string_view> f =
      absl::StrSplit(absl::string_view(stat).substr(close + 1), ' ', absl::SkipEmpty());
  // f[0] is field 3 (state); starttime is field 22.
  uint64_t ticks = 0;
  if (f.size() < 20 || !absl::SimpleAtoi(f[19], &ticks)) return std::nullopt;
  return ticks;
}

std::vector<pid_t> ProcessesWithFileOpen(const std::string& path, const std::string& proc) {
  std::vector<pid_t> out;
  struct stat target;
  if (stat(path.c_str(), &target) != 0) return out;
  DIR* procs = opendir(proc.c_str());
  if (procs == nullptr) return out;
  while (const dirent* e = readdir(procs)) {
    pid_t pid = 0;
    if (!absl::SimpleAtoi(e->d_name, &pid) || pid <= 0) continue;
    const std::string fds = absl::StrCat(proc, "/", pid, "/fd");
    DIR* d = opendir(fds.c_str());
    if (d == nullptr) continue;  // gone, or not ours to look at
    while (const dirent* f = readdir(d)) {
      if (f->d_name[0] == '.') continue;
      struct stat st;
      if (stat(absl::StrCat(fds, "/", f->d_name).c_str(), &st) == 0 && st.st_dev == target.st_dev &&
          st.st_ino == target.st_ino) {
        out.push_back(pid);
        break;
      }
    }
    closedir(d);
  }
  closedir(procs);
  return out;
}

std::optional<int> ReadExitStatus(const std::string& path) {
  const std::string text(absl::StripAsciiWhitespace(base::ReadSmallFile(path)));
  int status = 0;
  if (text.empty() || !absl::SimpleAtoi(text, &status)) return std::nullopt;
  return status;
}

}  // namespace portolan::executor
