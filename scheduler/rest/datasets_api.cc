// SPDX-License-Identifier: Apache-2.0
// /v1/datasets: the dataset registry (docs/datasets.md). A tenant registers
// and reads its own datasets (another tenant's answers 404); admins and data
// officers read all of them and alone may attest a classification.
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "portolan/codec/codec.h"
#include "portolan/datasets/registry.h"
#include "portolan/rest/api.h"

namespace portolan::rest {
namespace {

datasets::Actor ActorOf(const Request& req) {
  datasets::Actor a;
  a.name = req.principal.name;
  if (req.principal.is_admin()) {
    a.role = datasets::Actor::Role::kAdmin;
  } else if (req.principal.is_data_officer()) {
    a.role = datasets::Actor::Role::kDataOfficer;
  } else if (req.principal.is_tenant()) {
    a.role = datasets::Actor::Role::kTenant;
    a.tenant = req.principal.tenant;
  }
  return a;
}

Response Answer(const absl::StatusOr<v1::RegisteredDataset>& d, int status = 200) {
  if (!d.ok()) return StatusResponse(d.status());
  return Json(codec::ToJson(*d), status);
}

}  // namespace

void RegisterDatasetsApi(Server& server, scheduler::Core* core) {
  datasets::Registry* registry = &core->datasets();
  auto check = [core](const v1::RegisteredDataset& d) { return core->CheckDatasetFacts(d); };

  server.Route("POST", "/v1/datasets", [registry, check](const Request& req) {
    if (req.body.empty())
      return ErrorResponse(400, "invalid_argument", "request body must be a JSON dataset");
    v1::RegisteredDataset d;
    if (absl::Status st = codec::ParseJson(req.body, &d, codec::JsonMode::kRequest); !st.ok())
      return StatusResponse(st);
    return Answer(registry->Create(std::move(d), ActorOf(req), check), 201);
  });

  server.Route("GET", "/v1/datasets", [registry](const Request& req) {
    std::string tenant, page_token;
    int page_size = 100;
    for (const auto& [k, v] : req.query) {
      if (k == "tenant") {
        tenant = v;
      } else if (k == "page_size") {
        if (!absl::SimpleAtoi(v, &page_size))
          return ErrorResponse(400, "invalid_argument", "page_size must be an integer", k);
      } else if (k == "page_token") {
        page_token = v;
      } else {
        return ErrorResponse(
            400, "invalid_argument",
            absl::StrCat("unknown query parameter '", k, "' (tenant, page_size, page_token)"), k);
      }
    }
    auto res = registry->List(ActorOf(req), tenant, page_size, page_token);
    if (!res.ok()) return StatusResponse(res.status());
    return Json(codec::ToJson(*res));
  });

  server.Route("GET", "/v1/datasets/{id}", [registry](const Request& req) {
    return Answer(registry->Get(req.params.at("id"), ActorOf(req)));
  });

  server.Route("GET", "/v1/datasets/{id}/versions", [registry](const Request& req) {
    auto res = registry->Versions(req.params.at("id"), ActorOf(req));
    if (!res.ok()) return StatusResponse(res.status());
    return Json(codec::ToJson(*res));
  });

  server.Route("PUT", "/v1/datasets/{id}", [registry, check](const Request& req) {
    v1::RegisteredDataset d;
    if (absl::Status st = codec::ParseJson(req.body, &d, codec::JsonMode::kRequest); !st.ok())
      return StatusResponse(st);
    return Answer(registry->Update(req.params.at("id"), std::move(d), ActorOf(req), check));
  });
}

}  // namespace portolan::rest
