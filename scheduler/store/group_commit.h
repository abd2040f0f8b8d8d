// SPDX-License-Identifier: Apache-2.0
#pragma once

// Private to the store module: the group commit both stores share.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "portolan/base/log.h"
#include "portolan/store/store.h"

namespace portolan::store {

// Group commit, after LevelDB's writer queue: every write waits in the queue;
// the first waiter finding no commit under way becomes the leader and hands
// everything queued so far to `run` as one batch (one transaction, one
// fsync), then wakes the others with its result. Writes that arrive while a
// batch commits form the next batch. `run` must commit all of a batch or
// report an error, which every write in it gets.
//
// Thread-safe. `Write` is what one waiter brings (the store decides).
template <typename Write>
class GroupCommit {
 public:
  using Run = std::function<absl::Status(const std::vector<const Write*>& batch)>;
  GroupCommit(std::string name, Run run, CommitObserver on_commit)
      : name_(std::move(name)), run_(std::move(run)), on_commit_(std::move(on_commit)) {}
  ~GroupCommit() {
    if (batches_ > 0) {
      spdlog::info("{}: {} writes in {} commits ({:.1f} per commit)", name_, writes_, batches_,
                   static_cast<double>(writes_) / static_cast<double>(batches_));
    }
  }

  // Returns once `w` is committed (or its batch failed). `records`: how many
  // records `w` holds (a queue of async writes brought as one), for the
  // writes-per-commit figures.
  absl::Status Commit(const Write& w, size_t records = 1) {
    Pending me{&w, records, absl::OkStatus(), false};
    std::unique_lock<std::mutex> q(mu_);
    queue_.push_back(&me);
    while (!me.done) {
      if (committing_) {
        cv_.wait(q);
        continue;
      }
      committing_ = true;
      std::vector<Pending*> batch(queue_.begin(), queue_.end());
      queue_.clear();
      q.unlock();
      std::vector<const Write*> writes;
      writes.reserve(batch.size());
      size_t records = 0;
      for (Pending* p : batch) {
        writes.push_back(p->write);
        records += p->records;
      }
      const auto started = std::chrono::steady_clock::now();
      absl::Status st = run_(writes);
      if (on_commit_) {
        on_commit_(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
            records);
      }
      q.lock();
      for (Pending* p : batch) {
        p->result = st;
        p->done = true;
      }
      committing_ = false;
      ++batches_;
      writes_ += records;
      cv_.notify_all();
    }
    return me.result;
  }

 private:
  struct Pending {
    const Write* write;
    size_t records;
    absl::Status result;
    bool done = false;
  };
  const std::string name_;
  const Run run_;
  const CommitObserver on_commit_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending*> queue_;
  bool committing_ = false;
  uint64_t batches_ = 0;
  uint64_t writes_ = 0;
};

// Items handed to `run` in batches by a thread of its own: everything
// pushed while one batch runs is the next batch. For writers that do not
// wait (Store::PutJobAsync): the thread commits a batch through the group
// commit above and calls the writers back.
//
// Thread-safe. The thread starts at the first Push; Stop (and the
// destructor) runs what is still queued, then ends it.
template <typename Item>
class BatchThread {
 public:
  using Run = std::function<void(std::vector<Item>& batch)>;
  explicit BatchThread(Run run) : run_(std::move(run)) {}
  ~BatchThread() { Stop(); }

  void Push(Item item) {
    bool wake;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!thread_.joinable() && !stopped_) thread_ = std::thread([this] { Loop(); });
      queue_.push_back(std::move(item));
      wake = waiting_;
    }
    if (wake) cv_.notify_one();
  }
  // Call before anything `run` uses goes away. Pushes after it are not run.
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopped_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Loop() {
    std::vector<Item> batch;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        waiting_ = true;
        cv_.wait(lock, [this] { return !queue_.empty() || stopped_; });
        waiting_ = false;
        if (queue_.empty()) return;  // stopped, and nothing left
        batch.swap(queue_);
      }
      run_(batch);
      batch.clear();
    }
  }

  const Run run_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Item> queue_;  // guarded by mu_
  bool waiting_ = false;     // the thread waits for work; guarded by mu_
  bool stopped_ = false;     // guarded by mu_
  std::thread thread_;
};

}  // namespace portolan::store
