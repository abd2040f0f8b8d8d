// SPDX-License-Identifier: Apache-2.0
// The v1 REST API: request parsing, authorization by role, and the mapping
// of core results to HTTP. Authentication happened in the REST server; every
// handler here sees the caller's principal.
//
// Roles: a tenant sees and acts on its own tenant's jobs only (another
// tenant's job answers 404, so ids do not leak); an operator manages the
// agents of its sites and reads sites and the network; an admin does all.
#include "portolan/rest/api.h"

#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "portolan/base/strings.h"
#include "portolan/codec/codec.h"
#include "portolan/v1/api.pb.h"
#include "portolan/v1/policy.pb.h"

namespace portolan::rest {

using scheduler::Core;
using scheduler::IsTerminal;
using scheduler::JobFilter;

namespace {

// Who made a change, for the policy history and logs.
std::string Who(const Request& req) { return absl::StrCat(req.principal.name, "@", req.peer); }

Response Forbidden(const Request& req, const std::string& what) {
  return ErrorResponse(403, "permission_denied",
                       absl::StrCat(req.principal.name, " (",
                                    v1::Token::Role_Name(req.principal.role), ") may not ", what));
}

absl::Status NoSuchJob(const std::string& id) {
  return codec::FieldError(absl::StatusCode::kNotFound, "id", absl::StrCat("no job '", id, "'"));
}

// The job if the caller may see it; another tenant's job is "not found".
absl::StatusOr<v1::Job> VisibleJob(Core* core, const Request& req, const std::string& id) {
  auto job = core->GetJob(id);
  if (!job.ok()) return job.status();
  if (req.principal.is_admin()) return job;
  if (req.principal.is_tenant() && job->tenant() == req.principal.tenant) return job;
  return NoSuchJob(id);
}

// Tenant principals act as their tenant; naming another one is refused.
absl::Status BindTenant(const Request& req, v1::Job& spec) {
  if (req.principal.is_admin()) return absl::OkStatus();
  if (!req.principal.is_tenant()) {
    return codec::FieldError(
        absl::StatusCode::kPermissionDenied, "",
        absl::StrCat(req.principal.name, " is not a tenant and cannot submit or plan jobs"));
  }
  if (!spec.tenant().empty() && spec.tenant() != req.principal.tenant) {
    return codec::FieldError(absl::StatusCode::kPermissionDenied, "tenant",
                             absl::StrCat("this token acts for tenant '", req.principal.tenant,
                                          "', not '", spec.tenant(), "'"));
  }
  spec.set_tenant(req.principal.tenant);
  return absl::OkStatus();
}

// A tenant's own token may not raise its jobs above the tenant's maximum
// priority (admins may).
absl::Status CheckPriority(Core* core, const Request& req, const v1::Job& spec) {
  if (req.principal.is_admin()) return absl::OkStatus();
  const int max = core->TenantMaxPriority(spec.tenant());
  if (spec.priority() <= max) return absl::OkStatus();
  return codec::FieldError(absl::StatusCode::kPermissionDenied, "priority",
                           absl::StrCat("tenant ", spec.tenant(), " may submit priority 0-", max,
                                        ", not ", spec.priority(), " (Tenant.max_priority)"));
}

// The agent if the caller may manage it; an operator's foreign agent is "not found".
absl::StatusOr<v1::Agent> VisibleAgent(Core* core, const Request& req, const std::string& id) {
  auto a = core->GetAgent(id);
  if (!a.ok()) return a.status();
  if (req.principal.may_see_site(a->site())) return a;
  return codec::FieldError(absl::StatusCode::kNotFound, "id", absl::StrCat("no agent '", id, "'"));
}

// PUT /v1/policy without allow_violations: a 409 listing the placed and
// running jobs the new policy would not allow where they are, if any. A
// policy that does not validate is left to ApplyPolicy to report.
std::optional<Response> RefuseViolations(Core* core, const v1::Policy& p,
                                         const scheduler::SimulateLimits& simulate) {
  v1::SimulateRequest r;
  *r.mutable_policy() = p;
  r.set_max_changes(5);
  scheduler::SimulateLimits limits = simulate;
  limits.holding_only = true;
  auto impact = core->Simulate(r, limits);
  if (!impact.ok()) {
    if (absl::IsInvalidArgument(impact.status()) || absl::IsUnavailable(impact.status()))
      return std::nullopt;
    return StatusResponse(impact.status());
  }
  const uint32_t n = impact->summary().violations();
  if (n == 0) return std::nullopt;
  std::vector<std::string> jobs;
  for (const v1::SimulatedChange& c : impact->changes()) {
    if (c.kind() == v1::SimulatedChange::violation)
      jobs.push_back(absl::StrCat(c.job(), " at ", c.from().site(), " (", c.reason(), ")"));
  }
  return ErrorResponse(
      409, "would_violate",
      absl::StrCat("not applied: ", n, " placed or running job(s) would violate this policy: ",
                   absl::StrJoin(jobs, "; "), n > jobs.size() ? "; ..." : "",
                   ". See POST /v1/policy:simulate; to apply anyway, PUT with "
                   "?allow_violations=true"),
      "allow_violations");
}

}  // namespace

void RegisterHealthAndMetrics(Server& server, metrics::Registry* metrics,
                              const std::string& detail) {
  if (metrics != nullptr) {
    server.Route("GET", "/metrics", [metrics](const Request& req) {
      if (!req.principal.is_admin() && !req.principal.is_operator())
        return Forbidden(req, "read metrics");
      Response r;
      r.body = metrics->Render();
      r.content_type = metrics::kContentType;
      return r;
    });
  }
  server.Route(
      "GET", "/healthz",
      [detail](const Request&) {
        v1::HealthResponse h;
        h.set_status("ok");
        h.set_version(PORTOLAN_VERSION);
        h.set_detail(detail);
        return Json(codec::ToJson(h));
      },
      /*is_public=*/true);
}

void RegisterRestApi(Server& server, Core* core, const std::atomic<bool>* ready,
                     metrics::Registry* metrics, const scheduler::SimulateLimits& simulate) {
  RegisterHealthAndMetrics(server, metrics);
  RegisterEventsApi(server, &core->events());
  RegisterDatasetsApi(server, core);
  server.Route(
      "GET", "/readyz",
      [ready](const Request&) {
        v1::HealthResponse h;
        h.set_version(PORTOLAN_VERSION);
        if (ready->load()) {
          h.set_status("ready");
          return Json(codec::ToJson(h));
        }
        h.set_status("not_ready");
        h.set_detail("recovering state or agent listener not up yet");
        return Json(codec::ToJson(h), 503);
      },
      /*is_public=*/true);

  // ---- jobs: tenants (their own), admins ----
  // Answered once the job is stored (or refused): the handler thread does
  // not wait for the store's commit, so submits from many connections share
  // one (Store::PutJobAsync).
  server.RouteAsync("POST", "/v1/jobs", [core](const Request& req, Server::Reply reply) {
    if (req.body.empty())
      return reply(ErrorResponse(400, "invalid_argument", "request body must be a JSON job"));
    v1::Job spec;
    if (absl::Status st = codec::ParseJson(req.body, &spec, codec::JsonMode::kRequest); !st.ok())
      return reply(StatusResponse(st));
    if (absl::Status st = BindTenant(req, spec); !st.ok()) return reply(StatusResponse(st));
    if (absl::Status st = CheckPriority(core, req, spec); !st.ok())
      return reply(StatusResponse(st));
    core->SubmitAsync(std::move(spec), [reply](absl::StatusOr<std::pair<v1::Job, bool>> res) {
      if (!res.ok()) return reply(StatusResponse(res.status()));
      reply(Json(codec::ToJson(res->first), res->second ? 201 : 200));
    });
  });

  server.Route("GET", "/v1/jobs", [core](const Request& req) {
    if (!req.principal.is_admin() && !req.principal.is_tenant()) return Forbidden(req, "list jobs");
    JobFilter f;
    for (const auto& [k, v] : req.query) {
      if (k == "state") {
        f.state = v;
      } else if (k == "tenant") {
        f.tenant = v;
      } else if (k == "page_size" || k == "limit") {
        if (!absl::SimpleAtoi(v, &f.page_size)) {
          return ErrorResponse(400, "invalid_argument", "page_size must be an integer", k);
        }
      } else if (k == "page_token") {
        f.page_token = v;
      } else {
        return ErrorResponse(400, "invalid_argument",
                             absl::StrCat("unknown query parameter '", k,
                                          "' (state, tenant, page_size, page_token)"),
                             k);
      }
    }
    if (req.principal.is_tenant()) f.tenant = req.principal.tenant;  // only ever its own
    auto res = core->ListJobs(f);
    if (!res.ok()) return StatusResponse(res.status());
    return Json(codec::ToJson(*res));
  });

  server.Route("GET", "/v1/jobs/{id}", [core](const Request& req) {
    auto res = VisibleJob(core, req, req.params.at("id"));
    if (!res.ok()) return StatusResponse(res.status());
    return Json(codec::ToJson(*res));
  });

  server.Route("DELETE", "/v1/jobs/{id}", [core](const Request& req) {
    if (auto v = VisibleJob(core, req, req.params.at("id")); !v.ok())
      return StatusResponse(v.status());
    auto res = core->Cancel(req.params.at("id"));
    if (!res.ok()) return StatusResponse(res.status());
    return Json(codec::ToJson(*res), IsTerminal(res->state()) ? 200 : 202);
  });

  server.Route("GET", "/v1/jobs/{id}/tasks", [core](const Request& req) {
    if (auto v = VisibleJob(core, req, req.params.at("id")); !v.ok())
      return StatusResponse(v.status());
    int page_size = 100;
    std::string token;
    for (const auto& [k, v] : req.query) {
      if (k == "page_size" || k == "limit") {
        if (!absl::SimpleAtoi(v, &page_size))
          return ErrorResponse(400, "invalid_argument", "page_size must be an integer", k);
      } else if (k == "page_token") {
        token = v;
      } else {
        return ErrorResponse(400, "invalid_argument",
                             absl::StrCat("unknown query parameter '", base::CleanForMessage(k),
                                          "' (page_size, page_token)"),
                             k);
      }
    }
    auto res = core->ListTasks(req.params.at("id"), page_size, token);
    if (!res.ok()) return StatusResponse(res.status());
    return Json(codec::ToJson(*res));
  });

  server.Route("GET", "/v1/jobs/{id}/logs", [core](const Request& req) {
    if (auto v = VisibleJob(core, req, req.params.at("id")); !v.ok())
      return StatusResponse(v.status());
    auto res = core->Logs(req.params.at("id"));
    if (!res.ok()) return StatusResponse(res.status());
    return Json(codec::ToJson(*res));
  });

  server.Route("GET", "/v1/jobs/{id}/explanation", [core](const Request& req) {
    if (auto v = VisibleJob(core, req, req.params.at("id")); !v.ok())
      return StatusResponse(v.status());
    auto res = core->Explain(req.params.at("id"));
    if (!res.ok()) return StatusResponse(res.status());
    return Json(codec::ToJson(*res));
  });

  server.Route("POST", "/v1/plan", [core](const Request& req) {
    if (req.body.empty())
      return ErrorResponse(400, "invalid_argument", "request body must be a JSON job");
    v1::Job spec;
    if (absl::Status st = codec::ParseJson(req.body, &spec, codec::JsonMode::kRequest); !st.ok())
      return StatusResponse(st);
    if (absl::Status st = BindTenant(req, spec); !st.ok()) return StatusResponse(st);
    if (absl::Status st = CheckPriority(core, req, spec); !st.ok()) return StatusResponse(st);
    auto res = core->Plan(std::move(spec));
    if (!res.ok()) return StatusResponse(res.status());
    return Json(codec::ToJson(*res));
  });

  // ---- policy, tenants, audit: admins ----
  server.Route("GET", "/v1/policy", [core](const Request& req) {
    if (!req.principal.is_admin()) return Forbidden(req, "read the policy");
    auto res = core->GetPolicy();
    if (!res.ok()) return StatusResponse(res.status());
    return Json(codec::ToJson(*res));
  });
  server.Route("PUT", "/v1/policy", [core, simulate](const Request& req) {
    if (!req.principal.is_admin()) return Forbidden(req, "change the policy");
    bool allow_violations = false;
    for (const auto& [k, v] : req.query) {
      if (k != "allow_violations") {
        return ErrorResponse(400, "invalid_argument",
                             absl::StrCat("unknown query parameter '", base::CleanForMessage(k),
                                          "' (allow_violations)"),
                             k);
      }
      if (v != "true" && v != "false")
        return ErrorResponse(400, "invalid_argument", "allow_violations must be true or false", k);
      allow_violations = v == "true";
    }
    v1::Policy p;
    if (absl::Status st = codec::ParseJson(req.body, &p, codec::JsonMode::kRequest); !st.ok())
      return StatusResponse(st);
    if (!allow_violations) {
      if (std::optional<Response> refused = RefuseViolations(core, p, simulate)) return *refused;
    }
    auto res = core->ApplyPolicy(std::move(p), Who(req));
    if (!res.ok()) return StatusResponse(res.status());
    return Json(codec::ToJson(*res));
  });
  server.Route("POST", "/v1/policy:simulate", [core, simulate](const Request& req) {
    if (!req.principal.is_admin()) return Forbidden(req, "simulate policy changes");
    v1::SimulateRequest r;
    if (!req.body.empty()) {
      if (absl::Status st = codec::ParseJson(req.body, &r, codec::JsonMode::kRequest); !st.ok())
        return StatusResponse(st);
    }
    auto res = core->Simulate(r, simulate);
    if (!res.ok()) return StatusResponse(res.status());
    return Json(codec::ToJson(*res));
  });
  server.Route("POST", "/v1/policy:validate", [core](const Request& req) {
    if (!req.principal.is_admin()) return Forbidden(req, "validate policies");
    v1::Policy p;
    if (absl::Status st = codec::ParseJson(req.body, &p, codec::JsonMode::kRequest); !st.ok())
      return StatusResponse(st);
    return Json(codec::ToJson(core->ValidatePolicy(p)));
  });
  server.Route("GET", "/v1/policy/versions", [core](const Request& req) {
    if (!req.principal.is_admin()) return Forbidden(req, "read the policy history");
    auto res = core->PolicyVersions();
    if (!res.ok()) return StatusResponse(res.status());
    return Json(codec::ToJson(*res));
  });
  server.Route("GET", "/v1/policy/versions/{version}", [core](const Request& req) {
    if (!req.principal.is_admin()) return Forbidden(req, "read the policy history");
    auto res = core->PolicyVersion(req.params.at("version"));
    if (!res.ok()) return StatusResponse(res.status());
    return Json(codec::ToJson(*res));
  });

  server.Route("GET", "/v1/tenants", [core](const Request& req) {
    if (!req.principal.is_admin()) return Forbidden(req, "list tenants");
    int days = -1;
    for (const auto& [k, v] : req.query) {
      if (k != "expiring_within_days") {
        return ErrorResponse(
            400, "invalid_argument",
            absl::StrCat("unknown query parameter '", k, "' (expiring_within_days)"), k);
      }
      if (!absl::SimpleAtoi(v, &days) || days < 0 || days > 36500) {
        return ErrorResponse(400, "invalid_argument",
                             "expiring_within_days must be a whole number of days, 0-36500", k);
      }
    }
    return Json(codec::ToJson(core->ListTenants(days)));
  });
  // Placed and running jobs the residency policy in force no longer allows:
  // admins see all (or ?tenant=), a tenant its own.
  server.Route("GET", "/v1/compliance/violations", [core](const Request& req) {
    std::string tenant;
    for (const auto& [k, v] : req.query) {
      if (k != "tenant") {
        return ErrorResponse(400, "invalid_argument",
                             absl::StrCat("unknown query parameter '", k, "' (tenant)"), k);
      }
      tenant = v;
    }
    if (req.principal.is_tenant()) {
      if (!tenant.empty() && tenant != req.principal.tenant)
        return Forbidden(req, "read another tenant's violations");
      tenant = req.principal.tenant;
    } else if (!req.principal.is_admin()) {
      return Forbidden(req, "read compliance violations");
    }
    return Json(codec::ToJson(core->Violations(tenant)));
  });
  server.Route("GET", "/v1/tenants/{id}", [core](const Request& req) {
    if (!req.principal.is_admin()) return Forbidden(req, "read tenant profiles");
    auto res = core->GetTenant(req.params.at("id"));
    if (!res.ok()) return StatusResponse(res.status());
    return Json(codec::ToJson(*res));
  });
  // What a tenant's jobs hold against its quota: admins any, a tenant its own.
  server.Route("GET", "/v1/tenants/{id}/usage", [core](const Request& req) {
    const std::string& id = req.params.at("id");
    if (req.principal.is_tenant() ? req.principal.tenant != id : !req.principal.is_admin())
      return Forbidden(req, "read another tenant's usage");
    if (!base::IsId(id))
      return ErrorResponse(400, "invalid_argument", absl::StrCat("tenant ids are ", base::kIdRule),
                           "id");
    return Json(codec::ToJson(core->Usage(id)));
  });
  server.Route("GET", "/v1/tenants/{id}/ledger", [core](const Request& req) {
    const std::string& id = req.params.at("id");
    if (req.principal.is_tenant() ? req.principal.tenant != id : !req.principal.is_admin())
      return Forbidden(req, "read another tenant's ledger");
    auto res = core->TenantLedger(id);
    if (!res.ok()) return StatusResponse(res.status());
    return Json(codec::ToJson(*res));
  });
  server.Route("PUT", "/v1/tenants/{id}", [core](const Request& req) {
    if (!req.principal.is_admin()) return Forbidden(req, "change tenant profiles");
    v1::Tenant t;
    if (absl::Status st = codec::ParseJson(req.body, &t, codec::JsonMode::kRequest); !st.ok())
      return StatusResponse(st);
    auto res = core->PutTenant(req.params.at("id"), std::move(t));
    if (!res.ok()) return StatusResponse(res.status());
    return Json(codec::ToJson(*res));
  });

  server.Route("GET", "/v1/audit", [core](const Request& req) {
    if (!req.principal.is_admin() && !req.principal.is_data_officer())
      return Forbidden(req, "read the audit trail");
    std::string tenant, job;
    int limit = 100;
    for (const auto& [k, v] : req.query) {
      if (k == "tenant") {
        tenant = v;
      } else if (k == "job") {
        job = v;
      } else if (k == "limit") {
        if (!absl::SimpleAtoi(v, &limit)) {
          return ErrorResponse(400, "invalid_argument", "limit must be an integer", "limit");
        }
      } else {
        return ErrorResponse(400, "invalid_argument",
                             absl::StrCat("unknown query parameter '", k, "' (tenant, job, limit)"),
                             k);
      }
    }
    auto res = core->Audit(tenant, job, limit);
    if (!res.ok()) return StatusResponse(res.status());
    return Json(codec::ToJson(*res));
  });

  // ---- sites and network: operators read, admins change ----
  server.Route("GET", "/v1/sites", [core](const Request& req) {
    if (req.principal.is_tenant()) return Forbidden(req, "read the site catalogue");
    auto res = core->Sites();
    if (!res.ok()) return StatusResponse(res.status());
    v1::ListSitesResponse out;
    for (auto& s : *res) *out.add_sites() = std::move(s);
    return Json(codec::ToJson(out));
  });
  server.Route("GET", "/v1/network", [core](const Request& req) {
    if (req.principal.is_tenant()) return Forbidden(req, "read the network");
    auto res = core->Network();
    if (!res.ok()) return StatusResponse(res.status());
    return Json(codec::ToJson(*res));
  });
  server.Route("PUT", "/v1/network/links/{id}", [core](const Request& req) {
    if (!req.principal.is_admin()) return Forbidden(req, "change links");
    v1::LinkUpdate u;
    if (absl::Status st = codec::ParseJson(req.body, &u, codec::JsonMode::kRequest); !st.ok())
      return StatusResponse(st);
    auto res = core->UpdateLink(req.params.at("id"), u, Who(req));
    if (!res.ok()) return StatusResponse(res.status());
    return Json(codec::ToJson(*res));
  });

  // ---- agents: operators (their sites), admins ----
  server.Route("GET", "/v1/agents", [core](const Request& req) {
    if (req.principal.is_tenant()) return Forbidden(req, "list agents");
    v1::ListAgentsResponse all = core->ListAgents();
    if (req.principal.is_admin()) return Json(codec::ToJson(all));
    v1::ListAgentsResponse mine;
    for (const auto& a : all.agents()) {
      if (req.principal.may_see_site(a.site())) *mine.add_agents() = a;
    }
    return Json(codec::ToJson(mine));
  });
  for (const char* action : {"cordon", "drain", "uncordon"}) {
    server.Route("POST", absl::StrCat("/v1/agents/{id}/", action),
                 [core, action](const Request& req) {
                   if (req.principal.is_tenant()) return Forbidden(req, "manage agents");
                   if (auto v = VisibleAgent(core, req, req.params.at("id")); !v.ok())
                     return StatusResponse(v.status());
                   auto res = core->SetAgentMode(req.params.at("id"), action);
                   if (!res.ok()) return StatusResponse(res.status());
                   return Json(codec::ToJson(*res));
                 });
  }
  server.Route("GET", "/v1/agents/{id}", [core](const Request& req) {
    if (req.principal.is_tenant()) return Forbidden(req, "read agents");
    auto res = VisibleAgent(core, req, req.params.at("id"));
    if (!res.ok()) return StatusResponse(res.status());
    return Json(codec::ToJson(*res));
  });
}

}  // namespace portolan::rest
