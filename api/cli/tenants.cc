// SPDX-License-Identifier: Apache-2.0
// Commands on tenants and compliance: tenants, tenant, audit, violations.
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "api/cli/cli.h"
#include "api/cli/printers.h"

namespace portolan::cli {
namespace {

namespace po = boost::program_options;

int Tenants(Context& ctx, const Args& a) {
  int days = -1;
  if (a.has("expiring")) {
    // "90d" or "90": days from today.
    std::string n = a.vm["expiring"].as<std::string>();
    if (!n.empty() && n.back() == 'd') n.pop_back();
    if (!absl::SimpleAtoi(n, &days) || days < 0) {
      *ctx.err << "portolan: --expiring takes a number of days, e.g. 90d (got '"
               << a.vm["expiring"].as<std::string>() << "')\n";
      return kExitUsage;
    }
  }
  auto r = ctx.client().ListTenants(days);
  if (!r.ok()) return ctx.Report(r.status());
  if (ctx.structured()) {
    ctx.Emit(*r);
  } else if (days >= 0) {
    PrintExpiringInstruments(*ctx.out, *r, days,
                             absl::ToCivilDay(absl::Now(), absl::UTCTimeZone()));
  } else {
    PrintTenants(*ctx.out, *r);
  }
  return kExitOk;
}

int Tenant(Context& ctx, const Args& a) {
  absl::StatusOr<v1::Tenant> t;
  if (a.args.size() == 2 && a.args[0] == "usage") {
    return ctx.Show(ctx.client().TenantUsage(a.args[1]), PrintTenantUsage);
  }
  if (a.args.size() == 1) {
    t = ctx.client().GetTenant(a.args[0]);
  } else if (a.args.size() == 3 && a.args[0] == "set") {
    v1::Tenant body;
    if (absl::Status st = LoadMessage(a.args[2], &body); !st.ok()) return ctx.FileError(st);
    t = ctx.client().PutTenant(a.args[1], body);
  } else {
    return ctx.Usage("tenant ID | tenant set ID FILE | tenant usage ID");
  }
  return ctx.Show(t, PrintTenant);
}

int Audit(Context& ctx, const Args& a) {
  client::Client::AuditFilter f;
  f.tenant = a.get<std::string>("tenant", "");
  f.job = a.get<std::string>("job", "");
  f.limit = a.get<int>("limit", 0);
  return ctx.Show(ctx.client().Audit(f), PrintAudit);
}

int Violations(Context& ctx, const Args& a) {
  return ctx.Show(ctx.client().Violations(a.get<std::string>("tenant", "")), PrintViolations);
}

}  // namespace

void AddTenantCommands(CommandTable& t) {
  t.Add({"tenants", "tenants [--expiring 90d]",
         "tenants [--expiring 90d]     tenant profiles; --expiring: only instruments that expire "
         "within\n"
         "                             that many days (or have expired), with the days left",
         [](po::options_description& d) { d.add_options()("expiring", po::value<std::string>()); },
         0, 0, false, Tenants});
  t.Add({"tenant", "tenant ID | tenant set ID FILE | tenant usage ID",
         "tenant ID                    one tenant profile\n"
         "tenant set ID FILE           set a tenant profile (zones, CIIO flag, instruments,\n"
         "                             quota, weight)\n"
         "tenant usage ID              what the tenant's jobs hold against its quota",
         nullptr, 1, 3, false, Tenant});
  t.Add({"audit", "audit [--tenant T] [--job J] [--limit N]",
         "audit [--tenant T] [--job J] [--limit N]   cross-border placements, newest first",
         [](po::options_description& d) {
           d.add_options()("tenant", po::value<std::string>())("job", po::value<std::string>())(
               "limit", po::value<int>());
         },
         0, 0, false, Audit});
  t.Add({"violations", "violations [--tenant T]",
         "violations [--tenant T]      placed or running jobs the policy in force no longer allows",
         [](po::options_description& d) { d.add_options()("tenant", po::value<std::string>()); }, 0,
         0, false, Violations});
}

}  // namespace portolan::cli
