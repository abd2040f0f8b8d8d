// SPDX-License-Identifier: Apache-2.0
#include "portolan/network/network.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "portolan/base/strings.h"

namespace portolan::network {

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
}

NetworkModel::NetworkModel(const std::vector<v1::Site>& sites, const std::vector<v1::Link>& links)
    : sites_(sites), links_(links) {
  n_ = static_cast<int>(sites.size());
  for (int i = 0; i < n_; ++i) {
    ids_.push_back(sites[i].id());
    index_[sites[i].id()] = i;
  }
  const size_t nn = static_cast<size_t>(n_) * n_;
  std::vector<double> dist(nn, kInf);
  gbps_.assign(nn, 0);
  next_.assign(nn, -1);
  edge_link_.assign(nn, -1);
  for (int i = 0; i < n_; ++i) {
    dist[i * n_ + i] = 0;
    gbps_[i * n_ + i] = kInf;
    next_[i * n_ + i] = i;
  }
  for (size_t k = 0; k < links.size(); ++k) {
    const v1::Link& l = links[k];
    if (!LinkUp(l)) continue;
    int a = Index(l.a()), b = Index(l.b());
    if (a < 0 || b < 0 || a == b) continue;
    for (auto [x, y] : {std::pair{a, b}, std::pair{b, a}}) {
      size_t e = x * n_ + y;
      bool better = l.rtt_ms() < dist[e] || (l.rtt_ms() == dist[e] && l.gbps() > gbps_[e]);
      if (better) {
        dist[e] = l.rtt_ms();
        gbps_[e] = l.gbps();
        next_[e] = y;
        edge_link_[e] = static_cast<int>(k);
      }
    }
  }
  // Floyd-Warshall; ties on RTT prefer the wider path. A few dozen sites at
  // most, so O(n^3) is nothing.
  for (int k = 0; k < n_; ++k) {
    for (int i = 0; i < n_; ++i) {
      if (dist[i * n_ + k] == kInf) continue;
      for (int j = 0; j < n_; ++j) {
        double via = dist[i * n_ + k] + dist[k * n_ + j];
        double width = std::min(gbps_[i * n_ + k], gbps_[k * n_ + j]);
        size_t e = i * n_ + j;
        if (via < dist[e] - 1e-9 ||
            (std::abs(via - dist[e]) <= 1e-9 && width > gbps_[e] && i != j)) {
          dist[e] = via;
          gbps_[e] = width;
          next_[e] = next_[i * n_ + k];
        }
      }
    }
  }
  rtt_.resize(nn);
  for (size_t e = 0; e < nn; ++e) rtt_[e] = dist[e] == kInf ? kUnreachable : dist[e];
}

int NetworkModel::Index(const std::string& site) const {
  auto it = index_.find(site);
  return it == index_.end() ? -1 : it->second;
}

double NetworkModel::TransferSeconds(int a, int b, double size_gb) const {
  if (a == b) return 0;
  return TransferSeconds(a, b, size_gb, BottleneckGbps(a, b));
}

double NetworkModel::TransferSeconds(int a, int b, double size_gb, double gbps) const {
  if (a == b) return 0;
  double rtt = Rtt(a, b);
  if (rtt < 0) return kUnreachable;
  return rtt / 1000.0 + (gbps > 0 ? size_gb * 8.0 / gbps : kInf);
}

std::vector<std::string> NetworkModel::PathSites(int a, int b) const {
  std::vector<std::string> out;
  if (a < 0 || b < 0 || next_[a * n_ + b] < 0) return out;
  int cur = a;
  out.push_back(ids_[cur]);
  while (cur != b && static_cast<int>(out.size()) <= n_) {
    cur = next_[cur * n_ + b];
    out.push_back(ids_[cur]);
  }
  return out;
}

std::vector<std::string> NetworkModel::PathLinks(int a, int b) const {
  std::vector<std::string> out;
  if (a < 0 || b < 0 || next_[a * n_ + b] < 0) return out;
  int cur = a;
  while (cur != b && static_cast<int>(out.size()) <= n_) {
    int nxt = next_[cur * n_ + b];
    int link = edge_link_[cur * n_ + nxt];
    if (link >= 0) out.push_back(links_[link].id());
    cur = nxt;
  }
  return out;
}

v1::NetworkView NetworkModel::View() const {
  v1::NetworkView v;
  for (const auto& s : sites_) *v.add_sites() = s;
  for (auto l : links_) {
    if (!l.has_up()) l.set_up(true);
    *v.add_links() = l;
  }
  for (int i = 0; i < n_; ++i) {
    bool linked = false;
    for (int j = 0; j < n_; ++j) {
      if (i == j) continue;
      if (Rtt(i, j) >= 0) linked = true;
      v1::RttEntry* e = v.add_matrix();
      e->set_from(ids_[i]);
      e->set_to(ids_[j]);
      e->set_rtt_ms(Rtt(i, j));
      e->set_bottleneck_gbps(Rtt(i, j) >= 0 ? BottleneckGbps(i, j) : 0);
      for (auto& s : PathSites(i, j)) e->add_path(s);
      for (auto& l : PathLinks(i, j)) e->add_links(l);
    }
    if (!linked && n_ > 1) {
      v.add_warnings(absl::StrCat("site ", ids_[i],
                                  " has no working link to any other site: only jobs whose data is "
                                  "already there can use it"));
    }
  }
  return v;
}

bool MeasuredPaths::Record(const std::string& from, const std::string& to, uint64_t bytes,
                           double seconds, absl::Time at) {
  if (bytes < kMinBytes || !(seconds > 0) || from == to) return false;
  const double gbps = static_cast<double>(bytes) * 8.0 / 1e9 / seconds;
  MeasuredPath& m = paths_[from][to];
  m.gbps = m.transfers == 0 ? gbps : kWeight * gbps + (1 - kWeight) * m.gbps;
  ++m.transfers;
  m.at = at;
  return true;
}

const MeasuredPath* MeasuredPaths::Find(const std::string& from, const std::string& to) const {
  auto f = paths_.find(from);
  if (f == paths_.end()) return nullptr;
  auto t = f->second.find(to);
  return t == f->second.end() ? nullptr : &t->second;
}

void MeasuredPaths::Annotate(v1::NetworkView& view) const {
  std::map<std::string, MeasuredPath> by_link;
  for (v1::RttEntry& e : *view.mutable_matrix()) {
    const MeasuredPath* m = Find(e.from(), e.to());
    if (m == nullptr) continue;
    e.set_measured_gbps(m->gbps);
    e.set_measured_transfers(m->transfers);
    *e.mutable_measured_at() = base::ToProto(m->at);
    if (e.links_size() != 1) continue;
    MeasuredPath& l = by_link[e.links(0)];
    if (l.transfers == 0 || m->at > l.at) {
      l.gbps = m->gbps;
      l.at = m->at;
    }
    l.transfers += m->transfers;
  }
  for (v1::Link& link : *view.mutable_links()) {
    auto it = by_link.find(link.id());
    if (it == by_link.end()) continue;
    link.set_measured_gbps(it->second.gbps);
    link.set_measured_transfers(it->second.transfers);
    *link.mutable_measured_at() = base::ToProto(it->second.at);
  }
}

}  // namespace portolan::network
