// SPDX-License-Identifier: Apache-2.0
// The CLI's human-readable output (-o table), one printer per answer. Kept
// apart from the commands so that tests check them without a server.
#include "api/cli/printers.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "portolan/base/strings.h"
#include "portolan/topology/gpu_id.h"

namespace portolan::cli {

std::string Short(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", base::FromProto(ts), absl::LocalTimeZone());
}

// Exit code column: only for jobs whose process ended.
std::string ExitColumn(const v1::Job& j) {
  bool ended = j.state() == v1::Job::succeeded || j.state() == v1::Job::failed ||
               j.state() == v1::Job::cancelled;
  return ended ? absl::StrCat(j.exit_code()) : "-";
}

void PrintJobsTable(std::ostream& out, const v1::ListJobsResponse& list) {
  out << absl::StrFormat("%-17s %-18s %-10s %-14s %-20s %-6s %s\n", "ID", "NAME", "TENANT", "STATE",
                         "SITE", "EXIT", "REASON");
  for (const v1::Job& j : list.jobs()) {
    std::string reason = j.reason();
    if (reason.size() > 60) reason = reason.substr(0, 57) + "...";
    out << absl::StrFormat(
        "%-17s %-18s %-10s %-14s %-20s %-6s %s\n", j.id(), j.name().substr(0, 18),
        j.tenant().substr(0, 10), v1::Job::State_Name(j.state()),
        j.allocation().site().empty() ? "-" : j.allocation().site(), ExitColumn(j), reason);
  }
  if (!list.next_page_token().empty())
    out << absl::StrFormat("(more: --page-token %s)\n", list.next_page_token());
}

void PrintTasksTable(std::ostream& out, const v1::ListTasksResponse& list) {
  v1::ListJobsResponse as_jobs;
  *as_jobs.mutable_jobs() = list.tasks();
  as_jobs.set_next_page_token(list.next_page_token());
  PrintJobsTable(out, as_jobs);
}

void PrintJob(std::ostream& out, const v1::Job& j) {
  out << absl::StrFormat("Job %s (%s)\n", j.id(), j.name());
  out << absl::StrFormat("  tenant:     %s\n  kind:       %s\n  state:      %s\n  reason:     %s\n",
                         j.tenant(), v1::Job::Kind_Name(j.kind()), v1::Job::State_Name(j.state()),
                         j.reason());
  out << absl::StrFormat("  command:    %s\n", absl::StrJoin(j.command(), " "));
  out << absl::StrFormat("  resources:  %d cpus, %d MiB, %d gpus\n", j.resources().cpus(),
                         j.resources().memory_mb(), j.resources().gpus());
  if (j.has_array()) {
    if (j.array_job().empty()) {
      std::vector<std::string> counts;
      for (const auto& [state, n] :
           std::map<std::string, uint32_t>(j.task_counts().begin(), j.task_counts().end())) {
        counts.push_back(absl::StrCat(n, " ", state));
      }
      out << absl::StrFormat(
          "  array:      %u tasks%s; %s (portolan tasks %s)\n", j.array().count(),
          j.array().parallelism() > 0
              ? absl::StrCat(", at most ", j.array().parallelism(), " at once")
              : "",
          counts.empty() ? "no task counts" : absl::StrJoin(counts, ", "), j.id());
    } else {
      out << absl::StrFormat("  array:      task %u of %u of array %s\n", j.array_index(),
                             j.array().count(), j.array_job());
    }
  }
  if (j.has_gang()) {
    const std::string how = absl::StrCat(
        j.gang().colocate() == v1::GangSpec::site ? "one site" : "any sites",
        j.gang().max_rtt_ms() > 0 ? absl::StrCat(" within ", j.gang().max_rtt_ms(), " ms") : "");
    if (j.array_job().empty()) {
      std::vector<std::string> counts;
      for (const auto& [state, n] :
           std::map<std::string, uint32_t>(j.task_counts().begin(), j.task_counts().end()))
        counts.push_back(absl::StrCat(n, " ", state));
      out << absl::StrFormat(
          "  gang:       %u members, %s; %s (portolan tasks %s)\n", j.gang().tasks(), how,
          counts.empty() ? "no task counts" : absl::StrJoin(counts, ", "), j.id());
    } else {
      out << absl::StrFormat(
          "  gang:       member %u of %u of gang %s (%s)%s\n", j.array_index(), j.gang().tasks(),
          j.array_job(), how,
          j.gang_members_size() > 0
              ? absl::StrCat("; members on ", absl::StrJoin(j.gang_members(), ","))
              : "");
    }
  }
  if (j.depends_on_size() > 0) {
    std::vector<std::string> deps;
    for (const v1::Dependency& d : j.depends_on())
      deps.push_back(
          absl::StrCat(d.job(), " (", v1::Dependency::Condition_Name(d.condition()), ")"));
    out << absl::StrFormat("  depends on: %s\n", absl::StrJoin(deps, ", "));
  }
  if (!j.allocation().agent().empty()) {
    const v1::Allocation& a = j.allocation();
    out << absl::StrFormat("  placed on:  agent %s at site %s (attempt %d)\n", a.agent(), a.site(),
                           j.attempt());
    if (a.pus_size() > 0) {
      std::vector<std::string> mem;
      for (const auto& [node, mb] :
           std::map<uint32_t, int32_t>(a.numa_memory_mb().begin(), a.numa_memory_mb().end())) {
        mem.push_back(absl::StrCat(mb, " MiB on NUMA ", node));
      }
      out << absl::StrFormat(
          "  allocation: PUs %s, NUMA node(s) %s%s%s\n",
          base::FormatIdList({a.pus().begin(), a.pus().end()}),
          base::FormatIdList({a.numa_nodes().begin(), a.numa_nodes().end()}),
          mem.empty() ? "" : absl::StrCat(", ", absl::StrJoin(mem, ", ")),
          a.gpu_ids().empty() ? "" : absl::StrCat(", GPUs ", absl::StrJoin(a.gpu_ids(), ",")));
    }
    out << absl::StrFormat("  topology:   numa %s, smt %s\n",
                           v1::TopologyRequest::Numa_Name(j.topology().numa()),
                           v1::TopologyRequest::Smt_Name(j.topology().smt()));
  }
  out << absl::StrFormat("  submitted:  %s\n  started:    %s\n  finished:   %s\n",
                         Short(j.submitted_at()), Short(j.started_at()), Short(j.finished_at()));
  if (j.state() == v1::Job::succeeded || j.state() == v1::Job::failed ||
      j.state() == v1::Job::cancelled) {
    out << absl::StrFormat("  exit code:  %d%s\n", j.exit_code(),
                           j.signal() ? absl::StrCat(" (signal ", j.signal(), ")") : "");
  }
  PrintJobData(out, j);
  out << absl::StrFormat("  events:\n");
  for (const v1::JobEvent& e : j.events()) {
    out << absl::StrFormat("    %s  %-13s %s\n", Short(e.time()), v1::Job::State_Name(e.state()),
                           e.message());
  }
}

// A text picture of the machine, like lstopo, with the job holding each PU.
void DrawAgent(std::ostream& out, const v1::Agent& a) {
  const v1::Topology& t = a.topology();
  out << absl::StrFormat(
      "Agent %s at site %s: %s, %s%s\n", a.id(), a.site(), v1::Agent::State_Name(a.state()),
      a.connected() ? "connected" : "disconnected",
      a.measured_rtt_ms() > 0 ? absl::StrFormat(", RTT %.2f ms", a.measured_rtt_ms()) : "");
  out << absl::StrFormat(
      "Machine (%s): %u package(s), %d NUMA node(s), %d cores, %u PUs, %u MiB, %d GPU(s)\n",
      t.source(), t.packages(), t.numa_nodes_size(), t.cores_size(), t.pus(), t.memory_mb(),
      t.gpus_size());
  if (a.memory_available_mb() > 0)
    out << absl::StrFormat("Host memory available: %u MiB (MemAvailable)\n",
                           a.memory_available_mb());
  if (a.has_isolation()) {
    const v1::Isolation& iso = a.isolation();
    std::vector<std::string> has, lacks;
    auto put = [&](bool on, const char* what) { (on ? has : lacks).push_back(what); };
    put(iso.uid_per_job(), "uid per job");
    put(iso.pid_ns(), "PID namespace");
    put(iso.mount_ns(), "mount namespace");
    put(iso.memory_limit(), "memory limit");
    put(iso.cpuset(), "cpuset");
    put(iso.pids_limit(), "pids limit");
    put(iso.tree_kill(), "whole-tree kill");
    out << absl::StrFormat(
        "Isolation: jobs as %s; cgroup %s; %s%s\n", iso.user(),
        v1::Isolation::Cgroup_Name(iso.cgroup()), absl::StrJoin(has, ", "),
        lacks.empty() ? "" : absl::StrCat("; without ", absl::StrJoin(lacks, ", ")));
  }
  out << absl::StrFormat("Allocated: %d/%d PUs, %d/%d MiB, %d/%d GPUs; jobs: %s\n",
                         a.allocated().cpus(), a.capacity().cpus(), a.allocated().memory_mb(),
                         a.capacity().memory_mb(), a.allocated().gpus(), a.capacity().gpus(),
                         a.jobs().empty() ? "none" : absl::StrJoin(a.jobs(), ", "));
  // Short labels for jobs: A, B, C ... with a legend.
  std::map<std::string, char> label;
  for (const auto& [pu, job] : a.pu_jobs()) label.emplace(job, 0);
  for (const auto& [gpu, job] : a.gpu_jobs()) label.emplace(job, 0);
  char next = 'A';
  for (auto& [job, l] : label) l = next <= 'Z' ? next++ : '*';
  auto owner = [&](uint32_t pu) -> char {
    auto it = a.pu_jobs().find(pu);
    return it == a.pu_jobs().end() ? '.' : label[it->second];
  };
  std::vector<int32_t> nodes;
  for (const auto& n : t.numa_nodes()) nodes.push_back(static_cast<int32_t>(n.os_index()));
  if (nodes.empty()) nodes.push_back(-1);
  for (uint32_t pkg = 0; pkg < std::max<uint32_t>(1, t.packages()); ++pkg) {
    out << absl::StrFormat("  Package %u\n", pkg);
    for (int32_t node : nodes) {
      std::vector<const v1::Core*> cores;
      for (const auto& c : t.cores()) {
        if (c.package() == pkg && (node < 0 || c.numa() == node)) cores.push_back(&c);
      }
      if (cores.empty()) continue;
      int mem_total = 0;
      for (const auto& n : t.numa_nodes()) {
        if (static_cast<int32_t>(n.os_index()) == node) mem_total = static_cast<int>(n.memory_mb());
      }
      auto free_it = a.numa_free_memory_mb().find(static_cast<uint32_t>(std::max(node, 0)));
      out << absl::StrFormat(
          "    NUMA %d (%d MiB, %s MiB free)\n", node, mem_total,
          free_it == a.numa_free_memory_mb().end() ? "?" : absl::StrCat(free_it->second));
      std::string line;
      int on_line = 0;
      for (const v1::Core* c : cores) {
        std::string cell = absl::StrCat("[", c->index(), ":");
        for (uint32_t pu : c->pus()) cell.push_back(owner(pu));
        cell += "]";
        absl::StrAppend(&line, cell, " ");
        if (++on_line == 8) {
          out << absl::StrFormat("      %s\n", line);
          line.clear();
          on_line = 0;
        }
      }
      if (!line.empty()) out << absl::StrFormat("      %s\n", line);
      for (const auto& g : t.gpus()) {
        if (g.numa() != node) continue;
        auto it = a.gpu_jobs().find(topology::GpuId(g));
        out << absl::StrFormat("      GPU %s %s %s [%c]\n", g.name(), g.vendor(), g.model(),
                               it == a.gpu_jobs().end() ? '.' : label[it->second]);
      }
    }
  }
  for (const auto& g : t.gpus()) {
    if (g.numa() >= 0) continue;
    auto it = a.gpu_jobs().find(topology::GpuId(g));
    out << absl::StrFormat("  GPU %s %s %s (NUMA unknown) [%c]\n", g.name(), g.vendor(), g.model(),
                           it == a.gpu_jobs().end() ? '.' : label[it->second]);
  }
  for (const auto& n : t.numa_nodes()) {
    if (!n.memory_only()) continue;
    auto free_it = a.numa_free_memory_mb().find(n.os_index());
    out << absl::StrFormat(
        "  NUMA %u %s, memory only (%u MiB, %s MiB free), near NUMA %s\n", n.os_index(), n.kind(),
        n.memory_mb(),
        free_it == a.numa_free_memory_mb().end() ? "?" : absl::StrCat(free_it->second),
        n.near_numa().empty() ? "?"
                              : base::FormatIdList({n.near_numa().begin(), n.near_numa().end()}));
  }
  out << absl::StrFormat("  [core:PUs] . free");
  for (const auto& [job, l] : label) out << absl::StrFormat(", %c %s", l, job);
  out << absl::StrFormat("\n");
}

void PrintAgentsTable(std::ostream& out, const v1::ListAgentsResponse& list) {
  out << absl::StrFormat("%-22s %-20s %-9s %-9s %-12s %-14s %-5s %s\n", "ID", "SITE", "STATE",
                         "CONNECTED", "CPUS(free)", "MEM MiB(free)", "GPUS", "JOBS");
  for (const v1::Agent& a : list.agents()) {
    out << absl::StrFormat(
        "%-22s %-20s %-9s %-9s %-12s %-14s %-5d %d\n", a.id(), a.site(),
        v1::Agent::State_Name(a.state()), a.connected() ? "yes" : "no",
        absl::StrCat(a.capacity().cpus(), "(", a.capacity().cpus() - a.allocated().cpus(), ")"),
        absl::StrCat(a.capacity().memory_mb(), "(",
                     a.capacity().memory_mb() - a.allocated().memory_mb(), ")"),
        a.capacity().gpus(), a.jobs_size());
  }
}

std::string Fixed(double v, int prec) {
  if (v < 0) return "-";
  return absl::StrFormat("%.*f", prec, v);
}

void PrintDecision(std::ostream& out, const v1::Decision& d, const std::string& ended) {
  if (d.feasible()) {
    const v1::PlacementResult& p = d.placement();
    out << absl::StrFormat("Placement: agent %s at site %s, score %.1f (policy %s)\n", p.agent(),
                           p.site(), p.score(), d.policy_version());
    std::vector<std::string> parts;
    for (const auto& [k, v] : std::map<std::string, double>(p.scores().begin(), p.scores().end())) {
      parts.push_back(absl::StrFormat("%s %.1f", k, v));
    }
    out << absl::StrFormat("  scores:     %s\n", absl::StrJoin(parts, ", "));
    for (const v1::Compliance& c : p.compliance()) {
      out << absl::StrFormat("  compliance: %s under %s%s%s\n", c.dataset(), c.rule(),
                             c.instrument().empty() ? "" : absl::StrCat(" with ", c.instrument()),
                             c.export_() ? " (export)" : "");
    }
    for (int i = 0; i < d.gang_members_size(); ++i) {
      const v1::PlacementResult& m = d.gang_members(i);
      out << absl::StrFormat("  %s %-4d agent %s at site %s, PUs %s\n", i == 0 ? "gang:" : "     ",
                             i, m.agent(), m.site(), absl::StrJoin(m.cpus(), ","));
    }
  } else if (!ended.empty()) {
    out << absl::StrFormat(
        "No placement: the job ended %s without ever being placed (policy %s):\n  %s\n", ended,
        d.policy_version(), d.reason());
  } else {
    out << absl::StrFormat("No placement%s (policy %s):\n  %s\n",
                           d.unschedulable() ? " possible: unschedulable" : " yet",
                           d.policy_version(), d.reason());
  }
  out << absl::StrFormat("\n%-20s %-6s %-8s %-22s %-8s %-11s %-9s %s\n", "SITE", "REGIME",
                         "ALLOWED", "RESIDENCY", "RTT ms", "TRANSFER s", "AGENTS", "WHY NOT");
  for (const v1::SiteDecision& sd : d.sites()) {
    std::string residency =
        sd.has_residency()
            ? absl::StrCat(sd.residency().allowed() ? "ok " : "no ", sd.residency().rule())
            : "-";
    out << absl::StrFormat("%-20s %-6s %-8s %-22s %-8s %-11s %-9s %s\n", sd.site(), sd.regime(),
                           sd.allowed() ? "yes" : "no", residency.substr(0, 22), Fixed(sd.rtt_ms()),
                           Fixed(sd.transfer_s()),
                           absl::StrCat(sd.agents().feasible(), "/", sd.agents().considered()),
                           absl::StrJoin(sd.rejected(), "; "));
  }
  // Most frequent reason first, then by name: the same order every time
  // (a proto map has none).
  std::vector<std::pair<uint32_t, std::string>> by_count;
  for (const auto& [k, v] : d.agents().rejected()) by_count.emplace_back(v, k);
  std::sort(by_count.begin(), by_count.end(), [](const auto& x, const auto& y) {
    return x.first != y.first ? x.first > y.first : x.second < y.second;
  });
  std::vector<std::string> counts;
  for (const auto& [v, k] : by_count) counts.push_back(absl::StrCat(v, " ", k));
  out << absl::StrFormat(
      "\nAgents: %d/%d feasible%s\n", d.agents().feasible(), d.agents().considered(),
      counts.empty() ? "" : absl::StrCat("; rejected: ", absl::StrJoin(counts, ", ")));
}

bool Terminal(v1::Job::State s) {
  return s == v1::Job::succeeded || s == v1::Job::failed || s == v1::Job::cancelled ||
         s == v1::Job::lost || s == v1::Job::unschedulable;
}

void PrintValidation(std::ostream& out, const std::string& file, const v1::ValidationResult& r) {
  out << absl::StrFormat("%s: %s\n", file, r.valid() ? "valid" : "INVALID");
  for (const auto& e : r.errors()) out << absl::StrFormat("  error:   %s\n", e);
  for (const auto& w : r.warnings()) out << absl::StrFormat("  warning: %s\n", w);
}

void PrintPolicyVersions(std::ostream& out, const v1::ListPolicyVersionsResponse& r) {
  out << absl::StrFormat("%-8s %-20s %-28s %s\n", "VERSION", "APPLIED", "BY", "SUMMARY");
  for (const auto& v : r.versions()) {
    out << absl::StrFormat("%-8s %-20s %-28s %s\n", v.version(), Short(v.applied_at()),
                           v.applied_by(), v.summary());
  }
}

void PrintLink(std::ostream& out, const v1::Link& l) {
  out << absl::StrFormat("link %s (%s %s-%s) is %s\n", l.id(),
                         l.cable().empty() ? v1::Link::Kind_Name(l.kind()) : l.cable(), l.a(),
                         l.b(), l.up() ? "up" : "down");
}

void PrintNetwork(std::ostream& out, const v1::NetworkView& n) {
  out << absl::StrFormat("%-22s %-18s %-18s %-11s %-8s %-7s %-4s %s\n", "LINK", "A", "B", "KIND",
                         "RTT ms", "Gbps", "UP", "CABLE");
  for (const auto& l : n.links()) {
    out << absl::StrFormat("%-22s %-18s %-18s %-11s %-8s %-7s %-4s %s%s\n", l.id(), l.a(), l.b(),
                           v1::Link::Kind_Name(l.kind()), Fixed(l.rtt_ms()), Fixed(l.gbps(), 0),
                           l.up() ? "yes" : "NO", l.cable(), l.estimate() ? " (estimate)" : "");
  }
  // Site ids share long prefixes (lingang-idc-1, lingang-idc-2,
  // lingang-offshore-1): the columns are numbered as the rows are.
  out << absl::StrFormat("\nShortest RTT (ms) over links that are up (column N is row N):\n%-24s",
                         "");
  std::vector<std::string> ids;
  for (const auto& site : n.sites()) ids.push_back(site.id());
  for (size_t i = 0; i < ids.size(); ++i)
    out << absl::StrFormat(" %8s", absl::StrCat("[", i + 1, "]"));
  out << "\n";
  std::map<std::pair<std::string, std::string>, double> rtt;
  for (const auto& e : n.matrix()) rtt[{e.from(), e.to()}] = e.rtt_ms();
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string& from = ids[i];
    out << absl::StrFormat("%-24s", absl::StrCat("[", i + 1, "] ", from));
    for (const auto& to : ids) {
      auto it = rtt.find({from, to});
      const double v = it == rtt.end() ? 0 : it->second;
      out << absl::StrFormat(" %8s", from == to ? "-" : v < 0 ? "none" : Fixed(v));
    }
    out << "\n";
  }
  for (const auto& m : n.measured())
    out << absl::StrFormat("measured: agent %s (%s) %.2f ms to the scheduler\n", m.agent(),
                           m.site(), m.rtt_ms());
  PrintMeasuredPaths(out, n);
  for (const auto& w : n.warnings()) out << absl::StrFormat("warning: %s\n", w);
}

void PrintSites(std::ostream& out, const v1::ListSitesResponse& r) {
  out << absl::StrFormat("%-20s %-6s %-8s %-9s %s\n", "SITE", "REGIME", "OFFSHORE", "PRICE",
                         "ZONES");
  for (const auto& site : r.sites()) {
    out << absl::StrFormat("%-20s %-6s %-8s %-9s %s\n", site.id(), site.jurisdiction(),
                           site.offshore() ? "yes" : "no", Fixed(site.price_per_core_hour(), 3),
                           absl::StrJoin(site.zones(), ","));
  }
}

void PrintCluster(std::ostream& out, const v1::ClusterView& v) {
  out << absl::StrFormat("%-20s %-8s %-30s %-22s %s\n", "MEMBER", "ROLE", "REST", "AGENT RPC",
                         "SINCE");
  for (const auto& m : v.members()) {
    out << absl::StrFormat(
        "%-20s %-8s %-30s %-22s %s\n", m.id(), m.role(), m.rest_addr(), m.rpc_addr(),
        m.has_since()
            ? absl::FormatTime(absl::RFC3339_sec, base::FromProto(m.since()), absl::UTCTimeZone())
            : "-");
  }
  out << "leader: " << (v.leader().empty() ? "(none elected)" : v.leader()) << "\n";
  out << "store: " << v.store().kind();
  if (v.store().endpoints_size() > 0) out << " " << absl::StrJoin(v.store().endpoints(), ",");
  out << (v.store().healthy() ? " (healthy)" : " (NOT healthy)") << "\n";
  for (const std::string& p : v.store().problems()) out << "  " << p << "\n";
}

namespace {
std::string Scope(const v1::Instrument& i) {
  return absl::StrCat(i.from().empty() ? "*" : i.from(), "->", i.to().empty() ? "*" : i.to());
}
}  // namespace

void PrintExpiringInstruments(std::ostream& out, const v1::ListTenantsResponse& r, int days,
                              absl::CivilDay today) {
  out << absl::StrFormat("%-16s %-26s %-18s %-10s %-11s %s\n", "TENANT", "INSTRUMENT", "REFERENCE",
                         "SCOPE", "EXPIRES", "DAYS LEFT");
  int rows = 0;
  for (const auto& t : r.tenants()) {
    for (const auto& i : t.instruments()) {
      absl::CivilDay until;
      std::string left = "?";
      if (absl::ParseCivilTime(i.expires(), &until)) {
        const int64_t d = until - today;
        left = d < 0 ? absl::StrCat("expired ", -d, " day(s) ago") : absl::StrCat(d);
      }
      out << absl::StrFormat("%-16s %-26s %-18s %-10s %-11s %s\n", t.id(), i.type(),
                             i.reference().empty() ? "-" : i.reference(), Scope(i), i.expires(),
                             left);
      ++rows;
    }
  }
  if (rows == 0) out << absl::StrFormat("no instrument expires within %d day(s)\n", days);
}

void PrintTenants(std::ostream& out, const v1::ListTenantsResponse& r) {
  out << absl::StrFormat("%-16s %-24s %-5s %s\n", "TENANT", "ZONES", "CIIO", "INSTRUMENTS");
  for (const auto& t : r.tenants()) {
    std::vector<std::string> ins;
    for (const auto& i : t.instruments()) {
      ins.push_back(absl::StrCat(i.type(), " ", Scope(i),
                                 i.expires().empty() ? "" : absl::StrCat(" until ", i.expires())));
    }
    out << absl::StrFormat("%-16s %-24s %-5s %s\n", t.id(),
                           absl::StrJoin(t.registered_zones(), ","), t.ciio() ? "yes" : "no",
                           absl::StrJoin(ins, "; "));
  }
}

void PrintTenant(std::ostream& out, const v1::Tenant& t) {
  auto limit = [](int32_t v) { return v > 0 ? absl::StrCat(v) : std::string("none"); };
  out << "tenant:      " << t.id() << "\n";
  out << "zones:       "
      << (t.registered_zones().empty() ? "(none)" : absl::StrJoin(t.registered_zones(), ", "))
      << "\n";
  out << "ciio:        " << (t.ciio() ? "yes" : "no") << "\n";
  out << "priority:    up to " << (t.max_priority() > 0 ? t.max_priority() : 500) << "\n";
  out << "weight:      " << (t.weight() > 0 ? t.weight() : 1.0) << "\n";
  out << absl::StrFormat("quota:       cpus %s, memory_mb %s, gpus %s", limit(t.quota().cpus()),
                         limit(t.quota().memory_mb()), limit(t.quota().gpus()));
  std::map<std::string, v1::Resources> sites(t.quota().sites().begin(), t.quota().sites().end());
  for (const auto& [site, r] : sites) {
    out << absl::StrFormat("; at %s: cpus %s, memory_mb %s, gpus %s", site, limit(r.cpus()),
                           limit(r.memory_mb()), limit(r.gpus()));
  }
  out << "\n";
  if (t.has_updated_at()) out << "updated:     " << Short(t.updated_at()) << "\n";
  if (t.instruments().empty()) {
    out << "instruments: none (transfers out of its zones need another legal basis)\n";
    return;
  }
  out << absl::StrFormat("\n%-26s %-10s %-18s %-11s %-11s %s\n", "INSTRUMENT", "SCOPE", "REFERENCE",
                         "FROM", "EXPIRES", "ONLY FOR");
  for (const auto& i : t.instruments()) {
    std::vector<std::string> only;
    if (!i.sites().empty()) only.push_back("sites " + absl::StrJoin(i.sites(), ","));
    if (!i.sectors().empty()) only.push_back("sectors " + absl::StrJoin(i.sectors(), ","));
    if (!i.purposes().empty()) only.push_back("purposes " + absl::StrJoin(i.purposes(), ","));
    out << absl::StrFormat("%-26s %-10s %-18s %-11s %-11s %s\n", i.type(), Scope(i),
                           i.reference().empty() ? "-" : i.reference(),
                           i.valid_from().empty() ? "-" : i.valid_from(),
                           i.expires().empty() ? "never" : i.expires(),
                           only.empty() ? "-" : absl::StrJoin(only, "; "));
  }
}

void PrintTenantUsage(std::ostream& out, const v1::TenantUsage& u) {
  auto limit = [](int32_t v) { return v > 0 ? absl::StrCat(v) : std::string("-"); };
  out << absl::StrFormat("tenant %s: %u job(s) holding, %u waiting (%u for quota), weight %g\n",
                         u.tenant(), u.jobs_holding(), u.jobs_waiting(), u.jobs_waiting_for_quota(),
                         u.weight());
  out << absl::StrFormat("%-20s %-10s %10s %10s\n", "WHERE", "RESOURCE", "USED", "QUOTA");
  auto rows = [&](const std::string& where, const v1::Resources& used, const v1::Resources& q) {
    out << absl::StrFormat("%-20s %-10s %10d %10s\n", where, "cpus", used.cpus(), limit(q.cpus()));
    out << absl::StrFormat("%-20s %-10s %10d %10s\n", where, "memory_mb", used.memory_mb(),
                           limit(q.memory_mb()));
    out << absl::StrFormat("%-20s %-10s %10d %10s\n", where, "gpus", used.gpus(), limit(q.gpus()));
  };
  v1::Resources total;
  total.set_cpus(u.quota().cpus());
  total.set_memory_mb(u.quota().memory_mb());
  total.set_gpus(u.quota().gpus());
  rows("all sites", u.used(), total);
  std::set<std::string> sites;
  for (const auto& [s, r] : u.sites()) sites.insert(s);
  for (const auto& [s, r] : u.quota().sites()) sites.insert(s);
  static const v1::Resources kNone;
  for (const std::string& s : sites) {
    auto used = u.sites().find(s);
    auto q = u.quota().sites().find(s);
    rows(s, used == u.sites().end() ? kNone : used->second,
         q == u.quota().sites().end() ? kNone : q->second);
  }
}

void PrintAudit(std::ostream& out, const v1::ListAuditResponse& r) {
  out << absl::StrFormat("%-20s %-17s %-10s %-16s %-6s %-20s %-20s %-18s %s\n", "TIME", "JOB",
                         "TENANT", "DATASET", "ORIGIN", "FROM", "TO", "RULE", "INSTRUMENT");
  for (const auto& a : r.records()) {
    out << absl::StrFormat("%-20s %-17s %-10s %-16s %-6s %-20s %-20s %-18s %s\n", Short(a.time()),
                           a.job(), a.tenant(), a.dataset(), a.origin(),
                           a.from_site().empty() ? "-" : a.from_site(), a.to_site(), a.rule(),
                           a.instrument().empty() ? "-" : a.instrument());
  }
  // Rows where no border shows (FROM and TO in one jurisdiction) say why
  // they are exports.
  for (const auto& a : r.records()) {
    if (!a.note().empty()) out << absl::StrFormat("  %s %s: %s\n", a.job(), a.dataset(), a.note());
  }
}

void PrintViolations(std::ostream& out, const v1::ListViolationsResponse& r) {
  if (r.violations_size() == 0) {
    out << "no placed or running job is in violation of the policy in force\n";
    return;
  }
  out << absl::StrFormat("%-17s %-10s %-16s %-18s %-22s %-20s %s\n", "JOB", "TENANT", "DATASET",
                         "SITE", "RULE", "SINCE", "ACTION");
  for (const auto& v : r.violations()) {
    out << absl::StrFormat("%-17s %-10s %-16s %-18s %-22s %-20s %s\n", v.job(), v.tenant(),
                           v.dataset(), v.site(), v.rule(), Short(v.since()), v.action());
  }
  for (const auto& v : r.violations()) out << absl::StrFormat("  %s: %s\n", v.job(), v.reason());
}

namespace {
std::string Where(const v1::SimulatedPlacement& p) {
  if (p.site().empty()) return "-";
  return p.agent().empty() ? p.site() : absl::StrCat(p.site(), "/", p.agent());
}
std::string Flows(const google::protobuf::RepeatedPtrField<v1::CrossBorderFlow>& flows) {
  std::vector<std::string> out;
  for (const auto& f : flows)
    out.push_back(
        absl::StrFormat("%s->%s under %s (%d jobs)", f.from(), f.to(), f.rule(), f.jobs()));
  return out.empty() ? "none" : absl::StrJoin(out, ", ");
}
}  // namespace

void PrintSimulation(std::ostream& out, const v1::SimulateResponse& r) {
  const v1::SimulateSummary& s = r.summary();
  out << absl::StrFormat(
      "%d job(s) examined (%d active, %d history; %d decision classes) against policy %s in %.0f "
      "ms\n",
      r.jobs_examined(), r.active_jobs(), r.history_jobs(), r.decision_classes(),
      r.policy_version(), r.elapsed_ms());
  out << absl::StrFormat(
      "violations %d, moved %d, newly unschedulable %d, newly waiting %d, newly schedulable %d\n",
      s.violations(), s.moved(), s.newly_unschedulable(), s.newly_waiting(), s.newly_schedulable());
  out << "cross-border added:   " << Flows(s.cross_border().added()) << "\n";
  out << "cross-border removed: " << Flows(s.cross_border().removed()) << "\n";
  for (const auto& n : s.instruments_newly_required())
    out << absl::StrFormat("instrument newly required: %s needs %s for %d job(s)\n", n.tenant(),
                           n.type(), n.jobs());
  out << absl::StrFormat("RTT p50 %+.1f ms, cost %+.4f %s/h\n", s.rtt_ms_p50_delta(),
                         s.cost_delta(), s.currency().empty() ? "per" : s.currency());
  for (const std::string& w : r.warnings()) out << "warning: " << w << "\n";
  if (r.changes_size() == 0) {
    out << "no job would be treated differently\n";
    return;
  }
  out << absl::StrFormat("%-19s %-10s %-20s %-10s %-30s %-30s %s\n", "JOB", "TENANT", "KIND",
                         "STATE", "FROM", "TO", "REASON");
  for (const auto& c : r.changes()) {
    out << absl::StrFormat("%-19s %-10s %-20s %-10s %-30s %-30s %s\n", c.job(), c.tenant(),
                           v1::SimulatedChange::Kind_Name(c.kind()), v1::Job::State_Name(c.state()),
                           Where(c.from()), Where(c.to()), c.reason());
  }
  if (r.changes_truncated()) {
    out << absl::StrFormat("... only the first %d changes are listed (--max-changes)\n",
                           r.changes_size());
  }
}

}  // namespace portolan::cli
