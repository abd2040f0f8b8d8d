// SPDX-License-Identifier: Apache-2.0
#include "portolan/executor/cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/executor/cgroup_files.h"
#include "portolan/base/files.h"
#include "portolan/base/strings.h"

namespace portolan::executor {
namespace cgroup_files {

std::string Read(const std::string& path) { return base::ReadSmallFile(path); }

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

absl::Status Write(const std::string& path, const std::string& value) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC | O_CREAT, 0644);
  if (fd < 0) {
    return absl::FailedPreconditionError(absl::StrCat("cannot open ", path, ": ", strerror(errno)));
  }
  const ssize_t n = write(fd, value.data(), value.size());
  const int err = errno;
  close(fd);
  if (n != static_cast<ssize_t>(value.size())) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot write '", absl::StripTrailingAsciiWhitespace(value), "' to ", path,
                     ": ", n < 0 ? strerror(err) : "short write"));
  }
  return absl::OkStatus();
}

absl::Status MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0755) == 0 || errno == EEXIST) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("cannot create ", path, ": ", strerror(errno)));
}

uint64_t KeyedValue(const std::string& text, absl::string_view key) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(line, ' ');
    uint64_t v = 0;
    if (kv.first == key && absl::SimpleAtoi(kv.second, &v)) return v;
  }
  return 0;
}

std::vector<pid_t> Pids(const std::string& procs_file) {
  std::vector<pid_t> out;
  for (absl::string_view line : absl::StrSplit(Read(procs_file), '\n', absl::SkipEmpty())) {
    int pid = 0;
    if (absl::SimpleAtoi(line, &pid) && pid > 0) out.push_back(pid);
  }
  return out;
}

void FreezeKillThaw(const std::string& dir, const std::string& state_file,
                    const std::string& frozen, const std::string& thawed,
                    const std::string& procs_file) {
  const bool froze = Write(dir + "/" + state_file, frozen + "\n").ok();
  if (froze && state_file == "freezer.state") {
    // v1 freezing is asynchronous: FREEZING until every task stopped.
    for (int i = 0; i < 200; ++i) {
      if (absl::StripAsciiWhitespace(Read(dir + "/freezer.state")) == "FROZEN") break;
      usleep(1000);
    }
  }
  for (int round = 0; round < (froze ? 1 : 20); ++round) {
    std::vector<pid_t> pids = Pids(procs_file);
    if (pids.empty()) break;
    for (pid_t p : pids) kill(p, SIGKILL);
  }
  if (froze) (void)Write(dir + "/" + state_file, thawed + "\n");
}

std::set<std::string> Children(const std::string& dir) {
  std::set<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return names;
  while (dirent* e = readdir(d)) {
    if (e->d_type == DT_DIR && e->d_name[0] != '.') names.insert(e->d_name);
  }
  closedir(d);
  return names;
}

bool ValidName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos;
}

std::vector<Mount> ReadMounts(const std::string& file) {
  std::vector<Mount> out;
  for (absl::string_view line : absl::StrSplit(Read(file), '\n', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    if (f.size() < 4) continue;
    Mount m;
    // Spaces and other odd characters in mount points are octal escapes.
    for (size_t i = 0; i < f[1].size(); ++i) {
      if (f[1][i] == '\\' && i + 3 < f[1].size()) {
        m.path.push_back(static_cast<char>(std::stoi(f[1].substr(i + 1, 3), nullptr, 8)));
        i += 3;
      } else {
        m.path.push_back(f[1][i]);
      }
    }
    m.type = f[2];
    for (absl::string_view o : absl::StrSplit(f[3], ',')) m.options.emplace(o);
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace cgroup_files

namespace {

using namespace cgroup_files;  // NOLINT(build/namespaces): this module's own helpers

// ---------------------------------------------------------------- cgroup v2

class V2Cgroup : public JobCgroup {
 public:
  V2Cgroup(std::string dir, std::string label, int join_fd) : dir_(std::move(dir)), label_(label) {
    if (join_fd >= 0) fds_.push_back(join_fd);
  }
  ~V2Cgroup() override { CloseJoinFds(); }
  const std::vector<int>& join_fds() const override { return fds_; }
  void CloseJoinFds() override {
    for (int fd : fds_) close(fd);
    fds_.clear();
  }
  absl::Status Add(pid_t pid) override { return Write(dir_ + "/cgroup.procs", absl::StrCat(pid)); }
  void KillAll() override {
    if (Exists(dir_ + "/cgroup.kill") && Write(dir_ + "/cgroup.kill", "1\n").ok()) return;
    FreezeKillThaw(dir_, "cgroup.freeze", "1", "0", dir_ + "/cgroup.procs");
  }
  bool Empty() const override {
    const std::string events = Read(dir_ + "/cgroup.events");
    if (events.find("populated ") != std::string::npos) return KeyedValue(events, "populated") == 0;
    return Pids(dir_ + "/cgroup.procs").empty();
  }
  uint64_t OomKills() const override {
    return KeyedValue(Read(dir_ + "/memory.events"), "oom_kill");
  }
  absl::Status Remove() override {
    if (rmdir(dir_.c_str()) == 0 || errno == ENOENT) return absl::OkStatus();
    return absl::FailedPreconditionError(
        absl::StrCat("cannot remove ", dir_, ": ", strerror(errno)));
  }
  std::string Describe() const override { return absl::StrCat("cgroup v2 ", label_, " ", dir_); }

 private:
  std::string dir_;
  std::string label_;
  std::vector<int> fds_;
};

class V2Driver : public CgroupDriver {
 public:
  V2Driver(std::string base, std::set<std::string> controllers)
      : base_(std::move(base)), controllers_(std::move(controllers)) {}
  std::string version() const override { return "v2"; }
  bool memory() const override { return controllers_.contains("memory"); }
  bool cpuset() const override { return controllers_.contains("cpuset"); }
  bool pids() const override { return controllers_.contains("pids"); }
  bool freezer() const override { return true; }  // cgroup.freeze / cgroup.kill are core files

  absl::StatusOr<std::unique_ptr<JobCgroup>> Create(const std::string& name,
                                                    const CgroupLimits& limits) override {
    const std::string dir = absl::StrCat(base_, "/", name);
    if (absl::Status st = MakeDir(dir); !st.ok()) return st;
    auto fail = [&](absl::Status st) {
      rmdir(dir.c_str());
      return st;
    };
    if (cpuset() && !limits.cpus.empty()) {
      if (absl::Status st = Write(dir + "/cpuset.cpus", base::FormatIdList(limits.cpus) + "\n");
          !st.ok())
        return fail(st);
    }
    if (cpuset() && !limits.mems.empty()) {
      if (absl::Status st = Write(dir + "/cpuset.mems", base::FormatIdList(limits.mems) + "\n");
          !st.ok())
        return fail(st);
    }
    if (memory() && limits.memory_bytes > 0) {
      if (absl::Status st = Write(dir + "/memory.max", absl::StrCat(limits.memory_bytes, "\n"));
          !st.ok())
        return fail(st);
      // No swapping past the limit: over it means the OOM killer, as on v1
      // with memory.memsw. Absent without swap accounting.
      if (Exists(dir + "/memory.swap.max")) (void)Write(dir + "/memory.swap.max", "0\n");
    }
    if (pids() && limits.pids_max > 0) {
      if (absl::Status st = Write(dir + "/pids.max", absl::StrCat(limits.pids_max, "\n")); !st.ok())
        return fail(st);
    }
    int fd = open((dir + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC | O_CREAT, 0644);
    if (fd < 0) {
      return fail(absl::FailedPreconditionError(
          absl::StrCat("cannot open ", dir, "/cgroup.procs: ", strerror(errno))));
    }
    return std::make_unique<V2Cgroup>(dir, Controllers(), fd);
  }
  absl::StatusOr<std::unique_ptr<JobCgroup>> Open(const std::string& name) override {
    const std::string dir = absl::StrCat(base_, "/", name);
    if (!ValidName(name) || !Exists(dir + "/cgroup.procs"))
      return absl::NotFoundError(absl::StrCat("no cgroup ", dir));
    return std::make_unique<V2Cgroup>(dir, Controllers(), -1);
  }
  std::vector<std::string> List() const override {
    std::set<std::string> names = Children(base_);
    return {names.begin(), names.end()};
  }
  std::string Describe() const override {
    return absl::StrCat("cgroup v2 (", controllers_.empty() ? "no resource controllers" : "",
                        absl::StrJoin(controllers_, ", "), "; kill and freeze) under ", base_);
  }

 private:
  std::string Controllers() const {
    return controllers_.empty() ? "core" : absl::StrJoin(controllers_, ",");
  }
  const std::string base_;
  const std::set<std::string> controllers_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<CgroupDriver>> OpenCgroupV2(const std::string& mount,
                                                           const std::string& parent) {
  if (!Exists(mount + "/cgroup.controllers")) {
    return absl::FailedPreconditionError(absl::StrCat(mount, " is not a cgroup v2 hierarchy"));
  }
  std::set<std::string> offered;
  for (absl::string_view c : absl::StrSplit(Read(mount + "/cgroup.controllers"),
                                            absl::ByAnyChar(" \n"), absl::SkipEmpty())) {
    offered.emplace(c);
  }
  std::set<std::string> use;
  for (const char* c : {"cpuset", "memory", "pids"})
    if (offered.contains(c)) use.insert(c);
  // Enable them at the root and at every level down to the agent's parent;
  // job cgroups are leaves, so no level above them holds a process.
  std::string enable;
  for (const std::string& c : use) absl::StrAppend(&enable, enable.empty() ? "" : " ", "+", c);
  std::string at = mount;
  std::vector<std::string> levels = absl::StrSplit(parent, '/', absl::SkipEmpty());
  for (size_t i = 0; i <= levels.size(); ++i) {
    if (!enable.empty()) {
      if (absl::Status st = Write(at + "/cgroup.subtree_control", enable + "\n"); !st.ok()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "cannot delegate ", absl::StrJoin(use, ", "), " below ", at, ": ", st.message()));
      }
    }
    if (i == levels.size()) break;
    at = absl::StrCat(at, "/", levels[i]);
    if (absl::Status st = MakeDir(at); !st.ok()) return st;
  }
  return std::make_unique<V2Driver>(at, use);
}

absl::StatusOr<std::unique_ptr<CgroupDriver>> OpenCgroups(const std::string& mode,
                                                          const std::string& mounts_file,
                                                          const std::string& parent,
                                                          std::string* why) {
  if (mode == "none") {
    *why = "--cgroup none";
    return std::unique_ptr<CgroupDriver>();
  }
  if (mode != "auto" && mode != "v1" && mode != "v2") {
    return absl::InvalidArgumentError(
        absl::StrCat("--cgroup '", mode, "': expected auto, v1, v2 or none"));
  }
  std::string v2_mount;
  for (const Mount& m : ReadMounts(mounts_file))
    if (m.type == "cgroup2" && v2_mount.empty()) v2_mount = m.path;
  absl::Status v2_error = absl::NotFoundError("no cgroup2 mount");
  if (mode == "v2" || mode == "auto") {
    const bool v2_memory =
        !v2_mount.empty() &&
        Read(v2_mount + "/cgroup.controllers").find("memory") != std::string::npos;
    if (mode == "v2" || v2_memory) {
      if (v2_mount.empty()) {
        return absl::FailedPreconditionError(
            absl::StrCat("--cgroup v2: no cgroup2 file system in ", mounts_file));
      }
      auto d = OpenCgroupV2(v2_mount, parent);
      if (d.ok() || mode == "v2") return d;
      v2_error = d.status();
    } else if (!v2_mount.empty()) {
      v2_error = absl::FailedPreconditionError(absl::StrCat(
          "the cgroup v2 hierarchy at ", v2_mount, " offers no memory controller (hybrid host)"));
    }
  }
  auto v1 = OpenCgroupV1(mounts_file, parent);
  if (v1.ok() || mode == "v1") return v1;
  *why = absl::StrCat(v2_error.message(), "; ", v1.status().message());
  return std::unique_ptr<CgroupDriver>();
}

}  // namespace portolan::executor
