#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "portolan/codec.h"
#include "portolan/scheduler_rest.h"
#include "portolan/v1/api.pb.h"
#include "portolan/v1/policy.pb.h"

namespace portolan::scheduler {

using rest::Json;
using rest::Request;
using rest::Response;
using rest::StatusResponse;

namespace {
// Who made a change, for the policy history. Authentication comes with the
// security work; until then the caller may name itself.
std::string Who(const Request& req) {
  auto it = req.headers.find("x-portolan-user");
  std::string user =
      it != req.headers.end() && !it->second.empty() ? it->second.substr(0, 128) : "anonymous";
  return absl::StrCat(user, "@", req.peer);
}
}  // namespace

void RegisterRestApi(rest::Server& server, Core* core, const std::atomic<bool>* ready) {
  server.Route("GET", "/healthz", [](const Request&) {
    v1::HealthResponse h;
    h.set_status("ok");
    h.set_version(PORTOLAN_VERSION);
    return Json(ToJson(h));
  });
  server.Route("GET", "/readyz", [ready](const Request&) {
    v1::HealthResponse h;
    h.set_version(PORTOLAN_VERSION);
    if (ready->load()) {
      h.set_status("ready");
      return Json(ToJson(h));
    }
    h.set_status("not_ready");
    h.set_detail("recovering state or agent listener not up yet");
    return Json(ToJson(h), 503);
  });

  server.Route("POST", "/v1/jobs", [core](const Request& req) {
    if (req.body.empty()) {
      return rest::ErrorResponse(400, "invalid_argument", "request body must be a JSON job");
    }
    v1::Job spec;
    absl::Status st = ParseJson(req.body, &spec);
    if (!st.ok()) return StatusResponse(st);
    auto res = core->Submit(std::move(spec));
    if (!res.ok()) return StatusResponse(res.status());
    return Json(ToJson(res->first), res->second ? 201 : 200);
  });

  server.Route("GET", "/v1/jobs", [core](const Request& req) {
    JobFilter f;
    for (const auto& [k, v] : req.query) {
      if (k == "state") {
        f.state = v;
      } else if (k == "tenant") {
        f.tenant = v;
      } else if (k == "page_size" || k == "limit") {
        if (!absl::SimpleAtoi(v, &f.page_size)) {
          return rest::ErrorResponse(400, "invalid_argument", "page_size must be an integer", k);
        }
      } else if (k == "page_token") {
        f.page_token = v;
      } else {
        return rest::ErrorResponse(400, "invalid_argument",
                                   absl::StrCat("unknown query parameter '", k,
                                                "' (state, tenant, page_size, page_token)"),
                                   k);
      }
    }
    auto res = core->ListJobs(f);
    if (!res.ok()) return StatusResponse(res.status());
    return Json(ToJson(*res));
  });

  server.Route("GET", "/v1/jobs/{id}", [core](const Request& req) {
    auto res = core->GetJob(req.params.at("id"));
    if (!res.ok()) return StatusResponse(res.status());
    return Json(ToJson(*res));
  });

  server.Route("DELETE", "/v1/jobs/{id}", [core](const Request& req) {
    auto res = core->Cancel(req.params.at("id"));
    if (!res.ok()) return StatusResponse(res.status());
    return Json(ToJson(*res), IsTerminal(res->state()) ? 200 : 202);
  });

  server.Route("GET", "/v1/jobs/{id}/logs", [core](const Request& req) {
    auto res = core->Logs(req.params.at("id"));
    if (!res.ok()) return StatusResponse(res.status());
    return Json(ToJson(*res));
  });

  server.Route("GET", "/v1/jobs/{id}/explanation", [core](const Request& req) {
    auto res = core->Explain(req.params.at("id"));
    if (!res.ok()) return StatusResponse(res.status());
    return Json(ToJson(*res));
  });

  server.Route("POST", "/v1/plan", [core](const Request& req) {
    v1::Job spec;
    if (req.body.empty())
      return rest::ErrorResponse(400, "invalid_argument", "request body must be a JSON job");
    if (absl::Status st = ParseJson(req.body, &spec); !st.ok()) return StatusResponse(st);
    auto res = core->Plan(std::move(spec));
    if (!res.ok()) return StatusResponse(res.status());
    return Json(ToJson(*res));
  });

  server.Route("GET", "/v1/policy", [core](const Request&) {
    auto res = core->GetPolicy();
    if (!res.ok()) return StatusResponse(res.status());
    return Json(ToJson(*res));
  });
  server.Route("PUT", "/v1/policy", [core](const Request& req) {
    v1::Policy p;
    if (absl::Status st = ParseJson(req.body, &p); !st.ok()) return StatusResponse(st);
    auto res = core->ApplyPolicy(std::move(p), Who(req));
    if (!res.ok()) return StatusResponse(res.status());
    return Json(ToJson(*res));
  });
  server.Route("POST", "/v1/policy:validate", [core](const Request& req) {
    v1::Policy p;
    if (absl::Status st = ParseJson(req.body, &p); !st.ok()) return StatusResponse(st);
    return Json(ToJson(core->ValidatePolicy(p)));
  });
  server.Route("GET", "/v1/policy/versions", [core](const Request&) {
    auto res = core->PolicyVersions();
    if (!res.ok()) return StatusResponse(res.status());
    return Json(ToJson(*res));
  });

  server.Route("GET", "/v1/tenants",
               [core](const Request&) { return Json(ToJson(core->ListTenants())); });
  server.Route("GET", "/v1/tenants/{id}", [core](const Request& req) {
    auto res = core->GetTenant(req.params.at("id"));
    if (!res.ok()) return StatusResponse(res.status());
    return Json(ToJson(*res));
  });
  server.Route("PUT", "/v1/tenants/{id}", [core](const Request& req) {
    v1::Tenant t;
    if (absl::Status st = ParseJson(req.body, &t); !st.ok()) return StatusResponse(st);
    auto res = core->PutTenant(req.params.at("id"), std::move(t));
    if (!res.ok()) return StatusResponse(res.status());
    return Json(ToJson(*res));
  });

  server.Route("GET", "/v1/sites", [core](const Request&) {
    auto res = core->Sites();
    if (!res.ok()) return StatusResponse(res.status());
    v1::ListSitesResponse out;
    for (auto& s : *res) *out.add_sites() = std::move(s);
    return Json(ToJson(out));
  });
  server.Route("GET", "/v1/network", [core](const Request&) {
    auto res = core->Network();
    if (!res.ok()) return StatusResponse(res.status());
    return Json(ToJson(*res));
  });
  server.Route("PUT", "/v1/network/links/{id}", [core](const Request& req) {
    v1::LinkUpdate u;
    if (absl::Status st = ParseJson(req.body, &u); !st.ok()) return StatusResponse(st);
    auto res = core->UpdateLink(req.params.at("id"), u, Who(req));
    if (!res.ok()) return StatusResponse(res.status());
    return Json(ToJson(*res));
  });

  server.Route("GET", "/v1/audit", [core](const Request& req) {
    std::string tenant, job;
    int limit = 100;
    for (const auto& [k, v] : req.query) {
      if (k == "tenant") {
        tenant = v;
      } else if (k == "job") {
        job = v;
      } else if (k == "limit") {
        if (!absl::SimpleAtoi(v, &limit))
          return rest::ErrorResponse(400, "invalid_argument", "limit must be an integer", "limit");
      } else {
        return rest::ErrorResponse(
            400, "invalid_argument",
            absl::StrCat("unknown query parameter '", k, "' (tenant, job, limit)"), k);
      }
    }
    auto res = core->Audit(tenant, job, limit);
    if (!res.ok()) return StatusResponse(res.status());
    return Json(ToJson(*res));
  });

  server.Route("GET", "/v1/agents",
               [core](const Request&) { return Json(ToJson(core->ListAgents())); });

  for (const char* action : {"cordon", "drain", "uncordon"}) {
    server.Route("POST", absl::StrCat("/v1/agents/{id}/", action),
                 [core, action](const Request& req) {
                   auto res = core->SetAgentMode(req.params.at("id"), action);
                   if (!res.ok()) return StatusResponse(res.status());
                   return Json(ToJson(*res));
                 });
  }
  server.Route("GET", "/v1/agents/{id}", [core](const Request& req) {
    auto res = core->GetAgent(req.params.at("id"));
    if (!res.ok()) return StatusResponse(res.status());
    return Json(ToJson(*res));
  });
}

}  // namespace portolan::scheduler
