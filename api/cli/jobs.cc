// SPDX-License-Identifier: Apache-2.0
// Commands on jobs: submit, jobs, job, wait, watch, cancel, logs.
#include <chrono>
#include <iostream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "api/cli/cli.h"
#include "api/cli/printers.h"
#include "portolan/base/strings.h"
#include "portolan/codec/codec.h"

namespace portolan::cli {
namespace {

namespace po = boost::program_options;

// Polls the job every 200 ms until it ends or `timeout_s` passes; calls
// `on_poll` with each state seen. Returns the final job, or the error.
absl::StatusOr<v1::Job> PollUntilEnded(Context& ctx, const std::string& id, int timeout_s,
                                       const std::function<void(const v1::Job&)>& on_poll,
                                       bool* timed_out) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  *timed_out = false;
  while (true) {
    auto job = ctx.client().GetJob(id);
    if (!job.ok()) return job.status();
    on_poll(*job);
    if (Terminal(job->state())) return job;
    if (std::chrono::steady_clock::now() > deadline) {
      *timed_out = true;
      return job;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

int Wait(Context& ctx, const std::string& id, int timeout_s) {
  bool timed_out = false;
  auto job = PollUntilEnded(
      ctx, id, timeout_s, [](const v1::Job&) {}, &timed_out);
  if (!job.ok()) return ctx.Report(job.status());
  if (timed_out) {
    *ctx.err << "portolan: timed out after " << timeout_s << "s waiting for " << id << " (state "
             << v1::Job::State_Name(job->state()) << ": " << job->reason() << ")\n";
    return kExitError;
  }
  if (ctx.structured()) {
    ctx.Emit(*job);
  } else {
    *ctx.out << absl::StrFormat("%s %s: %s\n", id, v1::Job::State_Name(job->state()),
                                job->reason());
  }
  return job->state() == v1::Job::succeeded ? kExitOk : kExitError;
}

// Prints the job's events as they happen until it ends.
int Watch(Context& ctx, const std::string& id, int timeout_s) {
  int shown = 0;
  bool timed_out = false;
  auto print_new = [&](const v1::Job& job) {
    for (; shown < job.events_size(); ++shown) {
      const v1::JobEvent& e = job.events(shown);
      if (ctx.structured()) {
        *ctx.out << codec::ToJson(e) << std::endl;
      } else {
        *ctx.out << absl::FormatTime("%Y-%m-%d %H:%M:%E3S", base::FromProto(e.time()),
                                     absl::LocalTimeZone())
                 << "  " << absl::StrFormat("%-13s", v1::Job::State_Name(e.state())) << " "
                 << e.message() << std::endl;
      }
    }
  };
  auto job = PollUntilEnded(ctx, id, timeout_s, print_new, &timed_out);
  if (!job.ok()) return ctx.Report(job.status());
  if (timed_out) {
    *ctx.err << "portolan: timed out after " << timeout_s << "s watching " << id << "\n";
    return kExitError;
  }
  return job->state() == v1::Job::succeeded ? kExitOk : kExitError;
}

void SubmitFlags(po::options_description& d) {
  d.add_options()("name", po::value<std::string>())("tenant", po::value<std::string>())(
      "cpus", po::value<int>())("memory-mb", po::value<int>())("gpus", po::value<int>())(
      "priority", po::value<int>())("max-runtime-s", po::value<uint32_t>())(
      "env", po::value<std::vector<std::string>>()->composing())(
      "depends-on", po::value<std::vector<std::string>>()->composing())(
      "array", po::value<std::string>())("gang", po::value<std::string>())(
      "idempotency-key", po::value<std::string>())("wait", po::bool_switch());
}

// The job of `submit`: from a file, or from flags and "-- CMD ARGS".
absl::StatusOr<v1::Job> SubmitSpec(const Args& a) {
  v1::Job spec;
  if (!a.args.empty()) {
    if (absl::Status st = LoadMessage(a.args[0], &spec); !st.ok()) return st;
    if (a.has("idempotency-key"))
      spec.set_idempotency_key(a.vm["idempotency-key"].as<std::string>());
    ApplySubmitDefaults(spec);
    return spec;
  }
  if (a.has("name")) spec.set_name(a.vm["name"].as<std::string>());
  if (a.has("tenant")) spec.set_tenant(a.vm["tenant"].as<std::string>());
  for (const std::string& kv : a.get<std::vector<std::string>>("env", {})) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos) return absl::InvalidArgumentError("--env needs KEY=VALUE");
    (*spec.mutable_env())[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const std::string& d : a.get<std::vector<std::string>>("depends-on", {})) {
    // JOB or JOB:succeeded or JOB:finished
    v1::Dependency* dep = spec.add_depends_on();
    const size_t colon = d.find(':');
    dep->set_job(d.substr(0, colon));
    const std::string cond = colon == std::string::npos ? "succeeded" : d.substr(colon + 1);
    v1::Dependency::Condition c;
    if (!v1::Dependency::Condition_Parse(cond, &c) || c == v1::Dependency::condition_unspecified) {
      return absl::InvalidArgumentError(
          absl::StrCat("--depends-on takes JOB[:succeeded|finished], got '", d, "'"));
    }
    dep->set_condition(c);
  }
  if (a.has("array")) {
    // 0-LAST[%PARALLELISM], as Slurm's --array (tasks are numbered from 0).
    const std::string v = a.vm["array"].as<std::string>();
    const std::vector<std::string> range_par = absl::StrSplit(v, absl::MaxSplits('%', 1));
    const std::vector<std::string> range = absl::StrSplit(range_par[0], absl::MaxSplits('-', 1));
    uint32_t first = 1, last = 0, parallelism = 0;
    if (range.size() != 2 || !absl::SimpleAtoi(range[0], &first) ||
        !absl::SimpleAtoi(range[1], &last) || first != 0 ||
        (range_par.size() == 2 && !absl::SimpleAtoi(range_par[1], &parallelism))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--array takes 0-LAST[%PARALLELISM], e.g. 0-999%50 (tasks are numbered from 0), got '", v,
          "'"));
    }
    spec.mutable_array()->set_count(last + 1);
    spec.mutable_array()->set_parallelism(parallelism);
  }
  if (a.has("gang")) {
    // N[:site|any][@MAX_RTT_MS], e.g. 8:site or 4:any@40.
    const std::string v = a.vm["gang"].as<std::string>();
    const std::vector<std::string> rest_rtt = absl::StrSplit(v, absl::MaxSplits('@', 1));
    const std::vector<std::string> n_how = absl::StrSplit(rest_rtt[0], absl::MaxSplits(':', 1));
    uint32_t tasks = 0;
    double rtt = 0;
    v1::GangSpec::Colocate how = v1::GangSpec::any;
    if (!absl::SimpleAtoi(n_how[0], &tasks) ||
        (n_how.size() == 2 && (!v1::GangSpec::Colocate_Parse(n_how[1], &how) ||
                               how == v1::GangSpec::colocate_unspecified)) ||
        (rest_rtt.size() == 2 && !absl::SimpleAtod(rest_rtt[1], &rtt))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--gang takes N[:site|any][@MAX_RTT_MS], e.g. 8:site or 4:any@40, got '", v, "'"));
    }
    spec.mutable_gang()->set_tasks(tasks);
    spec.mutable_gang()->set_colocate(how);
    spec.mutable_gang()->set_max_rtt_ms(rtt);
  }
  if (a.has("cpus")) spec.mutable_resources()->set_cpus(a.vm["cpus"].as<int>());
  if (a.has("memory-mb")) spec.mutable_resources()->set_memory_mb(a.vm["memory-mb"].as<int>());
  if (a.has("gpus")) spec.mutable_resources()->set_gpus(a.vm["gpus"].as<int>());
  if (a.has("priority")) spec.set_priority(a.vm["priority"].as<int>());
  if (a.has("max-runtime-s")) spec.set_max_runtime_s(a.vm["max-runtime-s"].as<uint32_t>());
  if (a.has("idempotency-key")) spec.set_idempotency_key(a.vm["idempotency-key"].as<std::string>());
  ApplySubmitDefaults(spec);
  for (const std::string& w : a.rest) spec.add_command(w);
  return spec;
}

int Submit(Context& ctx, const Args& a) {
  auto spec = SubmitSpec(a);
  if (!spec.ok()) {
    // A bad flag, or a job file that cannot be read or parsed: a usage error
    // (exit 2, docs/cli.md), with the file's own message.
    if (spec.status().code() != absl::StatusCode::kUnavailable) return ctx.FileError(spec.status());
    return ctx.Report(spec.status());
  }
  const bool wait = a.get<bool>("wait", false);
  bool replayed = false;
  auto job = ctx.client().Submit(*spec, &replayed);
  if (!job.ok()) return ctx.Report(job.status());
  if (ctx.structured() && !wait) {
    ctx.Emit(*job);
  } else if (!ctx.structured() && replayed) {
    // The same idempotency key as an earlier submit: nothing new was made.
    *ctx.out << absl::StrFormat(
        "already submitted: idempotency key '%s' was used for %s (%s), which is returned "
        "unchanged; use a new key for a new job\n",
        spec->idempotency_key(), job->id(), v1::Job::State_Name(job->state()));
  } else if (!ctx.structured()) {
    *ctx.out << absl::StrFormat("submitted %s (%s): %s\n", job->id(),
                                v1::Job::State_Name(job->state()), job->reason());
  }
  return wait ? Wait(ctx, job->id(), 3600) : kExitOk;
}

// --limit of jobs and tasks: the server's page size, 1-1000 (checked here so
// that the message names the flag, not the API's page_size).
bool LimitOk(Context& ctx, const Args& a) {
  const int limit = a.get<int>("limit", 100);
  if (limit >= 1 && limit <= 1000) return true;
  *ctx.err << "portolan: --limit must be 1-1000 (jobs per page; --page-token T gives the next "
              "page), got "
           << limit << "\n";
  return false;
}

int Jobs(Context& ctx, const Args& a) {
  if (!LimitOk(ctx, a)) return kExitUsage;
  return ctx.Show(ctx.client().ListJobs(a.get<std::string>("state", ""), a.get<int>("limit", 100),
                                        a.get<std::string>("page-token", "")),
                  PrintJobsTable);
}

int Job(Context& ctx, const Args& a) { return ctx.Show(ctx.client().GetJob(a.args[0]), PrintJob); }

int Cancel(Context& ctx, const Args& a) {
  auto job = ctx.client().Cancel(a.args[0]);
  if (!job.ok()) return ctx.Report(job.status());
  if (ctx.structured()) {
    ctx.Emit(*job);
  } else {
    *ctx.out << absl::StrFormat(
        "%s: %s%s\n", a.args[0], v1::Job::State_Name(job->state()),
        job->cancel_requested() && !Terminal(job->state()) ? " (stopping on its agent)" : "");
  }
  return kExitOk;
}

int Logs(Context& ctx, const Args& a) {
  auto logs = ctx.client().Logs(a.args[0]);
  if (!logs.ok()) return ctx.Report(logs.status());
  if (ctx.structured()) {
    ctx.Emit(*logs);
  } else {
    *ctx.out << logs->stdout();
    *ctx.err << logs->stderr();
  }
  return kExitOk;
}

void TimeoutFlag(po::options_description& d) {
  d.add_options()("timeout-s", po::value<int>()->default_value(3600));
}

}  // namespace

void ApplySubmitDefaults(v1::Job& spec) {
  constexpr int kDefaultCpus = 1;
  constexpr int kDefaultMemoryMb = 256;
  v1::Resources* r = spec.mutable_resources();
  if (r->cpus() == 0) r->set_cpus(kDefaultCpus);
  if (r->memory_mb() == 0) r->set_memory_mb(kDefaultMemoryMb);
}

void AddJobCommands(CommandTable& t) {
  t.Add({"submit", "submit FILE [--wait] | submit [flags] -- CMD ARGS",
         "submit FILE.{json,yaml}      submit a job described in a file (\"-\" reads JSON from "
         "stdin)\n"
         "submit [flags] -- CMD ARGS   submit a one-line job:\n"
         "       --name N --cpus C --memory-mb M [--gpus G] [--tenant T] [--priority P]\n"
         "       [--max-runtime-s S] [--env K=V]... [--depends-on JOB[:succeeded|finished]]...\n"
         "       [--array 0-LAST[%PARALLELISM]] [--gang N[:site|any][@MAX_RTT_MS]]\n"
         "       defaults: 1 CPU and 256 MiB when the file or flags name none\n"
         "       --idempotency-key K: a retry with the same K returns the first job\n"
         "       add --wait to wait for the job to end (exit 0 only if it succeeded)",
         SubmitFlags, 0, 1, true, Submit});
  t.Add({"jobs", "jobs [--state S] [--limit N] [--page-token T]",
         "jobs [--state S] [--limit N] list jobs, newest first (--page-token T: the next page)",
         [](po::options_description& d) {
           d.add_options()("state", po::value<std::string>())("limit", po::value<int>())(
               "page-token", po::value<std::string>());
         },
         0, 0, false, Jobs});
  t.Add({"tasks", "tasks ID [--limit N] [--page-token T]",
         "tasks ID [--limit N]         an array's or gang's tasks by index (--page-token T: the "
         "next page)",
         [](po::options_description& d) {
           d.add_options()("limit", po::value<int>())("page-token", po::value<std::string>());
         },
         1, 1, false,
         [](Context& ctx, const Args& a) {
           if (!LimitOk(ctx, a)) return kExitUsage;
           return ctx.Show(ctx.client().ListTasks(a.args[0], a.get<int>("limit", 100),
                                                  a.get<std::string>("page-token", "")),
                           PrintTasksTable);
         }});
  t.Add({"job", "job ID", "job ID                       one job with its placement and events",
         nullptr, 1, 1, false, Job});
  t.Add({"wait", "wait ID [--timeout-s S]",
         "wait ID [--timeout-s S]      wait until the job ends; exit 0 only if it succeeded",
         TimeoutFlag, 1, 1, false, [](Context& ctx, const Args& a) {
           return Wait(ctx, a.args[0], a.vm["timeout-s"].as<int>());
         }});
  t.Add({"watch", "watch ID [--timeout-s S] | watch [--kinds job,agent,link] [--count N]",
         "watch ID [--timeout-s S]     print the job's events as they happen until it ends; exit "
         "as wait\n"
         "watch [--kinds K,...] [--count N]\n"
         "                             print job, agent and link changes you may see as they "
         "happen\n"
         "                             (--count: stop after N events)",
         [](po::options_description& d) {
           TimeoutFlag(d);
           d.add_options()("kinds", po::value<std::string>())("count", po::value<int>());
         },
         0, 1, false,
         [](Context& ctx, const Args& a) {
           if (a.args.empty()) return WatchEvents(ctx, a);
           return Watch(ctx, a.args[0], a.vm["timeout-s"].as<int>());
         }});
  t.Add({"cancel", "cancel ID",
         "cancel ID                    cancel a job (running jobs are stopped on their agent)",
         nullptr, 1, 1, false, Cancel});
  t.Add({"logs", "logs ID", "logs ID                      stdout and stderr tail of a job", nullptr,
         1, 1, false, Logs});
}

}  // namespace portolan::cli
