// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "portolan/v1/policy.pb.h"

namespace portolan::network {

// Shortest-RTT paths between every pair of sites over the links that are up,
// with the bottleneck bandwidth along each path. Between two sites joined by
// several links, the lowest-RTT one (then the widest) carries the path.
//
// Built once per policy or link change (a cable cut builds a new model) and
// immutable afterwards, so it is safe to share between threads.
class NetworkModel {
 public:
  static constexpr double kUnreachable = -1;

  NetworkModel() = default;
  NetworkModel(const std::vector<v1::Site>& sites, const std::vector<v1::Link>& links);

  // Index of a site id, or -1.
  int Index(const std::string& site) const;
  int size() const { return static_cast<int>(ids_.size()); }
  const std::string& id(int index) const { return ids_[index]; }

  // RTT in ms along the shortest path; 0 for the same site; kUnreachable.
  double Rtt(int a, int b) const { return rtt_[a * n_ + b]; }
  // Bottleneck Gbps along that path; +infinity for the same site; 0 unreachable.
  double BottleneckGbps(int a, int b) const { return gbps_[a * n_ + b]; }
  // Seconds to move `size_gb` gigabytes from a to b: RTT + size / bottleneck.
  // 0 for the same site, kUnreachable when no path exists.
  double TransferSeconds(int a, int b, double size_gb) const;
  // The same with `gbps` (a measured figure) in place of the bottleneck.
  double TransferSeconds(int a, int b, double size_gb, double gbps) const;
  // Site ids along the path (including both ends) and the link ids used.
  std::vector<std::string> PathSites(int a, int b) const;
  std::vector<std::string> PathLinks(int a, int b) const;

  // The links, the all-pairs matrix, and warnings (isolated sites).
  v1::NetworkView View() const;

 private:
  int n_ = 0;
  std::vector<std::string> ids_;
  std::map<std::string, int> index_;
  std::vector<v1::Site> sites_;
  std::vector<v1::Link> links_;
  std::vector<double> rtt_;
  std::vector<double> gbps_;
  std::vector<int> next_;       // next hop on the path a -> b, -1 none
  std::vector<int> edge_link_;  // link index carrying the direct edge a -> b, -1 none
};

// Throughput that staging transfers measured from one site to another
// (docs/datasets.md, "Measured transfers"): shown by GET /v1/network beside
// the configured Gbps, and used by data-gravity scoring when the policy's
// datasets.use_measured_throughput says so.
struct MeasuredPath {
  double gbps = 0;  // exponentially weighted: each new transfer weighs kWeight
  uint32_t transfers = 0;
  absl::Time at;  // the latest transfer's end
};

// Not thread-safe: the scheduler keeps one under its lock, where decisions
// read it.
class MeasuredPaths {
 public:
  static constexpr double kWeight = 0.3;
  // Transfers smaller than this measure the handshake more than the path.
  static constexpr uint64_t kMinBytes = 1 << 20;

  // Folds in one transfer of `bytes` in `seconds` from `from` to `to`; false
  // (nothing recorded) when it is too small or took no time.
  bool Record(const std::string& from, const std::string& to, uint64_t bytes, double seconds,
              absl::Time at);
  const MeasuredPath* Find(const std::string& from, const std::string& to) const;
  bool empty() const { return paths_.empty(); }
  // The view's matrix entries (from -> to) and each link that alone carries
  // a measured path (either direction: the latest figure, transfers summed).
  void Annotate(v1::NetworkView& view) const;

 private:
  // from -> to -> figure; looked up by string_view, without copying the ids
  // (decisions look each dataset's path up per site).
  std::map<std::string, std::map<std::string, MeasuredPath, std::less<>>, std::less<>> paths_;
};

// Whether a link is up (an absent `up` means up).
inline bool LinkUp(const v1::Link& l) { return !l.has_up() || l.up(); }

}  // namespace portolan::network
