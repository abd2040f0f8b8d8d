// Commands on placement and policy: plan, explain, policy, network, sites.
#include <iostream>

#include "absl/strings/str_format.h"
#include "api/cli/cli.h"
#include "api/cli/printers.h"

namespace portolan::cli {
namespace {

int ShowDecision(Context& ctx, const absl::StatusOr<v1::Decision>& d, bool exit_on_infeasible) {
  if (!d.ok()) return ctx.Report(d.status());
  if (ctx.structured()) {
    ctx.Emit(*d);
  } else {
    PrintDecision(*ctx.out, *d);
  }
  return d->feasible() || !exit_on_infeasible ? kExitOk : kExitError;
}

int Plan(Context& ctx, const Args& a) {
  v1::Job spec;
  if (absl::Status st = LoadMessage(a.args[0], &spec); !st.ok()) return ctx.Report(st);
  return ShowDecision(ctx, ctx.client().Plan(spec), true);
}

int Explain(Context& ctx, const Args& a) {
  return ShowDecision(ctx, ctx.client().Explain(a.args[0]), false);
}

const char kPolicySynopsis[] = "policy get | apply FILE | validate FILE | versions";

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
  if ((sub != "apply" && sub != "validate") || a.args.size() != 2)
    return ctx.Usage(kPolicySynopsis);
  v1::Policy p;
  if (absl::Status st = LoadMessage(a.args[1], &p); !st.ok()) return ctx.Report(st);
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
  auto v = c.ApplyPolicy(p);
  if (!v.ok()) return ctx.Report(v.status());
  if (ctx.structured()) {
    ctx.Emit(*v);
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
  t.Add({"policy", kPolicySynopsis,
         "policy get                   the policy in force (JSON)\n"
         "policy apply FILE            validate and apply a policy file (YAML or JSON); a new "
         "version\n"
         "policy validate FILE         check a policy file without applying it\n"
         "policy versions              the policy history",
         nullptr, 1, 2, false, Policy});
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
