// SPDX-License-Identifier: Apache-2.0
#include "portolan/executor/attempt_gc.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "portolan/base/files.h"
#include "portolan/base/log.h"

namespace portolan::executor {
namespace {

// One entry of work_root, never a path.
bool PlainName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos;
}

}  // namespace

AttemptDirGc::AttemptDirGc(Options options, base::Clock* clock)
    : options_(std::move(options)), clock_(clock) {
  if (options_.thread) thread_ = std::thread([this] { Loop(); });
}

AttemptDirGc::~AttemptDirGc() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void AttemptDirGc::Ended(const std::string& name) {
  if (!PlainName(name)) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ended_.emplace_back(clock_->Now(), name);
  }
  cv_.notify_all();
}

size_t AttemptDirGc::Adopt(const std::set<std::string>& live) {
  std::vector<std::pair<absl::Time, std::string>> found;
  DIR* d = opendir(options_.work_root.c_str());
  if (d == nullptr) return 0;  // none yet
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    struct stat st;
    if (!PlainName(name) || live.contains(name) ||
        fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode))
      continue;
    found.emplace_back(absl::TimeFromTimespec(st.st_mtim), name);
  }
  closedir(d);
  {
    std::lock_guard<std::mutex> lock(mu_);
    ended_.insert(ended_.end(), found.begin(), found.end());
    std::stable_sort(ended_.begin(), ended_.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
  }
  cv_.notify_all();
  return found.size();
}

size_t AttemptDirGc::Collect() {
  std::vector<std::string> due;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const absl::Time now = clock_->Now();
    while (!ended_.empty() && ((options_.keep_max > 0 && ended_.size() > options_.keep_max) ||
                               (options_.keep_for != absl::InfiniteDuration() &&
                                now - ended_.front().first >= options_.keep_for))) {
      due.push_back(std::move(ended_.front().second));
      ended_.pop_front();
    }
  }
  if (due.empty()) return 0;
  const int root = open(options_.work_root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) {
    spdlog::warn("cannot open {} to remove ended attempts' directories: {}", options_.work_root,
                 strerror(errno));
    return 0;
  }
  size_t n = 0;
  for (const std::string& name : due) {
    base::RemoveTreeAt(root, name);
    struct stat st;
    if (fstatat(root, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      spdlog::warn("cannot remove the ended attempt's directory {}/{} whole", options_.work_root,
                   name);
    } else {
      ++n;
    }
  }
  close(root);
  std::lock_guard<std::mutex> lock(mu_);
  removed_ += n;
  return n;
}

uint64_t AttemptDirGc::removed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return removed_;
}

size_t AttemptDirGc::kept() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ended_.size();
}

void AttemptDirGc::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    // Until the oldest is due (at most a minute: the clock may be moved),
    // or at once when more than keep_max are kept.
    absl::Duration wait = absl::Minutes(1);
    if (!ended_.empty()) {
      if (options_.keep_max > 0 && ended_.size() > options_.keep_max) {
        wait = absl::ZeroDuration();
      } else if (options_.keep_for != absl::InfiniteDuration()) {
        wait = std::clamp(ended_.front().first + options_.keep_for - clock_->Now(),
                          absl::ZeroDuration(), wait);
      }
    }
    if (wait > absl::ZeroDuration()) {
      cv_.wait_for(lock, absl::ToChronoMilliseconds(wait + absl::Milliseconds(1)));
      continue;
    }
    lock.unlock();
    Collect();
    lock.lock();
  }
}

}  // namespace portolan::executor
