// SPDX-License-Identifier: Apache-2.0
// Commands on placement and policy: plan, explain, policy, network, sites.
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "api/cli/cli.h"
#include "api/cli/printers.h"
#include "portolan/base/strings.h"

namespace portolan::cli {
namespace {

namespace po = boost::program_options;

int ShowDecision(Context& ctx, const absl::StatusOr<v1::Decision>& d, bool exit_on_infeasible,
                 const std::string& ended = "") {
  if (!d.ok()) return ctx.Report(d.status());
  if (ctx.structured()) {
    ctx.Emit(*d);
  } else {
    PrintDecision(*ctx.out, *d, ended);
  }
  return d->feasible() || !exit_on_infeasible ? kExitOk : kExitError;
}

int Plan(Context& ctx, const Args& a) {
  v1::Job spec;
  if (absl::Status st = LoadMessage(a.args[0], &spec); !st.ok()) return ctx.FileError(st);
  ApplySubmitDefaults(spec);
  return ShowDecision(ctx, ctx.client().Plan(spec), true);
}

int Explain(Context& ctx, const Args& a) {
  auto d = ctx.client().Explain(a.args[0]);
  std::string ended;
  if (d.ok() && !d->feasible()) {
    // A job that ended (cancelled, unschedulable, ...) before any placement
    // will never get one: say how it ended instead of "yet".
    auto job = ctx.client().GetJob(a.args[0]);
    if (job.ok() && Terminal(job->state()) && job->attempts().empty())
      ended = v1::Job::State_Name(job->state());
  }
  return ShowDecision(ctx, d, false, ended);
}

const char kPolicySynopsis[] =
    "policy get | apply FILE [--force] | validate FILE | versions | simulate [FILE] "
    "[--link ID=down|up]... [--tenant FILE]... [--history] [--since T] [--until T] "
    "[--ignore-capacity] [--max-changes N] [--deadline-ms MS]";

// "7d", "12h", "30m" before now, or an RFC 3339 instant.
absl::StatusOr<google::protobuf::Timestamp> When(const std::string& flag, const std::string& v) {
  absl::Time t;
  std::string err;
  if (absl::ParseTime(absl::RFC3339_full, v, &t, &err)) return base::ToProto(t);
  absl::Duration d;
  int days = 0;
  if (!v.empty() && v.back() == 'd' && absl::SimpleAtoi(v.substr(0, v.size() - 1), &days) &&
      days >= 0) {
    return base::ToProto(absl::Now() - absl::Hours(24) * days);
  }
  if (absl::ParseDuration(v, &d) && d >= absl::ZeroDuration())
    return base::ToProto(absl::Now() - d);
  return absl::InvalidArgumentError(absl::StrCat(
      "--", flag, " '", v, "': give a time before now (7d, 12h, 30m) or an RFC 3339 instant"));
}

// The what-if request of `policy simulate` / `policy apply` from the flags.
absl::StatusOr<v1::SimulateRequest> SimulateRequestOf(const Args& a) {
  v1::SimulateRequest r;
  for (const std::string& l : a.get<std::vector<std::string>>("link", {})) {
    const size_t eq = l.find('=');
    const std::string state = eq == std::string::npos ? "" : l.substr(eq + 1);
    if (eq == 0 || (state != "down" && state != "up"))
      return absl::InvalidArgumentError(absl::StrCat("--link '", l, "': give ID=down or ID=up"));
    v1::LinkChange* c = r.add_links();
    c->set_id(l.substr(0, eq));
    c->set_up(state == "up");
  }
  for (const std::string& f : a.get<std::vector<std::string>>("tenant", {})) {
    if (absl::Status st = LoadMessage(f, r.add_tenants()); !st.ok()) return st;
  }
  const bool history = a.get<bool>("history", false) || a.has("since") || a.has("until");
  if (history) {
    r.add_include(v1::SimulateRequest::active);
    r.add_include(v1::SimulateRequest::history);
  }
  for (const char* flag : {"since", "until"}) {
    if (!a.has(flag)) continue;
    auto t = When(flag, a.get<std::string>(flag, ""));
    if (!t.ok()) return t.status();
    *(std::string(flag) == "since" ? r.mutable_since() : r.mutable_until()) = *t;
  }
  if (a.get<bool>("ignore-capacity", false)) r.set_capacity(v1::SimulateRequest::ignore);
  r.set_max_changes(a.get<uint32_t>("max-changes", 50));
  r.set_deadline_ms(a.get<uint32_t>("deadline-ms", 25000));
  return r;
}

// POST /v1/policy:simulate, printed; `violations` gets the count.
int ShowImpact(Context& ctx, const v1::SimulateRequest& r, uint32_t* violations, bool print) {
  auto res = ctx.client().Simulate(r);
  if (!res.ok()) return ctx.Report(res.status());
  *violations = res->summary().violations();
  if (!print) return kExitOk;
  if (ctx.structured()) {
    ctx.Emit(*res);
  } else {
    PrintSimulation(*ctx.out, *res);
  }
  return kExitOk;
}

int Policy(Context& ctx, const Args& a) {
  const std::string& sub = a.args[0];
  client::Client& c = ctx.client();
  if (sub == "get" && a.args.size() == 1) {
    auto p = c.GetPolicy();
    if (!p.ok()) return ctx.Report(p.status());
    ctx.Emit(*p);  // the policy is a document: JSON (or YAML) even with -o table
    return kExitOk;
  }
  if (sub == "versions" && a.args.size() == 1) {
    auto r = c.PolicyVersions();
    if (!r.ok()) return ctx.Report(r.status());
    if (ctx.structured()) {
      ctx.Emit(*r);
    } else {
      PrintPolicyVersions(*ctx.out, *r);
    }
    return kExitOk;
  }
  if (sub == "simulate" && a.args.size() <= 2) {
    auto r = SimulateRequestOf(a);
    if (!r.ok()) return ctx.Report(r.status());
    if (a.args.size() == 2) {
      if (absl::Status st = LoadMessage(a.args[1], r->mutable_policy()); !st.ok())
        return ctx.FileError(st);
    }
    uint32_t violations = 0;
    return ShowImpact(ctx, *r, &violations, true);
  }
  if ((sub != "apply" && sub != "validate") || a.args.size() != 2)
    return ctx.Usage(kPolicySynopsis);
  v1::Policy p;
  if (absl::Status st = LoadMessage(a.args[1], &p); !st.ok()) return ctx.FileError(st);
  if (sub == "validate") {
    auto r = c.ValidatePolicy(p);
    if (!r.ok()) return ctx.Report(r.status());
    if (ctx.structured()) {
      ctx.Emit(*r);
    } else {
      PrintValidation(*ctx.out, a.args[1], *r);
    }
    return r->valid() ? kExitOk : kExitError;
  }
  // The impact first: what the new policy changes for the jobs there are now.
  v1::SimulateRequest impact;
  *impact.mutable_policy() = p;
  impact.set_max_changes(50);
  impact.set_deadline_ms(25000);
  uint32_t violations = 0;
  const bool force = a.get<bool>("force", false);
  if (int rc = ShowImpact(ctx, impact, &violations, !ctx.structured()); rc != kExitOk) return rc;
  if (violations > 0 && !force) {
    *ctx.err << absl::StrFormat(
        "portolan: not applied: %d placed or running job(s) would violate this policy (listed "
        "above); apply anyway with --force\n",
        violations);
    return kExitError;
  }
  auto v = c.ApplyPolicy(p, force);
  if (!v.ok()) return ctx.Report(v.status());
  if (ctx.structured()) {
    ctx.Emit(*v);
  } else if (v->unchanged()) {
    *ctx.out << absl::StrFormat("unchanged: the file equals policy %s in force; no new version\n",
                                v->version());
  } else {
    *ctx.out << absl::StrFormat("applied policy %s: %s\n", v->version(), v->summary());
  }
  return kExitOk;
}

int Network(Context& ctx, const Args& a) {
  if (a.args.empty()) {
    return ctx.Show(ctx.client().GetNetwork(), PrintNetwork);
  }
  if (a.args.size() != 3 || a.args[0] != "link" || (a.args[2] != "up" && a.args[2] != "down"))
    return ctx.Usage("network | network link ID up|down");
  return ctx.Show(ctx.client().SetLinkUp(a.args[1], a.args[2] == "up"), PrintLink);
}

int Sites(Context& ctx, const Args&) { return ctx.Show(ctx.client().ListSites(), PrintSites); }
int ClusterCmd(Context& ctx, const Args&) { return ctx.Show(ctx.client().Cluster(), PrintCluster); }

}  // namespace

void AddPolicyCommands(CommandTable& t) {
  t.Add({"plan", "plan FILE",
         "plan FILE.{json,yaml}        dry run: where the job would go and why (stores nothing)",
         nullptr, 1, 1, false, Plan});
  t.Add({"explain", "explain ID",
         "explain ID                   the placement decision of a job, site by site", nullptr, 1,
         1, false, Explain});
  t.Add(
      {"policy", kPolicySynopsis,
       "policy get                   the policy in force (JSON)\n"
       "policy apply FILE [--force]  show what the policy file (YAML or JSON) changes for the\n"
       "                             jobs there are, then apply it (a new version); refused\n"
       "                             when placed or running jobs would violate it, unless --force\n"
       "policy validate FILE         check a policy file without applying it\n"
       "policy versions              the policy history\n"
       "policy simulate [FILE]       what-if: the jobs a policy file, --link ID=down|up and\n"
       "                             --tenant FILE (profiles) would treat differently, without\n"
       "                             applying anything; --history [--since 7d] [--until T]\n"
       "                             also decides ended jobs again (--ignore-capacity: on empty\n"
       "                             agents); --max-changes N (50) jobs listed, --deadline-ms\n"
       "                             (25000)",
       [](po::options_description& d) {
         d.add_options()("force", po::bool_switch())(
             "link", po::value<std::vector<std::string>>()->composing())(
             "tenant", po::value<std::vector<std::string>>()->composing())(
             "history", po::bool_switch())("since", po::value<std::string>())(
             "until", po::value<std::string>())("ignore-capacity", po::bool_switch())(
             "max-changes", po::value<uint32_t>())("deadline-ms", po::value<uint32_t>());
       },
       1, 2, false, Policy});
  t.Add({"network", "network | network link ID up|down",
         "network                      links, computed RTT matrix, measured RTT\n"
         "network link ID up|down      mark a link (cable) up or down",
         nullptr, 0, 3, false, Network});
  t.Add({"sites", "sites", "sites                        the site catalogue", nullptr, 0, 0, false,
         Sites});
  t.Add({"cluster", "cluster",
         "cluster                      the schedulers (leader, standbys) and the store's health",
         nullptr, 0, 0, false, ClusterCmd});
}

}  // namespace portolan::cli
