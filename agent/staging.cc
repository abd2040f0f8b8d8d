// SPDX-License-Identifier: Apache-2.0
// Data staging, the agent's half (docs/datasets.md): an Assign's inputs are
// linked (data already at this site, under --data-dir) or pulled from an
// agent at the data's site under the grant the scheduler signed, into
// <attempt>/work/inputs/<dataset>, with progress reported as state staging;
// then the job starts with PORTOLAN_INPUTS pointing there. The staged copies
// are removed when the attempt ends.
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "portolan/agent/client.h"
#include "portolan/base/log.h"
#include "portolan/transfer/transfer.h"

namespace portolan::agent {
namespace {

namespace fs = std::filesystem;

struct Outcome {
  absl::Status status;
  std::vector<v1::StagedInput> inputs;
};

// One input, linked or pulled; `report` is called with progress.
absl::Status StageOne(const v1::StageSource& src, const std::string& data_dir,
                      const std::string& into, boost::asio::ssl::context* tls, v1::StagedInput& si,
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
  if (tls == nullptr)
    return absl::FailedPreconditionError(
        "pulling data needs mutual TLS (--tls-cert, --tls-key, --tls-ca)");
  const auto started = std::chrono::steady_clock::now();
  auto last = started;
  auto r = transfer::Pull(src, (fs::path(into) / src.dataset()).string(), *tls,
                          [&](uint64_t done, uint64_t total) {
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
  if (r->seconds > 0) si.set_rate_mbps(r->bytes * 8.0 / 1e6 / r->seconds);
  si.set_done(true);
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

}  // namespace

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
      absl::StrCat(options_.executor.work_root, "/", job.id(), "-", job.attempt(), "/work/inputs");
  Staging& st = staging_[key];
  auto cancel = st.cancel;
  st.thread = std::thread(
      [this, assign, dir, key, cancel, data_dir = options_.data_dir, tls = options_.tls] {
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
          out.status = StageOne(src, data_dir, dir, tls.get(), si, report);
          if (!out.status.ok()) si.set_error(std::string(out.status.message()));
        }
        if (out.status.ok() && *cancel)
          out.status = absl::CancelledError("cancelled while staging");
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
