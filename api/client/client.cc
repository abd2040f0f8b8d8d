// SPDX-License-Identifier: Apache-2.0
#include "portolan/client/client.h"

#include <cpprest/http_client.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "portolan/codec/codec.h"
#include "portolan/v1/api.pb.h"

namespace portolan::client {

namespace http = web::http;

// Redirects (a standby to the leader) followed for one call at most.
constexpr int kMaxHops = 3;

struct Client::Impl {
  std::unique_ptr<http::client::http_client> http;
  http::client::http_client_config cfg;
  std::string token;
  std::vector<std::string> bases;  // every scheduler's URL; one for a single scheduler
  size_t current = 0;              // the one in use
  std::string base;                // bases[current], or where a redirect pointed

  // The Location of a redirect (a standby's 307 to the leader), "" if
  // `resp` is none.
  static std::string Redirect(const http::http_response& resp) {
    const auto code = resp.status_code();
    auto location = resp.headers().find("Location");
    if ((code != 307 && code != 308) || location == resp.headers().end()) return "";
    return location->second;
  }
  // Points the client at the scheme, host and port of `location`; false
  // when it is not a URL.
  bool UseOrigin(const std::string& location) {
    web::uri to(location);
    return Use(absl::StrCat(to.scheme(), "://", to.host(), ":", to.port()));
  }
  // Points the client at `url`; false when it is not a URL.
  bool Use(const std::string& url) {
    base = url;
    try {
      http = std::make_unique<http::client::http_client>(web::uri(url), cfg);
      return true;
    } catch (const std::exception&) {
      http.reset();  // reported on the call
      return false;
    }
  }
};

Client::Client(const std::string& base_url, const std::string& token, const std::string& ca_file)
    : impl_(std::make_unique<Impl>()) {
  for (absl::string_view b : absl::StrSplit(base_url, ',', absl::SkipWhitespace())) {
    impl_->bases.emplace_back(absl::StripAsciiWhitespace(b));
  }
  if (impl_->bases.empty()) impl_->bases.push_back(base_url);
  impl_->token = token;
  impl_->cfg.set_timeout(std::chrono::seconds(30));
  if (!ca_file.empty()) {
    impl_->cfg.set_ssl_context_callback([ca_file](boost::asio::ssl::context& ctx) {
      boost::system::error_code ec;
      ctx.load_verify_file(ca_file, ec);  // a bad file fails verification on the call
    });
  }
  impl_->Use(impl_->bases[0]);
}

Client::~Client() = default;

absl::StatusOr<int> Client::Raw(const std::string& method, const std::string& path,
                                const std::string& body, std::string* response_body) {
  // A standby scheduler answers 307 with the leader's URL: follow it (a few
  // hops at most) and keep using it. With several URLs, one that cannot be
  // reached (a scheduler down) passes the call to the next.
  size_t unreachable = 0;
  for (int hop = 0;;) {
    if (!impl_->http)
      return absl::InvalidArgumentError(absl::StrCat("bad server URL '", impl_->base, "'"));
    try {
      http::http_request req(method);
      req.set_request_uri(path);
      if (!impl_->token.empty()) req.headers().add("Authorization", "Bearer " + impl_->token);
      if (!body.empty()) req.set_body(body, "application/json");
      http::http_response resp = impl_->http->request(req).get();
      *response_body = resp.extract_string(true).get();
      const std::string location = Impl::Redirect(resp);
      if (!location.empty() && hop < kMaxHops) {
        ++hop;
        if (!impl_->UseOrigin(location))
          return absl::InvalidArgumentError(absl::StrCat("bad redirect to '", location, "'"));
        continue;
      }
      return static_cast<int>(resp.status_code());
    } catch (const std::exception& e) {
      if (++unreachable < impl_->bases.size()) {
        impl_->current = (impl_->current + 1) % impl_->bases.size();
        impl_->Use(impl_->bases[impl_->current]);
        continue;
      }
      return absl::UnavailableError(absl::StrCat("cannot reach ", impl_->base, ": ", e.what()));
    }
  }
}

namespace {

absl::StatusCode CodeOf(int http_status) {
  switch (http_status) {
    case 400:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 409:
      return absl::StatusCode::kFailedPrecondition;
    case 413:
      return absl::StatusCode::kOutOfRange;
    case 429:
      return absl::StatusCode::kResourceExhausted;
    case 503:
      return absl::StatusCode::kUnavailable;
    default:
      return absl::StatusCode::kInternal;
  }
}

template <typename T>
absl::StatusOr<T> CallAs(Client& c, const std::string& method, const std::string& path,
                         const std::string& body = "") {
  T msg;
  absl::Status st = c.Call(method, path, body, &msg);
  if (!st.ok()) return st;
  return msg;
}

std::string Escape(const std::string& s) { return web::uri::encode_data_string(s); }

// The error an answer's body describes, with its field.
absl::Status ErrorOf(int code, const std::string& text) {
  v1::ErrorResponse err;
  if (codec::ParseJson(text, &err).ok() && !err.error().message().empty()) {
    return codec::FieldError(CodeOf(code), err.error().field(), err.error().message());
  }
  return absl::Status(CodeOf(code), absl::StrCat("HTTP ", code, ": ", text.substr(0, 200)));
}

// Server-sent events from a byte stream: complete events go to `on_event`.
class SseReader {
 public:
  // False when `on_event` asked to stop.
  bool Feed(absl::string_view bytes, std::string* last_event_id,
            const std::function<bool(const v1::Event&)>& on_event) {
    pending_.append(bytes.data(), bytes.size());
    size_t start = 0;
    for (size_t nl; (nl = pending_.find('\n', start)) != std::string::npos; start = nl + 1) {
      absl::string_view line(pending_.data() + start, nl - start);
      absl::ConsumeSuffix(&line, "\r");
      if (line.empty()) {
        if (!data_.empty()) {
          v1::Event e;
          if (codec::ParseJson(data_, &e).ok()) {
            if (!id_.empty()) *last_event_id = id_;
            if (!on_event(e)) return false;
          }
        }
        data_.clear();
      } else if (absl::ConsumePrefix(&line, "data:")) {
        absl::ConsumePrefix(&line, " ");
        absl::StrAppend(&data_, data_.empty() ? "" : "\n", line);
      } else if (absl::ConsumePrefix(&line, "id:")) {
        absl::ConsumePrefix(&line, " ");
        id_ = std::string(line);
      }  // comments (":") and other fields are skipped
    }
    pending_.erase(0, start);
    return true;
  }

 private:
  std::string pending_, data_, id_;
};

}  // namespace

absl::Status Client::Watch(const std::string& query, std::string* last_event_id,
                           const std::function<bool(const v1::Event&)>& on_event,
                           const std::function<void()>& on_open) {
  try {
    http::http_response resp;
    for (int hop = 0;; ++hop) {
      if (!impl_->http)
        return absl::InvalidArgumentError(absl::StrCat("bad server URL '", impl_->base, "'"));
      http::http_request req("GET");
      req.set_request_uri(query.empty() ? "/v1/events" : "/v1/events?" + query);
      req.headers().add("Accept", "text/event-stream");
      if (!impl_->token.empty()) req.headers().add("Authorization", "Bearer " + impl_->token);
      if (!last_event_id->empty()) req.headers().add("Last-Event-ID", *last_event_id);
      resp = impl_->http->request(req).get();
      // A standby points at the leader (as in Raw).
      const std::string location = Impl::Redirect(resp);
      if (location.empty() || hop == kMaxHops) break;
      if (!impl_->UseOrigin(location))
        return absl::InvalidArgumentError(absl::StrCat("bad redirect to '", location, "'"));
    }
    const int code = static_cast<int>(resp.status_code());
    if (code != 200) return ErrorOf(code, resp.extract_string(true).get());
    if (on_open) on_open();
    auto body = resp.body().streambuf();
    SseReader reader;
    char buf[16384];
    for (;;) {
      // Whatever has arrived, or wait for one byte: getn waits for all it asks.
      const size_t want = std::clamp<size_t>(body.in_avail(), 1, sizeof buf);
      const size_t n = body.getn(reinterpret_cast<uint8_t*>(buf), want).get();
      if (n == 0) return absl::UnavailableError("the scheduler ended the event stream");
      if (!reader.Feed(absl::string_view(buf, n), last_event_id, on_event)) return absl::OkStatus();
    }
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("event stream from ", impl_->base, " broken: ", e.what()));
  }
}

absl::Status Client::Call(const std::string& method, const std::string& path,
                          const std::string& body, google::protobuf::Message* out, int* status) {
  std::string text;
  auto code = Raw(method, path, body, &text);
  if (!code.ok()) return code.status();
  if (*code >= 400) return ErrorOf(*code, text);
  if (status != nullptr) *status = *code;
  absl::Status st = codec::ParseJson(text, out);
  if (!st.ok()) return absl::InternalError(absl::StrCat("unexpected response: ", st.message()));
  return absl::OkStatus();
}

absl::StatusOr<v1::Job> Client::Submit(const v1::Job& spec, bool* replayed) {
  v1::Job job;
  int status = 0;
  absl::Status st = Call("POST", "/v1/jobs", codec::ToJson(spec), &job, &status);
  if (!st.ok()) return st;
  if (replayed != nullptr) *replayed = status == 200;  // 201 for a new job
  return job;
}
absl::StatusOr<v1::Job> Client::GetJob(const std::string& id) {
  return CallAs<v1::Job>(*this, "GET", "/v1/jobs/" + Escape(id));
}
absl::StatusOr<v1::ListJobsResponse> Client::ListJobs(const std::string& state, int page_size,
                                                      const std::string& page_token) {
  std::string path = absl::StrCat("/v1/jobs?page_size=", page_size);
  if (!state.empty()) absl::StrAppend(&path, "&state=", Escape(state));
  if (!page_token.empty()) absl::StrAppend(&path, "&page_token=", Escape(page_token));
  return CallAs<v1::ListJobsResponse>(*this, "GET", path);
}
absl::StatusOr<v1::Job> Client::Cancel(const std::string& id) {
  return CallAs<v1::Job>(*this, "DELETE", "/v1/jobs/" + Escape(id));
}
absl::StatusOr<v1::JobLogs> Client::Logs(const std::string& id) {
  return CallAs<v1::JobLogs>(*this, "GET", "/v1/jobs/" + Escape(id) + "/logs");
}
absl::StatusOr<v1::ListAgentsResponse> Client::ListAgents() {
  return CallAs<v1::ListAgentsResponse>(*this, "GET", "/v1/agents");
}
absl::StatusOr<v1::Agent> Client::GetAgent(const std::string& id) {
  return CallAs<v1::Agent>(*this, "GET", "/v1/agents/" + Escape(id));
}
absl::StatusOr<v1::Agent> Client::AgentAction(const std::string& id, const std::string& action) {
  return CallAs<v1::Agent>(*this, "POST", "/v1/agents/" + Escape(id) + "/" + Escape(action));
}
absl::StatusOr<v1::Decision> Client::Plan(const v1::Job& spec) {
  return CallAs<v1::Decision>(*this, "POST", "/v1/plan", codec::ToJson(spec));
}
absl::StatusOr<v1::Decision> Client::Explain(const std::string& job_id) {
  return CallAs<v1::Decision>(*this, "GET", "/v1/jobs/" + Escape(job_id) + "/explanation");
}
absl::StatusOr<v1::Policy> Client::GetPolicy() {
  return CallAs<v1::Policy>(*this, "GET", "/v1/policy");
}
absl::StatusOr<v1::PolicyVersion> Client::ApplyPolicy(const v1::Policy& policy,
                                                      bool allow_violations) {
  return CallAs<v1::PolicyVersion>(
      *this, "PUT", allow_violations ? "/v1/policy?allow_violations=true" : "/v1/policy",
      codec::ToJson(policy));
}
absl::StatusOr<v1::SimulateResponse> Client::Simulate(const v1::SimulateRequest& request) {
  return CallAs<v1::SimulateResponse>(*this, "POST", "/v1/policy:simulate", codec::ToJson(request));
}
absl::StatusOr<v1::ValidationResult> Client::ValidatePolicy(const v1::Policy& policy) {
  return CallAs<v1::ValidationResult>(*this, "POST", "/v1/policy:validate", codec::ToJson(policy));
}
absl::StatusOr<v1::ListPolicyVersionsResponse> Client::PolicyVersions() {
  return CallAs<v1::ListPolicyVersionsResponse>(*this, "GET", "/v1/policy/versions");
}
absl::StatusOr<v1::ClusterView> Client::Cluster() {
  return CallAs<v1::ClusterView>(*this, "GET", "/v1/cluster");
}

absl::StatusOr<v1::ListSitesResponse> Client::ListSites() {
  return CallAs<v1::ListSitesResponse>(*this, "GET", "/v1/sites");
}
absl::StatusOr<v1::NetworkView> Client::GetNetwork() {
  return CallAs<v1::NetworkView>(*this, "GET", "/v1/network");
}
absl::StatusOr<v1::Link> Client::SetLinkUp(const std::string& link_id, bool up) {
  return CallAs<v1::Link>(*this, "PUT", "/v1/network/links/" + Escape(link_id),
                          up ? R"({"up": true})" : R"({"up": false})");
}
absl::StatusOr<v1::ListTenantsResponse> Client::ListTenants(int expiring_within_days) {
  std::string path = "/v1/tenants";
  if (expiring_within_days >= 0)
    absl::StrAppend(&path, "?expiring_within_days=", expiring_within_days);
  return CallAs<v1::ListTenantsResponse>(*this, "GET", path);
}
absl::StatusOr<v1::RegisteredDataset> Client::CreateDataset(const v1::RegisteredDataset& d) {
  return CallAs<v1::RegisteredDataset>(*this, "POST", "/v1/datasets", codec::ToJson(d));
}
absl::StatusOr<v1::RegisteredDataset> Client::PutDataset(const std::string& id,
                                                         const v1::RegisteredDataset& d) {
  return CallAs<v1::RegisteredDataset>(*this, "PUT", "/v1/datasets/" + Escape(id),
                                       codec::ToJson(d));
}
absl::StatusOr<v1::RegisteredDataset> Client::GetDataset(const std::string& id) {
  return CallAs<v1::RegisteredDataset>(*this, "GET", "/v1/datasets/" + Escape(id));
}
absl::StatusOr<v1::ListDatasetsResponse> Client::ListDatasets(const std::string& tenant,
                                                              int page_size,
                                                              const std::string& page_token) {
  std::string path = absl::StrCat("/v1/datasets?page_size=", page_size);
  if (!tenant.empty()) absl::StrAppend(&path, "&tenant=", Escape(tenant));
  if (!page_token.empty()) absl::StrAppend(&path, "&page_token=", Escape(page_token));
  return CallAs<v1::ListDatasetsResponse>(*this, "GET", path);
}
absl::StatusOr<v1::DatasetVersions> Client::DatasetVersions(const std::string& id) {
  return CallAs<v1::DatasetVersions>(*this, "GET", "/v1/datasets/" + Escape(id) + "/versions");
}
absl::StatusOr<v1::Tenant> Client::GetTenant(const std::string& id) {
  return CallAs<v1::Tenant>(*this, "GET", "/v1/tenants/" + Escape(id));
}
absl::StatusOr<v1::Tenant> Client::PutTenant(const std::string& id, const v1::Tenant& tenant) {
  return CallAs<v1::Tenant>(*this, "PUT", "/v1/tenants/" + Escape(id), codec::ToJson(tenant));
}
absl::StatusOr<v1::TenantUsage> Client::TenantUsage(const std::string& id) {
  return CallAs<v1::TenantUsage>(*this, "GET", "/v1/tenants/" + Escape(id) + "/usage");
}
absl::StatusOr<v1::ListTasksResponse> Client::ListTasks(const std::string& job_id, int page_size,
                                                        const std::string& page_token) {
  std::string path = absl::StrCat("/v1/jobs/", Escape(job_id), "/tasks?page_size=", page_size);
  if (!page_token.empty()) absl::StrAppend(&path, "&page_token=", Escape(page_token));
  return CallAs<v1::ListTasksResponse>(*this, "GET", path);
}
absl::StatusOr<v1::ListAuditResponse> Client::Audit(const AuditFilter& filter) {
  std::string query;
  auto add = [&query](const char* key, const std::string& value) {
    absl::StrAppend(&query, query.empty() ? "?" : "&", key, "=", Escape(value));
  };
  if (!filter.tenant.empty()) add("tenant", filter.tenant);
  if (!filter.job.empty()) add("job", filter.job);
  if (filter.limit > 0) add("limit", absl::StrCat(filter.limit));
  return CallAs<v1::ListAuditResponse>(*this, "GET", "/v1/audit" + query);
}
absl::StatusOr<v1::ListViolationsResponse> Client::Violations(const std::string& tenant) {
  return CallAs<v1::ListViolationsResponse>(
      *this, "GET",
      "/v1/compliance/violations" + (tenant.empty() ? "" : "?tenant=" + Escape(tenant)));
}
absl::StatusOr<std::string> Client::Metrics() {
  std::string body;
  auto code = Raw("GET", "/metrics", "", &body);
  if (!code.ok()) return code.status();
  if (*code == 200) return body;
  v1::ErrorResponse err;
  if (codec::ParseJson(body, &err).ok() && !err.error().message().empty())
    return absl::Status(CodeOf(*code), err.error().message());
  return absl::Status(CodeOf(*code), absl::StrCat("/metrics answered ", *code));
}

}  // namespace portolan::client
