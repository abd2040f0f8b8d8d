#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "portolan/codec.h"
#include "portolan/scheduler_rest.h"
#include "portolan/v1/api.pb.h"

namespace portolan::scheduler {

using rest::Json;
using rest::Request;
using rest::Response;
using rest::StatusResponse;

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

  server.Route("GET", "/v1/agents",
               [core](const Request&) { return Json(ToJson(core->ListAgents())); });

  server.Route("GET", "/v1/agents/{id}", [core](const Request& req) {
    auto res = core->GetAgent(req.params.at("id"));
    if (!res.ok()) return StatusResponse(res.status());
    return Json(ToJson(*res));
  });
}

}  // namespace portolan::scheduler
