// SPDX-License-Identifier: Apache-2.0
#include "agent/executor/attempt_records.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
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

// The log's entries: kind (1 byte), payload length and CRC-32 of kind and
// payload (4 bytes each, little-endian as this machine writes them), payload.
constexpr char kPut = 'P';     // payload: a serialized AttemptRecord
constexpr char kRemove = 'R';  // payload: job id, NUL, attempt in decimal
constexpr size_t kHeader = 9;

// CRC-32 (IEEE 802.3, as zlib computes it) of a, then b.
uint32_t Crc32(const char* a, size_t a_len, const char* b, size_t b_len) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (const auto& [p, n] : {std::pair{a, a_len}, std::pair{b, b_len}}) {
    for (size_t i = 0; i < n; ++i) c = table[(c ^ static_cast<uint8_t>(p[i])) & 0xFF] ^ (c >> 8);
  }
  return c ^ 0xFFFFFFFFu;
}

std::string Entry(char kind, const std::string& payload) {
  const uint32_t len = static_cast<uint32_t>(payload.size());
  const uint32_t crc = Crc32(&kind, 1, payload.data(), payload.size());
  std::string e(kHeader, '\0');
  e[0] = kind;
  std::memcpy(e.data() + 1, &len, 4);
  std::memcpy(e.data() + 5, &crc, 4);
  return e + payload;
}

// The whole file; empty when it does not exist.
absl::Status ReadAll(const std::string& path, std::string* out) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? absl::OkStatus() : Errno(absl::StrCat("cannot open ", path));
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status st = Errno(absl::StrCat("cannot read ", path));
      close(fd);
      return st;
    }
    out->append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return absl::OkStatus();
}

absl::Status WriteAll(int fd, const std::string& bytes, const std::string& path) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Errno(absl::StrCat("cannot write ", path));
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace

AttemptRecords::~AttemptRecords() {
  if (fd_ >= 0) close(fd_);
}

absl::Status AttemptRecords::Init() const {
  auto made = base::MakePrivateDir(dir_, 0700);
  return made.ok() ? absl::OkStatus() : made.status();
}

absl::Status AttemptRecords::CheckFormat(const v1::AttemptRecord& r,
                                         const std::string& where) const {
  if (r.format() <= kAttemptRecordFormat) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      where, " holds attempt ", r.job().attempt(), " of job ", r.job().id(),
      " in attempt record format ", r.format(), ", written by portolan-agent ", r.agent_version(),
      "; this agent (", PORTOLAN_VERSION, ") understands format ", kAttemptRecordFormat,
      " at most. Start the newer agent again, or remove ", dir_,
      " to give up the attempts it runs (their processes are then killed as unaccounted for)"));
}

absl::Status AttemptRecords::Open(std::vector<std::string>* problems) {
  if (opened_) return absl::OkStatus();
  const std::string log = log_path();
  std::string bytes;
  if (absl::Status st = ReadAll(log, &bytes); !st.ok()) return st;
  size_t pos = 0;
  bool rewrite = false;
  while (pos < bytes.size()) {
    const size_t rest = bytes.size() - pos;
    uint32_t len = 0, crc = 0;
    if (rest >= kHeader) {
      std::memcpy(&len, bytes.data() + pos + 1, 4);
      std::memcpy(&crc, bytes.data() + pos + 5, 4);
    }
    const char kind = bytes[pos];
    const bool complete = rest >= kHeader && len <= rest - kHeader;
    const bool intact = complete && (kind == kPut || kind == kRemove) &&
                        Crc32(bytes.data() + pos, 1, bytes.data() + pos + kHeader, len) == crc;
    if (!intact) {
      if (!complete || pos + kHeader + len == bytes.size()) {
        // A torn last entry: the write the process died in. Its record
        // keeps its previous state; the log is cut back before it.
        if (truncate(log.c_str(), static_cast<off_t>(pos)) != 0)
          return Errno(absl::StrCat("cannot truncate ", log));
      } else {
        problems->push_back(absl::StrCat(log, ": the entry at byte ", pos,
                                         " is damaged; it and the entries after it are ignored"));
        rewrite = true;
      }
      break;
    }
    const std::string payload = bytes.substr(pos + kHeader, len);
    pos += kHeader + len;
    ++log_entries_;
    if (kind == kRemove) {
      const size_t nul = payload.find('\0');
      uint32_t attempt = 0;
      if (nul != std::string::npos && absl::SimpleAtoi(payload.substr(nul + 1), &attempt))
        live_.erase({payload.substr(0, nul), attempt});
      continue;
    }
    v1::AttemptRecord r;
    if (!r.ParseFromString(payload) || r.job().id().empty() || r.job().attempt() == 0) {
      problems->push_back(absl::StrCat(log, ": the entry at byte ", pos - kHeader - len,
                                       " is not a readable attempt record"));
      continue;
    }
    if (absl::Status st = CheckFormat(r, log); !st.ok()) return st;
    live_[{r.job().id(), r.job().attempt()}] = payload;
  }
  // Records as files of their own (agents before 0.9) join the log.
  std::vector<std::string> legacy;
  if (DIR* d = opendir(dir_.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n.size() > 3 && n.ends_with(".pb")) legacy.push_back(n);
      if (n.ends_with(".pb.tmp")) unlink((dir_ + "/" + n).c_str());  // a write a crash cut short
    }
    closedir(d);
  } else if (errno != ENOENT) {
    return Errno(absl::StrCat("cannot read ", dir_));
  }
  std::sort(legacy.begin(), legacy.end());
  for (const std::string& n : legacy) {
    const std::string path = dir_ + "/" + n;
    std::string file = base::ReadSmallFile(path);
    v1::AttemptRecord r;
    if (file.empty() || !r.ParseFromString(file) || r.job().id().empty() ||
        r.job().attempt() == 0) {
      problems->push_back(absl::StrCat(path, ": not a readable attempt record"));
      continue;
    }
    if (absl::Status st = CheckFormat(r, path); !st.ok()) return st;
    live_[{r.job().id(), r.job().attempt()}] = std::move(file);
  }
  opened_ = true;
  if (rewrite || !legacy.empty()) {
    if (absl::Status st = Compact(); !st.ok()) return st;
    for (const std::string& n : legacy) unlink((dir_ + "/" + n).c_str());
    return absl::OkStatus();
  }
  fd_ = open(log.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) return Errno(absl::StrCat("cannot open ", log));
  return absl::OkStatus();
}

absl::Status AttemptRecords::Append(char kind, const std::string& payload) {
  const std::string entry = Entry(kind, payload);
  const off_t before = lseek(fd_, 0, SEEK_END);
  if (absl::Status st = WriteAll(fd_, entry, log_path()); !st.ok()) {
    // Disk full or an I/O error: no half entry may stay before later ones.
    if (before >= 0) (void)!ftruncate(fd_, before);
    return st;
  }
  ++log_entries_;
  return absl::OkStatus();
}

absl::Status AttemptRecords::MaybeCompact() {
  if (log_entries_ >= 1024 && log_entries_ >= 4 * live_.size()) return Compact();
  return absl::OkStatus();
}

absl::Status AttemptRecords::Compact() {
  const std::string log = log_path();
  const std::string tmp = log + ".tmp";
  std::string all;
  for (const auto& [key, record] : live_) all += Entry(kPut, record);
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Errno(absl::StrCat("cannot create ", tmp));
  absl::Status st = WriteAll(fd, all, tmp);
  if (close(fd) != 0 && st.ok()) st = Errno(absl::StrCat("cannot write ", tmp));
  if (st.ok() && rename(tmp.c_str(), log.c_str()) != 0)
    st = Errno(absl::StrCat("cannot rename ", tmp));
  if (!st.ok()) {
    unlink(tmp.c_str());
    return st;
  }
  if (fd_ >= 0) close(fd_);
  fd_ = open(log.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd_ < 0) return Errno(absl::StrCat("cannot open ", log));
  log_entries_ = live_.size();
  return absl::OkStatus();
}

absl::Status AttemptRecords::Put(const v1::AttemptRecord& record) {
  if (absl::Status st = Open(&load_problems_); !st.ok()) return st;
  std::string bytes;
  if (!record.SerializeToString(&bytes)) {
    return absl::InternalError(absl::StrCat("cannot encode the record of attempt ",
                                            record.job().attempt(), " of ", record.job().id()));
  }
  if (absl::Status st = Append(kPut, bytes); !st.ok()) return st;
  live_[{record.job().id(), record.job().attempt()}] = std::move(bytes);
  return MaybeCompact();
}

absl::Status AttemptRecords::Remove(const std::string& job_id, uint32_t attempt) {
  if (absl::Status st = Open(&load_problems_); !st.ok()) return st;
  if (!live_.contains({job_id, attempt})) return absl::OkStatus();
  if (absl::Status st = Append(kRemove, absl::StrCat(job_id, std::string(1, '\0'), attempt));
      !st.ok()) {
    return st;
  }
  live_.erase({job_id, attempt});
  return MaybeCompact();
}

absl::Status AttemptRecords::Load(std::vector<v1::AttemptRecord>* out,
                                  std::vector<std::string>* problems) {
  if (absl::Status st = Open(&load_problems_); !st.ok()) return st;
  problems->insert(problems->end(), load_problems_.begin(), load_problems_.end());
  load_problems_.clear();
  for (const auto& [key, bytes] : live_) {
    v1::AttemptRecord r;
    r.ParseFromString(bytes);  // parsed when it was read or put
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
