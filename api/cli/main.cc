// portolan: command-line client for tenants, operators and admins.
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "portolan/auth/auth.h"
#include "portolan/base/strings.h"
#include "portolan/client/client.h"
#include "portolan/codec/codec.h"
#include "portolan/v1/api.pb.h"
#include "portolan/v1/config.pb.h"
#include "portolan/v1/policy.pb.h"

using namespace portolan;

namespace {

constexpr int kExitOk = 0;
constexpr int kExitError = 1;  // the server refused or the job did not succeed
constexpr int kExitUsage = 2;  // bad command line
constexpr int kExitUnreachable = 3;

const char* kUsage =
    R"(usage: portolan [--server URL] [--ca FILE] [-o table|json|yaml] COMMAND [ARGS]

Commands:
  submit FILE.{json,yaml}      submit a job described in a file ("-" reads JSON from stdin)
  submit [flags] -- CMD ARGS   submit a one-line job:
         --name N --cpus C --memory-mb M [--gpus G] [--tenant T] [--priority P]
         [--max-runtime-s S] [--env K=V]...
         add --wait to wait for the job to end (exit 0 only if it succeeded)
  jobs [--state S] [--limit N] list jobs, newest first
  job ID                       one job with its placement and events
  wait ID [--timeout-s S]      wait until the job ends; exit 0 only if it succeeded
  watch ID [--timeout-s S]     print the job's events as they happen until it ends; exit as wait
  cancel ID                    cancel a job (running jobs are stopped on their agent)
  logs ID                      stdout and stderr tail of a job
  agents                       list agents
  agent ID                     one agent: its topology drawn with the job on each PU
  cordon ID | drain ID | uncordon ID   stop new work on an agent (drain: running jobs finish) / resume

  plan FILE.{json,yaml}        dry run: where the job would go and why (stores nothing)
  explain ID                   the placement decision of a job, site by site
  policy get                   the policy in force (JSON)
  policy apply FILE            validate and apply a policy file (YAML or JSON); a new version
  policy validate FILE         check a policy file without applying it
  policy versions              the policy history
  network                      links, computed RTT matrix, measured RTT
  network link ID up|down      mark a link (cable) up or down
  sites                        the site catalogue
  tenants [--expiring 90d]     tenant profiles; --expiring: only instruments that expire within
                               that many days (or have expired), with the days left
  tenant ID                    one tenant profile
  tenant set ID FILE           set a tenant profile (zones, CIIO flag, instruments)
  audit [--tenant T] [--job J] [--limit N]   cross-border placements, newest first
  violations [--tenant T]      placed or running jobs the policy in force no longer allows
  token new --name N --role tenant|operator|admin [--tenant T] [--site S]...
                               print a new random token and its tokens-file entry (offline)
  metrics                      the scheduler's Prometheus metrics (admin or operator)
  completion bash              a bash completion script: source <(portolan completion bash)

"portolan COMMAND --help" shows one command's usage.

Global flags:
  --server URL   scheduler REST address (default: $PORTOLAN_SERVER, the config file's
                 server, or http://127.0.0.1:7080); https://... for HTTPS
  --ca FILE      CA certificate (PEM) that signed the scheduler's HTTPS certificate
                 (default: $PORTOLAN_CA, the config file's ca, or the system's CAs)
  -o FORMAT      table (default), json or yaml
  Token: $PORTOLAN_TOKEN, else the config file's token, sent as a Bearer token.
  Config file: $PORTOLAN_CONFIG, else ~/.config/portolan/cli.yaml (YAML; fields
  server, token, ca). Keep it private: it holds a credential.

Exit codes: 0 success, 1 request refused or job not succeeded, 2 usage error, 3 server unreachable.
)";

// -o json or -o yaml: the structured form of every answer.
std::string g_output = "table";

void Emit(const google::protobuf::Message& m) {
  const std::string json = codec::ToJson(m, true);
  if (g_output == "yaml") {
    auto yaml = codec::JsonToYaml(json);
    std::cout << (yaml.ok() ? *yaml : json + "\n");
  } else {
    std::cout << json << "\n";
  }
}

int Report(const absl::Status& st) {
  std::cerr << "portolan: " << st.message();
  std::string field = codec::StatusField(st);
  if (!field.empty()) std::cerr << " (field: " << field << ")";
  std::cerr << "\n";
  return st.code() == absl::StatusCode::kUnavailable ? kExitUnreachable : kExitError;
}

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

void PrintJobsTable(const v1::ListJobsResponse& list) {
  absl::PrintF("%-17s %-18s %-10s %-14s %-20s %-6s %s\n", "ID", "NAME", "TENANT", "STATE", "SITE",
               "EXIT", "REASON");
  for (const v1::Job& j : list.jobs()) {
    std::string reason = j.reason();
    if (reason.size() > 60) reason = reason.substr(0, 57) + "...";
    absl::PrintF("%-17s %-18s %-10s %-14s %-20s %-6s %s\n", j.id(), j.name().substr(0, 18),
                 j.tenant().substr(0, 10), v1::Job::State_Name(j.state()),
                 j.allocation().site().empty() ? "-" : j.allocation().site(), ExitColumn(j),
                 reason);
  }
  if (!list.next_page_token().empty())
    absl::PrintF("(more: --page-token %s)\n", list.next_page_token());
}

void PrintJob(const v1::Job& j) {
  absl::PrintF("Job %s (%s)\n", j.id(), j.name());
  absl::PrintF("  tenant:     %s\n  kind:       %s\n  state:      %s\n  reason:     %s\n",
               j.tenant(), v1::Job::Kind_Name(j.kind()), v1::Job::State_Name(j.state()),
               j.reason());
  absl::PrintF("  command:    %s\n", absl::StrJoin(j.command(), " "));
  absl::PrintF("  resources:  %d cpus, %d MiB, %d gpus\n", j.resources().cpus(),
               j.resources().memory_mb(), j.resources().gpus());
  if (!j.allocation().agent().empty()) {
    const v1::Allocation& a = j.allocation();
    absl::PrintF("  placed on:  agent %s at site %s (attempt %d)\n", a.agent(), a.site(),
                 j.attempt());
    if (a.pus_size() > 0) {
      std::vector<std::string> mem;
      for (const auto& [node, mb] :
           std::map<uint32_t, int32_t>(a.numa_memory_mb().begin(), a.numa_memory_mb().end())) {
        mem.push_back(absl::StrCat(mb, " MiB on NUMA ", node));
      }
      absl::PrintF(
          "  allocation: PUs %s, NUMA node(s) %s%s%s\n",
          base::FormatIdList({a.pus().begin(), a.pus().end()}),
          base::FormatIdList({a.numa_nodes().begin(), a.numa_nodes().end()}),
          mem.empty() ? "" : absl::StrCat(", ", absl::StrJoin(mem, ", ")),
          a.gpu_ids().empty() ? "" : absl::StrCat(", GPUs ", absl::StrJoin(a.gpu_ids(), ",")));
    }
    absl::PrintF("  topology:   numa %s, smt %s\n",
                 v1::TopologyRequest::Numa_Name(j.topology().numa()),
                 v1::TopologyRequest::Smt_Name(j.topology().smt()));
  }
  absl::PrintF("  submitted:  %s\n  started:    %s\n  finished:   %s\n", Short(j.submitted_at()),
               Short(j.started_at()), Short(j.finished_at()));
  if (j.state() == v1::Job::succeeded || j.state() == v1::Job::failed ||
      j.state() == v1::Job::cancelled) {
    absl::PrintF("  exit code:  %d%s\n", j.exit_code(),
                 j.signal() ? absl::StrCat(" (signal ", j.signal(), ")") : "");
  }
  absl::PrintF("  events:\n");
  for (const v1::JobEvent& e : j.events()) {
    absl::PrintF("    %s  %-13s %s\n", Short(e.time()), v1::Job::State_Name(e.state()),
                 e.message());
  }
}

// A text picture of the machine, like lstopo, with the job holding each PU.
void DrawAgent(const v1::Agent& a) {
  const v1::Topology& t = a.topology();
  absl::PrintF(
      "Agent %s at site %s: %s, %s%s\n", a.id(), a.site(), v1::Agent::State_Name(a.state()),
      a.connected() ? "connected" : "disconnected",
      a.measured_rtt_ms() > 0 ? absl::StrFormat(", RTT %.2f ms", a.measured_rtt_ms()) : "");
  absl::PrintF(
      "Machine (%s): %u package(s), %d NUMA node(s), %d cores, %u PUs, %u MiB, %d GPU(s)\n",
      t.source(), t.packages(), t.numa_nodes_size(), t.cores_size(), t.pus(), t.memory_mb(),
      t.gpus_size());
  if (a.memory_available_mb() > 0)
    absl::PrintF("Host memory available: %u MiB (MemAvailable)\n", a.memory_available_mb());
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
    absl::PrintF("Isolation: jobs as %s; cgroup %s; %s%s\n", iso.user(),
                 v1::Isolation::Cgroup_Name(iso.cgroup()), absl::StrJoin(has, ", "),
                 lacks.empty() ? "" : absl::StrCat("; without ", absl::StrJoin(lacks, ", ")));
  }
  absl::PrintF("Allocated: %d/%d PUs, %d/%d MiB, %d/%d GPUs; jobs: %s\n", a.allocated().cpus(),
               a.capacity().cpus(), a.allocated().memory_mb(), a.capacity().memory_mb(),
               a.allocated().gpus(), a.capacity().gpus(),
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
    absl::PrintF("  Package %u\n", pkg);
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
      absl::PrintF("    NUMA %d (%d MiB, %s MiB free)\n", node, mem_total,
                   free_it == a.numa_free_memory_mb().end() ? "?" : absl::StrCat(free_it->second));
      std::string line;
      int on_line = 0;
      for (const v1::Core* c : cores) {
        std::string cell = absl::StrCat("[", c->index(), ":");
        for (uint32_t pu : c->pus()) cell.push_back(owner(pu));
        cell += "]";
        absl::StrAppend(&line, cell, " ");
        if (++on_line == 8) {
          absl::PrintF("      %s\n", line);
          line.clear();
          on_line = 0;
        }
      }
      if (!line.empty()) absl::PrintF("      %s\n", line);
      for (const auto& g : t.gpus()) {
        if (g.numa() != node) continue;
        auto it = a.gpu_jobs().find(g.name());
        absl::PrintF("      GPU %s %s %s [%c]\n", g.name(), g.vendor(), g.model(),
                     it == a.gpu_jobs().end() ? '.' : label[it->second]);
      }
    }
  }
  for (const auto& g : t.gpus()) {
    if (g.numa() >= 0) continue;
    auto it = a.gpu_jobs().find(g.name());
    absl::PrintF("  GPU %s %s %s (NUMA unknown) [%c]\n", g.name(), g.vendor(), g.model(),
                 it == a.gpu_jobs().end() ? '.' : label[it->second]);
  }
  absl::PrintF("  [core:PUs] . free");
  for (const auto& [job, l] : label) absl::PrintF(", %c %s", l, job);
  absl::PrintF("\n");
}

void PrintAgentsTable(const v1::ListAgentsResponse& list) {
  absl::PrintF("%-22s %-20s %-9s %-9s %-12s %-14s %-5s %s\n", "ID", "SITE", "STATE", "CONNECTED",
               "CPUS(free)", "MEM MiB(free)", "GPUS", "JOBS");
  for (const v1::Agent& a : list.agents()) {
    absl::PrintF(
        "%-22s %-20s %-9s %-9s %-12s %-14s %-5d %d\n", a.id(), a.site(),
        v1::Agent::State_Name(a.state()), a.connected() ? "yes" : "no",
        absl::StrCat(a.capacity().cpus(), "(", a.capacity().cpus() - a.allocated().cpus(), ")"),
        absl::StrCat(a.capacity().memory_mb(), "(",
                     a.capacity().memory_mb() - a.allocated().memory_mb(), ")"),
        a.capacity().gpus(), a.jobs_size());
  }
}

std::string Fixed(double v, int prec = 1) {
  if (v < 0) return "-";
  return absl::StrFormat("%.*f", prec, v);
}

void PrintDecision(const v1::Decision& d) {
  if (d.feasible()) {
    const v1::PlacementResult& p = d.placement();
    absl::PrintF("Placement: agent %s at site %s, score %.1f (policy %s)\n", p.agent(), p.site(),
                 p.score(), d.policy_version());
    std::vector<std::string> parts;
    for (const auto& [k, v] : std::map<std::string, double>(p.scores().begin(), p.scores().end())) {
      parts.push_back(absl::StrFormat("%s %.1f", k, v));
    }
    absl::PrintF("  scores:     %s\n", absl::StrJoin(parts, ", "));
    for (const v1::Compliance& c : p.compliance()) {
      absl::PrintF("  compliance: %s under %s%s%s\n", c.dataset(), c.rule(),
                   c.instrument().empty() ? "" : absl::StrCat(" with ", c.instrument()),
                   c.export_() ? " (export)" : "");
    }
  } else {
    absl::PrintF("No placement%s (policy %s):\n  %s\n",
                 d.unschedulable() ? " possible: unschedulable" : " yet", d.policy_version(),
                 d.reason());
  }
  absl::PrintF("\n%-20s %-6s %-8s %-22s %-8s %-11s %-9s %s\n", "SITE", "REGIME", "ALLOWED",
               "RESIDENCY", "RTT ms", "TRANSFER s", "AGENTS", "WHY NOT");
  for (const v1::SiteDecision& sd : d.sites()) {
    std::string residency =
        sd.has_residency()
            ? absl::StrCat(sd.residency().allowed() ? "ok " : "no ", sd.residency().rule())
            : "-";
    absl::PrintF("%-20s %-6s %-8s %-22s %-8s %-11s %-9s %s\n", sd.site(), sd.regime(),
                 sd.allowed() ? "yes" : "no", residency.substr(0, 22), Fixed(sd.rtt_ms()),
                 Fixed(sd.transfer_s()),
                 absl::StrCat(sd.agents().feasible(), "/", sd.agents().considered()),
                 absl::StrJoin(sd.rejected(), "; "));
  }
  std::vector<std::string> counts;
  for (const auto& [k, v] : d.agents().rejected()) counts.push_back(absl::StrCat(v, " ", k));
  absl::PrintF("\nAgents: %d/%d feasible%s\n", d.agents().feasible(), d.agents().considered(),
               counts.empty() ? "" : absl::StrCat("; rejected: ", absl::StrJoin(counts, ", ")));
}

bool Terminal(v1::Job::State s) {
  return s == v1::Job::succeeded || s == v1::Job::failed || s == v1::Job::cancelled ||
         s == v1::Job::lost || s == v1::Job::unschedulable;
}

const char* kCommands =
    "submit jobs job wait watch cancel logs agents agent cordon drain uncordon plan explain "
    "policy network sites tenants tenant audit violations token metrics completion help";

// The usage lines of one command (its line and the indented lines after it).
std::string CommandUsage(const std::string& cmd) {
  std::string out;
  bool in = false;
  for (absl::string_view line : absl::StrSplit(kUsage, '\n')) {
    if (absl::StartsWith(line, "  ") && !absl::StartsWith(line, "   ")) {
      absl::string_view body = line.substr(2);
      in = absl::StartsWith(body, cmd + " ") || body == cmd ||
           absl::StrContains(body, absl::StrCat("| ", cmd, " "));
    } else if (!absl::StartsWith(line, "         ")) {
      in = false;
    }
    if (in) absl::StrAppend(&out, line, "\n");
  }
  return out;
}

const char* kBashCompletion =
    R"BASH(# bash completion for portolan: source <(portolan completion bash)
_portolan() {
  local cur prev cmd
  cur="${COMP_WORDS[COMP_CWORD]}"
  prev="${COMP_WORDS[COMP_CWORD-1]}"
  case "$prev" in
    -o|--output) COMPREPLY=($(compgen -W "table json yaml" -- "$cur")); return ;;
    --server) return ;;
    --ca) COMPREPLY=($(compgen -f -- "$cur")); return ;;
  esac
  local i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "${COMP_WORDS[i]}" in
      -o|--output|--server|--ca) ((i++)) ;;
      -*) ;;
      *) cmd="${COMP_WORDS[i]}"; break ;;
    esac
  done
  if [ -z "$cmd" ]; then
    COMPREPLY=($(compgen -W "COMMANDS --server --ca -o --help" -- "$cur"))
    return
  fi
  case "$cmd" in
    submit|plan) COMPREPLY=($(compgen -f -W "--name --cpus --memory-mb --gpus --tenant --priority --max-runtime-s --env --wait --" -- "$cur")) ;;
    job|wait|watch|cancel|logs|explain)
      COMPREPLY=($(compgen -W "$(portolan -o json jobs --limit 50 2>/dev/null | sed -n 's/^ *"id": "\(job-[0-9a-f]*\)".*/\1/p')" -- "$cur")) ;;
    agent|cordon|drain|uncordon)
      COMPREPLY=($(compgen -W "$(portolan -o json agents 2>/dev/null | sed -n 's/^ *"id": "\([^"]*\)".*/\1/p')" -- "$cur")) ;;
    policy) COMPREPLY=($(compgen -f -W "get apply validate versions" -- "$cur")) ;;
    network) COMPREPLY=($(compgen -W "link up down" -- "$cur")) ;;
    tenant) COMPREPLY=($(compgen -f -W "set" -- "$cur")) ;;
    token) COMPREPLY=($(compgen -W "new --name --role --tenant --site tenant operator admin" -- "$cur")) ;;
    completion) COMPREPLY=($(compgen -W "bash" -- "$cur")) ;;
    jobs) COMPREPLY=($(compgen -W "--state --limit queued placed running succeeded failed cancelled lost unschedulable" -- "$cur")) ;;
    audit) COMPREPLY=($(compgen -W "--tenant --job --limit" -- "$cur")) ;;
  esac
}
complete -F _portolan portolan
)BASH";

// Prints a job's events as they happen until it ends.
int Watch(client::Client& client, const std::string& id, int timeout_s, bool json) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  int shown = 0;
  while (true) {
    auto job = client.GetJob(id);
    if (!job.ok()) return Report(job.status());
    for (; shown < job->events_size(); ++shown) {
      const v1::JobEvent& e = job->events(shown);
      if (json) {
        std::cout << codec::ToJson(e) << std::endl;
      } else {
        std::cout << absl::FormatTime("%Y-%m-%d %H:%M:%E3S", base::FromProto(e.time()),
                                      absl::LocalTimeZone())
                  << "  " << absl::StrFormat("%-13s", v1::Job::State_Name(e.state())) << " "
                  << e.message() << std::endl;
      }
    }
    if (Terminal(job->state())) return job->state() == v1::Job::succeeded ? kExitOk : kExitError;
    if (std::chrono::steady_clock::now() > deadline) {
      std::cerr << "portolan: timed out after " << timeout_s << "s watching " << id << "\n";
      return kExitError;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

int Wait(client::Client& client, const std::string& id, int timeout_s, bool json) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (true) {
    auto job = client.GetJob(id);
    if (!job.ok()) return Report(job.status());
    if (Terminal(job->state())) {
      if (json) {
        Emit(*job);
      } else {
        absl::PrintF("%s %s: %s\n", id, v1::Job::State_Name(job->state()), job->reason());
      }
      return job->state() == v1::Job::succeeded ? kExitOk : kExitError;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      std::cerr << "portolan: timed out after " << timeout_s << "s waiting for " << id << " (state "
                << v1::Job::State_Name(job->state()) << ": " << job->reason() << ")\n";
      return kExitError;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  // Precedence: flag > environment > config file > default.
  v1::CliConfig file_cfg;
  {
    const char* env_cfg = std::getenv("PORTOLAN_CONFIG");
    const char* home = std::getenv("HOME");
    std::string path =
        env_cfg ? env_cfg : (home ? absl::StrCat(home, "/.config/portolan/cli.yaml") : "");
    if (!path.empty() && (env_cfg || access(path.c_str(), F_OK) == 0)) {
      if (absl::Status st = codec::LoadFile(path, &file_cfg); !st.ok()) {
        std::cerr << "portolan: config file: " << st.message() << "\n";
        return kExitUsage;
      }
    }
  }
  auto pick = [](const char* env, const std::string& from_file, const std::string& fallback) {
    const char* v = std::getenv(env);
    if (v != nullptr && *v != '\0') return std::string(v);
    return from_file.empty() ? fallback : from_file;
  };
  std::string server = pick("PORTOLAN_SERVER", file_cfg.server(), "http://127.0.0.1:7080");
  std::string token = pick("PORTOLAN_TOKEN", file_cfg.token(), "");
  std::string ca = pick("PORTOLAN_CA", file_cfg.ca(), "");
  std::string output = "table";
  size_t i = 0;
  for (; i < args.size(); ++i) {
    if (args[i] == "--server" && i + 1 < args.size()) {
      server = args[++i];
    } else if (args[i] == "--ca" && i + 1 < args.size()) {
      ca = args[++i];
    } else if ((args[i] == "-o" || args[i] == "--output") && i + 1 < args.size()) {
      output = args[++i];
    } else if (args[i] == "-h" || args[i] == "--help" || args[i] == "help") {
      std::cout << kUsage;
      return kExitOk;
    } else {
      break;
    }
  }
  if (output != "table" && output != "json" && output != "yaml") {
    std::cerr << "portolan: -o must be table, json or yaml\n";
    return kExitUsage;
  }
  if (server.find("://") == std::string::npos) server = "http://" + server;
  if (i >= args.size()) {
    std::cerr << kUsage;
    return kExitUsage;
  }
  const bool json = output != "table";  // json or yaml: structured output
  g_output = output;
  const std::string cmd = args[i++];
  std::vector<std::string> rest(args.begin() + i, args.end());
  for (const std::string& a : rest) {
    if (a == "--help" || a == "-h") {
      std::string usage = CommandUsage(cmd);
      if (usage.empty()) {
        std::cerr << "portolan: unknown command '" << cmd << "'\n" << kUsage;
        return kExitUsage;
      }
      std::cout << "usage:\n" << usage;
      return kExitOk;
    }
  }
  if (cmd == "completion") {
    if (rest.size() != 1 || rest[0] != "bash") {
      std::cerr << "portolan: usage: portolan completion bash\n";
      return kExitUsage;
    }
    std::cout << absl::StrReplaceAll(kBashCompletion, {{"COMMANDS", kCommands}});
    return kExitOk;
  }
  if (cmd == "token") {
    // Offline: makes a token; the scheduler only ever stores its hash.
    v1::Token t;
    for (size_t k = 1; k + 1 < rest.size(); k += 2) {
      if (rest[k] == "--name") {
        t.set_name(rest[k + 1]);
      } else if (rest[k] == "--tenant") {
        t.set_tenant_id(rest[k + 1]);
      } else if (rest[k] == "--site") {
        t.add_sites(rest[k + 1]);
      } else if (rest[k] == "--role") {
        v1::Token::Role role;
        if (!v1::Token::Role_Parse(rest[k + 1], &role)) {
          std::cerr << "portolan: --role must be tenant, operator or admin\n";
          return kExitUsage;
        }
        t.set_role(role);
      }
    }
    if (rest.empty() || rest[0] != "new" || t.name().empty() ||
        t.role() == v1::Token::role_unspecified) {
      std::cerr << "portolan: usage: portolan token new --name N --role tenant|operator|admin "
                   "[--tenant T] [--site S]\n";
      return kExitUsage;
    }
    const std::string secret = auth::NewToken();
    t.set_sha256(auth::Sha256Hex(secret));
    std::cout << "token (give it to " << t.name() << "; it is not stored anywhere): " << secret
              << "\n";
    std::cout << "tokens-file entry:\n  - " << codec::ToJson(t) << "\n";
    return kExitOk;
  }
  if (!ca.empty() && access(ca.c_str(), R_OK) != 0) {
    std::cerr << "portolan: CA file " << ca << " cannot be read (--ca, $PORTOLAN_CA or config)\n";
    return kExitUsage;
  }
  client::Client client(server, token, ca);
  auto need_id = [&](const char* what) -> bool {
    if (rest.size() != 1 && !(rest.size() >= 1 && std::string(what) == "wait")) {
      std::cerr << "portolan: usage: portolan " << what << " ID\n";
      return false;
    }
    return true;
  };

  if (cmd == "submit") {
    v1::Job spec;
    bool wait = false;
    if (!rest.empty() && rest[0] != "--" && rest[0].rfind("--", 0) != 0) {
      if (rest[0] == "-") {
        std::string body((std::istreambuf_iterator<char>(std::cin)),
                         std::istreambuf_iterator<char>());
        if (absl::Status st = codec::ParseJson(body, &spec); !st.ok()) return Report(st);
      } else if (absl::Status st = codec::LoadFile(rest[0], &spec); !st.ok()) {
        return Report(st);
      }
      for (size_t k = 1; k < rest.size(); ++k) {
        if (rest[k] == "--wait") wait = true;
      }
    } else {
      size_t k = 0;
      auto int_flag = [&](const std::string& name, int* out) -> bool {
        if (k + 1 >= rest.size() || !absl::SimpleAtoi(rest[k + 1], out)) {
          std::cerr << "portolan: " << name << " needs an integer\n";
          return false;
        }
        ++k;
        return true;
      };
      for (; k < rest.size(); ++k) {
        const std::string& f = rest[k];
        int v = 0;
        if (f == "--") {
          for (++k; k < rest.size(); ++k) spec.add_command(rest[k]);
          break;
        } else if (f == "--wait") {
          wait = true;
        } else if (f == "--name" && k + 1 < rest.size()) {
          spec.set_name(rest[++k]);
        } else if (f == "--tenant" && k + 1 < rest.size()) {
          spec.set_tenant(rest[++k]);
        } else if (f == "--env" && k + 1 < rest.size()) {
          std::string kv = rest[++k];
          size_t eq = kv.find('=');
          if (eq == std::string::npos) {
            std::cerr << "portolan: --env needs KEY=VALUE\n";
            return kExitUsage;
          }
          (*spec.mutable_env())[kv.substr(0, eq)] = kv.substr(eq + 1);
        } else if (f == "--cpus") {
          if (!int_flag(f, &v)) return kExitUsage;
          spec.mutable_resources()->set_cpus(v);
        } else if (f == "--memory-mb") {
          if (!int_flag(f, &v)) return kExitUsage;
          spec.mutable_resources()->set_memory_mb(v);
        } else if (f == "--gpus") {
          if (!int_flag(f, &v)) return kExitUsage;
          spec.mutable_resources()->set_gpus(v);
        } else if (f == "--priority") {
          if (!int_flag(f, &v)) return kExitUsage;
          spec.set_priority(v);
        } else if (f == "--max-runtime-s") {
          if (!int_flag(f, &v)) return kExitUsage;
          spec.set_max_runtime_s(static_cast<uint32_t>(v));
        } else {
          std::cerr << "portolan: unknown submit flag '" << f << "'\n";
          return kExitUsage;
        }
      }
      if (!spec.has_resources()) {
        spec.mutable_resources()->set_cpus(1);
        spec.mutable_resources()->set_memory_mb(256);
      }
    }
    auto job = client.Submit(spec);
    if (!job.ok()) return Report(job.status());
    if (json && !wait) {
      Emit(*job);
    } else if (!json) {
      absl::PrintF("submitted %s (%s): %s\n", job->id(), v1::Job::State_Name(job->state()),
                   job->reason());
    }
    return wait ? Wait(client, job->id(), 3600, json) : kExitOk;
  }
  if (cmd == "jobs") {
    std::string state, token_arg;
    int limit = 100;
    for (size_t k = 0; k < rest.size(); ++k) {
      if (rest[k] == "--state" && k + 1 < rest.size()) {
        state = rest[++k];
      } else if (rest[k] == "--limit" && k + 1 < rest.size() &&
                 absl::SimpleAtoi(rest[k + 1], &limit)) {
        ++k;
      } else if (rest[k] == "--page-token" && k + 1 < rest.size()) {
        token_arg = rest[++k];
      } else {
        std::cerr << "portolan: usage: portolan jobs [--state S] [--limit N] [--page-token T]\n";
        return kExitUsage;
      }
    }
    auto list = client.ListJobs(state, limit, token_arg);
    if (!list.ok()) return Report(list.status());
    if (json) {
      Emit(*list);
    } else {
      PrintJobsTable(*list);
    }
    return kExitOk;
  }
  if (cmd == "job" || cmd == "cancel" || cmd == "logs" || cmd == "agent") {
    if (!need_id(cmd.c_str())) return kExitUsage;
    const std::string& id = rest[0];
    if (cmd == "logs") {
      auto logs = client.Logs(id);
      if (!logs.ok()) return Report(logs.status());
      if (json) {
        Emit(*logs);
      } else {
        std::cout << logs->stdout();
        std::cerr << logs->stderr();
      }
      return kExitOk;
    }
    if (cmd == "agent") {
      auto a = client.GetAgent(id);
      if (!a.ok()) return Report(a.status());
      if (json) {
        Emit(*a);
      } else {
        DrawAgent(*a);
      }
      return kExitOk;
    }
    auto job = cmd == "job" ? client.GetJob(id) : client.Cancel(id);
    if (!job.ok()) return Report(job.status());
    if (json) {
      Emit(*job);
    } else if (cmd == "cancel") {
      absl::PrintF(
          "%s: %s%s\n", id, v1::Job::State_Name(job->state()),
          job->cancel_requested() && !Terminal(job->state()) ? " (stopping on its agent)" : "");
    } else {
      PrintJob(*job);
    }
    return kExitOk;
  }
  if (cmd == "wait" || cmd == "watch") {
    if (rest.empty()) {
      std::cerr << "portolan: usage: portolan " << cmd << " ID [--timeout-s S]\n";
      return kExitUsage;
    }
    int timeout = 3600;
    if (rest.size() == 3 && rest[1] == "--timeout-s" && !absl::SimpleAtoi(rest[2], &timeout)) {
      std::cerr << "portolan: --timeout-s needs an integer\n";
      return kExitUsage;
    }
    return cmd == "watch" ? Watch(client, rest[0], timeout, json)
                          : Wait(client, rest[0], timeout, json);
  }
  if (cmd == "metrics") {
    std::string body;
    auto code = client.Raw("GET", "/metrics", "", &body);
    if (!code.ok()) return Report(code.status());
    if (*code != 200) {
      v1::ErrorResponse err;
      if (codec::ParseJson(body, &err).ok())
        return Report(absl::PermissionDeniedError(err.error().message()));
      std::cerr << "portolan: /metrics answered " << *code << "\n";
      return kExitError;
    }
    std::cout << body;
    return kExitOk;
  }
  // Loads a JSON or YAML file as message M (errors name the file).
  auto load = [&](const std::string& path, google::protobuf::Message* m) -> absl::Status {
    if (path == "-") {
      std::string body((std::istreambuf_iterator<char>(std::cin)),
                       std::istreambuf_iterator<char>());
      return codec::ParseJson(body, m);
    }
    return codec::LoadFile(path, m);
  };
  auto print = [&](const google::protobuf::Message& m) { Emit(m); };

  if (cmd == "plan" || cmd == "explain") {
    if (rest.size() != 1) {
      std::cerr << "portolan: usage: portolan " << cmd << (cmd == "plan" ? " FILE" : " ID") << "\n";
      return kExitUsage;
    }
    v1::Decision d;
    absl::Status st;
    if (cmd == "plan") {
      v1::Job spec;
      if (st = load(rest[0], &spec); !st.ok()) return Report(st);
      st = client.Call("POST", "/v1/plan", codec::ToJson(spec), &d);
    } else {
      st = client.Call("GET", "/v1/jobs/" + rest[0] + "/explanation", "", &d);
    }
    if (!st.ok()) return Report(st);
    if (json) {
      print(d);
    } else {
      PrintDecision(d);
    }
    return d.feasible() || cmd == "explain" ? kExitOk : kExitError;
  }
  if (cmd == "policy") {
    const std::string sub = rest.empty() ? "" : rest[0];
    if (sub == "get" && rest.size() == 1) {
      v1::Policy p;
      if (auto st = client.Call("GET", "/v1/policy", "", &p); !st.ok()) return Report(st);
      print(p);
      return kExitOk;
    }
    if ((sub == "apply" || sub == "validate") && rest.size() == 2) {
      v1::Policy p;
      if (auto st = load(rest[1], &p); !st.ok()) return Report(st);
      if (sub == "validate") {
        v1::ValidationResult r;
        if (auto st = client.Call("POST", "/v1/policy:validate", codec::ToJson(p), &r); !st.ok())
          return Report(st);
        if (json) {
          print(r);
        } else {
          absl::PrintF("%s: %s\n", rest[1], r.valid() ? "valid" : "INVALID");
          for (const auto& e : r.errors()) absl::PrintF("  error:   %s\n", e);
          for (const auto& w : r.warnings()) absl::PrintF("  warning: %s\n", w);
        }
        return r.valid() ? kExitOk : kExitError;
      }
      v1::PolicyVersion v;
      if (auto st = client.Call("PUT", "/v1/policy", codec::ToJson(p), &v); !st.ok())
        return Report(st);
      if (json) {
        print(v);
      } else {
        absl::PrintF("applied policy %s: %s\n", v.version(), v.summary());
      }
      return kExitOk;
    }
    if (sub == "versions" && rest.size() == 1) {
      v1::ListPolicyVersionsResponse r;
      if (auto st = client.Call("GET", "/v1/policy/versions", "", &r); !st.ok()) return Report(st);
      if (json) {
        print(r);
        return kExitOk;
      }
      absl::PrintF("%-8s %-20s %-28s %s\n", "VERSION", "APPLIED", "BY", "SUMMARY");
      for (const auto& v : r.versions()) {
        absl::PrintF("%-8s %-20s %-28s %s\n", v.version(), Short(v.applied_at()), v.applied_by(),
                     v.summary());
      }
      return kExitOk;
    }
    std::cerr << "portolan: usage: portolan policy get | apply FILE | validate FILE | versions\n";
    return kExitUsage;
  }
  if (cmd == "network") {
    if (rest.size() == 3 && rest[0] == "link" && (rest[2] == "up" || rest[2] == "down")) {
      v1::Link l;
      if (auto st = client.Call("PUT", "/v1/network/links/" + rest[1],
                                rest[2] == "up" ? R"({"up": true})" : R"({"up": false})", &l);
          !st.ok()) {
        return Report(st);
      }
      absl::PrintF("link %s (%s %s-%s) is %s\n", l.id(),
                   l.cable().empty() ? v1::Link::Kind_Name(l.kind()) : l.cable(), l.a(), l.b(),
                   l.up() ? "up" : "down");
      return kExitOk;
    }
    if (!rest.empty()) {
      std::cerr << "portolan: usage: portolan network | network link ID up|down\n";
      return kExitUsage;
    }
    v1::NetworkView n;
    if (auto st = client.Call("GET", "/v1/network", "", &n); !st.ok()) return Report(st);
    if (json) {
      print(n);
      return kExitOk;
    }
    absl::PrintF("%-22s %-18s %-18s %-11s %-8s %-7s %-4s %s\n", "LINK", "A", "B", "KIND", "RTT ms",
                 "Gbps", "UP", "CABLE");
    for (const auto& l : n.links()) {
      absl::PrintF("%-22s %-18s %-18s %-11s %-8s %-7s %-4s %s%s\n", l.id(), l.a(), l.b(),
                   v1::Link::Kind_Name(l.kind()), Fixed(l.rtt_ms()), Fixed(l.gbps(), 0),
                   l.up() ? "yes" : "NO", l.cable(), l.estimate() ? " (estimate)" : "");
    }
    absl::PrintF("\nShortest RTT (ms) over links that are up:\n%-20s", "");
    std::vector<std::string> ids;
    for (const auto& site : n.sites()) ids.push_back(site.id());
    for (const auto& id : ids) absl::PrintF(" %8s", id.substr(0, 8));
    absl::PrintF("\n");
    for (const auto& from : ids) {
      absl::PrintF("%-20s", from);
      for (const auto& to : ids) {
        double v = 0;
        for (const auto& e : n.matrix()) {
          if (e.from() == from && e.to() == to) v = e.rtt_ms();
        }
        absl::PrintF(" %8s", from == to ? "-" : v < 0 ? "none" : Fixed(v));
      }
      absl::PrintF("\n");
    }
    for (const auto& m : n.measured())
      absl::PrintF("measured: agent %s (%s) %.2f ms to the scheduler\n", m.agent(), m.site(),
                   m.rtt_ms());
    for (const auto& w : n.warnings()) absl::PrintF("warning: %s\n", w);
    return kExitOk;
  }
  if (cmd == "sites") {
    v1::ListSitesResponse r;
    if (auto st = client.Call("GET", "/v1/sites", "", &r); !st.ok()) return Report(st);
    if (json) {
      print(r);
      return kExitOk;
    }
    absl::PrintF("%-20s %-6s %-8s %-9s %s\n", "SITE", "REGIME", "OFFSHORE", "PRICE", "ZONES");
    for (const auto& site : r.sites()) {
      absl::PrintF("%-20s %-6s %-8s %-9s %s\n", site.id(), site.jurisdiction(),
                   site.offshore() ? "yes" : "no", Fixed(site.price_per_core_hour(), 3),
                   absl::StrJoin(site.zones(), ","));
    }
    return kExitOk;
  }
  if (cmd == "tenants" || cmd == "tenant") {
    if (cmd == "tenants" && rest.size() == 2 && rest[0] == "--expiring") {
      // "90d" or "90": days from today.
      std::string n = rest[1];
      if (!n.empty() && n.back() == 'd') n.pop_back();
      int days = 0;
      if (!absl::SimpleAtoi(n, &days) || days < 0) {
        std::cerr << "portolan: --expiring takes a number of days, e.g. 90d (got '" << rest[1]
                  << "')\n";
        return kExitUsage;
      }
      v1::ListTenantsResponse r;
      if (auto st =
              client.Call("GET", absl::StrCat("/v1/tenants?expiring_within_days=", days), "", &r);
          !st.ok())
        return Report(st);
      if (json) {
        print(r);
        return kExitOk;
      }
      const absl::CivilDay today = absl::ToCivilDay(absl::Now(), absl::UTCTimeZone());
      absl::PrintF("%-16s %-26s %-18s %-10s %-11s %s\n", "TENANT", "INSTRUMENT", "REFERENCE",
                   "SCOPE", "EXPIRES", "DAYS LEFT");
      int n_rows = 0;
      for (const auto& t : r.tenants()) {
        for (const auto& i : t.instruments()) {
          absl::CivilDay until;
          std::string left = "?";
          if (absl::ParseCivilTime(i.expires(), &until)) {
            const int64_t d = until - today;
            left = d < 0 ? absl::StrCat("expired ", -d, " day(s) ago") : absl::StrCat(d);
          }
          absl::PrintF(
              "%-16s %-26s %-18s %-10s %-11s %s\n", t.id(), i.type(),
              i.reference().empty() ? "-" : i.reference(),
              absl::StrCat(i.from().empty() ? "*" : i.from(), "->", i.to().empty() ? "*" : i.to()),
              i.expires(), left);
          ++n_rows;
        }
      }
      if (n_rows == 0) absl::PrintF("no instrument expires within %d day(s)\n", days);
      return kExitOk;
    }
    if (cmd == "tenants" && rest.empty()) {
      v1::ListTenantsResponse r;
      if (auto st = client.Call("GET", "/v1/tenants", "", &r); !st.ok()) return Report(st);
      if (json) {
        print(r);
        return kExitOk;
      }
      absl::PrintF("%-16s %-24s %-5s %s\n", "TENANT", "ZONES", "CIIO", "INSTRUMENTS");
      for (const auto& t : r.tenants()) {
        std::vector<std::string> ins;
        for (const auto& i : t.instruments()) {
          ins.push_back(absl::StrCat(
              i.type(), " ", i.from().empty() ? "*" : i.from(), "->", i.to().empty() ? "*" : i.to(),
              i.expires().empty() ? "" : absl::StrCat(" until ", i.expires())));
        }
        absl::PrintF("%-16s %-24s %-5s %s\n", t.id(), absl::StrJoin(t.registered_zones(), ","),
                     t.ciio() ? "yes" : "no", absl::StrJoin(ins, "; "));
      }
      return kExitOk;
    }
    v1::Tenant t;
    absl::Status st;
    if (cmd == "tenant" && rest.size() == 1) {
      st = client.Call("GET", "/v1/tenants/" + rest[0], "", &t);
    } else if (cmd == "tenant" && rest.size() == 3 && rest[0] == "set") {
      v1::Tenant body;
      if (st = load(rest[2], &body); !st.ok()) return Report(st);
      st = client.Call("PUT", "/v1/tenants/" + rest[1], codec::ToJson(body), &t);
    } else {
      std::cerr << "portolan: usage: portolan tenants [--expiring 90d] | tenant ID | tenant set "
                   "ID FILE\n";
      return kExitUsage;
    }
    if (!st.ok()) return Report(st);
    print(t);
    return kExitOk;
  }
  if (cmd == "audit") {
    std::string query;
    for (size_t k = 0; k + 1 < rest.size(); k += 2) {
      if (rest[k] != "--tenant" && rest[k] != "--job" && rest[k] != "--limit") {
        std::cerr << "portolan: usage: portolan audit [--tenant T] [--job J] [--limit N]\n";
        return kExitUsage;
      }
      absl::StrAppend(&query, query.empty() ? "?" : "&", rest[k].substr(2), "=", rest[k + 1]);
    }
    if (rest.size() % 2 != 0) {
      std::cerr << "portolan: usage: portolan audit [--tenant T] [--job J] [--limit N]\n";
      return kExitUsage;
    }
    v1::ListAuditResponse r;
    if (auto st = client.Call("GET", "/v1/audit" + query, "", &r); !st.ok()) return Report(st);
    if (json) {
      print(r);
      return kExitOk;
    }
    absl::PrintF("%-20s %-17s %-10s %-16s %-6s %-20s %-20s %-18s %s\n", "TIME", "JOB", "TENANT",
                 "DATASET", "ORIGIN", "FROM", "TO", "RULE", "INSTRUMENT");
    for (const auto& a : r.records()) {
      absl::PrintF("%-20s %-17s %-10s %-16s %-6s %-20s %-20s %-18s %s\n", Short(a.time()), a.job(),
                   a.tenant(), a.dataset(), a.origin(), a.from_site().empty() ? "-" : a.from_site(),
                   a.to_site(), a.rule(), a.instrument().empty() ? "-" : a.instrument());
    }
    return kExitOk;
  }
  if (cmd == "violations") {
    std::string query;
    if (rest.size() == 2 && rest[0] == "--tenant") {
      query = "?tenant=" + rest[1];
    } else if (!rest.empty()) {
      std::cerr << "portolan: usage: portolan violations [--tenant T]\n";
      return kExitUsage;
    }
    v1::ListViolationsResponse r;
    if (auto st = client.Call("GET", "/v1/compliance/violations" + query, "", &r); !st.ok())
      return Report(st);
    if (json) {
      print(r);
      return kExitOk;
    }
    if (r.violations_size() == 0) {
      absl::PrintF("no placed or running job is in violation of the policy in force\n");
      return kExitOk;
    }
    absl::PrintF("%-17s %-10s %-16s %-18s %-22s %-20s %s\n", "JOB", "TENANT", "DATASET", "SITE",
                 "RULE", "SINCE", "ACTION");
    for (const auto& v : r.violations()) {
      absl::PrintF("%-17s %-10s %-16s %-18s %-22s %-20s %s\n", v.job(), v.tenant(), v.dataset(),
                   v.site(), v.rule(), Short(v.since()), v.action());
    }
    for (const auto& v : r.violations()) absl::PrintF("  %s: %s\n", v.job(), v.reason());
    return kExitOk;
  }
  if (cmd == "cordon" || cmd == "drain" || cmd == "uncordon") {
    if (rest.size() != 1) {
      std::cerr << "portolan: usage: portolan " << cmd << " AGENT_ID\n";
      return kExitUsage;
    }
    v1::Agent a;
    if (auto st = client.Call("POST", "/v1/agents/" + rest[0] + "/" + cmd, "", &a); !st.ok())
      return Report(st);
    absl::PrintF("agent %s is %s (%d job(s) still on it)\n", a.id(),
                 v1::Agent::State_Name(a.state()), a.jobs_size());
    return kExitOk;
  }
  if (cmd == "agents") {
    auto list = client.ListAgents();
    if (!list.ok()) return Report(list.status());
    if (json) {
      Emit(*list);
    } else {
      PrintAgentsTable(*list);
    }
    return kExitOk;
  }
  std::cerr << "portolan: unknown command '" << cmd << "'\n" << kUsage;
  return kExitUsage;
}
