// SPDX-License-Identifier: Apache-2.0
// QueueSort plugins: the order each scheduling pass tries waiting jobs in.
#include <array>
#include <deque>
#include <functional>
#include <map>
#include <string>

#include "policy/placement/plugins/plugins.h"

namespace portolan::placement {
namespace {

// Higher priority first; within a priority, the tenant whose dominant share
// of the cluster (max of its cpu, memory and gpu shares held by placed or
// running jobs), divided by its weight, is smallest goes next (weighted
// dominant-resource fairness, Ghodsi et al. 2011); each tenant's jobs FIFO.
class DrfQueue : public JobQueue {
 public:
  explicit DrfQueue(const v1::Resources& total)
      : total_{static_cast<double>(total.cpus()), static_cast<double>(total.memory_mb()),
               static_cast<double>(total.gpus())} {}
  void Add(const QueuedJob& j) override {
    levels_[j.priority][j.tenant].push_back(j.id);
    if (j.weight > 0) weights_[j.tenant] = j.weight;
  }
  void Charge(const std::string& tenant, const v1::Resources& r) override {
    auto& u = usage_[tenant];
    u[0] += r.cpus();
    u[1] += r.memory_mb();
    u[2] += r.gpus();
  }
  bool Next(std::string* id) override {
    while (!levels_.empty()) {
      auto& tenants = levels_.begin()->second;
      const std::string* best = nullptr;
      double best_share = 0;
      for (auto& [tenant, ids] : tenants) {
        if (ids.empty()) continue;
        const double share = Share(tenant);
        if (best == nullptr || share < best_share) {
          best = &tenant;
          best_share = share;
        }
      }
      if (best == nullptr) {
        levels_.erase(levels_.begin());
        continue;
      }
      auto& ids = tenants[*best];
      *id = ids.front();
      ids.pop_front();
      return true;
    }
    return false;
  }

 private:
  double Share(const std::string& tenant) const {
    auto it = usage_.find(tenant);
    if (it == usage_.end()) return 0;
    double share = 0;
    for (int k = 0; k < 3; ++k) {
      if (total_[k] > 0) share = std::max(share, it->second[k] / total_[k]);
    }
    auto w = weights_.find(tenant);
    return w == weights_.end() ? share : share / w->second;
  }

  std::array<double, 3> total_;
  std::map<int, std::map<std::string, std::deque<std::string>>, std::greater<int>> levels_;
  std::map<std::string, std::array<double, 3>> usage_;
  std::map<std::string, double> weights_;
};

// The order jobs were added in (the scheduler's priority, then submit order).
class FifoQueue : public JobQueue {
 public:
  void Add(const QueuedJob& j) override { ids_.push_back(j.id); }
  void Charge(const std::string&, const v1::Resources&) override {}
  bool Next(std::string* id) override {
    if (ids_.empty()) return false;
    *id = std::move(ids_.front());
    ids_.pop_front();
    return true;
  }

 private:
  std::deque<std::string> ids_;
};

class DrfQueueSort : public QueueSortPlugin {
 public:
  std::string_view Name() const override { return "drf"; }
  bool FifoWithinTenant() const override { return true; }
  std::unique_ptr<JobQueue> NewQueue(const v1::Resources& capacity) const override {
    return std::make_unique<DrfQueue>(capacity);
  }
};

class PriorityFifoQueueSort : public QueueSortPlugin {
 public:
  std::string_view Name() const override { return "priority_fifo"; }
  bool FifoWithinTenant() const override { return true; }
  std::unique_ptr<JobQueue> NewQueue(const v1::Resources&) const override {
    return std::make_unique<FifoQueue>();
  }
};

}  // namespace

std::unique_ptr<Plugin> NewDrfQueueSort() { return std::make_unique<DrfQueueSort>(); }
std::unique_ptr<Plugin> NewPriorityFifoQueueSort() {
  return std::make_unique<PriorityFifoQueueSort>();
}

}  // namespace portolan::placement
