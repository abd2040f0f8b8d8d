// SPDX-License-Identifier: Apache-2.0
// cgroup v1: one directory per controller hierarchy for each job, and a pool
// of released ones that the same tenant's next job takes over by renaming.
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <set>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "agent/executor/cgroup_files.h"
#include "portolan/base/files.h"
#include "portolan/base/strings.h"
#include "portolan/executor/cgroup.h"

namespace portolan::executor {
namespace {

using namespace cgroup_files;  // NOLINT(build/namespaces): this module's own helpers

struct V1Hierarchy {
  std::string mount;
  std::set<std::string> controllers;  // of those we use
  std::string base;                   // mount + "/" + parent
};

// What a job cgroup's files were last set to: what a released one is
// kept with, so that the next job writes only what differs.
struct V1Settings {
  std::string cpus, mems;    // as written to cpuset.cpus / cpuset.mems
  int64_t memory_bytes = 0;  // 0: never limited
  int64_t pids_max = 0;      // 0: never limited
};

// Released job cgroups, empty and renamed ".idle-N" (hidden from List), that
// a later job of the same tenant takes over by renaming them back: on v1 a
// cgroup's mkdir and rmdir (a memory cgroup's per-CPU state, the kernel's
// cgroup lock) cost more than the rest of starting a trivial job. Only the
// same tenant's jobs reuse one: counters that cannot be reset (memory.stat's
// totals, pids.events) never reach another tenant. Thread-safe; shared by
// the driver and the cgroups it created, and the last of them removes what
// is still idle.
class V1Pool {
 public:
  static constexpr size_t kMaxIdle = 64;

  // Each hierarchy's base is held open: a job's renames and opens walk from
  // it, not from / through the cgroup mount and the parents (about half of
  // a v1 rename's cost; docs/performance.md).
  explicit V1Pool(std::vector<std::string> bases) : bases_(std::move(bases)) {
    for (const std::string& b : bases_)
      fds_.push_back(open(b.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  }
  ~V1Pool() {
    for (const Idle& i : idle_)
      for (size_t h = 0; h < bases_.size(); ++h) RemoveDir(h, i.name);
    for (int fd : fds_)
      if (fd >= 0) close(fd);
  }
  V1Pool(const V1Pool&) = delete;
  V1Pool& operator=(const V1Pool&) = delete;

  // An idle cgroup of `key` (its name and settings), preferring one already
  // set to `cpus` and `mems`.
  std::optional<std::pair<std::string, V1Settings>> Take(const std::string& key,
                                                         const std::string& cpus,
                                                         const std::string& mems) {
    absl::MutexLock lock(&mu_);
    auto best = idle_.end();
    for (auto it = idle_.begin(); it != idle_.end(); ++it) {
      if (it->key != key) continue;
      best = it;
      if (it->settings.cpus == cpus && it->settings.mems == mems) break;
    }
    if (best == idle_.end()) return std::nullopt;
    std::pair<std::string, V1Settings> out{best->name, best->settings};
    idle_.erase(best);
    return out;
  }
  // A name to rename a released cgroup to, or nullopt when the pool is full.
  std::optional<std::string> Reserve() {
    absl::MutexLock lock(&mu_);
    if (idle_.size() + reserved_ >= kMaxIdle) return std::nullopt;
    ++reserved_;
    return absl::StrCat(".idle-", next_++);
  }
  // Ends a Reserve: `name` holds an idle cgroup of `key` when `kept`.
  void Finish(bool kept, std::string key, std::string name, V1Settings settings) {
    absl::MutexLock lock(&mu_);
    --reserved_;
    if (kept) idle_.push_back({std::move(key), std::move(name), std::move(settings)});
  }
  size_t hierarchies() const { return bases_.size(); }

  // `rel` under hierarchy `h`'s base (index in the driver's order): its
  // file's text, a descriptor of it, its removal.
  std::string Read(size_t h, const std::string& rel) const {
    const auto [dirfd, path] = At(h, rel);
    return base::ReadSmallFileAt(dirfd, path.c_str());
  }
  int Open(size_t h, const std::string& rel, int flags) const {
    const auto [dirfd, path] = At(h, rel);
    return openat(dirfd, path.c_str(), flags, 0644);
  }
  void RemoveDir(size_t h, const std::string& rel) const {
    const auto [dirfd, path] = At(h, rel);
    (void)unlinkat(dirfd, path.c_str(), AT_REMOVEDIR);
  }
  // Renames `from` to `to` under every base, or under none: what was
  // renamed is put back.
  bool RenameAll(const std::string& from, const std::string& to) const {
    for (size_t h = 0; h < bases_.size(); ++h) {
      if (Rename(h, from, to)) continue;
      for (size_t j = 0; j < h; ++j) (void)Rename(j, to, from);
      return false;
    }
    return true;
  }

 private:
  // The directory descriptor and path for an *at call: the base's
  // descriptor and `rel`, or (the base could not be opened) the working
  // directory and the whole path.
  std::pair<int, std::string> At(size_t h, const std::string& rel) const {
    if (fds_[h] >= 0) return {fds_[h], rel};
    return {AT_FDCWD, absl::StrCat(bases_[h], "/", rel)};
  }
  bool Rename(size_t h, const std::string& from, const std::string& to) const {
    const auto [dirfd, a] = At(h, from);
    return renameat(dirfd, a.c_str(), dirfd, At(h, to).second.c_str()) == 0;
  }

  struct Idle {
    std::string key, name;
    V1Settings settings;
  };
  const std::vector<std::string> bases_;  // one per hierarchy, in the driver's order
  std::vector<int> fds_;                  // bases_ open (O_PATH), or -1
  absl::Mutex mu_;
  std::vector<Idle> idle_ ABSL_GUARDED_BY(mu_);
  size_t reserved_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_ ABSL_GUARDED_BY(mu_) = 0;
};

class V1Cgroup : public JobCgroup {
 public:
  // `pool` null: Remove removes (a cgroup found again after a restart).
  V1Cgroup(std::vector<std::pair<std::string, std::set<std::string>>> dirs, std::vector<int> fds,
           std::shared_ptr<V1Pool> pool = nullptr, std::string key = "", V1Settings settings = {})
      : dirs_(std::move(dirs)),
        fds_(std::move(fds)),
        pool_(std::move(pool)),
        key_(std::move(key)),
        settings_(std::move(settings)) {}
  ~V1Cgroup() override { CloseJoinFds(); }
  const std::vector<int>& join_fds() const override { return fds_; }
  void CloseJoinFds() override {
    for (int fd : fds_) close(fd);
    fds_.clear();
  }
  absl::Status Add(pid_t pid) override {
    for (const auto& [dir, c] : dirs_) {
      if (absl::Status st = Write(dir + "/cgroup.procs", absl::StrCat(pid)); !st.ok()) return st;
    }
    return absl::OkStatus();
  }
  void KillAll() override {
    killed_ = true;  // frozen and thawed, or not all gone at once: not for reuse
    for (const auto& [dir, c] : dirs_) {
      if (c.contains("freezer")) {
        FreezeKillThaw(dir, "freezer.state", "FROZEN", "THAWED", dir + "/cgroup.procs");
        return;
      }
    }
    const std::string procs = dirs_.front().first + "/cgroup.procs";
    FreezeKillThaw(dirs_.front().first, "", "", "", procs);  // no freezer: repeated kills
  }
  bool Empty() const override { return Pids(dirs_.front().first + "/cgroup.procs").empty(); }
  uint64_t OomKills() const override {
    for (const auto& [dir, c] : dirs_) {
      if (c.contains("memory")) return KeyedValue(Read(dir + "/memory.oom_control"), "oom_kill");
    }
    return 0;
  }
  absl::Status Remove() override {
    if (Release()) return absl::OkStatus();
    absl::Status out;
    for (const auto& [dir, c] : dirs_) {
      if (rmdir(dir.c_str()) != 0 && errno != ENOENT && out.ok()) {
        out = absl::FailedPreconditionError(
            absl::StrCat("cannot remove ", dir, ": ", strerror(errno)));
      }
    }
    return out;
  }
  std::string Describe() const override {
    std::vector<std::string> parts;
    for (const auto& [dir, c] : dirs_) parts.push_back(dir);
    return absl::StrCat("cgroup v1 ", absl::StrJoin(parts, " "));
  }

 private:
  // Hands the cgroup to the pool: only one that is empty, was never killed
  // into (a freeze may not have thawed) and saw no OOM kill (oom_control
  // counts for the cgroup's life, and the next job's OomKills starts at 0).
  bool Release() {
    if (!pool_ || killed_ || key_.empty() || dirs_.size() != pool_->hierarchies()) return false;
    // Empty() and OomKills(), read from the bases held open.
    const std::string& dir = dirs_.front().first;
    const std::string name = dir.substr(dir.rfind('/') + 1);
    if (!Pids(pool_->Read(0, name + "/cgroup.procs")).empty()) return false;
    for (size_t h = 0; h < dirs_.size(); ++h) {
      if (dirs_[h].second.contains("memory") &&
          KeyedValue(pool_->Read(h, name + "/memory.oom_control"), "oom_kill") != 0)
        return false;
    }
    std::optional<std::string> idle = pool_->Reserve();
    if (!idle) return false;
    const bool kept = pool_->RenameAll(name, *idle);
    pool_->Finish(kept, key_, *idle, settings_);
    return kept;
  }

  std::vector<std::pair<std::string, std::set<std::string>>> dirs_;
  std::vector<int> fds_;
  std::shared_ptr<V1Pool> pool_;
  std::string key_;
  V1Settings settings_;
  bool killed_ = false;
};

// Writes the limits of the controllers in `controllers` where `now`
// differs (all of them for a new cgroup, whose `now` is empty) and updates
// `now`.
absl::Status ApplyV1Limits(const std::string& dir, const std::set<std::string>& controllers,
                           const std::string& cpus, const std::string& mems,
                           const CgroupLimits& limits, V1Settings& now) {
  if (controllers.contains("cpuset")) {
    if (now.cpus.empty()) {
      // A v1 cpuset balancing load of its own (the default) makes the
      // kernel rebuild every scheduling domain, walking every task, when
      // its CPUs are written and again when it is removed: most of a job
      // cgroup's cost on a busy agent. Turned off before the CPUs are set
      // (nothing to rebuild yet), it changes nothing for the job: the
      // root's domain, which balances, spans these CPUs.
      (void)Write(dir + "/cpuset.sched_load_balance", "0\n");
    }
    // v1 needs both set before a task may join.
    if (now.cpus != cpus) {
      if (absl::Status st = Write(dir + "/cpuset.cpus", cpus + "\n"); !st.ok()) return st;
      now.cpus = cpus;
    }
    if (now.mems != mems) {
      if (absl::Status st = Write(dir + "/cpuset.mems", mems + "\n"); !st.ok()) return st;
      now.mems = mems;
    }
  }
  if (controllers.contains("memory") && limits.memory_bytes != now.memory_bytes) {
    // memory+swap at the same value (only where the kernel accounts swap): no
    // escape into swap. memsw may never be below memory, so which goes first
    // follows the direction of the change.
    const std::string value =
        limits.memory_bytes > 0 ? absl::StrCat(limits.memory_bytes, "\n") : "-1\n";
    const bool raise = limits.memory_bytes <= 0 ||
                       (now.memory_bytes > 0 && limits.memory_bytes > now.memory_bytes);
    const bool memsw = Exists(dir + "/memory.memsw.limit_in_bytes");
    absl::Status st;
    if (raise && memsw) st = Write(dir + "/memory.memsw.limit_in_bytes", value);
    if (st.ok()) st = Write(dir + "/memory.limit_in_bytes", value);
    if (st.ok() && !raise && memsw) st = Write(dir + "/memory.memsw.limit_in_bytes", value);
    if (!st.ok()) return st;
    now.memory_bytes = limits.memory_bytes;
  }
  if (controllers.contains("pids") && limits.pids_max != now.pids_max) {
    const std::string value =
        limits.pids_max > 0 ? absl::StrCat(limits.pids_max, "\n") : std::string("max\n");
    if (absl::Status st = Write(dir + "/pids.max", value); !st.ok()) return st;
    now.pids_max = limits.pids_max;
  }
  return absl::OkStatus();
}

class V1Driver : public CgroupDriver {
 public:
  explicit V1Driver(std::vector<V1Hierarchy> h) : h_(std::move(h)), pool_(MakePool(h_)) {}
  std::string version() const override { return "v1"; }
  bool memory() const override { return Has("memory"); }
  bool cpuset() const override { return Has("cpuset"); }
  bool pids() const override { return Has("pids"); }
  bool freezer() const override { return Has("freezer"); }

  absl::StatusOr<std::unique_ptr<JobCgroup>> Create(const std::string& name,
                                                    const CgroupLimits& limits) override {
    if (!ValidName(name) || name.front() == '.')
      return absl::InvalidArgumentError(absl::StrCat("bad job cgroup name '", name, "'"));
    std::string cpus, mems;
    if (cpuset()) {
      // Unset means the parent's.
      const std::string& base = HierarchyOf("cpuset").base;
      cpus = limits.cpus.empty()
                 ? std::string(absl::StripAsciiWhitespace(Read(base + "/cpuset.cpus")))
                 : base::FormatIdList(limits.cpus);
      mems = limits.mems.empty()
                 ? std::string(absl::StripAsciiWhitespace(Read(base + "/cpuset.mems")))
                 : base::FormatIdList(limits.mems);
    }
    V1Settings settings;
    const bool reused = TakeIdle(name, limits.reuse_key, cpus, mems, settings);
    std::vector<std::pair<std::string, std::set<std::string>>> dirs;
    std::vector<int> fds;
    auto fail = [&](absl::Status st) {
      for (int fd : fds) close(fd);
      for (const V1Hierarchy& h : h_) rmdir(absl::StrCat(h.base, "/", name).c_str());
      return st;
    };
    V1Settings now = settings;
    for (size_t i = 0; i < h_.size(); ++i) {
      const V1Hierarchy& h = h_[i];
      const std::string dir = absl::StrCat(h.base, "/", name);
      if (!reused) {
        if (absl::Status st = MakeDir(dir); !st.ok()) return fail(st);
      }
      dirs.emplace_back(dir, h.controllers);
      // Each hierarchy writes its controllers' part of `now`.
      if (absl::Status st = ApplyV1Limits(dir, h.controllers, cpus, mems, limits, now); !st.ok())
        return fail(st);
      int fd = pool_->Open(i, name + "/cgroup.procs", O_WRONLY | O_CLOEXEC | O_CREAT);
      if (fd < 0) {
        return fail(absl::FailedPreconditionError(
            absl::StrCat("cannot open ", dir, "/cgroup.procs: ", strerror(errno))));
      }
      fds.push_back(fd);
    }
    return std::make_unique<V1Cgroup>(std::move(dirs), std::move(fds), pool_, limits.reuse_key,
                                      std::move(now));
  }
  absl::StatusOr<std::unique_ptr<JobCgroup>> Open(const std::string& name) override {
    std::vector<std::pair<std::string, std::set<std::string>>> dirs;
    if (ValidName(name)) {
      for (const V1Hierarchy& h : h_) {
        const std::string dir = absl::StrCat(h.base, "/", name);
        if (Exists(dir + "/cgroup.procs")) dirs.emplace_back(dir, h.controllers);
      }
    }
    if (dirs.empty()) {
      return absl::NotFoundError(absl::StrCat("no cgroup ", name, " under ", h_.front().base));
    }
    return std::make_unique<V1Cgroup>(std::move(dirs), std::vector<int>{});
  }
  std::vector<std::string> List() const override {
    std::set<std::string> names;
    for (const V1Hierarchy& h : h_) names.merge(Children(h.base));
    return {names.begin(), names.end()};
  }
  std::string Describe() const override {
    std::vector<std::string> c;
    for (const char* n : {"memory", "cpuset", "pids", "freezer"})
      if (Has(n)) c.push_back(n);
    return absl::StrCat("cgroup v1 (", absl::StrJoin(c, ", "), ") under ", h_.front().base,
                        h_.size() > 1 ? " and the other hierarchies" : "");
  }

 private:
  bool Has(const std::string& c) const {
    for (const V1Hierarchy& h : h_)
      if (h.controllers.contains(c)) return true;
    return false;
  }
  const V1Hierarchy& HierarchyOf(const std::string& c) const {
    for (const V1Hierarchy& h : h_)
      if (h.controllers.contains(c)) return h;
    return h_.front();
  }
  // Renames an idle cgroup of `key` to `name` and returns what it is set to;
  // false when there is none (or it could not be renamed: then it goes).
  bool TakeIdle(const std::string& name, const std::string& key, const std::string& cpus,
                const std::string& mems, V1Settings& settings) {
    if (key.empty()) return false;
    auto idle = pool_->Take(key, cpus, mems);
    if (!idle) return false;
    if (pool_->RenameAll(idle->first, name)) {
      settings = std::move(idle->second);
      return true;
    }
    for (size_t h = 0; h < h_.size(); ++h) pool_->RemoveDir(h, idle->first);
    return false;
  }
  static std::shared_ptr<V1Pool> MakePool(const std::vector<V1Hierarchy>& h) {
    std::vector<std::string> bases;
    for (const V1Hierarchy& x : h) bases.push_back(x.base);
    return std::make_shared<V1Pool>(std::move(bases));
  }
  const std::vector<V1Hierarchy> h_;
  const std::shared_ptr<V1Pool> pool_;
};

// Removes the idle job cgroups an earlier run of the agent left (empty:
// a cgroup is idle only once empty, and nothing can join one).
void RemoveIdle(const std::string& base) {
  DIR* d = opendir(base.c_str());
  if (d == nullptr) return;
  std::vector<std::string> idle;
  while (dirent* e = readdir(d)) {
    if (e->d_type == DT_DIR && std::string_view(e->d_name).starts_with(".idle-"))
      idle.push_back(absl::StrCat(base, "/", e->d_name));
  }
  closedir(d);
  for (const std::string& dir : idle) rmdir(dir.c_str());
}

// mkdir -p `parent` under `top`, copying cpuset.cpus/mems down each new level
// of a cpuset hierarchy (v1 leaves them empty, and empty admits no task).
absl::Status MakeParent(const std::string& top, const std::string& parent, bool cpuset_v1) {
  std::string at = top;
  for (absl::string_view part : absl::StrSplit(parent, '/', absl::SkipEmpty())) {
    const std::string up = at;
    at = absl::StrCat(at, "/", part);
    if (absl::Status st = MakeDir(at); !st.ok()) return st;
    if (!cpuset_v1) continue;
    for (const char* f : {"cpuset.cpus", "cpuset.mems"}) {
      if (!absl::StripAsciiWhitespace(Read(at + "/" + f)).empty()) continue;
      if (absl::Status st = Write(at + "/" + f, Read(up + "/" + f)); !st.ok()) return st;
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<CgroupDriver>> OpenCgroupV1(const std::string& mounts_file,
                                                           const std::string& parent) {
  std::vector<V1Hierarchy> found;
  for (const Mount& m : ReadMounts(mounts_file)) {
    if (m.type != "cgroup") continue;
    V1Hierarchy h;
    h.mount = m.path;
    for (const char* c : {"memory", "cpuset", "pids", "freezer"})
      if (m.options.contains(c)) h.controllers.insert(c);
    if (h.controllers.empty() || access(m.path.c_str(), W_OK) != 0) continue;
    bool dup = false;  // the same hierarchy mounted twice
    for (const V1Hierarchy& f : found)
      for (const std::string& c : h.controllers) dup |= f.controllers.contains(c);
    if (!dup) found.push_back(std::move(h));
  }
  bool memory = false;
  for (const V1Hierarchy& h : found) memory |= h.controllers.contains("memory");
  if (!memory) {
    return absl::FailedPreconditionError(
        absl::StrCat("no writable cgroup v1 memory hierarchy in ", mounts_file));
  }
  // Memory first: it decides whether a task is empty-checked and reported.
  std::stable_sort(found.begin(), found.end(), [](const V1Hierarchy& a, const V1Hierarchy& b) {
    return a.controllers.contains("memory") > b.controllers.contains("memory");
  });
  for (V1Hierarchy& h : found) {
    h.base = absl::StrCat(h.mount, "/", parent);
    if (absl::Status st = MakeParent(h.mount, parent, h.controllers.contains("cpuset")); !st.ok())
      return st;
    RemoveIdle(h.base);
  }
  return std::make_unique<V1Driver>(std::move(found));
}

}  // namespace portolan::executor
