// portolan: command-line client for tenants, operators and admins.
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "portolan/client.h"
#include "portolan/codec.h"
#include "portolan/strings.h"

using namespace portolan;

std::string scheduler_exit(const v1::Job& j);

namespace {

constexpr int kExitOk = 0;
constexpr int kExitError = 1;  // the server refused or the job did not succeed
constexpr int kExitUsage = 2;  // bad command line
constexpr int kExitUnreachable = 3;

const char* kUsage = R"(usage: portolan [--server URL] [-o table|json] COMMAND [ARGS]

Commands:
  submit FILE.{json,yaml}      submit a job described in a file ("-" reads JSON from stdin)
  submit [flags] -- CMD ARGS   submit a one-line job:
         --name N --cpus C --memory-mb M [--gpus G] [--tenant T] [--priority P]
         [--max-runtime-s S] [--env K=V]...
         add --wait to wait for the job to end (exit 0 only if it succeeded)
  jobs [--state S] [--limit N] list jobs, newest first
  job ID                       one job with its placement and events
  wait ID [--timeout-s S]      wait until the job ends; exit 0 only if it succeeded
  cancel ID                    cancel a job (running jobs are stopped on their agent)
  logs ID                      stdout and stderr tail of a job
  agents                       list agents
  agent ID                     one agent with its topology

Global flags:
  --server URL   scheduler REST address (default: $PORTOLAN_SERVER or http://127.0.0.1:7080)
  -o FORMAT      table (default) or json
  Token: $PORTOLAN_TOKEN, sent as a Bearer token.

Exit codes: 0 success, 1 request refused or job not succeeded, 2 usage error, 3 server unreachable.
)";

int Report(const absl::Status& st) {
  std::cerr << "portolan: " << st.message();
  std::string field = StatusField(st);
  if (!field.empty()) std::cerr << " (field: " << field << ")";
  std::cerr << "\n";
  return st.code() == absl::StatusCode::kUnavailable ? kExitUnreachable : kExitError;
}

std::string Short(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", FromProto(ts), absl::LocalTimeZone());
}

void PrintJobsTable(const v1::ListJobsResponse& list) {
  absl::PrintF("%-17s %-18s %-10s %-14s %-20s %-6s %s\n", "ID", "NAME", "TENANT", "STATE", "SITE",
               "EXIT", "REASON");
  for (const v1::Job& j : list.jobs()) {
    std::string reason = j.reason();
    if (reason.size() > 60) reason = reason.substr(0, 57) + "...";
    absl::PrintF("%-17s %-18s %-10s %-14s %-20s %-6s %s\n", j.id(), j.name().substr(0, 18),
                 j.tenant().substr(0, 10), v1::Job::State_Name(j.state()),
                 j.allocation().site().empty() ? "-" : j.allocation().site(), scheduler_exit(j),
                 reason);
  }
  if (!list.next_page_token().empty())
    absl::PrintF("(more: --page-token %s)\n", list.next_page_token());
}

}  // namespace

// Defined after the anonymous namespace so PrintJobsTable can use it.
std::string scheduler_exit(const v1::Job& j) {
  bool ended = j.state() == v1::Job::succeeded || j.state() == v1::Job::failed ||
               j.state() == v1::Job::cancelled;
  return ended ? absl::StrCat(j.exit_code()) : "-";
}

namespace {

void PrintJob(const v1::Job& j) {
  absl::PrintF("Job %s (%s)\n", j.id(), j.name());
  absl::PrintF("  tenant:     %s\n  kind:       %s\n  state:      %s\n  reason:     %s\n",
               j.tenant(), v1::Job::Kind_Name(j.kind()), v1::Job::State_Name(j.state()),
               j.reason());
  absl::PrintF("  command:    %s\n", absl::StrJoin(j.command(), " "));
  absl::PrintF("  resources:  %d cpus, %d MiB, %d gpus\n", j.resources().cpus(),
               j.resources().memory_mb(), j.resources().gpus());
  if (!j.allocation().agent().empty()) {
    absl::PrintF("  placed on:  agent %s at site %s (attempt %d)\n", j.allocation().agent(),
                 j.allocation().site(), j.attempt());
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

bool Terminal(v1::Job::State s) {
  return s == v1::Job::succeeded || s == v1::Job::failed || s == v1::Job::cancelled ||
         s == v1::Job::lost || s == v1::Job::unschedulable;
}

int Wait(Client& client, const std::string& id, int timeout_s, bool json) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (true) {
    auto job = client.GetJob(id);
    if (!job.ok()) return Report(job.status());
    if (Terminal(job->state())) {
      if (json) {
        std::cout << ToJson(*job, true) << "\n";
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
  const char* env_server = std::getenv("PORTOLAN_SERVER");
  std::string server = env_server ? env_server : "http://127.0.0.1:7080";
  std::string output = "table";
  const char* env_token = std::getenv("PORTOLAN_TOKEN");
  std::string token = env_token ? env_token : "";
  size_t i = 0;
  for (; i < args.size(); ++i) {
    if (args[i] == "--server" && i + 1 < args.size()) {
      server = args[++i];
    } else if ((args[i] == "-o" || args[i] == "--output") && i + 1 < args.size()) {
      output = args[++i];
    } else if (args[i] == "-h" || args[i] == "--help" || args[i] == "help") {
      std::cout << kUsage;
      return kExitOk;
    } else {
      break;
    }
  }
  if (output != "table" && output != "json") {
    std::cerr << "portolan: -o must be table or json\n";
    return kExitUsage;
  }
  if (server.find("://") == std::string::npos) server = "http://" + server;
  if (i >= args.size()) {
    std::cerr << kUsage;
    return kExitUsage;
  }
  const bool json = output == "json";
  const std::string cmd = args[i++];
  std::vector<std::string> rest(args.begin() + i, args.end());
  Client client(server, token);
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
        if (absl::Status st = ParseJson(body, &spec); !st.ok()) return Report(st);
      } else if (absl::Status st = LoadFile(rest[0], &spec); !st.ok()) {
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
      std::cout << ToJson(*job, true) << "\n";
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
      std::cout << ToJson(*list, true) << "\n";
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
        std::cout << ToJson(*logs, true) << "\n";
      } else {
        std::cout << logs->stdout();
        std::cerr << logs->stderr();
      }
      return kExitOk;
    }
    if (cmd == "agent") {
      auto a = client.GetAgent(id);
      if (!a.ok()) return Report(a.status());
      std::cout << ToJson(*a, true) << "\n";
      return kExitOk;
    }
    auto job = cmd == "job" ? client.GetJob(id) : client.Cancel(id);
    if (!job.ok()) return Report(job.status());
    if (json) {
      std::cout << ToJson(*job, true) << "\n";
    } else if (cmd == "cancel") {
      absl::PrintF(
          "%s: %s%s\n", id, v1::Job::State_Name(job->state()),
          job->cancel_requested() && !Terminal(job->state()) ? " (stopping on its agent)" : "");
    } else {
      PrintJob(*job);
    }
    return kExitOk;
  }
  if (cmd == "wait") {
    if (rest.empty()) {
      std::cerr << "portolan: usage: portolan wait ID [--timeout-s S]\n";
      return kExitUsage;
    }
    int timeout = 3600;
    if (rest.size() == 3 && rest[1] == "--timeout-s" && !absl::SimpleAtoi(rest[2], &timeout)) {
      std::cerr << "portolan: --timeout-s needs an integer\n";
      return kExitUsage;
    }
    return Wait(client, rest[0], timeout, json);
  }
  if (cmd == "agents") {
    auto list = client.ListAgents();
    if (!list.ok()) return Report(list.status());
    if (json) {
      std::cout << ToJson(*list, true) << "\n";
    } else {
      PrintAgentsTable(*list);
    }
    return kExitOk;
  }
  std::cerr << "portolan: unknown command '" << cmd << "'\n" << kUsage;
  return kExitUsage;
}
