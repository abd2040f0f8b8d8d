// SPDX-License-Identifier: Apache-2.0
// Data staging, the agent's half (docs/datasets.md): an Assign's inputs are
// linked (data already at this site, under --data-dir) or pulled from an
// agent at the data's site under the grant the scheduler signed, into
// <attempt>/work/inputs/<dataset>, with progress reported as state staging;
// then the job starts with PORTOLAN_INPUTS pointing there. The staged copies
// are removed when the attempt ends.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "portolan/agent/client.h"
#include "portolan/agent/staging_cache.h"
#include "portolan/base/files.h"
#include "portolan/base/log.h"
#include "portolan/base/strings.h"
#include "portolan/transfer/transfer.h"

namespace portolan::agent {
namespace {

namespace fs = std::filesystem;

struct Outcome {
  absl::Status status;
  std::vector<v1::StagedInput> inputs;
};

// A copy of the tree `from` at `to` (made; its parent exists): hard links
// where `from` and `to` share a file system, else copies.
absl::Status CopyTree(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::create_hard_links, ec);
  if (ec) {
    fs::remove_all(to, ec);
    fs::copy(from, to, fs::copy_options::recursive, ec);
  }
  if (ec) {
    fs::remove_all(to);
    return absl::InternalError(
        absl::StrCat("cannot copy ", from.string(), " to ", to.string(), ": ", ec.message()));
  }
  return absl::OkStatus();
}

// Keeps a pulled copy as `entry` for later jobs at this site, replacing the
// dataset's older versions. Made aside and renamed into place, so a
// concurrent stage of the same version sees all of it or none; a failure
// only costs the next job a pull.
void KeepInCache(const fs::path& pulled, const transfer::PullResult& digest, const fs::path& entry,
                 uint64_t max_bytes) {
  std::error_code ec;
  const fs::path dataset_dir = entry.parent_path();
  fs::create_directories(dataset_dir, ec);
  fs::permissions(dataset_dir.parent_path(), fs::perms::owner_all, ec);
  const fs::path aside = dataset_dir / absl::StrCat(".new-", base::NewId("c"));
  fs::create_directories(aside, ec);
  std::ofstream(aside / kCacheDigest) << digest.bytes << " " << digest.sha256 << "\n";
  if (ec || !CopyTree(pulled, aside / "data").ok()) {
    fs::remove_all(aside, ec);
    return;
  }
  fs::rename(aside, entry, ec);
  if (ec) {  // another stage of this version was first
    fs::remove_all(aside, ec);
    return;
  }
  for (const auto& old : fs::directory_iterator(dataset_dir, ec)) {
    if (old.path() != entry && old.path().filename().string().rfind("v", 0) == 0)
      fs::remove_all(old.path(), ec);
  }
  spdlog::info("kept a staged copy of {} in the site's cache", entry.string());
  const CacheTrim trim = TrimCache(dataset_dir.parent_path().string(), max_bytes, entry.string());
  if (trim.entries_removed > 0) {
    spdlog::info(
        "site cache over --staging-cache-max-gb: removed {} least recently used entr{} "
        "({} bytes); {} bytes kept",
        trim.entries_removed, trim.entries_removed == 1 ? "y" : "ies", trim.bytes_removed,
        trim.bytes_kept);
  }
}

// One input, linked or pulled; `report` is called with progress.
absl::Status StageOne(const v1::StageSource& src, const std::string& data_dir,
                      uint64_t cache_max_bytes, const std::string& into,
                      boost::asio::ssl::context* tls, v1::StagedInput& si,
                      const std::function<void()>& report) {
  si.set_dataset(src.dataset());
  si.set_version(src.version());
  si.set_from_site(src.site());
  if (!src.has_grant()) {
    // At this site: a link to the data where it lives.
    if (data_dir.empty())
      return absl::FailedPreconditionError("dataset at this site, but the agent has no --data-dir");
    const fs::path target = fs::path(data_dir) / src.path();
    std::error_code ec;
    if (!fs::exists(target, ec))
      return absl::NotFoundError(absl::StrCat("dataset ", src.dataset(), ": no ", target.string()));
    fs::create_symlink(target, fs::path(into) / src.dataset(), ec);
    if (ec)
      return absl::InternalError(absl::StrCat("cannot link ", src.dataset(), ": ", ec.message()));
    si.set_local(true);
    si.set_done(true);
    return absl::OkStatus();
  }
  const fs::path dest = fs::path(into) / src.dataset();
  const bool cache = src.cache() && !data_dir.empty();
  const fs::path cached =
      fs::path(data_dir) / kCacheDir / src.dataset() / absl::StrCat("v", src.version());
  std::error_code ec;
  absl::Status linked = absl::NotFoundError("not cached");
  if (cache && fs::is_directory(cached, ec)) {
    // Pulled for an earlier job at this site: a local copy (hard links where
    // the file system allows), nothing crosses the border again. Used now:
    // the last the cache's bound removes. Removed meanwhile (the bound made
    // room for another): pulled again.
    TouchCacheEntry(cached.string());
    linked = CopyTree(cached / "data", dest);
    if (!linked.ok()) spdlog::info("cached {}: {}; pulling it", cached.string(), linked.message());
  }
  if (linked.ok()) {
    uint64_t bytes = 0;
    std::string sha256;
    std::ifstream(cached / kCacheDigest) >> bytes >> sha256;
    if (sha256.empty()) {  // no digest beside it: measure the copy
      auto digest = transfer::DigestTree(dest.string());
      if (!digest.ok()) return digest.status();
      bytes = digest->bytes;
      sha256 = digest->sha256;
    }
    si.set_cached(true);
    si.set_bytes_done(bytes);
    si.set_bytes_total(bytes);
    si.set_sha256(sha256);
    si.set_done(true);
    return absl::OkStatus();
  }
  if (tls == nullptr)
    return absl::FailedPreconditionError(
        "pulling data needs mutual TLS (--tls-cert, --tls-key, --tls-ca)");
  const auto started = std::chrono::steady_clock::now();
  auto last = started;
  auto r = transfer::Pull(src, dest.string(), *tls, [&](uint64_t done, uint64_t total) {
    si.set_bytes_done(done);
    si.set_bytes_total(total);
    const auto now = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(now - started).count();
    if (s > 0) si.set_rate_mbps(done * 8.0 / 1e6 / s);
    if (now - last >= std::chrono::milliseconds(500)) {
      last = now;
      report();
    }
  });
  if (!r.ok()) return r.status();
  si.set_from_agent(r->from_agent);
  si.set_bytes_done(r->bytes);
  si.set_bytes_total(r->bytes);
  si.set_sha256(r->sha256);
  si.set_seconds(r->seconds);
  if (r->seconds > 0) si.set_rate_mbps(r->bytes * 8.0 / 1e6 / r->seconds);
  si.set_done(true);
  if (cache) KeepInCache(dest, *r, cached, cache_max_bytes);
  return absl::OkStatus();
}

// The job runs as another user: the staged tree is readable (directories
// 0755, files 0644) and stays the agent's, so the job cannot change it.
absl::Status OpenToTheJob(const std::string& dir) {
  std::error_code ec;
  fs::permissions(dir, fs::perms(0755), ec);
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_symlink()) continue;  // a local dataset: its own modes apply
    fs::permissions(it->path(), it->is_directory() ? fs::perms(0755) : fs::perms(0644), ec);
    if (ec) break;
  }
  if (ec)
    return absl::InternalError(absl::StrCat("cannot open ", dir, " to the job: ", ec.message()));
  return absl::OkStatus();
}

// <attempt>/work/outputs/<path> opened without following a symbolic link at
// any step: the job owns everything below <attempt>/work and may have put
// one there (to / or /etc, for the agent to copy or chmod). -1 otherwise.
int OpenJobOutput(const std::string& attempt_dir, const std::string& path) {
  int fd = open(attempt_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);  // the agent's
  std::vector<std::string> parts = {"work", "outputs"};
  for (const fs::path& part : fs::path(path)) parts.push_back(part.string());
  for (const std::string& part : parts) {
    if (fd < 0) return -1;
    const int next = openat(fd, part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    close(fd);
    fd = next;
  }
  return fd;
}

// Copies the tree under the open directory `src` to `dst` (made), regular
// files and directories only. Everything is read through descriptors opened
// with O_NOFOLLOW, so a link the job leaves, or swaps in meanwhile, never
// leads the agent outside the job's own tree; links, FIFOs and devices are
// not kept. What it makes is the agent's: directories 0755, files 0644.
absl::Status CopyOut(int src, const fs::path& dst, int depth = 0) {
  if (depth > 64) return absl::InvalidArgumentError("outputs nested more than 64 deep");
  if (mkdir(dst.c_str(), 0755) != 0 || chmod(dst.c_str(), 0755) != 0)
    return absl::InternalError(absl::StrCat("cannot make ", dst.string(), ": ", strerror(errno)));
  DIR* d = fdopendir(dup(src));
  if (d == nullptr) return absl::InternalError(absl::StrCat("cannot list the job's outputs"));
  absl::Status st;
  std::vector<char> buf(256 * 1024);
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == ".." || !st.ok()) continue;
    struct stat info;
    if (fstatat(src, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (S_ISDIR(info.st_mode)) {
      const int fd = openat(src, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) continue;  // swapped for something else meanwhile: not kept
      st = CopyOut(fd, dst / name, depth + 1);
      close(fd);
      continue;
    }
    if (!S_ISREG(info.st_mode)) continue;
    const int in = openat(src, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (in < 0) continue;
    if (fstat(in, &info) != 0 || !S_ISREG(info.st_mode)) {
      close(in);
      continue;
    }
    const fs::path target = dst / name;
    const int out = open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (out < 0 || fchmod(out, 0644) != 0) {
      st = absl::InternalError(
          absl::StrCat("cannot write ", target.string(), ": ", strerror(errno)));
    }
    for (ssize_t n; st.ok() && (n = read(in, buf.data(), buf.size())) != 0;) {
      if (n < 0 || write(out, buf.data(), static_cast<size_t>(n)) != n)
        st = absl::InternalError(
            absl::StrCat("cannot copy ", target.string(), ": ", strerror(errno)));
    }
    close(in);
    if (out >= 0) close(out);
  }
  closedir(d);
  return st;
}

// Copies one output from the attempt to --data-dir and measures it. The
// job's own copy stays in its attempt directory.
v1::ProducedOutput KeepOne(const v1::OutputTarget& t, const std::string& attempt_dir,
                           const std::string& data_dir) {
  v1::ProducedOutput out;
  out.set_dataset(t.dataset());
  out.set_store_path(t.store_path());
  if (data_dir.empty()) {
    out.set_error("the agent has no --data-dir to keep outputs in");
    return out;
  }
  if (!base::IsSafeRelativePath(t.path()) || !base::IsSafeRelativePath(t.store_path())) {
    out.set_error("an unsafe output path");
    return out;
  }
  const int from = OpenJobOutput(attempt_dir, t.path());
  if (from < 0) {
    out.set_error(absl::StrCat("no directory at $PORTOLAN_OUTPUTS/", t.path(),
                               " (a symbolic link is not followed)"));
    return out;
  }
  const fs::path to = fs::path(data_dir) / t.store_path();
  std::error_code ec;
  fs::remove_all(to, ec);  // a copy half made before a restart (the agent's own tree)
  // outputs/<tenant>/<id>/: passable, not listable (0711), so a job reaches
  // a kept output only by a path that names the job that wrote it.
  fs::create_directories(to.parent_path(), ec);
  fs::path level = data_dir;
  for (const fs::path& part : fs::path(t.store_path()).parent_path()) {
    level /= part;
    fs::permissions(level, fs::perms(0711), ec);
  }
  absl::Status st = CopyOut(from, to);
  close(from);
  if (!st.ok()) {
    fs::remove_all(to, ec);
    out.set_error(std::string(st.message()));
    return out;
  }
  auto digest = transfer::DigestTree(to.string());
  if (!digest.ok()) {
    out.set_error(std::string(digest.status().message()));
    return out;
  }
  out.set_bytes(digest->bytes);
  out.set_files(static_cast<uint32_t>(digest->files));
  out.set_sha256(digest->sha256);
  return out;
}

constexpr char kOutputsFile[] = "outputs.pb";

}  // namespace

void AgentClient::RemoveStagedInputs(const std::string& job_id, uint32_t attempt_no) {
  const std::string dir = executor::AttemptDir(options_.executor.work_root, job_id, attempt_no);
  std::error_code ec;
  if (!fs::exists(dir + "/work/inputs", ec)) return;
  std::thread([dir] {
    const int attempt = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);  // the agent's
    if (attempt < 0) return;
    const int work = openat(attempt, "work", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    close(attempt);
    if (work < 0) return;
    base::RemoveTreeAt(work, "inputs");
    close(work);
  }).detach();
}

void AgentClient::RecordOutputs(const v1::Assign& assign) {
  if (assign.outputs().empty()) return;
  const std::string dir =
      executor::AttemptDir(options_.executor.work_root, assign.job().id(), assign.job().attempt());
  v1::Assign targets;
  *targets.mutable_outputs() = assign.outputs();
  std::error_code ec;
  fs::create_directories(dir, ec);
  std::ofstream f(fs::path(dir) / kOutputsFile, std::ios::binary | std::ios::trunc);
  if (!f || !targets.SerializeToOstream(&f))
    spdlog::error("job {}: cannot record where its outputs go in {}", assign.job().id(), dir);
}

bool AgentClient::KeepOutputs(const v1::JobUpdate& update) {
  const std::string key = absl::StrCat(update.job_id(), "/", update.attempt());
  if (keeping_.contains(key)) return true;  // the same word again: reported once kept
  const std::string dir =
      executor::AttemptDir(options_.executor.work_root, update.job_id(), update.attempt());
  v1::Assign targets;
  // Read whole (open/read, no stream): every job's end looks, and most
  // have no such file.
  const std::string recorded = base::ReadSmallFile(absl::StrCat(dir, "/", kOutputsFile));
  if (recorded.empty() || !targets.ParseFromString(recorded) || targets.outputs().empty())
    return false;
  keeping_[key] = std::thread([this, key, update, targets, dir, data_dir = options_.data_dir] {
    v1::JobUpdate u = update;
    for (const v1::OutputTarget& t : targets.outputs())
      *u.add_outputs() = KeepOne(t, dir, data_dir);
    boost::asio::post(io_, [this, key, u] {
      if (auto it = keeping_.find(key); it != keeping_.end()) {
        if (it->second.joinable()) it->second.join();
        keeping_.erase(it);
      }
      QueueUpdate(u);
    });
  });
  return true;
}

grant::PublicKeys AgentClient::GrantKeys() const {
  absl::MutexLock lock(&keys_mu_);
  return grant_keys_;
}

void AgentClient::ReportServed(const v1::ServedTransfer& transfer) {
  boost::asio::post(io_, [this, transfer] {
    v1::Envelope env;
    *env.mutable_transfer_report()->add_served() = transfer;
    QueueReliable(std::move(env));
  });
}

bool AgentClient::StartStaging(const v1::Assign& assign) {
  const v1::Job& job = assign.job();
  const std::string key = absl::StrCat(job.id(), "/", job.attempt());
  if (staging_.contains(key)) return false;
  for (const v1::AgentJobStatus& s : executor_->Jobs()) {
    if (s.job_id() == job.id() && s.attempt() == job.attempt()) return false;  // started already
  }
  const std::string dir =
      executor::AttemptDir(options_.executor.work_root, job.id(), job.attempt()) + "/work/inputs";
  Staging& st = staging_[key];
  auto cancel = st.cancel;
  st.thread = std::thread([this, assign, dir, key, cancel, data_dir = options_.data_dir,
                           cache_max = options_.staging_cache_max_bytes, tls = options_.tls] {
    Outcome out;
    std::error_code ec;
    fs::remove_all(dir, ec);  // a retry of the same attempt starts clean
    fs::create_directories(dir, ec);
    if (ec)
      out.status = absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
    for (const v1::StageSource& src : assign.inputs()) {
      if (!out.status.ok() || *cancel) break;
      v1::StagedInput& si = out.inputs.emplace_back();
      auto report = [this, &assign, &out] {
        v1::JobUpdate u;
        u.set_job_id(assign.job().id());
        u.set_attempt(assign.job().attempt());
        u.set_state(v1::Job::staging);
        for (const auto& si : out.inputs) *u.add_inputs() = si;
        boost::asio::post(io_, [this, u] { QueueUpdate(u); });
      };
      report();
      out.status = StageOne(src, data_dir, cache_max, dir, tls.get(), si, report);
      if (!out.status.ok()) si.set_error(std::string(out.status.message()));
    }
    if (out.status.ok() && *cancel) out.status = absl::CancelledError("cancelled while staging");
    if (out.status.ok()) out.status = OpenToTheJob(dir);
    boost::asio::post(io_, [this, key, job = assign.job(), dir, out]() mutable {
      FinishStaging(key, std::move(job), dir, out.status, std::move(out.inputs));
    });
  });
  return true;
}

void AgentClient::FinishStaging(const std::string& key, v1::Job job, const std::string& dir,
                                const absl::Status& status, std::vector<v1::StagedInput> inputs) {
  if (auto it = staging_.find(key); it != staging_.end()) {
    if (it->second.thread.joinable()) it->second.thread.join();
    staging_.erase(it);
  }
  if (stopped_) return;
  v1::JobUpdate u;
  u.set_job_id(job.id());
  u.set_attempt(job.attempt());
  for (const auto& si : inputs) *u.add_inputs() = si;
  *u.mutable_time() = base::ToProto(clock_->Now());
  if (!status.ok()) {
    std::error_code ec;
    fs::remove_all(dir, ec);
    u.set_state(absl::IsCancelled(status) ? v1::Job::cancelled : v1::Job::failed);
    u.set_message(absl::StrCat("staging inputs failed: ", status.message()));
    spdlog::warn("job {} attempt {}: {}", job.id(), job.attempt(), u.message());
    QueueUpdate(std::move(u));
    return;
  }
  uint64_t bytes = 0;
  for (const auto& si : inputs) bytes += si.bytes_done();
  u.set_state(v1::Job::staging);
  u.set_message(absl::StrCat("inputs staged: ", inputs.size(), " dataset(s), ", bytes, " bytes"));
  QueueUpdate(std::move(u));
  (*job.mutable_env())["PORTOLAN_INPUTS"] = dir;
  executor_->Start(job);
}

}  // namespace portolan::agent
