#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "portolan/auth.h"
#include "portolan/strings.h"
#include "portolan/tls.h"

namespace portolan::rest {

struct Request {
  std::string method;                          // "GET", "POST", ...
  std::string path;                            // decoded path, no query
  std::map<std::string, std::string> params;   // {name} captures of the route
  std::map<std::string, std::string> query;    // decoded query parameters
  std::map<std::string, std::string> headers;  // lowercase names
  std::string body;
  std::string peer;
  auth::Principal principal;  // set for authenticated routes
};

struct Response {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
};

// {"error": {"code": ..., "message": ..., "field": ...}} with `status`.
Response ErrorResponse(int status, absl::string_view code, absl::string_view message,
                       absl::string_view field = "");
// Maps an absl::Status (and its field payload) to the HTTP error above.
Response StatusResponse(const absl::Status& status);
// 200 (or `status`) with a JSON body.
Response Json(std::string body, int status = 200);

struct ServerOptions {
  size_t max_body_bytes = 1u << 20;  // larger bodies get 413
  int request_timeout_s = 30;
  // Bearer-token authentication for non-public routes; null turns it off
  // (every caller is an anonymous admin). Not owned; outlives the server.
  const auth::TokenStore* tokens = nullptr;
  // Per-principal (or per-peer when unauthenticated) limit; null: none.
  auth::RateLimiter* limiter = nullptr;
  size_t max_json_depth = 32;  // deeper bodies get 400 before parsing
  // Called with the status of every answered request (e.g. for metrics);
  // from cpprestsdk's threads, so it must be thread-safe.
  std::function<void(int status)> on_response;
  // HTTPS when `https.cert` is set (cert chain and key, PEM); plain HTTP
  // otherwise. `https.ca` is unused (no client certificates on REST).
  tls::Files https;
};

// An HTTP/1.1 server on cpprestsdk's listener. Routes are registered before
// Start(); handlers run on cpprestsdk's thread pool, concurrently, so they must
// be thread-safe. Exceptions escaping a handler become a 500 and are logged;
// they never reach cpprestsdk.
class Server {
 public:
  using Handler = std::function<Response(const Request&)>;

  explicit Server(ServerOptions options = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // `pattern` is a path whose segments may be "{name}" placeholders. Routes
  // need a valid bearer token unless `is_public`.
  void Route(const std::string& method, const std::string& pattern, Handler handler,
             bool is_public = false);

  // Listens on `addr`. Port 0 picks a free port; bound() tells which.
  absl::Status Start(const HostPort& addr);
  HostPort bound() const { return bound_; }
  // "http" or "https".
  const char* scheme() const { return options_.https.cert.empty() ? "http" : "https"; }
  void Stop();

  // Every registered route as {method, pattern}, e.g. {"GET", "/v1/jobs/{id}"}.
  std::vector<std::pair<std::string, std::string>> Routes() const;

  // Dispatches without the network (used by Start's listener and by tests).
  Response Dispatch(Request& request) const;

 private:
  struct RouteEntry {
    std::string method;
    std::vector<std::string> segments;
    Handler handler;
    bool is_public = false;
  };
  struct Impl;

  ServerOptions options_;
  std::vector<RouteEntry> routes_;
  HostPort bound_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace portolan::rest
