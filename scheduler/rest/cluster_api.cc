// SPDX-License-Identifier: Apache-2.0
#include "portolan/rest/cluster_api.h"

#include "absl/strings/str_cat.h"
#include "portolan/codec/codec.h"
#include "portolan/rest/api.h"
#include "portolan/v1/api.pb.h"

namespace portolan::rest {
namespace {

bool MaySeeCluster(const Request& req) {
  return req.principal.is_admin() || req.principal.is_operator();
}

Response Forbidden(const Request& req, const std::string& what) {
  return ErrorResponse(403, "permission_denied",
                       absl::StrCat(req.principal.name, " (",
                                    v1::Token::Role_Name(req.principal.role), ") may not ", what));
}

}  // namespace

void RegisterClusterApi(Server& server, std::function<v1::ClusterView()> view) {
  server.Route("GET", "/v1/cluster", [view](const Request& req) {
    if (!MaySeeCluster(req)) return Forbidden(req, "see the cluster");
    return Json(codec::ToJson(view()));
  });
}

v1::ClusterView SingleSchedulerView(const std::string& id, const std::string& rest_addr,
                                    const std::string& rpc_addr) {
  v1::ClusterView view;
  v1::ClusterMember* me = view.add_members();
  me->set_id(id);
  me->set_rest_addr(rest_addr);
  me->set_rpc_addr(rpc_addr);
  me->set_role("leader");
  me->set_version(PORTOLAN_VERSION);
  view.set_leader(id);
  view.mutable_store()->set_kind("sqlite");
  view.mutable_store()->set_healthy(true);
  return view;
}

void RegisterStandbyApi(Server& server, std::function<v1::ClusterMember()> leader,
                        std::function<v1::ClusterView()> view, metrics::Registry* metrics) {
  RegisterHealthAndMetrics(server, metrics, "standby");
  server.Route(
      "GET", "/readyz",
      [leader](const Request&) {
        v1::HealthResponse h;
        h.set_version(PORTOLAN_VERSION);
        h.set_status("not_ready");
        const v1::ClusterMember l = leader();
        h.set_detail(l.id().empty()
                         ? "standby; no leader elected yet"
                         : absl::StrCat("standby; the leader is ", l.id(), " at ", l.rest_addr()));
        return Json(codec::ToJson(h), 503);
      },
      /*is_public=*/true);
  RegisterClusterApi(server, std::move(view));
  server.Fallback([leader](const Request& req) {
    const v1::ClusterMember l = leader();
    if (l.rest_addr().empty()) {
      return ErrorResponse(503, "unavailable",
                           "this scheduler is a standby and no leader is elected yet; retry in "
                           "a few seconds");
    }
    Response r = ErrorResponse(307, "redirect",
                               absl::StrCat("this scheduler is a standby; the leader is ", l.id()));
    r.headers.emplace_back("Location", absl::StrCat(l.rest_addr(), req.target));
    return r;
  });
}

}  // namespace portolan::rest
